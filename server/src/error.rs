//! The one error type every handler returns, and how it becomes an HTTP response.
//!
//! Every error body is [`ErrorBody`]: a stable machine `code` a client can branch on and a
//! sentence for people. For example a device whose administrator has not approved it yet gets
//!
//! ```text
//! 403 {"code":"device_not_approved","message":"an administrator has not approved this device yet"}
//! ```
//!
//! Internal failures (a database error) are logged with their detail and answered with a bare
//! `500 internal`: the detail may name tables, paths or keys' ids, and a client can do nothing
//! with it.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use eenplan_protocol::api::{ErrorBody, code};
use eenplan_protocol::sync::TooManyItems;

use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is not well formed.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid credentials (missing, bad signature, expired, replayed, unknown key).
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// 403: the caller is known but may not do this.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// 409: the request conflicts with the server's state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410: it existed, but no longer counts (an expired enrolment code).
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    /// 413.
    #[error("the request body is larger than the {limit} bytes accepted here")]
    TooLarge { limit: usize },
    /// 413 [`code::TOO_MANY_ITEMS`]: a list in the request is longer than its limit.
    #[error("{0}")]
    TooManyItems(TooManyItems),
    /// 429 with `Retry-After`: the caller used up a quota; it may retry after the wait.
    #[error("{message}")]
    TooManyRequests { code: &'static str, message: String, retry_after: Duration },
    /// 503: the database is busy or the server is shutting down; the client may retry.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// 500. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code, message: message.into() }
    }

    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest { code: "malformed", message: message.into() }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unauthenticated { code, message: message.into() }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Forbidden { code, message: message.into() }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::NotFound { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict { code, message: message.into() }
    }

    /// A device whose user is missing: a fault of the database, which its foreign key rules
    /// out.
    pub fn device_user_missing() -> ApiError {
        ApiError::Internal("a device's user is missing".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::TooLarge { .. } | ApiError::TooManyItems(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn body(&self) -> ErrorBody {
        let (code, message) = match self {
            ApiError::BadRequest { code, message }
            | ApiError::Unauthenticated { code, message }
            | ApiError::Forbidden { code, message }
            | ApiError::NotFound { code, message }
            | ApiError::Conflict { code, message }
            | ApiError::Gone { code, message }
            | ApiError::Unavailable { code, message }
            | ApiError::TooManyRequests { code, message, .. } => (*code, message.clone()),
            ApiError::TooLarge { .. } => ("too_large", self.to_string()),
            ApiError::TooManyItems(_) => (code::TOO_MANY_ITEMS, self.to_string()),
            ApiError::Internal(_) => ("internal", "the server could not complete the request".to_string()),
        };
        ErrorBody { code: code.to_string(), message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(detail = %detail, "internal error"),
            ApiError::Unavailable { message, .. } => tracing::warn!(%message, "unavailable"),
            other => tracing::debug!(status = other.status().as_u16(), error = %other, "request refused"),
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            // Whole seconds, rounded up: a client that waits that long is admitted.
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The generic mapping; handlers map the cases whose meaning depends on the call (an unknown
/// user, a taken name) to specific codes before this applies.
impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::AlreadyInitialised => {
                ApiError::conflict("already_initialised", "the network is already initialised")
            }
            StorageError::NotFound => ApiError::not_found("not_found", "not found"),
            StorageError::Expired => ApiError::Gone { code: "expired", message: "expired".into() },
            // A conflict's text may be a database message; it goes to the log only.
            StorageError::Conflict(detail) => {
                tracing::debug!(%detail, "storage conflict");
                ApiError::conflict("conflict", "that exists already")
            }
            // Storage words these itself ("the device is active"); they name no internals.
            StorageError::InvalidState(message) => ApiError::conflict("invalid_state", message),
            StorageError::DeviceNotActive => {
                ApiError::forbidden(code::REVOKED, "this device has been revoked")
            }
            StorageError::Busy => ApiError::Unavailable {
                code: "busy",
                message: "the server is busy; try again shortly".into(),
            },
            StorageError::Corrupt(detail) => ApiError::Internal(format!("corrupt database: {detail}")),
            StorageError::Backend(detail) => ApiError::Internal(detail),
        }
    }
}
