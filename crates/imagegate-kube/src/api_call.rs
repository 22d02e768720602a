//! GETs of the Kubernetes API for `apiCall` context entries (Kyverno's `urlPath`
//! calls): JSON answers read up to a size limit, within a deadline. Nothing is cached:
//! an API call is whatever the API answers now, as in Kyverno.

use std::time::Duration;

use futures::AsyncReadExt as _;
use imagegate_engine::ClusterError;
use serde_json::Value;

/// Largest answer read (Kyverno's default `maxAPICallResponseLength`, 2 MB).
pub const MAX_ANSWER_BYTES: usize = 2_000_000;
/// Deadline of one call.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The JSON answer of a GET of `path` (an absolute API path, query allowed), at most
/// `limit` bytes, within `deadline`. An error status is [`ClusterError::Refused`] with
/// the API server's message (a server error, a transport error or the deadline is
/// [`ClusterError::Unavailable`]: it may pass by itself).
pub async fn get_json(
    client: &kube::Client,
    path: &str,
    limit: usize,
    deadline: Duration,
) -> Result<Value, ClusterError> {
    let refused = |reason: String| ClusterError::Refused {
        path: path.to_owned(),
        reason,
    };
    if !path.starts_with('/') || path.starts_with("//") {
        return Err(refused(format!(
            "urlPath {path:?} is not an absolute path of the Kubernetes API"
        )));
    }
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| refused(format!("invalid urlPath {path:?}: {e}")))?;
    let read = async {
        let stream = client.request_stream(request).await.map_err(|e| match e {
            kube::Error::Api(status) if status.code < 500 => refused(status.message.clone()),
            e => ClusterError::Unavailable(format!("GET {path}: {e}")),
        })?;
        let mut body = Vec::new();
        Box::pin(stream)
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| ClusterError::Unavailable(format!("GET {path}: {e}")))?;
        Ok::<_, ClusterError>(body)
    };
    let body = tokio::time::timeout(deadline, read)
        .await
        .map_err(|_| ClusterError::Unavailable(format!("GET {path}: timed out")))??;
    if body.len() > limit {
        return Err(refused(format!(
            "response length must be less than max allowed response length of {limit}"
        )));
    }
    serde_json::from_slice(&body).map_err(|e| refused(format!("the answer is not JSON: {e}")))
}
