//! Conditions: Kyverno's operators (table-driven), custom JMESPath functions, variable
//! substitution, any/all evaluation and the recorded Kyverno attestation case.

use imagegate_policy::conditions::{
    ConditionError, Context, VariableError, evaluate, evaluate_condition, evaluate_preconditions,
    jmespath_search, substitute,
};
use imagegate_policy::model::{AnyAllConditions, Condition};
use serde_json::{Value, json};

fn condition(key: Value, operator: &str, value: Value) -> Condition {
    Condition {
        key,
        operator: operator.to_owned(),
        value,
        message: None,
    }
}

fn empty() -> Context {
    Context::new(json!({}))
}

/// `(key, operator, value, expected)`, keys and values as they are after substitution.
fn operator_rows() -> Vec<(Value, &'static str, Value, bool)> {
    vec![
        // Equals / NotEquals: strings, wildcards in the value, numbers, booleans, maps.
        (json!("main"), "Equals", json!("main"), true),
        (json!("main"), "Equals", json!("prod"), false),
        (json!("main"), "equals", json!("main"), true),
        (json!("main"), "Equal", json!("main"), true),
        (json!("ghcr.io/org/app"), "Equals", json!("ghcr.io/*"), true),
        (
            json!("ghcr.io/*"),
            "Equals",
            json!("ghcr.io/org/app"),
            false,
        ),
        (json!("v1"), "Equals", json!("v?"), true),
        (json!("v10"), "Equals", json!("v?"), false),
        (json!(1), "Equals", json!(1), true),
        (json!(1), "Equals", json!(1.0), true),
        (json!(1), "Equals", json!("1"), true),
        (json!(1.5), "Equals", json!("1.5"), true),
        (json!("1"), "Equals", json!(1), false),
        (json!(true), "Equals", json!(true), true),
        (json!(true), "Equals", json!("true"), false),
        (json!("1Gi"), "Equals", json!("1024Mi"), true),
        (json!("0.1"), "Equals", json!("100m"), true),
        (json!("1h"), "Equals", json!("60m"), true),
        (json!("1h"), "Equals", json!(3600), true),
        (
            json!({"a": 1, "b": [1, 2]}),
            "Equals",
            json!({"b": [1, 2], "a": 1}),
            true,
        ),
        (json!({"a": 1}), "Equals", json!({"a": 2}), false),
        (json!([1, 2]), "Equals", json!([1, 2]), true),
        (json!([1, 2]), "Equals", json!([2, 1]), false),
        (json!(null), "Equals", json!(null), false),
        (json!("main"), "NotEquals", json!("prod"), true),
        (json!("main"), "NotEquals", json!("ma*"), false),
        (json!("main"), "NotEqual", json!("main"), false),
        // In (legacy) / NotIn.
        (json!("a"), "In", json!(["a", "b"]), true),
        (json!("c"), "In", json!(["a", "b"]), false),
        (json!("a"), "In", json!("[\"a\",\"b\"]"), true),
        (json!(["a", "b"]), "In", json!(["a", "b", "c"]), true),
        (json!(["a", "x"]), "In", json!(["a", "b", "c"]), false),
        (json!("a"), "In", json!(5), false),
        (json!("c"), "NotIn", json!(["a", "b"]), true),
        (json!("a"), "NotIn", json!(["a", "b"]), false),
        (json!(["a", "x"]), "NotIn", json!(["a", "b"]), true),
        (json!("a"), "NotIn", json!(5), false),
        // AnyIn / AnyNotIn.
        (json!("a"), "AnyIn", json!(["a", "b"]), true),
        (json!(["x", "b"]), "AnyIn", json!(["a", "b"]), true),
        (json!(["x", "y"]), "AnyIn", json!(["a", "b"]), false),
        (json!(["nginx:1.2"]), "AnyIn", json!(["nginx:*"]), true),
        (json!(["nginx:*"]), "AnyIn", json!(["nginx:1.2"]), true),
        (json!(8080), "AnyIn", json!([8080, 443]), true),
        (json!([80, 8080]), "AnyIn", json!("8000-9000"), true),
        (json!([80, 90]), "AnyIn", json!("8000-9000"), false),
        (json!("a"), "AnyIn", json!("a"), true),
        (json!(["a"]), "AnyIn", json!("a"), true),
        (json!(["a", "b"]), "AnyIn", json!("[\"b\"]"), true),
        (json!(["a", "b"]), "AnyNotIn", json!(["a"]), true),
        (json!(["a", "b"]), "AnyNotIn", json!(["a", "b", "c"]), false),
        (json!("a"), "AnyNotIn", json!(["b"]), true),
        (json!([80, 9500]), "AnyNotIn", json!("8000-9000"), true),
        (json!([8080, 8500]), "AnyNotIn", json!("8000-9000"), false),
        // AllIn / AllNotIn.
        (json!(["a", "b"]), "AllIn", json!(["a", "b", "c"]), true),
        (json!(["a", "d"]), "AllIn", json!(["a", "b", "c"]), false),
        (json!(["app-1", "app-2"]), "AllIn", json!(["app-*"]), true),
        (json!("a"), "AllIn", json!(["a"]), true),
        (json!([8080, 8500]), "AllIn", json!("8000-9000"), true),
        (json!([8080, 9500]), "AllIn", json!("8000-9000"), false),
        (json!(["a"]), "AllIn", json!("a"), true),
        (json!(["x", "y"]), "AllNotIn", json!(["a", "b"]), true),
        (json!(["x", "a"]), "AllNotIn", json!(["a", "b"]), false),
        (json!("x"), "AllNotIn", json!(["a", "b"]), true),
        (json!([1, 2]), "AllNotIn", json!("5-10"), true),
        (json!({"a": 1}), "AllIn", json!(["a"]), false),
        // Numeric operators: numbers, numbers in strings, quantities, durations, versions.
        (json!(5), "GreaterThan", json!(3), true),
        (json!(3), "GreaterThan", json!(3), false),
        (json!(3), "GreaterThanOrEquals", json!(3), true),
        (json!(2), "LessThan", json!(3), true),
        (json!(3), "LessThanOrEquals", json!(3), true),
        (json!(4), "LessThanOrEquals", json!(3), false),
        (json!("10"), "GreaterThan", json!(5), true),
        (json!(10), "GreaterThan", json!("5"), true),
        (json!("2Gi"), "GreaterThan", json!("1024Mi"), true),
        (json!("500m"), "LessThan", json!("1"), true),
        (json!("1h"), "GreaterThan", json!("30m"), true),
        (json!("30m"), "GreaterThan", json!("1h"), false),
        (json!("90s"), "GreaterThan", json!(60), true),
        (json!(30), "LessThan", json!("1m"), true),
        (json!("1.10.0"), "GreaterThan", json!("1.9.3"), true),
        (json!("1.2.0-rc.1"), "LessThan", json!("1.2.0"), true),
        (json!("abc"), "GreaterThan", json!(1), false),
        (json!(true), "GreaterThan", json!(1), false),
        (json!("greater"), "greaterthan", json!("less"), false),
        // Deprecated Duration* operators: numbers are seconds.
        (json!("1h"), "DurationGreaterThan", json!("30m"), true),
        (
            json!("1h"),
            "DurationGreaterThanOrEquals",
            json!(3600),
            true,
        ),
        (json!(59), "DurationLessThan", json!("1m"), true),
        (json!("2m"), "DurationLessThanOrEquals", json!("120s"), true),
        (json!("soon"), "DurationLessThan", json!("1m"), false),
    ]
}

