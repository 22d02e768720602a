//! Background scans against the API server fake and a real `docker-registry`: reports
//! after the first scan, a deleted signature turning pass into fail at a later scan
//! although the verdict cache would still vouch for it, registry requests per distinct
//! image and scan, and scans gated by leadership, `background` and policy changes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use imagegate_engine::{Engine, PolicySet, RuleStatus};
use imagegate_kube::admission_reports::AdmissionReports;
use imagegate_kube::scan::NoObserver;
use imagegate_kube::{
    BackgroundScanner, ReportWriter, ReportWriterOptions, ScanInputs, ScanOptions, WorkloadWatch,
};
use imagegate_oci::{ClientOptions, DockerConfig, RegistryClient};
use imagegate_policy::load::load_policies;
use imagegate_testkit::apiserver::ApiServer;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{connect, eventually};

/// An Audit ClusterPolicy requiring a signature by `key_pem` on every image of `host`;
/// `background: false` when `background` is false.
fn policy(key_pem: &str, host: &str, background: bool) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: signed-images
spec:
  background: {background}
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          failureAction: Audit
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
    PolicySet::new(load_policies(&yaml, "test").expect("policy loads"))
}

/// An engine with an anonymous client and the default caches (verdicts kept an hour).
fn engine() -> Engine {
    let client =
        RegistryClient::new(DockerConfig::anonymous(), ClientOptions::default()).expect("client");
    Engine::builder(client).build()
}

fn create_pod(server: &ApiServer, name: &str, image: &str) -> Value {
    server
        .create(
            "pods",
            Some("default"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": "default"},
                   "spec": {"containers": [{"name": "app", "image": image}]}}),
        )
        .unwrap()
}

/// The result of the one rule in the stored report of `pod`, with its message.
fn reported(server: &ApiServer, pod: &Value) -> Option<(String, String)> {
    let name = format!("imagegate-{}", pod["metadata"]["uid"].as_str()?);
    let report = server
        .get("policyreports.wgpolicyk8s.io", Some("default"), &name)
        .ok()?;
    let result = &report["results"][0];
    Some((
        result["result"].as_str()?.to_owned(),
        result["message"].as_str()?.to_owned(),
    ))
}

