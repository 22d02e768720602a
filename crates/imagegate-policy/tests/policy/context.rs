//! Rule `context` entries (Kyverno's loaders, the pure part) and the substitution of
//! verifyImages entries from them.

use imagegate_policy::conditions::{Context, VariableError};
use imagegate_policy::context::{
    ApiCallEntry, ConfigMapEntry, ContextEntry, Source, VariableEntry, add_entry, api_call_path,
    api_call_value, config_map_reference, config_map_value, evaluate_variable,
    request_dependent_names, validate_context,
};
use imagegate_policy::model::ImageVerification;
use serde_json::{Value, json};

fn ctx() -> Context {
    let keys = config_map_value(
        json!({"pubkey": "PEM-A", "issuer": "https://issuer.example", "ns": "team"}),
        json!({"name": "keys", "namespace": "kyverno"}),
    );
    Context::new(json!({
        "request": {"namespace": "team", "object": {"metadata": {"name": "web"}}},
        "keys": keys,
    }))
}

fn verification(yaml: &str) -> ImageVerification {
    serde_saphyr::from_str(yaml).unwrap()
}

#[test]
fn verify_images_fields_are_substituted_but_conditions_are_left_for_each_image() {
    let written = verification(
        r#"
imageReferences: ["ghcr.io/*"]
attestors:
- entries:
  - keys: {publicKeys: "{{ keys.data.pubkey }}"}
  - keyless: {subject: "https://github.com/{{ request.namespace }}/*", issuer: "{{ keys.data.issuer }}"}
attestations:
- type: https://slsa.dev/provenance/v0.2
  attestors:
  - entries:
    - keys: {publicKeys: "{{ keys.data.pubkey }}"}
  conditions:
  - all:
    - key: "{{ invocation.parameters.ns }}"
      operator: Equals
      value: "{{ keys.data.ns }}"
validate:
  message: "denied in {{ request.namespace }}"
  deny:
    conditions:
      any:
      - {key: "{{ image.registry }}", operator: Equals, value: "bad.example"}
"#,
    );
    assert!(written.has_substitutions());
    let mut inherited = written.clone();
    inherited.failure_action_inherited = true;
    let out = inherited.substituted(&ctx()).unwrap();
    let keys = |i: usize| out.attestors[0].entries[i].keys.clone();
    assert_eq!(keys(0).unwrap().public_keys.as_deref(), Some("PEM-A"));
    let keyless = out.attestors[0].entries[1].keyless.clone().unwrap();
    assert_eq!(
        keyless.subject.as_deref(),
        Some("https://github.com/team/*")
    );
    assert_eq!(keyless.issuer.as_deref(), Some("https://issuer.example"));
    assert_eq!(
        out.attestations[0].attestors[0].entries[0]
            .keys
            .as_ref()
            .unwrap()
            .public_keys
            .as_deref(),
        Some("PEM-A")
    );
    // Conditions keep their variables: they are evaluated per image, with the
    // predicate (which the request's context does not have).
    assert_eq!(
        out.attestations[0].conditions,
        written.attestations[0].conditions
    );
    let deny = |v: &ImageVerification| v.validate.clone().unwrap().deny.unwrap().conditions;
    assert_eq!(deny(&out), deny(&written));
    assert_eq!(
        out.validate.as_ref().unwrap().message.as_deref(),
        Some("denied in team")
    );
    assert!(out.failure_action_inherited, "not part of the YAML: kept");
    assert!(!out.has_substitutions());

    // A missing key is Kyverno's "Unknown key" error, never an empty key.
    let missing = verification(
        "imageReferences: [\"*\"]\nattestors: [{entries: [{keys: {publicKeys: \"{{ keys.data.nope }}\"}}]}]",
    );
    assert!(matches!(
        missing.substituted(&ctx()),
        Err(VariableError::NotResolved { .. })
    ));
    // A value of the wrong type for the field.
    let wrong = verification(
        "imageReferences: [\"*\"]\nattestors: [{count: 1, entries: [{keys: {publicKeys: \"{{ keys.metadata }}\"}}]}]",
    );
    assert!(matches!(
        wrong.substituted(&ctx()),
        Err(VariableError::WrongType { .. })
    ));
}

#[test]
fn entries_without_variables_need_no_substitution_but_escaped_ones_do() {
    let plain = verification(
        "imageReferences: [\"*\"]\nattestors: [{entries: [{keys: {publicKeys: PEM}}]}]\nattestations: [{type: t, conditions: [{all: [{key: \"{{ a }}\", operator: Equals, value: b}]}]}]",
    );
    assert!(!plain.has_substitutions(), "conditions do not count");
    let escaped = verification(
        "imageReferences: [\"*\"]\nattestors: [{entries: [{keyless: {subject: \"\\\\{{ literal }}\", issuer: i}}]}]",
    );
    assert!(escaped.has_substitutions());
    let out = escaped.substituted(&ctx()).unwrap();
    assert_eq!(
        out.attestors[0].entries[0]
            .keyless
            .as_ref()
            .unwrap()
            .subject
            .as_deref(),
        Some("{{ literal }}")
    );
}

