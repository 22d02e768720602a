//! Scenario 14 (issue 10): `imagegate serve` in cluster mode against the test kit's
//! API-server fake holding 10 000 namespaces, 1 000 Secrets and 500 ClusterPolicies.
//! Figures: peak RSS over the same binary serving its bundled policies without a cluster,
//! API requests made in steady state (beyond the watches already open), and the time
//! from a policy change at the API server to its enforcement by `/mutate`.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use imagegate_testkit::CosignKey;
use imagegate_testkit::apiserver::ApiServer;
use serde_json::{Value, json};

use crate::Options;
use crate::fixture::{self, Fixture};
use crate::report::{Met, Row, Samples, ms};
use crate::webhook::Server;

const NAMESPACES: usize = 10_000;
const SECRETS: usize = 1_000;
const POLICIES: usize = 500;
const CLUSTER_POLICIES: &str = "clusterpolicies.kyverno.io";
/// imagegate's own namespace (the kubeconfig context's).
const OWN_NAMESPACE: &str = "imagegate-system";
/// Where the policies' `k8s://` keys live.
const KEYS_NAMESPACE: &str = "keys";
/// Policy changes timed (alternating between two keys).
const CHANGES: usize = 10;
/// The longest a change may take to be enforced before the scenario gives up.
const ENFORCEMENT_LIMIT: Duration = Duration::from_secs(30);

