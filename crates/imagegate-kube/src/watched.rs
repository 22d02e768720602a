//! Namespaced objects (Secrets, ConfigMaps) read on demand and cached. A metadata-only
//! watch of the kind records each object's latest `resourceVersion`; a cached object is
//! used only while its version is the latest the watch has seen, so an update or delete
//! invalidates it without holding the data of any object beyond the ones asked for.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, PartialObjectMeta};
use kube::core::NamespaceResourceScope;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::error::{KubeError, Result};

type Key = (String, String);

/// An object's data with the version it was read at.
#[derive(Debug)]
struct Cached<D> {
    resource_version: String,
    data: D,
}

#[derive(Debug)]
struct State<D> {
    /// Latest version per object, from the watch.
    seen: HashMap<Key, String>,
    cache: HashMap<Key, Cached<D>>,
}

impl<D> Default for State<D> {
    fn default() -> Self {
        State {
            seen: HashMap::new(),
            cache: HashMap::new(),
        }
    }
}

/// On-demand reads of one kind with a watch-invalidated cache of `D` (what is kept of
/// an object); the watch stops when dropped.
pub(crate) struct Watched<K, D> {
    client: kube::Client,
    /// The kind in messages (`secret`, `configmap`).
    what: &'static str,
    deadline: Duration,
    extract: fn(K) -> D,
    state: Arc<Mutex<State<D>>>,
    task: JoinHandle<()>,
}

impl<K, D> Drop for Watched<K, D> {
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
    K: Clone + DeserializeOwned + Debug,
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

impl<K, D> Watched<K, D>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    D: Clone + Send + 'static,
{
    /// Starts the invalidation watch; reads take at most `deadline`.
    pub(crate) fn start(
        client: kube::Client,
        what: &'static str,
        deadline: Duration,
        extract: fn(K) -> D,
    ) -> Watched<K, D> {
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(run::<K, D>(client.clone(), what, state.clone()));
        Watched {
            client,
            what,
            deadline,
            extract,
            state,
            task,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<D>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is kept of object `namespace/name`, from the cache while it is current;
    /// `None` when it does not exist.
    pub(crate) async fn get(&self, namespace: &str, name: &str) -> Result<Option<D>> {
        let key = (namespace.to_owned(), name.to_owned());
        {
            let state = self.lock();
            if let (Some(c), Some(seen)) = (state.cache.get(&key), state.seen.get(&key))
                && c.resource_version == *seen
            {
                return Ok(Some(c.data.clone()));
            }
        }
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        let Some(object) = get_within(&api, self.what, namespace, name, self.deadline).await?
        else {
            return Ok(None);
        };
        let version = object.resource_version();
        let data = (self.extract)(object);
        if let Some(resource_version) = version {
            self.lock().cache.insert(
                key,
                Cached {
                    resource_version,
                    data: data.clone(),
                },
            );
        }
        Ok(Some(data))
    }
}

async fn run<K, D>(client: kube::Client, what: &'static str, state: Arc<Mutex<State<D>>>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api: Api<PartialObjectMeta<K>> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Option<HashMap<Key, String>> = None;
    let key = |m: &PartialObjectMeta<K>| -> Option<(Key, String)> {
        Some((
            (m.metadata.namespace.clone()?, m.metadata.name.clone()?),
            m.metadata.resource_version.clone()?,
        ))
    };
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, kind = what, "watch failed; retrying with backoff");
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
        // Entries whose object changed are dead weight.
        let State { seen, cache } = &mut *s;
        cache.retain(|k, c| seen.get(k).is_none_or(|rv| *rv == c.resource_version));
    }
}
