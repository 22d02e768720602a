//! A real CNCF distribution registry (`docker-registry serve`) on loopback.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http1;
use crate::token::{self, TokenIssuer};

/// Environment variable overriding the registry binary (default `docker-registry`).
const BINARY_ENV: &str = "IMAGEGATE_DOCKER_REGISTRY";
/// How long a registry may take to answer `GET /v2/` after start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports are tried when the chosen one was taken in the meantime.
const START_ATTEMPTS: usize = 3;
/// Request path prefix used to synchronise with the access log; hidden from `requests()`.
const SYNC_PREFIX: &str = "/imagegate-testkit-sync/";
/// How long `requests()` waits for the registry's access log to catch up.
const LOG_SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// One request the registry served, from its access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request target: path and query, e.g. `/v2/repo/manifests/latest`.
    pub path: String,
    /// Response status.
    pub status: u16,
}

/// How clients authenticate to a [`Registry`].
pub(crate) enum Auth {
    /// Anonymous access.
    None,
    /// htpasswd (Basic).
    Basic { user: String, password: String },
    /// Bearer tokens from an in-process issuer that takes Basic credentials.
    Token {
        user: String,
        password: String,
        issuer: TokenIssuer,
    },
}

/// Output of the registry process, filled by reader threads.
#[derive(Default)]
struct Logs {
    requests: Mutex<Vec<LoggedRequest>>,
    text: Mutex<String>,
}

