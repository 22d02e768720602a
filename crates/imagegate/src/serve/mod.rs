//! The admission webhook behind `imagegate serve`.
//!
//! - `config`: [`Config`] and [`Limits`], plain values (built from the flags by `cli`).
//! - `policies`: where policies come from (files, directories, or the bundled
//!   examples) and the hot-swapped current set (`arc-swap`).
//! - `reload`: change detection by polling file contents (works with the symlink swaps
//!   of Kubernetes ConfigMap and Secret volumes, which inotify watchers often miss).
//! - `tls`: rustls server configuration, the self-signed default certificate, reloading.
//! - `limits`: connection cap, header/handshake timeouts, HTTP/2 limits.
//! - `review`: one AdmissionReview answered within the policies' deadline.
//! - `policy_review`: a policy object checked at `kubectl apply` (`/validate-policy`).
//! - `handlers`: the HTTP routes (`/mutate`, `/validate`, `/validate-policy`,
//!   `/healthz`, `/readyz`, `/metrics`), with the cap on concurrent reviews and the body deadline.
//! - `metrics`: Prometheus metrics with Kyverno's names, with bounded labels.
//! - `cluster`: cluster mode (policies, namespace labels, keys and pull secrets from
//!   the Kubernetes API; PolicyReports, Events and leader election back to it), when
//!   [`Config::kubernetes`] says so.
//!
//! [`Server::bind`] then [`Server::serve`] run it ([`run`] does both and waits for
//! SIGTERM/SIGINT); [`webhook_router`] over a [`State`] answers requests without a
//! listener (tests drive it with `tower::ServiceExt::oneshot`).

mod cluster;
mod config;
mod handlers;
mod limits;
mod metrics;
mod policies;
mod policy_review;
mod reload;
mod review;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use imagegate_engine::{Engine, EngineMetrics, PolicySet};
use tokio::sync::Semaphore;

pub use cluster::ClusterMode;
pub use config::{ClusterOutputs, Config, Kubernetes, Limits, TlsConfig};
pub use handlers::{MAX_REVIEW_BYTES, metrics_router, webhook_router};
pub use metrics::Metrics;
use policies::{PolicySource, PolicyStore};

/// Everything a request handler needs; shared by every connection.
pub struct State {
    /// The engine (its caches and single-flight are shared by all requests).
    pub engine: Engine,
    /// The current policies.
    pub policies: PolicyStore,
    /// Metrics, registered in `registry`.
    pub metrics: Metrics,
    /// Every metric exposed on `/metrics`; more can be registered before serving.
    pub registry: prometheus_client::registry::Registry,
    /// False once shutdown started: `/readyz` then fails so no new traffic comes.
    pub accepting: AtomicBool,
    /// Permits for reviews in progress (`Limits::max_concurrent_reviews`).
    pub reviews: Semaphore,
    /// KiB of review bodies in flight (`Limits::max_body_bytes_in_flight`).
    pub body_budget: Semaphore,
    /// The limits applied per request.
    pub limits: Limits,
    /// Cluster mode's watches, if on.
    pub cluster: Option<Arc<ClusterMode>>,
    /// In cluster mode: the first complete list of the cluster's policies is swapped
    /// in (readiness waits for it).
    pub cluster_synced: AtomicBool,
}

impl State {
    /// A state answering with `engine` (whose metrics are `engine_metrics`) and
    /// `policies`, within `limits`; every metric registered in a fresh registry.
    pub fn new(
        engine: Engine,
        engine_metrics: &EngineMetrics,
        policies: PolicySet,
        limits: Limits,
    ) -> State {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        engine_metrics.register(&mut registry);
        metrics.policies_loaded(policies.len());
        State {
            engine,
            policies: PolicyStore::new(policies),
            metrics,
            registry,
            accepting: AtomicBool::new(true),
            reviews: Semaphore::new(limits.max_concurrent_reviews.max(1)),
            body_budget: Semaphore::new(handlers::kib(
                limits.max_body_bytes_in_flight.max(MAX_REVIEW_BYTES),
            ) as usize),
            limits,
            cluster: None,
            cluster_synced: AtomicBool::new(false),
        }
    }

    /// This state in cluster mode with `cluster`'s watches.
    pub fn with_cluster(mut self, cluster: Option<Arc<ClusterMode>>) -> State {
        self.cluster = cluster;
        self
    }
}

/// A webhook with its policies loaded, engine built and listeners bound, not yet
/// serving.
pub struct Server {
    config: Config,
    state: Arc<State>,
    cluster: Option<Arc<ClusterMode>>,
    source: PolicySource,
    tls_source: tls::TlsSource,
    rustls_config: RustlsConfig,
    webhook_listener: std::net::TcpListener,
    metrics_listener: std::net::TcpListener,
}

impl Server {
    /// Loads the policies, builds the engine and the TLS configuration (writing the CA
    /// bundle of a self-signed certificate), and binds both listeners. Without the
    /// cluster: [`run`] starts cluster mode when the configuration asks for it.
    pub fn bind(config: Config) -> anyhow::Result<Server> {
        Server::bind_with(config, None)
    }

