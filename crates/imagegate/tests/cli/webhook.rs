//! The webhook's answers through its router, in-process (`webhook_router(state)` driven
//! by `tower::ServiceExt::oneshot`: no process, no port), against a real
//! `docker-registry`. What needs a process (TLS, reload, signals) is in `serve`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt as _;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use imagegate::engine::EngineConfig;
use imagegate::registry::RegistryConfig;
use imagegate::serve::{Limits, State};
use imagegate_engine::EngineMetrics;
use imagegate_testkit::CosignKey;
use imagegate_testkit::fixtures::decoded_patch;
use serde_json::{Value, json};
use std::net::TcpListener;
use tower::ServiceExt as _;

use crate::serve::{count, images, pod, policy, review_of, write};

/// The webhook's routers over one state, with a runtime to drive them.
pub(crate) struct Webhook {
    pub runtime: tokio::runtime::Runtime,
    pub state: Arc<State>,
    router: Router,
    metrics_router: Router,
    _home: tempfile::TempDir,
}

impl Webhook {
    /// The webhook serving the policies of `paths` with `limits`, an engine built as
    /// `serve` builds it (default caches; no credentials).
    pub fn with_limits(paths: &[&Path], limits: Limits) -> Webhook {
        let home = tempfile::tempdir().unwrap();
        let docker_config = home.path().join("config.json");
        std::fs::write(&docker_config, "{}").unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
        let policies = imagegate::serve::load_policies(&paths).unwrap();
        let config = EngineConfig {
            registry: RegistryConfig {
                docker_config: Some(docker_config),
                ..RegistryConfig::default()
            },
            ..EngineConfig::default()
        };
        let engine_metrics = EngineMetrics::default();
        let engine = {
            let _guard = runtime.enter();
            imagegate::engine::build(&config, engine_metrics.clone()).unwrap()
        };
        let state = Arc::new(State::new(engine, &engine_metrics, policies, limits));
        Webhook {
            router: imagegate::serve::webhook_router(Arc::clone(&state)),
            metrics_router: imagegate::serve::metrics_router(Arc::clone(&state)),
            state,
            runtime,
            _home: home,
        }
    }

    pub fn start(paths: &[&Path]) -> Webhook {
        Webhook::with_limits(paths, Limits::default())
    }

    /// Sends `request` through `router`; returns the status and the body.
    pub async fn send(router: Router, request: Request<Body>) -> (u16, String) {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    pub fn post_request(path: &str, body: Vec<u8>) -> Request<Body> {
        Request::post(path)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// POSTs `body` to the webhook; returns the status and the body (JSON when it is).
    pub fn post(&self, path: &str, body: &[u8]) -> (u16, Value, Duration) {
        let started = Instant::now();
        let (status, text) = self.runtime.block_on(Webhook::send(
            self.router(),
            Webhook::post_request(path, body.to_vec()),
        ));
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, started.elapsed())
    }

    /// POSTs an AdmissionReview and returns its `response` (checking status 200 and uid).
    pub fn review(&self, path: &str, review: &Value) -> (Value, Duration) {
        let (status, body, elapsed) = self.post(path, &serde_json::to_vec(review).unwrap());
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(body["apiVersion"], review["apiVersion"]);
        assert_eq!(body["response"]["uid"], review["request"]["uid"], "{body}");
        (body["response"].clone(), elapsed)
    }

    /// GET `path` of the webhook listener's routes.
    pub fn get(&self, path: &str) -> (u16, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        self.runtime.block_on(Webhook::send(self.router(), request))
    }

    /// The text of `/metrics` (metrics listener).
    pub fn metrics(&self) -> String {
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let (status, text) = self
            .runtime
            .block_on(Webhook::send(self.metrics_router.clone(), request));
        assert_eq!(status, 200, "{text}");
        text
    }
}

#[test]
fn signed_pod_is_pinned_unsigned_pod_is_denied_and_deployments_are_patched() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &images.key, "Fail", 10, ""),
    );
    let server = Webhook::start(&[&policy_file]);

    // Signed pod: admitted, image pinned to the verified digest.
    let (response, _) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-signed",
            &pod("signed", &images.signed),
        ),
    );
    assert_eq!(response["allowed"], true, "{response}");
    let patch = decoded_patch(&response);
    let pinned = format!("{}@{}", images.signed, images.signed_digest);
    assert!(
        patch
            .iter()
            .any(|op| op["path"] == "/spec/containers/0/image" && op["value"] == pinned.as_str()),
        "{patch:#?}"
    );

    // The same in v1beta1: same uid, answered in v1beta1.
    let (response, _) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1beta1",
            "uid-beta",
            &pod("signed", &images.signed),
        ),
    );
    assert_eq!(response["allowed"], true);

    // Unsigned pod: denied with Kyverno's text.
    let (response, _) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-unsigned",
            &pod("unsigned", &images.unsigned),
        ),
    );
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("resource Pod/default/unsigned was blocked due to the following policies"),
        "{message}"
    );
    assert!(message.contains("check-image:"), "{message}");
    assert!(message.contains("no signatures found"), "{message}");
    assert_eq!(response["status"]["code"], 403);

    // Deployment (autogen): patched at the pod template.
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": images.signed}]}
            }
        }
    });
    let (response, _) = server.review(
        "/mutate",
        &review_of("admission.k8s.io/v1", "uid-deploy", &deployment),
    );
    assert_eq!(response["allowed"], true, "{response}");
    let patch = decoded_patch(&response);
    assert!(
        patch
            .iter()
            .any(|op| op["path"] == "/spec/template/spec/containers/0/image"
                && op["value"] == pinned.as_str()),
        "{patch:#?}"
    );
}

