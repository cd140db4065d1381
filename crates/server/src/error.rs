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
}

impl ApiError {
    /// An error with an explicit status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
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
    fn from(e: tokengate_store::StoreError) -> Self {
        Self::internal(e)
    }
}
