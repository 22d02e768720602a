//! Command-line arguments (the contract of DESIGN.md "Command line").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Verifies container image signatures (Cosign, Sigstore) under Kyverno verifyImages policies.
#[derive(Debug, Parser)]
#[command(name = "imagegate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify cosign or Notation signatures (or attestations with --type) of images in a
    /// registry.
    Verify(VerifyArgs),
    /// Run the admission webhook (HTTPS: POST /mutate, /validate; metrics and health).
    Serve(ServeArgs),
    /// Verify a Sigstore bundle for a file or digest (sigstore-conformance CLI protocol).
    VerifyBundle(VerifyBundleArgs),
    /// Apply Kyverno verifyImages policies to resource files (no cluster needed).
    Apply(ApplyArgs),
    /// Run Kyverno CLI test folders (kyverno-test.yaml).
    Test(TestArgs),
    /// Answer one AdmissionReview from stdin as the webhook would.
    Review(ReviewArgs),
    /// Verify the images of the workloads running in a cluster against its (or given)
    /// policies, writing nothing.
    Audit(AuditArgs),
    /// Print the CustomResourceDefinitions of the kinds imagegate reads and writes (YAML):
    /// policies, PolicyExceptions, reports.
    Crds(CrdsArgs),
}

/// A set of CRDs of `crds --only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrdSetArg {
    /// kyverno.io ClusterPolicy, Policy; policies.kyverno.io (Namespaced)ImageValidatingPolicy.
    Policies,
    /// PolicyException of kyverno.io (v2) and of policies.kyverno.io (v1beta1).
    Exceptions,
    /// wgpolicyk8s.io (Cluster)PolicyReport; reports.kyverno.io (Cluster)EphemeralReport.
    Reports,
}

/// `imagegate crds`.
#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Print only these sets (repeatable or comma-separated). Default: all of them, the
    /// chart's crds/.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SET")]
    pub only: Vec<CrdSetArg>,
}

/// Output format of `audit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditOutput {
    /// One aligned row per workload, image and rule.
    #[default]
    Table,
    /// One JSON document with the rows and a summary.
    Json,
}

/// `imagegate audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Kubeconfig file. Default: $KUBECONFIG, else the in-cluster service account.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Policy files or directories (repeatable). Default: the cluster's ClusterPolicies
    /// and Policies.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// PolicyException files or directories (kyverno.io/v2, v2beta1, policies.kyverno.io;
    /// repeatable).
    #[arg(long, short = 'e', visible_alias = "exceptions", value_name = "FILE")]
    pub exception: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
    /// Workloads verified at the same time.
    #[arg(long, default_value_t = 16, value_name = "N")]
    pub concurrency: usize,
    /// Sigstore trust.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Output format of `apply`.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Results as lines, mutated resources as YAML documents.
    #[default]
    Yaml,
    /// One JSON document with results, summary and mutated resources.
    Json,
}

/// `imagegate apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Policy files or directories (repeatable).
    #[arg(long, short = 'p', required = true, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Resource files (repeatable; multi-document YAML or JSON).
    #[arg(
        long,
        short = 'r',
        required_unless_present = "json",
        conflicts_with = "json",
        value_name = "FILE"
    )]
    pub resource: Vec<PathBuf>,
    /// JSON payload files (repeatable), evaluated by ImageValidatingPolicies with
    /// `evaluation.mode: JSON` (Kyverno's `--json`).
    #[arg(long, value_name = "FILE")]
    pub json: Vec<PathBuf>,
    /// PolicyException files or directories (kyverno.io/v2, v2beta1, policies.kyverno.io;
    /// repeatable). Exceptions written among the policies or resources count too.
    #[arg(long, short = 'e', visible_alias = "exceptions", value_name = "FILE")]
    pub exception: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// Print a wgpolicyk8s ClusterPolicyReport instead.
    #[arg(long)]
    pub policy_report: bool,
    /// Kyverno CLI values file (cli.kyverno.io/v1alpha1 Values): values of rule
    /// context variables (globalValues, policies[].rules[].values,
    /// policies[].resources[].values, request.operation) and namespace labels
    /// (namespaceSelector), given in place of a cluster.
    #[arg(long, short = 'f', value_name = "FILE")]
    pub values_file: Option<PathBuf>,
    /// Sigstore trust.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `imagegate test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Folders holding kyverno-test.yaml files (searched recursively), or test files.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Sigstore trust.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Admission phase of `review`.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum ReviewPhase {
    /// The mutating webhook: verify, pin digests.
    #[default]
    Mutate,
    /// The validating webhook: re-check digests and required verification.
    Validate,
}

