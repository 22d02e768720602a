//! PolicyReports written through the queue: server-side apply, one object per resource,
//! newest wins within a batch, paced, and a full queue drops instead of waiting. (Results
//! of scans and admissions merged in one report: `scan.rs`.)

use std::sync::atomic::Ordering;
use std::time::Duration;

use imagegate_kube::{ReportWriter, ReportWriterOptions};
use imagegate_testkit::apiserver::ApiServer;
use serde_json::{Value, json};

use crate::{connect, eventually};

/// A Kyverno-shaped report for a Pod (what `imagegate_engine::report` builds).
fn pod_report(pod: &Value, result: &str, message: &str) -> Value {
    let uid = pod["metadata"]["uid"].as_str().unwrap();
    let namespace = pod["metadata"]["namespace"].as_str().unwrap();
    let name = pod["metadata"]["name"].as_str().unwrap();
    let reference = json!({"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid});
    let mut scope = reference.clone();
    scope["namespace"] = json!(namespace);
    let mut summary = json!({"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0});
    summary[result] = json!(1);
    json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {
            "name": format!("imagegate-{uid}"),
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "imagegate"},
            "ownerReferences": [reference],
        },
        "scope": scope,
        "summary": summary,
        "results": [{
            "source": "imagegate", "policy": "check-image", "rule": "verify",
            "result": result, "message": message, "scored": true,
            "timestamp": {"seconds": 1, "nanos": 0},
            "properties": {"process": "admission review"},
        }],
    })
}

fn create_pod(server: &ApiServer, name: &str) -> Value {
    server
        .create(
            "pods",
            Some("default"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": "default"},
                   "spec": {"containers": [{"name": "c", "image": "registry.example/app:v1"}]}}),
        )
        .unwrap()
}

fn report_patches(server: &ApiServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("policyreports"))
        .count()
}

