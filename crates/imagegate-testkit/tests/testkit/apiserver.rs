//! The API server fake, checked with the real `kubectl` and with raw HTTP for what kubectl
//! does not exercise (pagination, bookmarks, 410 Gone, status subresource, apply).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use imagegate_testkit::apiserver::{ApiServer, Kubectl, kubectl};
use serde_json::{Value, json};

const POLICY: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-images
  labels:
    stage: one
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["registry.example/*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: k8s://default/keys
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn kubectl_apply_get_watch_label_secret_patch_delete_and_errors() {
    let Some(bin) = kubectl() else {
        eprintln!("skipped: kubectl not installed");
        return;
    };
    let server = ApiServer::start();
    let k = Kubectl {
        bin,
        kubeconfig: server.kubeconfig(Some("default")),
        home: tempfile::tempdir().unwrap(),
    };
    let policy = write(k.home.path(), "policy.yaml", POLICY);
    let policy = policy.to_str().unwrap();

    // apply: created, then configured.
    assert_eq!(
        k.ok(&["apply", "-f", policy]).trim(),
        "clusterpolicy.kyverno.io/check-images created"
    );
    let stored = server
        .get("clusterpolicies.kyverno.io", None, "check-images")
        .unwrap();
    assert!(
        stored["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string(),
        "{stored}"
    );
    let changed = POLICY.replace("Enforce", "Audit");
    let policy2 = write(k.home.path(), "policy2.yaml", &changed);
    assert_eq!(
        k.ok(&["apply", "-f", policy2.to_str().unwrap()]).trim(),
        "clusterpolicy.kyverno.io/check-images configured"
    );
    let stored = server
        .get("clusterpolicies.kyverno.io", None, "check-images")
        .unwrap();
    assert_eq!(stored["spec"]["validationFailureAction"], "Audit");
    assert_eq!(stored["metadata"]["generation"], 2);

    // get -o json, by short name.
    let got: Value =
        serde_json::from_str(&k.ok(&["get", "cpol", "check-images", "-o", "json"])).unwrap();
    assert_eq!(
        got["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );
    assert_eq!(got["kind"], "ClusterPolicy");

    // get -w sees an update made while it watches.
    let mut child = k
        .command(&[
            "get",
            "clusterpolicy",
            "check-images",
            "-w",
            "-o",
            "jsonpath={.metadata.labels.stage}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "one");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.open_watches() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    server
        .merge_patch(
            "clusterpolicies.kyverno.io",
            None,
            "check-images",
            json!({"metadata": {"labels": {"stage": "two"}}}),
        )
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "two");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.watch && r.path == "/apis/kyverno.io/v1/clusterpolicies")
    );

    // label ns.
    assert_eq!(
        k.ok(&["label", "ns", "default", "team=a"]).trim(),
        "namespace/default labeled"
    );
    let ns = server.get("namespaces", None, "default").unwrap();
    assert_eq!(ns["metadata"]["labels"]["team"], "a");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "default"
    );

    // create secret generic (in the context's namespace).
    assert_eq!(
        k.ok(&[
            "create",
            "secret",
            "generic",
            "keys",
            "--from-literal=cosign.pub=PUBLIC"
        ])
        .trim(),
        "secret/keys created"
    );
    let secret = server.get("secrets", Some("default"), "keys").unwrap();
    assert_eq!(secret["data"]["cosign.pub"], "UFVCTElD");
    assert_eq!(secret["type"], "Opaque");

    // patch, merge and JSON.
    assert_eq!(
        k.ok(&[
            "patch",
            "cpol",
            "check-images",
            "--type=merge",
            "-p",
            r#"{"spec":{"background":false}}"#
        ])
        .trim(),
        "clusterpolicy.kyverno.io/check-images patched"
    );
    k.ok(&[
        "patch",
        "cpol",
        "check-images",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/metadata/labels/stage","value":"three"}]"#,
    ]);
    let stored = server
        .get("clusterpolicies.kyverno.io", None, "check-images")
        .unwrap();
    assert_eq!(stored["spec"]["background"], false);
    assert_eq!(stored["metadata"]["labels"]["stage"], "three");

    // A failing JSON patch is a server error kubectl shows.
    let out = k.run(&[
        "patch",
        "cpol",
        "check-images",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/background","value":true}]"#,
    ]);
    assert!(!out.status.success());
    // kubectl shows a 422 without field causes as "The request is invalid: MESSAGE".
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("The request is invalid: ClusterPolicy \"check-images\" is invalid"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A stale resourceVersion on replace: 409 Conflict as kubectl prints it.
    let mut stale = stored.clone();
    stale["metadata"]["resourceVersion"] = json!("2");
    let stale_file = write(k.home.path(), "stale.json", &stale.to_string());
    let out = k.run(&["replace", "-f", stale_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "Error from server (Conflict): error when replacing \"" 
        ) && String::from_utf8_lossy(&out.stderr).contains("Operation cannot be fulfilled on clusterpolicies.kyverno.io \"check-images\": the object has been modified"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // delete, then NotFound as kubectl prints it.
    assert_eq!(
        k.ok(&["delete", "cpol", "check-images"]).trim(),
        "clusterpolicy.kyverno.io \"check-images\" deleted"
    );
    assert!(
        server
            .get("clusterpolicies.kyverno.io", None, "check-images")
            .is_err()
    );
    let out = k.run(&["get", "cpol", "check-images"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error from server (NotFound): clusterpolicies.kyverno.io \"check-images\" not found"
    );

    // Without the token: Unauthorized.
    let anon = write(
        k.home.path(),
        "anon",
        &std::fs::read_to_string(&k.kubeconfig)
            .unwrap()
            .replace(server.token(), "wrong"),
    );
    let anon = Kubectl {
        bin: k.bin.clone(),
        kubeconfig: anon,
        home: tempfile::tempdir().unwrap(),
    };
    let out = anon.run(&["get", "ns"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "error: You must be logged in to the server (the server has asked for the client to provide credentials)"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A raw HTTPS client for the fake, trusting its CA and sending its token.
struct Raw {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    fn new(server: &ApiServer) -> Raw {
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(
                reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap(),
            )
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Raw {
            client,
            base: server.url(),
            token: server.token().to_owned(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", content_type);
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, "application/json", None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("POST", path, "application/json", Some(body.to_string()))
            .await
    }

    /// Opens a watch and returns a reader of its event lines.
    async fn watch(&self, path: &str) -> WatchReader {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        WatchReader {
            resp,
            buf: Vec::new(),
        }
    }
}

struct WatchReader {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchReader {
    /// The next event, or `None` when the stream ended (cleanly or not).
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            match tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("watch event within 10 s")
            {
                Ok(Some(c)) => self.buf.extend_from_slice(&c),
                _ => return None,
            }
        }
    }

    /// The next event that is not a bookmark.
    async fn next_change(&mut self) -> Option<Value> {
        loop {
            let e = self.next().await?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }
}

#[tokio::test]
async fn discovery_lists_builtin_kyverno_and_runtime_registered_kinds() {
    let server = ApiServer::start();
    let raw = Raw::new(&server);
    let (code, apis) = raw.get("/apis").await;
    assert_eq!(code, 200);
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for g in [
        "kyverno.io",
        "wgpolicyk8s.io",
        "policies.kyverno.io",
        "coordination.k8s.io",
    ] {
        assert!(groups.contains(&g), "{groups:?}");
    }
    let (_, core) = raw.get("/api/v1").await;
    let names: Vec<&str> = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    for r in [
        "namespaces",
        "secrets",
        "configmaps",
        "serviceaccounts",
        "pods",
        "pods/status",
        "events",
    ] {
        assert!(names.contains(&r), "{names:?}");
    }
    let (_, kyverno) = raw.get("/apis/kyverno.io/v1").await;
    let cpol = kyverno["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "clusterpolicies")
        .unwrap();
    assert_eq!(cpol["namespaced"], false);
    assert_eq!(cpol["shortNames"], json!(["cpol"]));
    assert_eq!(raw.get("/apis/example.com/v1").await.0, 404);

    // A CRD created at runtime is served at once.
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets"},
                 "versions": [{"name": "v1", "served": true, "storage": true}]},
    });
    assert_eq!(
        raw.post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd
        )
        .await
        .0,
        201
    );
    let (code, list) = raw.get("/apis/example.com/v1").await;
    assert_eq!(code, 200, "{list}");
    let (code, w) = raw
        .post(
            "/apis/example.com/v1/namespaces/default/widgets",
            json!({"metadata": {"name": "w1"}}),
        )
        .await;
    assert_eq!((code, w["kind"].as_str()), (201, Some("Widget")));
    // Unauthenticated requests are refused with a Status.
    let resp = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap()
        .get(format!("{}/api/v1/namespaces", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn list_paginates_and_filters_by_label_and_field() {
    let server = ApiServer::start();
    let raw = Raw::new(&server);
    for i in 0..5 {
        let labels = if i % 2 == 0 {
            json!({"parity": "even"})
        } else {
            json!({"parity": "odd"})
        };
        server
            .create(
                "configmaps",
                Some("default"),
                json!({"metadata": {"name": format!("cm{i}"), "labels": labels}}),
            )
            .unwrap();
    }
    let mut names = Vec::new();
    let mut path = "/api/v1/namespaces/default/configmaps?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (code, list) = raw.get(&path).await;
        assert_eq!(code, 200, "{list}");
        pages += 1;
        names.extend(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned()),
        );
        match list["metadata"]["continue"].as_str() {
            Some(c) => path = format!("/api/v1/namespaces/default/configmaps?limit=2&continue={c}"),
            None => break,
        }
    }
    assert_eq!(
        (pages, names),
        (
            3,
            vec!["cm0", "cm1", "cm2", "cm3", "cm4"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        )
    );
    let (_, even) = raw
        .get("/api/v1/configmaps?labelSelector=parity%3Deven")
        .await;
    assert_eq!(even["items"].as_array().unwrap().len(), 3);
    let (_, notin) = raw
        .get("/api/v1/namespaces/default/configmaps?labelSelector=parity%20notin%20(even)")
        .await;
    assert_eq!(notin["items"].as_array().unwrap().len(), 2);
    let (_, one) = raw
        .get("/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Dcm3")
        .await;
    assert_eq!(one["items"][0]["metadata"]["name"], "cm3");
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let (code, bad) = raw.get("/api/v1/configmaps?fieldSelector=data.x%3D1").await;
    assert_eq!((code, bad["reason"].as_str()), (400, Some("BadRequest")));

    // A continue token from before a compaction is 410 Expired.
    let (_, first) = raw
        .get("/api/v1/namespaces/default/configmaps?limit=2")
        .await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_owned();
    server
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "later"}}),
        )
        .unwrap();
    server.expire_history();
    let (code, gone) = raw
        .get(&format!(
            "/api/v1/namespaces/default/configmaps?limit=2&continue={token}"
        ))
        .await;
    assert_eq!(
        (code, gone["reason"].as_str()),
        (410, Some("Expired")),
        "{gone}"
    );
}

#[tokio::test]
async fn watch_replays_streams_bookmarks_and_answers_410_after_compaction() {
    let server = ApiServer::start();
    server.set_bookmark_interval(Duration::from_millis(100));
    let raw = Raw::new(&server);
    let (_, list) = raw.get("/api/v1/namespaces/default/secrets").await;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    // Changes of another kind and another namespace are not replayed.
    server
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "before"}}),
        )
        .unwrap();
    server
        .create(
            "secrets",
            Some("kube-system"),
            json!({"metadata": {"name": "elsewhere"}}),
        )
        .unwrap();
    server
        .create(
            "secrets",
            Some("default"),
            json!({"metadata": {"name": "s1"}, "stringData": {"k": "v"}}),
        )
        .unwrap();

    // From the list's version: the create made since is replayed, then live changes.
    let mut w = raw
        .watch(&format!("/api/v1/namespaces/default/secrets?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"))
        .await;
    let added = w.next_change().await.unwrap();
    assert_eq!(
        (
            added["type"].as_str(),
            added["object"]["data"]["k"].as_str()
        ),
        (Some("ADDED"), Some("dg=="))
    );
    server
        .merge_patch(
            "secrets",
            Some("default"),
            "s1",
            json!({"metadata": {"labels": {"a": "b"}}}),
        )
        .unwrap();
    let modified = w.next_change().await.unwrap();
    assert_eq!(modified["type"], "MODIFIED");
    // Changes of other kinds are not sent, but bookmarks carry the version past them.
    server
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "c"}}),
        )
        .unwrap();
    let latest = server.resource_version().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = w.next().await.unwrap();
        assert_eq!(e["type"], "BOOKMARK", "{e}");
        if e["object"]["metadata"]["resourceVersion"] == latest.as_str() {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    server.delete("secrets", Some("default"), "s1").unwrap();
    assert_eq!(w.next_change().await.unwrap()["type"], "DELETED");

    // Dropping streams ends them; re-watching from a version older than the compaction is
    // 410 Gone inside the stream (as the real server answers).
    server.expire_history();
    assert!(w.next_change().await.is_none());
    let mut w = raw
        .watch(&format!(
            "/api/v1/namespaces/default/secrets?watch=true&resourceVersion={rv}"
        ))
        .await;
    let e = w.next().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["code"].as_u64()),
        (Some("ERROR"), Some(410)),
        "{e}"
    );
    assert!(w.next().await.is_none());

    // Without a version: synthetic ADDED for what exists.
    let mut w = raw.watch("/api/v1/namespaces?watch=1").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let e = w.next().await.unwrap();
        assert_eq!(e["type"], "ADDED");
        seen.push(e["object"]["metadata"]["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen, ["default", "kube-public", "kube-system"]);
    let watches = server.requests().iter().filter(|r| r.watch).count();
    assert_eq!(watches, 3);
}

#[tokio::test]
async fn writes_status_subresource_apply_and_errors() {
    let server = ApiServer::start();
    let raw = Raw::new(&server);
    let base = "/apis/kyverno.io/v1/clusterpolicies";
    let (code, created) = raw.post(base, json!({"apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"}, "spec": {"rules": []}, "status": {"ready": true}})).await;
    assert_eq!(code, 201);
    assert!(
        created.get("status").is_none(),
        "status is ignored on create: {created}"
    );
    assert_eq!(
        raw.post(base, json!({"metadata": {"name": "p"}})).await.1["reason"],
        "AlreadyExists"
    );
    let (code, bad) = raw
        .post(base, json!({"metadata": {"name": "Bad_Name"}}))
        .await;
    assert_eq!((code, bad["reason"].as_str()), (422, Some("Invalid")));
    let (code, wrong) = raw
        .post(
            base,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "q"}}),
        )
        .await;
    assert_eq!(code, 400, "{wrong}");
    let (code, _) = raw
        .post(
            "/api/v1/namespaces/nowhere/secrets",
            json!({"metadata": {"name": "s"}}),
        )
        .await;
    assert_eq!(code, 404);

    // Status: written only through /status; the main resource ignores it.
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Invalid", "message": "bad"}]}});
    let (code, s) = raw
        .send(
            "PATCH",
            &format!("{base}/p/status"),
            "application/merge-patch+json",
            Some(status.to_string()),
        )
        .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["status"]["conditions"][0]["status"], "False");
    assert_eq!(s["metadata"]["generation"], 1);
    let mut put = s.clone();
    put["status"] = json!({});
    put["spec"]["background"] = json!(false);
    let (code, p) = raw
        .send(
            "PUT",
            &format!("{base}/p"),
            "application/json",
            Some(put.to_string()),
        )
        .await;
    assert_eq!(code, 200, "{p}");
    assert_eq!(
        (
            p["status"]["conditions"][0]["status"].as_str(),
            p["metadata"]["generation"].as_u64()
        ),
        (Some("False"), Some(2))
    );
    // The same PUT again carries a stale resourceVersion.
    let (code, conflict) = raw
        .send(
            "PUT",
            &format!("{base}/p"),
            "application/json",
            Some(put.to_string()),
        )
        .await;
    assert_eq!((code, conflict["reason"].as_str()), (409, Some("Conflict")));

    // Server-side apply: fieldManager required; creates, then merges.
    let apply = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: applied\nspec:\n  background: true\n";
    let (code, _) = raw
        .send(
            "PATCH",
            &format!("{base}/applied"),
            "application/apply-patch+yaml",
            Some(apply.into()),
        )
        .await;
    assert_eq!(code, 422);
    let (code, a) = raw
        .send(
            "PATCH",
            &format!("{base}/applied?fieldManager=imagegate"),
            "application/apply-patch+yaml",
            Some(apply.into()),
        )
        .await;
    assert_eq!(code, 201, "{a}");
    assert_eq!(a["metadata"]["managedFields"][0]["manager"], "imagegate");
    let (code, a) = raw
        .send(
            "PATCH",
            &format!("{base}/applied?fieldManager=imagegate"),
            "application/apply-patch+yaml",
            Some(apply.replace("true", "false")),
        )
        .await;
    assert_eq!(
        (code, a["spec"]["background"].as_bool()),
        (200, Some(false))
    );
    let (code, _) = raw
        .send(
            "PATCH",
            &format!("{base}/applied"),
            "text/plain",
            Some("{}".into()),
        )
        .await;
    assert_eq!(code, 415);

    // Bounds: a body over 3 MiB is refused.
    let huge = json!({"metadata": {"name": "huge"}, "data": {"x": "a".repeat(3 * 1024 * 1024)}});
    assert_eq!(
        raw.post("/api/v1/namespaces/default/configmaps", huge)
            .await
            .0,
        413
    );
}
