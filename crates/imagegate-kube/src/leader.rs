//! Leader election over a `coordination.k8s.io/v1` Lease in imagegate's own namespace, as
//! client-go's `leaderelection` does it: one replica holds the Lease and renews it every
//! retry period; the others try as often and take it over only when the holder has not
//! renewed it for a whole lease duration, as they observed it on their own clock (no
//! clock comparison between replicas). Every write carries the `resourceVersion` it read,
//! so of two replicas racing for the same Lease the API server lets exactly one win (the
//! other gets 409 Conflict and stays a follower).
//!
//! A leader that cannot renew within the renew deadline stops leading before anyone can
//! take over (renew deadline < lease duration), so two replicas never lead at once as
//! long as their clocks run at the same rate. Leadership is published on a
//! `tokio::sync::watch` channel ([`LeaderElector::leading`]): whatever only one replica
//! may do (writing PolicyReports, background scans) follows it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Default name of the Lease.
pub const LEASE_NAME: &str = "imagegate-leader";

/// How the election runs. The durations are client-go's defaults.
#[derive(Debug, Clone)]
pub struct LeaderElectionOptions {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (imagegate's own).
    pub namespace: String,
    /// This replica's identity ([`holder_identity`]).
    pub identity: String,
    /// How long a Lease that is not renewed keeps others from taking it.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and the others try to acquire.
    pub retry_period: Duration,
}

impl LeaderElectionOptions {
    /// Options with client-go's durations (15 s, 10 s, 2 s) and the Lease
    /// [`LEASE_NAME`] in `namespace`.
    pub fn new(namespace: &str, identity: &str) -> LeaderElectionOptions {
        LeaderElectionOptions {
            lease_name: LEASE_NAME.to_owned(),
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl LeaderElectionOptions {
    /// Whether these options give a safe election.
    pub fn validate(&self) -> Result<(), LeaderElectionError> {
        if self.identity.trim().is_empty() {
            return Err(LeaderElectionError::NoIdentity);
        }
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return Err(LeaderElectionError::Durations {
                lease: self.lease_duration,
                renew: self.renew_deadline,
                retry: self.retry_period,
            });
        }
        Ok(())
    }
}

/// Why the options cannot give a safe election.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderElectionError {
    /// The renew deadline must be shorter than the lease duration (else a leader that
    /// cannot renew still leads when another takes over) and longer than the retry period.
    #[error(
        "leader election needs retry period ({retry:?}) < renew deadline ({renew:?}) < lease duration ({lease:?})"
    )]
    Durations {
        /// Lease duration.
        lease: Duration,
        /// Renew deadline.
        renew: Duration,
        /// Retry period.
        retry: Duration,
    },
    /// No identity: every replica would believe it holds the Lease.
    #[error("leader election needs a non-empty holder identity")]
    NoIdentity,
}

/// The holder identity of this process: `$POD_NAME` (downward API) when set, else the
/// host name and the process id (`host-1234`).
pub fn holder_identity() -> String {
    let pod = std::env::var("POD_NAME").ok();
    let host = std::env::var("HOSTNAME").ok().or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
    });
    identity_of(pod.as_deref(), host.as_deref(), std::process::id())
}

/// [`holder_identity`] from its sources (pure).
fn identity_of(pod_name: Option<&str>, host: Option<&str>, pid: u32) -> String {
    if let Some(pod) = pod_name.map(str::trim).filter(|p| !p.is_empty()) {
        return pod.to_owned();
    }
    let host = host.map(str::trim).filter(|h| !h.is_empty());
    format!("{}-{pid}", host.unwrap_or("imagegate"))
}

/// A running election; [`LeaderElector::stop`] releases the Lease if held. Dropped
/// without `stop`, it stops trying at once and the Lease expires on its own.
#[derive(Debug)]
pub struct LeaderElector {
    leading: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        let task = self
            .task
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

impl LeaderElector {
    /// Starts electing with `options`.
    pub fn start(
        client: kube::Client,
        options: LeaderElectionOptions,
    ) -> Result<LeaderElector, LeaderElectionError> {
        options.validate()?;
        let api: Api<Lease> = Api::namespaced(client, &options.namespace);
        let (leading_tx, leading) = watch::channel(false);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(api, options, leading_tx, stop_rx));
        Ok(LeaderElector {
            leading,
            stop,
            task: std::sync::Mutex::new(Some(task)),
        })
    }

