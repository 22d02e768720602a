//! Scenario 6: peak RSS with 10 000 cached verdicts.
//!
//! The registry and the pushing (and the test kit's in-memory copy of the registry's
//! access log) live in the bench process; the engine runs in a child process (this
//! binary with `--rss-child DIR`) holding nothing else, so its `VmHWM` is the engine's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::{StreamExt as _, TryStreamExt as _};
use imagegate_engine::CacheOptions;
use serde_json::{Value, json};

use crate::fixture::{self, Fixture, admit, pod};
use crate::report::{Met, Row, memory_kib};

/// Images per evaluated pod in the child.
const POD_IMAGES: usize = 10;
/// Pods evaluated at once in the child.
const POD_CONCURRENCY: usize = 16;
/// How long the child may run.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

/// Pushes `count` signed images, evaluates them all in a child engine under a policy
/// of `entries` verifyImages entries (`count × entries` verdicts) and reports the
/// child's peak RSS.
pub fn run(
    count: usize,
    entries: usize,
    push_threads: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let fixture = Fixture::start();
    let started = Instant::now();
    let images = fixture::push_many(&fixture, count, push_threads)?;
    let push_time = started.elapsed();
    eprintln!(
        "bench: pushed and signed {count} images in {:.1} s",
        push_time.as_secs_f64()
    );

    let dir = tempfile::Builder::new()
        .prefix("imagegate-bench-rss-")
        .tempdir()?;
    std::fs::write(
        dir.path().join("policy.yaml"),
        fixture::policy_yaml(&fixture.host(), &fixture.key.public_pem(), entries),
    )?;
    std::fs::write(dir.path().join("images"), images.join("\n"))?;

    let before = fixture.requests();
    let result = run_child("--rss-child", dir.path(), CHILD_TIMEOUT)?;
    let requests = fixture.requests() - before;
    let kib = |name: &str| result[name].as_u64().unwrap_or(0);
    let mib = |k: u64| k as f64 / 1024.0;
    let peak = kib("peak_kib");
    let baseline = kib("baseline_kib");
    let verdicts = kib("verdicts");
    rows.push(Row::new(
        "6 peak RSS with 10 000 cached verdicts (engine in a child process)",
        format!(
            "VmHWM {:.1} MiB ({:.1} MiB over the {:.1} MiB before evaluating; VmRSS after {:.1} MiB); {verdicts} verdicts cached = {count} distinct signed images × {entries} verifyImages entries; {requests} registry requests; evaluated in {:.1} s",
            mib(peak),
            mib(peak.saturating_sub(baseline)),
            mib(baseline),
            mib(kib("rss_kib")),
            result["seconds"].as_f64().unwrap_or(0.0),
        ),
        "≤ 64 MiB",
        Met::from(peak <= 64 * 1024 && verdicts >= (count * entries).min(10_000) as u64),
    ));
    Ok(())
}

/// The child: evaluates every image of `dir/images` under `dir/policy.yaml` with one
/// engine (default caches: 1 h, 10 000 verdicts) and prints its memory as JSON.
pub fn child(dir: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let policies = fixture::policy_set(&std::fs::read_to_string(dir.join("policy.yaml"))?)?;
        let images: Vec<String> = std::fs::read_to_string(dir.join("images"))?
            .lines()
            .map(str::to_owned)
            .collect();
        let engine = fixture::engine(fixture::client()?, CacheOptions::default());
        let (baseline, _) = memory_kib();
        let started = Instant::now();
        futures::stream::iter(images.chunks(POD_IMAGES).enumerate())
            .map(|(i, chunk)| {
                let pod = pod(&format!("pod-{i}"), chunk);
                let (engine, policies) = (&engine, &policies);
                async move { admit(engine, policies, &pod, chunk.len()).await.map(drop) }
            })
            .buffer_unordered(POD_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let seconds = started.elapsed().as_secs_f64();
        let verdicts = engine.cached_verdicts().await;
        let (peak, rss) = memory_kib();
        println!(
            "{}",
            json!({
                "baseline_kib": baseline,
                "peak_kib": peak,
                "rss_kib": rss,
                "verdicts": verdicts,
                "seconds": seconds,
            })
        );
        Ok(())
    })
}

/// Runs this bench binary again as `FLAG DIR` (a child whose peak RSS is its own),
/// waits for it at most `timeout` (then kills it), and parses the JSON object it printed
/// on its last line.
pub fn run_child(flag: &str, dir: &Path, timeout: Duration) -> anyhow::Result<Value> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(flag)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting the {flag} process"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the {flag} process took over {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        std::io::Read::read_to_string(&mut out, &mut stdout)?;
    }
    ensure!(status.success(), "the {flag} process failed ({status})");
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .with_context(|| format!("{flag} printed {stdout:?}"))
}
