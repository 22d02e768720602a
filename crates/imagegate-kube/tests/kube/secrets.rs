//! `k8s://` keys from Secrets: read on demand, cached, invalidated by the watch.

use std::time::Duration;

use imagegate_kube::{KubeError, SecretKeys};
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

#[tokio::test]
async fn k8s_key_is_read_once_cached_and_invalidated_by_the_watch() {
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
        secrets.public_key("k8s://default/keys").await.unwrap(),
        "PEM-1"
    );
    assert_eq!(
        secrets.public_key("k8s://default/keys").await.unwrap(),
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
        latest = secrets.public_key("k8s://default/keys").await.unwrap();
        if latest == "PEM-2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(latest, "PEM-2");

    server
        .create(
            "secrets",
            Some("default"),
            json!({"metadata": {"name": "other"}, "stringData": {"x": "y"}}),
        )
        .unwrap();
    let err = secrets.public_key("k8s://default/other").await.unwrap_err();
    assert!(matches!(err, KubeError::SecretKeyMissing { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "secret default/other has no key \"cosign.pub\""
    );
    let err = secrets
        .public_key("k8s://default/absent")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "secret default/absent not found");
    assert!(matches!(
        secrets.public_key("k8s://nope").await,
        Err(KubeError::BadSecretReference { .. })
    ));

    server.delete("secrets", Some("default"), "keys").unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if matches!(
            secrets.public_key("k8s://default/keys").await,
            Err(KubeError::SecretNotFound { .. })
        ) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "a deleted Secret is not served from the cache");
}
