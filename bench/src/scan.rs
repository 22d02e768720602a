//! Scenario 16: a background scan of 10 000 Pods using 1 000 distinct signed images
//! (issue 11): registry requests per distinct image (target ≤ 3), duration, and the peak
//! RSS of the scanning process (target ≤ 128 MiB).
//!
//! The registry, the pushing and the API-server fake (holding the 10 000 Pods) live in
//! the bench process; the scanner runs in a child process (this binary with
//! `--scan-child DIR`: kubeconfig, policy, expected counts) holding nothing else, as
//! `imagegate serve` would: an engine with the default caches, the workload watches,
//! the report writer and the scanner with the default scan options except the rate
//! (unbounded here, so the figure is the scan's own cost; the default 20 requests per
//! second would make it last at least 150 s). The child prints its figures as JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use imagegate_kube::scan::NoObserver;
use imagegate_kube::{
    BackgroundScanner, Cluster, ReportWriter, ReportWriterOptions, ScanInputs, ScanOptions,
    WorkloadWatch,
};
use imagegate_testkit::apiserver::ApiServer;
use serde_json::json;
use tokio::sync::watch;

use crate::fixture::{self, Fixture};
use crate::report::{Met, Row, memory_kib};

/// Pods in the cluster.
const PODS: usize = 10_000;
/// Distinct images they run.
const IMAGES: usize = 1_000;
/// How long the child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the child waits for the workloads' first lists.
const LIST_TIMEOUT: Duration = Duration::from_secs(120);

/// Pushes and signs the images, creates the Pods, runs the scanning child and reports.
pub fn run(push_threads: usize, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let fixture = Fixture::start();
    let started = Instant::now();
    let images = fixture::push_many(&fixture, IMAGES, push_threads)?;
    eprintln!(
        "bench: pushed and signed {IMAGES} images in {:.1} s",
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
    std::fs::copy(
        api.kubeconfig(Some("default")),
        dir.path().join("kubeconfig"),
    )?;

    let before = fixture.requests();
    let result = crate::memory::run_child("--scan-child", dir.path(), CHILD_TIMEOUT)?;
    let requests = fixture.requests() - before;
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
    Ok(())
}

/// The child: one scan of the cluster of `dir/kubeconfig` under `dir/policy.yaml`,
/// waiting until every report is written; prints its figures as JSON.
pub fn child(dir: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let policies = fixture::policy_set(&std::fs::read_to_string(dir.join("policy.yaml"))?)?;
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
        let (_policies, policies) = watch::channel(Arc::new(policies));
        let (_leader, leader) = watch::channel(true);
        let started = Instant::now();
        let scanner = BackgroundScanner::start(
            workloads,
            ScanInputs {
                engine,
                policies,
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
        ensure!(
            scanner.wait_for_scans(1, CHILD_TIMEOUT).await,
            "the scan did not finish"
        );
        let scan_seconds = started.elapsed().as_secs_f64();
        let counters = scanner.counters();
        let queued = counters.reports.load(std::sync::atomic::Ordering::Relaxed);
        // The reports queued are written after the scan's end: wait for the writer.
        let writes = Instant::now();
        while reports
            .counters()
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
            + reports
                .counters()
                .failed
                .load(std::sync::atomic::Ordering::Relaxed)
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
                "resources": counters.resources.load(std::sync::atomic::Ordering::Relaxed),
                "reports": queued,
                "written": reports.counters().written.load(std::sync::atomic::Ordering::Relaxed),
                "list_seconds": list_seconds,
                "scan_seconds": scan_seconds,
            })
        );
        Ok(())
    })
}
