//! Admission results into PolicyReports and Events against the API server fake: the
//! leader writes the report (also for a resource that had no uid at admission), a
//! follower writes only an EphemeralReport that the leader merges and deletes, and an
//! Event repeated is one object with a series count.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use imagegate_engine::{EngineResponse, PolicyKind, PolicyResponse, RuleResponse, RuleStatus};
use imagegate_kube::admission_reports::{
    AdmissionReportOptions, AdmissionReports, AdmissionResult,
};
use imagegate_kube::events::{EventRecorder, EventRecorderOptions, admission_events};
use imagegate_kube::reports::{ReportWriter, ReportWriterOptions};
use imagegate_policy::model::{FailureAction, FailurePolicy};
use imagegate_testkit::apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::{connect, eventually};

const MESSAGE: &str = "failed to verify image registry.example/app:v1: .attestors[0].entries[0].keys: no signatures found";

pub fn audit_failure(policy: &str) -> EngineResponse {
    let mut response = PolicyResponse::new(
        PolicyKind::ClusterPolicy,
        policy.into(),
        None,
        FailurePolicy::Fail,
    );
    response.rules.push(RuleResponse {
        name: "verify".into(),
        rule_type: imagegate_engine::response::IMAGE_VERIFY,
        status: RuleStatus::Fail,
        message: MESSAGE.into(),
        failure_action: FailureAction::Audit,
        images: vec![imagegate_engine::CheckedImage {
            image: "registry.example/app:v1".into(),
            digest: Some(format!("sha256:{}", "a".repeat(64))),
        }],
        exceptions: Vec::new(),
    });
    EngineResponse {
        policies: vec![response],
        ..EngineResponse::default()
    }
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": [{"name": "c", "image": "registry.example/app:v1"}]}})
}

/// The result of admitting `object` (its head: with a uid only if it has one).
pub fn result(object: &Value, policy: &str, request_uid: &str) -> AdmissionResult {
    let mut metadata = json!({"name": object["metadata"]["name"], "namespace": "default"});
    if let Some(uid) = object["metadata"].get("uid") {
        metadata["uid"] = uid.clone();
    }
    AdmissionResult {
        resource: json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata}),
        group: String::new(),
        version: "v1".into(),
        plural: "pods".into(),
        request_uid: request_uid.into(),
        response: audit_failure(policy),
        timestamp: 1_764_650_000,
    }
}

pub fn options() -> AdmissionReportOptions {
    AdmissionReportOptions {
        uid_lookups: vec![Duration::from_millis(100); 20],
        merge_interval: Duration::from_millis(200),
        ..AdmissionReportOptions::default()
    }
}

/// A replica's one report writer.
fn writer(client: &kube::Client) -> Arc<ReportWriter> {
    Arc::new(ReportWriter::start(
        client.clone(),
        ReportWriterOptions {
            window: Duration::from_millis(100),
            ..ReportWriterOptions::default()
        },
    ))
}

fn report_of(server: &ApiServer, uid: &str) -> Option<Value> {
    server
        .get(
            "policyreports.wgpolicyk8s.io",
            Some("default"),
            &format!("imagegate-{uid}"),
        )
        .ok()
}

