//! Kyverno's custom JMESPath functions, registered on top of the JMESPath built-ins.
//!
//! Implemented: compare, equal_fold, replace, replace_all, to_upper, to_lower, trim,
//! trim_prefix, split, regex_replace_all, regex_replace_all_literal, regex_match,
//! pattern_match, label_match, to_boolean, add, subtract, multiply, divide, modulo, round,
//! sum (numbers, quantities or durations), base64_decode, base64_encode,
//! path_canonicalize, truncate, semver_compare, parse_json, parse_yaml, lookup, items,
//! object_from_lists, time_now, time_now_utc, time_add, time_parse, time_since, time_utc,
//! time_diff, time_before, time_after, time_between, time_truncate.
//! Registered but answering "not supported": x509_decode, random, time_to_cron.

use std::cmp::Ordering;

use jmespath::functions::{ArgumentType, CustomFunction, Signature};
use jmespath::{ErrorReason, JmespathError, Rcvar, Runtime, Variable};
use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

use super::duration::{Timestamp, format_duration, parse_duration, parse_layout, parse_rfc3339};
use super::operators::sprint;
use super::quantity::{
    Format, Quantity, format_quantity, parse_quantity, parse_version, range_matches,
};
use crate::pattern::wildcard_match;

/// Largest string a function builds (guards against memory blow-ups from crafted input).
const MAX_OUTPUT: usize = 16 * 1024 * 1024;

type FnResult = Result<Value, String>;

