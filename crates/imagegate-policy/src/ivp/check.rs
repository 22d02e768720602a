//! Static checks of CEL expressions at load time. cel-rust has no type checker, so this
//! walks each program: identifiers must be declared for the expression's place (`object`,
//! `variables`, `images`, … or a comprehension variable), `variables.x`, `attestors.x`,
//! `attestations.x` and `images.x` must name something the policy declares, and functions
//! that need I/O or that cel-rust lacks are refused with the reason. The same walk
//! collects which verifications an expression can ask for (the verification plan).

use std::collections::BTreeSet;

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};

use super::library::{IO_NAMESPACES, NAMESPACES, UNSUPPORTED_FUNCTIONS};

/// What the declarations of a policy make available to an expression.
pub(crate) struct Scope<'a> {
    /// Top-level variables this place may read.
    pub roots: &'a [&'a str],
    /// Declared `variables.<name>` (only those before this one, for variables).
    pub variables: &'a [String],
    /// Declared attestors.
    pub attestors: &'a [String],
    /// Declared attestations.
    pub attestations: &'a [String],
    /// Declared image categories (`None`: any, as the defaults depend on the request).
    pub images: Option<&'a [String]>,
}

/// Verifications an expression may ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Uses {
    /// Attestors whose signatures are verified (`verifyImageSignatures`).
    pub signatures: BTreeSet<String>,
    /// (attestation, attestor) pairs (`verifyAttestationSignatures`).
    pub attestations: BTreeSet<(String, String)>,
    /// `getImageData` is called.
    pub image_data: bool,
    /// `variables.<name>` read.
    pub variables: BTreeSet<String>,
}

impl Uses {
    pub(crate) fn extend(&mut self, other: &Uses) {
        self.signatures.extend(other.signatures.iter().cloned());
        self.attestations.extend(other.attestations.iter().cloned());
        self.image_data |= other.image_data;
        self.variables.extend(other.variables.iter().cloned());
    }
}

/// Checks `expr` against `scope`; returns the problems found and what it uses.
pub(crate) fn check(expr: &IdedExpr, scope: &Scope<'_>) -> (Vec<String>, Uses) {
    let mut walker = Walker {
        scope,
        bound: Vec::new(),
        problems: Vec::new(),
        uses: Uses::default(),
    };
    walker.walk(expr);
    let mut problems = walker.problems;
    problems.dedup();
    (problems, walker.uses)
}

struct Walker<'s, 'a> {
    scope: &'s Scope<'a>,
    bound: Vec<String>,
    problems: Vec<String>,
    uses: Uses,
}

impl Walker<'_, '_> {
    fn is_bound(&self, name: &str) -> bool {
        self.bound.iter().any(|b| b == name)
    }