/// `imagegate review`.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Policy files or directories (repeatable).
    #[arg(long, short = 'p', required = true, value_name = "FILE")]
    pub policy: Vec<PathBuf>,
    /// Which webhook phase to answer for.
    #[arg(long, value_enum, default_value_t = ReviewPhase::Mutate)]
    pub phase: ReviewPhase,
    /// Sigstore trust.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// How to reach registries; shared by every command that fetches.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Docker config.json with registry credentials (a file, or a directory holding
    /// config.json). Default: $DOCKER_CONFIG/config.json, then ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
    /// Registry (host or host:port) that may be reached over plain HTTP. Loopback
    /// registries always may.
    #[arg(long, value_name = "HOST")]
    pub allow_insecure_registry: Vec<String>,
    /// Deadline of one registry request, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub registry_timeout: u64,
}

impl RegistryArgs {
    /// The registry client's configuration.
    pub fn config(&self) -> crate::registry::RegistryConfig {
        crate::registry::RegistryConfig {
            docker_config: self.docker_config.clone(),
            insecure_registries: self.allow_insecure_registry.clone(),
            request_timeout: std::time::Duration::from_secs(self.registry_timeout),
        }
    }

    /// The engine of an offline command: these registries, `trust`, default caches.
    pub fn engine_config(&self, trust: &TrustArgs) -> crate::engine::EngineConfig {
        crate::engine::EngineConfig {
            registry: self.config(),
            trusted_root: trust.trusted_root.clone(),
            caches: imagegate_engine::CacheOptions::default(),
            cluster: None,
        }
    }
}

/// `imagegate verify`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("signer").required(true).args(["key", "certificate_identity", "certificate_identity_regexp", "notary_cert"])))]
pub struct VerifyArgs {
    /// Public key file (PEM); several PEM blocks are several keys, any may have signed.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Notation: verify Notary Project signatures whose certificate chain contains one
    /// of these certificates (PEM or DER file; repeatable), as Kyverno's `type: Notary`.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["issuer", "annotations", "trusted_root"]
    )]
    pub notary_cert: Vec<PathBuf>,
    /// Notation: trusted time-stamping authority certificates (PEM or DER; repeatable).
    /// A timestamp countersignature is then required and the chain must have been
    /// valid at its time.
    #[arg(long, value_name = "FILE", requires = "notary_cert")]
    pub notary_tsa_cert: Vec<PathBuf>,
    /// Keyless: the identity (a subject alternative name) the Fulcio certificate must
    /// carry, exactly.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with_all = ["key", "certificate_identity_regexp"],
        requires = "issuer"
    )]
    pub certificate_identity: Option<String>,
    /// Keyless: a regular expression (unanchored, as cosign) some subject alternative
    /// name must match.
    #[arg(
        long,
        value_name = "REGEX",
        conflicts_with = "key",
        requires = "issuer"
    )]
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer the certificate must carry, exactly.
    #[arg(
        long,
        value_name = "URL",
        group = "issuer",
        conflicts_with_all = ["key", "certificate_oidc_issuer_regexp"]
    )]
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: a regular expression the OIDC issuer must match (a certificate without
    /// the issuer extension has the issuer "").
    #[arg(long, value_name = "REGEX", group = "issuer", conflicts_with = "key")]
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, TSAs); default:
    /// the embedded public-good root.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// Do not require transparency log evidence (keyless signatures and bundles).
    #[arg(long)]
    pub insecure_ignore_tlog: bool,
    /// Do not verify the signing certificate's embedded SCT (keyless; as cosign's
    /// `--insecure-ignore-sct`, Kyverno `ctlog.ignoreSCT`).
    #[arg(long)]
    pub insecure_ignore_sct: bool,
    /// Repository holding the signatures (as COSIGN_REPOSITORY).
    #[arg(long, value_name = "REGISTRY/REPOSITORY", env = "COSIGN_REPOSITORY")]
    pub repository: Option<String>,
    /// Annotation the signature payload must carry (repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Verify attestations of this predicate type (URI or cosign short name such as
    /// slsaprovenance) instead of signatures.
    #[arg(long = "type", value_name = "PREDICATE_TYPE")]
    pub predicate_type: Option<String>,
    /// Deadline for verifying each image, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Images to verify (tag or digest references).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// `imagegate verify-bundle`: the sigstore-conformance CLI protocol, offline.
