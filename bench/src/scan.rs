//! Scenario 16: a background scan of 10 000 Pods using 1 000 distinct signed images
//! (issue 11): registry requests per distinct image (target ≤ 3), duration, the peak
//! RSS of the scanning process (target ≤ 128 MiB), and the p99 latency of admission
//! reviews during the scan against without it (target: at most 10 % more).
//!
//! The registry, the pushing and the API-server fake (holding the 10 000 Pods) live in
//! the bench process; the scanner runs in a child process (this binary with
//! `--scan-child DIR`: kubeconfig, policy, expected counts) holding nothing else, as
//! `imagegate serve` would: an engine with the default caches, the workload watches,
//! the report writer and the scanner with the default scan options except the rate
//! (unbounded here, so the figure is the scan's own cost; the default 20 requests per
//! second would make it last at least 150 s). The child prints its figures as JSON.
//!
//! Admission latency: the child also answers a stream of admission reviews (the serve
//! path, `admission::review`, mutate phase) through the engine and registry client the
//! scanner shares, one Pod per review with an image of its own that the scan does not
//! cover (pushed for it in other repositories), so each review is cold and reaches the
//! registry: first without the scan, then while it runs. Only reviews that ended before
//! the scan did count as during it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use imagegate_engine::admission;
use imagegate_engine::{Engine, Phase, PolicySet, RuleStatus};
use imagegate_kube::scan::NoObserver;
use imagegate_kube::{
    BackgroundScanner, Cluster, ReportWriter, ReportWriterOptions, ScanInputs, ScanOptions,
    WorkloadWatch,
};
use imagegate_testkit::apiserver::ApiServer;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::fixture::{self, Fixture};
use crate::report::{Met, Row, Samples, memory_kib, ms};

/// Pods in the cluster.
const PODS: usize = 10_000;
/// Distinct images they run.
const IMAGES: usize = 1_000;
/// How long the child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the child waits for the workloads' first lists.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);
/// Admission reviews timed without the scan, and at most during it.
const REVIEWS: usize = 500;
/// Reviews that first open the registry connections, not timed.
const WARM_UP: usize = 10;
/// One review starts every this long (one at a time: a late one delays the next).
const REVIEW_EVERY: Duration = Duration::from_millis(5);
/// Repositories of the reviews' images (`bench/admit-N`), apart from the scan's.
const REVIEW_REPOS: &str = "bench/admit";
/// The most admission p99 may grow during a scan (the target: 10 %).
const P99_RATIO: f64 = 1.10;