fn variable(value: Option<Value>, path: Option<&str>, default: Option<Value>) -> VariableEntry {
    VariableEntry {
        value,
        jmes_path: path.map(str::to_owned),
        default,
    }
}

#[test]
fn variable_entries_as_kyverno_evaluates_them() {
    let ctx = ctx();
    let eval = |v: VariableEntry| evaluate_variable("v", &v, &ctx);
    assert_eq!(
        eval(variable(Some(json!("{{ keys.data.pubkey }}")), None, None)).unwrap(),
        "PEM-A"
    );
    assert_eq!(
        eval(variable(
            Some(json!({"a": ["x", "{{ request.namespace }}"]})),
            Some("a[1]"),
            None
        ))
        .unwrap(),
        "team"
    );
    assert_eq!(
        eval(variable(None, Some("request.object.metadata.name"), None)).unwrap(),
        "web"
    );
    // Over the context, a path that finds nothing takes the default.
    assert_eq!(
        eval(variable(
            None,
            Some("request.object.spec"),
            Some(json!("fallback"))
        ))
        .unwrap(),
        "fallback"
    );
    // The JMESPath itself may hold variables.
    assert_eq!(
        eval(variable(None, Some("keys.data.{{ 'pubkey' }}"), None)).unwrap(),
        "PEM-A"
    );
    assert_eq!(
        eval(variable(None, Some("request.nothing"), None))
            .unwrap_err()
            .to_string(),
        "failed to add context entry for variable v since it evaluated to nil"
    );
    let err = eval(variable(Some(json!("{{ nope.x }}")), None, None)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to substitute variables in context entry v {{ nope.x }}:"),
        "{err}"
    );
    let err = eval(variable(Some(json!(1)), Some("length(@)"), None)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("failed to apply jmespath length(@) to variable 1:"),
        "{err}"
    );
}

#[test]
fn config_map_references_are_substituted_defaulted_and_kept_to_a_policys_namespace() {
    let ctx = ctx();
    let entry = |name: &str, namespace: &str| ConfigMapEntry {
        name: name.into(),
        namespace: namespace.into(),
    };
    assert_eq!(
        config_map_reference(
            "k",
            &entry("keys-{{ request.namespace }}", "kyverno"),
            &ctx,
            None
        )
        .unwrap(),
        ("kyverno".into(), "keys-team".into())
    );
    assert_eq!(
        config_map_reference("k", &entry("keys", ""), &ctx, None).unwrap(),
        ("default".into(), "keys".into())
    );
    assert_eq!(
        config_map_reference("k", &entry("keys", ""), &ctx, Some("team")).unwrap(),
        ("team".into(), "keys".into())
    );
    assert_eq!(
        config_map_reference(
            "k",
            &entry("keys", "{{ keys.data.ns }}"),
            &ctx,
            Some("team")
        )
        .unwrap(),
        ("team".into(), "keys".into())
    );
    assert_eq!(
        config_map_reference("k", &entry("keys", "kyverno"), &ctx, Some("team"))
            .unwrap_err()
            .to_string(),
        "context entry k: configMap namespace \"kyverno\" is different from policy namespace \"team\""
    );
    assert_eq!(
        config_map_reference("k", &entry("{{ keys.metadata }}", "kyverno"), &ctx, None)
            .unwrap_err()
            .to_string(),
        "failed to substitute variables in context k configMap.name {{ keys.metadata }}: expected string, got map[string]interface {}"
    );
}