///
/// `--bundle F --certificate-identity ID --certificate-oidc-issuer URL [--trusted-root F] FILE_OR_DIGEST`
/// or `--bundle F --key KEY [--trusted-root F] FILE_OR_DIGEST`.
#[derive(Debug, Args)]
pub struct VerifyBundleArgs {
    /// Sigstore bundle (JSON, v0.1 to v0.3).
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// Signer identity the Fulcio certificate must carry (a SAN, exact match).
    #[arg(long, value_name = "ID", requires = "certificate_oidc_issuer")]
    pub certificate_identity: Option<String>,
    /// OIDC issuer the Fulcio certificate must carry (exact match).
    #[arg(long, value_name = "URL", requires = "certificate_identity")]
    pub certificate_oidc_issuer: Option<String>,
    /// Public key (PEM) of a managed-key bundle, instead of an identity.
    #[arg(
        long,
        value_name = "KEY",
        conflicts_with_all = ["certificate_identity", "certificate_oidc_issuer"],
        required_unless_present_all = ["certificate_identity", "certificate_oidc_issuer"]
    )]
    pub key: Option<PathBuf>,
    /// Sigstore trusted_root.json; default: the embedded public-good root.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
    /// The signed artifact: a file, or its digest as sha256:<hex>.
    #[arg(value_name = "FILE_OR_DIGEST")]
    pub artifact: String,
}

/// `imagegate serve`: the admission webhook.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Policy files or directories (repeatable; reloaded when they change). Default:
    /// ./policies if it exists, else the bundled example policies; in cluster mode,
    /// none (the cluster's ClusterPolicies and Policies only).
    #[arg(long, value_name = "DIR|FILE")]
    pub policies: Vec<PathBuf>,
    /// Cluster mode with this kubeconfig: policies, namespace labels, keys and pull
    /// secrets from the Kubernetes API. Cluster mode is also on with $KUBECONFIG or in a
    /// Pod (service-account token).
    #[arg(long, value_name = "FILE", conflicts_with = "no_kubernetes")]
    pub kubeconfig: Option<PathBuf>,
    /// Never use the Kubernetes API (policy files only), even in a Pod.
    #[arg(long)]
    pub no_kubernetes: bool,
    /// PolicyException files or directories (kyverno.io/v2, v2beta1, policies.kyverno.io;
    /// repeatable; reloaded with the policies). Exceptions in policy files count too.
    #[arg(long, value_name = "DIR|FILE")]
    pub exceptions: Vec<PathBuf>,
    /// In cluster mode, the namespace PolicyExceptions are read from (Kyverno's
    /// --exceptionNamespace); empty or `*`: every namespace.
    #[arg(
        long,
        visible_alias = "exceptionNamespace",
        value_name = "NAMESPACE",
        default_value = ""
    )]
    pub exception_namespace: String,
    /// Address of the HTTPS webhook listener (use 0.0.0.0:8443 in a cluster).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: std::net::SocketAddr,
    /// TLS certificate chain (PEM), reloaded when it changes. Default: a self-signed
    /// certificate generated at start-up.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1), reloaded when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where the CA bundle of the self-signed certificate is written.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "imagegate-ca.pem",
        conflicts_with = "tls_cert"
    )]
    pub ca_bundle_out: PathBuf,
    /// Extra DNS name or IP address for the self-signed certificate (repeatable).
    #[arg(long, value_name = "NAME")]
    pub tls_san: Vec<String>,
    /// Service name used in the self-signed certificate (NAME.NAMESPACE.svc).
    #[arg(long, value_name = "NAME", default_value = "imagegate")]
    pub service_name: String,
    /// Service namespace used in the self-signed certificate.
    #[arg(
        long,
        value_name = "NAMESPACE",
        env = "POD_NAMESPACE",
        default_value = "imagegate"
    )]
    pub service_namespace: String,
    /// Address of the plain-HTTP listener for /metrics, /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub metrics_listen: std::net::SocketAddr,
    /// How often policy and certificate files are checked for changes, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub reload_interval: f64,
    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Log format (stderr).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "json")]
    pub log_format: LogFormat,
    /// Most open connections on the webhook listener; more are closed at once.
    #[arg(long, value_name = "COUNT", default_value_t = crate::serve::Limits::default().max_connections)]
    pub max_connections: usize,
    /// Most admission reviews evaluated at once; more are answered 429 at once.
    #[arg(long, value_name = "COUNT", default_value_t = crate::serve::Limits::default().max_concurrent_reviews)]
    pub max_concurrent_reviews: usize,
    /// Caches.
    #[command(flatten)]
    pub cache: CacheArgs,
    /// Sigstore trust.
    #[command(flatten)]
    pub trust: TrustArgs,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Reports, Events and leader election (cluster mode).
    #[command(flatten)]
    pub outputs: OutputArgs,
    /// Background scans (cluster mode).
    #[command(flatten)]
    pub background: BackgroundScanArgs,
}

