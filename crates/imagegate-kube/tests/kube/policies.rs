//! The policy reflector: publish within 2 s, keep the previous version of a broken
//! policy with Ready=False written, one re-LIST after 410 without a lost update, and no
//! requests in steady state beyond the open watches.

use std::time::{Duration, Instant};

use imagegate_kube::reflect::Kind;
use imagegate_kube::{NamespaceLabels, PolicyKey, PolicyWatch, SecretKeys};
use imagegate_testkit::apiserver::ApiServer;
use serde_json::{Value, json};

use crate::{cluster_policy, connect, eventually};

const CPOL: &str = "clusterpolicies.kyverno.io";

fn key(name: &str) -> PolicyKey {
    PolicyKey {
        kind: Kind::ClusterPolicy,
        namespace: String::new(),
        name: name.to_owned(),
    }
}

fn ready_condition(server: &ApiServer, name: &str) -> Option<Value> {
    let obj = server.get(CPOL, None, name).ok()?;
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

fn action(watch: &PolicyWatch, name: &str) -> Option<String> {
    let set = watch.current();
    let policy = set.get(&key(name))?;
    let v = serde_json::to_value(&policy.spec).ok()?;
    v["validationFailureAction"].as_str().map(str::to_owned)
}

/// Plain LISTs (not watches) of a collection path.
fn lists(server: &ApiServer, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && !r.watch && r.path == path)
        .count()
}

#[tokio::test]
async fn applied_policy_is_enforceable_within_2s_and_marked_ready() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    let watch = PolicyWatch::start(cluster.client.clone());
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert!(watch.current().is_empty());

    let applied = Instant::now();
    server
        .create(CPOL, None, cluster_policy("p1", "Enforce"))
        .unwrap();
    eventually(Duration::from_secs(2), || action(&watch, "p1"))
        .await
        .expect("policy published within 2 s");
    eprintln!("policy change to published set: {:?}", applied.elapsed());

    let ready = eventually(Duration::from_secs(5), || ready_condition(&server, "p1"))
        .await
        .unwrap();
    assert_eq!(ready["status"], "True");
    assert_eq!(ready["reason"], "Loaded");
    // The status write is server-side apply by imagegate.
    let obj = server.get(CPOL, None, "p1").unwrap();
    assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "imagegate");

    server.delete(CPOL, None, "p1").unwrap();
    eventually(Duration::from_secs(2), || {
        watch.current().is_empty().then_some(())
    })
    .await
    .expect("deletion published");
}

#[tokio::test]
async fn broken_policy_keeps_previous_version_and_writes_ready_false() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    server
        .create(CPOL, None, cluster_policy("p", "Enforce"))
        .unwrap();
    let watch = PolicyWatch::start(cluster.client.clone());
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(action(&watch, "p").as_deref(), Some("Enforce"));

    // An invalid change: the previous version stays enforced, Ready=False says why.
    server
        .merge_patch(
            CPOL,
            None,
            "p",
            json!({"spec": {"validationFailureAction": "Sometimes", "background": false}}),
        )
        .unwrap();
    let cond = eventually(Duration::from_secs(5), || {
        ready_condition(&server, "p").filter(|c| c["status"] == "False")
    })
    .await
    .expect("Ready=False written");
    assert_eq!(cond["reason"], "Invalid");
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .contains("validationFailureAction"),
        "{cond}"
    );
    assert_eq!(action(&watch, "p").as_deref(), Some("Enforce"));
    let kept = watch.current();
    assert_eq!(
        kept.len(),
        1,
        "{:?}",
        kept.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );

    // Fixed: loaded, Ready=True again.
    server
        .merge_patch(
            CPOL,
            None,
            "p",
            json!({"spec": {"validationFailureAction": "Audit"}}),
        )
        .unwrap();
    eventually(Duration::from_secs(2), || {
        (action(&watch, "p").as_deref() == Some("Audit")).then_some(())
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(5), || {
        ready_condition(&server, "p").filter(|c| c["status"] == "True")
    })
    .await
    .unwrap();

    // A new policy that is invalid from the start is not loaded at all.
    server
        .create(CPOL, None, cluster_policy("bad", "Never"))
        .unwrap();
    eventually(Duration::from_secs(5), || {
        ready_condition(&server, "bad").filter(|c| c["status"] == "False")
    })
    .await
    .unwrap();
    assert!(watch.current().get(&key("bad")).is_none());
}

#[tokio::test]
async fn gone_relists_once_and_loses_no_update() {
    let server = ApiServer::start();
    let cluster = connect(&server).await;
    server
        .create(CPOL, None, cluster_policy("p", "Enforce"))
        .unwrap();
    let watch = PolicyWatch::start(cluster.client.clone());
    watch.wait_ready(Duration::from_secs(10)).await.unwrap();
    eventually(Duration::from_secs(5), || ready_condition(&server, "p"))
        .await
        .unwrap();
    let path = "/apis/kyverno.io/v1/clusterpolicies";
    assert_eq!(lists(&server, path), 1);
    // Both watches (ClusterPolicy, Policy) open: the cut below must hit a live stream.
    // (A watch not yet opened would start from the listed version, which compaction
    // keeps valid, and need no re-LIST.)
    eventually(Duration::from_secs(5), || {
        (server.open_watches() >= 2).then_some(())
    })
    .await
    .expect("the watches are open");

    // History compacted and streams cut; a change lands before the client re-watches.
    server.expire_history();
    server
        .merge_patch(
            CPOL,
            None,
            "p",
            json!({"spec": {"validationFailureAction": "Audit"}}),
        )
        .unwrap();
    eventually(Duration::from_secs(10), || {
        (action(&watch, "p").as_deref() == Some("Audit")).then_some(())
    })
    .await
    .expect("the update made during the outage is seen");
    assert_eq!(lists(&server, path), 2, "exactly one re-LIST");
    let gone_watches = server
        .requests()
        .iter()
        .filter(|r| r.watch && r.path == path)
        .count();
    assert!(gone_watches >= 2, "re-watched after the drop");
}

#[tokio::test]
async fn steady_state_makes_no_requests_beyond_the_open_watches() {
    let server = ApiServer::start();
    server.set_bookmark_interval(Duration::from_millis(200));
    let cluster = connect(&server).await;
    server
        .create(CPOL, None, cluster_policy("p", "Enforce"))
        .unwrap();
    let policies = PolicyWatch::start(cluster.client.clone());
    let namespaces = NamespaceLabels::start(cluster.client.clone());
    let secrets = SecretKeys::start(cluster.client.clone());
    policies.wait_ready(Duration::from_secs(10)).await.unwrap();
    namespaces
        .wait_ready(Duration::from_secs(10))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), || ready_condition(&server, "p"))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), || {
        (server.open_watches() == 8).then_some(())
    })
    .await
    .expect("eight watches open (six policy kinds, namespaces, secrets)");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = server.requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = server.requests();
    assert_eq!(
        after.len(),
        before,
        "new requests in steady state: {:?}",
        &after[before..]
    );
    assert_eq!(server.open_watches(), 8);
    drop(secrets);
}
