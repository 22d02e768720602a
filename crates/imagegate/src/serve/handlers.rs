//! HTTP routes. Webhook listener (HTTPS): `POST /mutate`, `POST /validate`,
//! `POST /validate-policy` (policy objects at `kubectl apply`), and the probes
//! `GET /healthz`, `GET /readyz`. Metrics listener (plain HTTP): `GET /metrics` and the
//! same probes.
//!
//! A review first takes a permit of `State::reviews` and reserves its body's bytes
//! from `State::body_budget` (either exhausted: 429 at once, before the body is read,
//! so a flood costs neither memory nor CPU), then must deliver its body within
//! `Limits::body_read_timeout` (else 408).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::{Bytes, HttpBody as _};
use axum::extract::{DefaultBodyLimit, FromRequest as _, Request, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use imagegate_engine::Phase;
use imagegate_engine::admission::AdmissionReview;
use tracing::Instrument as _;

use super::State;
use super::limits::{MAX_LOGGED_FIELD, truncate};

pub use imagegate_engine::admission::MAX_REVIEW_BYTES;

/// The routes of the HTTPS listener.
pub fn webhook_router(state: Arc<State>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/validate-policy", post(validate_policy))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_REVIEW_BYTES))
        .with_state(state)
}

/// The routes of the metrics listener.
pub fn metrics_router(state: Arc<State>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn mutate(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    admission(&state, request, Phase::Mutate).await
}

async fn validate(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    admission(&state, request, Phase::Validate).await
}

async fn validate_policy(Shared(state): Shared<Arc<State>>, request: Request) -> Response {
    let received = match receive(&state, request).await {
        Ok(received) => received,
        Err(refused) => return refused,
    };
    encode(&super::policy_review::answer(&received.review).await)
}

/// A review read within the limits; its permits are held until it is answered.
struct Received<'a> {
    review: AdmissionReview,
    _permit: tokio::sync::SemaphorePermit<'a>,
    _bytes: tokio::sync::SemaphorePermit<'a>,
}

/// Takes a review permit, reserves the body's bytes and reads and parses the body within
/// the limits; else the answer that refuses it (429, 408, 413 or 400).
async fn receive(state: &State, request: Request) -> Result<Received<'_>, Response> {
    let Ok(permit) = state.reviews.try_acquire() else {
        state.metrics.rejected();
        tracing::warn!(
            limit = state.limits.max_concurrent_reviews,
            "refused an admission request: too many reviews in progress"
        );
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many admission reviews in progress\n",
        )
            .into_response());
    };
    // Reserve the body's bytes before reading it: a flood of large bodies is refused
    // instead of buffered. The length comes from Content-Length (hyper's exact size
    // hint); without one (chunked), the largest review is reserved.
    let declared = request
        .body()
        .size_hint()
        .exact()
        .and_then(|n| usize::try_from(n).ok());
    let reserve = kib(declared.unwrap_or(MAX_REVIEW_BYTES).min(MAX_REVIEW_BYTES));
    let Ok(bytes) = state.body_budget.try_acquire_many(reserve) else {
        state.metrics.rejected();
        tracing::warn!(
            limit = state.limits.max_body_bytes_in_flight,
            "refused an admission request: too many review bytes in flight"
        );
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many admission review bytes in flight\n",
        )
            .into_response());
    };
    let deadline = state.limits.body_read_timeout;
    let body = match tokio::time::timeout(deadline, Bytes::from_request(request, &())).await {
        Ok(Ok(body)) => body,
        // Too large (413) or broken: the extractor's own answer.
        Ok(Err(rejection)) => return Err(rejection.into_response()),
        Err(_) => {
            tracing::warn!("refused an admission request whose body was not sent in time");
            return Err((
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body was not received within {}s\n",
                    deadline.as_secs_f64()
                ),
            )
                .into_response());
        }
    };
    match AdmissionReview::parse(&body) {
        Ok(review) => Ok(Received {
            review,
            _permit: permit,
            _bytes: bytes,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "rejected a request that is not an AdmissionReview");
            Err((StatusCode::BAD_REQUEST, format!("{e}\n")).into_response())
        }
    }
}

async fn admission(state: &State, request: Request, phase: Phase) -> Response {
    let received = match receive(state, request).await {
        Ok(received) => received,
        Err(refused) => return refused,
    };
    // The review holds what it needs (the object as raw text); the body's copy went
    // with `receive`.
    let review = &received.review;
    let request = review.request.as_ref();
    // Request fields are the client's strings: cut to a log line's worth.
    let field = |f: fn(&imagegate_engine::admission::AdmissionRequest) -> Option<&str>| {
        truncate(request.and_then(f).unwrap_or_default(), MAX_LOGGED_FIELD).to_owned()
    };
    let kind = request.map(super::review::request_kind).unwrap_or_default();
    let span = tracing::info_span!(
        "admission",
        uid = field(|r| Some(r.uid.as_str())),
        phase = match phase {
            Phase::Mutate => "mutate",
            Phase::Validate => "validate",
        },
        kind = truncate(&kind, MAX_LOGGED_FIELD),
        namespace = field(|r| r.namespace.as_deref()),
        resource_name = field(|r| r.name.as_deref()),
        operation = field(|r| Some(r.operation.as_str())),
        dry_run = request.and_then(|r| r.dry_run).unwrap_or(false),
    );
    let answer = super::review::answer(state, review, phase)
        .instrument(span)
        .await;
    encode(&answer)
}

/// The answer as the JSON body of a 200 response.
fn encode(answer: &AdmissionReview) -> Response {
    match serde_json::to_vec(answer) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}\n"),
        )
            .into_response(),
    }
}

/// `bytes` in whole KiB (rounded up, at least 1), as semaphore permits.
pub(super) fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX)
}

/// Alive: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: policies are loaded (in cluster mode: the first complete lists of policies
/// and namespaces arrived, however many policies) and the server is not shutting down.
async fn readyz(Shared(state): Shared<Arc<State>>) -> Response {
    if !state.accepting.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let count = state.policies.snapshot().len();
    if let Some(cluster) = &state.cluster {
        if !state.cluster_synced.load(Ordering::SeqCst) || !cluster.namespaces_ready() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "waiting for the first list of policies and namespaces from the Kubernetes API\n",
            )
                .into_response();
        }
        return format!("ok: {count} policies loaded\n").into_response();
    }
    if count == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "no policies loaded\n").into_response();
    }
    format!("ok: {count} policies loaded\n").into_response()
}

async fn metrics(Shared(state): Shared<Arc<State>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        super::metrics::encode(&state.registry),
    )
        .into_response()
}
