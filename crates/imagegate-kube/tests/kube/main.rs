//! imagegate-kube against the API server fake (imagegate-testkit): policies, namespace
//! labels, Secrets, ConfigMaps and API calls of context entries, PolicyReports, leader
//! election, Events, background scans (with a real `docker-registry`),
//! ImageValidatingPolicies and PolicyExceptions, 410 recovery and steady-state request
//! counts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod cluster;
mod context;
mod governance;
mod ivp;
mod leader;
mod namespaces;
mod policies;
mod reports;
mod scan;
mod secrets;

use std::time::{Duration, Instant};

use imagegate_kube::Cluster;
use imagegate_testkit::apiserver::ApiServer;
use serde_json::{Value, json};

/// A fake API server and a client connected to it through a kubeconfig.
pub async fn connect(server: &ApiServer) -> Cluster {
    Cluster::connect(Some(&server.kubeconfig(Some("imagegate-system"))))
        .await
        .unwrap()
}

/// Polls `f` every 20 ms until it returns `Some` or `limit` passes.
pub async fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A valid ClusterPolicy with one verifyImages rule.
pub fn cluster_policy(name: &str, action: &str) -> Value {
    json!({
        "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
        "metadata": {"name": name},
        "spec": {"validationFailureAction": action, "rules": [{
            "name": "verify", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "verifyImages": [{"imageReferences": ["registry.example/*"], "mutateDigest": false, "attestors": [{"entries": [{"keys": {"publicKeys": "k8s://default/keys"}}]}]}]
        }]}
    })
}