#[tokio::test]
async fn reports_are_applied_and_the_newest_of_a_batch_wins() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let pod = create_pod(&server, "app");
    let writer = ReportWriter::start(
        cluster.client.clone(),
        ReportWriterOptions {
            window: Duration::from_millis(300),
            ..ReportWriterOptions::default()
        },
    );
    // Ten evaluations of the same Pod in quick succession: one write, the last result.
    for i in 0..10 {
        let result = if i == 9 { "fail" } else { "pass" };
        assert_eq!(
            writer.submit(pod_report(&pod, result, &format!("evaluation {i}"))),
            Ok(true)
        );
    }
    let name = format!("imagegate-{}", pod["metadata"]["uid"].as_str().unwrap());
    let stored = eventually(Duration::from_secs(5), || {
        server
            .get("policyreports.wgpolicyk8s.io", Some("default"), &name)
            .ok()
    })
    .await
    .expect("report written within 5 s");
    assert_eq!(stored["results"][0]["message"], "evaluation 9");
    assert_eq!(stored["summary"]["fail"], 1);
    assert_eq!(stored["scope"]["uid"], pod["metadata"]["uid"]);
    assert_eq!(
        stored["metadata"]["ownerReferences"][0]["uid"],
        pod["metadata"]["uid"]
    );
    let counters = writer.counters();
    eventually(Duration::from_secs(2), || {
        (counters.written.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await
    .expect("one write");
    assert_eq!(counters.superseded.load(Ordering::Relaxed), 9);
    assert_eq!(report_patches(&server), 1);

    // A later evaluation of the same policy and rule replaces its result (merged with
    // the report this writer wrote: as new or newer wins).
    writer
        .submit(pod_report(&pod, "pass", "verified again"))
        .unwrap();
    eventually(Duration::from_secs(5), || {
        server
            .get("policyreports.wgpolicyk8s.io", Some("default"), &name)
            .ok()
            .filter(|r| r["results"][0]["message"] == "verified again")
    })
    .await
    .expect("report updated");

    // Cluster-scoped resources get a ClusterPolicyReport.
    let mut cluster_report = pod_report(&pod, "error", "registry unreachable");
    cluster_report["kind"] = json!("ClusterPolicyReport");
    cluster_report["metadata"]["name"] = json!("imagegate-ns-uid");
    cluster_report["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    writer.submit(cluster_report).unwrap();
    let stored = eventually(Duration::from_secs(5), || {
        server
            .get(
                "clusterpolicyreports.wgpolicyk8s.io",
                None,
                "imagegate-ns-uid",
            )
            .ok()
    })
    .await
    .expect("cluster report written");
    assert_eq!(stored["results"][0]["result"], "error");
    assert_eq!(counters.failed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn submitting_never_waits_and_bad_reports_are_refused() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let pods: Vec<Value> = (0..6)
        .map(|i| create_pod(&server, &format!("p{i}")))
        .collect();
    // A queue of 2, a slow pace: the burst overflows the queue at once.
    let writer = ReportWriter::start(
        cluster.client.clone(),
        ReportWriterOptions {
            queue: 2,
            batch: 1,
            window: Duration::from_millis(1),
            min_interval: Duration::from_millis(200),
            ..ReportWriterOptions::default()
        },
    );
    let accepted = pods
        .iter()
        .map(|pod| writer.submit(pod_report(pod, "pass", "ok")).unwrap())
        .filter(|queued| *queued)
        .count();
    assert!((2..6).contains(&accepted), "accepted {accepted}");
    let dropped = writer.counters().dropped.load(Ordering::Relaxed);
    assert_eq!(dropped as usize, 6 - accepted);
    eventually(Duration::from_secs(5), || {
        (writer.counters().written.load(Ordering::Relaxed) as usize == accepted).then_some(())
    })
    .await
    .expect("every queued report written");

    for (report, reason) in [
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            "apiVersion is not wgpolicyk8s.io/v1alpha2",
        ),
        (
            json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport", "metadata": {"name": "x"}}),
            "a PolicyReport needs metadata.namespace",
        ),
        (
            json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "ClusterPolicyReport", "metadata": {}}),
            "metadata.name is empty",
        ),
    ] {
        let refused = writer.submit(report).unwrap_err();
        assert_eq!(refused.reason, reason);
    }
}

#[tokio::test]
async fn a_stored_report_is_read_back_and_its_other_results_kept() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let pod = create_pod(&server, "kept");
    // Written before this writer started (another leader, or this one before a restart):
    // a result of another policy, and an older one of the policy about to be reported.
    let mut stored = pod_report(&pod, "fail", "another policy");
    stored["results"][0]["policy"] = json!("another-policy");
    let mut older = stored["results"][0].clone();
    older["policy"] = json!("check-image");
    older["message"] = json!("older");
    stored["results"].as_array_mut().unwrap().push(older);
    server
        .create("policyreports.wgpolicyk8s.io", Some("default"), stored)
        .unwrap();
    let writer = ReportWriter::start(
        cluster.client.clone(),
        ReportWriterOptions {
            window: Duration::from_millis(50),
            ..ReportWriterOptions::default()
        },
    );
    let mut newer = pod_report(&pod, "pass", "verified");
    newer["results"][0]["timestamp"]["seconds"] = json!(2);
    writer.submit(newer).unwrap();
    let name = format!("imagegate-{}", pod["metadata"]["uid"].as_str().unwrap());
    let merged = eventually(Duration::from_secs(5), || {
        server
            .get("policyreports.wgpolicyk8s.io", Some("default"), &name)
            .ok()
            .filter(|r| {
                r["results"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["message"] == "verified"))
            })
    })
    .await
    .expect("report written within 5 s");
    let results: Vec<(&str, &str)> = merged["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["policy"].as_str().unwrap(),
                r["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("another-policy", "another policy"),
            ("check-image", "verified")
        ]
    );
    assert_eq!(merged["summary"]["pass"], 1);
    assert_eq!(merged["summary"]["fail"], 1);
    let counters = writer.counters();
    assert_eq!(counters.read_back.load(Ordering::Relaxed), 1);

    // Written lately by this writer: not read again; and an older result (second 1)
    // does not replace the newer one (second 2).
    writer
        .submit(pod_report(&pod, "pass", "older again"))
        .unwrap();
    eventually(Duration::from_secs(5), || {
        (counters.written.load(Ordering::Relaxed) == 2).then_some(())
    })
    .await
    .expect("the second write");
    assert_eq!(counters.read_back.load(Ordering::Relaxed), 1);
    let stored = server
        .get("policyreports.wgpolicyk8s.io", Some("default"), &name)
        .unwrap();
    assert_eq!(stored["results"][1]["message"], "verified");
    assert_eq!(counters.failed.load(Ordering::Relaxed), 0);
}
