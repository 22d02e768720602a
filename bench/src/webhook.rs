//! Scenario 1: warm-cache throughput and latency of `POST /mutate` over TLS with
//! keep-alive, on the real `imagegate serve` binary driven by `wrk` — both on the
//! same two cores — plus the same review path in-process (no HTTP, TLS or logging) to
//! show where the time goes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use imagegate_engine::admission::{self, AdmissionReview};
use imagegate_engine::{CacheOptions, Phase};

use crate::Options;
use crate::fixture::{self, Fixture, pod};
use crate::report::{Met, Row, Samples, ms};

/// How long `imagegate serve` may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `imagegate serve`, killed when dropped.
pub struct Server {
    child: Child,
    port: u16,
    metrics_port: u16,
    ca: Vec<u8>,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `imagegate serve` with `policy` on free loopback ports and a self-signed
    /// certificate (its CA bundle written into `dir`), logging at `log_level`
    /// (`None`: the default, `info`, one JSON line per review).
    pub async fn start(
        binary: &Path,
        dir: &Path,
        policy: &Path,
        log_level: Option<&str>,
    ) -> anyhow::Result<Server> {
        let args = [std::ffi::OsStr::new("--policies"), policy.as_os_str()];
        Server::start_with(binary, dir, &args, log_level).await
    }

    /// [`Server::start`] with `args` instead of `--policies POLICY` (e.g.
    /// `--kubeconfig F` for cluster mode), ready once `/readyz` answers.
    pub async fn start_with(
        binary: &Path,
        dir: &Path,
        args: &[&std::ffi::OsStr],
        log_level: Option<&str>,
    ) -> anyhow::Result<Server> {
        let port = free_port()?;
        let metrics_port = free_port()?;
        let ca_path = dir.join("ca.pem");
        let _ = std::fs::remove_file(&ca_path);
        let log = dir.join(format!("serve-{}.log", log_level.unwrap_or("default")));
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{metrics_port}"))
            .arg("--ca-bundle-out")
            .arg(&ca_path)
            .stdin(Stdio::null());
        let file = std::fs::File::create(&log)?;
        command.stdout(file.try_clone()?).stderr(file);
        command.env_remove("IMAGEGATE_LOG");
        if let Some(level) = log_level {
            command.env("IMAGEGATE_LOG", level);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Server {
            child,
            port,
            metrics_port,
            ca: Vec::new(),
            log,
        };
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "imagegate serve exited ({status}): {}",
                    std::fs::read_to_string(&server.log).unwrap_or_default()
                );
            }
            let ready = probe
                .get(format!("http://127.0.0.1:{metrics_port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "imagegate serve was not ready within {READY_TIMEOUT:?}: {}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The CA bundle, found where its start-up log (info) says it wrote it.
        let text = std::fs::read_to_string(&server.log).unwrap_or_default();
        ensure!(
            log_level.is_some() || text.contains(&*ca_path.to_string_lossy()),
            "imagegate serve did not announce its CA bundle {}: {text}",
            ca_path.display()
        );
        server.ca = std::fs::read(&ca_path)?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/mutate", self.port)
    }

    /// A client trusting only the server's CA bundle.
    pub fn client(&self, timeout: Duration) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&self.ca)?])
            .timeout(timeout)
            .build()?)
    }

    /// The server's peak resident set so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    /// The text of `/metrics`.
    pub async fn metrics_text(&self) -> anyhow::Result<String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(client
            .get(format!("http://127.0.0.1:{}/metrics", self.metrics_port))
            .send()
            .await?
            .text()
            .await?)
    }

    /// User + system CPU seconds the server has used.
    fn cpu_seconds(&self) -> f64 {
        crate::report::cpu_seconds(Path::new(&format!("/proc/{}/stat", self.child.id())))
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What `wrk` reported.
#[derive(Debug, Default)]
struct WrkResult {
    requests_per_second: f64,
    p50: Duration,
    p99: Duration,
    requests: u64,
    errors: u64,
}

fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| text.split_at(i))?;
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "us" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