#[test]
fn api_calls_are_gets_of_the_api_kept_to_a_policys_namespace() {
    let ctx = ctx();
    let call = |path: &str| ApiCallEntry {
        url_path: path.into(),
        ..ApiCallEntry::default()
    };
    assert_eq!(
        api_call_path(
            "c",
            &call("/api/v1/namespaces/{{ request.namespace }}/pods"),
            &ctx,
            None
        )
        .unwrap(),
        "/api/v1/namespaces/team/pods"
    );
    assert!(
        api_call_path(
            "c",
            &call("/apis/apps/v1/namespaces/team/deployments"),
            &ctx,
            Some("team")
        )
        .is_ok()
    );
    assert_eq!(
        api_call_path(
            "c",
            &call("/api/v1/namespaces/team/../kyverno/configmaps"),
            &ctx,
            Some("team")
        )
        .unwrap_err()
        .to_string(),
        "path /api/v1/namespaces/kyverno/configmaps refers to namespace kyverno, which is different from the policy namespace team"
    );
    assert_eq!(
        api_call_path("c", &call("/api/v1/nodes"), &ctx, Some("team"))
            .unwrap_err()
            .to_string(),
        "path /api/v1/nodes does not contain a namespace segment, which is required for namespaced policies"
    );
    for unsupported in [
        ApiCallEntry {
            method: Some("POST".into()),
            ..call("/apis/x")
        },
        ApiCallEntry {
            data: Some(json!([{"key": "a", "value": "b"}])),
            ..call("/apis/x")
        },
        ApiCallEntry {
            service: Some(json!({"url": "https://svc.example"})),
            ..ApiCallEntry::default()
        },
    ] {
        let err = api_call_path("c", &unsupported, &ctx, None).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    let with_path = ApiCallEntry {
        jmes_path: Some(
            "items[?metadata.name == '{{ request.object.metadata.name }}'] | length(@)".into(),
        ),
        ..call("/x")
    };
    let answer = json!({"items": [{"metadata": {"name": "web"}}, {"metadata": {"name": "db"}}]});
    assert_eq!(
        api_call_value("c", &with_path, &ctx, Ok(answer.clone())).unwrap(),
        json!(1)
    );
    assert_eq!(
        api_call_value("c", &call("/x"), &ctx, Ok(answer.clone())).unwrap(),
        answer
    );
    assert_eq!(
        api_call_value("c", &call("/x"), &ctx, Err("boom".into()))
            .unwrap_err()
            .to_string(),
        "failed to fetch data for APICall: boom"
    );
    let defaulted = ApiCallEntry {
        default: Some(json!({"items": []})),
        ..call("/x")
    };
    assert_eq!(
        api_call_value("c", &defaulted, &ctx, Err("boom".into())).unwrap(),
        json!({"items": []})
    );
}

#[test]
fn context_entries_are_validated_as_kyverno_validates_them() {
    let findings = |yaml: &str| -> Vec<String> {
        let entries: Vec<Value> = serde_saphyr::from_str(yaml).unwrap();
        validate_context(&entries, "spec.rules[0]")
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let valid = findings(
        "- {name: a, configMap: {name: k, namespace: ns1}}\n- {name: b, variable: {value: 1}}\n- {name: c, apiCall: {urlPath: /api/v1/pods, jmesPath: items}}",
    );
    assert!(valid.is_empty(), "{valid:?}");
    let got = findings(
        r#"
- configMap: {name: k, namespace: ns1}
- {name: request, variable: {value: 1}}
- {name: images.x, variable: {value: 1}}
- {name: both, variable: {value: 1}, configMap: {name: k, namespace: ns1}}
- {name: nons, configMap: {name: k}}
- {name: empty, variable: {}}
- {name: lonely, variable: {value: 1, default: 2}}
- {name: badpath, variable: {jmesPath: "a[?"}}
- {name: mixed, apiCall: {urlPath: /x, service: {url: "https://s"}}}
"#,
    );
    let want = [
        "spec.rules[0].context[0]: a name is required for context entries",
        "spec.rules[0].context[1]: entry name request is invalid as it conflicts with a pre-defined variable request",
        "spec.rules[0].context[2]: entry name images.x is invalid as it conflicts with a pre-defined variable images",
        "spec.rules[0].context[3]: exactly one of configMap or apiCall or imageRegistry or variable is required for context entries",
        "spec.rules[0].context[4]: a namespace is required for configMap context entry",
        "spec.rules[0].context[5]: a variable must define a value or a jmesPath expression",
        "spec.rules[0].context[6]: a variable must define a default value only when a jmesPath expression is defined",
        // Followed by the parser's reason.
        "spec.rules[0].context[7]: failed to parse JMESPath a[?",
        "spec.rules[0].context[8]: a URLPath cannot be used for service API calls",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (got, want) in got.iter().zip(want) {
        assert!(got.starts_with(want), "{got} / {want}");
    }
    let parsed =
        ContextEntry::parse(&json!({"name": "g", "globalReference": {"name": "x"}})).unwrap();
    assert_eq!(parsed.source, Source::Unsupported("globalReference"));
}

#[test]
fn names_defined_from_the_request_taint_the_names_defined_from_them() {
    let entries: Vec<Value> = serde_saphyr::from_str(
        r#"
- {name: keys, configMap: {name: keys, namespace: kyverno}}
- {name: ns, variable: {jmesPath: request.namespace}}
- {name: nsKeys, configMap: {name: "{{ ns }}", namespace: kyverno}}
- {name: fixed, variable: {value: "{{ keys.data.pubkey }}"}}
- {name: now, variable: {value: "{{ time_now_utc() }}"}}
- {name: pods, apiCall: {urlPath: "/api/v1/namespaces/{{ request.namespace }}/pods"}}
"#,
    )
    .unwrap();
    assert_eq!(
        request_dependent_names(&entries, imagegate_policy::conditions::REQUEST_VARIABLES),
        ["ns", "nsKeys", "now", "pods"]
    );
}

#[test]
fn dotted_names_nest_and_merge() {
    let ctx = add_entry(&ctx(), "keys.extra", json!("x"));
    assert_eq!(ctx.root()["keys"]["extra"], "x");
    assert_eq!(
        ctx.root()["keys"]["data"]["pubkey"],
        "PEM-A",
        "merged, not replaced"
    );
    let ctx = add_entry(&ctx, "fresh", json!({"a": 1}));
    assert_eq!(ctx.root()["fresh"]["a"], 1);
    assert_eq!(ctx.root()["request"]["namespace"], "team");
}
