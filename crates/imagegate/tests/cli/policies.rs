//! Kyverno `verifyImages` policies end to end against a real registry:
//!
//! - `imagegate test` on the Kyverno CLI test folders of `tests/data/kyverno/` (ports of
//!   the shape of Kyverno's own verifyImages tests);
//! - the two attestation policies of `../shared/vectors/dsse/kyverno-attestations`
//!   with Kyverno's recorded outcomes;
//! - `imagegate review` on the AdmissionReviews of `tests/data/reviews/`;
//! - `imagegate apply` output, `-o json`, `--policy-report` and exit codes.
//!
//! The registry address, keys and digests are random, so the committed fixtures carry
//! placeholders (`@REGISTRY@`, `@KEY_A@`, `@DIGEST_SIGNED@`, ...) that the test kit's
//! [`World`] substitutes into a temporary copy after pushing and signing (the engine's
//! tests read the same AdmissionReviews through it).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use imagegate_testkit::fixtures::{SIGNED_POD_REVIEWS, World, copy_substituted, decoded_patch};
use imagegate_testkit::{Registry, vectors_dir};
use serde_json::{Value, json};

use crate::util::{Run, imagegate, imagegate_with_input, write};

/// The committed fixtures of this test binary.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Runs `imagegate test` on one materialised fixture folder and checks that all of its
/// `expected` rows passed.
#[track_caller]
fn assert_kyverno_test(world: &World, case: &str, expected: usize) -> Run {
    let dir = world.materialize(&format!("kyverno/{case}"));
    let run = imagegate(&["test", dir.path().to_str().unwrap()], &[]);
    let closing = run
        .stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        (run.code, closing.as_str()),
        (0, format!("{expected} passed, 0 failed").as_str()),
        "imagegate test {case}\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    run
}

// ---------------------------------------------------------------------------------
// Kyverno CLI test folders
// ---------------------------------------------------------------------------------

#[test]
fn kyverno_test_image_validating_policy_sample() {
    // Kyverno's `test-image-validating-policy/sample-policy`: `isImageValidatingPolicy`
    // results matched by policy name.
    assert_kyverno_test(&World::new(data_dir()), "ivpol-sample-policy", 2);
}

#[test]
fn apply_image_validating_policy_without_messages() {
    // Kyverno's `test-image-validating-policy/empty-message` (its apply test: the bad
    // pod fails, the good one passes), with Kyverno's default message.
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/ivpol-empty-message");
    let run = |pod: &str| {
        let run = imagegate(
            &[
                "apply",
                "--policy",
                dir.path().join("policy.yaml").to_str().unwrap(),
                "--resource",
                dir.path().join(pod).to_str().unwrap(),
                "-o",
                "json",
            ],
            &[],
        );
        let document: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{e}\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr));
        (run, document)
    };
    let (bad, document) = run("bad-pod.yaml");
    bad.assert_code(1);
    assert_eq!(
        document["results"],
        json!([{
            "policy": "ivpol-sample",
            "rule": "ivpol-sample",
            "resource": "Pod/default/bad-pod",
            "result": "fail",
            "message": "CEL expression validation failed at index 0",
        }])
    );
    let (good, document) = run("good-pod.yaml");
    good.assert_code(0);
    assert_eq!(document["results"][0]["result"], "pass", "{document:#}");
    assert_eq!(document["summary"]["pass"], 1, "{document:#}");
    // mutateDigest (default true) pinned the verified digest.
    let pinned = format!("{}/ivpol/test-verify-image:signed@", world.vars["REGISTRY"]);
    let image = document["resources"][0]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default();
    assert!(image.starts_with(&pinned), "{image}");
}

#[test]
fn kyverno_test_image_validating_policy_with_cel_exceptions() {
    // Kyverno's `test-image-validating-policy/with-cel-exceptions`: a
    // `policies.kyverno.io` PolicyException from the test's `exceptions:` skips the Pod
    // its CEL condition names.
    assert_kyverno_test(&World::new(data_dir()), "ivpol-with-cel-exceptions", 3);
}

