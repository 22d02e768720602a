//! The admission webhook behind `imagegate serve`.
//!
//! - `policies`: where policies come from (files, directories, or the bundled
//!   examples) and the hot-swapped current set (`arc-swap`).
//! - `reload`: change detection by polling file contents (works with the symlink swaps
//!   of Kubernetes ConfigMap and Secret volumes, which inotify watchers often miss).
//! - `tls`: rustls server configuration, the self-signed default certificate, reloading.
//! - `review`: one AdmissionReview answered within the policies' deadline.
//! - `handlers`: the HTTP routes (`/mutate`, `/validate`, `/healthz`, `/readyz`,
//!   `/metrics`).
//! - `metrics`: Prometheus metrics with Kyverno's names.

mod handlers;
mod metrics;
mod policies;
mod reload;
mod review;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

use crate::cli::ServeArgs;
pub use metrics::Metrics;
use policies::{PolicySource, PolicyStore};

/// Everything a request handler needs; shared by every connection.
pub struct State {
    /// The engine (its caches and single-flight are shared by all requests).
    pub engine: imagegate_engine::Engine,
    /// The current policies.
    pub policies: PolicyStore,
    /// Metrics, registered in `registry`.
    pub metrics: Metrics,
    /// Every metric exposed on `/metrics`; more can be registered before serving.
    pub registry: prometheus_client::registry::Registry,
    /// False once shutdown started: `/readyz` then fails so no new traffic comes.
    pub accepting: AtomicBool,
}

/// Starts the webhook and serves until SIGTERM or SIGINT.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let source = PolicySource::from_args(&args.policies)?;
    let initial = source
        .load()
        .with_context(|| format!("cannot load the policies of {source}"))?;
    tracing::info!(policies = initial.len(), source = %source, "policies loaded");

    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let engine_metrics = imagegate_engine::EngineMetrics::default();
    engine_metrics.register(&mut registry);
    let engine = crate::engine::build_with(
        &args.registry,
        &args.trust,
        args.cache.options(),
        engine_metrics,
    )?;
    metrics.policies_loaded(initial.len());
    let state = Arc::new(State {
        engine,
        policies: PolicyStore::new(initial),
        metrics,
        registry,
        accepting: AtomicBool::new(true),
    });

    let tls_source = tls::TlsSource::from_args(&args)?;
    let server_config = tls_source.server_config()?;
    let rustls_config = RustlsConfig::from_config(server_config);

    let webhook_listener = bind(args.listen, "webhook")?;
    let metrics_listener = bind(args.metrics_listen, "metrics")?;
    let webhook_addr = webhook_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;

    let control = axum_server::Control::new();
    let webhook_handle: Handle<SocketAddr> = Handle::with_control(control.clone());
    let metrics_handle: Handle<SocketAddr> = Handle::with_control(control.clone());

    let interval = Duration::from_secs_f64(args.reload_interval.clamp(0.05, 3600.0));
    let watchers = [
        tokio::spawn(policies::watch(source, Arc::clone(&state), interval)),
        tokio::spawn(tls::watch(tls_source, rustls_config.clone(), interval)),
    ];

    let webhook = axum_server::from_tcp_rustls(webhook_listener, rustls_config)?
        .handle(webhook_handle)
        .serve(handlers::webhook_router(Arc::clone(&state)).into_make_service());
    let metrics_server = axum_server::from_tcp(metrics_listener)?
        .handle(metrics_handle)
        .serve(handlers::metrics_router(Arc::clone(&state)).into_make_service());
    tracing::info!(address = %webhook_addr, "listening on https://{webhook_addr}");
    tracing::info!(address = %metrics_addr, "metrics and health on http://{metrics_addr}");

    let shutdown_timeout = Duration::from_secs(args.shutdown_timeout);
    let shutdown_state = Arc::clone(&state);
    tokio::spawn(async move {
        let signal = shutdown_signal().await;
        // Stop first, log after: nothing may stand between the signal and the stop.
        shutdown_state.accepting.store(false, Ordering::SeqCst);
        control.graceful_shutdown(Some(shutdown_timeout));
        tracing::info!(signal, "shutting down: finishing in-flight requests");
    });

    let (webhook, metrics_server) = tokio::join!(webhook, metrics_server);
    for watcher in watchers {
        watcher.abort();
    }
    webhook.context("webhook server")?;
    metrics_server.context("metrics server")?;
    tracing::info!("stopped");
    Ok(())
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
