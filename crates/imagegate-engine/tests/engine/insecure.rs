//! `imageRegistryCredentials.allowInsecureRegistry` (issue 9 item 4): plain HTTP for
//! the registries of that entry only, and nothing fetched over plain HTTP reused for
//! an entry that requires HTTPS.
//!
//! Plain HTTP is allowed on loopback anyway, so the registry must be reached at an
//! address that is not loopback: the test kit's registry listens on 127.0.0.1 only,
//! so its content (pushed and signed there) is served verbatim by the test kit's stub
//! on this machine's outward address.

use std::collections::{BTreeMap, HashMap};

use imagegate_engine::RuleStatus;
use imagegate_oci::sha256_digest;
use imagegate_testkit::stub::{Reply, Stub, by_path, non_loopback_ip};
use imagegate_testkit::{CosignKey, Registry, oci, simple_signing_payload};

use crate::{engine, pod, policy_set};

/// A key-signed image served over plain HTTP only, at an address that is not loopback.
pub struct PlainHttpImage {
    /// Keeps the content's origin alive for the test's duration.
    _origin: Registry,
    pub stub: Stub,
    /// `HOST:PORT/app/signed:v1`, `HOST` not loopback.
    pub image: String,
    pub digest: String,
    pub key: CosignKey,
}

/// `app/signed:v1`, pushed and key-signed on a real registry, then served by a stub
/// on `ip` (tag, manifest, `.sig` manifest and signature payload, byte for byte).
pub async fn plain_http_image(ip: std::net::IpAddr) -> PlainHttpImage {
    let origin = Registry::start();
    let repo = "app/signed";
    let name = format!("{}/{repo}", origin.host());
    let pusher = origin.pusher();
    let digest = pusher.push_image(repo, "v1");
    let key = CosignKey::generate();
    let none = BTreeMap::new();
    pusher.sign(repo, &name, &digest, &key, &none);
    let payload = simple_signing_payload(&name, &digest, &none);
    let mut answers = HashMap::new();
    let signature_tag = oci::cosign_tag(&digest, "sig");
    for (reference, tag) in [
        (digest.as_str(), "v1"),
        (&signature_tag, signature_tag.as_str()),
    ] {
        let (media_type, bytes) = pusher.get_manifest(repo, reference).expect("pushed");
        let reply = Reply::ok(bytes.clone())
            .content_type(&media_type)
            .header("Docker-Content-Digest", &sha256_digest(&bytes));
        answers.insert(format!("/v2/{repo}/manifests/{tag}"), reply.clone());
        answers.insert(
            format!("/v2/{repo}/manifests/{}", sha256_digest(&bytes)),
            reply,
        );
    }
    answers.insert(
        format!("/v2/{repo}/blobs/{}", sha256_digest(&payload)),
        Reply::ok(payload),
    );
    drop(pusher);
    let stub = Stub::start_on(ip, by_path(answers)).await;
    let image = format!("{}/{repo}:v1", stub.host());
    PlainHttpImage {
        _origin: origin,
        stub,
        image,
        digest,
        key,
    }
}

/// A policy named `name` whose one rule requires `key`'s signature on the images of
/// `host`, with `allowInsecureRegistry: insecure`.
pub fn key_policy(name: &str, host: &str, key: &CosignKey, insecure: bool) -> String {
    let key_pem: String = key
        .public_pem()
        .lines()
        .map(|l| format!("                      {l}\n"))
        .collect();
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  failurePolicy: Fail
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          failureAction: Enforce
          imageRegistryCredentials:
            allowInsecureRegistry: {insecure}
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key_pem}                    rekor:
                      ignoreTlog: true
"#
    )
}

#[tokio::test]
async fn allow_insecure_registry_allows_plain_http_for_that_rule_only() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let served = plain_http_image(ip).await;
    let host = served.stub.host();
    let allowed = policy_set(&key_policy("insecure", &host, &served.key, true));
    let strict = policy_set(&key_policy("strict", &host, &served.key, false));
    let engine = engine();

    // Without the flag first: HTTPS only, refused (the stub speaks plain HTTP).
    let response = engine.evaluate_both(&strict, &pod(&served.image)).await;
    assert!(response.blocked(), "{response:#?}");
    let rule = response.rule("strict", "verify").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Error, "{rule:?}");
    assert!(rule.message.contains("does not speak HTTPS"), "{rule:?}");
    assert_eq!(served.stub.requests().len(), 0, "plain HTTP was tried");

    // With the flag: verified over plain HTTP and pinned.
    let response = engine.evaluate_both(&allowed, &pod(&served.image)).await;
    assert!(!response.blocked(), "{response:#?}");
    let rule = response.rule("insecure", "verify").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Pass, "{rule:?}");
    assert_eq!(
        response.patched["spec"]["containers"][0]["image"],
        format!("{}@{}", served.image, served.digest)
    );
    assert!(!served.stub.requests().is_empty());
}

#[tokio::test]
async fn what_plain_http_fetched_is_not_reused_for_a_rule_that_requires_https() {
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let served = plain_http_image(ip).await;
    let host = served.stub.host();
    let allowed = policy_set(&key_policy("insecure", &host, &served.key, true));
    let strict = policy_set(&key_policy("strict", &host, &served.key, false));
    let engine = engine();
    let pinned = format!("{}@{}", served.image, served.digest);

    // The flagged rule fills the digest, evidence and verdict caches and the client's
    // scheme for the host.
    for image in [&served.image, &pinned] {
        let response = engine.evaluate_both(&allowed, &pod(image)).await;
        assert!(!response.blocked(), "{image}: {response:#?}");
    }
    let served_before = served.stub.requests().len();
    let probes_before = served.stub.tls_probes();

    // The same tag, and the same digest (no tag to resolve: straight to the
    // evidence), under a rule without the flag: nothing cached is used, nothing is
    // asked over plain HTTP, HTTPS is refused.
    for image in [&served.image, &pinned] {
        let response = engine.evaluate_both(&strict, &pod(image)).await;
        assert!(response.blocked(), "{image}: {response:#?}");
        let rule = response.rule("strict", "verify").expect("rule ran");
        assert_eq!(rule.status, RuleStatus::Error, "{image}: {rule:?}");
        assert!(rule.message.contains("does not speak HTTPS"), "{rule:?}");
    }
    assert_eq!(served.stub.requests().len(), served_before);
    assert!(served.stub.tls_probes() > probes_before);

    // Both policies in one review: the flagged rule's digest does not serve the other.
    let both = policy_set(&format!(
        "{}---\n{}",
        key_policy("insecure", &host, &served.key, true),
        key_policy("strict", &host, &served.key, false)
    ));
    let response = engine.evaluate_both(&both, &pod(&served.image)).await;
    assert!(response.blocked(), "{response:#?}");
    let statuses = (
        response.rule("insecure", "verify").map(|r| r.status),
        response.rule("strict", "verify").map(|r| r.status),
    );
    assert_eq!(
        statuses,
        (Some(RuleStatus::Pass), Some(RuleStatus::Error)),
        "{response:#?}"
    );
}