/// Pushes and signs the images, creates the Pods, runs the scanning child and reports.
pub fn run(push_threads: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let fixture = Fixture::start();
    let started = Instant::now();
    let images = fixture::push_many(&fixture, IMAGES, push_threads)?;
    let reviewed =
        fixture::push_many_in(&fixture, REVIEW_REPOS, WARM_UP + 2 * REVIEWS, push_threads)?;
    eprintln!(
        "bench: pushed and signed {} images in {:.1} s",
        IMAGES + reviewed.len(),
        started.elapsed().as_secs_f64()
    );
    let api = ApiServer::start();
    for i in 0..PODS {
        let image = &images[i % IMAGES];
        api.create(
            "pods",
            Some("default"),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": format!("pod-{i}"), "namespace": "default",
                                "labels": {"app": format!("app-{}", i % IMAGES)}},
                   "spec": {"containers": [{"name": "app", "image": image,
                                            "resources": {"requests": {"cpu": "10m"}}}]}}),
        )
        .map_err(|e| anyhow::anyhow!("creating pod-{i}: {e:?}"))?;
    }

    let dir = tempfile::Builder::new()
        .prefix("imagegate-bench-scan-")
        .tempdir()?;
    let mut policy = fixture::policy_yaml(&fixture.host(), &fixture.key.public_pem(), 1);
    // Audit and background: what a scan applies (the fixture's policy is Enforce-only
    // at admission). An Audit rule must not mutate digests (Kyverno's rule, enforced by
    // the loader).
    policy = policy
        .replace("background: false", "background: true")
        .replace(
            "validationFailureAction: Enforce",
            "validationFailureAction: Audit",
        )
        .replace(
            "          attestors:",
            "          mutateDigest: false\n          attestors:",
        );
    std::fs::write(dir.path().join("policy.yaml"), policy)?;
    std::fs::write(
        dir.path().join("reviews.json"),
        serde_json::to_vec(&reviewed)?,
    )?;
    std::fs::copy(
        api.kubeconfig(Some("default")),
        dir.path().join("kubeconfig"),
    )?;

    let before = fixture.requests();
    let result = crate::memory::run_child("--scan-child", dir.path(), CHILD_TIMEOUT)?;
    // The scan's requests only: the reviews' images live in repositories of their own.
    let review_path = format!("/v2/{REVIEW_REPOS}-");
    let (review_requests, requests) = fixture.registry.requests().into_iter().skip(before).fold(
        (0usize, 0usize),
        |(reviews, scan), r| {
            if r.path.starts_with(&review_path) {
                (reviews + 1, scan)
            } else {
                (reviews, scan + 1)
            }
        },
    );
    let number = |name: &str| result[name].as_u64().unwrap_or(0);
    let mib = |k: u64| k as f64 / 1024.0;
    let per_image = requests as f64 / IMAGES as f64;
    let (scanned, reports) = (number("resources"), number("reports"));
    let peak = number("peak_kib");
    rows.push(Row::new(
        "16 background scan: 10 000 Pods, 1 000 distinct signed images (scanner in a child process)",
        format!(
            "{requests} registry requests = {per_image:.2} per distinct image; {scanned} Pods scanned, {reports} reports queued in {:.1} s (first lists {:.1} s); VmHWM {:.1} MiB ({:.1} MiB before the scan)",
            result["scan_seconds"].as_f64().unwrap_or(0.0),
            result["list_seconds"].as_f64().unwrap_or(0.0),
            mib(peak),
            mib(number("baseline_kib")),
        ),
        "≤ 3 requests per image, ≤ 128 MiB",
        Met::from(
            per_image <= 3.0
                && peak <= 128 * 1024
                && scanned == PODS as u64
                && reports == PODS as u64,
        ),
    ));
    let latency = |phase: &str, field: &str| result[phase][field].as_f64().unwrap_or(0.0);
    let count = |phase: &str| result[phase]["n"].as_u64().unwrap_or(0);
    let (without, during) = (
        latency("admission_without", "p99_ms"),
        latency("admission_during", "p99_ms"),
    );
    let ratio = if without > 0.0 { during / without } else { 0.0 };
    let reviews = count("admission_without") + count("admission_during");
    rows.push(Row::new(
        "16b admission p99 during the scan vs without (cold reviews, images the scan does not cover, one every 5 ms, same engine and registry client)",
        format!(
            "without: p50 {:.3} ms, p99 {without:.3} ms (n={}); during: p50 {:.3} ms, p99 {during:.3} ms (n={}); p99 ratio {ratio:.2}; {:.1} registry requests per review",
            latency("admission_without", "p50_ms"),
            count("admission_without"),
            latency("admission_during", "p50_ms"),
            count("admission_during"),
            review_requests as f64 / (reviews as usize + WARM_UP).max(1) as f64,
        ),
        "p99 during ≤ 1.10 × without",
        Met::from(count("admission_during") > 0 && ratio > 0.0 && ratio <= P99_RATIO),
    ));
    Ok(())
}

