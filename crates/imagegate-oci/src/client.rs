//! A distribution v2 registry client built on `reqwest`.
//!
//! Written here rather than taken from `oci-client` because verification must cost as
//! few round trips as possible (no `/v2/` ping, auth negotiated on the first `401` and
//! cached per registry and scope, `HEAD` to resolve tags) and every answer must be
//! size-limited and digest-checked before anything else looks at it.
//!
//! Memory and state are bounded against hostile input: a body holds its registry's
//! concurrency permit and a share of a process-wide byte budget until it is read; a
//! [`Call`] can lower the limits and cap the bytes of one verification; and every map
//! keyed by a host or repository (which Pods choose) forgets its least recently used
//! entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256, Sha512};

use crate::bounded::LruMap;
use crate::challenge::{Challenge, parse_challenge, parse_token_answer};
use crate::credentials::{Credential, DockerConfig, PullSecrets};
use crate::error::{RegistryError, Result};
use crate::gate::RequestGate;
use crate::manifest::{ACCEPTED_MANIFEST_TYPES, Descriptor, FetchedManifest};
use crate::reference::Reference;

/// A token answer larger than this is refused.
const MAX_TOKEN_RESPONSE_BYTES: u64 = 256 * 1024;
/// Tokens without `expires_in` are valid for 60 s (distribution's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A cached token is dropped this long before it expires.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// A token is cached at most this long, whatever `expires_in` says (an absurd value
/// must not overflow the clock).
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Redirects followed for one request (blob downloads redirect to storage once).
const MAX_REDIRECTS: usize = 5;
/// How long a credential lookup (found or not) is reused: a helper is a process, so it
/// is not run per request, yet a `docker login` is noticed within minutes.
const CREDENTIAL_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// Cached tokens per cached registry (one per repository scope).
const TOKENS_PER_REGISTRY: usize = 4;
/// The byte budget is counted in units of this many bytes (semaphore permits are `u32`
/// per acquisition).
const BUDGET_UNIT: u64 = 1024;

/// Limits and deadlines of a [`RegistryClient`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one HTTP exchange, body included.
    pub request_timeout: Duration,
    /// Deadline of establishing one connection.
    pub connect_timeout: Duration,
    /// Largest manifest accepted.
    pub max_manifest_bytes: u64,
    /// Largest blob accepted by [`RegistryClient::get_blob`] callers that use the default.
    pub max_blob_bytes: u64,
    /// Retries after `429` or `5xx` answers.
    pub max_retries: u32,
    /// Longest wait between retries; a longer `Retry-After` fails at once.
    pub max_backoff: Duration,
    /// Registries (host or host:port) that may be reached over plain HTTP although
    /// they are not on loopback; like loopback registries they are asked over plain
    /// HTTP first, and over HTTPS when that is refused.
    pub insecure_registries: Vec<String>,
    /// Requests to one registry in flight at the same time (from sending to the last
    /// body byte read), at most: protects registries and their rate limits from a burst
    /// of cold images.
    pub max_concurrent_per_registry: usize,
    /// Bytes of answer bodies being read at the same time by the whole client, at most
    /// (each body reserves its size, or its limit when the size is unknown, before it is
    /// requested). A body larger than the budget is read alone.
    pub max_body_bytes_in_flight: u64,
    /// Registries whose scheme, credentials and concurrency bound are remembered; the
    /// least recently used are forgotten beyond it (tokens: four times as many).
    pub max_cached_registries: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 4 * 1024 * 1024,
            max_retries: 3,
            max_backoff: Duration::from_secs(2),
            insecure_registries: Vec::new(),
            max_concurrent_per_registry: 16,
            max_body_bytes_in_flight: 64 * 1024 * 1024,
            max_cached_registries: 1024,
        }
    }
}

/// What one group of requests (e.g. one image's verification under one rule) asks of
/// the client beyond its [`ClientOptions`]: limits can only be lowered here.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Plain HTTP is allowed for every registry of this call (Kyverno's per-rule
    /// `imageRegistryCredentials.allowInsecureRegistry`), tried first as on loopback.
    pub allow_plain_http: bool,
    /// Largest manifest (or referrers index) accepted, if lower than the client's.
    pub max_manifest_bytes: Option<u64>,
    /// Largest blob accepted, if lower than the limit `get_blob` is given.
    pub max_blob_bytes: Option<u64>,
    /// Bytes of answer bodies this call may read in total (manifests, blobs, referrers,
    /// tokens), over all its requests; beyond it requests fail with
    /// [`RegistryError::CallBudgetExceeded`].
    pub max_total_bytes: Option<u64>,
    /// Credentials this call brings (a Pod's pull secrets), tried before the client's
    /// docker config. Tokens obtained with them are cached for them alone.
    pub pull_secrets: Option<Arc<PullSecrets>>,
    /// A bound this call's requests pass before the registry's own (a background
    /// scan's narrower concurrency and its rate), held like the registry's place.
    pub gate: Option<RequestGate>,
}