#[test]
fn operators_follow_kyverno() {
    let rows = operator_rows();
    assert!(rows.len() >= 60, "only {} rows", rows.len());
    let ctx = empty();
    let mut failures = Vec::new();
    for (key, operator, value, expected) in rows {
        let got = evaluate_condition(&condition(key.clone(), operator, value.clone()), &ctx)
            .expect("evaluates");
        if got != expected {
            failures.push(format!(
                "{key} {operator} {value}: got {got}, want {expected}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_operator_is_an_error_naming_it() {
    let err = evaluate_condition(&condition(json!("a"), "Matches", json!("a")), &empty())
        .expect_err("unknown operator");
    assert_eq!(
        err,
        ConditionError::UnknownOperator {
            operator: "Matches".into()
        }
    );
    assert!(err.to_string().contains("Matches"));
}

fn ctx() -> Context {
    Context::new(json!({
        "request": {
            "operation": "CREATE",
            "object": {
                "metadata": {"name": "pod", "labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "c1", "image": "nginx:1.25"}, {"name": "c2", "image": "redis:7"}]}
            }
        },
        "image": {"registry": "ghcr.io", "path": "org/app", "tag": "v1"},
        "count": 3,
        "nothing": null,
    }))
}

#[test]
fn substitution_keeps_types_for_whole_string_variables() {
    let c = ctx();
    assert_eq!(substitute(&json!("{{ count }}"), &c).unwrap(), json!(3));
    assert_eq!(
        substitute(&json!("{{request.object.metadata.labels}}"), &c).unwrap(),
        json!({"app": "web", "tier": "front"})
    );
    assert_eq!(
        substitute(&json!("{{ request.object.spec.containers[].name }}"), &c).unwrap(),
        json!(["c1", "c2"])
    );
    assert_eq!(
        substitute(&json!("{{ nothing }}"), &c).unwrap(),
        json!(null)
    );
}

#[test]
fn substitution_into_strings_and_nested_values() {
    let c = ctx();
    assert_eq!(
        substitute(
            &json!("{{ image.registry }}/{{ image.path }}:{{image.tag}}"),
            &c
        )
        .unwrap(),
        json!("ghcr.io/org/app:v1")
    );
    assert_eq!(
        substitute(
            &json!("n={{ count }} l={{ request.object.metadata.labels }}"),
            &c
        )
        .unwrap(),
        json!("n=3 l={\"app\":\"web\",\"tier\":\"front\"}")
    );
    assert_eq!(
        substitute(
            &json!({"a": ["{{ image.tag }}", 1, {"{{ image.tag }}": "x"}]}),
            &c
        )
        .unwrap(),
        json!({"a": ["v1", 1, {"v1": "x"}]})
    );
    // Multi-select hash inside a variable (one level of braces).
    assert_eq!(
        substitute(&json!("{{ {t: image.tag} }}"), &c).unwrap(),
        json!({"t": "v1"})
    );
    // Nested variable: the inner one is resolved first.
    assert_eq!(
        substitute(
            &json!("{{ request.object.metadata.labels.{{ 'app' }} }}"),
            &c
        )
        .unwrap(),
        json!("web")
    );
}

#[test]
fn escaped_variables_are_left_alone() {
    let c = ctx();
    assert_eq!(
        substitute(&json!("\\{{ image.tag }} is {{ image.tag }}"), &c).unwrap(),
        json!("{{ image.tag }} is v1")
    );
}

#[test]
fn substituted_text_is_not_evaluated_again() {
    let c = Context::new(json!({"evil": "{{ secret }}", "secret": "s3cr3t"}));
    assert_eq!(
        substitute(&json!("value: {{ evil }}"), &c).unwrap(),
        json!("value: {{ secret }}")
    );
}

#[test]
fn unresolved_variables() {
    let c = ctx();
    let err = substitute(&json!("{{ image.missing }}"), &c).expect_err("missing key");
    assert_eq!(
        err,
        VariableError::NotResolved {
            variable: "image.missing".into()
        }
    );
    assert!(err.to_string().contains("Unknown key"));
    // A default with `||` resolves.
    assert_eq!(
        substitute(&json!("{{ image.missing || 'none' }}"), &c).unwrap(),
        json!("none")
    );
    // Conditions resolve a missing path to "" (Kyverno's preconditions resolver).
    assert!(
        evaluate_condition(
            &condition(json!("{{ image.missing }}"), "Equals", json!("")),
            &c
        )
        .unwrap()
    );
    // Malformed JMESPath is an error, never a panic.
    let err = substitute(&json!("{{ image.[ }}"), &c).expect_err("malformed");
    assert!(
        matches!(err, VariableError::InvalidExpression { .. }),
        "{err:?}"
    );
    let err = evaluate_condition(
        &condition(json!("{{ to_upper(`1`) }}"), "Equals", json!("1")),
        &c,
    )
    .expect_err("wrong argument type");
    assert!(
        matches!(err, ConditionError::Key(VariableError::QueryFailed { .. })),
        "{err:?}"
    );
}

#[test]
fn delete_requests_read_the_old_object() {
    let c = Context::new(json!({
        "request": {"operation": "DELETE", "oldObject": {"metadata": {"name": "old"}}}
    }));
    assert_eq!(
        substitute(&json!("{{ request.object.metadata.name }}"), &c).unwrap(),
        json!("old")
    );
}

#[test]
fn context_with_entries_merges_at_root() {
    let c = ctx();
    let mut extra = serde_json::Map::new();
    extra.insert("repo".into(), json!({"branch": "main"}));
    extra.insert("count".into(), json!(4));
    let merged = c.with_entries(extra);
    assert_eq!(
        substitute(&json!("{{ repo.branch }}"), &merged).unwrap(),
        json!("main")
    );
    assert_eq!(
        substitute(&json!("{{ count }}"), &merged).unwrap(),
        json!(4)
    );
    assert_eq!(
        substitute(&json!("{{ image.tag }}"), &merged).unwrap(),
        json!("v1")
    );
    assert_eq!(c.root()["count"], json!(3));
}

/// `(expression, data, expected)` for Kyverno's custom functions.
fn function_rows() -> Vec<(&'static str, Value, Value)> {
    let data = json!({
        "s": "Hello World", "n": 7, "labels": {"app": "web", "tier": "front"},
        "list": ["a", "b"], "t": "2021-10-05T05:18:11Z"
    });
    vec![
        ("compare('a', 'b')", data.clone(), json!(-1)),
        ("equal_fold('Go', 'GO')", data.clone(), json!(true)),
        ("replace('aaa', 'a', 'b', `2`)", data.clone(), json!("bba")),
        (
            "replace_all(s, 'o', '0')",
            data.clone(),
            json!("Hell0 W0rld"),
        ),
        ("to_upper(s)", data.clone(), json!("HELLO WORLD")),
        ("to_lower(s)", data.clone(), json!("hello world")),
        ("trim('--x--', '-')", data.clone(), json!("x")),
        (
            "trim_prefix('sha256:abc', 'sha256:')",
            data.clone(),
            json!("abc"),
        ),
        ("split('a,b,c', ',')", data.clone(), json!(["a", "b", "c"])),
        (
            "regex_replace_all('([a-z]+)-(\\d+)', 'app-12', '$2-$1')",
            data.clone(),
            json!("12-app"),
        ),
        (
            "regex_replace_all_literal('[0-9]', 'a1b2', '$1')",
            data.clone(),
            json!("a$1b$1"),
        ),
        (
            "regex_match('^nginx:[0-9.]+$', 'nginx:1.25')",
            data.clone(),
            json!(true),
        ),
        ("regex_match('^[0-9]+$', `123`)", data.clone(), json!(true)),
        (
            "pattern_match('ghcr.io/*', 'ghcr.io/org/app')",
            data.clone(),
            json!(true),
        ),
        (
            "label_match(`{\"app\":\"web\"}`, labels)",
            data.clone(),
            json!(true),
        ),
        (
            "label_match(`{\"app\":\"db\"}`, labels)",
            data.clone(),
            json!(false),
        ),
        ("to_boolean('True')", data.clone(), json!(true)),
        ("add(`1`, `2`)", data.clone(), json!(3)),
        ("add('1Gi', '512Mi')", data.clone(), json!("1536Mi")),
        ("add('1h', '30m')", data.clone(), json!("1h30m0s")),
        ("subtract(`5`, `7`)", data.clone(), json!(-2)),
        ("subtract('2Gi', '1Gi')", data.clone(), json!("1Gi")),
        ("multiply(`3`, `4`)", data.clone(), json!(12)),
        ("multiply('10m', `2`)", data.clone(), json!("20m")),
        ("multiply('1h', `2`)", data.clone(), json!("2h0m0s")),
        ("divide(`10`, `4`)", data.clone(), json!(2.5)),
        ("divide('1Gi', '512Mi')", data.clone(), json!(2)),
        ("divide('1h', '30m')", data.clone(), json!(2)),
        ("modulo(`10`, `4`)", data.clone(), json!(2)),
        ("round(`2.71828`, `2`)", data.clone(), json!(2.72)),
        ("sum(`[1, 2, 3]`)", data.clone(), json!(6)),
        ("sum(['1Gi', '1Gi'])", data.clone(), json!("2Gi")),
        ("base64_encode('hello!')", data.clone(), json!("aGVsbG8h")),
        ("base64_decode('aGVsbG8h')", data.clone(), json!("hello!")),
        (
            "path_canonicalize('/a/b/../c//./d')",
            data.clone(),
            json!("/a/c/d"),
        ),
        ("truncate('abcdef', `3`)", data.clone(), json!("abc")),
        (
            "semver_compare('1.2.3', '>1.0.0 <2.0.0')",
            data.clone(),
            json!(true),
        ),
        (
            "semver_compare('2.0.0', '1.x || >=3.0.0')",
            data.clone(),
            json!(false),
        ),
        (
            "parse_json('{\"a\": [1, true]}')",
            data.clone(),
            json!({"a": [1, true]}),
        ),
        (
            "parse_yaml('a: 1\nb: [p, q]')",
            data.clone(),
            json!({"a": 1, "b": ["p", "q"]}),
        ),
        ("lookup(labels, 'app')", data.clone(), json!("web")),
        ("lookup(list, `1`)", data.clone(), json!("b")),
        ("lookup(labels, 'none')", data.clone(), json!(null)),
        (
            "items(labels, 'k', 'v')",
            data.clone(),
            json!([{"k": "app", "v": "web"}, {"k": "tier", "v": "front"}]),
        ),
        (
            "object_from_lists(list, `[1]`)",
            data.clone(),
            json!({"a": 1, "b": null}),
        ),
        (
            "time_add(t, '1h')",
            data.clone(),
            json!("2021-10-05T06:18:11Z"),
        ),
        (
            "time_parse('2006-01-02', '2021-10-05')",
            data.clone(),
            json!("2021-10-05T00:00:00Z"),
        ),
        (
            "time_parse('Mon Jan _2 15:04:05 2006', 'Tue Oct  5 05:18:11 2021')",
            data.clone(),
            json!("2021-10-05T05:18:11Z"),
        ),
        (
            "time_parse('1136239445', '1633411091')",
            data.clone(),
            json!("2021-10-05T05:18:11Z"),
        ),
        (
            "time_since('', '2021-10-05T05:18:11Z', '2021-10-05T06:48:11Z')",
            data.clone(),
            json!("1h30m0s"),
        ),
        (
            "time_utc('2021-10-05T07:18:11+02:00')",
            data.clone(),
            json!("2021-10-05T05:18:11Z"),
        ),
        (
            "time_diff(t, '2021-10-06T05:18:11Z')",
            data.clone(),
            json!("24h0m0s"),
        ),
        (
            "time_before(t, '2022-01-01T00:00:00Z')",
            data.clone(),
            json!(true),
        ),
        (
            "time_after(t, '2022-01-01T00:00:00Z')",
            data.clone(),
            json!(false),
        ),
        (
            "time_between(t, '2021-01-01T00:00:00Z', '2022-01-01T00:00:00Z')",
            data.clone(),
            json!(true),
        ),
        (
            "time_truncate(t, '1h')",
            data.clone(),
            json!("2021-10-05T05:00:00Z"),
        ),
        // Built-ins of jmespath stay available.
        ("contains(list, 'a')", data.clone(), json!(true)),
        ("starts_with(s, 'Hello')", data.clone(), json!(true)),
        ("length(list)", data.clone(), json!(2)),
        ("join('-', list)", data.clone(), json!("a-b")),
        ("to_string(n)", data.clone(), json!("7")),
        ("to_number('42')", data, json!(42)),
    ]
}

#[test]
fn kyverno_functions() {
    let mut failures = Vec::new();
    for (expression, data, expected) in function_rows() {
        match jmespath_search(expression, &data) {
            Ok(got) if got == expected => {}
            other => failures.push(format!("{expression}: got {other:?}, want {expected}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn time_now_is_rfc3339() {
    let now = jmespath_search("time_now_utc()", &json!({})).unwrap();
    let s = now.as_str().expect("string");
    assert!(s.ends_with('Z') && s.len() == 20, "{s}");
    let before = jmespath_search(
        "time_before('2021-01-01T00:00:00Z', time_now())",
        &json!({}),
    )
    .unwrap();
    assert_eq!(before, json!(true));
}

#[test]
fn function_errors_never_panic() {
    let data = json!({"s": "x"});
    for expression in [
        "divide(`1`, `0`)",
        "modulo(`1.5`, `1`)",
        "add('abc', `1`)",
        "add('1Gi', '1h')",
        "base64_decode('!!!')",
        "base64_decode('aGVsbG8')",
        "regex_match('(', 'x')",
        "parse_json('{')",
        "parse_yaml('a: [')",
        "time_add('yesterday', '1h')",
        "time_add('2021-10-05T05:18:11Z', 'soon')",
        "time_parse('2006-01-02', 'nope')",
        "semver_compare('one', '>1.0.0')",
        "to_boolean('maybe')",
        "x509_decode('pem')",
        "random('[a-z]{4}')",
        "to_upper(`1`)",
        "lookup(`[1]`, 'a')",
        "round(`1.5`, `-1`)",
        "no_such_function(s)",
        "s.[",
        "",
    ] {
        assert!(
            jmespath_search(expression, &data).is_err(),
            "{expression} should fail"
        );
    }
}

#[test]
fn huge_inputs_are_rejected_or_handled() {
    let data = json!({"s": "x".repeat(1 << 20)});
    let long_expression = format!("s{}", ".a".repeat(100_000));
    assert!(matches!(
        jmespath_search(&long_expression, &data),
        Err(VariableError::InvalidExpression { .. })
    ));
    let deep = format!("{}s{}", "(".repeat(1_000), ")".repeat(1_000));
    assert!(jmespath_search(&deep, &data).is_err());
    let nots = format!("{}s", "!".repeat(2_000));
    assert!(jmespath_search(&nots, &data).is_err());
    let chain = format!("s{}", ".a".repeat(2_000));
    assert_eq!(jmespath_search(&chain, &data).unwrap(), json!(null));
    // A replacement that would explode the input is refused, not allocated.
    assert!(jmespath_search("replace_all(s, '', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyy')", &data).is_err());
    assert_eq!(
        jmespath_search("length(to_upper(s))", &data).unwrap(),
        json!(1 << 20)
    );
}

fn block(any: Vec<Condition>, all: Vec<Condition>) -> AnyAllConditions {
    AnyAllConditions { any, all }
}

#[test]
fn any_all_semantics_and_messages() {
    let c = ctx();
    let yes = condition(json!("{{ image.tag }}"), "Equals", json!("v1"));
    let no = condition(json!("{{ image.tag }}"), "Equals", json!("v2"));
    let mut no_with_message = no.clone();
    no_with_message.message = Some("tag must be v2".into());

    let pass = |blocks: &[AnyAllConditions]| evaluate(blocks, &c).unwrap().passed;
    assert!(pass(&[]));
    assert!(pass(&[block(vec![], vec![])]));
    assert!(pass(&[block(
        vec![no.clone(), yes.clone()],
        vec![yes.clone()]
    )]));
    assert!(!pass(&[block(vec![no.clone()], vec![yes.clone()])]));
    assert!(!pass(&[block(
        vec![yes.clone()],
        vec![yes.clone(), no.clone()]
    )]));
    assert!(!pass(&[
        block(vec![], vec![yes.clone()]),
        block(vec![no.clone()], vec![])
    ]));

    let result = evaluate(&[block(vec![], vec![yes.clone(), no_with_message])], &c).unwrap();
    assert!(!result.passed);
    assert_eq!(result.message.as_deref(), Some("tag must be v2"));

    let result = evaluate(&[block(vec![], vec![no.clone()])], &c).unwrap();
    let message = result.message.expect("generated message");
    assert!(
        message.contains("{{ image.tag }}") && message.contains("Equals") && message.contains("v2"),
        "{message}"
    );
    assert!(
        evaluate(&[block(vec![], vec![yes.clone()])], &c)
            .unwrap()
            .message
            .is_none()
    );

    let bad = condition(json!("a"), "Bogus", json!("a"));
    assert!(matches!(
        evaluate(&[block(vec![], vec![bad])], &c),
        Err(ConditionError::UnknownOperator { .. })
    ));
}

#[test]
fn preconditions_both_forms() {
    let c = ctx();
    let pre = |v: Value| evaluate_preconditions(&v, &c);
    assert!(pre(json!(null)).unwrap().passed);
    assert!(pre(json!([
        {"key": "{{ request.operation }}", "operator": "Equals", "value": "CREATE"},
        {"key": "{{ request.object.metadata.labels.app }}", "operator": "AnyIn", "value": ["web", "api"]}
    ])).unwrap().passed);
    assert!(
        !pre(json!([
            {"key": "{{ request.operation }}", "operator": "Equals", "value": "CREATE"},
            {"key": "{{ request.operation }}", "operator": "Equals", "value": "UPDATE"}
        ]))
        .unwrap()
        .passed
    );
    assert!(
        pre(json!({"any": [
            {"key": "{{ request.operation }}", "operator": "Equals", "value": "UPDATE"},
            {"key": "{{ request.operation }}", "operator": "Equals", "value": "CREATE"}
        ]}))
        .unwrap()
        .passed
    );
    assert!(!pre(json!({"all": [
        {"key": "{{ request.object.metadata.labels.missing }}", "operator": "NotEquals", "value": ""}
    ]})).unwrap().passed);
    assert!(matches!(
        pre(json!({"foo": []})),
        Err(ConditionError::InvalidPreconditions { .. })
    ));
    assert!(matches!(
        pre(json!("x")),
        Err(ConditionError::InvalidPreconditions { .. })
    ));
    assert!(matches!(
        pre(json!([{"key": 1, "operator": 5}])),
        Err(ConditionError::InvalidPreconditions { .. })
    ));
}

/// The attestation policies of Kyverno's engine tests, replayed over the recorded predicate.
#[test]
fn kyverno_attestation_vectors() {
    let path = crate::util::vectors_dir().join("dsse/kyverno-attestations/meta.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        if std::env::var("IMAGEGATE_REQUIRE_VECTORS").as_deref() == Ok("1") {
            panic!(
                "{} is required (IMAGEGATE_REQUIRE_VECTORS=1) but missing",
                path.display()
            );
        }
        println!("skipped: {} not found", path.display());
        return;
    };
    let meta: Value = serde_json::from_str(&text).expect("meta.json");
    let predicate = meta["envelopes"][0]["predicate"].clone();
    let Value::Object(fields) = predicate else {
        panic!("predicate is an object");
    };
    let ctx = Context::new(json!({"image": {"reference": "ghcr.io/jimbugwadia/pause2:latest"}}))
        .with_entries(fields);
    for (policy, expected) in [("testPolicyGood", "pass"), ("testPolicyBad", "fail")] {
        let conditions: Vec<AnyAllConditions> = serde_json::from_value(
            meta["policies"][policy]["verifyImages"][0]["attestations"][0]["conditions"].clone(),
        )
        .expect("conditions");
        assert!(!conditions.is_empty());
        let result = evaluate(&conditions, &ctx).expect("evaluates");
        let outcome = if result.passed { "pass" } else { "fail" };
        assert_eq!(outcome, expected, "{policy}: {:?}", result.message);
        let recorded = meta["expected"]
            .as_array()
            .and_then(|e| e.iter().find(|x| x["policy"] == policy))
            .map(|x| x["result"].clone());
        assert_eq!(recorded, Some(json!(expected)));
    }
}
