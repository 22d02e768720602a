//! Secrets (`k8s://` keys, pull secrets): read on demand, cached, invalidated by the
//! watch.

use std::time::Duration;

use imagegate_engine::ClusterError;
use imagegate_kube::SecretKeys;
use imagegate_testkit::apiserver::ApiServer;
use serde_json::json;

use crate::{connect, eventually};

fn reads(server: &ApiServer, ns: &str, name: &str) -> usize {
    let path = format!("/api/v1/namespaces/{ns}/secrets/{name}");
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

/// The `cosign.pub` of Secret `namespace/name` (as the engine reads a `k8s://` key).
async fn cosign_pub(
    secrets: &SecretKeys,
    namespace: &str,
    name: &str,
) -> Result<String, ClusterError> {
    let data = secrets.data(namespace, name).await?;
    Ok(String::from_utf8_lossy(&data[imagegate_engine::cluster::COSIGN_PUB]).into_owned())
}

#[tokio::test]
async fn a_secret_is_read_once_cached_and_invalidated_by_the_watch() {
    let server = ApiServer::start();
    server
        .create(
            "secrets",
            Some("default"),
            json!({"metadata": {"name": "keys"}, "stringData": {"cosign.pub": "PEM-1"}}),
        )
        .unwrap();
    let cluster = connect(&server).await;
    let secrets = SecretKeys::start(cluster.client.clone());
    // Wait for the invalidation watch to have listed (the cache is used only then).
    eventually(Duration::from_secs(5), || {
        (server.open_watches() == 1).then_some(())
    })
    .await
    .unwrap();

    assert_eq!(
        cosign_pub(&secrets, "default", "keys").await.unwrap(),
        "PEM-1"
    );
    assert_eq!(
        cosign_pub(&secrets, "default", "keys").await.unwrap(),
        "PEM-1"
    );
    assert_eq!(
        reads(&server, "default", "keys"),
        1,
        "the second read is cached"
    );

    server
        .merge_patch(
            "secrets",
            Some("default"),
            "keys",
            json!({"data": {"cosign.pub": "UEVNLTI="}}),
        )
        .unwrap();
    let mut latest = String::new();
    for _ in 0..100 {
        latest = cosign_pub(&secrets, "default", "keys").await.unwrap();
        if latest == "PEM-2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(latest, "PEM-2");

    assert_eq!(
        secrets.data("default", "absent").await.unwrap_err(),
        ClusterError::SecretNotFound {
            namespace: "default".into(),
            name: "absent".into()
        }
    );

    server.delete("secrets", Some("default"), "keys").unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if matches!(
            secrets.data("default", "keys").await,
            Err(ClusterError::SecretNotFound { .. })
        ) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "a deleted Secret is not served from the cache");
}
