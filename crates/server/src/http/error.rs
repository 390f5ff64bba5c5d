//! `ApiError`: every way a request can fail, with its status code and JSON body.
//!
//! Handlers return `Result<_, ApiError>` and use `?`. Client errors explain themselves in
//! the body; server errors are logged with the request id and return only that id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credential, or one that matches no live token.
    #[error("{0}")]
    Unauthorized(String),
    /// A valid credential without the needed access.
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The resource already exists, or the change conflicts with its state.
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` named a version that is no longer current; nothing was written.
    #[error("the resource has changed: its current version is {current}")]
    PreconditionFailed {
        /// The current version.
        current: i64,
    },
    /// The definition is invalid; every problem is listed.
    #[error("the definition is invalid")]
    Invalid(sluice_core::Errors),
    /// A request body that was read but breaks a rule; every problem is listed with its path.
    #[error("{message}")]
    InvalidBody {
        /// A sentence naming the first problem.
        message: String,
        /// Every problem, with its path in the body.
        errors: sluice_core::Errors,
    },
    /// The body, or what it decompresses to, is over a limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body's `Content-Encoding` (or type) is not one this route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The caller is over its rate limit; it may retry after this many whole seconds.
    #[error("rate limit exceeded: retry after {retry_after} s")]
    TooManyRequests {
        /// Seconds to wait, at least 1.
        retry_after: u64,
    },
    /// The store did not answer in time or could not be reached; the caller may retry.
    #[error("{0}")]
    Unavailable(String),
    /// Anything the server got wrong.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The HTTP status.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::Invalid(_) | ApiError::InvalidBody { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A store error about `what` (such as `flag \`checkout\``).
    pub fn from_store(error: StoreError, what: &str) -> ApiError {
        match error {
            StoreError::NotFound => ApiError::NotFound(format!("{what} does not exist")),
            StoreError::AlreadyExists => ApiError::Conflict(format!("{what} already exists")),
            StoreError::Conflict { current } => ApiError::PreconditionFailed { current },
            StoreError::Invalid(errors) => ApiError::Invalid(errors),
            StoreError::InUse { by } => ApiError::Conflict(format!("{what} is still used by {by}")),
            StoreError::Unavailable(reason) => ApiError::Unavailable(format!(
                "the store is unavailable ({reason}); retry shortly"
            )),
            StoreError::Other(error) => ApiError::Internal(error),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        ApiError::from_store(error, "the resource")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match &self {
            ApiError::Invalid(errors) | ApiError::InvalidBody { errors, .. } => json!({
                "error": "invalid",
                "message": self.to_string(),
                "errors": errors.iter().map(|e| json!({
                    "path": e.path.to_string(),
                    "message": e.message,
                    "line": e.position.map(|p| p.line),
                    "column": e.position.map(|p| p.column),
                })).collect::<Vec<_>>(),
            }),
            ApiError::PreconditionFailed { current } => json!({
                "error": "precondition_failed",
                "message": self.to_string(),
                "currentVersion": current,
            }),
            ApiError::Internal(error) => {
                // The request-id middleware adds the id to the log line and the response.
                tracing::error!(error = format!("{error:#}"), "internal error");
                json!({"error": "internal", "message": "internal server error; the log has details under this request id"})
            }
            other => json!({"error": kind(other), "message": other.to_string()}),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::TooManyRequests { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1_u64));
        }
        response
    }
}

fn kind(error: &ApiError) -> &'static str {
    match error {
        ApiError::Unauthorized(_) => "unauthorized",
        ApiError::Forbidden(_) => "forbidden",
        ApiError::NotFound(_) => "not_found",
        ApiError::BadRequest(_) => "bad_request",
        ApiError::Conflict(_) => "conflict",
        ApiError::PreconditionFailed { .. } => "precondition_failed",
        ApiError::Invalid(_) | ApiError::InvalidBody { .. } => "invalid",
        ApiError::PayloadTooLarge(_) => "payload_too_large",
        ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
        ApiError::TooManyRequests { .. } => "rate_limited",
        ApiError::Unavailable(_) => "unavailable",
        ApiError::Internal(_) => "internal",
    }
}