impl Logs {
    /// Records a line; `access_log` lines (stdout) are also parsed as requests.
    fn push_line(&self, line: &str, access_log: bool) {
        if access_log && let Some(request) = parse_access_log(line) {
            lock(&self.requests).push(request);
        }
        let mut text = lock(&self.text);
        text.push_str(line);
        text.push('\n');
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running `docker-registry` on `127.0.0.1:<random port>` with temporary storage.
/// Dropping it kills the process (and its watchdog) and removes the storage.
///
/// If the test process dies without dropping it (killed, or the registry lives in a
/// `static`), a watchdog shell (`sh`, blocked reading a pipe only this process holds)
/// kills the registry and removes its directory when that pipe closes.
pub struct Registry {
    addr: SocketAddr,
    auth: Auth,
    process: Process,
    sync_counter: AtomicUsize,
    /// Config, auth files and storage; declared after `process` so it is removed after
    /// the process is dead.
    dir: TempDir,
}

impl Registry {
    /// Anonymous access, plain HTTP on `127.0.0.1:<random free port>`.
    pub fn start() -> Registry {
        Self::launch(Auth::None)
    }

    /// htpasswd (bcrypt) Basic authentication with one user.
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Self::launch(Auth::Basic {
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// Token authentication (`auth.token`): the registry answers `401` with
    /// `Bearer realm="http://127.0.0.1:P/token",service="imagegate-testkit-registry",...`,
    /// and an in-process issuer on `127.0.0.1:P` hands out ES256 JWTs (granting exactly
    /// the requested scopes) for requests with these Basic credentials; anonymous token
    /// requests get `401`.
    pub fn start_with_token_auth(user: &str, password: &str) -> Registry {
        let issuer = TokenIssuer::start(user, password);
        Self::launch(Auth::Token {
            user: user.to_owned(),
            password: password.to_owned(),
            issuer,
        })
    }

    /// `127.0.0.1:PORT` (also after [`stop`](Self::stop)).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Kills the registry now (for "registry down" tests); [`host`](Self::host) still
    /// returns the old address. Idempotent.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts the registry again after [`stop`](Self::stop): same address, storage and
    /// authentication (a registry coming back after an outage); its request log starts
    /// afresh. Panics if the address was taken meanwhile. Does nothing while it runs.
    pub fn restart(&mut self) {
        if self.process.is_running() {
            return;
        }
        let mut process = Process::spawn(&self.dir.path().join("config.yml"), self.dir.path());
        if let Err(why) = process.wait_ready(self.addr) {
            process.stop();
            let log = lock(&process.logs.text).clone();
            panic!(
                "imagegate-testkit: docker-registry did not start again on {} ({why}); its output:\n{log}",
                self.addr
            );
        }
        self.process = process;
    }

    /// The requests the registry has served so far (from its access log), in log order.
    ///
    /// While the registry runs, this first sends a marker request and waits until it shows
    /// up in the log, so every request that completed before the call is included; the
    /// marker requests themselves are left out.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        if self.process.is_running() {
            let n = self.sync_counter.fetch_add(1, Ordering::SeqCst);
            let marker = format!("{SYNC_PREFIX}{n}");
            if http1::get_status(self.addr, &marker, Duration::from_secs(5)).is_some() {
                let deadline = Instant::now() + LOG_SYNC_TIMEOUT;
                while !lock(&self.process.logs.requests)
                    .iter()
                    .any(|r| r.path == marker)
                {
                    assert!(
                        Instant::now() < deadline,
                        "imagegate-testkit: the registry's access log did not show {marker} within {LOG_SYNC_TIMEOUT:?}; log:\n{}",
                        self.log()
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        lock(&self.process.logs.requests)
            .iter()
            .filter(|r| !r.path.starts_with(SYNC_PREFIX))
            .cloned()
            .collect()
    }

    /// How many `/token` requests the token issuer answered (any status, anonymous ones
    /// included); 0 for registries without token auth.
    pub fn token_requests(&self) -> usize {
        match &self.auth {
            Auth::Token { issuer, .. } => issuer.answered(),
            _ => 0,
        }
    }

    /// The user and password clients must present (Basic, or to the token issuer), if any.
    pub fn credentials(&self) -> Option<(String, String)> {
        match &self.auth {
            Auth::None => None,
            Auth::Basic { user, password } | Auth::Token { user, password, .. } => {
                Some((user.clone(), password.clone()))
            }
        }
    }

    /// The token issuer's realm URL (`http://127.0.0.1:P/token`), for token-auth registries.
    pub fn token_realm(&self) -> Option<String> {
        match &self.auth {
            Auth::Token { issuer, .. } => Some(issuer.realm()),
            _ => None,
        }
    }

    /// Everything the registry process wrote so far (stderr and stdout), for diagnostics.
    pub fn log(&self) -> String {
        lock(&self.process.logs.text).clone()
    }

    /// The temporary directory holding the registry's config, auth files and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    fn launch(auth: Auth) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("imagegate-registry-")
            .tempdir()
            .expect("imagegate-testkit: cannot create a temporary directory for the registry");
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).expect("imagegate-testkit: creating registry storage dir");
        let auth_yaml = write_auth_files(&auth, dir.path());
        let config_path = dir.path().join("config.yml");

        let mut collisions = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let addr = free_port();
            std::fs::write(&config_path, config_yaml(addr, &storage, &auth_yaml))
                .expect("imagegate-testkit: writing the registry config");
            let mut process = Process::spawn(&config_path, dir.path());
            match process.wait_ready(addr) {
                Ok(()) => {
                    return Registry {
                        addr,
                        auth,
                        process,
                        sync_counter: AtomicUsize::new(0),
                        dir,
                    };
                }
                Err(why) => {
                    process.stop();
                    let log = lock(&process.logs.text).clone();
                    if log.contains("address already in use") {
                        collisions.push(addr);
                        continue;
                    }
                    panic!(
                        "imagegate-testkit: docker-registry on {addr} failed to start ({why}); its output:\n{log}"
                    );
                }
            }
        }
        panic!(
            "imagegate-testkit: docker-registry found its port taken {START_ATTEMPTS} times: {collisions:?}"
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.process.stop();
    }
}

/// The registry process, its watchdog and its output readers.
struct Process {
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
    readers: Vec<JoinHandle<()>>,
    logs: Arc<Logs>,
}

impl Process {
    fn spawn(config: &Path, dir: &Path) -> Process {
        let binary = std::env::var_os(BINARY_ENV).unwrap_or_else(|| "docker-registry".into());
        let mut command = Command::new(&binary);
        command
            .arg("serve")
            .arg(config)
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // REGISTRY_* variables override the config file; keep the test's config in charge.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "imagegate-testkit: cannot run {:?} ({e}); install the Debian package docker-registry or set {BINARY_ENV}",
                binary
            )
        });
        let logs = Arc::new(Logs::default());
        let readers = vec![
            // The access log (combined log format) goes to stdout, logrus lines to stderr.
            spawn_reader(
                "testkit-registry-stdout",
                child.stdout.take(),
                Arc::clone(&logs),
                true,
            ),
            spawn_reader(
                "testkit-registry-stderr",
                child.stderr.take(),
                Arc::clone(&logs),
                false,
            ),
        ];
        let pid = child.id();
        // Owned by `Process` before anything else can panic, so Drop kills the registry.
        let mut process = Process {
            child: Some(child),
            watchdog: None,
            readers,
            logs,
        };
        process.watchdog = Some(spawn_watchdog(pid, dir));
        process
    }

    fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Polls `GET /v2/` until any HTTP answer (401 included).
    fn wait_ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("exited with {status}"));
            }
            if http1::get_status(addr, "/v2/", Duration::from_millis(500)).is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("GET /v2/ unanswered after {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn stop(&mut self) {
        // The watchdog first, so it never kills a recycled pid later.
        if let Some((mut watchdog, stdin)) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
            drop(stdin);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The pipes are closed now; the readers finish promptly (never waited on forever).
        let deadline = Instant::now() + Duration::from_secs(5);
        for reader in std::mem::take(&mut self.readers) {
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads lines from a pipe into `logs` until EOF (this also keeps the pipe drained).
fn spawn_reader(
    name: &str,
    pipe: Option<impl Read + Send + 'static>,
    logs: Arc<Logs>,
    access_log: bool,
) -> JoinHandle<()> {
    let pipe = pipe.expect("imagegate-testkit: registry output pipe");
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line);
                        logs.push_line(text.trim_end_matches(['\n', '\r']), access_log);
                    }
                }
            }
        })
        .expect("imagegate-testkit: spawning a log reader thread")
}

