//! Connecting through a kubeconfig.

use imagegate_kube::Cluster;
use imagegate_testkit::apiserver::ApiServer;

#[tokio::test]
async fn kubeconfig_context_namespace_is_the_own_namespace_and_the_client_works() {
    let server = ApiServer::start();
    // Unless the test runner sets POD_NAMESPACE, which has precedence.
    if std::env::var_os("POD_NAMESPACE").is_some() {
        eprintln!("skipped: POD_NAMESPACE is set");
        return;
    }
    let cluster = Cluster::connect(Some(&server.kubeconfig(Some("team-a"))))
        .await
        .unwrap();
    assert_eq!(cluster.namespace, "team-a");
    let cluster = Cluster::connect(Some(&server.kubeconfig(None)))
        .await
        .unwrap();
    assert_eq!(cluster.namespace, "imagegate");
    let version = cluster.client.apiserver_version().await.unwrap();
    assert_eq!(version.minor, "33");

    let missing = server.kubeconfig(None).with_file_name("nope");
    let err = Cluster::connect(Some(&missing)).await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
