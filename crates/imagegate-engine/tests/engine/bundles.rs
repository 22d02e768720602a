//! cosign v3 Sigstore bundles stored as OCI 1.1 referrers.
//!
//! - tobby-fetch-cosign-v3.0.4: cosign v3.0.4's default `cosign sign --key` output
//!   (bundle blob, referring manifest, fallback index), pushed byte for byte to the
//!   registry under `lab/subject`; the subject image index itself was not captured, so
//!   the image is named by digest.
//! - cosign-oci-attestation: a keyless attestation bundle (cody@soyland.com), attached
//!   the way cosign attaches it, verified with the trusted root cosign's test uses.

use std::collections::HashMap;

use imagegate_testkit::Registry;
use imagegate_testkit::oci::{Descriptor, OCI_INDEX, OCI_MANIFEST};
use imagegate_testkit::sigstore::BUNDLE_V03;
use imagegate_testkit::stub::{Reply, Stub, by_path};
use serde_json::{Value, json};

use crate::{assert_fails_with, check, read, read_text, vectors, verification};

const SUBJECT: &str = "sha256:d7d5640c741c60b47fa4b5530daa20a6469b55754a89dd42adbadadb59f9093c";
const REFERRER: &str = "sha256:aa34dbe1db5336a0a85e4cc7eced2f5dc91f0062322972fe29c4002372a7adff";
const BUNDLE: &str = "sha256:adbf6372367b1d18204f9a60675cdd31c26e60b5cb664b937a69c448cfab6512";

struct Tobby {
    bundle: Vec<u8>,
    manifest: Vec<u8>,
    index: Vec<u8>,
    key: String,
}

fn tobby(vectors: &std::path::Path) -> Tobby {
    let dir = vectors.join("cosign-bundle/tobby-fetch-cosign-v3.0.4");
    Tobby {
        bundle: read(dir.join("bundle-sigstore.json")),
        manifest: read(dir.join("bundle-referring-manifest.json")),
        index: read(dir.join("bundle-referrers-index.json")),
        key: read_text(dir.join("bundle-cosign.pub")),
    }
}

/// Pushes the captured objects to `repo` (empty config, bundle, referring manifest,
/// then the fallback index at `sha256-<hex>`).
fn push_tobby(registry: &Registry, repo: &str, t: &Tobby) {
    let pusher = registry.pusher();
    pusher.push_blob(repo, b"{}");
    assert_eq!(pusher.push_blob(repo, &t.bundle), BUNDLE);
    assert_eq!(
        pusher.push_manifest_bytes(repo, &t.manifest).digest,
        REFERRER
    );
    pusher.push_index_bytes(repo, SUBJECT, &t.index);
}

fn keys_entry(key: &str, extra: Value) -> imagegate_policy::model::ImageVerification {
    let mut entry = json!({
        "type": "SigstoreBundle",
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"keys": {"publicKeys": key}}]}],
    });
    if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
        entry.extend(extra.clone());
    }
    verification(entry)
}

#[tokio::test]
async fn cosign_v3_key_bundle_verifies_through_the_fallback_tag() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let t = tobby(&vectors);
    push_tobby(&registry, "lab/subject", &t);
    let image = format!("{}/lab/subject@{SUBJECT}", registry.host());
    check(&image, &keys_entry(&t.key, json!({})), None)
        .await
        .unwrap();
    // cosignOCI11 selects the same discovery.
    let oci11 = verification(json!({
        "imageReferences": ["*"],
        "cosignOCI11": true,
        "attestors": [{"entries": [{"keys": {"publicKeys": t.key}}]}],
    }));
    check(&image, &oci11, None).await.unwrap();
    // Without either, the legacy .sig tag is looked for, and there is none.
    let legacy = verification(json!({
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"keys": {"publicKeys": t.key, "rekor": {"ignoreTlog": true}}}]}],
    }));
    assert_fails_with(check(&image, &legacy, None).await, "no signatures found");
    // The bundle is a cosign signature, and as an attestation of another type it is not.
    let attestation = verification(json!({
        "type": "SigstoreBundle",
        "imageReferences": ["*"],
        "attestations": [{
            "type": "https://slsa.dev/provenance/v1",
            "attestors": [{"entries": [{"keys": {"publicKeys": t.key}}]}],
        }],
    }));
    assert_fails_with(
        check(&image, &attestation, None).await,
        "no attestations of predicate type",
    );
}

