//! Conditions as Kyverno evaluates them: `{{ }}` JMESPath variables (with Kyverno's custom
//! functions) substituted into keys and values, then one of Kyverno's operators.
//!
//! - [`Context`] holds the JSON the variables are resolved against (`request`, `image`,
//!   attestation predicate fields at the root, ...).
//! - [`substitute`] replaces `{{ expr }}` in every string of a JSON value; a string that is
//!   exactly one variable takes the result's JSON type.
//! - [`evaluate`] / [`evaluate_preconditions`] / [`evaluate_condition`] apply the operators
//!   with Kyverno's any/all rules; there, a variable whose path does not exist resolves to
//!   `""` (Kyverno's preconditions resolver) instead of failing.
//! - [`jmespath_search`] runs one expression with Kyverno's functions registered.
//! - [`expression_reads`] / [`value_reads`] tell from the parsed expressions which
//!   variables they read.

mod duration;
mod functions;
mod operators;
pub(crate) mod quantity;
mod reads;

pub use reads::{REQUEST_VARIABLES, Reads, expression_reads, value_reads};

use std::sync::{Arc, LazyLock, OnceLock};

use jmespath::ast::Ast;
use jmespath::{ErrorReason, JmespathError, Rcvar, Runtime, Variable};
use regex::Regex;
use serde_json::{Map, Value};

use crate::model::{AnyAllConditions, Condition};
use operators::Operator;

/// Longest JMESPath expression accepted (bounds parser and interpreter recursion).
const MAX_EXPRESSION_LEN: usize = 4096;
/// Deepest bracket nesting accepted in an expression.
const MAX_EXPRESSION_DEPTH: usize = 64;
/// Nested-variable passes over one string before giving up.
const MAX_PASSES: usize = 16;

/// The JSON document variables are resolved against.
#[derive(Debug, Clone)]
pub struct Context {
    root: Value,
    variable: OnceLock<Rcvar>,
}

impl Context {
    /// A context over `root` (usually an object such as `{"request": …, "image": …}`).
    pub fn new(root: Value) -> Context {
        Context {
            root,
            variable: OnceLock::new(),
        }
    }

    /// The JSON document.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// A new context with `extra` merged into the root object (entries of `extra` win).
    /// A root that is not an object is replaced by `extra`.
    pub fn with_entries(&self, extra: Map<String, Value>) -> Context {
        let mut root = match &self.root {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        root.extend(extra);
        Context::new(Value::Object(root))
    }

    fn as_variable(&self) -> Result<&Rcvar, VariableError> {
        if let Some(v) = self.variable.get() {
            return Ok(v);
        }
        let converted = Variable::try_from(&self.root).map_err(|e| VariableError::QueryFailed {
            expression: String::new(),
            reason: jmespath_reason(&e),
        })?;
        Ok(self.variable.get_or_init(|| Arc::new(converted)))
    }

    fn is_delete_request(&self) -> bool {
        self.root
            .pointer("/request/operation")
            .and_then(Value::as_str)
            == Some("DELETE")
    }
}

/// A variable could not be substituted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// The path names a key that does not exist (Kyverno: `Unknown key "x" in path`).
    #[error("variable substitution failed for {variable:?}: Unknown key in path")]
    NotResolved {
        /// The JMESPath expression inside `{{ }}`.
        variable: String,
    },
    /// The expression does not parse, or exceeds the size limits.
    #[error("invalid JMESPath expression {expression:?}: {reason}")]
    InvalidExpression {
        /// The expression.
        expression: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The expression parsed but failed at run time (e.g. a function got a wrong type).
    #[error("JMESPath query {expression:?} failed: {reason}")]
    QueryFailed {
        /// The expression.
        expression: String,
        /// The failure.
        reason: String,
    },
    /// A substituted value does not fit the field it was written in (a number where
    /// a text is expected, …).
    #[error("substituted value has the wrong type: {reason}")]
    WrongType {
        /// What did not fit.
        reason: String,
    },
    /// Nested variables kept producing new variables.
    #[error("variables in {value:?} still unresolved after {passes} nested passes")]
    TooDeep {
        /// The string being substituted.
        value: String,
        /// Passes made.
        passes: usize,
    },
}

/// A condition could not be evaluated (as opposed to evaluating to false).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// Substitution in the condition key failed.
    #[error("failed to substitute variables in condition key: {0}")]
    Key(#[source] VariableError),
    /// Substitution in the condition value failed.
    #[error("failed to substitute variables in condition value: {0}")]
    Value(#[source] VariableError),
    /// The operator is not one Kyverno knows.
    #[error("unknown condition operator {operator:?}")]
    UnknownOperator {
        /// The operator as written.
        operator: String,
    },
    /// `preconditions` is neither a list of conditions nor `{any, all}`.
    #[error("invalid preconditions: {reason}")]
    InvalidPreconditions {
        /// Why they were rejected.
        reason: String,
    },
}

/// The outcome of a set of conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionResult {
    /// Whether the conditions hold.
    pub passed: bool,
    /// When they do not: the failing conditions' messages joined with `;` (Kyverno's
    /// format), or, when none has a message, one naming the first failing key, operator
    /// and value.
    pub message: Option<String>,
}

impl ConditionResult {
    fn pass() -> ConditionResult {
        ConditionResult {
            passed: true,
            message: None,
        }
    }
}

static RUNTIME: LazyLock<Runtime> = LazyLock::new(functions::runtime);

/// `(^|[^\\])({{ … }})`: Kyverno's variable pattern, one level of `{}` allowed inside.
static VARIABLES: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").ok());
/// Escaped variables `\{{ … }}`, written out without the backslash.
static ESCAPED_VARIABLES: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\\(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").ok());

/// Stands in for `{{` inside substituted text so results are not re-evaluated.
const OPEN_PLACEHOLDER: &str = "\u{F8F0}\u{F8F1}";

fn jmespath_reason(e: &JmespathError) -> String {
    match &e.reason {
        ErrorReason::Parse(s) => s.clone(),
        ErrorReason::Runtime(r) => r.to_string(),
    }
}

fn check_expression(expression: &str) -> Result<(), VariableError> {
    let invalid = |reason: String| VariableError::InvalidExpression {
        expression: truncate_for_message(expression),
        reason,
    };
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(invalid(format!("longer than {MAX_EXPRESSION_LEN} bytes")));
    }
    let mut depth: usize = 0;
    let mut max_depth: usize = 0;
    let mut nots: usize = 0;
    for c in expression.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '!' => nots += 1,
            _ => {}
        }
    }
    if max_depth > MAX_EXPRESSION_DEPTH || nots > MAX_EXPRESSION_DEPTH * 4 {
        return Err(invalid(format!(
            "nested deeper than {MAX_EXPRESSION_DEPTH} levels"
        )));
    }
    Ok(())
}

