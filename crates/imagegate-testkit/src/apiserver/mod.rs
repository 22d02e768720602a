//! A faithful in-process Kubernetes API server fake, for cluster-mode tests without a
//! cluster (no kube-apiserver can be installed here), checked against the real `kubectl`.
//!
//! HTTPS on `127.0.0.1:<random port>` (a fresh CA and serving certificate from rcgen),
//! bearer-token authentication, discovery (`/api`, `/apis`, group and resource lists,
//! custom kinds registered by creating a CustomResourceDefinition), LIST with
//! `resourceVersion`, `limit`/`continue` and label/field selectors, WATCH streams with
//! bookmarks and 410 Gone for compacted versions, create/update/delete, merge (strategic
//! merge is treated as merge), JSON and server-side apply patches (a subset: the applied
//! configuration is merged, managers are recorded, conflicts are not modelled), the status
//! subresource and `metav1.Status` errors (404, 409, 410, 422). Kyverno's CRDs are
//! installed at start. Every request is logged for tests to count; hooks drop all watch
//! streams or compact the history (the next watch gets 410). Bounded (connections,
//! watches, body size, objects, history) and stopped when dropped.

mod http;
mod kinds;
mod protobuf;
mod selector;
mod serve;
mod status;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

pub use kinds::{ResourceKind, kyverno_crds};
use store::{PatchType, Store};

/// When set to `1`, a missing `kubectl` is a test failure instead of a skip (the same
/// switch as for the shared vectors).
const REQUIRE_ENV: &str = "IMAGEGATE_REQUIRE_VECTORS";

/// The `kubectl` binary on `PATH` (Debian package `kubernetes-client`), or `None` when
/// absent, in which case tests should print "skipped" and return; panics instead when
/// `IMAGEGATE_REQUIRE_VECTORS=1`.
pub fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    });
    if found.is_none() && std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!(
            "imagegate-testkit: kubectl is not on PATH and {REQUIRE_ENV}=1 (scripts/install-deps installs it)"
        );
    }
    found
}

/// Runs the real `kubectl` against a fake with its own cache directory and `HOME` (no
/// state shared with the user's or other tests' kubectl).
#[derive(Debug)]
pub struct Kubectl {
    /// The binary ([`kubectl`]).
    pub bin: PathBuf,
    /// The kubeconfig it uses ([`ApiServer::kubeconfig`]).
    pub kubeconfig: PathBuf,
    /// Its `HOME` and cache directory; also a place for the test's files.
    pub home: tempfile::TempDir,
}

impl Kubectl {
    /// kubectl for `server` (context namespace `namespace` when given).
    pub fn new(bin: PathBuf, server: &ApiServer, namespace: Option<&str>) -> Kubectl {
        Kubectl {
            bin,
            kubeconfig: server.kubeconfig(namespace),
            home: tempfile::tempdir().expect("imagegate-testkit: kubectl home"),
        }
    }

    /// The command for `args`, not yet run.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"))
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// Runs `args` to completion.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("running kubectl")
    }

    /// Runs `args` and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Requests kept in the log (older ones are dropped).
const MAX_LOG: usize = 100_000;

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedApiRequest {
    /// HTTP method.
    pub method: String,
    /// Decoded path without the query.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// Whether it opened a WATCH stream.
    pub watch: bool,
    /// HTTP status code answered (200 for a watch, whatever it then streamed).
    pub code: u16,
    /// The client's `User-Agent`.
    pub user_agent: String,
}

/// State shared by the connection tasks and the test-side handle.
pub(crate) struct Shared {
    store: Mutex<Store>,
    log: Mutex<Vec<LoggedApiRequest>>,
    token: String,
    addr: SocketAddr,
    connections: AtomicUsize,
    watches: AtomicUsize,
    /// Bumped to drop every open watch stream.
    epoch: tokio::sync::watch::Sender<u64>,
    stop: tokio::sync::watch::Sender<bool>,
    bookmark_interval: Mutex<Duration>,
}

impl Shared {
    fn log(&self, entry: LoggedApiRequest) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= MAX_LOG {
            log.remove(0);
        }
        log.push(entry);
    }
}

/// A running API server fake; stops when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    ca_pem: String,
    dir: tempfile::TempDir,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

/// A failed call through the test-side handle: the `metav1.Status` the HTTP API would
/// have answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiStatus(pub Value);

impl ApiStatus {
    /// The HTTP code.
    pub fn code(&self) -> u64 {
        self.0["code"].as_u64().unwrap_or(0)
    }
}

fn certificates() -> (String, rustls::ServerConfig) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("imagegate-testkit: API server CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("imagegate-testkit: CA parameters");
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "imagegate-testkit apiserver CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)
        .expect("imagegate-testkit: self-signing the CA");
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .expect("imagegate-testkit: serving key");
    let mut params = rcgen::CertificateParams::new(vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "kubernetes.default.svc".to_owned(),
    ])
    .expect("imagegate-testkit: serving certificate parameters");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params
        .signed_by(&leaf_key, &ca)
        .expect("imagegate-testkit: signing the serving certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("imagegate-testkit: TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
    .expect("imagegate-testkit: TLS server configuration");
    // HTTP/1.1 only: clients then stream watches over chunked responses.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (ca.pem(), config)
}

impl ApiServer {
    /// Starts the fake with the built-in kinds and Kyverno's CRDs.
    pub fn start() -> ApiServer {
        ApiServer::start_with_crds(kyverno_crds())
    }

