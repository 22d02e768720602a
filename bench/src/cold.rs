//! Scenarios 2, 3 and 4: cold verification in-process (the engine `imagegate serve`
//! runs), against the loopback registry, counting what the registry served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::ensure;
use imagegate_engine::admission;
use imagegate_engine::{CacheOptions, Phase};

use crate::fixture::{self, Fixture, admit, pod};
use crate::report::{Met, Row, Samples, ms, own_cpu_seconds};

/// What later scenarios compare against.
#[derive(Debug, Clone, Default)]
pub struct ColdSingle {
    /// Fresh engine, shared (warm) registry connections.
    pub warm_connections: Samples,
    /// Fresh engine and fresh registry client (new connections) per verification.
    #[cfg_attr(not(feature = "peer"), allow(dead_code))] // read by scenario 5 only
    pub fresh_client: Samples,
    /// Registry requests of one verification.
    pub requests: usize,
}

/// Images the cold scenarios use: one, ten, five.
pub struct Images {
    pub single: String,
    pub ten: Vec<String>,
    pub five: Vec<String>,
}

/// Pushes and signs the images of scenarios 2–5.
pub fn push(fixture: &Fixture) -> Images {
    Images {
        single: fixture.push_signed("bench/single", "v1"),
        ten: (0..10)
            .map(|i| fixture.push_signed(&format!("bench/ten-{i}"), "v1"))
            .collect(),
        five: (0..5)
            .map(|i| fixture.push_signed(&format!("bench/five-{i}"), "v1"))
            .collect(),
    }
}