#[test]
fn apply_cel_policy_exception_from_the_exception_flag() {
    // Kyverno's apply test of the same folder (`--exception`, `--policy-report`): pass 1,
    // fail 1, skip 1.
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/ivpol-with-cel-exceptions");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let run = imagegate(
        &[
            "apply",
            "--policy",
            &path("policy.yaml"),
            "--resource",
            &path("resources.yaml"),
            "--exception",
            &path("exception.yaml"),
            "--policy-report",
        ],
        &[],
    );
    run.assert_code(1);
    let report: Value = serde_saphyr::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr));
    assert_eq!(
        report["summary"],
        json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 1}),
        "{report:#}"
    );
    let skipped: Vec<&Value> = report["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["result"] == "skip")
        .collect();
    assert_eq!(skipped.len(), 1, "{report:#}");
    assert_eq!(skipped[0]["resources"][0]["name"], "skipped-pod");
    assert_eq!(
        skipped[0]["message"],
        "rule is skipped due to policy exception: check-name"
    );

    // Without the exception the skipped Pod fails like the bad one.
    let run = apply(
        dir.path(),
        "policy.yaml",
        &["resources.yaml"],
        &["-o", "json"],
    );
    run.assert_code(1);
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        document["summary"],
        json!({"pass": 1, "fail": 2, "warn": 0, "error": 0, "skip": 0}),
        "{document:#}"
    );

    // The exception among the resources, as Kyverno's CLI takes it, gives the same skip.
    let resources = std::fs::read_to_string(path("resources.yaml")).unwrap();
    let exception = std::fs::read_to_string(path("exception.yaml")).unwrap();
    std::fs::write(
        path("resources-and-exception.yaml"),
        format!("{resources}---\n{exception}"),
    )
    .unwrap();
    let run = apply(
        dir.path(),
        "policy.yaml",
        &["resources-and-exception.yaml"],
        &[],
    );
    run.assert_code(1);
    assert!(
        run.stdout
            .contains("pass: 1, fail: 1, warn: 0, error: 0, skip: 1"),
        "{}",
        run.stdout
    );
}

#[test]
fn apply_json_payloads_to_a_json_mode_policy() {
    // Kyverno's `test-image-validating-policy/check-json` apply test (`--json` twice,
    // `--policy-report`): pass 1, fail 1.
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/ivpol-check-json");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let args = |output: &'static [&'static str]| -> Run {
        let (policy, pass, fail) = (
            path("ivpol-json.yaml"),
            path("ivpol-payload-pass.json"),
            path("ivpol-payload-fail.json"),
        );
        let mut args = vec![
            "apply", "--policy", &policy, "--json", &pass, "--json", &fail,
        ];
        args.extend(output);
        imagegate(&args, &[])
    };
    let run = args(&["--policy-report"]);
    run.assert_code(1);
    let report: Value = serde_saphyr::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr));
    assert_eq!(
        report["summary"],
        json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0}),
        "{report:#}"
    );
    let run = args(&["-o", "json"]);
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    let results: Vec<(&Value, &Value)> = document["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (&r["result"], &r["message"]))
        .collect();
    assert_eq!(
        results,
        [
            (&json!("pass"), &json!("success")),
            (
                &json!("fail"),
                &json!("failed to verify image with notary cert")
            )
        ],
        "{document:#}"
    );
    // The same payload given as a resource is no JSON payload: the JSON-mode policy
    // skips it (nothing verified).
    let run = imagegate(
        &[
            "apply",
            "--policy",
            &path("ivpol-json.yaml"),
            "--resource",
            &path("ivpol-payload-fail.json"),
        ],
        &[],
    );
    run.assert_code(0);
    assert!(
        run.stdout
            .contains("pass: 0, fail: 0, warn: 0, error: 0, skip: 1"),
        "{}",
        run.stdout
    );
}

#[test]
fn kyverno_test_verify_image_scenarios() {
    assert_kyverno_test(&World::new(data_dir()), "test-verify-image", 7);
}

#[test]
fn kyverno_test_attestor_count_one_of_two_and_two_of_two() {
    assert_kyverno_test(&World::new(data_dir()), "attestor-count", 6);
}

#[test]
fn kyverno_test_nested_attestors() {
    assert_kyverno_test(&World::new(data_dir()), "nested-attestors", 4);
}

#[test]
fn kyverno_test_pem_with_two_keys_counts_as_two_entries() {
    assert_kyverno_test(&World::new(data_dir()), "multi-key-pem", 6);
}

#[test]
fn kyverno_test_mutate_digest() {
    assert_kyverno_test(&World::new(data_dir()), "mutate-digest", 3);
}

#[test]
fn kyverno_test_verify_digest_without_mutate_digest() {
    assert_kyverno_test(&World::new(data_dir()), "verify-digest", 2);
}

#[test]
fn kyverno_test_no_digest_checks_not_required() {
    assert_kyverno_test(&World::new(data_dir()), "no-digest-checks", 2);
}

#[test]
fn kyverno_test_audit_reports_failures() {
    assert_kyverno_test(&World::new(data_dir()), "audit", 2);
}

#[test]
fn kyverno_test_autogen_deployment_and_cronjob() {
    assert_kyverno_test(&World::new(data_dir()), "autogen", 3);
}

#[test]
fn kyverno_test_policy_exceptions() {
    // Kyverno's test-exceptions/exceptions-1 with verifyImages: `exceptions:` in
    // kyverno-test.yaml; the exception covers Pods and Deployments named
    // important-tool* in delta only.
    assert_kyverno_test(&World::new(data_dir()), "exceptions", 5);
}

#[test]
fn kyverno_test_skip_image_references() {
    assert_kyverno_test(&World::new(data_dir()), "skip-image-references", 3);
}

#[test]
fn kyverno_test_separate_signature_repository() {
    assert_kyverno_test(&World::new(data_dir()), "signature-repository", 3);
}

#[test]
fn kyverno_test_attestation_conditions() {
    assert_kyverno_test(&World::new(data_dir()), "attestation-conditions", 3);
}

