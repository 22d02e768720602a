//! Secrets the engine asks for (`k8s://NAMESPACE/NAME` and `keys.secret` keys, pull
//! secrets), read on demand and cached. A metadata-only watch of Secrets records each Secret's
//! latest `resourceVersion`; a cached Secret is used only while its version is the latest
//! the watch has seen, so an update or delete invalidates it without holding any Secret
//! data beyond the ones asked for.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::task::JoinHandle;

use imagegate_engine::{ClusterError, SecretData};

use crate::error::{KubeError, Result};

/// Deadline of one Secret read.
const READ_DEADLINE: Duration = Duration::from_secs(10);

type Key = (String, String);

/// A Secret's data with the version it was read at.
#[derive(Debug)]
struct Cached {
    resource_version: String,
    data: SecretData,
}

#[derive(Debug, Default)]
struct State {
    /// Latest version per Secret, from the watch.
    seen: HashMap<Key, String>,
    cache: HashMap<Key, Cached>,
}

/// On-demand Secret reads with a watch-invalidated cache; the watch stops when dropped.
pub struct SecretKeys {
    client: kube::Client,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys").finish_non_exhaustive()
    }
}

impl Drop for SecretKeys {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One namespaced object read within `deadline`: `None` when it does not exist; an API
/// error or the deadline is [`KubeError::Api`] naming what was read (`what ns/name`).
pub(crate) async fn get_within<K>(
    api: &Api<K>,
    what: &str,
    namespace: &str,
    name: &str,
    deadline: Duration,
) -> Result<Option<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match tokio::time::timeout(deadline, api.get_opt(name)).await {
        Ok(Ok(object)) => Ok(object),
        Ok(Err(e)) => Err(KubeError::Api(format!(
            "reading {what} {namespace}/{name}: {e}"
        ))),
        Err(_) => Err(KubeError::Api(format!(
            "reading {what} {namespace}/{name}: timed out"
        ))),
    }
}

impl SecretKeys {
    /// Starts the invalidation watch.
    pub fn start(client: kube::Client) -> SecretKeys {
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(run(client.clone(), state.clone()));
        SecretKeys {
            client,
            state,
            task,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The data of Secret `namespace/name`, from the cache while it is current. What
    /// went wrong is said in the engine's words ([`ClusterError`]: it reads Secrets
    /// through [`imagegate_engine::ClusterInputs`] and explains the failures to users).
    pub async fn data(&self, namespace: &str, name: &str) -> Result<SecretData, ClusterError> {
        let key = (namespace.to_owned(), name.to_owned());
        {
            let state = self.lock();
            if let (Some(c), Some(seen)) = (state.cache.get(&key), state.seen.get(&key))
                && c.resource_version == *seen
            {
                return Ok(c.data.clone());
            }
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = get_within(&api, "secret", namespace, name, READ_DEADLINE)
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        let Some(secret) = secret else {
            return Err(ClusterError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        };
        let data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        let data = Arc::new(data);
        if let Some(rv) = secret.metadata.resource_version {
            self.lock().cache.insert(
                key,
                Cached {
                    resource_version: rv,
                    data: data.clone(),
                },
            );
        }
        Ok(data)
    }
}

async fn run(client: kube::Client, state: Arc<Mutex<State>>) {
    let api: Api<PartialObjectMeta<Secret>> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Option<HashMap<Key, String>> = None;
    let key = |m: &PartialObjectMeta<Secret>| -> Option<(Key, String)> {
        Some((
            (m.metadata.namespace.clone()?, m.metadata.name.clone()?),
            m.metadata.resource_version.clone()?,
        ))
    };
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "secret watch failed; retrying with backoff");
                continue;
            }
        };
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Init => relist = Some(HashMap::new()),
            watcher::Event::InitApply(m) => {
                if let (Some(buf), Some((k, rv))) = (relist.as_mut(), key(&m)) {
                    buf.insert(k, rv);
                }
            }
            watcher::Event::InitDone => {
                if let Some(buf) = relist.take() {
                    s.seen = buf;
                }
            }
            watcher::Event::Apply(m) => {
                if let Some((k, rv)) = key(&m) {
                    s.seen.insert(k, rv);
                }
            }
            watcher::Event::Delete(m) => {
                if let Some((k, _)) = key(&m) {
                    s.seen.remove(&k);
                    s.cache.remove(&k);
                }
            }
        }
        // Entries whose Secret changed are dead weight.
        let State { seen, cache } = &mut *s;
        cache.retain(|k, c| seen.get(k).is_none_or(|rv| *rv == c.resource_version));
    }
}