#[test]
fn serve_answers_exactly_as_review() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &images.key, "Fail", 10, ""),
    );
    let server = Webhook::start(&[&policy_file]);
    for (image, phase) in [
        (&images.signed, "mutate"),
        (&images.unsigned, "mutate"),
        (&images.signed, "validate"),
        (&images.unsigned, "validate"),
    ] {
        let review = review_of("admission.k8s.io/v1", "uid-same", &pod("p", image));
        let (status, served, _) =
            server.post(&format!("/{phase}"), &serde_json::to_vec(&review).unwrap());
        assert_eq!(status, 200);
        let review_file = dir.path().join("review.json");
        std::fs::write(&review_file, serde_json::to_vec(&review).unwrap()).unwrap();
        let output = Command::cargo_bin("imagegate")
            .unwrap()
            .args([
                "review",
                "--policy",
                policy_file.to_str().unwrap(),
                "--phase",
                phase,
            ])
            .stdin(std::fs::File::open(&review_file).unwrap())
            .env("HOME", dir.path())
            .output()
            .unwrap();
        let offline: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
        assert_eq!(served, offline, "{image} {phase}");
    }
}

#[test]
fn forged_annotation_does_not_let_an_unsigned_image_through_validate() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy(
            "check-image",
            "127.0.0.1:*",
            &images.key,
            "Fail",
            10,
            "      required: true\n",
        ),
    );
    let server = Webhook::start(&[&policy_file]);
    // The client claims the unsigned image, pinned to its real digest, was verified.
    let digest = images
        .registry
        .pusher()
        .get_manifest("app/unsigned", "v1")
        .map(|(_, bytes)| imagegate_testkit::oci::sha256_digest(&bytes))
        .unwrap();
    let pinned = format!("{}@{digest}", images.unsigned);
    let mut forged = pod("forged", &pinned);
    forged["metadata"]["annotations"] = json!({
        "kyverno.io/verify-images": serde_json::to_string(&json!({ pinned.clone(): "pass" })).unwrap()
    });
    let (response, _) = server.review(
        "/validate",
        &review_of("admission.k8s.io/v1", "uid-forged", &forged),
    );
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("resource Pod/default/forged was blocked"),
        "{message}"
    );

    // The signed image, pinned and annotated, passes the validating path.
    let pinned = format!("{}@{}", images.signed, images.signed_digest);
    let mut genuine = pod("genuine", &pinned);
    genuine["metadata"]["annotations"] = json!({
        "kyverno.io/verify-images": serde_json::to_string(&json!({ pinned.clone(): "pass" })).unwrap()
    });
    let (response, _) = server.review(
        "/validate",
        &review_of("admission.k8s.io/v1", "uid-genuine", &genuine),
    );
    assert_eq!(response["allowed"], true, "{response}");
}

