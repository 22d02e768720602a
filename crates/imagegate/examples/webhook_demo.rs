//! Demo of the admission webhook: a real registry on loopback with one image signed the
//! way cosign does and one unsigned, `imagegate serve` with a policy for that key, and
//! the AdmissionReviews the API server would send, answered over HTTPS.
//! Run with `scripts/demo`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a demo: set-up failures panic with their message

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use base64::Engine as _;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::{Value, json};

fn main() -> ExitCode {
    let imagegate = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|examples| examples.parent())
        .unwrap()
        .join("imagegate");
    let registry = Registry::start();
    let pusher = registry.pusher();
    let key = CosignKey::generate();
    let name = format!("{}/demo/app", registry.host());
    let digest = pusher.push_image("demo/app", "signed");
    pusher.sign("demo/app", &name, &digest, &key, &BTreeMap::new());
    pusher.push_image("demo/app", "unsigned");
    println!(
        "registry {} holds {name}:signed (cosign-signed) and {name}:unsigned",
        registry.host()
    );

    let dir = tempfile::tempdir().unwrap();
    let pem: String = key
        .public_pem()
        .lines()
        .map(|l| format!("              {l}\n"))
        .collect();
    let policy = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: check-image}}\nspec:\n  webhookTimeoutSeconds: 5\n  rules:\n  - name: verify\n    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n    verifyImages:\n    - imageReferences: [\"{}/*\"]\n      failureAction: Enforce\n      mutateDigest: true\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n{pem}            rekor: {{ignoreTlog: true}}\n",
        registry.host()
    );
    let policy_path = dir.path().join("check-image.yaml");
    std::fs::write(&policy_path, &policy).unwrap();
    println!("\npolicy {}:\n{policy}", policy_path.display());

    println!(
        "$ imagegate serve --policies {} --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --log-format text",
        policy_path.display()
    );
    let mut server = Command::new(&imagegate)
        .current_dir(dir.path())
        .args(["serve", "--policies"])
        .arg(&policy_path)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("run imagegate (build it with `cargo build -p imagegate`)");
    let stderr = server.stderr.take().unwrap();
    let mut server = KillOnDrop(server);
    let mut lines = BufReader::new(stderr).lines();
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        eprintln!("  {line}");
        if let Some(at) = line.find("listening on https://") {
            let rest = &line[at + "listening on ".len()..];
            url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
    }
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| eprintln!("  {l}")));
    let url = url.expect("imagegate did not start");
    let ca = std::fs::read(dir.path().join("imagegate-ca.pem")).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = {
        let _guard = runtime.enter();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap()
    };
    let mut as_expected = true;
    for (tag, expect_allowed) in [("signed", true), ("unsigned", false)] {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": format!("demo-{tag}"),
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "default",
                "name": tag,
                "object": {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": tag, "namespace": "default"},
                    "spec": {"containers": [{"name": "app", "image": format!("{name}:{tag}")}]}
                }
            }
        });
        println!("\nPOST {url}/mutate  (Pod {tag} running {name}:{tag})");
        let answer: Value = runtime.block_on(async {
            let response = client
                .post(format!("{url}/mutate"))
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&review).unwrap())
                .send()
                .await
                .unwrap();
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
        });
        let response = &answer["response"];
        println!("allowed: {}", response["allowed"]);
        if let Some(patch) = response["patch"].as_str() {
            let patch: Value = serde_json::from_slice(
                &base64::engine::general_purpose::STANDARD
                    .decode(patch)
                    .unwrap(),
            )
            .unwrap();
            println!("patch: {}", serde_json::to_string_pretty(&patch).unwrap());
        }
        if let Some(message) = response["status"]["message"].as_str() {
            println!("message: {message}");
        }
        as_expected &= response["allowed"] == expect_allowed;
    }
    // Graceful stop, as Kubernetes does it (SIGTERM).
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let _ = server.0.wait();
    if as_expected {
        println!(
            "\nas expected: the signed image was admitted and pinned, the unsigned one denied"
        );
        ExitCode::SUCCESS
    } else {
        println!("\nUNEXPECTED answers");
        ExitCode::FAILURE
    }
}

/// The server process, killed if the demo ends early.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
