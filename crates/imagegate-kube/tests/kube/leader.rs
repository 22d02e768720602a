//! Leader election over a Lease in the API server fake: of several electors exactly one
//! leads, never two at once (sampled every few milliseconds), a crashed leader is
//! replaced only after its Lease expired, and a stopped one hands the Lease over.

use std::time::{Duration, Instant};

use imagegate_kube::{LeaderElectionOptions, LeaderElector};
use imagegate_testkit::apiserver::ApiServer;

use crate::connect;

const NAMESPACE: &str = "imagegate-system";
const LEASE_DURATION: Duration = Duration::from_millis(2000);

fn options(identity: &str) -> LeaderElectionOptions {
    LeaderElectionOptions {
        lease_duration: LEASE_DURATION,
        renew_deadline: Duration::from_millis(1500),
        retry_period: Duration::from_millis(100),
        ..LeaderElectionOptions::new(NAMESPACE, identity)
    }
}

/// The fake with imagegate's namespace (the Lease lives there; the API server refuses
/// objects in a namespace that does not exist).
fn start() -> ApiServer {
    let server = ApiServer::start();
    server
        .create(
            "namespaces",
            None,
            serde_json::json!({"metadata": {"name": NAMESPACE}}),
        )
        .unwrap();
    server
}

fn holder(server: &ApiServer) -> Option<String> {
    let lease = server
        .get(
            "leases.coordination.k8s.io",
            Some(NAMESPACE),
            "imagegate-leader",
        )
        .ok()?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// Samples `electors` every 5 ms for `how_long`; fails if two lead at once. Returns the
/// index of the last one seen leading.
async fn sample(electors: &[&LeaderElector], how_long: Duration) -> Option<usize> {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < how_long {
        let leading: Vec<usize> = (0..electors.len())
            .filter(|&i| electors[i].is_leader())
            .collect();
        assert!(leading.len() <= 1, "two leaders at once: {leading:?}");
        if let Some(&i) = leading.first() {
            last = Some(i);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    last
}

#[tokio::test]
async fn exactly_one_of_three_leads_and_a_crashed_leader_is_replaced_after_expiry() {
    let server = start();
    let cluster = connect(&server).await;
    let names = ["replica-a", "replica-b", "replica-c"];
    let mut electors: Vec<Option<LeaderElector>> = names
        .iter()
        .map(|n| Some(LeaderElector::start(cluster.client.clone(), options(n)).unwrap()))
        .collect();
    // Three replicas race for a Lease that does not exist yet: one wins and keeps it
    // through many renewals.
    let all: Vec<&LeaderElector> = electors.iter().flatten().collect();
    let first = sample(&all, Duration::from_secs(3))
        .await
        .expect("a leader within 3 s");
    assert!(
        all[first].is_leader(),
        "the leader keeps leading while it renews"
    );
    assert_eq!(holder(&server).as_deref(), Some(names[first]));
    let renewals = server
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.ends_with("/leases/imagegate-leader"))
        .count();
    assert!(
        renewals >= 10,
        "renewed every retry period: {renewals} renewals"
    );

    // The leader crashes (no release): the others wait for the Lease to expire.
    let crashed = Instant::now();
    electors[first] = None;
    let rest: Vec<&LeaderElector> = electors.iter().flatten().collect();
    let new_leader = loop {
        let leading: Vec<&LeaderElector> = rest.iter().copied().filter(|e| e.is_leader()).collect();
        assert!(leading.len() <= 1, "two leaders at once");
        if let Some(&leader) = leading.first() {
            break leader;
        }
        assert!(
            crashed.elapsed() < Duration::from_secs(10),
            "no takeover within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let waited = crashed.elapsed();
    // It can only have observed the last renewal up to one retry period before the crash.
    assert!(
        waited >= LEASE_DURATION - Duration::from_millis(300),
        "took over after {waited:?}, before the lease ({LEASE_DURATION:?}) expired"
    );
    let still = sample(&rest, Duration::from_secs(1)).await.unwrap();
    assert!(
        std::ptr::eq(rest[still], new_leader),
        "the new leader keeps leading"
    );
    let lease = server
        .get(
            "leases.coordination.k8s.io",
            Some(NAMESPACE),
            "imagegate-leader",
        )
        .unwrap();
    assert_ne!(lease["spec"]["holderIdentity"], names[first]);
    assert!(
        lease["spec"]["leaseTransitions"].as_u64() >= Some(1),
        "{lease}"
    );
}

#[tokio::test]
async fn a_stopped_leader_releases_the_lease_and_another_takes_it_at_once() {
    let server = start();
    let cluster = connect(&server).await;
    let a = LeaderElector::start(cluster.client.clone(), options("replica-a")).unwrap();
    let leader = sample(&[&a], Duration::from_secs(3)).await;
    assert_eq!(leader, Some(0));
    let mut a_leading = a.leading();
    let b = LeaderElector::start(cluster.client.clone(), options("replica-b")).unwrap();
    assert_eq!(sample(&[&a, &b], Duration::from_millis(500)).await, Some(0));

    a.stop().await;
    assert!(
        !*a_leading.borrow_and_update(),
        "a stopped elector does not lead"
    );
    assert_eq!(holder(&server), None, "released: no holder");
    let released = Instant::now();
    while !b.is_leader() {
        assert!(
            released.elapsed() < Duration::from_secs(5),
            "b never took over"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(holder(&server).as_deref(), Some("replica-b"));
    let lease = server
        .get(
            "leases.coordination.k8s.io",
            Some(NAMESPACE),
            "imagegate-leader",
        )
        .unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
}

#[test]
fn unsafe_durations_are_refused() {
    let bad = LeaderElectionOptions {
        renew_deadline: LEASE_DURATION,
        ..options("x")
    };
    assert!(bad.validate().is_err());
    assert!(options(" ").validate().is_err());
    assert_eq!(options("x").validate(), Ok(()));
}
