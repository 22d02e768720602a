//! Policy loading, legacy conversion and validation. Fixtures live in `tests/data/`,
//! named after the case; `invalid_*.yaml` fixtures list the exact expected findings in
//! `# expect: PATH: MESSAGE` header lines.

use std::path::{Path, PathBuf};

use imagegate_policy::context::{API_CALL_UNSUPPORTED, UNSUPPORTED_ENTRY};
use imagegate_policy::error::PolicyError;
use imagegate_policy::load::{MAX_POLICY_BYTES, load_documents, load_policies, load_policy_files};
use imagegate_policy::model::{
    FailureAction, FailurePolicy, Policy, PolicyKind, SelectorOperator, VerificationType, normalize,
};
use imagegate_policy::unsupported::{MATCH_CONDITIONS_IGNORED, PROVIDERS_IGNORED};
use proptest::prelude::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn fixture(name: &str) -> String {
    let path = data_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The policy without what normalisation records about the spelling (whether a
/// failure action was inherited, whether the legacy form was used): two spellings
/// of one policy are equal after this.
fn spelling_erased(policy: &Policy) -> Policy {
    let mut policy = policy.clone();
    for rule in &mut policy.spec.rules {
        for iv in &mut rule.verify_images {
            iv.failure_action_inherited = false;
            let sets = iv.attestors.iter_mut().chain(
                iv.attestations
                    .iter_mut()
                    .flat_map(|a| a.attestors.iter_mut()),
            );
            for set in sets {
                for entry in &mut set.entries {
                    if let Some(keys) = &mut entry.keys {
                        keys.legacy_key_form = false;
                    }
                }
            }
        }
    }
    policy
}

fn load_one(name: &str) -> Policy {
    let mut policies = load_policies(&fixture(name), name).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policies.len(), 1, "{name}");
    policies.remove(0)
}

// ---------------------------------------------------------------------------------------
// Legacy and current spellings
// ---------------------------------------------------------------------------------------

#[test]
fn legacy_key_and_current_key_normalise_to_the_same_policy() {
    let legacy = load_one("legacy_key.yaml");
    let current = load_one("current_key.yaml");
    assert_eq!(spelling_erased(&legacy), spelling_erased(&current));
    // The legacy file takes its action from the policy, the current one writes it.
    assert!(legacy.spec.rules[0].verify_images[0].failure_action_inherited);
    assert!(!current.spec.rules[0].verify_images[0].failure_action_inherited);

    let iv = &current.spec.rules[0].verify_images[0];
    assert_eq!(iv.image_references, ["ghcr.io/kyverno/test-verify-image:*"]);
    assert_eq!(iv.failure_action, Some(FailureAction::Enforce));
    let entry = &iv.attestors[0].entries[0];
    assert_eq!(
        entry.annotations.get("env").map(String::as_str),
        Some("prod")
    );
    let keys = entry.keys.as_ref().unwrap();
    assert!(
        keys.public_keys
            .as_deref()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\nMFkw")
    );
    assert!(iv.image.is_none() && iv.key.is_none() && iv.annotations.is_empty());
    assert!(iv.mutate_digest && iv.verify_digest && iv.required && iv.use_cache);
    assert_eq!(current.spec.failure_policy, Some(FailurePolicy::Fail));
    assert_eq!(current.spec.webhook_timeout_seconds, Some(30));
}

#[test]
fn legacy_keyless_with_attestations_and_current_form_normalise_to_the_same_policy() {
    let legacy = load_one("legacy_keyless_attestations.yaml");
    let current = load_one("current_keyless_attestations.yaml");
    assert_eq!(spelling_erased(&legacy), spelling_erased(&current));

    let iv = &legacy.spec.rules[0].verify_images[0];
    // Kyverno's Convert(): with attestations, the legacy identity attests them and is
    // not added to the image's own attestors.
    assert!(iv.attestors.is_empty());
    let attestation = &iv.attestations[0];
    assert_eq!(
        attestation.type_.as_deref(),
        Some("https://slsa.dev/provenance/v0.2")
    );
    assert!(attestation.predicate_type.is_none());
    let keyless = attestation.attestors[0].entries[0]
        .keyless
        .as_ref()
        .unwrap();
    assert_eq!(
        keyless.issuer.as_deref(),
        Some("https://token.actions.githubusercontent.com")
    );
    assert!(
        keyless
            .roots
            .as_deref()
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(attestation.conditions[0].all[0].operator, "Equals");
}

#[test]
fn normalize_is_idempotent() {
    for name in [
        "legacy_key.yaml",
        "legacy_keyless_attestations.yaml",
        "docs_nested_count.yaml",
    ] {
        let mut policy = load_one(name);
        let once = policy.clone();
        normalize(&mut policy);
        assert_eq!(policy, once, "{name}");
    }
}

#[test]
fn failure_action_is_parsed_in_any_case_and_inherited() {
    for (text, want) in [
        ("enforce", FailureAction::Enforce),
        ("Enforce", FailureAction::Enforce),
        ("ENFORCE", FailureAction::Enforce),
        ("audit", FailureAction::Audit),
        ("AUDIT", FailureAction::Audit),
    ] {
        assert_eq!(FailureAction::parse(text), Some(want), "{text}");
        let action: FailureAction = serde_json::from_value(serde_json::json!(text)).unwrap();
        assert_eq!(action, want);
    }
    assert_eq!(FailureAction::parse("warn"), None);
    // multi_doc.yaml's first policy says Enforce policy-wide only.
    let policies = load_policies(&fixture("multi_doc.yaml"), "multi_doc.yaml").unwrap();
    assert_eq!(
        policies[0].spec.rules[0].verify_images[0].failure_action,
        Some(FailureAction::Enforce)
    );
    assert_eq!(
        policies[1].spec.rules[0].verify_images[0].failure_action,
        Some(FailureAction::Audit)
    );
}

// ---------------------------------------------------------------------------------------
// Multi-document sources and files
// ---------------------------------------------------------------------------------------

#[test]
fn multi_document_yaml_keeps_policies_and_lists_skipped_documents() {
    let loaded = load_documents(&fixture("multi_doc.yaml"), "multi_doc.yaml").unwrap();
    let names: Vec<_> = loaded.policies.iter().map(Policy::display_name).collect();
    assert_eq!(names, ["ClusterPolicy/first", "Policy/team-a/second"]);
    assert!(loaded.policies[0].is_cluster_policy());
    assert_eq!(loaded.policies[1].kind, PolicyKind::Policy);
    assert_eq!(loaded.policies[1].namespace(), Some("team-a"));
    // The legacy direct match form is kept as written.
    let rd = loaded.policies[1].spec.rules[0]
        .match_
        .resources
        .as_ref()
        .unwrap();
    assert_eq!(rd.kinds, ["Pod"]);

    assert_eq!(loaded.skipped.len(), 1);
    let skipped = &loaded.skipped[0];
    assert_eq!(
        (skipped.kind.as_str(), skipped.name.as_deref()),
        ("ConfigMap", Some("keys"))
    );
    assert_eq!(
        skipped.to_string(),
        "multi_doc.yaml: document 3: skipped ConfigMap/keys (not a kyverno.io ClusterPolicy or Policy)"
    );
}

#[test]
fn empty_and_comment_only_sources_load_nothing() {
    for text in [
        "",
        "\n",
        "# nothing\n",
        "---\n",
        "---\n...\n---\n# c\n",
        "\u{feff}",
    ] {
        let loaded = load_documents(text, "empty.yaml").unwrap();
        assert!(
            loaded.policies.is_empty() && loaded.skipped.is_empty(),
            "{text:?}"
        );
    }
}

#[test]
fn json_sources_load() {
    let policy = load_one("docs_keys.yaml");
    let json = serde_json::to_string_pretty(&policy).unwrap();
    assert_eq!(
        load_policies(&json, "p.json").unwrap(),
        vec![policy.clone()]
    );
    let array = serde_json::to_string(&vec![&policy, &policy]).unwrap();
    assert_eq!(load_policies(&array, "p.json").unwrap().len(), 2);
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [policy]});
    assert_eq!(
        load_policies(&list.to_string(), "list.json").unwrap().len(),
        1
    );
}