/// A runtime with the JMESPath built-ins and Kyverno's functions.
pub(crate) fn runtime() -> Runtime {
    use ArgumentType::{Any, Array, Number, Object, String as Str};
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    let str_or_num = || ArgumentType::Union(vec![Str, Number]);
    let obj_or_arr = || ArgumentType::Union(vec![Object, Array]);

    let mut reg = |name: &'static str, inputs: Vec<ArgumentType>, f: fn(&[Value]) -> FnResult| {
        register(&mut rt, name, inputs, f);
    };
    reg("compare", vec![Str, Str], |a| {
        let ord = s(&a[0]).cmp(s(&a[1]));
        Ok(Value::from(match ord {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }))
    });
    reg("equal_fold", vec![Str, Str], |a| {
        Ok(Value::Bool(
            s(&a[0]).to_lowercase() == s(&a[1]).to_lowercase(),
        ))
    });
    reg("replace", vec![Str, Str, Str, Number], |a| {
        let n = a[3].as_f64().unwrap_or(-1.0);
        let limit = if n < 0.0 { None } else { Some(n as usize) };
        replace(s(&a[0]), s(&a[1]), s(&a[2]), limit).map(Value::String)
    });
    reg("replace_all", vec![Str, Str, Str], |a| {
        replace(s(&a[0]), s(&a[1]), s(&a[2]), None).map(Value::String)
    });
    reg("to_upper", vec![Str], |a| {
        Ok(Value::String(s(&a[0]).to_uppercase()))
    });
    reg("to_lower", vec![Str], |a| {
        Ok(Value::String(s(&a[0]).to_lowercase()))
    });
    reg("trim", vec![Str, Str], |a| {
        let cutset: Vec<char> = s(&a[1]).chars().collect();
        Ok(Value::String(
            s(&a[0]).trim_matches(cutset.as_slice()).to_owned(),
        ))
    });
    reg("trim_prefix", vec![Str, Str], |a| {
        let text = s(&a[0]);
        Ok(Value::String(
            text.strip_prefix(s(&a[1])).unwrap_or(text).to_owned(),
        ))
    });
    reg("split", vec![Str, Str], |a| {
        let (text, sep) = (s(&a[0]), s(&a[1]));
        let parts: Vec<Value> = if sep.is_empty() {
            text.chars().map(|c| Value::String(c.to_string())).collect()
        } else {
            text.split(sep)
                .map(|p| Value::String(p.to_owned()))
                .collect()
        };
        Ok(Value::Array(parts))
    });
    reg(
        "regex_replace_all",
        vec![Str, str_or_num(), str_or_num()],
        |a| {
            let re = compile_regex(s(&a[0]))?;
            let out = re
                .replace_all(&sprint(&a[1]), sprint(&a[2]).as_str())
                .into_owned();
            checked(out)
        },
    );
    reg(
        "regex_replace_all_literal",
        vec![Str, str_or_num(), str_or_num()],
        |a| {
            let re = compile_regex(s(&a[0]))?;
            let out = re
                .replace_all(&sprint(&a[1]), regex::NoExpand(&sprint(&a[2])))
                .into_owned();
            checked(out)
        },
    );
    reg("regex_match", vec![Str, str_or_num()], |a| {
        Ok(Value::Bool(
            compile_regex(s(&a[0]))?.is_match(&sprint(&a[1])),
        ))
    });
    reg("pattern_match", vec![Str, str_or_num()], |a| {
        Ok(Value::Bool(wildcard_match(s(&a[0]), &sprint(&a[1]))))
    });
    reg("label_match", vec![Object, Object], |a| {
        let (Some(selector), Some(labels)) = (a[0].as_object(), a[1].as_object()) else {
            return Err("expected two objects".to_owned());
        };
        Ok(Value::Bool(
            selector.iter().all(|(k, v)| labels.get(k) == Some(v)),
        ))
    });
    reg("to_boolean", vec![Str], |a| {
        match s(&a[0]).to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            other => Err(format!("cannot convert {other:?} to a boolean")),
        }
    });
    reg("add", vec![Any, Any], |a| arithmetic(Op::Add, &a[0], &a[1]));
    reg("subtract", vec![Any, Any], |a| {
        arithmetic(Op::Subtract, &a[0], &a[1])
    });
    reg("multiply", vec![Any, Any], |a| {
        arithmetic(Op::Multiply, &a[0], &a[1])
    });
    reg("divide", vec![Any, Any], |a| {
        arithmetic(Op::Divide, &a[0], &a[1])
    });
    reg("modulo", vec![Any, Any], |a| {
        arithmetic(Op::Modulo, &a[0], &a[1])
    });
    reg("round", vec![Number, Number], |a| {
        let value = a[0].as_f64().unwrap_or(0.0);
        let digits = a[1].as_f64().unwrap_or(0.0);
        if digits < 0.0 || digits.fract() != 0.0 || digits > 15.0 {
            return Err("digits must be an integer between 0 and 15".to_owned());
        }
        let scale = 10f64.powi(digits as i32);
        Ok(number((value * scale).round() / scale))
    });
    reg("sum", vec![Array], |a| {
        let items = a[0].as_array().map(Vec::as_slice).unwrap_or_default();
        let Some((first, rest)) = items.split_first() else {
            return Ok(Value::from(0));
        };
        let mut total = first.clone();
        candidate(&total)?;
        for item in rest {
            total = arithmetic(Op::Add, &total, item)?;
        }
        Ok(total)
    });
    reg("base64_decode", vec![Str], |a| {
        let bytes = base64_decode(s(&a[0]))?;
        String::from_utf8(bytes)
            .map(Value::String)
            .map_err(|_| "decoded bytes are not UTF-8".to_owned())
    });
    reg("base64_encode", vec![Str], |a| {
        checked(base64_encode(s(&a[0]).as_bytes()))
    });
    reg("path_canonicalize", vec![Str], |a| {
        Ok(Value::String(clean_path(s(&a[0]))))
    });
    reg("truncate", vec![Str, Number], |a| {
        let text = s(&a[0]);
        let length = a[1].as_f64().unwrap_or(0.0);
        if length < 0.0 {
            return Err("length must be non-negative".to_owned());
        }
        let mut end = (length as usize).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Ok(Value::String(text[..end].to_owned()))
    });
    reg("semver_compare", vec![Str, Str], |a| {
        let version = parse_version(s(&a[0]))
            .ok_or_else(|| format!("invalid semantic version {:?}", s(&a[0])))?;
        range_matches(s(&a[1]), &version)
            .map(Value::Bool)
            .ok_or_else(|| format!("invalid semantic version range {:?}", s(&a[1])))
    });
    reg("parse_json", vec![Str], |a| {
        serde_json::from_str(s(&a[0])).map_err(|e| format!("invalid JSON: {e}"))
    });
    reg("parse_yaml", vec![Str], |a| {
        serde_saphyr::from_str::<Value>(s(&a[0])).map_err(|e| format!("invalid YAML: {e}"))
    });
    reg("lookup", vec![obj_or_arr(), str_or_num()], |a| {
        match (&a[0], &a[1]) {
            (Value::Object(map), Value::String(key)) => {
                Ok(map.get(key).cloned().unwrap_or(Value::Null))
            }
            (Value::Array(items), Value::Number(n)) => {
                let idx = n.as_f64().unwrap_or(-1.0);
                if idx.fract() != 0.0 {
                    return Err("index must be an integer".to_owned());
                }
                Ok(if idx >= 0.0 {
                    items.get(idx as usize).cloned().unwrap_or(Value::Null)
                } else {
                    Value::Null
                })
            }
            _ => Err("expected (object, string) or (array, number)".to_owned()),
        }
    });
    reg("items", vec![obj_or_arr(), Str, Str], |a| {
        let (key_name, value_name) = (s(&a[1]), s(&a[2]));
        let entry = |k: Value, v: &Value| {
            let mut m = Map::new();
            m.insert(key_name.to_owned(), k);
            m.insert(value_name.to_owned(), v.clone());
            Value::Object(m)
        };
        Ok(Value::Array(match &a[0] {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                keys.into_iter()
                    .filter_map(|k| map.get(k).map(|v| entry(Value::String(k.clone()), v)))
                    .collect()
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| entry(Value::from(i), v))
                .collect(),
            _ => Vec::new(),
        }))
    });
    reg("object_from_lists", vec![Array, Array], |a| {
        let keys = a[0].as_array().map(Vec::as_slice).unwrap_or_default();
        let values = a[1].as_array().map(Vec::as_slice).unwrap_or_default();
        let mut out = Map::new();
        for (i, key) in keys.iter().enumerate() {
            let key = key.as_str().ok_or("keys must be strings")?;
            out.insert(
                key.to_owned(),
                values.get(i).cloned().unwrap_or(Value::Null),
            );
        }
        Ok(Value::Object(out))
    });
    reg("time_now", vec![], |_| {
        Ok(Value::String(Timestamp::now().to_rfc3339()))
    });
    reg("time_now_utc", vec![], |_| {
        Ok(Value::String(Timestamp::now().to_rfc3339()))
    });
    reg("time_add", vec![Str, Str], |a| {
        let t = rfc3339(&a[0])?;
        let d = duration(&a[1])?;
        t.add(d)
            .map(|t| Value::String(t.to_rfc3339()))
            .ok_or_else(|| "time out of range".to_owned())
    });
    reg("time_parse", vec![Str, Str], |a| {
        Ok(Value::String(
            parse_with_layout(s(&a[0]), s(&a[1]))?.to_rfc3339(),
        ))
    });
    reg("time_since", vec![Str, Str, Str], |a| {
        let layout = s(&a[0]);
        let start = parse_with_layout(layout, s(&a[1]))?;
        let end = if s(&a[2]).is_empty() {
            Timestamp::now()
        } else {
            parse_with_layout(layout, s(&a[2]))?
        };
        Ok(Value::String(difference(start, end)))
    });
    reg("time_utc", vec![Str], |a| {
        Ok(Value::String(rfc3339(&a[0])?.utc().to_rfc3339()))
    });
    reg("time_diff", vec![Str, Str], |a| {
        Ok(Value::String(difference(rfc3339(&a[0])?, rfc3339(&a[1])?)))
    });
    reg("time_before", vec![Str, Str], |a| {
        Ok(Value::Bool(
            rfc3339(&a[0])?.unix_nanos() < rfc3339(&a[1])?.unix_nanos(),
        ))
    });
    reg("time_after", vec![Str, Str], |a| {
        Ok(Value::Bool(
            rfc3339(&a[0])?.unix_nanos() > rfc3339(&a[1])?.unix_nanos(),
        ))
    });
    reg("time_between", vec![Str, Str, Str], |a| {
        let t = rfc3339(&a[0])?.unix_nanos();
        Ok(Value::Bool(
            t > rfc3339(&a[1])?.unix_nanos() && t < rfc3339(&a[2])?.unix_nanos(),
        ))
    });
    reg("time_truncate", vec![Str, Str], |a| {
        let t = rfc3339(&a[0])?;
        let d = duration(&a[1])?;
        t.truncate(d)
            .map(|t| Value::String(t.to_rfc3339()))
            .ok_or_else(|| "time out of range".to_owned())
    });
    reg("x509_decode", vec![Str], |_| {
        Err("x509_decode is not supported by imagegate".to_owned())
    });
    reg("random", vec![Str], |_| {
        Err("random is not supported by imagegate".to_owned())
    });
    reg("time_to_cron", vec![Str], |_| {
        Err("time_to_cron is not supported by imagegate".to_owned())
    });
    rt
}

