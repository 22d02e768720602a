//! Namespace labels for `namespaceSelector`, from a metadata-only watch of Namespaces
//! (labels are all imagegate needs; full objects are never fetched). A namespace not yet
//! seen answers `None`, which the engine treats as "fail closed".

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::{KubeError, Result};

/// Labels of one namespace.
pub type Labels = BTreeMap<String, String>;
type Table = HashMap<String, Arc<Labels>>;

/// Watched namespace labels; the watch stops when dropped.
#[derive(Debug)]
pub struct NamespaceLabels {
    table: Arc<RwLock<Table>>,
    ready: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Drop for NamespaceLabels {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl NamespaceLabels {
    /// Starts the watch.
    pub fn start(client: kube::Client) -> NamespaceLabels {
        let table = Arc::new(RwLock::new(Table::new()));
        let (tx, ready) = watch::channel(false);
        let task = tokio::spawn(run(client, table.clone(), tx));
        NamespaceLabels { table, ready, task }
    }

    /// The labels of `namespace`, `None` when it has not been seen (yet).
    pub fn labels(&self, namespace: &str) -> Option<Arc<Labels>> {
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace)
            .cloned()
    }

    /// How many namespaces are known.
    pub fn len(&self) -> usize {
        self.table.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no namespace is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first complete list has arrived.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the first complete list.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let mut ready = self.ready.clone();
        match tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(KubeError::NotReady {
                what: "namespaces",
                seconds: timeout.as_secs(),
            }),
        }
    }
}

fn entry(meta: &PartialObjectMeta<Namespace>) -> Option<(String, Arc<Labels>)> {
    let name = meta.metadata.name.clone()?;
    Some((
        name,
        Arc::new(meta.metadata.labels.clone().unwrap_or_default()),
    ))
}

async fn run(client: kube::Client, table: Arc<RwLock<Table>>, ready: watch::Sender<bool>) {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Option<Table> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "namespace watch failed; retrying with backoff");
                continue;
            }
        };
        let write = || table.write().unwrap_or_else(|p| p.into_inner());
        match event {
            watcher::Event::Init => relist = Some(Table::new()),
            watcher::Event::InitApply(m) => {
                if let (Some(buf), Some((k, v))) = (relist.as_mut(), entry(&m)) {
                    buf.insert(k, v);
                }
            }
            watcher::Event::InitDone => {
                if let Some(buf) = relist.take() {
                    *write() = buf;
                }
                let _ = ready.send(true);
            }
            watcher::Event::Apply(m) => {
                if let Some((k, v)) = entry(&m) {
                    write().insert(k, v);
                }
            }
            watcher::Event::Delete(m) => {
                if let Some(name) = &m.metadata.name {
                    write().remove(name);
                }
            }
        }
    }
}