/// Scenario 2: one tagged image, a fresh engine per iteration (empty verdict and
/// digest caches), so every iteration resolves the tag and fetches and verifies the
/// signature.
pub async fn single(
    fixture: &Fixture,
    images: &Images,
    iterations: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<ColdSingle> {
    let policies = fixture.policies()?;
    let pod = pod("single", std::slice::from_ref(&images.single));
    let client = fixture::client()?;
    // Warm the connection pool (and the registry's own caches) once.
    for _ in 0..3 {
        let engine = fixture::engine(client.clone(), CacheOptions::default());
        admit(&engine, &policies, &pod, 1).await?;
    }

    let before = fixture.requests();
    let engine = fixture::engine(client.clone(), CacheOptions::default());
    admit(&engine, &policies, &pod, 1).await?;
    let requests = fixture.requests() - before;
    eprintln!(
        "bench: imagegate's registry requests for one cold verification:\n  {}",
        fixture.requests_since(before).join("\n  ")
    );

    let mut warm_connections = Samples::default();
    let cpu = Cpu::start(fixture);
    for _ in 0..iterations {
        let engine = fixture::engine(client.clone(), CacheOptions::default());
        let started = Instant::now();
        admit(&engine, &policies, &pod, 1).await?;
        warm_connections.push(started.elapsed());
    }
    let cpu = cpu.per_iteration(fixture, iterations);

    let before = fixture.requests();
    let mut fresh_client = Samples::default();
    for _ in 0..iterations {
        let engine = fixture::engine(fixture::client()?, CacheOptions::default());
        let started = Instant::now();
        admit(&engine, &policies, &pod, 1).await?;
        fresh_client.push(started.elapsed());
    }
    let fresh_requests = (fixture.requests() - before) as f64 / iterations as f64;

    let median = warm_connections.median();
    rows.push(Row::new(
        "2 cold verify, 1 tagged image (fresh engine, warm connections)",
        format!(
            "{}; {requests} registry requests; {cpu}",
            warm_connections.summary()
        ),
        "≤ 5 ms, 3 requests",
        Met::from(median <= Duration::from_millis(5) && requests <= 3),
    ));
    rows.push(Row::new(
        "2b cold verify, 1 tagged image (fresh engine and registry client: new connections)",
        format!(
            "{}; {fresh_requests:.1} registry requests",
            fresh_client.summary()
        ),
        "≤ 5 ms, 3 requests",
        Met::from(fresh_client.median() <= Duration::from_millis(5) && fresh_requests <= 3.0),
    ));
    Ok(ColdSingle {
        warm_connections,
        fresh_client,
        requests,
    })
}

/// Scenario 3: a pod of ten distinct images, cold, against the single image.
pub async fn ten(
    fixture: &Fixture,
    images: &Images,
    single: &ColdSingle,
    iterations: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let policies = fixture.policies()?;
    let pod = pod("ten", &images.ten);
    let client = fixture::client()?;
    for _ in 0..3 {
        let engine = fixture::engine(client.clone(), CacheOptions::default());
        admit(&engine, &policies, &pod, 10).await?;
    }
    let before = fixture.requests();
    let mut samples = Samples::default();
    let cpu = Cpu::start(fixture);
    for _ in 0..iterations {
        let engine = fixture::engine(client.clone(), CacheOptions::default());
        let started = Instant::now();
        admit(&engine, &policies, &pod, 10).await?;
        samples.push(started.elapsed());
    }
    let cpu = cpu.per_iteration(fixture, iterations);
    let requests = (fixture.requests() - before) as f64 / iterations as f64;
    let ratio = samples.median().as_secs_f64() / single.warm_connections.median().as_secs_f64();
    rows.push(Row::new(
        "3 cold pod of 10 distinct images (fresh engine, warm connections)",
        format!(
            "{}; {ratio:.2}× the single image; {requests:.0} registry requests; {cpu}",
            samples.summary()
        ),
        "≤ 1.5× single image",
        Met::from(ratio <= 1.5),
    ));
    Ok(())
}

/// Scenario 4: 500 concurrent reviews of pods that all run the same 5 images, on one
/// cold engine: single-flight must make the registry work that of 5 images.
pub async fn concurrent(
    fixture: &Fixture,
    images: &Images,
    single: &ColdSingle,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    const REVIEWS: usize = 500;
    let policies = Arc::new(fixture.policies()?);
    let engine = Arc::new(fixture::engine(fixture::client()?, CacheOptions::default()));
    let reviews: Vec<_> = (0..REVIEWS)
        .map(|i| fixture::review(&format!("uid-{i}"), &pod(&format!("pod-{i}"), &images.five)))
        .collect::<anyhow::Result<_>>()?;
    let before = fixture.requests();
    let started = Instant::now();
    let tasks: Vec<_> = reviews
        .into_iter()
        .map(|review| {
            let engine = Arc::clone(&engine);
            let policies = Arc::clone(&policies);
            tokio::spawn(async move {
                let started = Instant::now();
                let answer = admission::review(&engine, &policies, &review, Phase::Mutate).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    let mut latencies = Samples::default();
    for task in tasks {
        let (answer, took) = task.await?;
        let response = answer.review.response.unwrap_or_default();
        ensure!(
            response.allowed && response.patch.is_some(),
            "a concurrent review was not admitted with a patch: {response:?}"
        );
        latencies.push(took);
    }
    let wall = started.elapsed();
    let requests = fixture.requests() - before;
    let limit = 5 * single.requests;
    if requests > limit {
        eprintln!(
            "bench: scenario 4 registry requests:\n  {}",
            fixture.requests_since(before).join("\n  ")
        );
    }
    rows.push(Row::new(
        "4 500 concurrent reviews, pods sharing 5 images, cold",
        format!(
            "{requests} registry requests (5 × {} = {limit}); all answered in {}; per review {}",
            single.requests,
            ms(wall),
            latencies.summary()
        ),
        "≤ 5 × requests of one image",
        Met::from(requests <= limit),
    ));
    Ok(())
}

/// CPU used by the bench process (the engine) and by the registry over a loop.
struct Cpu {
    own: f64,
    registry: f64,
}

impl Cpu {
    fn start(fixture: &Fixture) -> Cpu {
        Cpu {
            own: own_cpu_seconds(),
            registry: fixture.registry_cpu_seconds(),
        }
    }

    /// `CPU per iteration: imagegate X ms, registry Y ms`.
    fn per_iteration(self, fixture: &Fixture, iterations: usize) -> String {
        let n = iterations.max(1) as f64;
        format!(
            "CPU per iteration: bench process (engine) {:.2} ms, docker-registry {:.2} ms",
            (own_cpu_seconds() - self.own) * 1e3 / n,
            (fixture.registry_cpu_seconds() - self.registry) * 1e3 / n
        )
    }
}

/// Scenario 3b: scenario 2 and 3 again through a proxy adding `rtt` per exchange, as
/// a registry that is not on the same two cores: the loopback registry's own CPU no
/// longer dominates, so the ratio shows whether the engine's work is concurrent.
pub async fn remote(
    fixture: &Fixture,
    rtt: Duration,
    iterations: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let proxy = fixture::delay_proxy(&fixture.host(), rtt / 2).await?;
    let ms = rtt.as_millis();
    let single = fixture.push_signed_as(&format!("bench/remote{ms}-single"), "v1", &proxy);
    let ten: Vec<String> = (0..10)
        .map(|i| fixture.push_signed_as(&format!("bench/remote{ms}-ten-{i}"), "v1", &proxy))
        .collect();
    let policies =
        fixture::policy_set(&fixture::policy_yaml(&proxy, &fixture.key.public_pem(), 1))?;
    let client = fixture::client()?;
    let mut medians = Vec::new();
    for (name, images) in [("single", vec![single]), ("ten", ten)] {
        let pod = pod(name, &images);
        for _ in 0..3 {
            let engine = fixture::engine(client.clone(), CacheOptions::default());
            admit(&engine, &policies, &pod, images.len()).await?;
        }
        let mut samples = Samples::default();
        for _ in 0..iterations {
            let engine = fixture::engine(client.clone(), CacheOptions::default());
            let started = Instant::now();
            admit(&engine, &policies, &pod, images.len()).await?;
            samples.push(started.elapsed());
        }
        medians.push(samples);
    }
    let ratio = medians[1].median().as_secs_f64() / medians[0].median().as_secs_f64();
    rows.push(Row::new(
        &format!(
            "3b as 2 and 3 through a proxy adding {} ms per round trip (a registry off this machine)",
            rtt.as_millis()
        ),
        format!(
            "1 image {}; 10 images {}; {ratio:.2}×",
            medians[0].summary(),
            medians[1].summary()
        ),
        "≤ 1.5× single image",
        Met::from(ratio <= 1.5),
    ));
    Ok(())
}
