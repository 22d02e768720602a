//! The benchmarks of issue 4 ("Speed"), against a real `docker-registry` on loopback.
//!
//! ```text
//! cargo build --release -p imagegate                      # for scenario 1
//! cargo run --release --manifest-path bench/Cargo.toml [-- OPTIONS]
//!   --only 1,2,…      run these scenarios (default: all, 1–16)
//!   --iterations N    timed iterations of scenarios 2, 3, 5, 15 (default 50)
//!   --duration S      seconds of load per scenario-1 run (default 10)
//!   --rss-images N    distinct images of scenario 6 (default 1000) …
//!   --rss-entries M   … under M verifyImages entries (default 10): N × M verdicts
//!   --imagegate PATH  the `imagegate` binary (default ../target/release/imagegate,
//!                     or $IMAGEGATE_BIN)
//! ```
//!
//! Scenarios: 1 `/mutate` over TLS, warm cache (the real `imagegate serve` under
//! `wrk`); 2 cold verification of one tagged image; 3 a pod of ten images, cold; 4 500
//! concurrent reviews sharing five images (single-flight); 5 the same cold verification
//! by sigstore-rs; 6 peak RSS with 10 000 cached verdicts. Everything listens on
//! 127.0.0.1, every loop is bounded, and every process started is stopped. 7–11 are
//! the attacks of issue 8 on the real binary (see `attacks.rs`): time to answer and
//! peak RSS. 12 a whole cold `imagegate verify` process against sigstore-rs in its own
//! process (feature `peer`). 13 the same verification as an ImageValidatingPolicy and
//! as a ClusterPolicy: warm `/mutate` throughput in-process and cold registry requests.
//! 14 `imagegate serve` in cluster mode with 10 000 namespaces, 1 000 Secrets and 500
//! policies at the test kit's API-server fake: RSS, steady-state requests, change → enforced.
//! 15 cold Notation verification (`type: Notary`): registry requests and latency without
//! and with the referrers API.
//! 16 a background scan of 10 000 Pods over 1 000 distinct images (API-server fake):
//! registry requests per image, duration, peak RSS of the scanning process, and the p99
//! of cold admission reviews during the scan against without it.

mod attacks;
mod cluster;
mod cold;
mod fixture;
mod ivp;
mod memory;
mod notation;
#[cfg(feature = "peer")]
mod peer;
#[cfg(feature = "peer")]
mod process;
mod report;
mod scan;
mod webhook;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};

use crate::report::Row;

struct Options {
    only: BTreeSet<u32>,
    iterations: usize,
    duration: Duration,
    rss_images: usize,
    rss_entries: usize,
    imagegate: PathBuf,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut options = Options {
        only: (1..=16).collect(),
        iterations: 50,
        duration: Duration::from_secs(10),
        rss_images: 1_000,
        rss_entries: 10,
        imagegate: std::env::var_os("IMAGEGATE_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/imagegate"),
            PathBuf::from,
        ),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--only" => {
                options.only = value()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse()
                            .with_context(|| format!("bad scenario {s:?}"))
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--iterations" => options.iterations = value()?.parse::<usize>()?.clamp(1, 10_000),
            "--duration" => {
                options.duration = Duration::from_secs(value()?.parse::<u64>()?.clamp(1, 120));
            }
            "--rss-images" => options.rss_images = value()?.parse::<usize>()?.clamp(1, 100_000),
            "--rss-entries" => options.rss_entries = value()?.parse::<usize>()?.clamp(1, 1_000),
            "--imagegate" => options.imagegate = PathBuf::from(value()?),
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("main.rs")
                        .lines()
                        .skip(3)
                        .take(10)
                        .map(|l| l.trim_start_matches("//! "))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    // As the product: one crypto provider for every TLS connection. (sigstore-rs
    // brings `ring` into this crate's graph, so rustls cannot pick one by itself.)
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some("--rss-child") {
        let dir = args.next().context("--rss-child needs a directory")?;
        return memory::child(std::path::Path::new(&dir));
    }
    if std::env::args().nth(1).as_deref() == Some("--scan-child") {
        let dir = std::env::args()
            .nth(2)
            .context("--scan-child needs a directory")?;
        return scan::child(std::path::Path::new(&dir));
    }
    #[cfg(feature = "peer")]
    if let Some(flag @ "--peer-verify") = std::env::args().nth(1).as_deref() {
        let (image, key) = (args.next(), args.next());
        let (image, key) = image
            .zip(key)
            .with_context(|| format!("{flag} IMAGE KEY"))?;
        return peer::child(&image, std::path::Path::new(&key));
    }
    let options = parse_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows: Vec<Row> = Vec::new();
    let result = runtime.block_on(run(&options, &mut rows));
    println!("\n{}", report::table(&rows));
    result
}

