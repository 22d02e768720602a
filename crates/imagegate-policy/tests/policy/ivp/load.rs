//! Loading and validation: mixed files, and errors with field paths.

use imagegate_policy::load::load_documents;
use imagegate_policy::unsupported::PROVIDERS_IGNORED;

use super::support::{BASE, VERIFY_COSIGN, load, load_error, policy_text};

#[test]
fn mixed_multi_document_file_loads_every_kind() {
    let text = format!(
        "{}\n---\n{}\n---\n{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        policy_text(VERIFY_COSIGN, ""),
        policy_text(VERIFY_COSIGN, "")
            .replace(
                "kind: ImageValidatingPolicy",
                "kind: NamespacedImageValidatingPolicy"
            )
            .replace("name: check-images", "name: ns-images\n  namespace: team-a")
            .replace(
                "policies.kyverno.io/v1beta1",
                "policies.kyverno.io/v1alpha1"
            ),
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: classic
spec:
  rules:
  - name: r
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["registry.test/*"]
      mutateDigest: false
      attestors:
      - entries:
        - keys:
            publicKeys: "-----BEGIN PUBLIC KEY-----\nTEST\n-----END PUBLIC KEY-----"
"#
    );
    let loaded = load_documents(&text, "mixed.yaml").unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = loaded
        .image_validating
        .iter()
        .map(|p| p.display_name())
        .collect();
    assert_eq!(
        names,
        [
            "ImageValidatingPolicy/check-images",
            "NamespacedImageValidatingPolicy/team-a/ns-images"
        ]
    );
    assert_eq!(loaded.policies.len(), 1);
    assert_eq!(loaded.skipped.len(), 1);
}

/// (what to change in [`BASE`], the expected `path: message` line).
const INVALID: &[(&str, &str, &str)] = &[
    (
        "CEL syntax error at its path",
        "VALIDATIONS2:  - expression: images.containers.all(i, ",
        "spec.validations[1].expression: compilation failed",
    ),
    (
        "undeclared identifier",
        "VALIDATIONS:  - expression: objekt.metadata.name == 'x'",
        "spec.validations[0].expression: undeclared reference to 'objekt'",
    ),
    (
        "unknown attestor",
        "VALIDATIONS:  - expression: images.containers.all(i, verifyImageSignatures(i, [attestors.nope]) > 0)",
        "spec.validations[0].expression: attestors.nope: no attestor named 'nope' is declared",
    ),
    (
        "unknown attestation",
        "VALIDATIONS:  - expression: images.containers.all(i, verifyAttestationSignatures(i, attestations.vex, [attestors.cosign]) > 0)",
        "spec.validations[0].expression: attestations.vex: no attestation named 'vex' is declared",
    ),
    (
        "unknown variable",
        "VALIDATIONS:  - expression: variables.missing",
        "spec.validations[0].expression: variables.missing: no variable named 'missing' is declared",
    ),
    (
        "match conditions cannot read images",
        "EXTRA:  matchConditions:\n  - name: c\n    expression: size(images.containers) > 0",
        "spec.matchConditions[0].expression: undeclared reference to 'images'",
    ),
    (
        "I/O from CEL refused",
        "EXTRA:  variables:\n  - name: cm\n    expression: resource.Get('v1', 'configmaps', 'default', 'keys')",
        "spec.variables[0].expression: resource.Get() is not supported: imagegate evaluates CEL without I/O",
    ),
    (
        "KMS keys refused",
        "REPLACE:data: \"-----BEGIN PUBLIC KEY-----\\nTEST\\n-----END PUBLIC KEY-----\"=>kms: awskms:///alias/key",
        "spec.attestors[0].cosign.key.kms: KMS keys are not supported by imagegate",
    ),
    (
        "Deny and Warn together",
        "EXTRA:  validationActions: [Deny, Warn]",
        "spec.validationActions: Deny and Warn may not be used together",
    ),
    (
        "glob and expression together",
        "REPLACE:- glob: \"registry.test/*\"=>- glob: \"registry.test/*\"\n    expression: \"true\"",
        "spec.matchImageReferences[0]: only one of glob or expression may be set",
    ),
    (
        "no matchConstraints",
        "REPLACE:  matchConstraints:=>  unusedConstraints:",
        "spec.matchConstraints: a matchConstraints with at least one resource rule is required",
    ),
    (
        "duplicate attestor",
        "REPLACE:- name: notary=>- name: cosign",
        "spec.attestors[1]: duplicate name 'cosign'",
    ),
    (
        "bad operation",
        "REPLACE:[CREATE, UPDATE]=>[CREATE, PATCH]",
        "spec.matchConstraints.resourceRules[0].operations[1]: unsupported value 'PATCH'",
    ),
    (
        "bad apiVersion",
        "REPLACE:policies.kyverno.io/v1beta1=>policies.kyverno.io/v2",
        "apiVersion: unsupported apiVersion 'policies.kyverno.io/v2'",
    ),
    (
        "unknown validation action, in the API server's words",
        "EXTRA:  validationActions: [test]",
        "spec.validationActions[0]: Unsupported value: \"test\": supported values: \"Deny\", \"Audit\", \"Warn\"",
    ),
    (
        "timeout out of range",
        "EXTRA:  webhookConfiguration:\n    timeoutSeconds: 31",
        "spec.webhookConfiguration.timeoutSeconds: must be between 1 and 30 seconds",
    ),
    (
        "bad identity regexp",
        "REPLACE:      key:\n        data: \"-----BEGIN PUBLIC KEY-----\\nTEST\\n-----END PUBLIC KEY-----\"=>      keyless:\n        identities:\n        - subjectRegExp: \"(unclosed\"",
        "spec.attestors[0].cosign.keyless.identities[0].subjectRegExp: invalid regular expression",
    ),
    (
        "unsupported Kubernetes library",
        "VALIDATIONS:  - expression: url('https://x.test').getHost() == 'x.test'",
        "spec.validations[0].expression: url() is not supported (Kubernetes URL library is not available)",
    ),
];

