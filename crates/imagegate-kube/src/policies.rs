//! The policy reflector: every kind of [`Kind`] (`kyverno.io/v1` ClusterPolicy and Policy,
//! `policies.kyverno.io` ImageValidatingPolicy and NamespacedImageValidatingPolicy, and
//! the PolicyExceptions of both groups) watched (one LIST, then WATCH with bookmarks;
//! after 410 Gone or a broken stream kube-runtime re-watches or re-lists, with
//! exponential backoff on errors), fed through one [`Reflector`], published as an
//! atomically swapped [`PolicySet`], and the policies' Ready condition written back with
//! server-side apply (field manager `imagegate`) by a writer task of its own: a slow API
//! never holds up the next policy event, and only the latest condition per object is
//! written (the queue holds one entry per object, so it is bounded by them).
//!
//! PolicyExceptions are watched in one namespace when one is given (Kyverno's
//! `--exceptionNamespace`), else in all. A kind whose CRD is not installed (404) holds
//! nothing and does not hold up readiness; its watch keeps retrying.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::error::{KubeError, Result};
use crate::reflect::{Kind, Outcome, PolicyKey, PolicySet, Reflector, StatusWrite};

/// Field manager of imagegate's status writes.
pub const FIELD_MANAGER: &str = "imagegate";
/// Deadline of one status write.
const STATUS_DEADLINE: Duration = Duration::from_secs(10);

fn resource(kind: Kind) -> ApiResource {
    let gvk = GroupVersionKind::gvk(kind.group(), kind.version(), kind.as_str());
    ApiResource::from_gvk_with_plural(&gvk, kind.plural())
}

/// What a [`PolicyWatch`] watches and writes.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Write the policies' Ready conditions (`false`: read-only, for audits).
    pub write_status: bool,
    /// The one namespace PolicyExceptions are read from (`None`: every namespace).
    pub exception_namespace: Option<String>,
    /// The kinds watched.
    pub kinds: Vec<Kind>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            write_status: true,
            exception_namespace: None,
            kinds: Kind::ALL.to_vec(),
        }
    }
}

/// A running policy reflector; stops when dropped.
#[derive(Debug)]
pub struct PolicyWatch {
    current: Arc<ArcSwap<PolicySet>>,
    ready: watch::Receiver<bool>,
    /// Bumped each time a new set is published.
    published: watch::Receiver<u64>,
    task: JoinHandle<()>,
    /// The status writer (`None`: read-only).
    writer: Option<JoinHandle<()>>,
}

impl Drop for PolicyWatch {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

/// Status writes waiting for the writer: the latest per object.
#[derive(Debug, Default)]
struct StatusQueue {
    pending: Mutex<BTreeMap<PolicyKey, StatusWrite>>,
    wake: Notify,
}

impl StatusQueue {
    fn push(&self, write: StatusWrite) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(write.key.clone(), write);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<StatusWrite> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
            .into_values()
            .collect()
    }
}

impl PolicyWatch {
    /// Starts watching every kind cluster-wide, writing the policies' Ready conditions.
    pub fn start(client: kube::Client) -> PolicyWatch {
        Self::start_with(client, WatchOptions::default())
    }

    /// Starts watching every kind cluster-wide without writing anything (for
    /// `imagegate audit`, which only reads the cluster).
    pub fn start_read_only(client: kube::Client) -> PolicyWatch {
        Self::start_with(
            client,
            WatchOptions {
                write_status: false,
                ..WatchOptions::default()
            },
        )
    }

    /// Starts watching as `options` say.
    pub fn start_with(client: kube::Client, options: WatchOptions) -> PolicyWatch {
        let current = Arc::new(ArcSwap::from_pointee(PolicySet::default()));
        let (ready_tx, ready) = watch::channel(false);
        let (published_tx, published) = watch::channel(0);
        // Read-only watches (audits) have no queue: nothing is ever written.
        let (queue, writer) = if options.write_status {
            let queue = Arc::new(StatusQueue::default());
            let writer = tokio::spawn(write_statuses(client.clone(), queue.clone()));
            (Some(queue), Some(writer))
        } else {
            (None, None)
        };
        let publish = Publish {
            current: current.clone(),
            ready: ready_tx,
            published: published_tx,
            queue,
        };
        let task = tokio::spawn(run(client, options, publish));
        PolicyWatch {
            current,
            ready,
            published,
            task,
            writer,
        }
    }

    /// Changes each time a new set is published (`changed().await` wakes then).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.published.clone()
    }

    /// The current set (cheap: an `Arc` clone).
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// A handle that always reads the latest set, for the engine.
    pub fn handle(&self) -> Arc<ArcSwap<PolicySet>> {
        self.current.clone()
    }

    /// Whether the first complete list of every kind has arrived (readiness).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the first complete list of every kind.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let mut ready = self.ready.clone();
        let waited = tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            _ => Err(KubeError::NotReady {
                what: "policies",
                seconds: timeout.as_secs(),
            }),
        }
    }
}

