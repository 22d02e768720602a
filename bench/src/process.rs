//! Scenario 12: a whole cold process, as a user or a CI job runs it — `imagegate verify
//! --key K IMAGE` against the peer doing the same verification in its own process
//! (`bench --peer-verify IMAGE K`, sigstore-rs as in scenario 5). Both start from
//! nothing (process start, runtime, TLS set-up, new connections, no caches) and are run
//! alternately on the same loopback registry, so machine load hits both alike.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use crate::fixture::Fixture;
use crate::report::{Met, Row, Samples};

/// Target of issue 9 item 6: a whole `imagegate verify` ≤ 0.3× the peer's process.
const TARGET_RATIO: f64 = 0.3;
/// A run of either tool taking longer than this fails the bench (it would be a hang).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `command` to its end within [`RUN_TIMEOUT`]; how long it took. Fails unless it
/// exits 0 (both tools exit non-zero when the signature does not verify).
fn timed(command: &mut Command, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    loop {
        if let Some(status) = child.try_wait()? {
            let took = started.elapsed();
            ensure!(status.success(), "{what} failed ({status})");
            return Ok(took);
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{what} took over {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Alternates `iterations` runs of each tool on `image`.
pub fn run(
    fixture: &Fixture,
    image: &str,
    imagegate: &Path,
    iterations: usize,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let key = fixture.key.write_public_pem(dir.path(), "cosign.pub");
    let bench = std::env::current_exe()?;
    let mut ours = Command::new(imagegate);
    ours.arg("verify").arg("--key").arg(&key).arg(image);
    let mut peer = Command::new(&bench);
    peer.arg("--peer-verify").arg(image).arg(&key);
    // One untimed run each: page cache, registry warm-up.
    timed(&mut ours, "imagegate verify")?;
    timed(&mut peer, "bench --peer-verify")?;
    let before = fixture.requests();
    timed(&mut ours, "imagegate verify")?;
    let requests = fixture.requests() - before;
    let (mut imagegate_runs, mut peer_runs) = (Samples::default(), Samples::default());
    for _ in 0..iterations {
        imagegate_runs.push(timed(&mut ours, "imagegate verify")?);
        peer_runs.push(timed(&mut peer, "bench --peer-verify")?);
    }
    let ratio = imagegate_runs.median().as_secs_f64() / peer_runs.median().as_secs_f64();
    rows.push(Row::new(
        "12 whole cold process: `imagegate verify --key` vs the same verification by sigstore-rs in its own process, alternating",
        format!(
            "imagegate {}; {requests} registry requests; sigstore-rs {}; ratio of medians **{ratio:.2}**",
            imagegate_runs.summary(),
            peer_runs.summary()
        ),
        "imagegate ≤ 0.3× sigstore-rs",
        Met::from(ratio <= TARGET_RATIO),
    ));
    Ok(())
}