#[test]
fn invalid_policies_report_the_field_path() {
    for (case, change, want) in INVALID {
        let text = if let Some(v) = change.strip_prefix("VALIDATIONS:") {
            policy_text(v, "")
        } else if let Some(v) = change.strip_prefix("VALIDATIONS2:") {
            policy_text(&format!("{VERIFY_COSIGN}\n{v}"), "")
        } else if let Some(e) = change.strip_prefix("EXTRA:") {
            policy_text(VERIFY_COSIGN, e)
        } else if let Some(r) = change.strip_prefix("REPLACE:") {
            let (from, to) = r.split_once("=>").unwrap_or((r, ""));
            assert!(BASE.contains(from), "{case}: BASE lacks {from:?}");
            policy_text(VERIFY_COSIGN, "").replace(from, to)
        } else {
            panic!("{case}: bad change")
        };
        let error = load_error(&text);
        assert!(
            error.contains(want),
            "{case}: expected `{want}` in:\n{error}"
        );
        assert!(
            error.contains("ImageValidatingPolicy/check-images"),
            "{case}: error does not name the policy:\n{error}"
        );
    }
}

#[test]
fn a_valid_policy_loads_with_defaults() {
    let p = load(&policy_text(VERIFY_COSIGN, ""));
    let spec = &p.policy.spec;
    assert_eq!(
        spec.failure_policy(),
        imagegate_policy::ivp::model::FailurePolicy::Fail
    );
    assert_eq!(
        spec.validation_actions(),
        [imagegate_policy::ivp::model::ValidationAction::Deny]
    );
    assert!(spec.validation_configurations.mutate_digest());
    assert!(!spec.validation_configurations.verify_digest());
    assert!(spec.validation_configurations.required());
    assert!(spec.admission_enabled() && spec.background_enabled());
}

#[test]
fn comprehension_variables_and_namespaces_are_not_undeclared() {
    load(&policy_text(
        r#"  - expression: >-
      images.containers.map(image, image(image).registry()).all(r, r.startsWith('registry'))
      && lists.range(2).size() == 2 && math.greatest(1, 2) == 2
      && 'a,b'.split(',').size() == 2 && base64.encode(b'x') == 'eA=='
      && object.?metadata.?labels.orValue({}).size() >= 0"#,
        "",
    ));
}

#[test]
fn credentials_imagegate_does_not_act_on_are_warned_about_with_their_path() {
    // Issue 9 item 4 for ImageValidatingPolicies: `allowInsecureRegistry` is acted on
    // (no warning), and so are `secrets` (read in cluster mode, as a ClusterPolicy's
    // `imageRegistryCredentials.secrets`); providers are not yet.
    let extra = "  credentials:\n    allowInsecureRegistry: true\n    providers: [amazon]\n    secrets: [regcred]";
    let loaded = load_documents(&policy_text(VERIFY_COSIGN, extra), "creds.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let prefix = "creds.yaml: ImageValidatingPolicy/check-images: spec.credentials";
    assert_eq!(got, [format!("{prefix}.providers: {PROVIDERS_IGNORED}")]);
    let only_insecure = "  credentials:\n    allowInsecureRegistry: true";
    let loaded = load_documents(&policy_text(VERIFY_COSIGN, only_insecure), "creds.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}
