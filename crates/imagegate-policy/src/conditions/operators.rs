//! Kyverno's condition operators over substituted keys and values, with its wildcard,
//! duration, quantity, number-in-string and range coercions.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::duration::parse_duration;
use super::quantity::{parse_quantity, parse_version};
use crate::pattern::wildcard_match;

/// The operators Kyverno accepts in conditions (names matched case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    Equals,
    NotEquals,
    In,
    AnyIn,
    AllIn,
    NotIn,
    AnyNotIn,
    AllNotIn,
    Numeric(Comparison),
    Duration(Comparison),
}

/// The ordering a numeric or duration operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    GreaterThan,
    GreaterThanOrEquals,
    LessThan,
    LessThanOrEquals,
}

impl Comparison {
    fn holds(self, ord: Option<Ordering>) -> bool {
        let Some(ord) = ord else { return false };
        match self {
            Comparison::GreaterThan => ord == Ordering::Greater,
            Comparison::GreaterThanOrEquals => ord != Ordering::Less,
            Comparison::LessThan => ord == Ordering::Less,
            Comparison::LessThanOrEquals => ord != Ordering::Greater,
        }
    }
}

impl Operator {
    /// Resolves an operator name as Kyverno does (case-insensitive; `Equal`/`NotEqual` are
    /// accepted spellings of `Equals`/`NotEquals`).
    pub(crate) fn parse(name: &str) -> Option<Operator> {
        use Comparison::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "equal" | "equals" => Operator::Equals,
            "notequal" | "notequals" => Operator::NotEquals,
            "in" => Operator::In,
            "anyin" => Operator::AnyIn,
            "allin" => Operator::AllIn,
            "notin" => Operator::NotIn,
            "anynotin" => Operator::AnyNotIn,
            "allnotin" => Operator::AllNotIn,
            "greaterthan" => Operator::Numeric(GreaterThan),
            "greaterthanorequals" => Operator::Numeric(GreaterThanOrEquals),
            "lessthan" => Operator::Numeric(LessThan),
            "lessthanorequals" => Operator::Numeric(LessThanOrEquals),
            "durationgreaterthan" => Operator::Duration(GreaterThan),
            "durationgreaterthanorequals" => Operator::Duration(GreaterThanOrEquals),
            "durationlessthan" => Operator::Duration(LessThan),
            "durationlessthanorequals" => Operator::Duration(LessThanOrEquals),
            _ => return None,
        })
    }

    /// Evaluates `key <operator> value`. Type mismatches evaluate to `false`, as in Kyverno.
    pub(crate) fn evaluate(self, key: &Value, value: &Value) -> bool {
        match self {
            Operator::Equals => equals(key, value),
            Operator::NotEquals => !equals(key, value),
            Operator::In => legacy_in(key, value).unwrap_or(false),
            Operator::NotIn => legacy_in(key, value).is_some_and(|found| !found),
            Operator::AnyIn => any_in(key, value, false).unwrap_or(false),
            Operator::AnyNotIn => any_in(key, value, true).unwrap_or(false),
            Operator::AllIn => all_in(key, value, false).unwrap_or(false),
            Operator::AllNotIn => all_in(key, value, true).unwrap_or(false),
            Operator::Numeric(cmp) => cmp.holds(numeric_order(key, value)),
            Operator::Duration(cmp) => cmp.holds(duration_order(key, value)),
        }
    }
}

/// `fmt.Sprint` of a JSON value, with integers written without exponent.
pub(crate) fn sprint(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => format_number(n),
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".to_owned(),
        other => other.to_string(),
    }
}

/// A JSON number as Kyverno prints it: integral values without a fraction.
pub(crate) fn format_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => n.to_string(),
    }
}

