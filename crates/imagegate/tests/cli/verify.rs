//! `imagegate verify` against a real registry: signatures, attestations, auth, failures.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use imagegate_testkit::{CosignKey, Registry, vectors_dir, write_docker_config};
use serde_json::json;

use crate::util::{imagegate, write};

fn no_annotations() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// A registry with one signed image; returns (registry, key, image reference, digest).
fn signed_image(repo: &str) -> (Registry, CosignKey, String, String) {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image(repo, "v1");
    let name = format!("{}/{repo}", registry.host());
    pusher.sign(repo, &name, &digest, &key, &no_annotations());
    (registry, key, format!("{name}:v1"), digest)
}

#[test]
fn signed_image_verifies_and_prints_the_pinned_digest() {
    let (registry, key, image, digest) = signed_image("app/signed");
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let before = registry.requests().len();
    let run = imagegate(
        &["verify", "--key", key_path.to_str().unwrap(), &image],
        &[],
    );
    run.assert_code(0);
    let mut lines = run.stdout.lines();
    assert_eq!(
        lines.next(),
        Some(format!("{}/app/signed@{digest}", registry.host()).as_str())
    );
    let payloads: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        json!(digest)
    );
    // resolve (HEAD), signature manifest, payload blob
    let served: Vec<_> = registry.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(served.len(), 3, "{served:#?}");
}

#[test]
fn unsigned_image_fails_with_no_signatures_found() {
    let registry = Registry::start();
    registry.pusher().push_image("app/unsigned", "v1");
    let dir = tempfile::tempdir().unwrap();
    let key_path = CosignKey::generate().write_public_pem(dir.path(), "cosign.pub");
    let image = format!("{}/app/unsigned:v1", registry.host());
    imagegate(
        &["verify", "--key", key_path.to_str().unwrap(), &image],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("no signatures found");
}

#[test]
fn image_signed_by_another_key_fails_with_invalid_signature() {
    let (_registry, _key, image, _) = signed_image("app/other");
    let dir = tempfile::tempdir().unwrap();
    let other = CosignKey::generate().write_public_pem(dir.path(), "other.pub");
    imagegate(&["verify", "--key", other.to_str().unwrap(), &image], &[])
        .assert_code(1)
        .assert_stderr_contains("invalid signature");
}

#[test]
fn tampered_payload_fails() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/tampered", "v1");
    let name = format!("{}/app/tampered", registry.host());
    let payload = imagegate_testkit::simple_signing_payload(&name, &digest, &no_annotations());
    let signature = base64_encode(&key.sign(&payload));
    let mut tampered = payload.clone();
    let last = tampered.len() - 2;
    tampered.insert(last, b' ');
    pusher.push_signature_layer("app/tampered", &digest, &tampered, &signature);
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    imagegate(
        &[
            "verify",
            "--key",
            key_path.to_str().unwrap(),
            &format!("{name}:v1"),
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("invalid signature");
}

#[test]
fn payload_for_another_digest_fails() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/moved", "v1");
    let other_digest = pusher.push_image("app/moved", "v2");
    let name = format!("{}/app/moved", registry.host());
    // A valid signature over another image's payload, stored under this image's tag.
    let payload =
        imagegate_testkit::simple_signing_payload(&name, &other_digest, &no_annotations());
    let signature = base64_encode(&key.sign(&payload));
    pusher.push_signature_layer("app/moved", &digest, &payload, &signature);
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    imagegate(
        &[
            "verify",
            "--key",
            key_path.to_str().unwrap(),
            &format!("{name}:v1"),
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("does not match");
}

#[test]
fn two_signatures_one_valid_verifies() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let stranger = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/two", "v1");
    let name = format!("{}/app/two", registry.host());
    pusher.sign("app/two", &name, &digest, &stranger, &no_annotations());
    pusher.sign("app/two", &name, &digest, &key, &no_annotations());
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let run = imagegate(
        &[
            "verify",
            "--key",
            key_path.to_str().unwrap(),
            &format!("{name}:v1"),
        ],
        &[],
    );
    run.assert_code(0);
    let payloads: serde_json::Value =
        serde_json::from_str(run.stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(payloads.as_array().unwrap().len(), 1);
}

#[test]
fn several_keys_in_one_pem_any_may_have_signed() {
    let (_registry, key, image, _) = signed_image("app/multikey");
    let dir = tempfile::tempdir().unwrap();
    let bundle = format!("{}{}", CosignKey::generate().public_pem(), key.public_pem());
    let key_path = write(dir.path(), "keys.pem", &bundle);
    imagegate(&["verify", "--key", &key_path, &image], &[]).assert_code(0);
}

#[test]
fn required_annotations_must_be_in_the_payload() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/annotated", "v1");
    let name = format!("{}/app/annotated", registry.host());
    let annotations = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    pusher.sign("app/annotated", &name, &digest, &key, &annotations);
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let key_path = key_path.to_str().unwrap();
    let image = format!("{name}:v1");
    imagegate(
        &["verify", "--key", key_path, "-a", "env=prod", &image],
        &[],
    )
    .assert_code(0);
    imagegate(&["verify", "--key", key_path, "-a", "env=dev", &image], &[])
        .assert_code(1)
        .assert_stderr_contains("env");
}

#[test]
fn signatures_in_a_separate_repository() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/image", "v1");
    let name = format!("{}/app/image", registry.host());
    pusher.sign("sigs/store", &name, &digest, &key, &no_annotations());
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let key_path = key_path.to_str().unwrap();
    let image = format!("{name}:v1");
    let sig_repo = format!("{}/sigs/store", registry.host());
    imagegate(&["verify", "--key", key_path, &image], &[])
        .assert_code(1)
        .assert_stderr_contains("no signatures found");
    imagegate(
        &[
            "verify",
            "--key",
            key_path,
            "--repository",
            &sig_repo,
            &image,
        ],
        &[],
    )
    .assert_code(0);
    imagegate(
        &["verify", "--key", key_path, &image],
        &[("COSIGN_REPOSITORY", &sig_repo)],
    )
    .assert_code(0);
}

#[test]
fn multi_arch_index_is_verified_at_the_index_digest() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let index_digest = pusher.push_index("app/multi", "v1", 2);
    let name = format!("{}/app/multi", registry.host());
    pusher.sign("app/multi", &name, &index_digest, &key, &no_annotations());
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let run = imagegate(
        &[
            "verify",
            "--key",
            key_path.to_str().unwrap(),
            &format!("{name}:v1"),
        ],
        &[],
    );
    run.assert_code(0);
    assert_eq!(
        run.stdout.lines().next(),
        Some(format!("{name}@{index_digest}").as_str())
    );
}