/// Answers one cold review per image of `images`, one every [`REVIEW_EVERY`], while
/// `go` says so; each must be admitted with its signature verified. The latencies of the reviews
/// `count` accepts when they end.
async fn review_stream(
    engine: &Engine,
    policies: &PolicySet,
    images: &[String],
    go: impl Fn() -> bool,
    count: impl Fn() -> bool,
) -> anyhow::Result<Samples> {
    let mut samples = Samples::default();
    let mut every = tokio::time::interval(REVIEW_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for (i, image) in images.iter().enumerate() {
        if !go() {
            break;
        }
        every.tick().await;
        let pod = fixture::pod(&format!("admitted-{i}"), std::slice::from_ref(image));
        let review = fixture::review(&format!("review-{i}"), &pod)?;
        let started = Instant::now();
        let answer = admission::review(engine, policies, &review, Phase::Mutate).await;
        let took = started.elapsed();
        // Audit: admitted either way; a passing rule says the signature was verified.
        let verified = answer.evaluated.as_ref().is_some_and(|evaluated| {
            evaluated
                .policies
                .iter()
                .flat_map(|p| &p.rules)
                .any(|r| r.status == RuleStatus::Pass)
        });
        let response = answer.review.response.unwrap_or_default();
        ensure!(
            response.allowed && verified,
            "a review of {image} was not admitted with a verified signature: {response:?}"
        );
        if count() {
            samples.push(took);
        }
    }
    Ok(samples)
}

/// `{p50_ms, p99_ms, n}` of `samples`.
fn latencies(samples: &Samples) -> Value {
    let millis = |d: Duration| d.as_secs_f64() * 1e3;
    json!({
        "p50_ms": millis(samples.median()),
        "p99_ms": millis(samples.quantile(0.99)),
        "n": samples.count(),
    })
}

/// The child: one scan of the cluster of `dir/kubeconfig` under `dir/policy.yaml`,
/// waiting until every report is written; prints its figures as JSON.
pub fn child(dir: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let policies = fixture::policy_set(&std::fs::read_to_string(dir.join("policy.yaml"))?)?;
        let reviewed: Vec<String> =
            serde_json::from_slice(&std::fs::read(dir.join("reviews.json"))?)?;
        ensure!(
            reviewed.len() >= WARM_UP + 2 * REVIEWS,
            "reviews.json holds {} images",
            reviewed.len()
        );
        let (warm_up, rest) = reviewed.split_at(WARM_UP);
        let (alone, during_scan) = rest.split_at(REVIEWS);
        let engine = fixture::engine(
            fixture::client()?,
            imagegate_engine::CacheOptions::default(),
        );
        let cluster = Cluster::connect(Some(&dir.join("kubeconfig"))).await?;
        let (baseline, _) = memory_kib();
        let listing = Instant::now();
        let workloads = Arc::new(WorkloadWatch::start(cluster.client.clone()));
        tokio::time::timeout(LIST_TIMEOUT, workloads.ready())
            .await
            .context("the workloads' first lists")?;
        let list_seconds = listing.elapsed().as_secs_f64();
        let reports = Arc::new(ReportWriter::start(
            cluster.client.clone(),
            ReportWriterOptions {
                // The fake answers in microseconds: the API server's default pace
                // would measure the writer's rate limit, not the scan.
                min_interval: Duration::from_micros(100),
                ..ReportWriterOptions::default()
            },
        ));
        // Admission without the scan (the watches idle), after opening the connections.
        review_stream(&engine, &policies, warm_up, || true, || false).await?;
        let without = review_stream(&engine, &policies, alone, || true, || true).await?;
        eprintln!(
            "bench: admission without the scan: p50 {}, p99 {} (n={})",
            ms(without.median()),
            ms(without.quantile(0.99)),
            without.count()
        );
        let policies = Arc::new(policies);
        let (_policies, scan_policies) = watch::channel(Arc::clone(&policies));
        let (_leader, leader) = watch::channel(true);
        let started = Instant::now();
        let scanner = BackgroundScanner::start(
            workloads,
            ScanInputs {
                engine: engine.clone(),
                policies: scan_policies,
                leader,
                reports: Arc::clone(&reports),
                observer: Arc::new(NoObserver),
            },
            ScanOptions {
                interval: Duration::from_secs(24 * 3600),
                rate: 0,
                ..ScanOptions::default()
            },
        );
        // Admission during the scan: until it ends (or the images run out).
        let scanning = || scanner.counters().completed.load(Ordering::Relaxed) == 0;
        let during = review_stream(&engine, &policies, during_scan, scanning, scanning).await?;
        eprintln!(
            "bench: admission during the scan: p50 {}, p99 {} (n={})",
            ms(during.median()),
            ms(during.quantile(0.99)),
            during.count()
        );
        ensure!(
            scanner.wait_for_scans(1, CHILD_TIMEOUT).await,
            "the scan did not finish"
        );
        let scan_seconds = started.elapsed().as_secs_f64();
        let counters = scanner.counters();
        let queued = counters.reports.load(Ordering::Relaxed);
        // The reports queued are written after the scan's end: wait for the writer.
        let writes = Instant::now();
        while reports.counters().written.load(Ordering::Relaxed)
            + reports.counters().failed.load(Ordering::Relaxed)
            < queued
        {
            ensure!(writes.elapsed() < LIST_TIMEOUT, "reports not written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (peak, rss) = memory_kib();
        println!(
            "{}",
            json!({
                "baseline_kib": baseline,
                "peak_kib": peak,
                "rss_kib": rss,
                "resources": counters.resources.load(Ordering::Relaxed),
                "reports": queued,
                "written": reports.counters().written.load(Ordering::Relaxed),
                "list_seconds": list_seconds,
                "scan_seconds": scan_seconds,
                "admission_without": latencies(&without),
                "admission_during": latencies(&during),
            })
        );
        Ok(())
    })
}