/// Go's `strconv.ParseFloat` for the forms policies use.
fn parse_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    if t.is_empty() || !t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        // Rejects "inf"/"nan" spelled forms that Go would accept only as Inf/NaN.
        if !matches!(t.to_ascii_lowercase().as_str(), "inf" | "infinity" | "nan") {
            return None;
        }
    }
    if s != s.trim() {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Seconds from a JSON number as `time.Duration(n) * time.Second` (fraction truncated).
fn number_as_duration(n: f64) -> Option<i128> {
    if !n.is_finite() {
        return None;
    }
    Some((n.trunc() as i128).saturating_mul(1_000_000_000))
}

/// Kyverno's `parseDuration`: at least one side is a duration string other than `"0"`, the
/// other side a duration string or a number of seconds.
fn duration_pair(key: &Value, value: &Value) -> Option<(i128, i128)> {
    let as_duration = |v: &Value| match v {
        Value::String(s) if s != "0" => parse_duration(s).map(i128::from),
        _ => None,
    };
    let key_duration = as_duration(key);
    let value_duration = as_duration(value);
    if key_duration.is_none() && value_duration.is_none() {
        return None;
    }
    let key_duration = match key_duration {
        Some(d) => d,
        None => number_as_duration(key.as_f64()?)?,
    };
    let value_duration = match value_duration {
        Some(d) => d,
        None => number_as_duration(value.as_f64()?)?,
    };
    Some((key_duration, value_duration))
}

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool() == Some(*k),
        Value::Number(k) => {
            let Some(k) = k.as_f64() else { return false };
            match value {
                Value::Number(v) => v.as_f64() == Some(k),
                Value::String(s) => parse_float(s) == Some(k),
                _ => false,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = duration_pair(key, value) {
                return a == b;
            }
            if let (Some(kq), Value::String(v)) = (parse_quantity(k), value) {
                return parse_quantity(v).is_some_and(|vq| vq.nanos == kq.nanos);
            }
            match value {
                Value::String(v) => wildcard_match(v, k),
                _ => false,
            }
        }
        Value::Object(_) => value.is_object() && deep_equal(key, value),
        Value::Array(_) => value.is_array() && deep_equal(key, value),
        Value::Null => false,
    }
}

/// Structural equality with numbers compared by value (`1` equals `1.0`).
pub(crate) fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        _ => a == b,
    }
}