fn parse_wrk(output: &str) -> anyhow::Result<WrkResult> {
    let mut result = WrkResult::default();
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", value] => result.p50 = parse_duration(value).unwrap_or_default(),
            ["99%", value] => result.p99 = parse_duration(value).unwrap_or_default(),
            ["Requests/sec:", value] => result.requests_per_second = value.parse()?,
            [count, "requests", "in", ..] => result.requests = count.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                result.errors += count.parse::<u64>()?
            }
            ["Socket", "errors:", ..] => {
                result.errors += line
                    .split(|c: char| !c.is_ascii_digit())
                    .filter_map(|n| n.parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    ensure!(
        result.requests_per_second > 0.0 && result.p99 > Duration::ZERO,
        "cannot read wrk's output:\n{output}"
    );
    Ok(result)
}

/// Runs `wrk` with `threads` and `connections` for `duration` against `url`.
fn wrk(
    script: &Path,
    url: &str,
    threads: usize,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<WrkResult> {
    let output = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--timeout")
        .arg("5s")
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .context("running wrk (install it: apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    parse_wrk(&text)
}

pub async fn run(options: &Options, rows: &mut Vec<Row>) -> anyhow::Result<()> {
    let fixture = Fixture::start();
    let image = fixture.push_signed("bench/web", "v1");
    let pod = pod("web", std::slice::from_ref(&image));
    let review_json = fixture::review_json("bench-uid", &pod);
    let dir = tempfile::Builder::new()
        .prefix("imagegate-bench-serve-")
        .tempdir()?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, fixture.policy_yaml())?;
    let body = dir.path().join("review.json");
    std::fs::write(&body, serde_json::to_vec(&review_json)?)?;
    let script = dir.path().join("post.lua");
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nlocal f = assert(io.open(\"{}\", \"rb\"))\nwrk.body = f:read(\"*a\")\nf:close()\n",
            body.display()
        ),
    )?;

    in_process(&fixture, &review_json, rows).await?;

    if !options.imagegate.is_file() {
        rows.push(Row::new(
            "1 /mutate over TLS, warm cache",
            format!(
                "not run: {} missing (cargo build --release -p imagegate)",
                options.imagegate.display()
            ),
            "≥ 20 000 reviews/s, p99 ≤ 5 ms",
            Met::No,
        ));
        return Ok(());
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        rows.push(Row::new(
            "1 /mutate over TLS, warm cache",
            "not run: wrk missing (apt-get install wrk)".into(),
            "≥ 20 000 reviews/s, p99 ≤ 5 ms",
            Met::No,
        ));
        return Ok(());
    }

    // (server log level, wrk threads, wrk connections)
    let runs: [(Option<&str>, usize, usize); 3] =
        [(None, 1, 16), (Some("warn"), 1, 16), (Some("warn"), 2, 64)];
    for (level, threads, connections) in runs {
        let server = Server::start(&options.imagegate, dir.path(), &policy, level).await?;
        warm(&server, &review_json).await?;
        let cpu_before = server.cpu_seconds();
        let started = Instant::now();
        let url = server.url();
        let duration = options.duration;
        let script2 = script.clone();
        let result = tokio::task::spawn_blocking(move || {
            wrk(&script2, &url, threads, connections, duration)
        })
        .await??;
        let cores = (server.cpu_seconds() - cpu_before) / started.elapsed().as_secs_f64();
        ensure!(
            result.errors == 0,
            "{} of the {} reviews failed (non-2xx or socket errors): {result:?}",
            result.errors,
            result.requests
        );
        let logging = match level {
            None => "default logging (info: a JSON line per review)",
            Some(_) => "IMAGEGATE_LOG=warn",
        };
        rows.push(Row::new(
            &format!(
                "1 /mutate over TLS (HTTP/1.1 keep-alive), warm cache: imagegate serve, {logging}; wrk -t{threads} -c{connections}"
            ),
            format!(
                "{:.0} reviews/s, p50 {}, p99 {} ({} reviews in {} s; server used {cores:.2} of the 2 cores, wrk the rest)",
                result.requests_per_second,
                ms(result.p50),
                ms(result.p99),
                result.requests,
                options.duration.as_secs()
            ),
            "≥ 20 000 reviews/s, p99 ≤ 5 ms",
            Met::from(
                result.requests_per_second >= 20_000.0 && result.p99 <= Duration::from_millis(5),
            ),
        ));
        drop(server);
    }
    Ok(())
}

/// Sends the review once over HTTPS, trusting only the server's CA bundle: checks the
/// certificate, the answer (admitted, patched) and fills the caches.
async fn warm(server: &Server, review: &serde_json::Value) -> anyhow::Result<()> {
    let ca = reqwest::Certificate::from_pem(&server.ca)?;
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(10))
        .build()?;
    for _ in 0..3 {
        let bytes = client
            .post(server.url())
            .header("content-type", "application/json")
            .body(serde_json::to_vec(review)?)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
        let response = &answer["response"];
        ensure!(
            response["allowed"] == true && response["patch"].is_string(),
            "imagegate serve did not admit the bench pod with a patch: {answer}"
        );
    }
    let _ = server.metrics_port;
    Ok(())
}

/// The review path of `/mutate` without HTTP, TLS or logging: parse the body,
/// evaluate (warm caches), serialise the answer; on the bench's two-worker runtime.
async fn in_process(
    fixture: &Fixture,
    review_json: &serde_json::Value,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let policies = Arc::new(fixture.policies()?);
    let engine = Arc::new(fixture::engine(fixture::client()?, CacheOptions::default()));
    let body = Arc::new(serde_json::to_vec(review_json)?);
    let answer_one = |engine: Arc<imagegate_engine::Engine>,
                      policies: Arc<imagegate_engine::PolicySet>,
                      body: Arc<Vec<u8>>| async move {
        let review = AdmissionReview::parse(&body).map_err(|e| anyhow::anyhow!("{e}"))?;
        let answer = admission::review(&engine, &policies, &review, Phase::Mutate)
            .await
            .review;
        let bytes = serde_json::to_vec(&answer)?;
        ensure!(
            answer
                .response
                .as_ref()
                .is_some_and(|r| r.allowed && r.patch.is_some()),
            "in-process review not admitted: {}",
            String::from_utf8_lossy(&bytes)
        );
        anyhow::Ok(())
    };
    answer_one(
        Arc::clone(&engine),
        Arc::clone(&policies),
        Arc::clone(&body),
    )
    .await?;

    // Latency, one review at a time.
    let mut samples = Samples::default();
    for _ in 0..20_000 {
        let started = Instant::now();
        answer_one(
            Arc::clone(&engine),
            Arc::clone(&policies),
            Arc::clone(&body),
        )
        .await?;
        samples.push(started.elapsed());
    }
    // Throughput: a task per worker and then some, for 3 s.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (engine, policies, body) = (
                Arc::clone(&engine),
                Arc::clone(&policies),
                Arc::clone(&body),
            );
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    answer_one(
                        Arc::clone(&engine),
                        Arc::clone(&policies),
                        Arc::clone(&body),
                    )
                    .await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    rows.push(Row::new(
        "1c /mutate path in-process (parse, evaluate, serialise; no HTTP/TLS/logs), warm cache",
        format!(
            "{rate:.0} reviews/s on 2 cores; one at a time {}, p99 {}",
            samples.summary(),
            ms(samples.quantile(0.99))
        ),
        "context for 1",
        Met::Info,
    ));
    Ok(())
}