#[test]
fn attestations_of_the_right_type_verify_and_of_another_type_do_not() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/attested", "v1");
    let name = format!("{}/app/attested", registry.host());
    pusher.attest(
        "app/attested",
        &name,
        &digest,
        &key,
        "https://slsa.dev/provenance/v0.2",
        &json!({"builder": {"id": "https://example.com/builder"}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let key_path = key_path.to_str().unwrap();
    let image = format!("{name}:v1");
    let run = imagegate(
        &[
            "verify",
            "--key",
            key_path,
            "--type",
            "slsaprovenance",
            &image,
        ],
        &[],
    );
    run.assert_code(0);
    let envelopes: serde_json::Value =
        serde_json::from_str(run.stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        envelopes[0]["payloadType"],
        json!("application/vnd.in-toto+json")
    );
    imagegate(
        &[
            "verify",
            "--key",
            key_path,
            "--type",
            "https://spdx.dev/Document",
            &image,
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("no matching attestations");
    // Signatures and attestations are distinct: the image has no `.sig`.
    imagegate(&["verify", "--key", key_path, &image], &[])
        .assert_code(1)
        .assert_stderr_contains("no signatures found");
}

#[test]
fn basic_auth_registry_with_credentials_from_config_json() {
    let registry = Registry::start_with_basic_auth("alice", "wonderland-secret");
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("private/app", "v1");
    let name = format!("{}/private/app", registry.host());
    pusher.sign("private/app", &name, &digest, &key, &no_annotations());
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let key_path = key_path.to_str().unwrap();
    let image = format!("{name}:v1");

    let good = write_docker_config(dir.path(), &registry.host(), "alice", "wonderland-secret");
    imagegate(
        &[
            "verify",
            "--key",
            key_path,
            "--docker-config",
            good.to_str().unwrap(),
            &image,
        ],
        &[],
    )
    .assert_code(0);
    // $DOCKER_CONFIG names the directory, as for docker.
    let config_dir = good.parent().unwrap().to_str().unwrap().to_owned();
    imagegate(
        &["verify", "--key", key_path, &image],
        &[("DOCKER_CONFIG", &config_dir)],
    )
    .assert_code(0);

    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = write_docker_config(
        wrong_dir.path(),
        &registry.host(),
        "alice",
        "not-the-password",
    );
    let run = imagegate(
        &[
            "verify",
            "--key",
            key_path,
            "--docker-config",
            wrong.to_str().unwrap(),
            &image,
        ],
        &[],
    );
    run.assert_code(1).assert_stderr_contains("unauthorized");
    run.assert_stderr_contains(&registry.host());
    assert!(!run.stderr.contains("not-the-password"), "{}", run.stderr);

    imagegate(&["verify", "--key", key_path, &image], &[])
        .assert_code(1)
        .assert_stderr_contains("no credentials configured");
}

#[test]
fn token_auth_registry_with_credentials_from_config_json() {
    let registry = Registry::start_with_token_auth("bob", "token-secret");
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("private/tok", "v1");
    let name = format!("{}/private/tok", registry.host());
    pusher.sign("private/tok", &name, &digest, &key, &no_annotations());
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let key_path = key_path.to_str().unwrap();
    let image = format!("{name}:v1");
    let config = write_docker_config(dir.path(), &registry.host(), "bob", "token-secret");
    let tokens_before = registry.token_requests();
    imagegate(
        &[
            "verify",
            "--key",
            key_path,
            "--docker-config",
            config.to_str().unwrap(),
            &image,
        ],
        &[],
    )
    .assert_code(0);
    // One token for the repository scope, reused for all three requests.
    assert_eq!(registry.token_requests() - tokens_before, 1);

    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = write_docker_config(wrong_dir.path(), &registry.host(), "bob", "guess");
    let run = imagegate(
        &[
            "verify",
            "--key",
            key_path,
            "--docker-config",
            wrong.to_str().unwrap(),
            &image,
        ],
        &[],
    );
    run.assert_code(1).assert_stderr_contains("unauthorized");
    assert!(!run.stderr.contains("guess"), "{}", run.stderr);
}

#[test]
fn credential_helper_from_config_json() {
    let registry = Registry::start_with_basic_auth("carol", "helper-secret");
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("private/helped", "v1");
    let name = format!("{}/private/helped", registry.host());
    pusher.sign("private/helped", &name, &digest, &key, &no_annotations());
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-imagegate-test");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"carol\",\"Secret\":\"helper-secret\"}' \"$server\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write(
        dir.path(),
        "config.json",
        &json!({"credHelpers": {registry.host(): "imagegate-test"}}).to_string(),
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    imagegate(
        &[
            "verify",
            "--key",
            key_path.to_str().unwrap(),
            "--docker-config",
            &config,
            &format!("{name}:v1"),
        ],
        &[("PATH", &path)],
    )
    .assert_code(0);
}

#[test]
fn registry_down_is_a_clear_error_within_the_deadline() {
    let (mut registry, key, image, _) = signed_image("app/down");
    registry.stop();
    let dir = tempfile::tempdir().unwrap();
    let key_path = key.write_public_pem(dir.path(), "cosign.pub");
    let run = imagegate(
        &["verify", "--key", key_path.to_str().unwrap(), &image],
        &[],
    );
    run.assert_code(1).assert_stderr_contains("unreachable");
    assert!(
        run.elapsed < Duration::from_secs(15),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn input_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let key = CosignKey::generate().write_public_pem(dir.path(), "cosign.pub");
    let key = key.to_str().unwrap();
    imagegate(&["verify", "--key", key, "Not/A/Valid:Ref:"], &[]).assert_code(2);
    imagegate(
        &[
            "verify",
            "--key",
            "/nonexistent/cosign.pub",
            "127.0.0.1:1/a:b",
        ],
        &[],
    )
    .assert_code(2)
    .assert_stderr_contains("/nonexistent/cosign.pub");
    let garbage = write(
        dir.path(),
        "garbage.pub",
        "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
    );
    imagegate(&["verify", "--key", &garbage, "127.0.0.1:1/a:b"], &[]).assert_code(2);
    imagegate(
        &["verify", "--key", key, "-a", "novalue", "127.0.0.1:1/a:b"],
        &[],
    )
    .assert_code(2);
    imagegate(&["verify", "--key", key], &[]).assert_code(2);
    imagegate(&["verify"], &[]).assert_code(2);
}

/// The cosign v3.0.4 signature captured by tobby-fetch, served by the local registry
/// under the same tag, verifies with its key and with no other.
#[test]
fn vector_cosign_v3_legacy_signature_from_the_registry() {
    let Some(vectors) = vectors_dir() else { return };
    let dir = vectors.join("cosign-legacy/tobby-fetch-cosign-v3.0.4");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let payload = std::fs::read(dir.join("payload.json")).unwrap();
    let signature = manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    let subject = meta["subject_manifest_digest"].as_str().unwrap();
    let registry = Registry::start();
    registry
        .pusher()
        .push_signature_layer("tobby/fixture", subject, &payload, signature);
    let image = format!("{}/tobby/fixture@{subject}", registry.host());
    let good = dir.join("cosign.pub");
    imagegate(&["verify", "--key", good.to_str().unwrap(), &image], &[]).assert_code(0);
    let foreign = vectors.join("cosign-legacy/sigstore-rs/key-layer/wrong-key.pub");
    imagegate(&["verify", "--key", foreign.to_str().unwrap(), &image], &[])
        .assert_code(1)
        .assert_stderr_contains("invalid signature");
}

/// sigstore-rs's key-based signature layer, served by the local registry.
#[test]
fn vector_sigstore_rs_key_layer_from_the_registry() {
    let Some(vectors) = vectors_dir() else { return };
    let dir = vectors.join("cosign-legacy/sigstore-rs/key-layer");
    let payload = std::fs::read(dir.join("payload.json")).unwrap();
    let signature = std::fs::read_to_string(dir.join("signature.b64")).unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let subject = parsed["critical"]["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap();
    let registry = Registry::start();
    registry
        .pusher()
        .push_signature_layer("busybox", subject, &payload, signature.trim());
    let image = format!("{}/busybox@{subject}", registry.host());
    let good = dir.join("cosign.pub");
    imagegate(&["verify", "--key", good.to_str().unwrap(), &image], &[]).assert_code(0);
    let wrong = dir.join("wrong-key.pub");
    imagegate(&["verify", "--key", wrong.to_str().unwrap(), &image], &[])
        .assert_code(1)
        .assert_stderr_contains("invalid signature");
}

/// Kyverno's attestation envelopes (old cosign: payloadType = predicate type), served as
/// `.att` layers by the local registry.
#[test]
fn vector_kyverno_attestations_from_the_registry() {
    let Some(vectors) = vectors_dir() else { return };
    let dir = vectors.join("dsse/kyverno-attestations");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    let subject = meta["image"]["subject_digest_in_statements"]
        .as_str()
        .unwrap();
    let registry = Registry::start();
    let pusher = registry.pusher();
    for envelope in meta["envelopes"].as_array().unwrap() {
        let bytes = std::fs::read(dir.join(envelope["file"].as_str().unwrap())).unwrap();
        pusher.push_attestation_layer(
            "jimbugwadia/pause2",
            subject,
            &bytes,
            envelope["predicateType"].as_str().unwrap(),
        );
    }
    let image = format!("{}/jimbugwadia/pause2@{subject}", registry.host());
    let key = dir.join("cosign.pub");
    let key = key.to_str().unwrap();
    let run = imagegate(
        &[
            "verify",
            "--key",
            key,
            "--type",
            "https://example.com/CodeReview/v1",
            &image,
        ],
        &[],
    );
    run.assert_code(0);
    let envelopes: serde_json::Value =
        serde_json::from_str(run.stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(envelopes.as_array().unwrap().len(), 2, "envelopes 1 and 3");
    imagegate(
        &[
            "verify",
            "--key",
            key,
            "--type",
            "cosign.sigstore.dev/attestation/v1",
            &image,
        ],
        &[],
    )
    .assert_code(0);
    imagegate(
        &[
            "verify",
            "--key",
            key,
            "--type",
            "https://slsa.dev/provenance/v1",
            &image,
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("no matching attestations");
    let wrong = vectors.join("cosign-legacy/sigstore-rs/key-layer/wrong-key.pub");
    imagegate(
        &[
            "verify",
            "--key",
            wrong.to_str().unwrap(),
            "--type",
            "https://example.com/CodeReview/v1",
            &image,
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("invalid signature");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
