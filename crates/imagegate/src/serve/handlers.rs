//! HTTP routes. Webhook listener (HTTPS): `POST /mutate`, `POST /validate`, and the
//! probes `GET /healthz`, `GET /readyz`. Metrics listener (plain HTTP): `GET /metrics`
//! and the same probes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use imagegate_engine::Phase;
use imagegate_engine::admission::AdmissionReview;
use tracing::Instrument as _;

use super::State;

pub use imagegate_engine::admission::MAX_REVIEW_BYTES;

/// The routes of the HTTPS listener.
pub fn webhook_router(state: Arc<State>) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
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

async fn mutate(Shared(state): Shared<Arc<State>>, body: Bytes) -> Response {
    admission(&state, &body, Phase::Mutate).await
}

async fn validate(Shared(state): Shared<Arc<State>>, body: Bytes) -> Response {
    admission(&state, &body, Phase::Validate).await
}

async fn admission(state: &State, body: &[u8], phase: Phase) -> Response {
    let review = match AdmissionReview::parse(body) {
        Ok(review) => review,
        Err(e) => {
            tracing::warn!(error = %e, "rejected a request that is not an AdmissionReview");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let request = review.request.as_ref();
    let field = |f: fn(&imagegate_engine::admission::AdmissionRequest) -> Option<&str>| {
        request.and_then(f).unwrap_or_default().to_owned()
    };
    let span = tracing::info_span!(
        "admission",
        uid = field(|r| Some(r.uid.as_str())),
        phase = match phase {
            Phase::Mutate => "mutate",
            Phase::Validate => "validate",
        },
        kind = field(|r| r.kind.get("kind").and_then(|k| k.as_str())),
        namespace = field(|r| r.namespace.as_deref()),
        resource_name = field(|r| r.name.as_deref()),
        operation = field(|r| Some(r.operation.as_str())),
        dry_run = request.and_then(|r| r.dry_run).unwrap_or(false),
    );
    let answer = super::review::answer(state, &review, phase)
        .instrument(span)
        .await;
    match serde_json::to_vec(&answer) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}\n"),
        )
            .into_response(),
    }
}

/// Alive: the process answers HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: policies are loaded and the server is not shutting down.
async fn readyz(Shared(state): Shared<Arc<State>>) -> Response {
    if !state.accepting.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let count = state.policies.snapshot().len();
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