fn writer(server_client: kube::Client) -> Arc<ReportWriter> {
    Arc::new(ReportWriter::start(
        server_client,
        ReportWriterOptions {
            window: Duration::from_millis(50),
            min_interval: Duration::from_millis(1),
            ..ReportWriterOptions::default()
        },
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_signature_fails_at_the_next_scan() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/signed", "v1");
    let key = CosignKey::generate();
    let signature = pusher.sign(
        "app/signed",
        &format!("{host}/app/signed"),
        &digest,
        &key,
        &BTreeMap::new(),
    );
    pusher.push_image("app/unsigned", "v1");
    let (signed, unsigned) = (
        format!("{host}/app/signed:v1"),
        format!("{host}/app/unsigned:v1"),
    );

    let server = ApiServer::start();
    let cluster = connect(&server).await;
    // Six Pods over two images, interleaved: the scan groups them by image.
    let pods: Vec<(Value, bool)> = (0..6)
        .map(|i| {
            let is_signed = i % 2 == 0;
            let image = if is_signed { &signed } else { &unsigned };
            (create_pod(&server, &format!("p{i}"), image), is_signed)
        })
        .collect();

    let (_policies_tx, policies) = watch::channel(Arc::new(policy(&key.public_pem(), &host, true)));
    let (_leader_tx, leader) = watch::channel(true);
    let before = registry.requests().len();
    let scanner = BackgroundScanner::start(
        Arc::new(WorkloadWatch::start(cluster.client.clone())),
        ScanInputs {
            engine: engine(),
            policies,
            leader,
            reports: writer(cluster.client.clone()),
            observer: Arc::new(NoObserver),
        },
        ScanOptions {
            interval: Duration::from_secs(2),
            ..ScanOptions::default()
        },
    );

    // The first scan: the signed Pods pass, the unsigned fail.
    assert!(scanner.wait_for_scans(1, Duration::from_secs(30)).await);
    let mark = registry.requests().len();
    let first = mark - before;
    for (pod, is_signed) in &pods {
        let (result, message) = eventually(Duration::from_secs(5), || reported(&server, pod))
            .await
            .unwrap_or_else(|| panic!("no report for {}", pod["metadata"]["name"]));
        let expected = if *is_signed { "pass" } else { "fail" };
        assert_eq!(result, expected, "{}: {message}", pod["metadata"]["name"]);
    }
    assert_eq!(scanner.counters().resources.load(Ordering::Relaxed), 6);
    // Each distinct image verified once: tag, signature manifest, signature layer at most.
    assert!(
        (2..=3 * 2).contains(&first),
        "{first} registry requests in the first scan of 6 Pods over 2 images"
    );

    // The second scan verifies again although the verdicts are cached for an hour, once
    // per image again, and writes nothing: no result changed.
    assert!(scanner.wait_for_scans(2, Duration::from_secs(30)).await);
    let second = registry.requests().len() - mark;
    eprintln!("registry requests: first scan {first}, second scan {second} (6 Pods, 2 images)");
    assert!(
        (2..=3 * 2).contains(&second),
        "{second} registry requests in the second scan"
    );
    assert_eq!(scanner.counters().reports.load(Ordering::Relaxed), 6);
    assert_eq!(scanner.counters().unchanged.load(Ordering::Relaxed), 6);

    // The signature is deleted: a later scan reports the signed Pods failing.
    pusher.delete_manifest("app/signed", &signature);
    for (pod, is_signed) in pods.iter().filter(|(_, s)| *s) {
        let (_, message) = eventually(Duration::from_secs(20), || {
            reported(&server, pod).filter(|(result, _)| result == "fail")
        })
        .await
        .unwrap_or_else(|| panic!("{} still passes", pod["metadata"]["name"]));
        assert!(*is_signed);
        assert!(
            message.contains("no signatures found") && message.contains(&signed),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_scans_and_only_background_policies() {
    let registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app/unsigned", "v1");
    let key = CosignKey::generate();
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let pod = create_pod(&server, "p", &format!("{host}/app/unsigned:v1"));
    // A Pod controlled by a ReplicaSet the fake does not serve: scanned itself.
    let mut owned = pod.clone();
    owned["metadata"] = json!({"name": "owned", "namespace": "default",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                             "uid": "rs-uid", "controller": true}]});
    let owned = server.create("pods", Some("default"), owned).unwrap();

    let (policies_tx, policies) = watch::channel(Arc::new(policy(&key.public_pem(), &host, false)));
    let (leader_tx, leader) = watch::channel(false);
    let before = registry.requests().len();
    let scanner = BackgroundScanner::start(
        Arc::new(WorkloadWatch::start(cluster.client.clone())),
        ScanInputs {
            engine: engine(),
            policies,
            leader,
            reports: writer(cluster.client.clone()),
            observer: Arc::new(NoObserver),
        },
        ScanOptions {
            interval: Duration::from_secs(3600),
            ..ScanOptions::default()
        },
    );

    // Not the leader: no scan.
    assert!(!scanner.wait_for_scans(1, Duration::from_millis(500)).await);
    // The leader, with a policy that does not run in the background: a scan of nothing.
    leader_tx.send_replace(true);
    assert!(scanner.wait_for_scans(1, Duration::from_secs(10)).await);
    assert_eq!(scanner.counters().resources.load(Ordering::Relaxed), 0);
    assert_eq!(registry.requests().len(), before);
    // The policy changes to run in the background: a scan at once, both Pods reported.
    policies_tx.send_replace(Arc::new(policy(&key.public_pem(), &host, true)));
    assert!(scanner.wait_for_scans(2, Duration::from_secs(30)).await);
    for pod in [&pod, &owned] {
        let (result, _) = eventually(Duration::from_secs(5), || reported(&server, pod))
            .await
            .unwrap_or_else(|| panic!("no report for {}", pod["metadata"]["name"]));
        assert_eq!(result, "fail");
    }
}

/// The stored report of `pod`: its (policy, result, message) triples, sorted by policy.
fn all_results(server: &ApiServer, pod: &Value) -> Option<Vec<(String, String, String)>> {
    let name = format!("imagegate-{}", pod["metadata"]["uid"].as_str()?);
    let report = server
        .get("policyreports.wgpolicyk8s.io", Some("default"), &name)
        .ok()?;
    report["results"]
        .as_array()?
        .iter()
        .map(|r| {
            Some((
                r["policy"].as_str()?.to_owned(),
                r["result"].as_str()?.to_owned(),
                r["message"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn seconds_now() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

/// A scan and the admission feed write through one writer: the results of one Pod from
/// both end in its one report, neither erasing the other's, and per policy and rule the
/// newer result wins whatever its source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_and_admission_results_share_one_report() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/signed", "v1");
    let key = CosignKey::generate();
    let signature = pusher.sign(
        "app/signed",
        &format!("{host}/app/signed"),
        &digest,
        &key,
        &BTreeMap::new(),
    );
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let pod = create_pod(&server, "web", &format!("{host}/app/signed:v1"));

    let writer = writer(cluster.client.clone());
    let (_policies_tx, policies) = watch::channel(Arc::new(policy(&key.public_pem(), &host, true)));
    let (_leader_tx, leader) = watch::channel(true);
    let feed = AdmissionReports::start(
        cluster.client.clone(),
        leader.clone(),
        Arc::clone(&writer),
        crate::governance::options(),
    );
    let scanner = BackgroundScanner::start(
        Arc::new(WorkloadWatch::start(cluster.client.clone())),
        ScanInputs {
            engine: engine(),
            policies,
            leader,
            reports: Arc::clone(&writer),
            observer: Arc::new(NoObserver),
        },
        ScanOptions {
            interval: Duration::from_secs(1),
            ..ScanOptions::default()
        },
    );
    let policies_of = |results: &[(String, String, String)]| -> Vec<(String, String)> {
        results
            .iter()
            .map(|(policy, result, _)| (policy.clone(), result.clone()))
            .collect()
    };
    let pair = |policy: &str, result: &str| (policy.to_owned(), result.to_owned());

    // The scan's result first.
    eventually(Duration::from_secs(30), || reported(&server, &pod))
        .await
        .expect("the scan's report");

    // An admission's result of a policy the scan does not run joins it.
    let mut admitted = crate::governance::result(&pod, "admission-only", "req-1");
    admitted.timestamp = seconds_now();
    assert!(feed.submit(admitted));
    let both = eventually(Duration::from_secs(5), || {
        all_results(&server, &pod).filter(|r| r.len() == 2)
    })
    .await
    .expect("the admission's result merged into the scan's report");
    assert_eq!(
        policies_of(&both),
        [
            pair("admission-only", "fail"),
            pair("signed-images", "pass")
        ]
    );

    // The signature is deleted: a later scan writes its fail, the admission's result stays.
    pusher.delete_manifest("app/signed", &signature);
    let after_scan = eventually(Duration::from_secs(20), || {
        all_results(&server, &pod).filter(|r| {
            r.iter()
                .any(|(p, result, _)| p == "signed-images" && result == "fail")
        })
    })
    .await
    .expect("the later scan's fail");
    assert_eq!(
        policies_of(&after_scan),
        [
            pair("admission-only", "fail"),
            pair("signed-images", "fail")
        ],
        "the scan's report erased the admission's result"
    );
    let scan_message = after_scan[1].2.clone();
    assert!(
        scan_message.contains("no signatures found"),
        "{scan_message}"
    );

    // An older admission result for the scan's policy and rule does not replace it; a
    // newer one does.
    let mut older = crate::governance::result(&pod, "signed-images", "req-2");
    older.timestamp = 1;
    older.response.policies[0].rules[0].message = "older".into();
    older.response.policies[0].rules[0].status = RuleStatus::Pass;
    let mut newer = older.clone();
    newer.request_uid = "req-3".into();
    newer.timestamp = seconds_now() + 3600;
    newer.response.policies[0].rules[0].message = "newer".into();
    let written = || writer.counters().written.load(Ordering::Relaxed);
    let before = written();
    assert!(feed.submit(older));
    eventually(Duration::from_secs(5), || {
        (written() > before).then_some(())
    })
    .await
    .expect("the older result's write");
    assert_eq!(all_results(&server, &pod), Some(after_scan.clone()));
    assert!(feed.submit(newer));
    let replaced = eventually(Duration::from_secs(5), || {
        all_results(&server, &pod).filter(|r| r.iter().any(|(_, _, m)| m == "newer"))
    })
    .await
    .expect("the newer result written");
    assert_eq!(
        policies_of(&replaced),
        [
            pair("admission-only", "fail"),
            pair("signed-images", "pass")
        ]
    );
    assert!(replaced.iter().all(|(_, _, m)| m != "older"));
    drop(scanner);
    assert_eq!(writer.counters().failed.load(Ordering::Relaxed), 0);
    // Both writes of the admission and the scans' went through the one writer.
    assert!(writer.counters().written.load(Ordering::Relaxed) >= 3);
}