    /// Whether this replica leads, now and on every change.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Stops electing and, when leading, releases the Lease so that another replica
    /// takes over at its next try instead of after the lease duration. Bounded by the
    /// renew deadline.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// What a replica remembers of the Lease: the version it last saw and when it saw it
/// change (the expiry clock runs from there, on this replica's clock).
#[derive(Debug, Default)]
struct Observed {
    version: Option<String>,
    since: Option<Instant>,
}

/// The outcome of one try.
enum Try {
    /// This replica holds the Lease (acquired or renewed).
    Held,
    /// Another replica holds it, or won the race for it.
    Other,
}

async fn run(
    api: Api<Lease>,
    options: LeaderElectionOptions,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut observed = Observed::default();
    let mut renewed: Option<Instant> = None;
    loop {
        // A leader's try may last only until its renew deadline: it must know it lost
        // the Lease before anyone else may take it.
        let budget = match renewed {
            Some(at) if *leading.borrow() => {
                (at + options.renew_deadline).saturating_duration_since(Instant::now())
            }
            _ => options.renew_deadline,
        };
        let attempt =
            tokio::time::timeout(budget, try_acquire_or_renew(&api, &options, &mut observed)).await;
        match attempt {
            Ok(Ok(Try::Held)) => {
                renewed = Some(Instant::now());
                // Only a change notifies: followers of the channel (the report feed)
                // act on changes of leadership, not on renewals.
                let became = leading.send_if_modified(|l| !std::mem::replace(l, true));
                if became {
                    tracing::info!(
                        identity = %options.identity,
                        lease = %options.lease_name,
                        "became the leader"
                    );
                }
            }
            Ok(Ok(Try::Other)) => lose(&leading, &options, "another replica holds the lease"),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "leader election: the lease could not be read or written");
                let expired = renewed.is_none_or(|at| at.elapsed() >= options.renew_deadline);
                if expired {
                    lose(&leading, &options, "the lease was not renewed in time");
                }
            }
            Err(_) => lose(&leading, &options, "the lease was not renewed in time"),
        }
        tokio::select! {
            _ = tokio::time::sleep(options.retry_period) => {}
            _ = stop.changed() => break,
        }
    }
    if *leading.borrow() {
        let released = tokio::time::timeout(options.renew_deadline, release(&api, &options)).await;
        if !matches!(released, Ok(Ok(()))) {
            tracing::warn!("leader election: the lease could not be released; it expires");
        }
    }
    leading.send_if_modified(|l| std::mem::replace(l, false));
}

fn lose(leading: &watch::Sender<bool>, options: &LeaderElectionOptions, why: &str) {
    if leading.send_if_modified(|l| std::mem::replace(l, false)) {
        tracing::warn!(identity = %options.identity, reason = why, "stopped leading");
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    options: &LeaderElectionOptions,
    observed: &mut Observed,
) -> Result<Try, kube::Error> {
    let Some(mut lease) = api.get_opt(&options.lease_name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(options.lease_name.clone()),
                namespace: Some(options.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(options.identity.clone()),
                lease_duration_seconds: Some(seconds(options.lease_duration)),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Try::Held),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Try::Other),
            Err(e) => Err(e),
        };
    };
    let version = lease.metadata.resource_version.clone();
    if observed.version != version || observed.since.is_none() {
        observed.version = version;
        observed.since = Some(Instant::now());
    }
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let mine = holder == options.identity;
    // The holder's own duration, as it wrote it (a release writes 1 s).
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(options.lease_duration, Duration::from_secs);
    let held_by_other = !holder.is_empty()
        && !mine
        && observed
            .since
            .is_some_and(|since| since.elapsed() < duration);
    if held_by_other {
        return Ok(Try::Other);
    }
    let transitions = spec.lease_transitions.unwrap_or(0);
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(options.identity.clone()),
        lease_duration_seconds: Some(seconds(options.lease_duration)),
        acquire_time: if mine { spec.acquire_time } else { Some(now()) },
        renew_time: Some(now()),
        // As client-go counts: every change of holder, from a released Lease too.
        lease_transitions: Some(if mine {
            transitions
        } else {
            transitions.saturating_add(1)
        }),
        ..spec
    });
    // `lease` carries the resourceVersion read above: a concurrent writer makes this 409.
    match api
        .replace(&options.lease_name, &PostParams::default(), &lease)
        .await
    {
        Ok(written) => {
            observed.version = written.metadata.resource_version;
            observed.since = Some(Instant::now());
            Ok(Try::Held)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Try::Other),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up as client-go's `ReleaseOnCancel` does: no holder, a 1 s duration.
async fn release(api: &Api<Lease>, options: &LeaderElectionOptions) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&options.lease_name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(options.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    api.replace(&options.lease_name, &PostParams::default(), &lease)
        .await?;
    tracing::info!(identity = %options.identity, "released the leader lease");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_the_pod_name_else_host_and_pid() {
        assert_eq!(
            identity_of(Some("imagegate-7f9c-x2"), Some("node"), 7),
            "imagegate-7f9c-x2"
        );
        assert_eq!(
            identity_of(Some(" "), Some("worker-1\n"), 42),
            "worker-1-42"
        );
        assert_eq!(identity_of(None, None, 42), "imagegate-42");
    }
}
