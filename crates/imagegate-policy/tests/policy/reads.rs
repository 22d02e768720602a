//! Issue 8 item 5: whether a verdict may be reused across requests is decided from
//! the parsed `{{ }}` expressions (the variables they read), not from the text.

use imagegate_policy::conditions::{expression_reads, value_reads};
use imagegate_policy::model::ImageVerification;
use serde_json::json;

fn names(expression: &str) -> Vec<String> {
    let reads = expression_reads(expression);
    assert!(!reads.whole_root, "{expression}: whole root");
    reads.names.into_iter().collect()
}

#[test]
fn root_variables_of_expressions() {
    let table: &[(&str, &[&str])] = &[
        ("request.object.metadata.name", &["request"]),
        ("request | namespace", &["request"]),
        ("request|namespace", &["request"]),
        ("images.containers.*.registry", &["images"]),
        ("images | keys(@)", &["images"]),
        ("element.name", &["element"]),
        ("predicate.buildType", &["predicate"]),
        ("invocation.parameters.\"request\"", &["invocation"]),
        ("length(request.object.spec.containers)", &["request"]),
        (
            "to_upper(buildType) == 'X' && request.namespace",
            &["buildType", "request"],
        ),
        ("[builder.id, image.tag]", &["builder", "image"]),
        ("{a: request.name, b: x}", &["request", "x"]),
        ("sort_by(items, &request)", &["items"]),
        ("items[?name == 'request'].request", &["items"]),
        ("`\"request\"`", &[]),
        ("'request.object'", &[]),
        ("a.b.c[0].d", &["a"]),
        ("a || request", &["a", "request"]),
        ("!request", &["request"]),
    ];
    for (expression, expected) in table {
        assert_eq!(names(expression), *expected, "{expression}");
    }
}

#[test]
fn the_whole_root_or_the_unknown_reads_everything() {
    for expression in [
        "@",
        "keys(@)",
        "*",
        "*.namespace",
        "@.request",
        "length(@)",
        "a[",
        "",
    ] {
        let reads = expression_reads(expression);
        assert!(reads.whole_root, "{expression}");
        assert!(reads.reads("request"), "{expression}");
    }
    assert!(expression_reads("time_now_utc()").clock);
    assert!(!expression_reads("time_after(a, b)").clock);
}

#[test]
fn variables_in_values_keys_and_nested_variables() {
    let reads = value_reads(&json!({
        "{{ request.object.metadata.name }}": "x",
        "list": ["{{ predicate.a }} and {{ builder.id }}", "plain"],
        "escaped": "\\{{ request.object }}",
    }));
    assert_eq!(
        reads.names.iter().collect::<Vec<_>>(),
        ["builder", "predicate", "request"]
    );
    assert!(!reads.whole_root);
    let escaped_only = value_reads(&json!("\\{{ request.object }}"));
    assert!(!escaped_only.reads("request"));
    // A variable whose expression is built from another is known only after
    // substitution.
    assert!(value_reads(&json!("{{ request.{{ x }} }}")).whole_root);
}

fn entry(conditions: serde_json::Value) -> ImageVerification {
    serde_json::from_value(json!({
        "imageReferences": ["ghcr.io/*"],
        "attestations": [{
            "type": "https://slsa.dev/provenance/v0.2",
            "conditions": [{"all": conditions}],
        }],
    }))
    .unwrap()
}

#[test]
fn verdicts_that_read_the_request_are_not_reusable() {
    let cases = [
        (
            json!([{"key": "{{ builder.id }}", "operator": "Equals", "value": "x"}]),
            false,
        ),
        (
            json!([{"key": "{{ request | namespace }}", "operator": "Equals", "value": "x"}]),
            true,
        ),
        (
            json!([{"key": "{{ images.containers.*.tag }}", "operator": "AnyIn", "value": ["a"]}]),
            true,
        ),
        (
            json!([{"key": "{{ image.tag }}", "operator": "Equals", "value": "v1"}]),
            true,
        ),
        (
            json!([{"key": "{{ builder.id }}", "operator": "Equals", "value": "{{ request.object.metadata.name }}"}]),
            true,
        ),
        (
            json!([{"key": "{{ @ }}", "operator": "Equals", "value": "x"}]),
            true,
        ),
        (
            json!([{"key": "{{ time_now_utc() }}", "operator": "Equals", "value": "x"}]),
            true,
        ),
        (
            json!([{"key": "{{ element.name }}", "operator": "Equals", "value": "x"}]),
            true,
        ),
        (
            json!([{"key": "{{ serviceAccountName }}", "operator": "Equals", "value": "x"}]),
            true,
        ),
        // The text `request.` in a literal or a message is not a variable.
        (
            json!([{"key": "{{ builder.id }}", "operator": "Equals", "value": "request.object", "message": "request.object is fine"}]),
            false,
        ),
    ];
    for (conditions, expected) in cases {
        assert_eq!(
            entry(conditions.clone()).verdict_depends_on_request(),
            expected,
            "{conditions}"
        );
    }
    // A subject naming the request in a keyless attestor, and validate.deny.
    let keyless: ImageVerification = serde_json::from_value(json!({
        "imageReferences": ["ghcr.io/*"],
        "attestors": [{"entries": [{"keyless": {"subject": "{{ request.userInfo.username }}", "issuer": "i"}}]}],
    }))
    .unwrap();
    assert!(keyless.verdict_depends_on_request());
    let deny: ImageVerification = serde_json::from_value(json!({
        "imageReferences": ["ghcr.io/*"],
        "validate": {"deny": {"conditions": {"any": [{"key": "{{ request.operation }}", "operator": "Equals", "value": "DELETE"}]}}},
    }))
    .unwrap();
    assert!(deny.verdict_depends_on_request());
}

#[test]
fn hostile_expressions_are_bounded() {
    // Deeper than the evaluator accepts: not parsed, counted as reading anything.
    let deep = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(expression_reads(&deep).whole_root);
    let long = "a.".repeat(5_000) + "b";
    assert!(expression_reads(&long).whole_root);
    let nots = format!("{}request", "!".repeat(100_000));
    assert!(expression_reads(&nots).whole_root);
}
