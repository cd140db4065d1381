//! The one error type of the server: an AWS error (code, message, HTTP status) that renders
//! as AWS error XML (sts-iam.md §1.4). 5xx bodies are generic; their cause goes to the log.

use axum::http::StatusCode;

/// An error answered in AWS's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// AWS error code, e.g. `AccessDenied`.
    pub code: &'static str,
    /// AWS error message.
    pub message: String,
    /// Whether this refuses a second factor (a wrong code, a bad assertion): the
    /// chokepoint counts it as a failed authentication for the throttle.
    pub mfa_refused: bool,
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            mfa_refused: false,
        }
    }

    /// 403 `AccessDenied` refusing a second factor (see [`ApiError::mfa_refused`]).
    pub fn mfa_denied(message: impl Into<String>) -> Self {
        Self {
            mfa_refused: true,
            ..Self::access_denied(message)
        }
    }

    /// 503 `ServiceUnavailable`: the store cannot be reached; the detail is logged.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "store unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The request has failed due to a temporary failure of the server.",
        )
    }

    /// 403 `AccessDenied`.
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }

    /// 403 `AccessDenied` in AWS's identity-policy form.
    pub fn not_authorized(caller_arn: &str, action: &str, resource: &str) -> Self {
        Self::access_denied(format!(
            "User: {caller_arn} is not authorized to perform: {action} on resource: {resource} \
             because no identity-based policy allows the {action} action"
        ))
    }

    /// 400 `ValidationError`.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    /// 403 `InvalidClientTokenId` for an unknown or inactive access key (with period).
    pub fn unknown_key() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        )
    }

    /// 500 `ServiceFailure` (IAM) / `InternalFailure`: the detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// `Sender` for client errors, `Receiver` for server errors.
    pub fn fault(&self) -> &'static str {
        if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

impl From<tokengate_store::StoreError> for ApiError {
    /// A backend failure (the database cannot be read or written: I/O, a lost connection,
    /// a locked file) is `ServiceUnavailable` — the client may try again — and any other
    /// store error reaching here is an internal one. Both are counted.
    fn from(e: tokengate_store::StoreError) -> Self {
        crate::metrics::store_error();
        match e {
            tokengate_store::StoreError::Backend(_)
            | tokengate_store::StoreError::Unavailable(_) => Self::unavailable(e),
            _ => Self::internal(e),
        }
    }
}