#[test]
fn kyverno_test_multi_container_pods() {
    assert_kyverno_test(&World::new(data_dir()), "multi-container", 3);
}

#[test]
fn kyverno_test_keys_without_ignore_tlog_need_the_transparency_log() {
    assert_kyverno_test(&World::new(data_dir()), "transparency-log", 1);
}

#[test]
fn kyverno_test_context_values_keys_in_a_config_map() {
    // Kyverno's "keys in a ConfigMap" pattern without a cluster: `variables:
    // values.yaml` gives the ConfigMap's key per rule (the signed image passes with
    // key A, fails with key B) and per resource, and the namespaces' labels for a
    // namespaceSelector (a namespace it does not describe fails closed).
    assert_kyverno_test(&World::new(data_dir()), "context-values", 9);
}

#[test]
fn kyverno_test_values_written_in_the_test_file() {
    // Kyverno's `values:` of a kyverno-test.yaml: the same values inline.
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/context-values");
    let read = |name: &str| -> Value {
        serde_saphyr::from_str(&std::fs::read_to_string(dir.path().join(name)).unwrap()).unwrap()
    };
    let mut test = read("kyverno-test.yaml");
    let test_fields = test.as_object_mut().unwrap();
    test_fields.remove("variables");
    test_fields.insert("values".into(), read("values.yaml"));
    std::fs::remove_file(dir.path().join("values.yaml")).unwrap();
    // JSON is YAML.
    std::fs::write(
        dir.path().join("kyverno-test.yaml"),
        serde_json::to_string_pretty(&test).unwrap(),
    )
    .unwrap();
    let run = imagegate(&["test", dir.path().to_str().unwrap()], &[]);
    run.assert_code(0);
    assert!(
        run.stdout.ends_with("\n9 passed, 0 failed\n"),
        "{}",
        run.stdout
    );
}

/// The `apply -o json` result of `policy` on `resource` (`Kind/ns/name`), null when
/// the policy gave none.
fn result_of<'a>(document: &'a Value, policy: &str, resource: &str) -> &'a Value {
    document["results"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["policy"] == policy && r["resource"] == resource)
        .unwrap_or(&Value::Null)
}

#[test]
fn apply_values_file_stands_in_for_the_cluster() {
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/context-values");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (policy, resources, values) = (
        path("policy.yaml"),
        path("resources.yaml"),
        path("values.yaml"),
    );
    let apply = |extra: &[&str]| {
        let mut args = vec![
            "apply",
            "--policy",
            &policy,
            "--resource",
            &resources,
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        let run = imagegate(&args, &[]);
        let document: Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{e}\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr));
        (run, document)
    };
    let no_cluster = "failed to load context: failed to retrieve config map for context entry keys: failed to get configmap kyverno/keys : configmap kyverno/keys cannot be resolved without a cluster (imagegate serve in cluster mode)";

    let (run, given) = apply(&["--values-file", &values]);
    run.assert_code(1);
    let signed = result_of(&given, "keys-in-configmap", "Pod/default/signed");
    assert_eq!(signed["result"], "pass", "{given:#}");
    assert!(
        signed["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("verified image signatures for ")),
        "{signed}"
    );
    assert_eq!(
        result_of(&given, "other-key", "Pod/default/signed")["result"],
        "fail",
        "another key given: {given:#}"
    );
    assert_eq!(
        result_of(&given, "keys-in-configmap", "Pod/sandbox/unsigned-sandbox"),
        &Value::Null,
        "the namespace's labels (from the values) do not select it: {given:#}"
    );
    // A resource given no value reads the ConfigMap: the usual error without a cluster.
    let unsigned = result_of(&given, "per-resource", "Pod/team/unsigned-team");
    assert_eq!(
        (&unsigned["result"], &unsigned["message"]),
        (&json!("fail"), &json!(no_cluster))
    );

    // Without the values (`-f` is Kyverno's short flag for them): every ConfigMap read
    // is that error, and unknown namespace labels fail closed.
    let (run, without) = apply(&[]);
    run.assert_code(1);
    let signed = result_of(&without, "keys-in-configmap", "Pod/default/signed");
    assert_eq!(signed["message"], no_cluster, "{without:#}");
    assert_eq!(
        result_of(
            &without,
            "keys-in-configmap",
            "Pod/sandbox/unsigned-sandbox"
        )["result"],
        "fail",
        "{without:#}"
    );
    let (run, short) = apply(&["-f", &values]);
    run.assert_code(1);
    assert_eq!(short["results"], given["results"]);
}