fn results(report: &Value) -> Vec<(String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["policy"].as_str().unwrap().to_owned(),
                r["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_leader_writes_the_report_of_an_existing_and_of_a_created_resource() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let (_leading_tx, leading) = watch::channel(true);
    let feed = AdmissionReports::start(
        cluster.client.clone(),
        leading,
        writer(&cluster.client),
        options(),
    );

    // UPDATE: the object has its uid.
    let existing = server
        .create("pods", Some("default"), pod("existing"))
        .unwrap();
    let uid = existing["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(feed.submit(result(&existing, "audit-a", "req-1")));
    let report = eventually(Duration::from_secs(5), || report_of(&server, &uid))
        .await
        .expect("report within 5 s");
    assert_eq!(
        results(&report),
        [("audit-a".to_owned(), "fail".to_owned())]
    );
    assert_eq!(report["summary"]["fail"], 1);
    assert_eq!(report["scope"]["uid"], uid.as_str());
    assert_eq!(
        report["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str()
    );
    let properties = &report["results"][0]["properties"];
    assert_eq!(properties["images"], "registry.example/app:v1");
    assert_eq!(properties["digests"], format!("sha256:{}", "a".repeat(64)));
    assert_eq!(properties["process"], "admission review");

    // A second policy's result merges into the same report.
    assert!(feed.submit(result(&existing, "audit-b", "req-2")));
    let merged = eventually(Duration::from_secs(5), || {
        report_of(&server, &uid).filter(|r| r["results"].as_array().unwrap().len() == 2)
    })
    .await
    .expect("merged within 5 s");
    assert_eq!(merged["summary"]["fail"], 2);

    // CREATE: no uid at admission; the object is stored afterwards.
    let admitted = pod("created");
    assert!(feed.submit(result(&admitted, "audit-a", "req-3")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = server.create("pods", Some("default"), admitted).unwrap();
    let created_uid = stored["metadata"]["uid"].as_str().unwrap().to_owned();
    let report = eventually(Duration::from_secs(5), || report_of(&server, &created_uid))
        .await
        .expect("the created Pod's report within 5 s");
    assert_eq!(
        results(&report),
        [("audit-a".to_owned(), "fail".to_owned())]
    );

    // Never created: dropped after the look-ups, nothing written, counted.
    assert!(feed.submit(result(&pod("never"), "audit-a", "req-4")));
    assert!(
        eventually(Duration::from_secs(10), || {
            (feed.counters().unresolved.load(Ordering::Relaxed) == 1).then_some(())
        })
        .await
        .is_some()
    );
    assert_eq!(feed.writer().counters().failed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_followers_results_reach_the_report_through_the_leader_only() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let (_follower_tx, follower_leading) = watch::channel(false);
    let (_leader_tx, leader_leading) = watch::channel(true);
    let follower = AdmissionReports::start(
        cluster.client.clone(),
        follower_leading,
        writer(&cluster.client),
        options(),
    );

    let existing = server.create("pods", Some("default"), pod("web")).unwrap();
    let uid = existing["metadata"]["uid"].as_str().unwrap().to_owned();
    assert!(follower.submit(result(&existing, "audit-a", "req-9")));
    let ephemeral = eventually(Duration::from_secs(5), || {
        server
            .get(
                "ephemeralreports.reports.kyverno.io",
                Some("default"),
                "imagegate-req-9",
            )
            .ok()
    })
    .await
    .expect("the follower's EphemeralReport");
    assert_eq!(ephemeral["spec"]["owner"]["uid"], uid.as_str());
    assert_eq!(
        ephemeral["metadata"]["labels"]["audit.kyverno.io/resource.uid"],
        uid.as_str()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        report_of(&server, &uid).is_none(),
        "a follower writes no report"
    );

    let leader = AdmissionReports::start(
        cluster.client.clone(),
        leader_leading,
        writer(&cluster.client),
        options(),
    );
    let report = eventually(Duration::from_secs(5), || report_of(&server, &uid))
        .await
        .expect("merged by the leader within 5 s");
    assert_eq!(
        results(&report),
        [("audit-a".to_owned(), "fail".to_owned())]
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            server
                .get(
                    "ephemeralreports.reports.kyverno.io",
                    Some("default"),
                    "imagegate-req-9",
                )
                .is_err()
                .then_some(())
        })
        .await
        .is_some(),
        "the merged EphemeralReport is deleted"
    );
    assert_eq!(
        leader.counters().ephemeral_merged.load(Ordering::Relaxed),
        1
    );
    assert_eq!(
        follower
            .counters()
            .ephemeral_written
            .load(Ordering::Relaxed),
        1
    );
    // One writer: the follower's report writer never wrote.
    assert_eq!(
        follower.writer().counters().written.load(Ordering::Relaxed),
        0
    );
    assert!(
        eventually(Duration::from_secs(5), || {
            (leader.writer().counters().written.load(Ordering::Relaxed) >= 1).then_some(())
        })
        .await
        .is_some()
    );
}

#[tokio::test]
async fn a_denial_is_an_event_on_the_policy_and_repeats_bump_its_series() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let recorder = EventRecorder::start(
        cluster.client.clone(),
        EventRecorderOptions {
            min_interval: Duration::from_millis(1),
            ..EventRecorderOptions::new("replica-a")
        },
    );
    let denied = audit_failure("check-image");
    for _ in 0..3 {
        for event in admission_events(&pod("web"), &denied, true) {
            assert!(recorder.submit(event));
        }
    }
    let events = eventually(Duration::from_secs(5), || {
        let events = server
            .list("events.events.k8s.io", Some("default"))
            .unwrap();
        events
            .first()
            .filter(|e| e["series"]["count"] == 3)
            .map(|_| events.clone())
    })
    .await
    .expect("an Event with a series of 3 within 5 s");
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event["reason"], "PolicyViolation");
    assert_eq!(event["action"], "Resource Blocked");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "ClusterPolicy");
    assert_eq!(event["regarding"]["name"], "check-image");
    assert_eq!(event["related"]["name"], "web");
    assert_eq!(event["reportingController"], "imagegate-admission");
    assert_eq!(event["reportingInstance"], "imagegate-admission-replica-a");
    assert_eq!(
        event["note"],
        format!("Pod default/web: [verify] fail (blocked); {MESSAGE}")
    );
    // The counters follow the API's answers (the object may be seen a moment earlier).
    let counted = eventually(Duration::from_secs(5), || {
        let repeated = recorder.counters().repeated.load(Ordering::Relaxed);
        (repeated == 2).then_some(recorder.counters().created.load(Ordering::Relaxed))
    })
    .await;
    assert_eq!(counted, Some(1), "one created, two repeats");

    // Admitted under Audit: one on the policy and one on the resource.
    for event in admission_events(&pod("web"), &denied, false) {
        assert!(recorder.submit(event));
    }
    let events = eventually(Duration::from_secs(5), || {
        let events = server
            .list("events.events.k8s.io", Some("default"))
            .unwrap();
        (events.len() == 3).then_some(events)
    })
    .await
    .expect("two more Events");
    assert!(events.iter().any(|e| e["regarding"]["kind"] == "Pod"
        && e["note"] == format!("policy check-image/verify fail: {MESSAGE}")));
}
