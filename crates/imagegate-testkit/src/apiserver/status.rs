//! `metav1.Status` failures, shaped as the real API server writes them (kubectl prints
//! `Error from server (REASON): MESSAGE` from these).

use serde_json::{Value, json};

/// A failed request: HTTP code, `reason` and message, plus the object it concerned.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: u16,
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    /// `(group, kind-plural, name)` for `details`.
    pub(crate) details: Option<(String, String, String)>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: String) -> Self {
        ApiError {
            code,
            reason,
            message,
            details: None,
        }
    }

    fn with_details(mut self, group: &str, plural: &str, name: &str) -> Self {
        self.details = Some((group.to_owned(), plural.to_owned(), name.to_owned()));
        self
    }

    /// 404 for a named object.
    pub(crate) fn not_found(group: &str, qualified: &str, plural: &str, name: &str) -> Self {
        ApiError::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
            .with_details(group, plural, name)
    }

    /// 404 for a path the server does not serve.
    pub(crate) fn no_route() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
        )
    }

    /// 409 on create of an existing name.
    pub(crate) fn already_exists(group: &str, qualified: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        )
        .with_details(group, plural, name)
    }

    /// 409 on a stale `resourceVersion`.
    pub(crate) fn conflict(group: &str, qualified: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
        .with_details(group, plural, name)
    }

    /// 422 with a field error.
    pub(crate) fn invalid(kind: &str, name: &str, cause: &str) -> Self {
        ApiError::new(
            422,
            "Invalid",
            format!("{kind} \"{name}\" is invalid: {cause}"),
        )
    }

    /// 400.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message.into())
    }

    /// 410 for a `resourceVersion` or `continue` token older than the retained history.
    pub(crate) fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message.into())
    }

    /// 401.
    pub(crate) fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized".into())
    }

    /// 405.
    pub(crate) fn method_not_allowed() -> Self {
        ApiError::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
        )
    }

    /// 413.
    pub(crate) fn too_large() -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            "the request body is too large".into(),
        )
    }

    /// 415.
    pub(crate) fn unsupported_media(ct: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
            ),
        )
    }

    /// 429 when the fake's bounds (connections, watches) are reached.
    pub(crate) fn too_many(message: impl Into<String>) -> Self {
        ApiError::new(429, "TooManyRequests", message.into())
    }

    /// The `metav1.Status` body.
    pub(crate) fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some((group, kind, name)) = &self.details {
            s["details"] = json!({"name": name, "group": group, "kind": kind});
        }
        s
    }
}
