//! Scenario 15: cold Notation verification (issue 13). One tagged image signed with
//! Notation, verified by a ClusterPolicy `type: Notary` rule on a fresh engine: the
//! registry requests and the latency
//! - 15a on the loopback docker-registry (no referrers API: the `sha256-<hex>` fallback
//!   tag), fresh engine over a shared client as scenario 2 — the client already knows
//!   the registry lacks the API, as it does after the first lookup of a running webhook;
//! - 15b the same with a fresh client per verification: the first image of a registry
//!   this process has not met, which costs the referrers API's `404` once;
//! - 15c through the referrers API (the test kit's stub), fresh client each time.

use std::slice;
use std::time::Instant;

use anyhow::{Context as _, ensure};
use imagegate_engine::{CacheOptions, PolicySet};
use imagegate_testkit::notation::{self, JWS, KeySpec, NotationCa, SignOptions, Validity};
use imagegate_testkit::oci::Descriptor;
use imagegate_testkit::stub::{Stub, by_path};
use serde_json::json;

use crate::Options;
use crate::fixture::{self, Fixture, admit, pod};
use crate::report::{Met, Row, Samples};

/// A ClusterPolicy verifying Notation signatures of images under `host/` with `ca_pem`.
fn policies(host: &str, ca_pem: &str) -> anyhow::Result<PolicySet> {
    let policy = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {
            "name": "check-notation",
            "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"},
        },
        "spec": {
            "background": false,
            "webhookTimeoutSeconds": 30,
            "rules": [{
                "name": "verify-notation",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "type": "Notary",
                    "imageReferences": [format!("{host}/*")],
                    "failureAction": "Enforce",
                    "attestors": [{"entries": [{"certificates": {"cert": ca_pem}}]}],
                }],
            }],
        },
    });
    // JSON is YAML: the loader reads it as a policy file.
    fixture::policy_set(&policy.to_string())
}

pub async fn run(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let iterations = options.iterations;
    let fixture = Fixture::start();
    let ca = NotationCa::new("Bench Root", KeySpec::EcP256);
    let signer = ca.signer("bench-signer", KeySpec::EcP256, Validity::current());

    let pusher = fixture.registry.pusher();
    let repo = "bench/notation";
    let digest = pusher.push_image(repo, "v1");
    let (media_type, manifest) = pusher
        .get_manifest(repo, &digest)
        .context("the pushed image is not in the registry")?;
    let envelope = signer.sign_jws(
        &Descriptor::of(&media_type, &manifest),
        &SignOptions::default(),
    );
    notation::push_signature(
        &pusher,
        repo,
        &Descriptor::of(&media_type, &manifest),
        &envelope,
        JWS,
    );
    let image = format!("{}/{repo}:v1", fixture.host());
    let policies = policies(&fixture.host(), &ca.pem())?;
    let image_pod = pod("notation", slice::from_ref(&image));

    // 15a: fresh engine per verification over one client, warmed once (connections,
    // and the registry's lack of the referrers API).
    let client = fixture::client()?;
    admit(
        &fixture::engine(client.clone(), CacheOptions::default()),
        &policies,
        &image_pod,
        1,
    )
    .await?;
    let (shared, shared_requests, shared_lines) = measure(
        iterations,
        || {
            let client = client.clone();
            async move { anyhow::Ok(fixture::engine(client, CacheOptions::default())) }
        },
        &fixture,
        &policies,
        &image_pod,
    )
    .await?;

    // 15b: a fresh client each time (new connections; the 404 is learnt again).
    let (fresh, fresh_requests, fresh_lines) = measure(
        iterations,
        || async { anyhow::Ok(fixture::engine(fixture::client()?, CacheOptions::default())) },
        &fixture,
        &policies,
        &image_pod,
    )
    .await?;

    // 15c: the referrers API, fresh client each time.
    let (answers, _) = notation::referrers_api_image("bench/notation", "v1", &signer);
    let stub = Stub::start(by_path(answers)).await;
    let stub_image = format!("{}/bench/notation:v1", stub.host());
    let stub_policies = self::policies(&stub.host(), &ca.pem())?;
    let stub_pod = pod("notation", slice::from_ref(&stub_image));
    let mut api = Samples::default();
    let mut api_requests = 0;
    let mut api_lines = Vec::new();
    for _ in 0..iterations {
        let engine = fixture::engine(fixture::client()?, CacheOptions::default());
        let before = stub.log().len();
        let started = Instant::now();
        admit(&engine, &stub_policies, &stub_pod, 1).await?;
        api.push(started.elapsed());
        let log = stub.log();
        api_lines = log[before..].to_vec();
        api_requests = api_requests.max(api_lines.len());
    }
    ensure!(
        !api_lines
            .iter()
            .any(|l| l.contains(notation::UNSERVED_REFERRER.trim_start_matches("sha256:"))),
        "the unserved referrer was fetched: {api_lines:?}"
    );

    eprintln!(
        "bench: registry requests of one cold Notation verification\n  docker-registry, client knows it:\n    {}\n  docker-registry, fresh client:\n    {}\n  referrers API (stub), fresh client:\n    {}",
        shared_lines.join("\n    "),
        fresh_lines.join("\n    "),
        api_lines.join("\n    "),
    );
    for (scenario, samples, requests) in [
        (
            "15a cold Notation verify, 1 tagged image, no referrers API (fresh engine, shared client)",
            &shared,
            shared_requests,
        ),
        (
            "15b same, fresh registry client each time (the first image of a registry)",
            &fresh,
            fresh_requests,
        ),
        (
            "15c cold Notation verify through the referrers API (stub), fresh client each time",
            &api,
            api_requests,
        ),
    ] {
        rows.push(Row::new(
            scenario,
            format!("{}; {requests} registry requests", samples.summary()),
            "≤ 4 requests",
            Met::from(requests <= 4),
        ));
    }
    Ok(())
}

/// `iterations` timed verifications of `pod`, each on the engine `engine()` makes: the
/// samples, the most registry requests one took, and the requests of the last.
async fn measure<F, Fut>(
    iterations: usize,
    engine: F,
    fixture: &Fixture,
    policies: &PolicySet,
    pod: &serde_json::Value,
) -> anyhow::Result<(Samples, usize, Vec<String>)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<imagegate_engine::Engine>>,
{
    let mut samples = Samples::default();
    let (mut most, mut lines) = (0, Vec::new());
    for _ in 0..iterations {
        let engine = engine().await?;
        let before = fixture.requests();
        let started = Instant::now();
        admit(&engine, policies, pod, 1).await?;
        samples.push(started.elapsed());
        most = most.max(fixture.requests() - before);
        lines = fixture.requests_since(before);
    }
    Ok((samples, most, lines))
}