/// Where the reflector's results go.
struct Publish {
    current: Arc<ArcSwap<PolicySet>>,
    ready: watch::Sender<bool>,
    published: watch::Sender<u64>,
    /// Where Ready conditions are queued for writing; `None`: read-only.
    queue: Option<Arc<StatusQueue>>,
}

/// Whether a watch error says the API does not serve the kind (CRD not installed).
fn not_served(error: &watcher::Error) -> bool {
    matches!(
        error,
        watcher::Error::InitialListFailed(kube::Error::Api(status)) if status.code == 404
    )
}

async fn run(client: kube::Client, options: WatchOptions, publish: Publish) {
    let stream = |kind: Kind| {
        let ar = resource(kind);
        let api: Api<DynamicObject> = match (&options.exception_namespace, kind.is_exception()) {
            (Some(namespace), true) => Api::namespaced_with(client.clone(), namespace, &ar),
            _ => Api::all_with(client.clone(), &ar),
        };
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |e| (kind, e))
            .boxed()
    };
    let mut events = futures::stream::select_all(options.kinds.iter().map(|k| stream(*k)));
    let mut reflector = Reflector::new(&options.kinds);
    while let Some((kind, event)) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) if not_served(&e) => {
                let outcome = reflector.absent(kind);
                if outcome.changed {
                    tracing::info!(
                        kind = kind.as_str(),
                        group = kind.group(),
                        "the API does not serve this kind (CRD not installed): none loaded; retrying with backoff"
                    );
                }
                publish.outcome(&reflector, outcome);
                continue;
            }
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), group = kind.group(), error = %e, "policy watch failed; retrying with backoff");
                continue;
            }
        };
        let value = |o: &DynamicObject| serde_json::to_value(o).unwrap_or(Value::Null);
        let outcome: Outcome = match event {
            watcher::Event::Init => {
                reflector.init(kind);
                Outcome::default()
            }
            watcher::Event::InitApply(o) => reflector.init_apply(kind, &value(&o)),
            watcher::Event::InitDone => reflector.init_done(kind),
            watcher::Event::Apply(o) => reflector.apply(kind, &value(&o)),
            watcher::Event::Delete(o) => reflector.delete(kind, &value(&o)),
        };
        publish.outcome(&reflector, outcome);
    }
}

impl Publish {
    /// Logs, publishes and queues what one event changed.
    fn outcome(&self, reflector: &Reflector, outcome: Outcome) {
        for (key, error) in &outcome.invalid {
            tracing::warn!(policy = %key, %error, "invalid policy: keeping its previous version, if any");
        }
        // Set, then readiness, then the change notice: whoever is told of a change and
        // sees readiness finds the listed set published.
        if outcome.changed {
            self.current.store(Arc::new(reflector.set().clone()));
        }
        let became_ready = reflector.ready() && !*self.ready.borrow();
        if became_ready {
            let _ = self.ready.send(true);
        }
        if outcome.changed || became_ready {
            self.published.send_modify(|n| *n = n.wrapping_add(1));
        }
        if let Some(queue) = &self.queue {
            for write in outcome.status {
                queue.push(write);
            }
        }
    }
}

/// Writes queued conditions, one at a time, until the watch stops.
async fn write_statuses(client: kube::Client, queue: Arc<StatusQueue>) {
    loop {
        queue.wake.notified().await;
        for write in queue.take() {
            write_ready_condition(&client, &write).await;
        }
    }
}

/// Writes one Ready condition; a failure is logged (the next change retries).
async fn write_ready_condition(client: &kube::Client, write: &StatusWrite) {
    let ar = resource(write.key.kind);
    let api: Api<DynamicObject> = if write.key.kind.namespaced() {
        Api::namespaced_with(client.clone(), &write.key.namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let condition = json!({
        "type": "Ready",
        "status": if write.ready { "True" } else { "False" },
        "reason": write.reason,
        "message": write.message,
        "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    let status = match write.key.kind {
        // Kyverno's CEL policies keep `ready` and the conditions in `conditionStatus`.
        Kind::ImageValidatingPolicy | Kind::NamespacedImageValidatingPolicy => json!({
            "conditionStatus": {
                "ready": write.ready,
                "message": write.message,
                "conditions": [condition],
            },
        }),
        _ => json!({
            "ready": write.ready,
            "conditions": [condition],
        }),
    };
    let patch = json!({
        "apiVersion": format!("{}/{}", write.key.kind.group(), write.key.kind.version()),
        "kind": write.key.kind.as_str(),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let result = tokio::time::timeout(
        STATUS_DEADLINE,
        api.patch_status(&write.key.name, &params, &Patch::Apply(&patch)),
    )
    .await;
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(policy = %write.key, error = %e, "writing the policy's Ready condition failed")
        }
        Err(_) => {
            tracing::warn!(policy = %write.key, "writing the policy's Ready condition timed out")
        }
    }
}