async fn run(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let only = &options.only;
    println!(
        "imagegate bench: {} cores, {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model()
    );
    if only.iter().any(|s| (2..=5).contains(s) || *s == 12) {
        let fixture = fixture::Fixture::start();
        let images = cold::push(&fixture);
        eprintln!("bench: scenario 2 (cold, one image)");
        let single = cold::single(&fixture, &images, options.iterations, rows).await?;
        if only.contains(&3) {
            eprintln!("bench: scenario 3 (cold, ten images)");
            cold::ten(&fixture, &images, &single, options.iterations, rows).await?;
            for rtt in [5, 20] {
                let iterations = options.iterations.min(20);
                cold::remote(&fixture, Duration::from_millis(rtt), iterations, rows).await?;
            }
        }
        if only.contains(&4) {
            eprintln!("bench: scenario 4 (500 concurrent reviews)");
            cold::concurrent(&fixture, &images, &single, rows).await?;
        }
        #[cfg(feature = "peer")]
        if only.contains(&5) {
            eprintln!("bench: scenario 5 (sigstore-rs)");
            peer::run(&fixture, &images.single, &single, options.iterations, rows).await?;
        }
        #[cfg(feature = "peer")]
        if only.contains(&12) {
            eprintln!("bench: scenario 12 (whole cold processes)");
            let (image, bin) = (&images.single, &options.imagegate);
            tokio::task::block_in_place(|| {
                process::run(&fixture, image, bin, options.iterations, rows)
            })?;
        }
    }
    if only.contains(&6) {
        let (count, entries) = (options.rss_images, options.rss_entries);
        eprintln!("bench: scenario 6 (peak RSS, {count} images × {entries} entries)");
        let rows_out = tokio::task::block_in_place(|| {
            let mut out = Vec::new();
            memory::run(count, entries, 8, &mut out).map(|()| out)
        })?;
        rows.extend(rows_out);
    }
    if only.contains(&1) {
        eprintln!("bench: scenario 1 (/mutate over TLS, warm cache)");
        webhook::run(options, rows).await?;
    }
    if only.contains(&13) {
        eprintln!("bench: scenario 13 (ImageValidatingPolicy vs ClusterPolicy)");
        ivp::run(options, rows).await?;
    }
    if only.contains(&15) {
        eprintln!("bench: scenario 15 (cold Notation verification)");
        notation::run(options, rows).await?;
    }
    if only.contains(&16) {
        eprintln!("bench: scenario 16 (background scan, 10 000 Pods, 1 000 images)");
        let rows_out = tokio::task::block_in_place(|| {
            let mut out = Vec::new();
            scan::run(8, &mut out).map(|()| out)
        })?;
        rows.extend(rows_out);
    }
    if only.iter().any(|s| (7..=11).contains(s)) {
        attacks::run(options, rows).await?;
    }
    if only.contains(&14) {
        eprintln!("bench: scenario 14 (cluster mode at scale)");
        cluster::run(options, rows).await?;
    }
    Ok(())
}

/// The CPU model of /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or_else(|| "unknown CPU".to_owned(), |m| m.trim().to_owned())
}
