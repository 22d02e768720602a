//! What rule `context` entries read: ConfigMaps (on demand, cached, invalidated by the
//! watch) and `apiCall` GETs (bounded, refusals carrying the API server's message),
//! also as the engine sees them ([`ClusterInputs`]).

use std::time::Duration;

use imagegate_engine::{ClusterError, ClusterInputs};
use imagegate_kube::api_call::{DEADLINE, MAX_ANSWER_BYTES, get_json};
use imagegate_kube::{ConfigMaps, KubeInputs};
use imagegate_testkit::apiserver::ApiServer;
use serde_json::json;

use crate::{connect, eventually};

fn reads(server: &ApiServer, path: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == path)
        .count()
}

#[tokio::test]
async fn a_config_map_is_read_once_cached_and_invalidated_by_the_watch() {
    let server = ApiServer::start();
    server
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "keys"}, "data": {"pubkey": "PEM-1"}, "binaryData": {"b": "eA=="}}),
        )
        .unwrap();
    let cluster = connect(&server).await;
    let config_maps = ConfigMaps::start(cluster.client.clone());
    eventually(Duration::from_secs(5), || {
        (server.open_watches() == 1).then_some(())
    })
    .await
    .unwrap();

    let first = config_maps.get("default", "keys").await.unwrap();
    assert_eq!(
        first["data"],
        json!({"pubkey": "PEM-1"}),
        "data only, as Kyverno"
    );
    assert_eq!(first["metadata"]["name"], "keys");
    assert_eq!(first["metadata"]["namespace"], "default");
    config_maps.get("default", "keys").await.unwrap();
    let path = "/api/v1/namespaces/default/configmaps/keys";
    assert_eq!(reads(&server, path), 1, "the second read is cached");

    server
        .merge_patch(
            "configmaps",
            Some("default"),
            "keys",
            json!({"data": {"pubkey": "PEM-2"}}),
        )
        .unwrap();
    let mut latest = json!(null);
    for _ in 0..100 {
        latest = config_maps.get("default", "keys").await.unwrap()["data"]["pubkey"].clone();
        if latest == "PEM-2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(latest, "PEM-2");

    let err = config_maps.get("default", "absent").await.unwrap_err();
    assert!(
        matches!(err, ClusterError::ConfigMapNotFound { .. }),
        "{err}"
    );
    assert_eq!(err.to_string(), "configmaps \"absent\" not found");

    server
        .delete("configmaps", Some("default"), "keys")
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if matches!(
            config_maps.get("default", "keys").await,
            Err(ClusterError::ConfigMapNotFound { .. })
        ) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "a deleted ConfigMap is not served from the cache");
}

#[tokio::test]
async fn api_calls_answer_json_within_a_size_limit_and_refusals_say_why() {
    let server = ApiServer::start();
    server
        .create(
            "configmaps",
            Some("default"),
            json!({"metadata": {"name": "big", "labels": {"team": "a"}}, "data": {"blob": "x".repeat(4096)}}),
        )
        .unwrap();
    let cluster = connect(&server).await;
    let client = &cluster.client;

    let one = get_json(
        client,
        "/api/v1/namespaces/default/configmaps/big",
        MAX_ANSWER_BYTES,
        DEADLINE,
    )
    .await
    .unwrap();
    assert_eq!(one["metadata"]["labels"]["team"], "a");
    let list = get_json(
        client,
        "/api/v1/namespaces/default/configmaps?labelSelector=team%3Da",
        MAX_ANSWER_BYTES,
        DEADLINE,
    )
    .await
    .unwrap();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");

    let too_big = get_json(
        client,
        "/api/v1/namespaces/default/configmaps/big",
        1024,
        DEADLINE,
    )
    .await
    .unwrap_err();
    assert_eq!(
        too_big.to_string(),
        "response length must be less than max allowed response length of 1024"
    );
    let missing = get_json(
        client,
        "/api/v1/namespaces/default/configmaps/none",
        MAX_ANSWER_BYTES,
        DEADLINE,
    )
    .await
    .unwrap_err();
    assert!(matches!(missing, ClusterError::Refused { .. }), "{missing}");
    assert!(missing.to_string().contains("not found"), "{missing}");
    let relative = get_json(client, "api/v1/pods", MAX_ANSWER_BYTES, DEADLINE)
        .await
        .unwrap_err();
    assert!(
        relative.to_string().contains("not an absolute path"),
        "{relative}"
    );

    // As the engine sees them: not found and refusals are the policy's problem, not
    // an outage.
    let inputs = KubeInputs::start(&cluster);
    let err = inputs.config_map("default", "none").await.unwrap_err();
    assert_eq!(
        err,
        ClusterError::ConfigMapNotFound {
            namespace: "default".into(),
            name: "none".into()
        }
    );
    assert!(!err.is_transient());
    let found = inputs.config_map("default", "big").await.unwrap();
    assert_eq!(found["metadata"]["labels"]["team"], "a");
    let err = inputs
        .api_get("/api/v1/namespaces/default/pods/none")
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Refused { .. }), "{err}");
    assert!(!err.is_transient());
}