/// A view of a [`RegistryClient`] with [`CallOptions`]; cheap to create and clone (the
/// clones share the count of bytes read). Everything else (connections, tokens,
/// schemes) is the client's.
#[derive(Debug, Clone)]
pub struct Call<'a> {
    client: &'a RegistryClient,
    options: CallOptions,
    read: Arc<AtomicU64>,
}

/// An answer whose headers arrived, holding its places (registry concurrency, byte
/// budget) until its body is read or it is dropped.
pub(crate) struct Answer {
    pub(crate) response: Response,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The call's [`RequestGate`] place, if it has a gate.
    _gate: Option<tokio::sync::OwnedSemaphorePermit>,
    budget: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl std::ops::Deref for Answer {
    type Target = Response;
    fn deref(&self) -> &Response {
        &self.response
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

#[derive(Debug, Clone)]
enum Authorization {
    Basic(String),
    Bearer { header: String, expires: Instant },
}

#[derive(Debug)]
struct State {
    /// Scheme that worked for each registry host.
    schemes: LruMap<String, Scheme>,
    /// Authorization header per (registry, scope, identity of the credential used:
    /// [`PullSecrets::identity_for`]).
    authorizations: LruMap<(String, String, u64), Authorization>,
    /// Credentials looked up per registry, and when (helpers are slow to run).
    credentials: LruMap<String, (Option<Credential>, Instant)>,
    /// Bound on concurrent requests per registry host. Forgetting one whose permits are
    /// held lets a few more requests through to that host for a moment, no more.
    permits: LruMap<String, Arc<tokio::sync::Semaphore>>,
    /// Registry hosts that answered `404` to the referrers API: they lack it (the
    /// distribution spec forbids a `404` from one that has it), so their referrers are
    /// read from the fallback tag at once, one request fewer per verification.
    without_referrers_api: LruMap<String, ()>,
}

impl State {
    fn new(registries: usize) -> State {
        State {
            schemes: LruMap::new(registries),
            authorizations: LruMap::new(registries.saturating_mul(TOKENS_PER_REGISTRY)),
            credentials: LruMap::new(registries),
            permits: LruMap::new(registries),
            without_referrers_api: LruMap::new(registries),
        }
    }
}

/// Entries held in the client's caches (for tests and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSizes {
    /// Registries whose scheme is known.
    pub schemes: usize,
    /// Cached `Authorization` headers (registry × scope).
    pub authorizations: usize,
    /// Registries whose credential lookup is cached.
    pub credentials: usize,
    /// Registries with a concurrency bound.
    pub permits: usize,
}

/// A registry client shared by every verification: it reuses connections, tokens and
/// the scheme each registry speaks.
///
/// A clone is cheap and shares all of that, the body budget and the request count with
/// the original (several engines over one client, as the benchmarks build them); only
/// [`RegistryClient::with_observer`] is per clone.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    options: ClientOptions,
    docker_config: Arc<DockerConfig>,
    state: Arc<Mutex<State>>,
    requests: Arc<AtomicU64>,
    observer: Option<Arc<dyn RequestObserver>>,
    /// The process-wide budget of body bytes in flight, in [`BUDGET_UNIT`]s.
    body_budget: Arc<tokio::sync::Semaphore>,
    body_budget_units: u32,
    /// Credential helpers run one at a time: a burst of images from new hosts costs one
    /// helper process after another, never hundreds at once.
    helper_gate: Arc<tokio::sync::Mutex<()>>,
}

/// Told about every registry answer (for metrics); must be cheap.
pub trait RequestObserver: Send + Sync + std::fmt::Debug {
    /// One request to `registry` ended with HTTP `status`, or with no answer (`None`).
    fn observe(&self, registry: &str, status: Option<u16>);
}

impl RegistryClient {
    /// A client with the given credentials and limits.
    pub fn new(docker_config: DockerConfig, options: ClientOptions) -> Result<RegistryClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("imagegate/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| RegistryError::Unreachable {
                registry: "(client set-up)".into(),
                reason: error_chain(&e),
            })?;
        let body_budget_units = u32::try_from(options.max_body_bytes_in_flight / BUDGET_UNIT)
            .unwrap_or(u32::MAX)
            .clamp(1, tokio::sync::Semaphore::MAX_PERMITS as u32);
        Ok(RegistryClient {
            http,
            state: Arc::new(Mutex::new(State::new(options.max_cached_registries))),
            options,
            docker_config: Arc::new(docker_config),
            requests: Arc::new(AtomicU64::new(0)),
            observer: None,
            body_budget: Arc::new(tokio::sync::Semaphore::new(body_budget_units as usize)),
            body_budget_units,
            helper_gate: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The same client reporting every answer to `observer` (other clones keep theirs).
    pub fn with_observer(mut self, observer: Arc<dyn RequestObserver>) -> RegistryClient {
        self.observer = Some(observer);
        self
    }

    fn observe(&self, registry: &str, status: Option<u16>) {
        if let Some(observer) = &self.observer {
            observer.observe(registry, status);
        }
    }

    /// The limits in force.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// How many HTTP requests this client has sent (registry and token service): a
    /// connection attempt that was refused sent nothing and is not counted.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Entries held in the caches keyed by registry.
    pub fn cache_sizes(&self) -> CacheSizes {
        let state = self.lock();
        CacheSizes {
            schemes: state.schemes.len(),
            authorizations: state.authorizations.len(),
            credentials: state.credentials.len(),
            permits: state.permits.len(),
        }
    }

    /// A view of this client with `options` for one group of requests.
    pub fn call(&self, options: CallOptions) -> Call<'_> {
        Call {
            client: self,
            options,
            read: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The digest `image` names; see [`Call::resolve_digest`].
    pub async fn resolve_digest(&self, image: &Reference) -> Result<String> {
        self.call(CallOptions::default())
            .resolve_digest(image)
            .await
    }

    /// The descriptor of the manifest `image` names; see [`Call::resolve_descriptor`].
    pub async fn resolve_descriptor(&self, image: &Reference) -> Result<Descriptor> {
        self.call(CallOptions::default())
            .resolve_descriptor(image)
            .await
    }

    /// The manifest `image` names; see [`Call::get_manifest`].
    pub async fn get_manifest(&self, image: &Reference) -> Result<Option<FetchedManifest>> {
        self.call(CallOptions::default()).get_manifest(image).await
    }

    /// The blob `descriptor` names; see [`Call::get_blob`].
    pub async fn get_blob(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>> {
        self.call(CallOptions::default())
            .get_blob(repository, descriptor, limit)
            .await
    }
}

impl<'a> Call<'a> {
    /// The client this call uses.
    pub fn client(&self) -> &'a RegistryClient {
        self.client
    }

    /// Bytes of answer bodies this call (and its clones) has read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The manifest limit in force for this call.
    pub fn max_manifest_bytes(&self) -> u64 {
        lowered(
            self.client.options.max_manifest_bytes,
            self.options.max_manifest_bytes,
        )
    }

    /// The digest `image` names: its own digest if it has one (no request), else the
    /// digest the registry reports for the tag (one `HEAD`). For a multi-platform
    /// image this is the index digest: no platform is ever chosen.
    pub async fn resolve_digest(&self, image: &Reference) -> Result<String> {
        if let Some(digest) = image.digest() {
            return Ok(digest.to_owned());
        }
        self.resolve_descriptor(image).await.map(|d| d.digest)
    }

    /// The descriptor (media type, digest, size) of the manifest `image` names, as a
    /// Notation signature signs it: one `HEAD` (by tag, or by digest when `image` has
    /// one), or a `GET` when the registry omits a header there. A digest the registry
    /// reports for a digest reference must be that digest.
    pub async fn resolve_descriptor(&self, image: &Reference) -> Result<Descriptor> {
        let path = format!("manifests/{}", image.reference_for_api());
        let response = self
            .send(image, Method::HEAD, &path, &ACCEPTED_MANIFEST_TYPES, 0)
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::ManifestUnknown {
                reference: image.to_string(),
            });
        }
        if !status.is_success() {
            return Err(self.client.unexpected(image, status, "HEAD", &path));
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let digest = header("docker-content-digest").filter(|d| is_valid_digest(d));
        let media_type = header(CONTENT_TYPE.as_str())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .filter(|t| ACCEPTED_MANIFEST_TYPES.contains(&t.as_str()));
        let size = header(reqwest::header::CONTENT_LENGTH.as_str())
            .and_then(|v| v.trim().parse::<u64>().ok());
        drop(response);
        let descriptor = match (digest, media_type, size) {
            (Some(digest), Some(media_type), Some(size)) => Descriptor {
                media_type,
                digest,
                size,
                annotations: None,
                artifact_type: None,
            },
            // Some registries omit a header on HEAD: the manifest itself says it all.
            _ => {
                let fetched = self.get_manifest(image).await?.ok_or_else(|| {
                    RegistryError::ManifestUnknown {
                        reference: image.to_string(),
                    }
                })?;
                Descriptor {
                    size: fetched.bytes.len() as u64,
                    media_type: fetched.media_type,
                    digest: fetched.digest,
                    annotations: None,
                    artifact_type: None,
                }
            }
        };
        if let Some(expected) = image.digest()
            && descriptor.digest != expected
        {
            return Err(RegistryError::DigestMismatch {
                registry: image.registry().to_owned(),
                what: format!("manifest {image}"),
                expected: expected.to_owned(),
                actual: descriptor.digest,
            });
        }
        Ok(descriptor)
    }

    /// The manifest `image` names (by digest if it has one, else by tag), or `None` when
    /// the registry does not have it. The bytes are size-limited and digest-checked.
    pub async fn get_manifest(&self, image: &Reference) -> Result<Option<FetchedManifest>> {
        let path = format!("manifests/{}", image.reference_for_api());
        let limit = self.max_manifest_bytes();
        let response = self
            .send(image, Method::GET, &path, &ACCEPTED_MANIFEST_TYPES, limit)
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.client.unexpected(image, status, "GET", &path));
        }
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
        let bytes = self
            .read_limited(image.registry(), response, limit, "manifest")
            .await?;
        let expected = image.digest().map(str::to_owned).or(header_digest);
        let digest = match &expected {
            Some(expected) => {
                let actual =
                    digest_of(expected, &bytes).ok_or_else(|| RegistryError::Malformed {
                        registry: image.registry().to_owned(),
                        reason: format!("unsupported digest {expected}"),
                    })?;
                if &actual != expected {
                    return Err(RegistryError::DigestMismatch {
                        registry: image.registry().to_owned(),
                        what: format!("manifest {image}"),
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            None => sha256_digest(&bytes),
        };
        let media_type = content_type
            .filter(|t| ACCEPTED_MANIFEST_TYPES.contains(&t.as_str()))
            .or_else(|| declared_media_type(&bytes))
            .unwrap_or_default();
        Ok(Some(FetchedManifest {
            media_type,
            digest,
            bytes,
        }))
    }

    /// The blob `descriptor` names, from the repository of `repository`; at most `limit`
    /// bytes (or this call's lower blob limit), and exactly the size and digest the
    /// descriptor gives. Its size is reserved in the byte budget before it is asked for.
    pub async fn get_blob(
        &self,
        repository: &Reference,
        descriptor: &Descriptor,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let registry = repository.registry();
        if !is_valid_digest(&descriptor.digest) {
            return Err(RegistryError::Malformed {
                registry: registry.to_owned(),
                reason: format!(
                    "descriptor digest {:?} is not a sha256/sha512 digest",
                    descriptor.digest
                ),
            });
        }
        let what = format!("blob {}", descriptor.digest);
        let limit = lowered(limit, self.options.max_blob_bytes);
        if descriptor.size > limit {
            return Err(RegistryError::TooLarge {
                registry: registry.to_owned(),
                what,
                limit,
            });
        }
        self.check_total(registry, &what, descriptor.size)?;
        let path = format!("blobs/{}", descriptor.digest);
        let response = self
            .send(repository, Method::GET, &path, &[], descriptor.size)
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(RegistryError::BlobUnknown {
                registry: registry.to_owned(),
                repository: repository.repository().to_owned(),
                digest: descriptor.digest.clone(),
            });
        }
        if !status.is_success() {
            return Err(self.client.unexpected(repository, status, "GET", &path));
        }
        let bytes = self.read_limited(registry, response, limit, &what).await?;
        if bytes.len() as u64 != descriptor.size {
            return Err(RegistryError::SizeMismatch {
                registry: registry.to_owned(),
                digest: descriptor.digest.clone(),
                expected: descriptor.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = digest_of(&descriptor.digest, &bytes).unwrap_or_default();
        if actual != descriptor.digest {
            return Err(RegistryError::DigestMismatch {
                registry: registry.to_owned(),
                what,
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Sends one request for `/v2/<repository>/<path>`, negotiating scheme and
    /// authorization, and retrying `429`/`5xx` with bounded backoff. `reserve` bytes of
    /// the body budget (the size of the body to come, or its limit) and a place among
    /// the registry's requests are held by the answer until its body is read.
    pub(crate) async fn send(
        &self,
        image: &Reference,
        method: Method,
        path: &str,
        accept: &[&str],
        reserve: u64,
    ) -> Result<Answer> {
        let registry = image.registry();
        let host = image.api_host();
        // The call's gate, budget, then the registry's place, always in this order: a
        // request holding one never waits for another held by a request waiting for the
        // first. The gate comes first so that a gated request never sits on the shared
        // budget or a registry place while it waits for its turn.
        let gate = match &self.options.gate {
            Some(gate) => gate.enter().await,
            None => None,
        };
        let budget = self.client.reserve(registry, reserve).await?;
        let permit = self.client.permit(host).await;
        let scope = format!("repository:{}:pull", image.repository());
        let plain_http_allowed = self.options.allow_plain_http
            || image.is_loopback()
            || self
                .client
                .options
                .insecure_registries
                .iter()
                .any(|r| r == registry || r == host);
        let mut authenticated = false;
        // The authorization just negotiated, used for the next attempt even if it is
        // already stale by the cache's margin (e.g. `expires_in` of a few seconds).
        let mut fresh_authorization: Option<String> = None;
        // First contact with a registry whose scheme is not known: where plain HTTP is
        // allowed it is tried first (as go-containerregistry does: no TLS handshake to
        // wait for on loopback), HTTPS when nothing speaks plain HTTP there. The scheme
        // is only remembered once a registry answered with it.
        let mut https_after_plain = false;
        // A `400` to the plain-HTTP first contact (what a TLS-only Go server answers):
        // kept in case HTTPS does not answer either.
        let mut plain_answer: Option<Response> = None;
        // A request on a pooled connection the server had just closed is resent once.
        let mut resent = false;
        let mut attempts = 0u32;
        loop {
            // A scheme learned by a call allowed plain HTTP is not used by one that is not.
            let known_scheme = self
                .client
                .lock()
                .schemes
                .get(&host.to_owned())
                .copied()
                .filter(|scheme| *scheme == Scheme::Https || plain_http_allowed);
            let scheme = match known_scheme {
                Some(scheme) => scheme,
                None if plain_http_allowed && !https_after_plain => Scheme::Http,
                None => Scheme::Https,
            };
            let url = format!(
                "{}://{host}/v2/{}/{path}",
                scheme.as_str(),
                image.repository()
            );
            let mut request = self.client.http.request(method.clone(), &url);
            if !accept.is_empty() {
                request = request.header(ACCEPT, accept.join(", "));
            }
            if let Some(authorization) = fresh_authorization.take().or_else(|| {
                self.client
                    .cached_authorization(registry, &scope, self.identity(registry))
            }) {
                request = request.header(AUTHORIZATION, authorization);
            }
            attempts += 1;
            let sent = request.send().await;
            // A connection that could not be made (refused, TLS handshake failed) carried
            // no HTTP request.
            if !matches!(&sent, Err(e) if e.is_connect()) {
                self.client.requests.fetch_add(1, Ordering::Relaxed);
            }
            let first_plain_contact =
                known_scheme.is_none() && scheme == Scheme::Http && !https_after_plain;
            let response = match sent {
                Ok(response) => response,
                // Nothing listens for plain HTTP: try HTTPS.
                Err(e) if first_plain_contact && e.is_connect() && !e.is_timeout() => {
                    tracing::debug!(registry, error = %error_chain(&e), "plain HTTP failed, trying HTTPS");
                    https_after_plain = true;
                    attempts -= 1;
                    continue;
                }
                Err(e) if known_scheme.is_none() && scheme == Scheme::Https && e.is_connect() => {
                    if let Some(response) = plain_answer.take() {
                        // HTTPS does not answer either: the `400` was the registry's.
                        self.client
                            .lock()
                            .schemes
                            .insert(host.to_owned(), Scheme::Http);
                        self.client
                            .observe(registry, Some(response.status().as_u16()));
                        return Ok(Answer {
                            response,
                            _permit: permit,
                            _gate: gate,
                            budget,
                        });
                    }
                    // No connection at all is a network problem, not a registry that
                    // does not speak HTTPS.
                    if plain_http_allowed
                        || e.is_timeout()
                        || e.is_dns()
                        || is_tcp_connect_failure(&e)
                    {
                        self.client.observe(registry, None);
                        return Err(self.client.transport_error(registry, &e));
                    }
                    return Err(RegistryError::InsecureRefused {
                        registry: registry.to_owned(),
                        reason: error_chain(&e),
                    });
                }
                // Every request here is a GET or HEAD, so resending is safe; a pooled
                // connection closed by the server (idle timeout, restart) is not an
                // answer from the registry.
                Err(e) if !resent && !e.is_connect() && !e.is_timeout() && !e.is_redirect() => {
                    tracing::debug!(registry, error = %error_chain(&e), "resending once");
                    resent = true;
                    attempts -= 1;
                    continue;
                }
                Err(e) => {
                    self.client.observe(registry, None);
                    return Err(self.client.transport_error(registry, &e));
                }
            };
            let status = response.status();
            if first_plain_contact && status == StatusCode::BAD_REQUEST {
                tracing::debug!(registry, "plain HTTP answered 400, trying HTTPS");
                plain_answer = Some(response);
                https_after_plain = true;
                attempts -= 1;
                continue;
            }
            if known_scheme.is_none() {
                self.client.lock().schemes.insert(host.to_owned(), scheme);
            }
            self.client.observe(registry, Some(status.as_u16()));
            tracing::debug!(registry, %method, path, status = status.as_u16(), "registry request");
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                authenticated = true;
                fresh_authorization =
                    Some(self.authenticate(image, &scope, response.headers()).await?);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let hint = match self.credential(registry).await? {
                    Some(_) => "",
                    None => " (no credentials configured)",
                };
                return Err(RegistryError::Unauthorized {
                    registry: registry.to_owned(),
                    repository: image.repository().to_owned(),
                    hint,
                });
            }
            if is_retryable(status) {
                if attempts > self.client.options.max_retries {
                    return Err(RegistryError::RetriesExhausted {
                        registry: registry.to_owned(),
                        status: status.as_u16(),
                        attempts,
                    });
                }
                let wait = match retry_after(response.headers()) {
                    Some(wait) if wait > self.client.options.max_backoff => {
                        return Err(RegistryError::RateLimited {
                            registry: registry.to_owned(),
                            retry_after: wait,
                        });
                    }
                    Some(wait) => wait,
                    None => backoff(attempts, self.client.options.max_backoff),
                };
                tracing::debug!(registry, status = status.as_u16(), ?wait, "retrying");
                tokio::time::sleep(wait).await;
                continue;
            }
            return Ok(Answer {
                response,
                _permit: permit,
                _gate: gate,
                budget,
            });
        }
    }

    /// Fails if reading `more` bytes would take this call past its total budget.
    fn check_total(&self, registry: &str, what: &str, more: u64) -> Result<()> {
        match self.options.max_total_bytes {
            Some(limit) if self.bytes_read().saturating_add(more) > limit => {
                Err(RegistryError::CallBudgetExceeded {
                    registry: registry.to_owned(),
                    what: what.to_owned(),
                    limit,
                })
            }
            _ => Ok(()),
        }
    }

    /// Answers a `401`: Basic credentials, or a token from the realm. Returns the
    /// `Authorization` header value (also cached).
    async fn authenticate(
        &self,
        image: &Reference,
        scope: &str,
        headers: &HeaderMap,
    ) -> Result<String> {
        let registry = image.registry();
        let challenge = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            .next();
        let credential = self.credential(registry).await?;
        let unauthorized = |hint| RegistryError::Unauthorized {
            registry: registry.to_owned(),
            repository: image.repository().to_owned(),
            hint,
        };
        let authorization = match challenge {
            Some(Challenge::Basic) => match &credential {
                Some(Credential::UserPassword { username, password }) => {
                    Authorization::Basic(basic_header(username, password))
                }
                Some(Credential::IdentityToken(_)) => return Err(unauthorized("")),
                None => return Err(unauthorized(" (no credentials configured)")),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                self.fetch_token(
                    image,
                    &realm,
                    service.as_deref(),
                    scope,
                    credential.as_ref(),
                )
                .await?
            }
            None => {
                return Err(RegistryError::Malformed {
                    registry: registry.to_owned(),
                    reason: "401 without a usable WWW-Authenticate challenge".into(),
                });
            }
        };
        let header = match &authorization {
            Authorization::Basic(header) | Authorization::Bearer { header, .. } => header.clone(),
        };
        self.client.lock().authorizations.insert(
            (
                registry.to_owned(),
                scope.to_owned(),
                self.identity(registry),
            ),
            authorization,
        );
        Ok(header)
    }

    /// Whose credentials this call uses for `registry` (0: the client's docker config).
    fn identity(&self, registry: &str) -> u64 {
        self.options
            .pull_secrets
            .as_ref()
            .map_or(0, |secrets| secrets.identity_for(registry))
    }

    /// The credential for `registry`: this call's pull secrets first, then the
    /// client's docker config.
    async fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        let pulled = self
            .options
            .pull_secrets
            .as_ref()
            .and_then(|secrets| secrets.credential_for(registry));
        match pulled {
            Some(credential) => Ok(Some(credential.clone())),
            None => self.client.credential(registry).await,
        }
    }

    async fn fetch_token(
        &self,
        image: &Reference,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<Authorization> {
        let registry = image.registry();
        let realm_url = url::Url::parse(realm).map_err(|e| RegistryError::Malformed {
            registry: registry.to_owned(),
            reason: format!("token realm {realm:?}: {e}"),
        })?;
        let realm_shown = format!(
            "{}://{}{}{}",
            realm_url.scheme(),
            realm_url.host_str().unwrap_or_default(),
            realm_url
                .port()
                .map(|p| format!(":{p}"))
                .unwrap_or_default(),
            realm_url.path()
        );
        let token_error = |reason: String| RegistryError::TokenService {
            registry: registry.to_owned(),
            realm: realm_shown.clone(),
            reason,
        };
        let realm_is_plain = realm_url.scheme() != "https";
        // Loopback by address, not by spelling: `127.evil.example` is a remote host.
        let realm_is_loopback = match realm_url.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let realm_host = realm_url.host_str();
        let realm_host_allowed = realm_is_loopback
            || self
                .client
                .options
                .insecure_registries
                .iter()
                .any(|r| realm_host.is_some_and(|h| r.split(':').next() == Some(h)))
            // A call allowed plain HTTP may get its token from the registry's own host.
            || (self.options.allow_plain_http
                && realm_host.is_some_and(|h| registry.split(':').next() == Some(h)));
        if realm_is_plain && !realm_host_allowed {
            return Err(token_error(
                "refusing to send credentials to a token service over plain HTTP".into(),
            ));
        }
        let mut query: Vec<(&str, &str)> = vec![("scope", scope)];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut token_url = realm_url.clone();
        token_url.query_pairs_mut().extend_pairs(&query);
        let request = match credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = query.clone();
                form.extend([
                    ("grant_type", "refresh_token"),
                    ("client_id", "imagegate"),
                    ("refresh_token", refresh.as_str()),
                ]);
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                self.client
                    .http
                    .post(realm_url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            Some(Credential::UserPassword { username, password }) => self
                .client
                .http
                .get(token_url)
                .header(AUTHORIZATION, basic_header(username, password)),
            None => self.client.http.get(token_url),
        };
        let sent = request.send().await;
        if !matches!(&sent, Err(e) if e.is_connect()) {
            self.client.requests.fetch_add(1, Ordering::Relaxed);
        }
        let response = sent.map_err(|e| token_error(error_chain(&e)))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: registry.to_owned(),
                repository: image.repository().to_owned(),
                hint: if credential.is_none() {
                    " (no credentials configured)"
                } else {
                    ""
                },
            });
        }
        if !status.is_success() {
            return Err(token_error(format!("answered {}", status.as_u16())));
        }
        // Read within the registry request that asked for it (whose places it uses).
        let answer = Answer {
            response,
            _permit: None,
            _gate: None,
            budget: None,
        };
        let bytes = self
            .read_limited(registry, answer, MAX_TOKEN_RESPONSE_BYTES, "token response")
            .await?;
        let answer = parse_token_answer(&bytes).map_err(|e| token_error(e.to_string()))?;
        let token = answer.token;
        let lifetime = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .min(MAX_TOKEN_LIFETIME)
            .saturating_sub(TOKEN_EXPIRY_MARGIN);
        Ok(Authorization::Bearer {
            header: format!("Bearer {token}"),
            expires: Instant::now() + lifetime,
        })
    }

    /// The body of `answer`, at most `limit` bytes (and within this call's total);
    /// the answer's places are given back once it is read.
    pub(crate) async fn read_limited(
        &self,
        registry: &str,
        answer: Answer,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>> {
        let Answer {
            mut response,
            _permit,
            _gate,
            mut budget,
        } = answer;
        let too_large = || RegistryError::TooLarge {
            registry: registry.to_owned(),
            what: what.to_owned(),
            limit,
        };
        let announced = response.content_length();
        if announced.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        if let Some(len) = announced {
            self.check_total(registry, what, len)?;
            // Give back what the announced length will not use of the reservation.
            if let Some(held) = budget.as_mut() {
                let needed = budget_units(len).max(1) as usize;
                if held.num_permits() > needed {
                    drop(held.split(held.num_permits() - needed));
                }
            }
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.client.transport_error(registry, &e))?
        {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            self.check_total(registry, what, chunk.len() as u64)?;
            self.read.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

impl RegistryClient {
    /// `bytes` of the body budget (at most all of it), waited for no longer than a
    /// request may take.
    async fn reserve(
        &self,
        registry: &str,
        bytes: u64,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>> {
        if bytes == 0 {
            return Ok(None);
        }
        let units = budget_units(bytes).clamp(1, self.body_budget_units);
        let wait = self.options.request_timeout;
        match tokio::time::timeout(
            wait,
            Arc::clone(&self.body_budget).acquire_many_owned(units),
        )
        .await
        {
            // The semaphore is never closed.
            Ok(permit) => Ok(permit.ok()),
            Err(_) => Err(RegistryError::Busy {
                registry: registry.to_owned(),
                after: wait,
            }),
        }
    }

    /// A place among the requests in flight to `host`.
    async fn permit(&self, host: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let semaphore = {
            let mut state = self.lock();
            state
                .permits
                .get_or_insert_with(&host.to_owned(), || {
                    Arc::new(tokio::sync::Semaphore::new(
                        self.options.max_concurrent_per_registry.max(1),
                    ))
                })
                .clone()
        };
        // The semaphore is never closed, so acquiring only fails if it were.
        semaphore.acquire_owned().await.ok()
    }

    /// Whether `host` is known to lack the referrers API.
    pub(crate) fn lacks_referrers_api(&self, host: &str) -> bool {
        self.lock()
            .without_referrers_api
            .get(&host.to_owned())
            .is_some()
    }

    /// Remembers that `host` lacks the referrers API.
    pub(crate) fn note_no_referrers_api(&self, host: &str) {
        self.lock()
            .without_referrers_api
            .insert(host.to_owned(), ());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain maps; a panic elsewhere cannot leave them inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached_authorization(&self, registry: &str, scope: &str, identity: u64) -> Option<String> {
        let mut state = self.lock();
        let key = (registry.to_owned(), scope.to_owned(), identity);
        match state.authorizations.get(&key) {
            Some(Authorization::Basic(header)) => Some(header.clone()),
            Some(Authorization::Bearer { header, expires }) if *expires > Instant::now() => {
                Some(header.clone())
            }
            Some(Authorization::Bearer { .. }) => {
                state.authorizations.remove(&key);
                None
            }
            None => None,
        }
    }

    /// The credential for `registry`, looked up at most once per
    /// [`CREDENTIAL_LIFETIME`] (found or not: a host without credentials is the common
    /// case and must not run a helper per request).
    async fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        let key = registry.to_owned();
        let cached = |client: &RegistryClient| match client.lock().credentials.get(&key) {
            Some((found, at)) if at.elapsed() < CREDENTIAL_LIFETIME => Some(found.clone()),
            _ => None,
        };
        if let Some(found) = cached(self) {
            return Ok(found);
        }
        // One lookup at a time; a caller that waited finds the lookup it waited for.
        let _gate = self.helper_gate.lock().await;
        if let Some(found) = cached(self) {
            return Ok(found);
        }
        let found = self.docker_config.credential_for(registry).await?;
        self.lock()
            .credentials
            .insert(key, (found.clone(), Instant::now()));
        Ok(found)
    }

    fn transport_error(&self, registry: &str, error: &reqwest::Error) -> RegistryError {
        if error.is_timeout() {
            RegistryError::Timeout {
                registry: registry.to_owned(),
                after: self.options.request_timeout,
            }
        } else if error.is_redirect() {
            RegistryError::TooManyRedirects {
                registry: registry.to_owned(),
            }
        } else if error.is_connect() {
            RegistryError::Unreachable {
                registry: registry.to_owned(),
                reason: error_chain(error),
            }
        } else {
            RegistryError::Transfer {
                registry: registry.to_owned(),
                reason: error_chain(error),
            }
        }
    }

    pub(crate) fn unexpected(
        &self,
        image: &Reference,
        status: StatusCode,
        method: &str,
        path: &str,
    ) -> RegistryError {
        RegistryError::UnexpectedStatus {
            registry: image.registry().to_owned(),
            status: status.as_u16(),
            method: method.to_owned(),
            path: format!("/v2/{}/{path}", image.repository()),
        }
    }
}

/// `limit`, or `lower` if that is lower.
fn lowered(limit: u64, lower: Option<u64>) -> u64 {
    lower.map_or(limit, |lower| lower.min(limit))
}

/// Budget units covering `bytes`.
fn budget_units(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(BUDGET_UNIT)).unwrap_or(u32::MAX)
}

fn basic_header(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn backoff(attempt: u32, cap: Duration) -> Duration {
    let base = Duration::from_millis(100).saturating_mul(1 << attempt.min(10));
    base.min(cap)
}

/// Whether `error` failed before any TLS byte was exchanged: the TCP connection itself
/// could not be made (refused, no route, timed out).
fn is_tcp_connect_failure(error: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::NetworkDown
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::TimedOut
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The error and its causes, without the URL (which is in the message already) — and
/// never a header, so never a secret.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `sha256:<64 hex>` or `sha512:<128 hex>`, lowercase.
pub fn is_valid_digest(digest: &str) -> bool {
    let hex_ok = |hex: &str, len: usize| {
        hex.len() == len
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match digest.split_once(':') {
        Some(("sha256", hex)) => hex_ok(hex, 64),
        Some(("sha512", hex)) => hex_ok(hex, 128),
        _ => false,
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The digest of `bytes` with the algorithm of `like`; `None` for unknown algorithms.
fn digest_of(like: &str, bytes: &[u8]) -> Option<String> {
    match like.split_once(':')?.0 {
        "sha256" => Some(sha256_digest(bytes)),
        "sha512" => Some(format!("sha512:{}", hex::encode(Sha512::digest(bytes)))),
        _ => None,
    }
}

fn declared_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct MediaTypeOnly {
        media_type: Option<String>,
    }
    serde_json::from_slice::<MediaTypeOnly>(bytes)
        .ok()?
        .media_type
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert!(is_valid_digest(&sha256_digest(b"x")));
        assert!(!is_valid_digest("sha256:ABC"));
        assert!(!is_valid_digest("sha256:../../etc"));
        assert!(!is_valid_digest("md5:00"));
        assert_eq!(
            digest_of("sha512:00", b"").as_deref().map(|d| d.len()),
            Some(7 + 128)
        );
    }

    #[test]
    fn backoff_is_bounded() {
        let cap = Duration::from_secs(2);
        assert_eq!(backoff(1, cap), Duration::from_millis(200));
        assert_eq!(backoff(30, cap), cap);
    }
}
