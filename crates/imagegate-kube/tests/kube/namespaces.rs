//! Namespace labels from the metadata-only watch.

use std::time::Duration;

use imagegate_kube::NamespaceLabels;
use imagegate_testkit::apiserver::ApiServer;
use serde_json::json;

use crate::{connect, eventually};

#[tokio::test]
async fn labels_follow_the_namespaces_and_unknown_is_none() {
    let server = ApiServer::start();
    server
        .create(
            "namespaces",
            None,
            json!({"metadata": {"name": "prod", "labels": {"env": "prod"}}}),
        )
        .unwrap();
    let cluster = connect(&server).await;
    let ns = NamespaceLabels::start(cluster.client.clone());
    ns.wait_ready(Duration::from_secs(10)).await.unwrap();
    let prod = ns.labels("prod").unwrap();
    assert_eq!(prod.get("env").map(String::as_str), Some("prod"));
    assert_eq!(
        prod.get("kubernetes.io/metadata.name").map(String::as_str),
        Some("prod")
    );
    assert!(
        ns.labels("staging").is_none(),
        "not yet seen: the engine fails closed"
    );

    server
        .merge_patch(
            "namespaces",
            None,
            "prod",
            json!({"metadata": {"labels": {"env": "production"}}}),
        )
        .unwrap();
    eventually(Duration::from_secs(2), || {
        ns.labels("prod")
            .filter(|l| l.get("env").map(String::as_str) == Some("production"))
    })
    .await
    .expect("label change seen");
    server
        .create("namespaces", None, json!({"metadata": {"name": "staging"}}))
        .unwrap();
    eventually(Duration::from_secs(2), || ns.labels("staging"))
        .await
        .expect("new namespace seen");
    server.delete("namespaces", None, "staging").unwrap();
    eventually(Duration::from_secs(2), || {
        ns.labels("staging").is_none().then_some(())
    })
    .await
    .expect("deletion seen");

    // Only metadata was asked for.
    assert!(
        server
            .requests()
            .iter()
            .filter(|r| r.path == "/api/v1/namespaces")
            .all(|r| r.code == 200)
    );
}