#[test]
fn files_and_directories_load_with_the_file_name_in_errors() {
    let dir = std::env::temp_dir().join(format!("imagegate-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.yaml"), fixture("docs_keys.yaml")).unwrap();
    std::fs::write(dir.join("b.yml"), fixture("multi_doc.yaml")).unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml: [").unwrap();
    let loaded = load_policy_files(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(loaded.policies.len(), 3);
    assert_eq!(loaded.skipped.len(), 1);
    assert!(loaded.skipped[0].source.ends_with("b.yml"));

    std::fs::write(
        dir.join("c.json"),
        "{\"kind\": \"ClusterPolicy\", \"spec\": [",
    )
    .unwrap();
    let err = load_policy_files(std::slice::from_ref(&dir)).unwrap_err();
    assert!(matches!(err, PolicyError::Yaml { .. }), "{err:?}");
    assert!(err.to_string().contains("c.json"), "{err}");

    let big = dir.join("big.yaml");
    std::fs::write(&big, vec![b'#'; MAX_POLICY_BYTES as usize + 1]).unwrap();
    let err = load_policy_files(std::slice::from_ref(&big)).unwrap_err();
    assert!(matches!(err, PolicyError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("big.yaml"), "{err}");

    let missing = dir.join("missing.yaml");
    let err = load_policy_files(&[missing]).unwrap_err();
    assert!(
        matches!(err, PolicyError::Io { .. }) && err.to_string().contains("missing.yaml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Realistic policies (Kyverno docs)
// ---------------------------------------------------------------------------------------

#[test]
fn docs_policy_with_keys_loads() {
    let policy = load_one("docs_keys.yaml");
    let iv = &policy.spec.rules[0].verify_images[0];
    let keys = iv.attestors[0].entries[0].keys.as_ref().unwrap();
    assert!(keys.rekor.as_ref().unwrap().ignore_tlog);
    assert!(keys.ctlog.as_ref().unwrap().ignore_sct);
    let wc = policy.spec.webhook_configuration.as_ref().unwrap();
    assert_eq!(
        (wc.timeout_seconds, wc.failure_policy),
        (Some(30), Some(FailurePolicy::Fail))
    );
    assert_eq!(iv.verification_type(), VerificationType::Cosign);
    assert!(policy.spec.rules[0].unsupported_rule_types().is_empty());
}

#[test]
fn docs_policy_with_github_keyless_identity_loads() {
    let policy = load_one("docs_keyless_github.yaml");
    assert_eq!(
        policy
            .annotations()
            .get("pod-policies.kyverno.io/autogen-controllers")
            .map(String::as_str),
        Some("Deployment,StatefulSet")
    );
    let iv = &policy.spec.rules[0].verify_images[0];
    assert_eq!(iv.skip_image_references, ["ghcr.io/kyverno/unsigned*"]);
    let entries = &iv.attestors[0].entries;
    let ext = entries[0]
        .keyless
        .as_ref()
        .unwrap()
        .additional_extensions
        .as_ref()
        .unwrap();
    assert_eq!(
        ext.get("githubWorkflowRepository").map(String::as_str),
        Some("kyverno/kyverno")
    );
    let second = entries[1].keyless.as_ref().unwrap();
    assert_eq!(
        second.subject_reg_exp.as_deref(),
        Some("^https://github\\.com/kyverno/.+$")
    );
}

#[test]
fn docs_policy_with_attestation_conditions_loads_and_inherits_attestors() {
    let policy = load_one("docs_attestations_conditions.yaml");
    let iv = &policy.spec.rules[0].verify_images[0];
    let attestation = &iv.attestations[0];
    assert_eq!(attestation.name.as_deref(), Some("review"));
    assert_eq!(
        attestation.attestors, iv.attestors,
        "inherits the image's attestors"
    );
    let conditions = &attestation.conditions[0];
    assert_eq!(conditions.all.len(), 2);
    assert_eq!(
        conditions.all[0].message.as_deref(),
        Some("wrong repository")
    );
    assert_eq!(conditions.any[0].operator, "AnyIn");
    assert_eq!(
        conditions.any[0].value,
        serde_json::json!(["ana@example.com", "bob@example.com"])
    );
    let validate = iv.validate.as_ref().unwrap();
    assert_eq!(validate.message.as_deref(), Some("reviewed by two people"));
    assert!(
        validate
            .deny
            .as_ref()
            .unwrap()
            .conditions
            .get("any")
            .is_some()
    );
}

#[test]
fn docs_policy_with_nested_attestors_one_of_two_loads() {
    let policy = load_one("docs_nested_count.yaml");
    let set = &policy.spec.rules[0].verify_images[0].attestors[0];
    assert_eq!((set.count, set.required_count()), (Some(2), 2));
    let nested = set.entries[1].attestor.as_ref().unwrap();
    assert_eq!((nested.count, nested.entries.len()), (Some(1), 2));
    let secret = nested.entries[0]
        .keys
        .as_ref()
        .unwrap()
        .secret
        .as_ref()
        .unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.namespace.as_str()),
        ("release-key-1", "security")
    );
    assert_eq!(
        nested.entries[1]
            .keys
            .as_ref()
            .unwrap()
            .signature_algorithm
            .as_deref(),
        Some("sha512")
    );
}

#[test]
fn unsupported_rule_types_are_reported_not_rejected() {
    let text = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: require-labels}
spec:
  validationFailureAction: Audit
  rules:
  - name: check-team
    match:
      any:
      - resources:
          kinds: [Pod]
          selector:
            matchExpressions: [{key: tier, operator: NotIn, values: [system]}]
    validate:
      message: "label team is required"
      pattern: {metadata: {labels: {team: "?*"}}}
"#;
    let policy = load_policies(text, "inline").unwrap().remove(0);
    assert_eq!(policy.spec.rules[0].unsupported_rule_types(), ["validate"]);
    let selector = policy.spec.rules[0].match_.any[0]
        .resources
        .selector
        .as_ref()
        .unwrap();
    assert_eq!(
        selector.match_expressions[0].operator,
        SelectorOperator::NotIn
    );
}

// ---------------------------------------------------------------------------------------
// Validation: every rule with its exact path and message
// ---------------------------------------------------------------------------------------

#[test]
fn invalid_fixtures_report_exactly_the_expected_findings() {
    let mut names: Vec<_> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("invalid_"))
        .collect();
    names.sort();
    assert!(names.len() >= 12, "{names:?}");
    for name in names {
        let text = fixture(&name);
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expected.is_empty(), "{name} has no '# expect:' lines");
        let err = load_policies(&text, &name).expect_err(&name);
        let PolicyError::Invalid {
            source_name,
            errors,
            ..
        } = &err
        else {
            panic!("{name}: expected PolicyError::Invalid, got {err:?}");
        };
        assert_eq!(source_name, &name);
        let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(got, expected, "{name}");
        // Display: the source, the policy, then one finding per line.
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{name}: invalid policy ClusterPolicy/")),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), expected.len() + 1, "{shown}");
    }
}

#[test]
fn count_above_entries_is_reported_with_its_full_path() {
    let err = load_policies(&fixture("invalid_count_exceeds.yaml"), "p.yaml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "p.yaml: invalid policy ClusterPolicy/count-exceeds:\n  \
         spec.rules[0].verifyImages[1].attestors[0].count: must be <= number of entries (2)"
    );
}

// ---------------------------------------------------------------------------------------
// Malformed input: clear errors with the source name, never a panic
// ---------------------------------------------------------------------------------------

fn yaml_error(name: &str) -> (String, Option<u64>, String) {
    match load_policies(&fixture(name), name) {
        Err(e @ PolicyError::Yaml { .. }) => {
            let PolicyError::Yaml {
                line, ref message, ..
            } = e
            else {
                unreachable!()
            };
            (e.to_string(), line, message.clone())
        }
        other => panic!("{name}: expected a YAML error, got {other:?}"),
    }
}

#[test]
fn tab_indentation_is_a_located_yaml_error() {
    let (shown, line, message) = yaml_error("malformed_tabs.yaml");
    assert!(shown.starts_with("malformed_tabs.yaml:4:"), "{shown}");
    assert_eq!(line, Some(4));
    assert!(message.contains("tabs disallowed"), "{message}");
    assert!(message.ends_with("in `name: tabs`"), "{message}");
}

#[test]
fn unclosed_quote_is_a_located_yaml_error() {
    let (shown, line, _) = yaml_error("malformed_unclosed_quote.yaml");
    assert!(
        shown.starts_with("malformed_unclosed_quote.yaml:"),
        "{shown}"
    );
    assert!(line.is_some(), "{shown}");
}

#[test]
fn wrong_field_type_is_a_located_error() {
    let (shown, line, message) = yaml_error("malformed_wrong_type.yaml");
    assert!(
        shown.starts_with("malformed_wrong_type.yaml:14:21: "),
        "{shown}"
    );
    assert_eq!(line, Some(14));
    assert!(
        message.contains("bool") || message.contains("boolean"),
        "{message}"
    );
}

#[test]
fn line_numbers_count_from_the_start_of_a_multi_document_source() {
    let text = format!(
        "{}\n---\n{}",
        fixture("docs_keys.yaml"),
        fixture("malformed_wrong_type.yaml")
    );
    // Lines before the second document: docs_keys.yaml, the blank line, `---`.
    let offset = fixture("docs_keys.yaml").lines().count() as u64 + 2;
    match load_policies(&text, "multi.yaml") {
        Err(PolicyError::Yaml { line, .. }) => assert_eq!(line, Some(14 + offset)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn documents_that_are_not_mappings_are_errors() {
    for text in ["just a string\n", "- a\n- b\n", "42\n"] {
        let err = load_policies(text, "odd.yaml").unwrap_err();
        assert!(err.to_string().starts_with("odd.yaml"), "{err}");
    }
}

fn valid_corpus() -> Vec<String> {
    [
        "docs_keys.yaml",
        "docs_nested_count.yaml",
        "docs_attestations_conditions.yaml",
        "multi_doc.yaml",
        "legacy_key.yaml",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, String),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = prop_oneof![
        Just("\t".to_owned()),
        Just(": ".to_owned()),
        Just("- ".to_owned()),
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("{".to_owned()),
        Just("]".to_owned()),
        Just("\n  ".to_owned()),
        Just("\n---\n".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("!!binary ".to_owned()),
        Just("count: \"two\"\n".to_owned()),
        Just("count: -3".to_owned()),
        Just("null".to_owned()),
        Just("~".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("attestor: {entries: [{attestor: {}}]}".to_owned()),
        "[ -~]{0,12}",
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), token.clone()).prop_map(|(at, t)| Mutation::Insert(at, t)),
        (any::<usize>(), token).prop_map(|(at, t)| Mutation::Replace(at, t)),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate(at, len)),
    ]
}

fn char_boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut out = text.to_owned();
    match m {
        Mutation::Delete(at, len) => {
            let start = char_boundary(&out, *at);
            let end = char_boundary(&out, (start + len).min(out.len()));
            out.replace_range(start..end.max(start), "");
        }
        Mutation::Insert(at, t) => {
            let at = char_boundary(&out, *at);
            out.insert_str(at, t);
        }
        Mutation::Replace(at, t) => {
            let start = char_boundary(&out, *at);
            let end = char_boundary(&out, (start + t.len()).min(out.len()));
            out.replace_range(start..end.max(start), t);
        }
        Mutation::Duplicate(at, len) => {
            let start = char_boundary(&out, *at);
            let end = char_boundary(&out, (start + len).min(out.len()));
            let piece = out[start..end.max(start)].to_owned();
            out.insert_str(start, &piece);
        }
    }
    out
}

proptest! {
    // 300 cases by default; PROPTEST_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_documents(&text, "random.yaml");
    }

    #[test]
    fn mutated_valid_policies_never_panic(
        which in 0usize..5,
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let corpus = valid_corpus();
        let mut text = corpus[which % corpus.len()].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        match load_documents(&text, "mutated.yaml") {
            Ok(loaded) => {
                for policy in &loaded.policies {
                    // Whatever loads is valid and normalised.
                    prop_assert!(imagegate_policy::validate::validate(policy).is_empty());
                    for rule in &policy.spec.rules {
                        for iv in &rule.verify_images {
                            prop_assert!(iv.failure_action.is_some());
                            prop_assert!(iv.image.is_none() && iv.key.is_none());
                        }
                    }
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("mutated.yaml"), "{}", e),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared vectors
// ---------------------------------------------------------------------------------------

#[test]
fn kyverno_cli_digest_vector_policy_loads() {
    let path = crate::util::vectors_dir().join("kyverno-cli/digest/policies.yaml");
    if !path.exists() {
        assert!(
            std::env::var("IMAGEGATE_REQUIRE_VECTORS").as_deref() != Ok("1"),
            "{} is missing and IMAGEGATE_REQUIRE_VECTORS=1",
            path.display()
        );
        println!("skipped: {} not present", path.display());
        return;
    }
    let loaded = load_policy_files(&[path]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.policies.len(), 1);
    let policy = &loaded.policies[0];
    assert_eq!(policy.display_name(), "ClusterPolicy/require-image-digest");
    let iv = &policy.spec.rules[0].verify_images[0];
    assert_eq!(iv.image_references, ["*"]);
    assert_eq!(iv.failure_action, Some(FailureAction::Audit));
    assert!(!iv.mutate_digest && iv.verify_digest && !iv.required);
    assert_eq!(
        policy
            .annotations()
            .get("pod-policies.kyverno.io/autogen-controllers")
            .map(String::as_str),
        Some("none")
    );
}

// ---------------------------------------------------------------------------------------
// Load-time honesty (issue 9 item 4)
// ---------------------------------------------------------------------------------------

#[test]
fn fields_imagegate_does_not_act_on_are_warned_about_with_their_path() {
    let name = "unsupported_fields.yaml";
    let loaded = load_documents(&fixture(name), name).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.policies.len(), 1);
    let got: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let prefix = "unsupported_fields.yaml: ClusterPolicy/unsupported-fields: spec.";
    let expected = [
        format!("{prefix}webhookConfiguration.matchConditions: {MATCH_CONDITIONS_IGNORED}"),
        // configMap (and variable, apiCall GET) entries are evaluated: no warning.
        format!("{prefix}rules[0].context[1]: {UNSUPPORTED_ENTRY}"),
        format!("{prefix}rules[0].context[2]: {API_CALL_UNSUPPORTED}"),
        format!("{prefix}rules[0].context[3]: {API_CALL_UNSUPPORTED}"),
        format!("{prefix}rules[0].context[4]: {UNSUPPORTED_ENTRY}"),
        format!(
            "{prefix}rules[0].verifyImages[0].imageRegistryCredentials.providers: {PROVIDERS_IGNORED}"
        ),
        // `secrets` are read in cluster mode (issue 10): no warning.
        format!(
            "{prefix}rules[1].validate: validate rules are not evaluated by imagegate (verifyImages only)"
        ),
    ];
    assert_eq!(got, expected);
    // Through files too.
    let files = load_policy_files(&[data_dir().join(name)]).unwrap();
    assert_eq!(files.warnings.len(), expected.len());
    // A policy that uses none of them has no warnings.
    let clean = load_documents(&fixture("current_key.yaml"), "current_key.yaml").unwrap();
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
}

#[test]
fn allow_insecure_registry_is_exposed_per_entry() {
    let name = "unsupported_fields.yaml";
    let policy = load_one(name);
    let entries = &policy.spec.rules[0].verify_images;
    assert!(entries[0].allows_insecure_registry());
    assert!(!entries[1].allows_insecure_registry());
    assert!(
        !load_one("current_key.yaml").spec.rules[0].verify_images[0].allows_insecure_registry()
    );
}

#[test]
fn notary_entries_verify_with_certificates_not_keys() {
    let text = fixture("current_key.yaml").replace(
        "failureAction: Enforce",
        "failureAction: Enforce\n      type: Notary",
    );
    assert!(text.contains("type: Notary"), "fixture layout changed");
    let err = load_policies(&text, "notary.yaml").expect_err("keys are not Notary's");
    let PolicyError::Invalid { errors, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].path,
        "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys"
    );
    assert_eq!(errors[0].message, "keys are not allowed for type Notary");

    let notary = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: notary}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - type: Notary
      failureAction: Enforce
      imageReferences: ["*"]
      attestors:
      - entries:
        - certificates: {cert: "-----BEGIN CERTIFICATE-----"}
      attestations:
      - type: application/vnd.cyclonedx+json
        attestors:
        - entries:
          - certificates: {}
"#;
    let err = load_policies(notary, "notary.yaml").expect_err("certificates are required");
    let PolicyError::Invalid { errors, .. } = &err else {
        panic!("{err:?}");
    };
    let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "spec.rules[0].verifyImages[0].attestations[0].attestors[0].entries[0].certificates: cert or certChain is required"
        ],
        "{err}"
    );
    let fixed = notary.replace("certificates: {}", "certificates: {certChain: x}");
    load_policies(&fixed, "notary.yaml").expect("a Notary entry with certificates loads");
}