#[tokio::test]
async fn cosign_v3_key_bundle_refuses_a_foreign_key_a_forgery_and_another_image() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let t = tobby(&vectors);
    push_tobby(&registry, "lab/subject", &t);
    let image = format!("{}/lab/subject@{SUBJECT}", registry.host());
    let foreign = read_text(vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub"));
    assert_fails_with(
        check(&image, &keys_entry(&foreign, json!({})), None).await,
        ".attestors[0].entries[0].keys: invalid signature",
    );

    // An internally coherent forgery: the envelope signature altered and every
    // descriptor recomputed (blob, referring manifest, fallback index).
    let mut bundle: Value = serde_json::from_slice(&t.bundle).unwrap();
    let sig = bundle["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap()
        .to_owned();
    let flipped = if sig.starts_with('M') { "N" } else { "M" };
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = json!(format!("{flipped}{}", &sig[1..]));
    let forged = serde_json::to_vec(&bundle).unwrap();
    let pusher = registry.pusher();
    let subject = Descriptor {
        annotations: None,
        ..Descriptor::of(OCI_INDEX, b"")
    };
    let subject = Descriptor {
        digest: SUBJECT.to_owned(),
        size: 928,
        ..subject
    };
    let referrer = pusher.push_bundle_referrer(
        "forged/subject",
        &subject,
        &forged,
        "https://sigstore.dev/cosign/sign/v1",
    );
    pusher.push_referrers_index("forged/subject", SUBJECT, &[referrer]);
    let forged_image = format!("{}/forged/subject@{SUBJECT}", registry.host());
    assert_fails_with(
        check(&forged_image, &keys_entry(&t.key, json!({})), None).await,
        "invalid signature",
    );

    // The same referrers listed for another digest: the bundle is about SUBJECT only.
    let other = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
    pusher.push_index_bytes("lab/subject", other, &t.index);
    let other_image = format!("{}/lab/subject@{other}", registry.host());
    assert_fails_with(
        check(&other_image, &keys_entry(&t.key, json!({})), None).await,
        "no signatures found",
    );
}

#[tokio::test]
async fn cosign_v3_key_bundle_verifies_from_a_signature_repository() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let t = tobby(&vectors);
    push_tobby(&registry, "zone-b/mirror/relocated-subject", &t);
    let image = format!("{}/lab/subject@{SUBJECT}", registry.host());
    let repository = format!("{}/zone-b/mirror/relocated-subject", registry.host());
    check(
        &image,
        &keys_entry(&t.key, json!({"repository": repository})),
        None,
    )
    .await
    .unwrap();
    assert_fails_with(
        check(&image, &keys_entry(&t.key, json!({})), None).await,
        "no signatures found",
    );
}

/// The referrers API answer for SUBJECT, as a registry computes it from the referring
/// manifest (its `artifactType`), plus an unrelated referrer the client must not fetch.
fn api_index(extra: &[Value]) -> Vec<u8> {
    let mut manifests = vec![json!({
        "mediaType": OCI_MANIFEST,
        "size": 875,
        "digest": REFERRER,
        "artifactType": BUNDLE_V03,
    })];
    manifests.extend_from_slice(extra);
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}))
        .unwrap()
}