/// What `serve` writes back in cluster mode (Kyverno's flags, in imagegate's spelling).
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the results of admission reviews (Audit failures and passes, Enforce
    /// passes) to PolicyReports, one per resource (Kyverno's --admissionReports).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub admission_reports: bool,
    /// Events (denials, Audit failures) waiting to be written at most; more are dropped
    /// and counted. 0: no Events (Kyverno's --maxQueuedEvents).
    #[arg(long, value_name = "COUNT", default_value_t = 1000)]
    pub max_queued_events: usize,
    /// Elect one replica (a Lease in imagegate's namespace) to write PolicyReports; the
    /// others hand their results over through EphemeralReports. false: this replica
    /// writes them (run a single replica).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Seconds a Lease that is not renewed keeps the other replicas from taking it.
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0)]
    pub leader_election_lease_duration: f64,
    /// Seconds the leader keeps leading without renewing the Lease.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub leader_election_renew_deadline: f64,
    /// Seconds between two renewals (leader) or attempts (the others)
    /// (Kyverno's --leaderElectionRetryPeriod).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub leader_election_retry_period: f64,
}

impl OutputArgs {
    /// The outputs' configuration (durations clamped to 10 ms … 1 h).
    pub fn config(&self) -> crate::serve::ClusterOutputs {
        let seconds = |s: f64| std::time::Duration::from_secs_f64(s.clamp(0.01, 3600.0).max(0.01));
        crate::serve::ClusterOutputs {
            admission_reports: self.admission_reports,
            max_queued_events: self.max_queued_events,
            leader_election: self.leader_election,
            lease_duration: seconds(self.leader_election_lease_duration),
            renew_deadline: seconds(self.leader_election_renew_deadline),
            retry_period: seconds(self.leader_election_retry_period),
            ..crate::serve::ClusterOutputs::default()
        }
    }
}

/// Background scans: in cluster mode, the images of the Pods and pod controllers
/// already running are verified against the policies with `background: true` (the
/// default) and reported as PolicyReports.
#[derive(Debug, Args)]
pub struct BackgroundScanArgs {
    /// Seconds from the end of one background scan to the start of the next (scans also
    /// run at start and when the policies change); 0 turns background scans off.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub background_scan_interval: u64,
    /// Registry requests of a background scan in flight at most; keep it below the
    /// per-registry limit, the rest stays free for admission.
    #[arg(long, value_name = "COUNT", default_value_t = imagegate_kube::ScanOptions::default().concurrency)]
    pub background_scan_concurrency: usize,
    /// Registry requests a background scan starts per second at most (0: no limit).
    #[arg(long, value_name = "PER_SECOND", default_value_t = imagegate_kube::ScanOptions::default().rate)]
    pub background_scan_rate: u32,
}

impl BackgroundScanArgs {
    /// The scans' options, `None` when they are off.
    pub fn options(&self) -> Option<imagegate_kube::ScanOptions> {
        (self.background_scan_interval > 0).then(|| imagegate_kube::ScanOptions {
            interval: std::time::Duration::from_secs(self.background_scan_interval),
            concurrency: self.background_scan_concurrency.max(1),
            rate: self.background_scan_rate,
            ..imagegate_kube::ScanOptions::default()
        })
    }
}