    /// [`Server::bind`], in cluster mode when `cluster` is given.
    pub fn bind_with(
        mut config: Config,
        cluster: Option<Arc<ClusterMode>>,
    ) -> anyhow::Result<Server> {
        let source = PolicySource::new(&config.policies, &config.exceptions, cluster.is_some())?;
        let initial = source
            .load()
            .with_context(|| format!("cannot load the policies of {source}"))?;
        tracing::info!(policies = initial.len(), source = %source, "policies loaded");
        if let Some(cluster) = &cluster {
            let inputs: Arc<dyn imagegate_engine::ClusterInputs> = cluster.inputs.clone();
            config.engine.cluster = Some(inputs);
        }
        let engine_metrics = EngineMetrics::default();
        let engine = crate::engine::build(&config.engine, engine_metrics.clone())?;
        let state = Arc::new(
            State::new(engine, &engine_metrics, initial, config.limits.clone())
                .with_cluster(cluster.clone()),
        );
        let tls_source = tls::TlsSource::from_config(&config.tls)?;
        let rustls_config = RustlsConfig::from_config(tls_source.server_config()?);
        let webhook_listener = bind(config.listen, "webhook")?;
        let metrics_listener = bind(config.metrics_listen, "metrics")?;
        Ok(Server {
            config,
            state,
            cluster,
            source,
            tls_source,
            rustls_config,
            webhook_listener,
            metrics_listener,
        })
    }

    /// The address of the HTTPS listener.
    pub fn webhook_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.webhook_listener.local_addr()?)
    }

    /// The address of the metrics listener.
    pub fn metrics_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.metrics_listener.local_addr()?)
    }

    /// The state shared by the handlers.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Serves until `shutdown` completes (it names the cause for the log), then lets
    /// requests in flight finish within the shutdown timeout.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = &'static str> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            config,
            state,
            cluster,
            source,
            tls_source,
            rustls_config,
            webhook_listener,
            metrics_listener,
        } = self;
        let webhook_addr = webhook_listener.local_addr()?;
        let metrics_addr = metrics_listener.local_addr()?;
        let control = axum_server::Control::new();
        let webhook_handle: Handle<SocketAddr> = Handle::with_control(control.clone());
        let metrics_handle: Handle<SocketAddr> = Handle::with_control(control.clone());

        let interval = config.reload_interval;
        let mut watchers = vec![
            tokio::spawn(policies::watch(source, Arc::clone(&state), interval)),
            tokio::spawn(tls::watch(tls_source, rustls_config.clone(), interval)),
        ];
        if let Some(cluster) = cluster {
            watchers.push(tokio::spawn(cluster::follow_leadership(
                Arc::clone(&cluster),
                Arc::clone(&state),
            )));
            watchers.push(tokio::spawn(cluster::follow(
                Arc::clone(&cluster),
                Arc::clone(&state),
            )));
            if let Some(options) = config.background_scan.clone() {
                watchers.push(tokio::spawn(cluster::scan(
                    cluster,
                    Arc::clone(&state),
                    options,
                )));
            }
        }

        let webhook = axum_server::from_tcp_rustls(webhook_listener, rustls_config)?;
        let webhook = limits::apply(webhook, &config.limits)
            .handle(webhook_handle)
            .serve(webhook_router(Arc::clone(&state)).into_make_service());
        let metrics_server = axum_server::from_tcp(metrics_listener)?
            .handle(metrics_handle)
            .serve(metrics_router(Arc::clone(&state)).into_make_service());
        tracing::info!(address = %webhook_addr, "listening on https://{webhook_addr}");
        tracing::info!(address = %metrics_addr, "metrics and health on http://{metrics_addr}");

        let shutdown_timeout = config.shutdown_timeout;
        let shutdown_state = Arc::clone(&state);
        let stopper = tokio::spawn(async move {
            let signal = shutdown.await;
            // Stop first, log after: nothing may stand between the signal and the stop.
            shutdown_state.accepting.store(false, Ordering::SeqCst);
            control.graceful_shutdown(Some(shutdown_timeout));
            tracing::info!(signal, "shutting down: finishing in-flight requests");
        });

        let (webhook, metrics_server) = tokio::join!(webhook, metrics_server);
        for watcher in watchers {
            watcher.abort();
        }
        stopper.abort();
        if let Some(cluster) = &state.cluster {
            // Hand the Lease over now rather than after it expires.
            cluster.stop().await;
        }
        webhook.context("webhook server")?;
        metrics_server.context("metrics server")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Loads the policies of `paths` as `serve` does (empty: `./policies` if it exists,
/// else the bundled examples).
pub fn load_policies(paths: &[std::path::PathBuf]) -> anyhow::Result<PolicySet> {
    PolicySource::new(paths, &[], false)?.load()
}

/// Starts the webhook (in cluster mode if the configuration says so) and serves until
/// SIGTERM or SIGINT.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let cluster = match &config.kubernetes {
        Kubernetes::Off => None,
        Kubernetes::On { kubeconfig } => Some(Arc::new(
            ClusterMode::start(
                kubeconfig.as_deref(),
                &config.outputs,
                config.background_scan.is_some(),
                config.exception_namespace.clone(),
            )
            .await?,
        )),
    };
    Server::bind_with(config, cluster)?
        .serve(shutdown_signal())
        .await
}

fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr} ({what})"))
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