#[test]
fn malformed_values_files_are_errors_naming_file_and_field() {
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/context-values");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (policy, resources) = (path("policy.yaml"), path("resources.yaml"));
    let apply = |values: &str| {
        imagegate(
            &[
                "apply",
                "--policy",
                &policy,
                "--resource",
                &resources,
                "--values-file",
                values,
            ],
            &[],
        )
    };
    let cases = [
        // Kyverno's own _testdata/values/bad-format.yaml.
        (
            "bad-format.yaml",
            "foo: bar\n\nnamespaceSelector:\n  - name: test1\n    labels:\n      foo.com/managed-state: managed\n",
            "foo: unknown field",
        ),
        (
            "list-values.yaml",
            "policies:\n  - name: p\n    rules:\n      - name: r\n        values: [1]\n",
            "policies[0].rules[0].values: expected a map, found a list",
        ),
        (
            "operation.yaml",
            "globalValues:\n  request.operation: PATCH\n",
            "globalValues.request.operation: invalid request.operation value \"PATCH\", must be one of CREATE, UPDATE, DELETE, CONNECT",
        ),
        ("broken.yaml", "policies: [\n", ""),
    ];
    for (name, text, field) in cases {
        let file = write(dir.path(), name, text);
        let run = apply(&file);
        run.assert_code(2);
        run.assert_stderr_contains(&format!("values file {file}: {field}"));
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    // Hostile input: no larger than a policy file (8 MiB), refused before parsing.
    let huge = write(
        dir.path(),
        "huge.yaml",
        &format!("globalValues:\n  a: \"{}\"\n", "x".repeat(9 << 20)),
    );
    apply(&huge)
        .assert_code(2)
        .assert_stderr_contains(&format!("{huge}: file is"))
        .assert_stderr_contains("larger than the limit of 8388608 bytes");
    apply(&path("missing.yaml"))
        .assert_code(2)
        .assert_stderr_contains("missing.yaml");

    // The same through a kyverno-test.yaml: that test errors, naming the values file.
    let bad = write(dir.path(), "bad.yaml", "globalValues: [a]\n");
    let test = std::fs::read_to_string(dir.path().join("kyverno-test.yaml"))
        .unwrap()
        .replace("variables: values.yaml", "variables: bad.yaml");
    write(dir.path(), "kyverno-test.yaml", &test);
    let run = imagegate(&["test", dir.path().to_str().unwrap()], &[]);
    run.assert_code(1);
    assert!(
        run.stdout.contains(&format!(
            "error: values file {bad}: globalValues: expected a map, found a list"
        )),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------------
// Kyverno's recorded attestation outcomes (../shared/vectors)
// ---------------------------------------------------------------------------------

/// The three envelopes of `dsse/kyverno-attestations` pushed as `.att` layers for the
/// statements' subject digest under `<registry>/jimbugwadia/pause2`; both policies give
/// Kyverno's recorded outcome (testPolicyGood → pass, testPolicyBad → fail).
#[test]
fn kyverno_attestation_vectors() {
    let Some(vectors) = vectors_dir() else {
        eprintln!("skipped: ../shared/vectors is absent");
        return;
    };
    let dir = vectors.join("dsse/kyverno-attestations");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let digest = meta["image"]["subject_digest_in_statements"]
        .as_str()
        .unwrap()
        .to_owned();
    let registry = Registry::start();
    let pusher = registry.pusher();
    for envelope in meta["envelopes"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(envelope["file"].as_str().unwrap())).unwrap();
        pusher.push_attestation_layer(
            "jimbugwadia/pause2",
            &digest,
            &bytes,
            envelope["predicateType"].as_str().unwrap(),
        );
    }
    drop(pusher);
    let vars = BTreeMap::from([
        ("REGISTRY", registry.host()),
        (
            "VECTOR_KEY",
            std::fs::read_to_string(dir.join("cosign.pub")).unwrap(),
        ),
        ("VECTOR_DIGEST", digest.clone()),
    ]);
    let cases = tempfile::tempdir().unwrap();
    copy_substituted(
        &data_dir().join("kyverno/kyverno-attestations"),
        cases.path(),
        &vars,
    );

    // Both Kyverno CLI test folders at once.
    let run = imagegate(&["test", cases.path().to_str().unwrap()], &[]);
    run.assert_code(0);
    assert!(
        run.stdout.ends_with("\n2 passed, 0 failed\n"),
        "{}",
        run.stdout
    );

    // testPolicyGood: one rule response, pass; the image is marked verified.
    let image = format!("{}/jimbugwadia/pause2@{digest}", registry.host());
    let good = apply_json(&cases.path().join("good"));
    good.0.assert_code(0);
    let results = good.1["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["result"], "pass", "{results:#?}");
    assert_eq!(
        results[0]["message"],
        format!("verified image attestations for {image}")
    );
    let annotations = &good.1["resources"][0]["metadata"]["annotations"];
    let verified: Value =
        serde_json::from_str(annotations["kyverno.io/verify-images"].as_str().unwrap()).unwrap();
    assert_eq!(verified, json!({ image.clone(): "pass" }));

    // testPolicyBad: one rule response, fail, because of the branch condition.
    let bad = apply_json(&cases.path().join("bad"));
    bad.0.assert_code(1);
    let results = bad.1["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["result"], "fail");
    let message = results[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("failed to verify image {image}: "))
            && message.contains(&format!(
                "attestation checks failed for {image} and predicate https://example.com/CodeReview/v1"
            )),
        "{message}"
    );
    assert!(
        bad.1["resources"][0]["metadata"]["annotations"]
            .get("kyverno.io/verify-images")
            .is_none(),
        "{:#}",
        bad.1["resources"][0]
    );
}

/// `imagegate apply -o json` on the `policy.yaml` and `resources.yaml` of `dir`.
fn apply_json(dir: &Path) -> (Run, Value) {
    let run = imagegate(
        &[
            "apply",
            "--policy",
            dir.join("policy.yaml").to_str().unwrap(),
            "--resource",
            dir.join("resources.yaml").to_str().unwrap(),
            "-o",
            "json",
        ],
        &[],
    );
    let document = serde_json::from_str(&run.stdout).unwrap_or_else(|e| {
        panic!(
            "apply -o json printed no JSON ({e})\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        )
    });
    (run, document)
}

// ---------------------------------------------------------------------------------
// imagegate review
// ---------------------------------------------------------------------------------

/// Runs `imagegate review --policy POLICY [ARGS] < REVIEW` with the fixtures of
/// `tests/data/reviews/` materialised for `world`.
fn review(world: &World, policy: &str, review: &str, args: &[&str]) -> (Run, Value) {
    let dir = world.materialize("reviews");
    let policy = dir.path().join(policy);
    let mut all: Vec<&OsStr> = vec!["review".as_ref(), "--policy".as_ref(), policy.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    let input = std::fs::read(dir.path().join(review)).unwrap();
    let run = imagegate_with_input(&all, &input);
    let answer = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run, answer)
}

#[test]
fn review_signed_pod_is_allowed_and_pinned_v1_and_v1beta1() {
    let world = World::new(data_dir());
    let host = &world.vars["REGISTRY"];
    let pinned = format!(
        "{host}/kyverno/test-verify-image:signed@{}",
        world.vars["DIGEST_SIGNED"]
    );
    for (file, api_version, uid) in SIGNED_POD_REVIEWS {
        let (run, answer) = review(&world, "policy-enforce.yaml", file, &[]);
        run.assert_code(0);
        assert_eq!(answer["apiVersion"], api_version, "{file}");
        assert_eq!(answer["kind"], "AdmissionReview");
        let response = &answer["response"];
        assert_eq!(response["uid"], uid);
        assert_eq!(response["allowed"], true);
        assert!(response.get("status").is_none(), "{response:#}");
        assert_eq!(
            Value::from(decoded_patch(response)),
            json!([
                {"op": "replace", "path": "/spec/containers/0/image", "value": pinned},
                {"op": "add", "path": "/metadata/annotations", "value": {
                    "kyverno.io/verify-images": format!("{{\"{pinned}\":\"pass\"}}")
                }},
            ]),
            "{file}"
        );
    }
}

#[test]
fn review_validate_phase_allows_the_pinned_pod_without_a_patch() {
    let world = World::new(data_dir());
    let (run, answer) = review(
        &world,
        "policy-enforce.yaml",
        "signed-pod-pinned-v1.json",
        &["--phase", "validate"],
    );
    run.assert_code(0);
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{response:#}");
    assert!(response.get("patch").is_none(), "{response:#}");
    assert!(response.get("warnings").is_none(), "{response:#}");
}

#[test]
fn review_unsigned_pod_is_denied_with_kyvernos_message() {
    let world = World::new(data_dir());
    let (run, answer) = review(&world, "policy-enforce.yaml", "unsigned-pod-v1.json", &[]);
    run.assert_code(1);
    let response = &answer["response"];
    assert_eq!(response["uid"], "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a04");
    assert_eq!(response["allowed"], false);
    assert!(response.get("patch").is_none(), "{response:#}");
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(
        response["status"]["message"],
        format!(
            "\n\nresource Pod/default/unsigned was blocked due to the following policies\n\n\
             check-image:\n  verify-signature: 'failed to verify image {}/kyverno/test-verify-image:unsigned: \
             .attestors[0].entries[0].keys: no signatures found'\n",
            world.vars["REGISTRY"]
        )
    );
}

#[test]
fn review_image_validating_policy_denies_with_kyvernos_text() {
    let world = World::new(data_dir());
    let (run, answer) = review(
        &world,
        "policy-ivp.yaml",
        "unsigned-prod-pod-v1.json",
        &["--phase", "validate"],
    );
    run.assert_code(1);
    let response = &answer["response"];
    assert_eq!(response["allowed"], false, "{response:#}");
    // The chainsaw assertion after `denied the request: `.
    assert_eq!(
        response["status"]["message"],
        "Policy ivpol-sample failed: failed to verify image with notary cert"
    );

    let (run, answer) = review(
        &world,
        "policy-ivp.yaml",
        "signed-prod-pod-v1.json",
        &["--phase", "validate"],
    );
    run.assert_code(0);
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{response:#}");
    assert!(response.get("patch").is_none(), "{response:#}");
    assert!(response.get("warnings").is_none(), "{response:#}");
}

#[test]
fn review_validate_phase_never_trusts_a_client_supplied_annotation() {
    let world = World::new(data_dir());
    let (run, answer) = review(
        &world,
        "policy-enforce.yaml",
        "forged-annotation-v1.json",
        &["--phase", "validate"],
    );
    run.assert_code(1);
    let response = &answer["response"];
    assert_eq!(response["allowed"], false, "{response:#}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("resource Pod/default/unsigned was blocked")
            && message.contains(&format!(
                "failed to verify image {}/kyverno/test-verify-image@{}: .attestors[0].entries[0].keys: no signatures found",
                world.vars["REGISTRY"], world.vars["DIGEST_UNSIGNED"]
            )),
        "{message}"
    );
}

#[test]
fn review_audit_failure_is_allowed_with_a_warning() {
    let world = World::new(data_dir());
    let (run, answer) = review(&world, "policy-audit.yaml", "unsigned-pod-v1.json", &[]);
    run.assert_code(0);
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{response:#}");
    assert!(response.get("status").is_none(), "{response:#}");
    assert!(response.get("patch").is_none(), "{response:#}");
    assert_eq!(
        response["warnings"],
        json!([format!(
            "policy audit-image.verify-signature: failed to verify image {}/kyverno/test-verify-image:unsigned: \
             .attestors[0].entries[0].keys: no signatures found",
            world.vars["REGISTRY"]
        )])
    );
}

#[test]
fn review_delete_is_allowed() {
    let world = World::new(data_dir());
    for phase in ["mutate", "validate"] {
        let (run, answer) = review(
            &world,
            "policy-enforce.yaml",
            "delete-v1.json",
            &["--phase", phase],
        );
        run.assert_code(0);
        assert_eq!(
            answer["response"],
            json!({"uid": "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a06", "allowed": true}),
            "{phase}"
        );
    }
}

#[test]
fn review_malformed_input_is_a_usage_error() {
    let world = World::new(data_dir());
    for (file, cause) in [
        ("malformed-no-request.json", "no request"),
        ("malformed-not-json.json", "EOF"),
    ] {
        let (run, _) = review(&world, "policy-enforce.yaml", file, &[]);
        run.assert_code(2)
            .assert_stderr_contains("malformed AdmissionReview")
            .assert_stderr_contains(cause);
        assert!(run.stdout.is_empty(), "{file}: {}", run.stdout);
    }
}

// ---------------------------------------------------------------------------------
// imagegate apply
// ---------------------------------------------------------------------------------

fn apply(dir: &Path, policy: &str, resources: &[&str], extra: &[&str]) -> Run {
    let policy = dir.join(policy);
    let resources: Vec<PathBuf> = resources.iter().map(|r| dir.join(r)).collect();
    let mut args = vec!["apply", "--policy", policy.to_str().unwrap()];
    for resource in &resources {
        args.extend(["--resource", resource.to_str().unwrap()]);
    }
    args.extend(extra);
    imagegate(&args, &[])
}

#[test]
fn apply_prints_results_summary_and_mutated_resources() {
    let world = World::new(data_dir());
    let host = &world.vars["REGISTRY"];
    let signed = world.vars["DIGEST_SIGNED"].as_str();
    let dir = world.materialize("kyverno/mutate-digest");
    let run = apply(dir.path(), "policy.yaml", &["resources.yaml"], &[]);
    run.assert_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..5],
        [
            format!(
                "mutate-digest/verify-signature: Pod/default/tagged: pass (verified image signatures for {host}/kyverno/test-verify-image:signed)"
            ),
            format!(
                "mutate-digest/verify-signature: Pod/default/pinned: pass (verified image signatures for {host}/kyverno/test-verify-image@{signed})"
            ),
            format!(
                "mutate-digest/verify-signature: Pod/default/unsigned: fail (failed to verify image {host}/kyverno/test-verify-image:unsigned: .attestors[0].entries[0].keys: no signatures found)"
            ),
            String::new(),
            "pass: 2, fail: 1, warn: 0, error: 0, skip: 0".to_owned(),
        ],
        "{}",
        run.stdout
    );
    // The mutated resources follow as YAML documents, in input order.
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&run.stdout[run.stdout.find("---").unwrap()..]).unwrap();
    let documents: Vec<&Value> = documents.iter().filter(|d| !d.is_null()).collect();
    assert_eq!(documents.len(), 3, "{}", run.stdout);
    assert_eq!(
        documents[0]["spec"]["containers"][0]["image"],
        format!("{host}/kyverno/test-verify-image:signed@{signed}")
    );
    assert_eq!(
        documents[2]["spec"]["containers"][0]["image"],
        format!("{host}/kyverno/test-verify-image:unsigned"),
        "a failed image is not pinned"
    );
    assert!(documents[2]["metadata"].get("annotations").is_none());

    // Only passing resources: exit 0.
    apply(dir.path(), "policy.yaml", &["patched-tagged.yaml"], &[]).assert_code(0);
}

#[test]
fn apply_json_output() {
    let world = World::new(data_dir());
    let host = &world.vars["REGISTRY"];
    let dir = world.materialize("kyverno/verify-digest");
    let (run, document) = apply_json(dir.path());
    run.assert_code(1);
    assert_eq!(
        document["results"],
        json!([
            {
                "policy": "verify-digest",
                "rule": "verify-signature",
                "resource": "Pod/default/tagged",
                "result": "fail",
                "message": format!("missing digest for {host}/kyverno/test-verify-image:signed"),
            },
            {
                "policy": "verify-digest",
                "rule": "verify-signature",
                "resource": "Pod/default/pinned",
                "result": "pass",
                "message": format!("verified image signatures for {host}/kyverno/test-verify-image@{}", world.vars["DIGEST_SIGNED"]),
            },
        ])
    );
    assert_eq!(
        document["summary"],
        json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
    );
    // mutateDigest: false leaves the tag alone.
    assert_eq!(
        document["resources"][0]["spec"]["containers"][0]["image"],
        format!("{host}/kyverno/test-verify-image:signed")
    );
}

#[test]
fn apply_policy_report() {
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/skip-image-references");
    let run = apply(
        dir.path(),
        "policy.yaml",
        &["resources.yaml"],
        &["--policy-report"],
    );
    run.assert_code(1);
    let report: Value = serde_saphyr::from_str(&run.stdout).unwrap();
    assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
    assert_eq!(report["kind"], "ClusterPolicyReport");
    assert_eq!(
        report["summary"],
        json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 1})
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{report:#}");
    let by_name = |name: &str| {
        results
            .iter()
            .find(|r| r["resources"][0]["name"] == name)
            .unwrap_or_else(|| panic!("no result for {name}: {report:#}"))
    };
    let skipped = by_name("unsigned");
    assert_eq!(skipped["policy"], "skip-unsigned");
    assert_eq!(skipped["rule"], "verify-signature");
    assert_eq!(skipped["result"], "skip");
    assert_eq!(
        skipped["resources"][0],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "unsigned", "namespace": "default"})
    );
    assert_eq!(by_name("signed-and-skipped")["result"], "pass");
    assert_eq!(by_name("signed-by-someone-else")["result"], "fail");
    assert!(
        by_name("signed-by-someone-else")["message"]
            .as_str()
            .unwrap()
            .contains(".attestors[0].entries[0].keys: invalid signature"),
        "{report:#}"
    );
}

#[test]
fn apply_audit_failure_is_reported() {
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/audit");
    let (run, document) = apply_json(dir.path());
    run.assert_code(1);
    assert_eq!(
        document["summary"],
        json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
    );
}

#[test]
fn apply_without_ignore_tlog_fails_with_the_transparency_log_message() {
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/transparency-log");
    let (run, document) = apply_json(dir.path());
    run.assert_code(1);
    let message = document["results"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "failed to verify image {}/kyverno/test-verify-image:signed: .attestors[0].entries[0].keys: ",
            world.vars["REGISTRY"]
        )) && message.contains("transparency log"),
        "{message}"
    );
}

#[test]
fn apply_exit_codes_for_input_errors() {
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/audit");
    // A resource file that does not exist.
    apply(dir.path(), "policy.yaml", &["missing.yaml"], &[])
        .assert_code(2)
        .assert_stderr_contains("missing.yaml");
    // A policy Kyverno would reject: Audit with mutateDigest (the default) true.
    let policy = std::fs::read_to_string(dir.path().join("policy.yaml"))
        .unwrap()
        .replace("mutateDigest: false", "mutateDigest: true");
    std::fs::write(dir.path().join("invalid.yaml"), policy).unwrap();
    let run = apply(dir.path(), "invalid.yaml", &["resources.yaml"], &[]);
    run.assert_code(2)
        .assert_stderr_contains("spec.rules[0].verifyImages[0]");
    assert!(run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn review_registry_errors_follow_the_failure_policy() {
    let world = World::new(data_dir());
    let (run, answer) = review(
        &world,
        "policy-unreachable-fail.yaml",
        "unreachable-registry-v1.json",
        &[],
    );
    run.assert_code(1);
    let response = &answer["response"];
    assert_eq!(response["allowed"], false, "{response:#}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "\n\nresource Pod/default/unreachable was blocked due to the following policies\n\n\
             unreachable-fail:\n  verify-signature: 'failed to verify image 127.0.0.1:1/app/missing:v1: "
        ),
        "{message}"
    );

    // failurePolicy: Ignore admits the request despite Enforce, with a warning.
    let (run, answer) = review(
        &world,
        "policy-unreachable-ignore.yaml",
        "unreachable-registry-v1.json",
        &[],
    );
    run.assert_code(0);
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{response:#}");
    assert!(response.get("patch").is_none(), "{response:#}");
    let warnings = response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{response:#}");
    assert!(
        warnings[0].as_str().unwrap().starts_with(
            "policy unreachable-ignore.verify-signature: failed to verify image 127.0.0.1:1/app/missing:v1: "
        ),
        "{response:#}"
    );
}

/// `--trusted-root` replaces the embedded Sigstore root; an unusable one is an input
/// error, reported before anything is evaluated.
#[test]
fn apply_refuses_an_unusable_trusted_root() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = crate::util::write(dir.path(), "root.json", "{\"not\": \"a trusted root\"}");
    let pod = crate::util::write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  containers: [{name: c, image: nginx}]\n",
    );
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");
    for root in ["/nonexistent/trusted_root.json", garbage.as_str()] {
        crate::util::imagegate(
            &[
                "apply",
                "--trusted-root",
                root,
                "--policy",
                policies,
                "--resource",
                &pod,
            ],
            &[],
        )
        .assert_code(2)
        .assert_stderr_contains("trusted root");
    }
}

/// Rules imagegate does not evaluate (validate/mutate/generate) are reported, not
/// silently ignored.
#[test]
fn unsupported_rule_types_are_reported_as_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let policy = crate::util::write(
        dir.path(),
        "policy.yaml",
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: labels}\nspec:\n  rules:\n  - name: require-team\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    validate:\n      message: team label required\n      pattern: {metadata: {labels: {team: \"?*\"}}}\n",
    );
    let pod = crate::util::write(
        dir.path(),
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  containers: [{name: c, image: nginx}]\n",
    );
    let run = crate::util::imagegate(&["apply", "--policy", &policy, "--resource", &pod], &[]);
    run.assert_code(0);
    assert!(
        run.stdout.contains(
            "labels/require-team: Pod/default/p: skip (validate rules are not evaluated by imagegate (verifyImages only))"
        ),
        "{}",
        run.stdout
    );
    run.assert_stderr_contains("not evaluated by imagegate");
}

// ---------------------------------------------------------------------------------
// PolicyExceptions in imagegate apply (Kyverno's test/cli/apply/exception-within-*)
// ---------------------------------------------------------------------------------

#[test]
fn apply_policy_exception_from_flag_policy_file_or_resources() {
    let world = World::new(data_dir());
    let dir = world.materialize("kyverno/exceptions");
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let skipped = "check-image/autogen-verify-signature: Deployment/delta/important-tool: skip \
                   (rule is skipped due to policy exceptionsdelta/delta-exception)";
    let skipped_pod = "check-image/verify-signature: Pod/delta/important-tool-debug: skip \
                       (rule is skipped due to policy exceptionsdelta/delta-exception)";
    let failed = "check-image/verify-signature: Pod/gamma/important-tool-debug: fail";

    // Without the exception every unsigned workload fails.
    let run = apply(dir.path(), "policy.yaml", &["resources.yaml"], &[]);
    run.assert_code(1);
    assert!(!run.stdout.contains(": skip ("), "{}", run.stdout);

    let with_flag = apply(
        dir.path(),
        "policy.yaml",
        &["resources.yaml"],
        &["--exception", &path("exception.yaml")],
    );
    // bad-deployment still fails.
    with_flag.assert_code(1);
    for line in [skipped, skipped_pod, failed] {
        assert!(
            with_flag.stdout.contains(line),
            "{line}\n{}",
            with_flag.stdout
        );
    }
    assert!(
        with_flag
            .stdout
            .contains("pass: 1, fail: 2, warn: 0, error: 0, skip: 2"),
        "{}",
        with_flag.stdout
    );

    // The exception written beside the policy, or among the resources (Kyverno's CLI
    // takes it from either), gives the same results.
    let policy = std::fs::read_to_string(path("policy.yaml")).unwrap();
    let exception = std::fs::read_to_string(path("exception.yaml")).unwrap();
    let resources = std::fs::read_to_string(path("resources.yaml")).unwrap();
    std::fs::write(
        path("policy-and-exception.yaml"),
        format!("{policy}---\n{exception}"),
    )
    .unwrap();
    std::fs::write(
        path("resources-and-exception.yaml"),
        format!("{resources}---\n{exception}"),
    )
    .unwrap();
    for (policy, resources) in [
        ("policy-and-exception.yaml", "resources.yaml"),
        ("policy.yaml", "resources-and-exception.yaml"),
    ] {
        let run = apply(dir.path(), policy, &[resources], &[]);
        run.assert_code(1);
        for line in [skipped, skipped_pod, failed] {
            assert!(
                run.stdout.contains(line),
                "{policy} {resources}: {line}\n{}",
                run.stdout
            );
        }
    }

    // Only exceptions in --exception files.
    let wrong = apply(
        dir.path(),
        "policy.yaml",
        &["resources.yaml"],
        &["--exception", &path("policy.yaml")],
    );
    wrong.assert_code(2);
    assert!(
        wrong.stderr.contains(
            "exception files hold only PolicyExceptions (kyverno.io/v2, v2beta1 or \
             policies.kyverno.io), found ClusterPolicy/check-image"
        ),
        "{}",
        wrong.stderr
    );
    // An invalid exception names the field.
    std::fs::write(
        path("invalid-exception.yaml"),
        exception.replace(
            "    - policyName: check-image\n",
            "    - policyName: \"\"\n",
        ),
    )
    .unwrap();
    let invalid = apply(
        dir.path(),
        "policy.yaml",
        &["resources.yaml"],
        &["--exception", &path("invalid-exception.yaml")],
    );
    invalid.assert_code(2);
    assert!(
        invalid
            .stderr
            .contains("spec.exceptions[0].policyName: An exception requires a policy name"),
        "{}",
        invalid.stderr
    );
}