/// `Go json.Unmarshal(s, &[]string)`: `Some(list)` or `None` when `s` is not such an array.
fn json_string_array(s: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<Value>(s).ok()? {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|i| match i {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn is_json(s: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok()
}

static RANGE: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^([+-]?\d+(?:\.\d+)?[A-Za-z]*)(!?)-([+-]?\d+(?:\.\d+)?[A-Za-z]*)$").ok()
});

/// A numeric range written as a value: `"1-10"` (inside) or `"1!-10"` (outside), bounds
/// inclusive, numbers or quantities.
struct Range {
    low: i128,
    high: i128,
    negated: bool,
}

fn parse_range(s: &str) -> Option<Range> {
    let caps = RANGE.as_ref()?.captures(s)?;
    let low = parse_quantity(caps.get(1)?.as_str())?.nanos;
    let high = parse_quantity(caps.get(3)?.as_str())?.nanos;
    Some(Range {
        low,
        high,
        negated: !caps.get(2)?.as_str().is_empty(),
    })
}

impl Range {
    /// Whether `key` satisfies the range (inside, or outside for `!-`).
    fn matches(&self, key: &str) -> bool {
        let Some(k) = parse_quantity(key) else {
            return false;
        };
        let inside = self.low <= k.nanos && k.nanos <= self.high;
        inside != self.negated
    }
}

/// The key of an In-family operator: one string or a list of strings.
enum InKey {
    One(String),
    Many(Vec<String>),
}

fn in_key(key: &Value, allow_bool: bool) -> Option<InKey> {
    match key {
        Value::String(s) => Some(InKey::One(s.clone())),
        Value::Number(_) => Some(InKey::One(sprint(key))),
        Value::Bool(_) if allow_bool => Some(InKey::One(sprint(key))),
        Value::Array(items) => Some(InKey::Many(items.iter().map(sprint).collect())),
        _ => None,
    }
}

/// Legacy `In`: `Some(found)` or `None` for a value of the wrong type.
fn legacy_in(key: &Value, value: &Value) -> Option<bool> {
    match in_key(key, false)? {
        InKey::One(k) => match value {
            Value::Array(items) => Some(items.iter().any(|v| wildcard_match(&k, &sprint(v)))),
            Value::String(v) => {
                if wildcard_match(v, &k) {
                    return Some(true);
                }
                Some(json_string_array(v)?.contains(&k))
            }
            _ => None,
        },
        InKey::Many(keys) => {
            let values: Vec<String> = match value {
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<_>>()?,
                Value::String(v) => {
                    if keys.len() == 1 && keys[0] == *v {
                        return Some(true);
                    }
                    json_string_array(v)?
                }
                _ => return None,
            };
            Some(keys.iter().all(|k| values.contains(k)))
        }
    }
}

fn matches_either_way(a: &str, b: &str) -> bool {
    wildcard_match(a, b) || wildcard_match(b, a)
}

/// The value list of `AnyIn`/`AllIn` when the value is a string: a JSON array of strings,
/// or the string itself. `None` when it is JSON but not an array of strings.
fn string_value_list(v: &str) -> Option<Vec<String>> {
    if is_json(v) {
        json_string_array(v)
    } else {
        Some(vec![v.to_owned()])
    }
}

/// Whether one key is found in the value (`anyKeyExistsInArray`).
fn key_in_value(k: &str, value: &Value) -> Option<bool> {
    match value {
        Value::Array(items) => Some(items.iter().any(|v| matches_either_way(&sprint(v), k))),
        Value::String(v) => {
            if wildcard_match(v, k) {
                return Some(true);
            }
            if let Some(range) = parse_range(v) {
                return Some(range.matches(k));
            }
            Some(string_value_list(v)?.iter().any(|item| item == k))
        }
        _ => None,
    }
}

/// `AnyIn` (`negate == false`) and `AnyNotIn` (`negate == true`).
fn any_in(key: &Value, value: &Value, negate: bool) -> Option<bool> {
    quantified_in(key, value, Quantifier::Any, negate)
}

/// `AllIn` (`negate == false`) and `AllNotIn` (`negate == true`, none of the keys found).
fn all_in(key: &Value, value: &Value, negate: bool) -> Option<bool> {
    quantified_in(key, value, Quantifier::All, negate)
}

/// Whether a set operator asks about some key or every key.
#[derive(Debug, Clone, Copy)]
enum Quantifier {
    Any,
    All,
}

impl Quantifier {
    fn holds(self, keys: &[String], test: impl Fn(&String) -> bool) -> bool {
        match self {
            Quantifier::Any => keys.iter().any(test),
            Quantifier::All => keys.iter().all(test),
        }
    }
}

/// The `Any*`/`All*` family: for some (`Any`) or every (`All`) key, the key is in the
/// value (or, with `negate`, is not).
fn quantified_in(key: &Value, value: &Value, quantifier: Quantifier, negate: bool) -> Option<bool> {
    match in_key(key, true)? {
        InKey::One(k) => key_in_value(&k, value).map(|found| found != negate),
        InKey::Many(keys) => {
            let values: Vec<String> = match value {
                Value::Array(items) => items.iter().map(sprint).collect(),
                Value::String(v) => {
                    if keys.len() == 1 && keys[0] == *v {
                        return Some(!negate);
                    }
                    if let Some(range) = parse_range(v) {
                        return Some(quantifier.holds(&keys, |k| range.matches(k) != negate));
                    }
                    string_value_list(v)?
                }
                _ => return None,
            };
            let found = |k: &String| values.iter().any(|v| matches_either_way(k, v));
            Some(quantifier.holds(&keys, |k| found(k) != negate))
        }
    }
}

fn cmp_f64(a: f64, b: f64) -> Option<Ordering> {
    a.partial_cmp(&b)
}

/// Ordering of key against value for `GreaterThan` & co.
fn numeric_order(key: &Value, value: &Value) -> Option<Ordering> {
    match key {
        Value::Number(k) => number_key_order(k.as_f64()?, key, value),
        Value::String(k) => {
            if let Some((a, b)) = duration_pair(key, value) {
                return Some(a.cmp(&b));
            }
            if let Some(f) = parse_float(k) {
                return number_key_order(f, &Value::from(f), value);
            }
            if let Some(kq) = parse_quantity(k) {
                return match value {
                    Value::String(s) => Some(kq.nanos.cmp(&parse_quantity(s)?.nanos)),
                    Value::Number(n) => cmp_f64(kq.as_f64(), n.as_f64()?),
                    _ => None,
                };
            }
            if let Some(kv) = parse_version(k) {
                let vv = parse_version(value.as_str()?)?;
                return Some(kv.cmp(&vv));
            }
            None
        }
        _ => None,
    }
}

fn number_key_order(k: f64, key: &Value, value: &Value) -> Option<Ordering> {
    match value {
        Value::Number(v) => cmp_f64(k, v.as_f64()?),
        Value::String(s) => {
            if let Some((a, b)) = duration_pair(key, value) {
                return Some(a.cmp(&b));
            }
            cmp_f64(k, parse_float(s)?)
        }
        _ => None,
    }
}

/// Ordering for the deprecated `Duration*` operators: numbers are seconds, strings must be
/// Go durations.
fn duration_order(key: &Value, value: &Value) -> Option<Ordering> {
    let to_duration = |v: &Value| -> Option<i128> {
        match v {
            Value::Number(n) => number_as_duration(n.as_f64()?),
            Value::String(s) => parse_duration(s).map(i128::from),
            _ => None,
        }
    };
    Some(to_duration(key)?.cmp(&to_duration(value)?))
}