pub async fn run(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let scenario = "14 cluster mode: 10 000 namespaces, 1 000 Secrets, 500 ClusterPolicies";
    if !options.imagegate.is_file() {
        rows.push(Row::new(
            scenario,
            format!(
                "not run: {} missing (cargo build --release -p imagegate)",
                options.imagegate.display()
            ),
            "≤ +64 MiB RSS, 0 steady-state requests, change → enforced ≤ 2 s",
            Met::No,
        ));
        return Ok(());
    }
    let fixture = Fixture::start();
    let image = fixture.push_signed("bench/p0/app", "v1");
    let other_key = CosignKey::generate();
    let dir = tempfile::Builder::new()
        .prefix("imagegate-bench-cluster-")
        .tempdir()?;

    // Baseline: the same binary on its bundled example policies, no cluster.
    let baseline = {
        let args = [OsStr::new("--no-kubernetes")];
        let server =
            Server::start_with(&options.imagegate, dir.path(), &args, Some("warn")).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.peak_rss_mib()
    };

    let api = tokio::task::block_in_place(|| populate(&fixture))?;
    let kubeconfig = api.kubeconfig(Some(OWN_NAMESPACE));
    let started = Instant::now();
    let args = [OsStr::new("--kubeconfig"), kubeconfig.as_os_str()];
    let server = Server::start_with(&options.imagegate, dir.path(), &args, Some("warn")).await?;
    let ready = started.elapsed();
    let client = server.client(Duration::from_secs(10))?;
    let pod = fixture::pod("app", std::slice::from_ref(&image));
    let mut uid = 0u64;
    let mut allowed = async |client: &reqwest::Client| -> anyhow::Result<bool> {
        uid += 1;
        let review = fixture::review_json(&format!("bench-{uid}"), &pod);
        let bytes = client
            .post(server.url())
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&review)?)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let answer: Value = serde_json::from_slice(&bytes)?;
        answer["response"]["allowed"]
            .as_bool()
            .with_context(|| format!("no answer: {answer}"))
    };
    ensure!(
        allowed(&client).await?,
        "the signed image is not admitted under policy p-0"
    );

    // Steady state: once the status writes of the first sync are done, count every
    // request for as long as scenario 1 loads the server.
    let settled = settle(&api).await;
    let before = api.requests().len();
    tokio::time::sleep(options.duration).await;
    let steady: Vec<String> = api.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    let watches = api.open_watches();
    let rss = server.peak_rss_mib();

    // Policy change → enforcement: p-0's key swapped to a key that did not sign the
    // image (denied), then back (admitted), timed from the write to the first answer
    // that follows it.
    let keys = [other_key.public_pem(), fixture.key.public_pem()];
    let mut changes = Samples::default();
    for change in 0..CHANGES {
        let key = &keys[change % 2];
        let expect_allowed = change % 2 == 1;
        let written = Instant::now();
        tokio::task::block_in_place(|| {
            api.merge_patch(
                CLUSTER_POLICIES,
                None,
                "p-0",
                json!({"spec": policy_spec(0, key)}),
            )
        })
        .map_err(|e| anyhow::anyhow!("changing p-0: {e:?}"))?;
        loop {
            if allowed(&client).await? == expect_allowed {
                break;
            }
            if written.elapsed() > ENFORCEMENT_LIMIT {
                bail!("change {change} of p-0 not enforced within {ENFORCEMENT_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        changes.push(written.elapsed());
    }

    let growth = rss - baseline;
    rows.push(Row::new(
        &format!("{scenario}: peak RSS"),
        format!(
            "{rss:.1} MiB vs {baseline:.1} MiB without a cluster (+{growth:.1} MiB); ready (first complete LISTs) {}",
            ms(ready)
        ),
        "≤ +64 MiB",
        Met::from(growth <= 64.0),
    ));
    rows.push(Row::new(
        &format!("{scenario}: API requests in steady state"),
        format!(
            "{} requests in {} s after {} s to settle, {watches} watches open{}",
            steady.len(),
            options.duration.as_secs(),
            settled.as_secs(),
            if steady.is_empty() {
                String::new()
            } else {
                format!(": {}", steady.join(", "))
            }
        ),
        "0 beyond the open watches",
        Met::from(steady.is_empty()),
    ));
    rows.push(Row::new(
        &format!("{scenario}: policy change → enforced"),
        format!("{} changes: {}", CHANGES, changes.summary()),
        "≤ 2 s",
        Met::from(changes.quantile(1.0) <= Duration::from_secs(2)),
    ));
    Ok(())
}

/// The fake with the namespaces, Secrets and policies of the scenario: policy `p-0`
/// names the bench image with the fixture's key inline; the 499 others each name their
/// own repository, a `k8s://` key among the Secrets and a namespace label.
fn populate(fixture: &Fixture) -> anyhow::Result<ApiServer> {
    let api = ApiServer::start();
    let create = |resource: &str, namespace: Option<&str>, object: Value| {
        api.create(resource, namespace, object)
            .map(drop)
            .map_err(|e| anyhow::anyhow!("creating a {resource}: {e:?}"))
    };
    for name in [OWN_NAMESPACE, KEYS_NAMESPACE] {
        create("namespaces", None, json!({"metadata": {"name": name}}))?;
    }
    for i in 0..NAMESPACES {
        let labels = json!({"team": format!("t{}", i % 50), "env": "bench"});
        let metadata = json!({"name": format!("ns-{i}"), "labels": labels});
        create("namespaces", None, json!({"metadata": metadata}))?;
    }
    let pem = base64::engine::general_purpose::STANDARD.encode(fixture.key.public_pem());
    for i in 0..SECRETS {
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("key-{i}"), "namespace": KEYS_NAMESPACE},
            "type": "Opaque",
            "data": {"cosign.pub": pem},
        });
        create("secrets", Some(KEYS_NAMESPACE), secret)?;
    }
    for i in 0..POLICIES {
        let key = if i == 0 {
            fixture.key.public_pem()
        } else {
            format!("k8s://{KEYS_NAMESPACE}/key-{}", i % SECRETS)
        };
        let policy = json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {
                "name": format!("p-{i}"),
                "annotations": {"pod-policies.kyverno.io/autogen-controllers": "none"},
            },
            "spec": policy_spec(i, &key),
        });
        create(CLUSTER_POLICIES, None, policy)?;
    }
    Ok(api)
}

/// The spec of policy `p-i`: Enforce, images under `HOST/bench/p{i}/` signed by `key`;
/// every policy but `p-0` only in the namespaces of one team.
fn policy_spec(i: usize, key: &str) -> Value {
    let mut resources = json!({"kinds": ["Pod"]});
    if i > 0 {
        resources["namespaceSelector"] = json!({"matchLabels": {"team": format!("t{}", i % 50)}});
    }
    json!({
        "validationFailureAction": "Enforce",
        "background": false,
        "webhookTimeoutSeconds": 30,
        "rules": [{
            "name": "verify-signature",
            "match": {"any": [{"resources": resources}]},
            "verifyImages": [{
                "imageReferences": [format!("*/bench/p{i}/*")],
                "attestors": [{"entries": [{"keys": {
                    "publicKeys": key,
                    "rekor": {"ignoreTlog": true},
                }}]}],
            }],
        }],
    })
}

/// Waits until the fake has answered no new request for 2 s (the Ready status writes
/// of the first sync are queued and paced); returns how long that took.
async fn settle(api: &ApiServer) -> Duration {
    let started = Instant::now();
    let mut seen = api.requests().len();
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(2)
        && started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = api.requests().len();
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
    started.elapsed()
}