fn register(
    rt: &mut Runtime,
    name: &'static str,
    inputs: Vec<ArgumentType>,
    f: fn(&[Value]) -> FnResult,
) {
    let function = CustomFunction::new(
        Signature::new(inputs, None),
        Box::new(move |args: &[Rcvar], ctx: &mut jmespath::Context<'_>| {
            let values: Vec<Value> = args.iter().map(|a| variable_to_json(a)).collect();
            let fail = |message: String| {
                JmespathError::new(
                    ctx.expression,
                    ctx.offset,
                    ErrorReason::Parse(format!("{name}(): {message}")),
                )
            };
            let result = f(&values).map_err(fail)?;
            Variable::try_from(result).map(Rcvar::new)
        }),
    );
    rt.register_function(name, Box::new(function));
}

/// Converts a JMESPath variable to JSON, with integral numbers written as integers.
pub(crate) fn variable_to_json(var: &Variable) -> Value {
    match var {
        Variable::Null => Value::Null,
        Variable::Bool(b) => Value::Bool(*b),
        Variable::Number(n) => normalize_number(n),
        Variable::String(s) => Value::String(s.clone()),
        Variable::Array(items) => Value::Array(items.iter().map(|i| variable_to_json(i)).collect()),
        Variable::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), variable_to_json(v)))
                .collect(),
        ),
        Variable::Expref(_) => Value::Null,
    }
}