#[test]
fn unreachable_registry_fail_denies_and_ignore_admits_within_the_deadline() {
    let mut images = images();
    let host = images.registry.host();
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    write(
        &policies.join("fail.yaml"),
        &policy(
            "strict",
            &format!("{host}/app/signed*"),
            &images.key,
            "Fail",
            4,
            "",
        ),
    );
    write(
        &policies.join("ignore.yaml"),
        &policy(
            "lenient",
            &format!("{host}/app/unsigned*"),
            &images.key,
            "Ignore",
            4,
            "",
        ),
    );
    // A "registry" that accepts connections and never answers: only the deadline ends it.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming() {
            held.push(stream);
        }
    });
    write(
        &policies.join("hang-fail.yaml"),
        &policy(
            "hang-strict",
            &format!("{silent_host}/strict/*"),
            &images.key,
            "Fail",
            4,
            "",
        ),
    );
    write(
        &policies.join("hang-ignore.yaml"),
        &policy(
            "hang-lenient",
            &format!("{silent_host}/lenient/*"),
            &images.key,
            "Ignore",
            4,
            "",
        ),
    );
    let server = Webhook::start(&[&policies]);
    images.registry.stop();
    let deadline = Duration::from_secs(4);

    // Registry down (connection refused).
    let (response, elapsed) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-down-fail",
            &pod("a", &images.signed),
        ),
    );
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("strict"),
        "{response}"
    );
    assert!(elapsed < deadline, "{elapsed:?}");
    let (response, elapsed) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-down-ignore",
            &pod("b", &images.unsigned),
        ),
    );
    assert_eq!(response["allowed"], true, "{response}");
    assert!(
        !response["warnings"].as_array().unwrap().is_empty(),
        "{response}"
    );
    assert!(elapsed < deadline, "{elapsed:?}");

    // Registry hangs: the deadline (4 s - 1 s) answers.
    let (response, elapsed) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-hang-fail",
            &pod("c", &format!("{silent_host}/strict/app:v1")),
        ),
    );
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("imagegate could not finish verification within 3s"),
        "{message}"
    );
    assert!(message.contains("hang-strict"), "{message}");
    assert!(elapsed < deadline, "{elapsed:?}");
    assert!(elapsed >= Duration::from_millis(2900), "{elapsed:?}");
    let (response, elapsed) = server.review(
        "/validate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-hang-ignore",
            &pod(
                "d",
                &format!("{silent_host}/lenient/app:v1@sha256:{}", "0".repeat(64)),
            ),
        ),
    );
    assert_eq!(response["allowed"], true, "{response}");
    assert!(elapsed < deadline, "{elapsed:?}");
    let (response, elapsed) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-hang-ignore",
            &pod("d", &format!("{silent_host}/lenient/app:v1")),
        ),
    );
    assert_eq!(response["allowed"], true, "{response}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("could not finish verification within 3s"),
        "{warning}"
    );
    assert!(elapsed < deadline, "{elapsed:?}");
    let metrics = server.metrics();
    assert!(
        count(
            &metrics,
            "imagegate_admission_deadline_exceeded_total{failure_policy=\"Fail\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        count(
            &metrics,
            "imagegate_admission_deadline_exceeded_total{failure_policy=\"Ignore\"}"
        ) >= 1.0,
        "{metrics}"
    );
}

