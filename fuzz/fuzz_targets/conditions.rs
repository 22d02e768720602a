//! JMESPath conditions: `expression\noperator\nJSON`. The expression is searched over the
//! JSON and evaluated as a condition key `{{ expression }}` against the JSON as value.
#![no_main]

use imagegate_fuzz::{split_line, text};
use imagegate_policy::conditions::{Context, evaluate_condition, jmespath_search, substitute};
use imagegate_policy::model::Condition;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (expression, rest) = split_line(data);
    let (operator, json) = split_line(rest);
    let expression = text(expression);
    let data: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
    let _ = jmespath_search(&expression, &data);
    let ctx = Context::new(data.clone());
    let key = Value::String(format!("{{{{{expression}}}}}"));
    let _ = substitute(&key, &ctx);
    let condition = Condition {
        key,
        operator: text(operator).into_owned(),
        value: data,
        message: None,
    };
    let _ = evaluate_condition(&condition, &ctx);
});
