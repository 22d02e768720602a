//! `imagegate serve` end to end: the real binary over real HTTPS (trusting the CA bundle
//! it writes), against a real `docker-registry` with images signed like cosign does.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt as _;
use imagegate_testkit::fixtures::decoded_patch;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::{Value, json};

/// A running `imagegate serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    pub(crate) webhook: String,
    pub(crate) metrics: String,
    ca_pem: Vec<u8>,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    _home: tempfile::TempDir,
}

impl Server {
    /// Starts `imagegate serve ARGS --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0` in
    /// `cwd` and waits until both listeners are up.
    pub(crate) fn start(cwd: &Path, args: &[&str]) -> Server {
        let home = tempfile::tempdir().unwrap();
        let mut command = Command::cargo_bin("imagegate").unwrap();
        command
            .current_dir(cwd)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--reload-interval", "0.2"])
            .args(args)
            .env("HOME", home.path())
            .env_remove("DOCKER_CONFIG")
            .env_remove("POD_NAMESPACE")
            // Cluster mode only when a test asks for it (`--kubeconfig`).
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("IMAGEGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut server = Server {
            child,
            logs,
            webhook: String::new(),
            metrics: String::new(),
            ca_pem: Vec::new(),
            runtime,
            client: reqwest::Client::new(),
            _home: home,
        };
        let webhook = server.wait_for_message("listening on https://");
        let metrics = server.wait_for_message("metrics and health on http://");
        server.webhook = webhook["message"].as_str().unwrap()["listening on ".len()..].to_owned();
        server.metrics =
            metrics["message"].as_str().unwrap()["metrics and health on ".len()..].to_owned();
        if let Some(ca) = server.messages().iter().find_map(|m| {
            m.get("ca_bundle")
                .and_then(Value::as_str)
                .map(PathBuf::from)
        }) {
            server.ca_pem = std::fs::read(ca).unwrap();
        }
        server.client = server.client_trusting(&server.ca_pem.clone());
        server
    }

    fn client_trusting(&self, ca_pem: &[u8]) -> reqwest::Client {
        let _guard = self.runtime.enter();
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if !ca_pem.is_empty() {
            builder = builder.tls_certs_only([reqwest::Certificate::from_pem(ca_pem).unwrap()]);
        }
        builder.build().unwrap()
    }

    /// The JSON log lines so far.
    pub(crate) fn messages(&self) -> Vec<Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub(crate) fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Waits (up to 30 s) for a log line whose message starts with `prefix`.
    pub(crate) fn wait_for_message(&self, prefix: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self
                .messages()
                .into_iter()
                .find(|m| m["message"].as_str().is_some_and(|t| t.starts_with(prefix)))
            {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no log line {prefix:?} within 30 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// POSTs `body` to the webhook; returns the status and the body (JSON when it is).
    pub(crate) fn post(&self, path: &str, body: &[u8]) -> (u16, Value, Duration) {
        let started = Instant::now();
        let (status, text) = self.runtime.block_on(post(
            &self.client,
            &format!("{}{path}", self.webhook),
            body.to_vec(),
        ));
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value, started.elapsed())
    }

    /// POSTs an AdmissionReview and returns its `response` (checking status 200 and uid).
    pub(crate) fn review(&self, path: &str, review: &Value) -> (Value, Duration) {
        let (status, body, elapsed) = self.post(path, &serde_json::to_vec(review).unwrap());
        assert_eq!(status, 200, "{body}\n{}", self.log_text());
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(body["apiVersion"], review["apiVersion"]);
        assert_eq!(body["response"]["uid"], review["request"]["uid"], "{body}");
        (body["response"].clone(), elapsed)
    }

    pub(crate) fn get(&self, base: &str, path: &str) -> (u16, String) {
        let url = format!("{base}{path}");
        self.runtime.block_on(async {
            let response = self.client.get(&url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        })
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 10 s after SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, String) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// A ClusterPolicy verifying the images matching `pattern` with `key`.
pub(crate) fn policy(
    name: &str,
    pattern: &str,
    key: &CosignKey,
    failure_policy: &str,
    timeout: u32,
    extra: &str,
) -> String {
    let pem: String = key
        .public_pem()
        .lines()
        .map(|l| format!("                  {l}\n"))
        .collect();
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  webhookTimeoutSeconds: {timeout}
  failurePolicy: {failure_policy}
  rules:
  - name: verify
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["{pattern}"]
      failureAction: Enforce
      mutateDigest: true
{extra}      attestors:
      - entries:
        - keys:
            publicKeys: |-
{pem}            rekor:
              ignoreTlog: true
"#
    )
}

/// An AdmissionReview creating `object` (a Pod or a Deployment) in `default`.
pub(crate) fn review_of(api_version: &str, uid: &str, object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap();
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), "v1".to_owned()),
    };
    json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": format!("{}s", kind.to_lowercase())},
            "operation": "CREATE",
            "namespace": "default",
            "name": object["metadata"]["name"],
            "userInfo": {"username": "tester"},
            "object": object,
            "dryRun": false,
        }
    })
}