/// 40 concurrent identical reviews cost one verification's registry requests (resolve,
/// signature manifest, payload blob): single-flight. Later reviews cost none (digest
/// and verdict caches), and the cache metrics say so.
#[test]
fn concurrent_identical_reviews_share_one_registry_fetch_and_later_ones_hit_the_cache() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &images.key, "Fail", 10, ""),
    );
    let server = Webhook::start(&[&policy_file]);
    let review = review_of("admission.k8s.io/v1", "same", &pod("p", &images.signed));
    let body = serde_json::to_vec(&review).unwrap();
    let before = images.registry.requests().len();
    let answers = server.runtime.block_on(async {
        // Each on its own task, as the server runs each request.
        let posts = (0..40).map(|_| {
            let request = Webhook::post_request("/mutate", body.clone());
            tokio::spawn(Webhook::send(server.router(), request))
        });
        futures::future::join_all(posts).await
    });
    let answers: Vec<(u16, String)> = answers.into_iter().map(Result::unwrap).collect();
    for (status, text) in &answers {
        assert_eq!(*status, 200, "{text}");
        let answer: Value = serde_json::from_str(text).unwrap();
        assert_eq!(answer["response"]["allowed"], json!(true), "{text}");
    }
    let served: Vec<String> = images.registry.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        served.len(),
        3,
        "one resolve, one .sig manifest, one payload: {served:#?}"
    );

    let before = images.registry.requests().len();
    server.review("/mutate", &review);
    assert_eq!(
        images.registry.requests().len(),
        before,
        "served from the caches"
    );
    let metrics = server.metrics();
    assert!(
        count(&metrics, "imagegate_cache_hits_total{cache=\"verdict\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        count(&metrics, "imagegate_cache_hits_total{cache=\"digest\"}") >= 1.0,
        "{metrics}"
    );
    assert!(
        count(&metrics, "imagegate_registry_requests_total") >= 3.0,
        "{metrics}"
    );
}

