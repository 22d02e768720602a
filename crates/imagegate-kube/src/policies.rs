//! The policy reflector: `kyverno.io/v1` ClusterPolicy and Policy watched (one LIST, then
//! WATCH with bookmarks; after 410 Gone or a broken stream kube-runtime re-watches or
//! re-lists, with exponential backoff on errors), fed through [`Reflector`], published
//! as an atomically swapped [`PolicySet`], and `status.conditions[type=Ready]` written
//! back with server-side apply (field manager `imagegate`) by a writer task of its own:
//! a slow API never holds up the next policy event, and only the latest condition per
//! object is written (the queue holds one entry per object, so it is bounded by them).

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
    let gvk = GroupVersionKind::gvk("kyverno.io", "v1", kind.as_str());
    let plural = match kind {
        Kind::ClusterPolicy => "clusterpolicies",
        Kind::Policy => "policies",
    };
    ApiResource::from_gvk_with_plural(&gvk, plural)
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
    /// Starts watching both kinds cluster-wide, writing their Ready conditions.
    pub fn start(client: kube::Client) -> PolicyWatch {
        Self::spawn(client, true)
    }

    /// Starts watching both kinds cluster-wide without writing anything (for
    /// `imagegate audit`, which only reads the cluster).
    pub fn start_read_only(client: kube::Client) -> PolicyWatch {
        Self::spawn(client, false)
    }

    fn spawn(client: kube::Client, write_status: bool) -> PolicyWatch {
        let current = Arc::new(ArcSwap::from_pointee(PolicySet::default()));
        let (ready_tx, ready) = watch::channel(false);
        let (published_tx, published) = watch::channel(0);
        // Read-only watches (audits) have no queue: nothing is ever written.
        let (queue, writer) = if write_status {
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
        let task = tokio::spawn(run(client, publish));
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

    /// Whether the first complete list of both kinds has arrived (readiness).
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits for the first complete list of both kinds.
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

async fn run(client: kube::Client, publish: Publish) {
    let stream = |kind: Kind| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(kind));
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |e| (kind, e))
            .boxed()
    };
    let mut events = futures::stream::select(stream(Kind::ClusterPolicy), stream(Kind::Policy));
    let mut reflector = Reflector::default();
    while let Some((kind, event)) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(kind = kind.as_str(), error = %e, "policy watch failed; retrying with backoff");
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
        for (key, error) in &outcome.invalid {
            tracing::warn!(policy = %key, %error, "invalid policy: keeping its previous version, if any");
        }
        // Set, then readiness, then the change notice: whoever is told of a change and
        // sees readiness finds the listed set published.
        if outcome.changed {
            publish.current.store(Arc::new(reflector.set().clone()));
        }
        let became_ready = reflector.ready() && !*publish.ready.borrow();
        if became_ready {
            let _ = publish.ready.send(true);
        }
        if outcome.changed || became_ready {
            publish.published.send_modify(|n| *n = n.wrapping_add(1));
        }
        if let Some(queue) = &publish.queue {
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
    let api: Api<DynamicObject> = match write.key.kind {
        Kind::ClusterPolicy => Api::all_with(client.clone(), &ar),
        Kind::Policy => Api::namespaced_with(client.clone(), &write.key.namespace, &ar),
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let patch = json!({
        "apiVersion": "kyverno.io/v1",
        "kind": write.key.kind.as_str(),
        "status": {
            "ready": write.ready,
            "conditions": [{
                "type": "Ready",
                "status": if write.ready { "True" } else { "False" },
                "reason": write.reason,
                "message": write.message,
                "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }],
        },
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