fn truncate_for_message(s: &str) -> String {
    const LIMIT: usize = 200;
    if s.len() <= LIMIT {
        return s.to_owned();
    }
    let mut end = LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Where a null result came from.
enum Walk<'a> {
    Found(&'a Value),
    Missing,
    Opaque,
}

/// For a plain path (`a.b[0].c`), whether it names a key missing from an object: Kyverno's
/// JMESPath reports those as `Unknown key` where standard JMESPath yields null.
fn walk<'a>(ast: &Ast, data: &'a Value) -> Walk<'a> {
    static NULL: Value = Value::Null;
    match ast {
        Ast::Identity { .. } => Walk::Found(data),
        Ast::Field { name, .. } => match data {
            Value::Object(map) => map.get(name).map_or(Walk::Missing, Walk::Found),
            _ => Walk::Found(&NULL),
        },
        Ast::Index { idx, .. } => match data {
            Value::Array(items) => {
                let index = if *idx < 0 {
                    usize::try_from(idx.unsigned_abs())
                        .ok()
                        .and_then(|back| items.len().checked_sub(back))
                } else {
                    usize::try_from(*idx).ok()
                };
                Walk::Found(index.and_then(|i| items.get(i)).unwrap_or(&NULL))
            }
            _ => Walk::Found(&NULL),
        },
        Ast::Subexpr { lhs, rhs, .. } => match walk(lhs, data) {
            Walk::Found(inner) => walk(rhs, inner),
            other => other,
        },
        _ => Walk::Opaque,
    }
}

/// Runs `expression` and reports a missing key on a plain path as `NotResolved`.
fn query(expression: &str, ctx: &Context) -> Result<Value, VariableError> {
    check_expression(expression)?;
    let compiled = RUNTIME
        .compile(expression)
        .map_err(|e| VariableError::InvalidExpression {
            expression: truncate_for_message(expression),
            reason: jmespath_reason(&e),
        })?;
    let result = compiled
        .search(ctx.as_variable()?)
        .map_err(|e| VariableError::QueryFailed {
            expression: truncate_for_message(expression),
            reason: jmespath_reason(&e),
        })?;
    if result.is_null() && matches!(walk(compiled.as_ast(), ctx.root()), Walk::Missing) {
        return Err(VariableError::NotResolved {
            variable: truncate_for_message(expression),
        });
    }
    Ok(functions::variable_to_json(&result))
}