/// `sh` blocked on a pipe only this process writes to: when the test process dies the
/// pipe closes, `read` returns and the shell kills the registry and removes `dir`.
fn spawn_watchdog(pid: u32, dir: &Path) -> (Child, ChildStdin) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"read -r _; kill -KILL "$0" 2>/dev/null; rm -rf "$1""#)
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("imagegate-testkit: cannot start the watchdog shell (sh)");
    let stdin = child.stdin.take().expect("watchdog stdin");
    (child, stdin)
}

/// A port that was free a moment ago (bind 127.0.0.1:0, read it, release it).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("imagegate-testkit: cannot bind 127.0.0.1:0")
}

/// Writes the auth files into `dir` and returns the config's `auth:` section.
fn write_auth_files(auth: &Auth, dir: &Path) -> String {
    match auth {
        Auth::None => String::new(),
        Auth::Basic { user, password } => {
            // Cost 4 (the minimum): the registry checks the hash on every request.
            let hash = bcrypt::hash(password, 4).expect("imagegate-testkit: bcrypt hashing");
            let path = dir.join("htpasswd");
            std::fs::write(&path, format!("{user}:{hash}\n"))
                .expect("imagegate-testkit: writing htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: imagegate-testkit\n    path: {}\n",
                yaml_string(&path.to_string_lossy())
            )
        }
        Auth::Token { issuer, .. } => {
            let path = dir.join("token-root.pem");
            std::fs::write(&path, issuer.root_cert_pem())
                .expect("imagegate-testkit: writing rootcertbundle");
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                yaml_string(&issuer.realm()),
                yaml_string(token::SERVICE),
                yaml_string(token::ISSUER),
                yaml_string(&path.to_string_lossy())
            )
        }
    }
}

fn config_yaml(addr: SocketAddr, storage: &Path, auth_yaml: &str) -> String {
    let secret = {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).expect("imagegate-testkit: random bytes");
        hex::encode(bytes)
    };
    format!(
        "version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: {secret}
  headers:
    X-Content-Type-Options: [nosniff]
{auth_yaml}",
        storage = yaml_string(&storage.to_string_lossy()),
    )
}

/// A YAML double-quoted scalar.
fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).expect("serialising a string")
}

/// Parses a combined-log-format line:
/// `127.0.0.1 - - [date] "GET /v2/ HTTP/1.1" 200 2 "referer" "agent"`.
fn parse_access_log(line: &str) -> Option<LoggedRequest> {
    let (_, rest) = line.split_once(" \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    let mut parts = request.split(' ');
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let status = rest.split(' ').next()?.parse().ok()?;
    Some(LoggedRequest {
        method,
        path,
        status,
    })
}