    fn walk(&mut self, e: &IdedExpr) {
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                if let Expr::Ident(root) = &select.operand.expr
                    && !self.is_bound(root)
                {
                    self.ident(root);
                    self.member(root, &select.field);
                } else {
                    self.walk(&select.operand);
                }
            }
            Expr::Call(call) => self.call(&call.func_name, call.target.as_deref(), &call.args),
            Expr::Comprehension(comp) => {
                self.walk(&comp.iter_range);
                self.walk(&comp.accu_init);
                let before = self.bound.len();
                self.bound.push(comp.iter_var.clone());
                if let Some(v2) = &comp.iter_var2 {
                    self.bound.push(v2.clone());
                }
                self.bound.push(comp.accu_var.clone());
                self.walk(&comp.loop_cond);
                self.walk(&comp.loop_step);
                self.walk(&comp.result);
                self.bound.truncate(before);
            }
            Expr::List(list) => list.elements.iter().for_each(|x| self.walk(x)),
            Expr::Map(map) => {
                for entry in &map.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            self.walk(&m.key);
                            self.walk(&m.value);
                        }
                        EntryExpr::StructField(f) => self.walk(&f.value),
                    }
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    match &entry.expr {
                        EntryExpr::MapEntry(m) => {
                            self.walk(&m.key);
                            self.walk(&m.value);
                        }
                        EntryExpr::StructField(f) => self.walk(&f.value),
                    }
                }
            }
        }
    }

    fn ident(&mut self, name: &str) {
        if self.is_bound(name) || name.starts_with('@') {
            return;
        }
        // Type names and the null/boolean literals parse as identifiers in places.
        const BUILTIN: &[&str] = &[
            "int",
            "uint",
            "double",
            "bool",
            "string",
            "bytes",
            "list",
            "map",
            "null_type",
            "type",
            "dyn",
            "timestamp",
            "duration",
        ];
        if BUILTIN.contains(&name) {
            return;
        }
        if !self.scope.roots.contains(&name) {
            let available = self.scope.roots.join(", ");
            self.problems.push(format!(
                "undeclared reference to '{name}' (available here: {available})"
            ));
        }
    }

    fn member(&mut self, root: &str, field: &str) {
        let (declared, what): (Option<&[String]>, &str) = match root {
            "variables" => (Some(self.scope.variables), "variable"),
            "attestors" => (Some(self.scope.attestors), "attestor"),
            "attestations" => (Some(self.scope.attestations), "attestation"),
            "images" => (self.scope.images, "image extractor"),
            _ => (None, ""),
        };
        if root == "variables" {
            self.uses.variables.insert(field.to_owned());
        }
        if let Some(declared) = declared
            && self.scope.roots.contains(&root)
            && !declared.iter().any(|d| d == field)
        {
            self.problems.push(format!(
                "{root}.{field}: no {what} named '{field}' is declared"
            ));
        }
    }

    fn call(&mut self, name: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) {
        let qualified = match target.map(|t| &t.expr) {
            Some(Expr::Ident(ns)) if NAMESPACES.contains(&ns.as_str()) && !self.is_bound(ns) => {
                Some(format!("{ns}.{name}"))
            }
            _ => None,
        };
        let full = qualified.as_deref().unwrap_or(name);
        if let Some(ns) = full.split_once('.').map(|(ns, _)| ns)
            && IO_NAMESPACES.contains(&ns)
            && qualified.is_some()
        {
            self.problems.push(format!(
                "{full}() is not supported: imagegate evaluates CEL without I/O"
            ));
        }
        if let Some((_, lib)) = UNSUPPORTED_FUNCTIONS.iter().find(|(f, _)| *f == full) {
            self.problems.push(format!(
                "{full}() is not supported ({lib} is not available)"
            ));
        }
        match name {
            "verifyImageSignatures" if target.is_none() => {
                let attestors = args.get(1).and_then(|a| self.attestor_list(a));
                match attestors {
                    Some(list) => self.uses.signatures.extend(list),
                    None => self
                        .uses
                        .signatures
                        .extend(self.scope.attestors.iter().cloned()),
                }
            }
            "verifyAttestationSignatures" if target.is_none() => {
                let attestation = args.get(1).and_then(|a| self.attestation_name(a));
                let attestors = args
                    .get(2)
                    .and_then(|a| self.attestor_list(a))
                    .unwrap_or_else(|| self.scope.attestors.to_vec());
                let attestations = attestation
                    .map(|a| vec![a])
                    .unwrap_or_else(|| self.scope.attestations.to_vec());
                for attestation in &attestations {
                    for attestor in &attestors {
                        self.uses
                            .attestations
                            .insert((attestation.clone(), attestor.clone()));
                    }
                }
            }
            "getImageData" if target.is_none() => self.uses.image_data = true,
            _ => {}
        }
        if qualified.is_none()
            && let Some(t) = target
        {
            self.walk(t);
        }
        for a in args {
            self.walk(a);
        }
    }

    /// `[attestors.a, attestors.b]` → its names; anything else → unknown (`None`).
    fn attestor_list(&self, e: &IdedExpr) -> Option<Vec<String>> {
        let Expr::List(list) = &e.expr else {
            return None;
        };
        list.elements
            .iter()
            .map(|x| self.named(x, "attestors"))
            .collect()
    }

    fn attestation_name(&self, e: &IdedExpr) -> Option<String> {
        if let Expr::Literal(LiteralValue::String(s)) = &e.expr {
            return Some(s.to_string());
        }
        self.named(e, "attestations")
    }

    /// `root.name` or `root['name']` → `name`.
    fn named(&self, e: &IdedExpr, root: &str) -> Option<String> {
        match &e.expr {
            Expr::Select(s) => match &s.operand.expr {
                Expr::Ident(r) if r == root && !self.is_bound(r) => Some(s.field.clone()),
                _ => None,
            },
            Expr::Call(c) if c.func_name == "_[_]" => match (c.args.first(), c.args.get(1)) {
                (Some(first), Some(second)) => match (&first.expr, &second.expr) {
                    (Expr::Ident(r), Expr::Literal(LiteralValue::String(s)))
                        if r == root && !self.is_bound(r) =>
                    {
                        Some(s.to_string())
                    }
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        }
    }
}