/// Runs a JMESPath expression over `data` with Kyverno's custom functions registered.
/// Missing keys give `null`, as in standard JMESPath.
pub fn jmespath_search(expression: &str, data: &Value) -> Result<Value, VariableError> {
    check_expression(expression)?;
    let compiled = RUNTIME
        .compile(expression)
        .map_err(|e| VariableError::InvalidExpression {
            expression: truncate_for_message(expression),
            reason: jmespath_reason(&e),
        })?;
    let result = compiled
        .search(data)
        .map_err(|e| VariableError::QueryFailed {
            expression: truncate_for_message(expression),
            reason: jmespath_reason(&e),
        })?;
    Ok(functions::variable_to_json(&result))
}

/// How unresolved variables are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `NotResolved` is an error (Kyverno's default resolver).
    Strict,
    /// `NotResolved` becomes `""` (Kyverno's preconditions resolver, used by conditions).
    Conditions,
}

/// Whether `text` holds a `{{ }}` variable (an escaped `\{{ }}` is not one).
pub(crate) fn has_variables(text: &str) -> bool {
    text.contains("{{") && VARIABLES.as_ref().is_none_or(|re| re.is_match(text))
}

/// Replaces `{{ expr }}` in every string (and object key) of `value`. A string that is
/// exactly one variable becomes the JMESPath result with its JSON type; otherwise results
/// are written into the string (strings as they are, anything else as JSON). `\{{ … }}` is
/// left unsubstituted and written without the backslash.
pub fn substitute(value: &Value, ctx: &Context) -> Result<Value, VariableError> {
    substitute_value(value, ctx, Mode::Strict)
}