pub(crate) fn pod(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": image}]}
    })
}

/// A registry holding `app/signed:v1` (signed with the returned key) and
/// `app/unsigned:v1`.
pub(crate) struct Images {
    pub registry: Registry,
    pub key: CosignKey,
    pub signed: String,
    pub signed_digest: String,
    pub unsigned: String,
}

pub(crate) fn images() -> Images {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let host = registry.host();
    let signed_digest = pusher.push_image("app/signed", "v1");
    pusher.sign(
        "app/signed",
        &format!("{host}/app/signed"),
        &signed_digest,
        &key,
        &BTreeMap::new(),
    );
    pusher.push_image("app/unsigned", "v1");
    Images {
        signed: format!("{host}/app/signed:v1"),
        unsigned: format!("{host}/app/unsigned:v1"),
        signed_digest,
        key,
        registry,
    }
}

pub(crate) fn write(path: &Path, text: &str) {
    // Write then rename, as editors and Kubernetes volume updates do.
    let temp = path.with_extension("tmp~");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

pub(crate) fn count(text: &str, metric_prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn policy_changes_while_requests_flow_and_invalid_policies_keep_the_previous_set() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let policy_file = policies.join("check.yaml");
    let version = |timeout: u32| {
        policy(
            "check-image",
            "127.0.0.1:*",
            &images.key,
            "Fail",
            timeout,
            "",
        )
    };
    write(&policy_file, &version(10));
    let server = Server::start(dir.path(), &["--policies", policies.to_str().unwrap()]);

    // Requests flow on two connections while the policy file is rewritten.
    let signed = serde_json::to_vec(&review_of(
        "admission.k8s.io/v1",
        "uid-flow",
        &pod("signed", &images.signed),
    ))
    .unwrap();
    let url = format!("{}/mutate", server.webhook);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flows: Vec<_> = (0..2)
        .map(|_| {
            let client = server.client.clone();
            let url = url.clone();
            let body = signed.clone();
            let stop = Arc::clone(&stop);
            server.runtime.spawn(async move {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (status, text) = post(&client, &url, body.clone()).await;
                    assert_eq!(status, 200, "{text}");
                    let answer: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(answer["response"]["allowed"], true, "{text}");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    for round in 0..8 {
        if round % 2 == 0 {
            write(&policy_file, &version(5 + round));
        } else {
            // In place, not atomically: a reader may see a half-written file.
            std::fs::write(&policy_file, version(5 + round)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let answered: usize = flows
        .into_iter()
        .map(|f| server.runtime.block_on(f).unwrap())
        .sum();
    assert!(answered > 10, "only {answered} requests answered");
    server.wait_for_message("policies reloaded");

    // An invalid policy is logged; the previous set stays in force.
    std::fs::write(&policy_file, "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: broken}\nspec:\n  rules: [{name: x, verifyImages: [{imageReferences: []}]}]\n").unwrap();
    let error =
        server.wait_for_message("changed policies do not load; keeping the previous policies");
    assert_eq!(error["level"], "ERROR");
    let (response, _) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-after",
            &pod("unsigned", &images.unsigned),
        ),
    );
    assert_eq!(response["allowed"], false, "{response}");
    let (response, _) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-after2",
            &pod("signed", &images.signed),
        ),
    );
    assert_eq!(response["allowed"], true, "{response}");
    let (_, metrics) = server.get(&server.metrics, "/metrics");
    assert!(
        count(
            &metrics,
            "imagegate_policy_reloads_total{result=\"failure\"}"
        ) >= 1.0,
        "{metrics}"
    );

    // A valid change takes effect: another key no longer verifies the signed image.
    let other = CosignKey::generate();
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &other, "Fail", 10, ""),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (response, _) = server.review(
            "/mutate",
            &review_of(
                "admission.k8s.io/v1",
                "uid-new",
                &pod("signed", &images.signed),
            ),
        );
        if response["allowed"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new policy never took effect:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Over HTTPS from the real binary: probes on both listeners, a review logged with its
/// uid, SIGTERM. (Answers, metrics and malformed bodies: `webhook`.)
#[test]
fn probes_logs_and_sigterm() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &images.key, "Fail", 10, ""),
    );
    let mut server = Server::start(dir.path(), &["--policies", policy_file.to_str().unwrap()]);

    for base in [&server.webhook, &server.metrics] {
        assert_eq!(server.get(base, "/healthz"), (200, "ok\n".to_owned()));
        let (status, text) = server.get(base, "/readyz");
        assert_eq!((status, text.as_str()), (200, "ok: 1 policies loaded\n"));
    }
    let (response, _) = server.review(
        "/mutate",
        &review_of(
            "admission.k8s.io/v1",
            "uid-m1",
            &pod("signed", &images.signed),
        ),
    );
    assert_eq!(response["allowed"], true, "{response}");
    // The request uid is in the log lines of the request.
    server.wait_for_message("admission review answered");
    assert!(
        server
            .messages()
            .iter()
            .any(|m| m["span"]["uid"] == "uid-m1" && m["message"] == "admission review answered"),
        "{}",
        server.log_text()
    );
    let (status, metrics) = server.get(&server.metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("kyverno_admission_requests_total{"),
        "{metrics}"
    );

    // SIGTERM: graceful stop, exit 0, within seconds.
    let started = Instant::now();
    let status = server.stop();
    assert!(status.success(), "{status:?}\n{}", server.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    server.wait_for_message("stopped");
}

#[test]
fn no_flags_uses_bundled_or_local_policies_and_a_self_signed_certificate() {
    // A fresh directory: bundled example policies, CA bundle written to ./imagegate-ca.pem.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(dir.path().join("imagegate-ca.pem").is_file());
    let (status, text) = server.get(&server.webhook, "/readyz");
    assert_eq!((status, text.as_str()), (200, "ok: 3 policies loaded\n"));
    let loaded = server.wait_for_message("policies loaded");
    assert_eq!(loaded["source"], "the bundled example policies");
    // A pod outside the example registry is admitted without a patch.
    let (response, _) = server.review(
        "/mutate",
        &review_of("admission.k8s.io/v1", "uid-x", &pod("x", "nginx:1.27")),
    );
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    // The certificate names localhost too.
    let localhost = server.webhook.replace("127.0.0.1", "localhost");
    assert_eq!(server.get(&localhost, "/healthz").0, 200);
    drop(server);

    // ./policies, when it exists, is the default.
    let key = CosignKey::generate();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    write(
        &dir.path().join("policies/one.yaml"),
        &policy("local", "127.0.0.1:*", &key, "Fail", 10, ""),
    );
    let server = Server::start(dir.path(), &[]);
    let (_, text) = server.get(&server.webhook, "/readyz");
    assert_eq!(text, "ok: 1 policies loaded\n");
}

#[test]
fn tls_certificate_files_are_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, chain1, key1) = certificate("first CA");
    let (ca2, chain2, key2) = certificate("second CA");
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, &chain1).unwrap();
    std::fs::write(&key, &key1).unwrap();
    let mut server = Server::start(
        dir.path(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(!server.log_text().contains("self-signed"));
    let first = server.client_trusting(ca1.as_bytes());
    let second = server.client_trusting(ca2.as_bytes());
    let healthz = |client: &reqwest::Client| {
        let url = format!("{}/healthz", server.webhook);
        server
            .runtime
            .block_on(async { client.get(url).send().await.is_ok() })
    };
    assert!(healthz(&first));
    assert!(!healthz(&second));

    // A broken pair is refused and the current certificate stays.
    std::fs::write(&key, "not a key").unwrap();
    server.wait_for_message("changed TLS certificate does not load");
    assert!(healthz(&server.client_trusting(ca1.as_bytes())));

    write(&cert, &chain2);
    write(&key, &key2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !healthz(&server.client_trusting(ca2.as_bytes())) {
        assert!(
            Instant::now() < deadline,
            "certificate not reloaded:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.wait_for_message("TLS certificate reloaded");
    assert!(server.stop().success());
}

/// A CA (PEM) and a certificate for localhost/127.0.0.1 it signed: (ca, chain, key).
fn certificate(ca_name: &str) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    (
        ca.pem(),
        format!("{}{}", leaf.pem(), ca.pem()),
        leaf_key.serialize_pem(),
    )
}

#[test]
fn sigterm_stops_the_server_even_when_its_stderr_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    let key = CosignKey::generate();
    write(
        &policy_file,
        &policy("one", "127.0.0.1:*", &key, "Fail", 10, ""),
    );
    let mut child = Command::cargo_bin("imagegate")
        .unwrap()
        .current_dir(dir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--reload-interval",
            "0.1",
            "--policies",
            policy_file.to_str().unwrap(),
        ])
        .env("HOME", dir.path())
        .env("IMAGEGATE_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    assert!(
        lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("listening on https://"))
    );
    drop(lines);
    // A log line written to the closed pipe (a reload), then SIGTERM.
    write(
        &policy_file,
        &policy("two", "127.0.0.1:*", &key, "Fail", 10, ""),
    );
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 5 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exceptions_files_skip_covered_rules_and_reload_with_the_policies() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    write(
        &policy_file,
        &policy("check-image", "127.0.0.1:*", &images.key, "Fail", 10, ""),
    );
    let exceptions = dir.path().join("exceptions");
    std::fs::create_dir(&exceptions).unwrap();
    let exception = |names: &str| {
        format!(
            "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {{name: legacy, namespace: kyverno}}\nspec:\n  exceptions:\n  - policyName: check-image\n    ruleNames: [verify]\n  match:\n    any:\n    - resources: {{kinds: [Pod], names: [{names}]}}\n"
        )
    };
    write(&exceptions.join("legacy.yaml"), &exception("legacy-*"));
    let server = Server::start(
        dir.path(),
        &[
            "--policies",
            policy_file.to_str().unwrap(),
            "--exceptions",
            exceptions.to_str().unwrap(),
        ],
    );
    let review = |name: &str, uid: &str| {
        server
            .review(
                "/mutate",
                &review_of("admission.k8s.io/v1", uid, &pod(name, &images.unsigned)),
            )
            .0
    };
    let excepted = review("legacy-app", "uid-excepted");
    assert_eq!(excepted["allowed"], true, "{excepted}");
    assert!(decoded_patch(&excepted).is_empty(), "{excepted}");
    let denied = review("new-app", "uid-denied");
    assert_eq!(denied["allowed"], false, "{denied}");

    // The exception file changes: now new-app is excepted and legacy-app is not.
    write(&exceptions.join("legacy.yaml"), &exception("new-*"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while review("new-app", "uid-poll")["allowed"] != true {
        assert!(Instant::now() < deadline, "{}", server.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(review("legacy-app", "uid-after")["allowed"], false);

    // A broken exception keeps the previous set, as for policies.
    write(
        &exceptions.join("legacy.yaml"),
        &exception("new-*").replace("policyName: check-image", "policyName: ''"),
    );
    let error =
        server.wait_for_message("changed policies do not load; keeping the previous policies");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e
                .contains("spec.exceptions[0].policyName: An exception requires a policy name")),
        "{error}"
    );
    assert_eq!(review("new-app", "uid-kept")["allowed"], true);
}

#[test]
fn every_dashboard_query_names_an_exported_metric() {
    // The families the webhook registers, read from the registry itself: a scrape of a
    // fresh server would miss them, because prometheus-client prints no family before its
    // first sample, and it offers no iterator over descriptors, so their names are read
    // from the registry's Debug form (`Descriptor { name: "…", … }`).
    let webhook = crate::webhook::Webhook::start(&[]);
    let registry = format!("{:?}", webhook.state.registry);
    let families = registered_families(&registry);
    assert!(
        families.contains("kyverno_admission_requests"),
        "{families:?}"
    );

    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/helm/imagegate/dashboards/imagegate.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut queries = Vec::new();
    collect_exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 8, "{queries:?}");
    for query in &queries {
        let names = metric_names(query);
        assert!(
            !names.is_empty(),
            "query names no imagegate metric: {query}"
        );
        for name in names {
            assert!(
                names_a_family(&name, &families),
                "{query}: {name} is not exported (families: {families:?})"
            );
        }
    }
}

/// The name of every family in a registry's Debug form (each descriptor's `name: "…"`).
fn registered_families(debug: &str) -> std::collections::BTreeSet<String> {
    debug
        .split("Descriptor {")
        .skip(1)
        .filter_map(|part| part.split_once("name: \"")?.1.split_once('"'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Whether a series name in a query belongs to one of `families`: a counter's series end
/// in `_total`, a histogram's in `_bucket`, `_sum` and `_count`.
fn names_a_family(series: &str, families: &std::collections::BTreeSet<String>) -> bool {
    families.contains(series)
        || ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| {
                series
                    .strip_suffix(suffix)
                    .is_some_and(|f| families.contains(f))
            })
}

/// Every `expr` of a Grafana dashboard (panel targets and templating queries).
fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    ("query", Value::Object(q)) => {
                        if let Some(Value::String(expr)) = q.get("query") {
                            out.push(expr.clone());
                        }
                    }
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers starting `kyverno_` or
/// `imagegate_` (label names and functions never do).
fn metric_names(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &query[i..];
        if starts_word && (rest.starts_with("kyverno_") || rest.starts_with("imagegate_")) {
            let len = rest
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            names.push(rest[..len].to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    names
}