#[test]
fn escaped_variables_in_image_references_are_not_variables() {
    let text = fixture("current_key.yaml").replace(
        "      - \"ghcr.io/kyverno/test-verify-image:*\"\n",
        "      - \"ghcr.io/kyverno/test-verify-image:*\"\n      - '\\{{ x }}'\n",
    );
    assert!(text.contains("'\\{{ x }}'"), "fixture layout changed");
    // The escaped variable is checked (and refused) as an image pattern, not as a
    // variable.
    let err = load_policies(&text, "escaped.yaml").expect_err("not an image");
    let PolicyError::Invalid { errors, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].path,
        "spec.rules[0].verifyImages[0].imageReferences[1]"
    );
    assert!(
        errors[0].message.starts_with("invalid image pattern"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// The 2021 `key:` form keeps its meaning (issue 9 item 1, policy side)
// ---------------------------------------------------------------------------------------

#[test]
fn legacy_key_form_is_told_apart_from_attestor_keys() {
    let legacy = load_one("legacy_key.yaml");
    let keys = legacy.spec.rules[0].verify_images[0].attestors[0].entries[0]
        .keys
        .as_ref()
        .unwrap();
    assert!(keys.legacy_key_form);
    assert!(!keys.requires_tlog());

    let current = load_one("current_key.yaml");
    let keys = current.spec.rules[0].verify_images[0].attestors[0].entries[0]
        .keys
        .as_ref()
        .unwrap();
    assert!(!keys.legacy_key_form);
    assert!(keys.requires_tlog());

    // rekor.ignoreTlog still turns the log off for the current form.
    let ignoring = fixture("current_key.yaml").replace(
        "-----END PUBLIC KEY-----\n",
        "-----END PUBLIC KEY-----\n            rekor: {ignoreTlog: true}\n",
    );
    let ignoring = load_policies(&ignoring, "ignore.yaml").unwrap().remove(0);
    let keys = ignoring.spec.rules[0].verify_images[0].attestors[0].entries[0]
        .keys
        .as_ref()
        .unwrap();
    assert!(
        keys.rekor.as_ref().is_some_and(|r| r.ignore_tlog),
        "fixture layout changed"
    );
    assert!(!keys.requires_tlog());

    // Normalising again keeps the mark; a cache key made from the serialised entry
    // tells the forms apart.
    let mut again = legacy.clone();
    normalize(&mut again);
    assert_eq!(again, legacy);
    let serialised = |p: &Policy| serde_json::to_string(&p.spec.rules[0].verify_images[0]).unwrap();
    assert_ne!(serialised(&legacy), serialised(&current));
}

#[test]
fn the_mark_cannot_be_written_in_yaml() {
    let text = fixture("current_key.yaml").replace(
        "-----END PUBLIC KEY-----\n",
        "-----END PUBLIC KEY-----\n            legacyKeyForm: true\n",
    );
    assert!(text.contains("legacyKeyForm"), "fixture layout changed");
    let policy = load_policies(&text, "forged.yaml").unwrap().remove(0);
    let keys = policy.spec.rules[0].verify_images[0].attestors[0].entries[0]
        .keys
        .as_ref()
        .unwrap();
    assert!(!keys.legacy_key_form);
    assert!(keys.requires_tlog());
}

#[test]
fn legacy_key_attests_its_attestations_without_the_log_also_in_autogen_rules() {
    let policy = load_one("legacy_key_attestations.yaml");
    let rules = imagegate_policy::autogen::expand_rules(&policy);
    assert_eq!(rules.len(), 3, "Pod rule and two autogen rules");
    for rule in &rules {
        let iv = &rule.verify_images[0];
        assert!(iv.attestors.is_empty(), "{}", rule.name);
        let keys = iv.attestations[0].attestors[0].entries[0]
            .keys
            .as_ref()
            .unwrap();
        assert!(keys.legacy_key_form, "{}", rule.name);
        assert!(!keys.requires_tlog(), "{}", rule.name);
        assert!(iv.failure_action_inherited, "{}", rule.name);
    }
    // The autogen rules were rewritten (round-tripped through JSON).
    let autogen = serde_json::to_string(&rules[1]).unwrap();
    assert!(
        autogen.contains("request.object.spec.template.metadata.name"),
        "{autogen}"
    );
}
