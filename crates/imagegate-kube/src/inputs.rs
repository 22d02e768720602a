//! The engine's view of the cluster ([`ClusterInputs`]) over the watches of this crate:
//! namespace labels from [`NamespaceLabels`], Secrets from [`SecretKeys`], and
//! ServiceAccounts' `imagePullSecrets` read on demand and kept for a minute (a Pod's
//! ServiceAccount rarely changes, and a watch of every ServiceAccount would hold far
//! more than the few admission asks about).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use imagegate_engine::{ClusterError, ClusterInputs, SecretData};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;

use crate::client::Cluster;
use crate::error::{KubeError, Result};
use crate::namespaces::NamespaceLabels;
use crate::secrets::{SecretKeys, get_within};

/// How long a ServiceAccount's pull secret names are reused.
const ACCOUNT_LIFETIME: Duration = Duration::from_secs(60);
/// ServiceAccounts remembered at most (the table is emptied beyond it).
const MAX_ACCOUNTS: usize = 10_000;
/// Deadline of one ServiceAccount read.
const READ_DEADLINE: Duration = Duration::from_secs(5);

type Accounts = HashMap<(String, String), (Instant, Arc<Vec<String>>)>;

/// Namespace labels, Secrets and ServiceAccounts of one cluster; the watches stop when
/// it is dropped.
pub struct KubeInputs {
    client: kube::Client,
    namespace: String,
    namespaces: NamespaceLabels,
    secrets: SecretKeys,
    accounts: Mutex<Accounts>,
}

impl std::fmt::Debug for KubeInputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeInputs")
            .field("namespace", &self.namespace)
            .field("namespaces", &self.namespaces)
            .finish_non_exhaustive()
    }
}

impl KubeInputs {
    /// Starts the namespace and Secret watches of `cluster`.
    pub fn start(cluster: &Cluster) -> KubeInputs {
        KubeInputs {
            client: cluster.client.clone(),
            namespace: cluster.namespace.clone(),
            namespaces: NamespaceLabels::start(cluster.client.clone()),
            secrets: SecretKeys::start(cluster.client.clone()),
            accounts: Mutex::new(Accounts::new()),
        }
    }

    /// The watched namespace labels.
    pub fn namespaces(&self) -> &NamespaceLabels {
        &self.namespaces
    }

    /// Waits for the first complete list of namespaces.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.namespaces.wait_ready(timeout).await
    }

    async fn read_account(&self, namespace: &str, name: &str) -> Result<Arc<Vec<String>>> {
        let key = (namespace.to_owned(), name.to_owned());
        let lock = || self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, names)) = lock().get(&key)
            && at.elapsed() < ACCOUNT_LIFETIME
        {
            return Ok(names.clone());
        }
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let account = get_within(&api, "service account", namespace, name, READ_DEADLINE).await?;
        let names: Vec<String> = account
            .and_then(|a| a.image_pull_secrets)
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
            .collect();
        let names = Arc::new(names);
        let mut accounts = lock();
        if accounts.len() >= MAX_ACCOUNTS {
            accounts.clear();
        }
        accounts.insert(key, (Instant::now(), names.clone()));
        Ok(names)
    }
}

/// The engine's error for one of this crate's: the API could not be asked, or
/// answered with an error (a missing object is not an error here).
fn cluster_error(error: KubeError) -> ClusterError {
    ClusterError::Unavailable(error.to_string())
}

impl ClusterInputs for KubeInputs {
    fn own_namespace(&self) -> &str {
        &self.namespace
    }

    fn namespace_labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        self.namespaces.labels(namespace)
    }

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<SecretData, ClusterError>> {
        self.secrets.data(namespace, name).boxed()
    }

    fn service_account_pull_secrets<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        async move {
            self.read_account(namespace, name)
                .await
                .map(|names| names.as_ref().clone())
                .map_err(cluster_error)
        }
        .boxed()
    }
}