fn normalize_number(n: &serde_json::Number) -> Value {
    if n.is_f64()
        && let Some(f) = n.as_f64()
        && f.fract() == 0.0
        && f.abs() < 9.0e15
    {
        return Value::from(f as i64);
    }
    Value::Number(n.clone())
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// The string of an argument the signature already checked to be a string.
fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn checked(out: String) -> FnResult {
    if out.len() > MAX_OUTPUT {
        return Err(format!("result larger than {MAX_OUTPUT} bytes"));
    }
    Ok(Value::String(out))
}

/// Go's `strings.Replace` (`limit == None` replaces all; empty `old` inserts between runes).
fn replace(text: &str, old: &str, new: &str, limit: Option<usize>) -> Result<String, String> {
    let max = limit.unwrap_or(usize::MAX);
    let mut out = String::new();
    if old.is_empty() {
        let mut done = 0;
        if done < max {
            out.push_str(new);
            done += 1;
        }
        for c in text.chars() {
            out.push(c);
            if done < max {
                out.push_str(new);
                done += 1;
            }
            if out.len() > MAX_OUTPUT {
                return Err(format!("result larger than {MAX_OUTPUT} bytes"));
            }
        }
        return Ok(out);
    }
    let mut rest = text;
    let mut done = 0;
    while done < max {
        let Some(pos) = rest.find(old) else { break };
        out.push_str(&rest[..pos]);
        out.push_str(new);
        rest = &rest[pos + old.len()..];
        done += 1;
        if out.len() > MAX_OUTPUT {
            return Err(format!("result larger than {MAX_OUTPUT} bytes"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))
}

/// Operands of Kyverno's arithmetic functions.
#[derive(Debug, Clone, Copy)]
enum Operand {
    Scalar(f64),
    Quantity(Quantity),
    Duration(i64),
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
}

/// What a single argument can be read as: a number, or a string that is a quantity
/// and/or a duration (`"30m"` is both: 30 milli-units or 30 minutes).
struct Candidate {
    scalar: Option<f64>,
    quantity: Option<Quantity>,
    duration: Option<i64>,
}

fn candidate(v: &Value) -> Result<Candidate, String> {
    let c = match v {
        Value::Number(n) => Candidate {
            scalar: n.as_f64(),
            quantity: None,
            duration: None,
        },
        Value::String(s) => Candidate {
            scalar: None,
            quantity: parse_quantity(s),
            duration: parse_duration(s),
        },
        other => return Err(format!("invalid operand of type {}", type_name(other))),
    };
    if c.scalar.is_none() && c.quantity.is_none() && c.duration.is_none() {
        return Err(format!(
            "{} is neither a number, a quantity nor a duration",
            sprint(v)
        ));
    }
    Ok(c)
}

impl Candidate {
    fn is_duration_only(&self) -> bool {
        self.duration.is_some() && self.quantity.is_none()
    }

    /// Kyverno's `resolveOperand`: an ambiguous string is a duration when the other
    /// operand is unambiguously one, else a quantity.
    fn resolve(&self, duration_context: bool) -> Option<Operand> {
        if let Some(f) = self.scalar {
            return Some(Operand::Scalar(f));
        }
        match (self.quantity, self.duration) {
            (Some(_), Some(d)) if duration_context => Some(Operand::Duration(d)),
            (Some(q), _) => Some(Operand::Quantity(q)),
            (None, Some(d)) => Some(Operand::Duration(d)),
            (None, None) => None,
        }
    }
}

fn operands(a: &Value, b: &Value) -> Result<(Operand, Operand), String> {
    let (x, y) = (candidate(a)?, candidate(b)?);
    let duration_context = x.is_duration_only() || y.is_duration_only();
    match (x.resolve(duration_context), y.resolve(duration_context)) {
        (Some(p), Some(q)) => Ok((p, q)),
        _ => Err("invalid operands".to_owned()),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn duration_value(nanos: f64) -> FnResult {
    if !nanos.is_finite() || nanos.abs() >= i64::MAX as f64 {
        return Err("duration out of range".to_owned());
    }
    Ok(Value::String(format_duration(nanos as i64)))
}

fn quantity_value(nanos: f64, format: Format) -> FnResult {
    if !nanos.is_finite() || nanos.abs() >= 1e36 {
        return Err("quantity out of range".to_owned());
    }
    Ok(Value::String(format_quantity(
        nanos.round() as i128,
        format,
    )))
}

fn quantity_sum(nanos: Option<i128>, format: Format) -> FnResult {
    nanos
        .map(|n| Value::String(format_quantity(n, format)))
        .ok_or_else(|| "quantity out of range".to_owned())
}

fn arithmetic(op: Op, a: &Value, b: &Value) -> FnResult {
    use Operand::{Duration, Quantity as Q, Scalar};
    let (x, y) = operands(a, b)?;
    let name = match op {
        Op::Add => "add",
        Op::Subtract => "subtract",
        Op::Multiply => "multiply",
        Op::Divide => "divide",
        Op::Modulo => "modulo",
    };
    let mismatch = || -> FnResult {
        Err(format!(
            "types mismatch: cannot {name} {} and {}",
            sprint(a),
            sprint(b)
        ))
    };
    let zero = || -> FnResult { Err("division by zero".to_owned()) };
    match (op, x, y) {
        (Op::Add, Scalar(p), Scalar(q)) => Ok(number(p + q)),
        (Op::Subtract, Scalar(p), Scalar(q)) => Ok(number(p - q)),
        (Op::Multiply, Scalar(p), Scalar(q)) => Ok(number(p * q)),
        (Op::Divide, Scalar(_), Scalar(0.0)) => zero(),
        (Op::Divide, Scalar(p), Scalar(q)) => Ok(number(p / q)),
        (Op::Modulo, Scalar(p), Scalar(q)) => {
            if p.fract() != 0.0 || q.fract() != 0.0 {
                return Err("modulo needs integers".to_owned());
            }
            if q == 0.0 {
                return zero();
            }
            Ok(number(p % q))
        }
        (Op::Add, Q(p), Q(q)) => quantity_sum(p.nanos.checked_add(q.nanos), p.format),
        (Op::Subtract, Q(p), Q(q)) => quantity_sum(p.nanos.checked_sub(q.nanos), p.format),
        (Op::Multiply, Q(p), Scalar(q)) | (Op::Multiply, Scalar(q), Q(p)) => {
            quantity_value(p.nanos as f64 * q, p.format)
        }
        (Op::Divide, Q(_), Q(q)) if q.nanos == 0 => zero(),
        (Op::Divide, Q(p), Q(q)) => Ok(number(p.nanos as f64 / q.nanos as f64)),
        (Op::Divide, Q(_), Scalar(0.0)) => zero(),
        (Op::Divide, Q(p), Scalar(q)) => quantity_value(p.nanos as f64 / q, p.format),
        (Op::Modulo, Q(_), Q(q)) if q.nanos == 0 => zero(),
        (Op::Modulo, Q(p), Q(q)) => quantity_sum(Some(p.nanos % q.nanos), p.format),
        (Op::Add, Duration(p), Duration(q)) => duration_value(p as f64 + q as f64),
        (Op::Subtract, Duration(p), Duration(q)) => duration_value(p as f64 - q as f64),
        (Op::Multiply, Duration(p), Scalar(q)) | (Op::Multiply, Scalar(q), Duration(p)) => {
            duration_value(p as f64 * q)
        }
        (Op::Divide, Duration(_), Duration(0)) => zero(),
        (Op::Divide, Duration(p), Duration(q)) => Ok(number(p as f64 / q as f64)),
        (Op::Divide, Duration(_), Scalar(0.0)) => zero(),
        (Op::Divide, Duration(p), Scalar(q)) => duration_value(p as f64 / q),
        (Op::Modulo, Duration(_), Duration(0)) => zero(),
        (Op::Modulo, Duration(p), Duration(q)) => duration_value((p % q) as f64),
        _ => mismatch(),
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding (Go's `StdEncoding`; CR and LF are ignored).
fn base64_decode(input: &str) -> Result<Vec<u8>, String> {
    let clean: Vec<u8> = input
        .bytes()
        .filter(|b| *b != b'\n' && *b != b'\r')
        .collect();
    if !clean.len().is_multiple_of(4) {
        return Err("illegal base64 data: length is not a multiple of 4".to_owned());
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let chunks = clean.chunks(4);
    let count = chunks.len();
    for (index, chunk) in clean.chunks(4).enumerate() {
        let mut n: u32 = 0;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if i >= 2 && index + 1 == count => {
                    pad += 1;
                    0
                }
                _ => {
                    return Err(format!(
                        "illegal base64 data at input byte {}",
                        index * 4 + i
                    ));
                }
            };
            if pad > 0 && c != b'=' {
                return Err(format!(
                    "illegal base64 data at input byte {}",
                    index * 4 + i
                ));
            }
            n = (n << 6) | u32::from(v);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

/// Go's `filepath.Clean` for slash-separated paths.
fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

fn rfc3339(v: &Value) -> Result<Timestamp, String> {
    parse_rfc3339(s(v)).ok_or_else(|| format!("{:?} is not an RFC 3339 time", s(v)))
}

fn duration(v: &Value) -> Result<i64, String> {
    parse_duration(s(v)).ok_or_else(|| format!("{:?} is not a duration", s(v)))
}

/// `time_parse` layouts: a Go layout, `""` for RFC 3339, or digits for Unix seconds.
fn parse_with_layout(layout: &str, input: &str) -> Result<Timestamp, String> {
    if layout.is_empty() {
        return parse_rfc3339(input).ok_or_else(|| format!("{input:?} is not an RFC 3339 time"));
    }
    if layout.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = input
            .parse()
            .map_err(|_| format!("{input:?} is not a Unix timestamp"))?;
        return Timestamp::from_unix_nanos(i128::from(seconds) * 1_000_000_000, 0)
            .ok_or_else(|| "time out of range".to_owned());
    }
    parse_layout(layout, input).ok_or_else(|| format!("{input:?} does not match layout {layout:?}"))
}

/// `end.Sub(start)` as a Go duration string (saturating like Go).
fn difference(start: Timestamp, end: Timestamp) -> String {
    let diff = end.unix_nanos() - start.unix_nanos();
    let clamped = diff.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    format_duration(i64::try_from(clamped).unwrap_or_default())
}