    /// Starts the fake with the built-in kinds and `crds` installed (none: a cluster
    /// without Kyverno, whose policy kinds exist once someone applies their CRDs).
    pub fn start_with_crds(crds: Vec<Value>) -> ApiServer {
        let (ca_pem, tls) = certificates();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("imagegate-testkit: cannot bind the API server on 127.0.0.1");
        std_listener
            .set_nonblocking(true)
            .expect("imagegate-testkit: non-blocking listener");
        let addr = std_listener
            .local_addr()
            .expect("imagegate-testkit: listener address");
        let mut token = [0u8; 24];
        aws_lc_rs::rand::fill(&mut token).expect("imagegate-testkit: random token");
        let mut store = Store::new();
        for crd in crds {
            let kind = store
                .kind("apiextensions.k8s.io", "customresourcedefinitions")
                .expect("builtin kind");
            store
                .create(&kind, None, crd)
                .expect("imagegate-testkit: installing the CRDs");
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            log: Mutex::new(Vec::new()),
            token: hex::encode(token),
            addr,
            connections: AtomicUsize::new(0),
            watches: AtomicUsize::new(0),
            epoch: tokio::sync::watch::channel(0).0,
            stop: tokio::sync::watch::channel(false).0,
            bookmark_interval: Mutex::new(Duration::from_secs(1)),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let worker = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("imagegate-testkit: API server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener)
                    .expect("imagegate-testkit: tokio listener");
                let stop = worker.stop.subscribe();
                serve::accept_loop(listener, acceptor, worker, stop).await;
            });
            rt.shutdown_timeout(Duration::from_secs(2));
        });
        ApiServer {
            shared,
            ca_pem,
            dir: tempfile::tempdir().expect("imagegate-testkit: temporary directory"),
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token the server accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Writes a kubeconfig for this server (context namespace `namespace` when given) and
    /// returns its path; it lives as long as the server.
    pub fn kubeconfig(&self, namespace: Option<&str>) -> PathBuf {
        let ns = namespace
            .map(|n| format!("\n    namespace: {n}"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: tester\n  user:\n    token: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester{ns}\ncurrent-context: fake\n",
            self.url(),
            STANDARD.encode(&self.ca_pem),
            self.shared.token,
        );
        let path = self
            .dir
            .path()
            .join(format!("kubeconfig-{}", namespace.unwrap_or("none")));
        std::fs::write(&path, text).expect("imagegate-testkit: writing the kubeconfig");
        path
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kind(&self, store: &Store, resource: &str) -> Result<ResourceKind, ApiStatus> {
        // `plural` or `plural.group`, as kubectl names resources.
        let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
        store
            .kind(group, plural)
            .ok_or_else(|| ApiStatus(status::ApiError::no_route().status()))
    }

    /// Creates an object (`resource` is `plural` or `plural.group`, e.g.
    /// `clusterpolicies.kyverno.io`).
    pub fn create(
        &self,
        resource: &str,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, ApiStatus> {
        let mut store = self.store();
        let kind = self.kind(&store, resource)?;
        store
            .create(&kind, namespace, object)
            .map_err(|e| ApiStatus(e.status()))
    }

    /// Reads an object.
    pub fn get(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiStatus> {
        let store = self.store();
        let kind = self.kind(&store, resource)?;
        store
            .get(&kind, namespace, name)
            .map_err(|e| ApiStatus(e.status()))
    }

    /// The objects of `resource` (in `namespace`, or in all namespaces when `None`),
    /// oldest first.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Result<Vec<Value>, ApiStatus> {
        let store = self.store();
        let kind = self.kind(&store, resource)?;
        let query = store::Query {
            namespace: namespace.map(str::to_owned),
            labels: selector::Selector::default(),
            fields: selector::Selector::default(),
        };
        let list = store
            .list(&kind, &query, 0, None)
            .map_err(|e| ApiStatus(e.status()))?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Replaces an object (PUT semantics: a stale `metadata.resourceVersion` conflicts).
    pub fn replace(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        object: Value,
    ) -> Result<Value, ApiStatus> {
        let mut store = self.store();
        let kind = self.kind(&store, resource)?;
        store
            .update(&kind, namespace, name, object, false)
            .map_err(|e| ApiStatus(e.status()))
    }

    /// Applies a JSON merge patch.
    pub fn merge_patch(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiStatus> {
        let mut store = self.store();
        let kind = self.kind(&store, resource)?;
        store
            .patch(&kind, namespace, name, PatchType::Merge, patch, None, false)
            .map_err(|e| ApiStatus(e.status()))
    }

    /// Deletes an object.
    pub fn delete(
        &self,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiStatus> {
        let mut store = self.store();
        let kind = self.kind(&store, resource)?;
        store
            .delete(&kind, namespace, name)
            .map_err(|e| ApiStatus(e.status()))
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store().current_rv()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<LoggedApiRequest> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Watch streams open now.
    pub fn open_watches(&self) -> usize {
        self.shared
            .watches
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Cuts every open watch stream (as a broken connection would).
    pub fn drop_watches(&self) {
        self.shared.epoch.send_modify(|e| *e += 1);
    }

    /// Compacts the whole history, then cuts every watch: a client that re-watches from
    /// any version it has seen gets 410 Gone and must LIST again.
    pub fn expire_history(&self) {
        self.store().compact_all();
        self.drop_watches();
    }

    /// How often WATCH streams that asked for bookmarks get one (default 1 s).
    pub fn set_bookmark_interval(&self, every: Duration) {
        *self
            .shared
            .bookmark_interval
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = every;
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.shared.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
