//! Issue 8 item 1: a registry error on one image must never hide another image's
//! signature failure. One Enforce rule under `failurePolicy: Ignore`, a Pod with an
//! unsigned image and an image the registry answers 404 for (or that no registry
//! answers for): both phases must deny, naming the unsigned image.

use imagegate_engine::{AdmissionInput, Engine, EngineResponse, Phase, PolicySet, RuleStatus};
use imagegate_policy::matching::MatchContext;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::json;

use crate::engine;

fn policy(key_pem: &str, host: &str) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: signed-images
spec:
  failurePolicy: Ignore
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*", "127.0.0.1:1/*"]
          failureAction: Enforce
          mutateDigest: false
          verifyDigest: false
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor:
                      ignoreTlog: true
"#,
        key = key_pem
            .lines()
            .map(|l| format!("                      {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    crate::policy_set(&yaml)
}

fn pod(images: &[String]) -> AdmissionInput {
    let containers: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    AdmissionInput::for_resource(
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "mixed", "namespace": "default"},
            "spec": {"containers": containers},
        }),
        MatchContext::default(),
    )
}

#[track_caller]
fn assert_denied_naming(response: &EngineResponse, image: &str, phase: &str) {
    assert!(
        response.blocked(),
        "{phase}: admitted although {image} is unsigned: {response:#?}"
    );
    let rule = response.rule("signed-images", "verify").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Fail, "{phase}: {rule:?}");
    let denial = response.denial_message().unwrap_or_default();
    assert!(
        denial.contains(image),
        "{phase}: the denial does not name {image}: {denial}"
    );
}

/// A registry holding the unsigned image `app/unsigned:v1`, the policy requiring a
/// signature on it, and its reference.
fn unsigned_image() -> (Registry, PolicySet, String) {
    let registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app/unsigned", "v1");
    let key = CosignKey::generate();
    let policies = policy(&key.public_pem(), &host);
    (registry, policies, format!("{host}/app/unsigned:v1"))
}

async fn check_both_phases(broken: &str) {
    let (registry, policies, unsigned) = unsigned_image();
    let host = registry.host();
    let broken = broken.replace("{host}", &host);
    // The failing image first and last: the outcome must not depend on the order.
    for images in [
        vec![unsigned.clone(), broken.clone()],
        vec![broken.clone(), unsigned.clone()],
    ] {
        let input = pod(&images);
        let engine = engine();
        let mutate = engine.evaluate(&policies, &input, Phase::Mutate).await;
        assert_denied_naming(&mutate, &unsigned, "mutate");
        let validate = engine.evaluate(&policies, &input, Phase::Validate).await;
        assert_denied_naming(&validate, &unsigned, "validate");
        assert!(
            engine
                .metrics()
                .verification_failures
                .get_or_create(&imagegate_engine::FailureLabels {
                    reason: "no_signatures"
                })
                .get()
                > 0
        );
    }
}

#[tokio::test]
async fn registry_404_does_not_hide_an_unsigned_image() {
    check_both_phases("{host}/app/missing:v1").await;
}

#[tokio::test]
async fn unreachable_registry_does_not_hide_an_unsigned_image() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    check_both_phases("127.0.0.1:1/app/gone:v1").await;
}

fn failures(engine: &Engine, reason: &'static str) -> u64 {
    engine
        .metrics()
        .verification_failures
        .get_or_create(&imagegate_engine::FailureLabels { reason })
        .get()
}

#[tokio::test]
async fn a_tag_is_resolved_once_per_review() {
    // Issue 8 item 4: with no digest cache, the validate phase resolved the tag again
    // and could verify (and pin) another digest than the mutate phase.
    let (registry, policies, image) = unsigned_image();
    let engine = Engine::builder(crate::client())
        .caches(imagegate_engine::CacheOptions::disabled())
        .build();
    let response = engine.evaluate_both(&policies, &pod(&[image])).await;
    assert!(response.blocked());
    let resolutions = registry
        .requests()
        .into_iter()
        .filter(|r| r.method != "PUT" && r.path == "/v2/app/unsigned/manifests/v1")
        .count();
    assert_eq!(resolutions, 1, "{}", registry.log());
}

#[tokio::test]
async fn containers_repeating_an_image_are_verified_once() {
    // Issue 8 item 8: 4 000 containers of one image were 4 000 verifications, each
    // with its own copy of the request.
    let (_registry, policies, image) = unsigned_image();
    let images = vec![image.clone(); 4000];
    let engine = engine();
    let response = engine
        .evaluate(&policies, &pod(&images), Phase::Mutate)
        .await;
    assert_denied_naming(&response, &image, "mutate");
    assert_eq!(failures(&engine, "no_signatures"), 1);
}