fn substitute_value(value: &Value, ctx: &Context, mode: Mode) -> Result<Value, VariableError> {
    Ok(match value {
        Value::String(s) => substitute_string(s, ctx, mode)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| substitute_value(i, ctx, mode))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match substitute_string(k, ctx, mode)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, substitute_value(v, ctx, mode)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn resolve(expression: &str, ctx: &Context, mode: Mode) -> Result<Value, VariableError> {
    let expression = if ctx.is_delete_request() {
        expression.replace("request.object", "request.oldObject")
    } else {
        expression.to_owned()
    };
    match query(&expression, ctx) {
        Err(VariableError::NotResolved { .. }) if mode == Mode::Conditions => {
            Ok(Value::String(String::new()))
        }
        other => other,
    }
}

fn substitute_string(input: &str, ctx: &Context, mode: Mode) -> Result<Value, VariableError> {
    let Some(pattern) = VARIABLES.as_ref() else {
        return Ok(Value::String(input.to_owned()));
    };
    if !input.contains("{{") {
        return Ok(Value::String(input.to_owned()));
    }
    let mut current = input.to_owned();
    let mut passes = 0;
    loop {
        let spans: Vec<(usize, usize)> = pattern
            .captures_iter(&current)
            .filter_map(|c| c.get(2).map(|m| (m.start(), m.end())))
            .collect();
        if spans.is_empty() {
            break;
        }
        passes += 1;
        if passes > MAX_PASSES {
            return Err(VariableError::TooDeep {
                value: truncate_for_message(input),
                passes: MAX_PASSES,
            });
        }
        let mut out = String::with_capacity(current.len());
        let mut last = 0;
        for (start, end) in spans {
            let text = &current[start..end];
            let expression = text.replace("{{", "").replace("}}", "");
            let result = resolve(expression.trim(), ctx, mode)?;
            if text.len() == current.len() {
                return Ok(result);
            }
            out.push_str(&current[last..start]);
            let rendered = match result {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.push_str(&rendered.replace("{{", OPEN_PLACEHOLDER));
            last = end;
        }
        out.push_str(&current[last..]);
        current = out;
    }
    if let Some(escaped) = ESCAPED_VARIABLES.as_ref() {
        current = escaped.replace_all(&current, "$1").into_owned();
    }
    Ok(Value::String(current.replace(OPEN_PLACEHOLDER, "{{")))
}

/// Outcome of one condition with the substituted key and value, for messages.
struct Evaluated {
    passed: bool,
    key: Value,
    value: Value,
}

fn evaluate_one(condition: &Condition, ctx: &Context) -> Result<Evaluated, ConditionError> {
    let operator =
        Operator::parse(&condition.operator).ok_or_else(|| ConditionError::UnknownOperator {
            operator: condition.operator.clone(),
        })?;
    let key =
        substitute_value(&condition.key, ctx, Mode::Conditions).map_err(ConditionError::Key)?;
    let value =
        substitute_value(&condition.value, ctx, Mode::Conditions).map_err(ConditionError::Value)?;
    Ok(Evaluated {
        passed: operator.evaluate(&key, &value),
        key,
        value,
    })
}

/// Evaluates one condition: substitutes key and value (a missing path resolves to `""`, as
/// Kyverno's preconditions resolver does), then applies the operator.
pub fn evaluate_condition(condition: &Condition, ctx: &Context) -> Result<bool, ConditionError> {
    evaluate_one(condition, ctx).map(|e| e.passed)
}

fn failure_message(failures: &[(&Condition, Evaluated)]) -> String {
    let messages: Vec<&str> = failures
        .iter()
        .filter_map(|(c, _)| c.message.as_deref())
        .filter(|m| !m.is_empty())
        .collect();
    if !messages.is_empty() {
        return messages.join(";");
    }
    match failures.first() {
        Some((c, e)) => {
            let written = render(&c.key);
            let resolved = render(&e.key);
            let key = if written == resolved {
                written
            } else {
                format!("{written} (resolved to {resolved})")
            };
            format!(
                "condition failed: key {key} {} value {}",
                c.operator,
                render(&e.value)
            )
        }
        None => "conditions failed".to_owned(),
    }
}

fn render(v: &Value) -> String {
    truncate_for_message(&v.to_string())
}

/// Evaluates one `{any, all}` block: passes when (`any` is empty or one of `any` holds) and
/// every one of `all` holds.
fn evaluate_block(
    block: &AnyAllConditions,
    ctx: &Context,
) -> Result<ConditionResult, ConditionError> {
    let mut failures: Vec<(&Condition, Evaluated)> = Vec::new();
    let mut any_passed = block.any.is_empty();
    for condition in &block.any {
        let evaluated = evaluate_one(condition, ctx)?;
        if evaluated.passed {
            any_passed = true;
            break;
        }
        failures.push((condition, evaluated));
    }
    let mut all_passed = true;
    for condition in &block.all {
        let evaluated = evaluate_one(condition, ctx)?;
        if !evaluated.passed {
            all_passed = false;
            failures.push((condition, evaluated));
            break;
        }
    }
    if any_passed && all_passed {
        return Ok(ConditionResult::pass());
    }
    if any_passed {
        // Kyverno keeps the messages of failed `any` conditions; report the `all` one first.
        failures.rotate_right(1);
    }
    Ok(ConditionResult {
        passed: false,
        message: Some(failure_message(&failures)),
    })
}

/// Kyverno's attestation and `deny` semantics: passes when every block passes. Stops at
/// the first failing block.
pub fn evaluate(
    conditions: &[AnyAllConditions],
    ctx: &Context,
) -> Result<ConditionResult, ConditionError> {
    for block in conditions {
        let result = evaluate_block(block, ctx)?;
        if !result.passed {
            return Ok(result);
        }
    }
    Ok(ConditionResult::pass())
}

/// Kyverno's `preconditions`: `null` (none), a list of conditions that must all hold (the
/// old form), or one `{any, all}` block.
pub fn evaluate_preconditions(
    preconditions: &Value,
    ctx: &Context,
) -> Result<ConditionResult, ConditionError> {
    let invalid = |e: serde_json::Error| ConditionError::InvalidPreconditions {
        reason: e.to_string(),
    };
    match preconditions {
        Value::Null => Ok(ConditionResult::pass()),
        Value::Array(_) => {
            let all: Vec<Condition> =
                serde_json::from_value(preconditions.clone()).map_err(invalid)?;
            evaluate_block(
                &AnyAllConditions {
                    any: Vec::new(),
                    all,
                },
                ctx,
            )
        }
        Value::Object(map) => {
            if let Some(unknown) = map.keys().find(|k| *k != "any" && *k != "all") {
                return Err(ConditionError::InvalidPreconditions {
                    reason: format!("unknown field {unknown:?}: only `any` and `all` are allowed"),
                });
            }
            let block: AnyAllConditions =
                serde_json::from_value(preconditions.clone()).map_err(invalid)?;
            evaluate_block(&block, ctx)
        }
        other => Err(ConditionError::InvalidPreconditions {
            reason: format!("expected a list of conditions or {{any, all}}, found {other}"),
        }),
    }
}
