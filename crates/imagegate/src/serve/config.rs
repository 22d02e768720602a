//! The webhook's configuration: plain values, built from the command line by
//! `cli::ServeArgs::config` or by hand (tests, benchmarks). Nothing in `serve` reads
//! clap structs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::EngineConfig;

/// Everything `serve` needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Policy files or directories; empty: `./policies` if it exists, else the bundled
    /// examples (in cluster mode: none).
    pub policies: Vec<PathBuf>,
    /// PolicyException files or directories, reloaded with the policies.
    pub exceptions: Vec<PathBuf>,
    /// The HTTPS webhook listener.
    pub listen: SocketAddr,
    /// The plain-HTTP listener for metrics and probes.
    pub metrics_listen: SocketAddr,
    /// The server certificate.
    pub tls: TlsConfig,
    /// How often policy and certificate files are checked for changes.
    pub reload_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// The engine (registries, trust, caches).
    pub engine: EngineConfig,
    /// Bounds on what clients may make the server hold.
    pub limits: Limits,
    /// Cluster mode.
    pub kubernetes: Kubernetes,
    /// What cluster mode writes back (reports, Events) and the leader election.
    pub outputs: ClusterOutputs,
    /// Background scans in cluster mode (`None`: off).
    pub background_scan: Option<imagegate_kube::ScanOptions>,
    /// In cluster mode, the one namespace PolicyExceptions are read from (`None`: every
    /// namespace; Kyverno's `--exceptionNamespace`).
    pub exception_namespace: Option<String>,
}

/// What cluster mode writes back to the API, off the admission path: PolicyReports of
/// admission results (only the elected leader writes them) and Events.
#[derive(Debug, Clone)]
pub struct ClusterOutputs {
    /// Admission results into PolicyReports (Kyverno's `--admissionReports`).
    pub admission_reports: bool,
    /// Events waiting to be written at most (Kyverno's `--maxQueuedEvents`); 0: no
    /// Events.
    pub max_queued_events: usize,
    /// Elect one replica to write the reports; off: this replica writes them (run one).
    pub leader_election: bool,
    /// How long a Lease that is not renewed keeps the others from taking it.
    pub lease_duration: Duration,
    /// How long the leader leads without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and the others try.
    pub retry_period: Duration,
    /// How often the leader merges the other replicas' EphemeralReports.
    pub merge_interval: Duration,
}

impl Default for ClusterOutputs {
    fn default() -> Self {
        ClusterOutputs {
            admission_reports: true,
            max_queued_events: 1000,
            leader_election: true,
            // client-go's defaults.
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            merge_interval: Duration::from_secs(1),
        }
    }
}

/// Whether `serve` reads policies, namespaces, keys and pull secrets from the
/// Kubernetes API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kubernetes {
    /// Policy files only.
    Off,
    /// Cluster mode, with this kubeconfig (`None`: `$KUBECONFIG`, else in-cluster).
    On {
        /// `--kubeconfig`.
        kubeconfig: Option<PathBuf>,
    },
}

/// Where the server certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsConfig {
    /// PEM files, reloaded when they change.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Generated at start-up for loopback and the Service's names; the CA bundle is
    /// written to `ca_bundle_out`.
    SelfSigned {
        /// Service name (NAME.NAMESPACE.svc).
        service_name: String,
        /// Service namespace.
        service_namespace: String,
        /// Extra DNS names or IP addresses.
        extra_names: Vec<String>,
        /// Where the CA bundle is written.
        ca_bundle_out: PathBuf,
    },
}

/// Bounds on connections and requests of the HTTPS listener (issue 8 item 12: a slow
/// or greedy client must not hold the webhook). The API server sends one review per
/// request and keeps a few connections open; these leave it ample room.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections; further ones are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Admission reviews being read or evaluated at once; further ones get 429 at once.
    pub max_concurrent_reviews: usize,
    /// Bytes of review bodies being received or evaluated at once (reserved from each
    /// request's Content-Length, or the largest review when it has none); a review that
    /// does not fit gets 429 at once. At least one largest review always fits.
    pub max_body_bytes_in_flight: usize,
    /// Time for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time for a request's headers (HTTP/1.1) and for the first request of a
    /// connection (both protocols).
    pub header_read_timeout: Duration,
    /// Time for a review's body, once its headers are in.
    pub body_read_timeout: Duration,
    /// HTTP/2 streams a client may open at once on one connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 flow-control window of one stream (bytes a client may send unread).
    pub http2_stream_window: u32,
    /// HTTP/2 flow-control window of one connection.
    pub http2_connection_window: u32,
    /// Largest header block (both protocols).
    pub max_header_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_concurrent_reviews: 128,
            max_body_bytes_in_flight: 64 * 1024 * 1024,
            tls_handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            http2_max_concurrent_streams: 32,
            http2_stream_window: 1024 * 1024,
            http2_connection_window: 4 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
        }
    }
}