/// Where the in-cluster service-account token is mounted.
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Whether and how `serve` talks to the Kubernetes API: off with `--no-kubernetes`;
/// else with `--kubeconfig`, else with `$KUBECONFIG`, else in a Pod (a service-account
/// token and `$KUBERNETES_SERVICE_HOST`); else off.
pub fn kubernetes_mode(
    no_kubernetes: bool,
    kubeconfig: Option<&std::path::Path>,
    env_kubeconfig: Option<&std::ffi::OsStr>,
    in_pod: bool,
) -> crate::serve::Kubernetes {
    use crate::serve::Kubernetes;
    if no_kubernetes {
        return Kubernetes::Off;
    }
    if let Some(path) = kubeconfig {
        return Kubernetes::On {
            kubeconfig: Some(path.to_path_buf()),
        };
    }
    if env_kubeconfig.is_some_and(|v| !v.is_empty()) || in_pod {
        // `Cluster::connect` reads $KUBECONFIG, else the in-cluster configuration.
        return Kubernetes::On { kubeconfig: None };
    }
    Kubernetes::Off
}

impl ServeArgs {
    /// Cluster mode as the flags and the environment say.
    fn kubernetes(&self) -> crate::serve::Kubernetes {
        let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
            && std::path::Path::new(SERVICE_ACCOUNT_TOKEN).is_file();
        kubernetes_mode(
            self.no_kubernetes,
            self.kubeconfig.as_deref(),
            std::env::var_os("KUBECONFIG").as_deref(),
            in_pod,
        )
    }

    /// The webhook's configuration (the server never reads these arguments itself).
    pub fn config(&self) -> crate::serve::Config {
        use crate::serve::{Config, Limits, TlsConfig};
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsConfig::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => TlsConfig::SelfSigned {
                service_name: self.service_name.clone(),
                service_namespace: self.service_namespace.clone(),
                extra_names: self.tls_san.clone(),
                ca_bundle_out: self.ca_bundle_out.clone(),
            },
        };
        Config {
            policies: self.policies.clone(),
            exceptions: self.exceptions.clone(),
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            tls,
            reload_interval: std::time::Duration::from_secs_f64(
                // NaN and out-of-range values fall back to the bounds.
                self.reload_interval.clamp(0.05, 3600.0).max(0.05),
            ),
            shutdown_timeout: std::time::Duration::from_secs(self.shutdown_timeout),
            engine: crate::engine::EngineConfig {
                registry: self.registry.config(),
                trusted_root: self.trust.trusted_root.clone(),
                caches: self.cache.options(),
                cluster: None,
            },
            kubernetes: self.kubernetes(),
            outputs: self.outputs.config(),
            background_scan: self.background.options(),
            exception_namespace: Some(self.exception_namespace.trim())
                .filter(|ns| !ns.is_empty() && *ns != "*")
                .map(str::to_owned),
            limits: Limits {
                max_connections: self.max_connections.max(1),
                max_concurrent_reviews: self.max_concurrent_reviews.max(1),
                ..Limits::default()
            },
        }
    }
}

/// Sigstore trust for the policy-evaluating commands.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Sigstore trusted_root.json (Fulcio CAs, Rekor and CT log keys, TSAs) for keyless
    /// and Rekor checks; default: the embedded public-good root. Nothing is fetched.
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

/// Cache lifetimes and sizes (every cache is keyed by image digest).
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// How long a verified verdict is reused, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub verdict_cache_ttl: u64,
    /// How many verdicts are kept.
    #[arg(long, value_name = "ENTRIES", default_value_t = 10_000)]
    pub verdict_cache_size: u64,
    /// Do not reuse verdicts (every request verifies afresh).
    #[arg(long)]
    pub no_verdict_cache: bool,
    /// How long a failed verification ("no signatures found", …) is reused, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub negative_cache_ttl: u64,
    /// Do not reuse failed verifications.
    #[arg(long)]
    pub no_negative_cache: bool,
    /// How long a tag's digest is reused, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub digest_cache_ttl: u64,
    /// Resolve every tag afresh.
    #[arg(long)]
    pub no_digest_cache: bool,
}

impl CacheArgs {
    /// The engine's cache settings.
    pub fn options(&self) -> imagegate_engine::CacheOptions {
        let ttl = |disabled: bool, seconds: u64| {
            (!disabled && seconds > 0).then(|| std::time::Duration::from_secs(seconds))
        };
        imagegate_engine::CacheOptions {
            verdict_ttl: ttl(self.no_verdict_cache, self.verdict_cache_ttl),
            verdict_capacity: self.verdict_cache_size,
            negative_ttl: ttl(self.no_negative_cache, self.negative_cache_ttl),
            digest_ttl: ttl(self.no_digest_cache, self.digest_cache_ttl),
        }
    }
}

/// Format of the log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}