#[test]
fn probes_metrics_malformed_bodies_and_deletes() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &images.key, "Fail", 10, ""),
    );
    let server = Webhook::start(&[&policy_file]);

    assert_eq!(server.get("/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(
        server.get("/readyz"),
        (200, "ok: 1 policies loaded\n".to_owned())
    );
    server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-m1",
            &pod("signed", &images.signed),
        ),
    );
    server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-m2",
            &pod("unsigned", &images.unsigned),
        ),
    );

    let metrics = server.metrics();
    for expected in [
        r#"kyverno_admission_requests_total{resource_kind="Pod",resource_namespace="default",resource_request_operation="create",request_allowed="true"} 1"#,
        r#"kyverno_admission_requests_total{resource_kind="Pod",resource_namespace="default",resource_request_operation="create",request_allowed="false"} 1"#,
        "# TYPE kyverno_admission_review_duration_seconds histogram",
        "# TYPE kyverno_policy_execution_duration_seconds histogram",
        "imagegate_policies 1",
        "imagegate_registry_requests_total{",
        "# TYPE imagegate_cache_misses counter",
    ] {
        assert!(metrics.contains(expected), "{expected} missing:\n{metrics}");
    }
    let results: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kyverno_policy_results_total{"))
        .collect();
    assert!(
        results
            .iter()
            .any(|l| l.contains(r#"policy_name="check-image""#)
                && l.contains(r#"rule_name="verify""#)
                && l.contains(r#"rule_result="pass""#)
                && l.contains(r#"rule_type="imageVerify""#)),
        "{results:#?}"
    );
    assert!(
        results.iter().any(|l| l.contains(r#"rule_result="fail""#)),
        "{results:#?}"
    );

    // Not an AdmissionReview: 400 with a clear message.
    let (status, body, _) = server.post("/mutate", b"{not json");
    assert_eq!(status, 400);
    assert!(
        body.as_str()
            .unwrap()
            .starts_with("malformed AdmissionReview"),
        "{body}"
    );
    let (status, body, _) = server.post(
        "/validate",
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    );
    assert_eq!(status, 400);
    assert!(body.as_str().unwrap().contains("no request"), "{body}");
    // Larger than 8 MiB: refused.
    let (status, _, _) = server.post("/mutate", &vec![b' '; 9 * 1024 * 1024]);
    assert_eq!(status, 413);
    // DELETE has nothing to verify: admitted.
    let mut delete = review_of(
        "admission.k8s.io/v1",
        "uid-del",
        &pod("unsigned", &images.unsigned),
    );
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["oldObject"] = delete["request"]["object"].take();
    let (response, _) = server.review("/validate", &delete);
    assert_eq!(response["allowed"], true);
}

/// Issue 8 item 10: request fields are not label values. Eight reviews carrying 2 MiB
/// strings in kind, namespace and operation leave `/metrics` about as it was, and many
/// well-formed namespaces stop adding label sets at the cap.
#[test]
fn request_fields_do_not_flood_metric_labels() {
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    let key = CosignKey::generate();
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &key, "Fail", 10, ""),
    );
    let server = Webhook::start(&[&policy_file]);
    // One ordinary review, so the families exist.
    server.review(
        "/mutate",
        &review_of("admission.k8s.io/v1", "uid-0", &pod("p", "nginx:1.27")),
    );
    let baseline = server.metrics().len();
    let huge = |seed: usize, first: char| {
        let mut text = String::from(first);
        text.push_str(&"a".repeat(2 * 1024 * 1024));
        text.push_str(&seed.to_string());
        text
    };
    for i in 0..8 {
        let mut review = review_of(
            "admission.k8s.io/v1",
            &format!("uid-flood-{i}"),
            &pod("p", "nginx:1.27"),
        );
        review["request"]["kind"]["kind"] = json!(huge(i, 'K'));
        review["request"]["namespace"] = json!(huge(i, 'n'));
        review["request"]["operation"] = json!(huge(i, 'C'));
        let (status, body, _) = server.post("/mutate", &serde_json::to_vec(&review).unwrap());
        assert!(status == 200 || status == 400, "{status} {body}");
    }
    let metrics = server.metrics();
    assert!(
        metrics.len() < baseline + 16 * 1024,
        "/metrics grew from {baseline} to {} bytes",
        metrics.len()
    );
    assert!(
        metrics.lines().all(|l| l.len() < 1024),
        "a label longer than a name"
    );

    // Distinct, well-formed namespaces: at most the cap of them become label values.
    for i in 0..600 {
        let mut review = review_of(
            "admission.k8s.io/v1",
            &format!("uid-ns-{i}"),
            &pod("p", "nginx:1.27"),
        );
        review["request"]["namespace"] = json!(format!("team-{i}"));
        server.review("/mutate", &review);
    }
    let metrics = server.metrics();
    let namespaces: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kyverno_admission_requests_total{"))
        .filter_map(|l| l.split("resource_namespace=\"").nth(1)?.split('"').next())
        .collect();
    assert!(namespaces.len() <= 513, "{} namespaces", namespaces.len());
    assert!(namespaces.contains("other"), "{namespaces:?}");
    assert!(namespaces.contains("team-0"), "{namespaces:?}");
}

/// Bodies being received count against a byte budget: while two 8 MiB bodies trickle
/// in, a third large review is refused at once instead of buffered.
#[test]
fn review_bytes_in_flight_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy(
            "check-image",
            "127.0.0.1:*",
            &CosignKey::generate(),
            "Fail",
            10,
            "",
        ),
    );
    let server = Webhook::with_limits(
        &[&policy_file],
        Limits {
            max_body_bytes_in_flight: 16 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(5),
            ..Limits::default()
        },
    );
    let pending = |length: usize| {
        let body = Body::from_stream(futures::stream::pending::<
            Result<axum::body::Bytes, std::io::Error>,
        >());
        Request::post("/mutate")
            .header("content-type", "application/json")
            .header("content-length", length.to_string())
            .body(body)
            .unwrap()
    };
    let eight_mib = 8 * 1024 * 1024;
    let held: Vec<_> = (0..2)
        .map(|_| {
            server
                .runtime
                .spawn(Webhook::send(server.router(), pending(eight_mib)))
        })
        .collect();
    let started = Instant::now();
    while server.state.body_budget.available_permits() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bodies never reserved"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let (status, text) = server
        .runtime
        .block_on(Webhook::send(server.router(), pending(eight_mib)));
    assert_eq!(status, 429, "{text}");
    assert!(started.elapsed() < Duration::from_millis(500));
    // The trickling ones run into the body deadline (408) and give their bytes back.
    for held in held {
        let (status, _) = server.runtime.block_on(held).unwrap();
        assert_eq!(status, 408);
    }
    server.review(
        "/mutate",
        &review_of("admission.k8s.io/v1", "uid-after", &pod("p", "nginx:1.27")),
    );
}
