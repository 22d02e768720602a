//! What `{{ }}` variables read, decided from their parsed JMESPath expressions (not
//! by searching the text): the names of the root variables an expression reads
//! (`request | namespace` reads `request`; `images.containers.*.name` reads
//! `images`; `predicate.x` reads `predicate`), whether it reads the whole root
//! (`@`, `*`, `keys(@)`) and whether it reads the clock (`time_now`).
//!
//! The engine uses this to decide whether a verifyImages verdict may be reused for
//! another request: see [`ImageVerification::verdict_depends_on_request`].

use std::collections::BTreeSet;

use jmespath::ast::Ast;
use serde_json::Value;

use super::{ESCAPED_VARIABLES, VARIABLES, check_expression};
use crate::model::ImageVerification;

/// The variables Kyverno (and imagegate) derive from the admission request: the
/// request itself, the resource's images, the image under verification (its
/// spelling, tag and registry come from the request), `foreach` elements and the
/// service account.
pub const REQUEST_VARIABLES: &[&str] = &[
    "request",
    "images",
    "image",
    "element",
    "elementIndex",
    "serviceAccountName",
    "serviceAccountNamespace",
];

/// Functions whose result changes with time.
const CLOCK_FUNCTIONS: &[&str] = &["time_now", "time_now_utc"];

/// What a set of expressions reads from the context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Root variables read by name.
    pub names: BTreeSet<String>,
    /// The whole root is read (`@` or `*` at the root), or an expression could not
    /// be analysed (it does not parse, or it is built from other variables): it may
    /// read anything.
    pub whole_root: bool,
    /// A function reading the clock is called.
    pub clock: bool,
}

impl Reads {
    /// Whether the root variable `name` may be read.
    pub fn reads(&self, name: &str) -> bool {
        self.whole_root || self.names.contains(name)
    }

    /// Whether any of `names` may be read.
    pub fn reads_any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.reads(n))
    }

    fn merge(&mut self, other: Reads) {
        self.names.extend(other.names);
        self.whole_root |= other.whole_root;
        self.clock |= other.clock;
    }
}

/// What one JMESPath expression (without `{{ }}`) reads. An expression that does not
/// parse may read anything.
pub fn expression_reads(expression: &str) -> Reads {
    let mut reads = Reads::default();
    // The evaluator's own bounds first: they keep the parser's recursion bounded.
    if check_expression(expression).is_err() {
        reads.whole_root = true;
        return reads;
    }
    match jmespath::parse(expression) {
        Ok(ast) => collect(&ast, true, &mut reads, 0),
        Err(_) => reads.whole_root = true,
    }
    reads
}

/// What the `{{ }}` variables in every string and object key of `value` read.
pub fn value_reads(value: &Value) -> Reads {
    let mut reads = Reads::default();
    visit(value, &mut reads);
    reads
}

fn visit(value: &Value, reads: &mut Reads) {
    match value {
        Value::String(s) => reads.merge(string_reads(s)),
        Value::Array(items) => items.iter().for_each(|v| visit(v, reads)),
        Value::Object(map) => {
            for (k, v) in map {
                reads.merge(string_reads(k));
                visit(v, reads);
            }
        }
        _ => {}
    }
}

/// What the variables of one string read. A variable assembled from others
/// (`{{ request.{{ x }} }}`) is only known after substitution: it may read anything.
fn string_reads(text: &str) -> Reads {
    let mut reads = Reads::default();
    if !text.contains("{{") {
        return reads;
    }
    let (Some(variables), Some(escaped)) = (VARIABLES.as_ref(), ESCAPED_VARIABLES.as_ref()) else {
        reads.whole_root = true;
        return reads;
    };
    let mut rest = String::with_capacity(text.len());
    let mut last = 0;
    for captures in variables.captures_iter(text) {
        let Some(m) = captures.get(2) else { continue };
        let expression = m.as_str().trim_start_matches("{{").trim_end_matches("}}");
        reads.merge(expression_reads(expression.trim()));
        rest.push_str(&text[last..m.start()]);
        last = m.end();
    }
    rest.push_str(&text[last..]);
    if escaped.replace_all(&rest, "").contains("{{") {
        reads.whole_root = true;
    }
    reads
}

/// Deepest AST walked; deeper expressions (refused by the evaluator anyway) count as
/// reading anything.
const MAX_DEPTH: usize = 256;

/// Collects what `ast` reads when evaluated against the root (`at_root`) or against a
/// value derived from it.
fn collect(ast: &Ast, at_root: bool, reads: &mut Reads, depth: usize) {
    if depth > MAX_DEPTH {
        reads.whole_root = true;
        return;
    }
    let d = depth + 1;
    match ast {
        Ast::Field { name, .. } => {
            if at_root {
                reads.names.insert(name.clone());
            }
        }
        Ast::Identity { .. } => {
            if at_root {
                reads.whole_root = true;
            }
        }
        // The right side is evaluated against the left side's result.
        Ast::Subexpr { lhs, rhs, .. } | Ast::Projection { lhs, rhs, .. } => {
            collect(lhs, at_root, reads, d);
            collect(rhs, false, reads, d);
        }
        Ast::Comparison { lhs, rhs, .. } | Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            collect(lhs, at_root, reads, d);
            collect(rhs, at_root, reads, d);
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            collect(predicate, at_root, reads, d);
            collect(then, at_root, reads, d);
        }
        Ast::Flatten { node, .. } | Ast::Not { node, .. } => collect(node, at_root, reads, d),
        // `*` at the root reads every root value.
        Ast::ObjectValues { node, .. } => {
            collect(node, at_root, reads, d);
        }
        Ast::Function { name, args, .. } => {
            if CLOCK_FUNCTIONS.contains(&name.as_str()) {
                reads.clock = true;
            }
            args.iter().for_each(|a| collect(a, at_root, reads, d));
        }
        // Evaluated later against the elements of another argument.
        Ast::Expref { ast, .. } => collect(ast, false, reads, d),
        Ast::MultiList { elements, .. } => {
            elements.iter().for_each(|e| collect(e, at_root, reads, d));
        }
        Ast::MultiHash { elements, .. } => {
            elements
                .iter()
                .for_each(|kv| collect(&kv.value, at_root, reads, d));
        }
        // Indexing or slicing the root object yields null; literals read nothing.
        Ast::Index { .. } | Ast::Slice { .. } | Ast::Literal { .. } => {}
    }
}

impl ImageVerification {
    /// What the `{{ }}` variables anywhere in this entry (conditions, messages,
    /// attestors, …) read.
    pub fn variable_reads(&self) -> Reads {
        match serde_json::to_value(self) {
            Ok(value) => value_reads(&value),
            Err(_) => Reads {
                whole_root: true,
                ..Reads::default()
            },
        }
    }

    /// Whether this entry's verdict for an image may differ between two requests for
    /// the same image digest, so that it must not be reused from a cache: its
    /// variables read one of [`REQUEST_VARIABLES`], the whole root, or the clock.
    pub fn verdict_depends_on_request(&self) -> bool {
        let reads = self.variable_reads();
        reads.clock || reads.reads_any(REQUEST_VARIABLES)
    }
}
