//! Scenario 13: the same verification written as an ImageValidatingPolicy (CEL) and as
//! a ClusterPolicy — warm `/mutate` throughput in-process (the review path of
//! scenario 1c) and the registry requests of one cold verification.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use imagegate_engine::admission::{self, AdmissionReview};
use imagegate_engine::{CacheOptions, Engine, Phase, PolicySet};

use crate::Options;
use crate::fixture::{self, Fixture, admit, pod};
use crate::report::{Met, Row};

/// An ImageValidatingPolicy verifying what [`Fixture::policy_yaml`] verifies: images
/// under `host/` signed by `public_pem`, no transparency log, digests pinned.
pub fn ivp_yaml(host: &str, public_pem: &str) -> String {
    let key: String = public_pem
        .trim_end()
        .lines()
        .map(|line| format!("            {line}\n"))
        .collect();
    format!(
        r#"apiVersion: policies.kyverno.io/v1beta1
kind: ImageValidatingPolicy
metadata:
  name: check-image
spec:
  webhookConfiguration:
    timeoutSeconds: 30
  evaluation:
    background:
      enabled: false
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE"]
        resources: ["pods"]
  matchImageReferences:
    - glob: "{host}/*"
  attestors:
    - name: cosign
      cosign:
        key:
          data: |-
{key}        ctlog:
          insecureIgnoreTlog: true
  validations:
    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)
      message: failed to verify image signatures
"#
    )
}

/// Loads an ImageValidatingPolicy from YAML text.
fn ivp_set(yaml: &str) -> anyhow::Result<PolicySet> {
    let policies = fixture::policy_set(yaml)?;
    ensure!(
        policies.policies().next().is_none() && policies.image_validating().len() == 1,
        "expected one ImageValidatingPolicy"
    );
    Ok(policies)
}

pub async fn run(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let fixture = Fixture::start();
    let image = fixture.push_signed("bench/ivp", "v1");
    let pod = pod("web", std::slice::from_ref(&image));
    let cluster_policy = fixture.policies()?;
    let ivp = ivp_set(&ivp_yaml(&fixture.host(), &fixture.key.public_pem()))?;

    // Cold: the registry requests of one verification, each kind on a fresh engine.
    let client = fixture::client()?;
    let cold_requests = |policies: &PolicySet| {
        let (client, policies, pod) = (client.clone(), policies.clone(), pod.clone());
        let fixture = &fixture;
        async move {
            let engine = fixture::engine(client, CacheOptions::default());
            let before = fixture.requests();
            admit(&engine, &policies, &pod, 1).await?;
            anyhow::Ok((
                fixture.requests() - before,
                fixture.requests_since(before),
            ))
        }
    };
    // Warm the connection pool (and the registry's own caches) once.
    cold_requests(&cluster_policy).await?;
    let (cp_requests, cp_lines) = cold_requests(&cluster_policy).await?;
    let (ivp_requests, ivp_lines) = cold_requests(&ivp).await?;
    eprintln!(
        "bench: registry requests of one cold verification\n  ClusterPolicy:\n    {}\n  ImageValidatingPolicy:\n    {}",
        cp_lines.join("\n    "),
        ivp_lines.join("\n    ")
    );
    rows.push(Row::new(
        "13a cold verify, 1 tagged image: ImageValidatingPolicy vs ClusterPolicy",
        format!("{ivp_requests} vs {cp_requests} registry requests"),
        "the same requests",
        Met::from(ivp_requests == cp_requests),
    ));

    // Warm: /mutate throughput in-process, one engine per kind, caches filled first.
    let review = Arc::new(serde_json::to_vec(&fixture::review_json("bench-uid", &pod))?);
    let window = Duration::from_secs(options.duration.as_secs().clamp(1, 3));
    let mut rates = Vec::new();
    for policies in [cluster_policy, ivp] {
        let engine = Arc::new(fixture::engine(fixture::client()?, CacheOptions::default()));
        let policies = Arc::new(policies);
        for _ in 0..options.iterations.min(100) {
            answer(&engine, &policies, &review).await?;
        }
        rates.push(throughput(&engine, &policies, &review, window).await?);
    }
    let (cp_rate, ivp_rate) = (rates[0], rates[1]);
    let ratio = ivp_rate / cp_rate.max(f64::MIN_POSITIVE);
    rows.push(Row::new(
        "13b /mutate path in-process, warm cache: ImageValidatingPolicy vs ClusterPolicy",
        format!(
            "{ivp_rate:.0} vs {cp_rate:.0} reviews/s on 2 cores ({:.0} %)",
            ratio * 100.0
        ),
        "≥ 80 % of the ClusterPolicy's",
        Met::from(ratio >= 0.8),
    ));
    Ok(())
}

/// One `/mutate` review in-process: parse, evaluate, serialise; checks it admitted
/// with a digest pin (a denial would measure nothing).
async fn answer(engine: &Engine, policies: &PolicySet, body: &[u8]) -> anyhow::Result<()> {
    let review = AdmissionReview::parse(body).map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = admission::review(engine, policies, &review, Phase::Mutate)
        .await
        .review;
    let bytes = serde_json::to_vec(&answer)?;
    ensure!(
        answer
            .response
            .as_ref()
            .is_some_and(|r| r.allowed && r.patch.is_some()),
        "review not admitted with a patch: {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(())
}

/// Reviews per second over `window`, eight tasks on the bench's runtime.
async fn throughput(
    engine: &Arc<Engine>,
    policies: &Arc<PolicySet>,
    body: &Arc<Vec<u8>>,
    window: Duration,
) -> anyhow::Result<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (engine, policies, body) =
                (Arc::clone(engine), Arc::clone(policies), Arc::clone(body));
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    answer(&engine, &policies, &body).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