async fn referrers_stub(t: &Tobby, index: Vec<u8>) -> Stub {
    let answer = |content_type: &str, body: &[u8], digest: &str| {
        Reply::ok(body)
            .content_type(content_type)
            .header("Docker-Content-Digest", digest)
    };
    let index_digest = imagegate_oci::sha256_digest(&index);
    Stub::start(by_path(HashMap::from([
        (
            format!("/v2/lab/subject/referrers/{SUBJECT}"),
            answer(OCI_INDEX, &index, &index_digest),
        ),
        (
            format!("/v2/lab/subject/manifests/{REFERRER}"),
            answer(OCI_MANIFEST, &t.manifest, REFERRER),
        ),
        (
            format!("/v2/lab/subject/blobs/{BUNDLE}"),
            answer("application/octet-stream", &t.bundle, BUNDLE),
        ),
    ])))
    .await
}

#[tokio::test]
async fn cosign_v3_key_bundle_verifies_through_the_referrers_api() {
    let Some(vectors) = vectors() else { return };
    let t = tobby(&vectors);
    let sbom = json!({
        "mediaType": OCI_MANIFEST,
        "size": 100,
        "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "artifactType": "application/spdx+json",
    });
    let stub = referrers_stub(&t, api_index(&[sbom])).await;
    let image = format!("{}/lab/subject@{SUBJECT}", stub.host());
    check(&image, &keys_entry(&t.key, json!({})), None)
        .await
        .unwrap();
    let log = stub.log();
    assert!(
        log.iter().any(|r| r.starts_with(&format!(
            "GET /v2/lab/subject/referrers/{SUBJECT}?artifactType="
        ))),
        "{log:#?}"
    );
    // The API answered: no fallback tag, and the SBOM referrer was never fetched.
    assert!(!log.iter().any(|r| r.contains("sha256-")), "{log:#?}");
    assert!(!log.iter().any(|r| r.contains("1111111111")), "{log:#?}");

    let foreign = read_text(vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub"));
    assert_fails_with(
        check(&image, &keys_entry(&foreign, json!({})), None).await,
        "invalid signature",
    );
}

#[tokio::test]
async fn keyless_attestation_bundle_verifies_with_conditions() {
    let Some(vectors) = vectors() else { return };
    let dir = vectors.join("cosign-bundle/cosign-oci-attestation");
    let bundle = read(dir.join("oci-attestation.sigstore.json"));
    let root =
        imagegate_sigstore::TrustedRoot::from_file(&dir.join("trusted_root_pgi.json")).unwrap();
    let digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
    let registry = Registry::start();
    let pusher = registry.pusher();
    let subject = Descriptor {
        digest: digest.to_owned(),
        size: 0,
        ..Descriptor::of(OCI_MANIFEST, b"")
    };
    let referrer = pusher.push_bundle_referrer(
        "att/repo",
        &subject,
        &bundle,
        "https://cosign.sigstore.dev/attestation/v1",
    );
    pusher.push_referrers_index("att/repo", digest, &[referrer]);
    let image = format!("{}/att/repo@{digest}", registry.host());
    let entry = |keyless: Value, value: &str| {
        verification(json!({
            "type": "SigstoreBundle",
            "imageReferences": ["*"],
            "attestations": [{
                "type": "https://cosign.sigstore.dev/attestation/v1",
                "attestors": [{"entries": [{"keyless": keyless}]}],
                "conditions": [{"all": [{
                    "key": "{{ Timestamp }}",
                    "operator": "Equals",
                    "value": value,
                }]}],
            }],
        }))
    };
    let identity =
        json!({"subject": "cody@soyland.com", "issuer": "https://github.com/login/oauth"});
    check(
        &image,
        &entry(identity.clone(), "2025-02-28T19:18:11Z"),
        Some(&root),
    )
    .await
    .unwrap();
    // The embedded public-good root trusts the same CAs and log.
    check(
        &image,
        &entry(identity.clone(), "2025-02-28T19:18:11Z"),
        None,
    )
    .await
    .unwrap();
    check(
        &image,
        &entry(
            json!({"subjectRegExp": ".*", "issuerRegExp": ".*"}),
            "2025-02-28T19:18:11Z",
        ),
        Some(&root),
    )
    .await
    .unwrap();
    assert_fails_with(
        check(
            &image,
            &entry(identity.clone(), "2024-01-01T00:00:00Z"),
            Some(&root),
        )
        .await,
        "attestation checks failed",
    );
    assert_fails_with(
        check(
            &image,
            &entry(json!({"subjectRegExp": "wrong"}), "x"),
            Some(&root),
        )
        .await,
        "certificate identity mismatch",
    );
    assert_fails_with(
        check(
            &image,
            &entry(
                json!({"subject": "cody@soyland.com", "issuer": "https://accounts.google.com"}),
                "x",
            ),
            Some(&root),
        )
        .await,
        "OIDC issuer mismatch",
    );
    // A root whose Fulcio CAs are not the ones that issued the certificate.
    let mut foreign: Value =
        serde_json::from_slice(&read(dir.join("trusted_root_pgi.json"))).unwrap();
    let rekor_ca = json!([{
        "subject": {"organization": "example", "commonName": "not-fulcio"},
        "uri": "https://example.com",
        "certChain": foreign["certificateAuthorities"][0]["certChain"]["certificates"]
            .as_array()
            .map(|c| json!({"certificates": [c[c.len() - 1]]}))
            .unwrap(),
        "validFor": {"start": "2030-01-01T00:00:00Z"},
    }]);
    foreign["certificateAuthorities"] = rekor_ca;
    let foreign =
        imagegate_sigstore::TrustedRoot::from_json(&foreign.to_string(), "foreign").unwrap();
    assert_fails_with(
        check(
            &image,
            &entry(identity.clone(), "2025-02-28T19:18:11Z"),
            Some(&foreign),
        )
        .await,
        "untrusted signing certificate",
    );
    // The statement names its image: for another digest it is no evidence.
    let other_digest = "sha256:0000000000000000000000000000000000000000000000000000000000000002";
    let referrer = pusher.push_bundle_referrer(
        "att/other",
        &Descriptor {
            digest: other_digest.to_owned(),
            ..subject.clone()
        },
        &bundle,
        "https://cosign.sigstore.dev/attestation/v1",
    );
    pusher.push_referrers_index("att/other", other_digest, &[referrer]);
    let other_image = format!("{}/att/other@{other_digest}", registry.host());
    assert_fails_with(
        check(
            &other_image,
            &entry(identity, "2025-02-28T19:18:11Z"),
            Some(&root),
        )
        .await,
        "artifact mismatch",
    );
}

/// PEM blocks of every `rawBytes` under `pointer` of a trusted root (certificates or
/// public keys), as a policy author would paste them.
fn pem_of(root: &Value, pointer: &str, label: &str) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    let mut stack = vec![root.pointer(pointer).unwrap().clone()];
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => match map.get("rawBytes").and_then(Value::as_str) {
                Some(raw) => {
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .unwrap();
                    let body = base64::engine::general_purpose::STANDARD.encode(der);
                    out.push_str(&format!("-----BEGIN {label}-----\n"));
                    for line in body.as_bytes().chunks(64) {
                        out.push_str(std::str::from_utf8(line).unwrap());
                        out.push('\n');
                    }
                    out.push_str(&format!("-----END {label}-----\n"));
                }
                None => stack.extend(map.into_iter().map(|(_, v)| v).rev()),
            },
            Value::Array(items) => stack.extend(items.into_iter().rev()),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn keyless_attestation_bundle_verifies_with_policy_roots_and_log_keys() {
    let Some(vectors) = vectors() else { return };
    let dir = vectors.join("cosign-bundle/cosign-oci-attestation");
    let bundle = read(dir.join("oci-attestation.sigstore.json"));
    let pgi: Value = serde_json::from_slice(&read(dir.join("trusted_root_pgi.json"))).unwrap();
    let roots = pem_of(&pgi, "/certificateAuthorities", "CERTIFICATE");
    let rekor = pem_of(&pgi, "/tlogs", "PUBLIC KEY");
    let ctlog = pem_of(&pgi, "/ctlogs", "PUBLIC KEY");
    let foreign = read_text(vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub"));
    let foreign_root = read_text(vectors.join("cosign-legacy/sigstore-rs/trust/fulcio-root-1.pem"));

    let digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
    let registry = Registry::start();
    let pusher = registry.pusher();
    let subject = Descriptor {
        digest: digest.to_owned(),
        size: 0,
        ..Descriptor::of(OCI_MANIFEST, b"")
    };
    let referrer = pusher.push_bundle_referrer(
        "att/overrides",
        &subject,
        &bundle,
        "https://cosign.sigstore.dev/attestation/v1",
    );
    pusher.push_referrers_index("att/overrides", digest, &[referrer]);
    let image = format!("{}/att/overrides@{digest}", registry.host());
    let entry = |roots: &str, rekor: &str, ctlog: &str| {
        verification(json!({
            "type": "SigstoreBundle",
            "imageReferences": ["*"],
            "attestations": [{
                "type": "https://cosign.sigstore.dev/attestation/v1",
                "attestors": [{"entries": [{"keyless": {
                    "subject": "cody@soyland.com",
                    "issuer": "https://github.com/login/oauth",
                    "roots": roots,
                    "rekor": {"pubkey": rekor},
                    "ctlog": {"pubkey": ctlog},
                }}]}],
            }],
        }))
    };
    // The embedded public-good root is the base; every section the policy gives is
    // replaced by the policy's material (here: the same CAs and logs, as PEM).
    check(&image, &entry(&roots, &rekor, &ctlog), None)
        .await
        .unwrap();
    // Again: the derived root comes from the cache.
    check(&image, &entry(&roots, &rekor, &ctlog), None)
        .await
        .unwrap();
    // Empty texts override nothing.
    check(&image, &entry("", "", ""), None).await.unwrap();

    let path = ".attestations[0].attestors[0].entries[0].keyless";
    let outcome = check(&image, &entry(&roots, &rekor, &foreign), None).await;
    assert_fails_with(outcome.clone(), path);
    assert_fails_with(outcome, "untrusted signing certificate");
    assert_fails_with(
        check(&image, &entry(&roots, &foreign, &ctlog), None).await,
        "transparency log",
    );
    assert_fails_with(
        check(&image, &entry(&foreign_root, &rekor, &ctlog), None).await,
        "untrusted signing certificate",
    );
    // ignoreSCT with a foreign CT key: the SCT is not looked at.
    let mut lenient = entry(&roots, &rekor, &foreign);
    lenient.attestations[0].attestors[0].entries[0]
        .keyless
        .as_mut()
        .unwrap()
        .ctlog
        .as_mut()
        .unwrap()
        .ignore_sct = true;
    check(&image, &lenient, None).await.unwrap();
    // Unusable material is a configuration error naming the attestor.
    assert_fails_with(
        check(&image, &entry(&roots, "junk", &ctlog), None).await,
        &format!("{path}: unusable trusted root"),
    );
}

#[tokio::test]
async fn cosign_v3_key_bundle_uses_the_policy_rekor_key() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let t = tobby(&vectors);
    push_tobby(&registry, "lab/rekor", &t);
    let image = format!("{}/lab/rekor@{SUBJECT}", registry.host());
    let foreign = read_text(vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub"));
    let entry = |rekor: Value| {
        verification(json!({
            "type": "SigstoreBundle",
            "imageReferences": ["*"],
            "attestors": [{"entries": [{"keys": {"publicKeys": t.key, "rekor": rekor}}]}],
        }))
    };
    // A Rekor key that did not sign the bundle's log entry replaces the root's.
    assert_fails_with(
        check(&image, &entry(json!({"pubkey": foreign})), None).await,
        ".attestors[0].entries[0].keys: ",
    );
    // The production Rekor key given explicitly.
    let root: Value = serde_json::from_str(
        imagegate_sigstore::TrustedRoot::public_good()
            .unwrap()
            .source_json(),
    )
    .unwrap();
    let rekor = pem_of(&root, "/tlogs", "PUBLIC KEY");
    check(&image, &entry(json!({"pubkey": rekor})), None)
        .await
        .unwrap();
}
