//! What the handler families share, one floor below them: store access from async code,
//! the store owner a principal is, IAM parameter shapes that several families validate, the
//! `NoSuchEntity` answer for users, and timestamps as AWS writes them.
//!
//! Families import this module, never each other.

use std::sync::Arc;

use axum::http::StatusCode;
use time::format_description::well_known::Rfc3339;
use tokengate_store::{KeyOwner, Store, StoreError};
use tokengate_token::Principal;

use crate::error::ApiError;
use crate::params::{self, Pattern, Rule};
use crate::state::AppState;

/// `existingUserNameType` (GetUser, access-key and MFA operations): 1..128, `[\w+=,.@-]+`.
pub const EXISTING_USER_NAME: Rule = Rule {
    name: "UserName",
    min: 1,
    max: 128,
    pattern: Some(params::NAME),
};

/// `pathType`: 1..512, `(\u002F)|(\u002F[\u0021-\u007E]+\u002F)`; the shape `/…/` is
/// checked by [`valid_path`].
pub const PATH: Rule = Rule {
    name: "Path",
    min: 1,
    max: 512,
    pattern: Some(Pattern {
        text: r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)",
        allows: |c| ('\u{21}'..='\u{7e}').contains(&c),
        _plus: true,
    }),
};

/// `markerType`: 1..320, `[\u0020-\u00FF]+` (pagination).
pub const MARKER: Rule = Rule {
    name: "Marker",
    min: 1,
    max: 320,
    pattern: Some(params::MARKER),
};

/// The `Path` rule, for every IAM entity that has a path.
pub fn path_rule() -> Rule {
    PATH
}

/// Whether `path` has the shape `/` or `/…/` (the character class is checked by the rule).
pub fn valid_path(path: &str) -> bool {
    path == "/" || (path.len() >= 3 && path.starts_with('/') && path.ends_with('/'))
}

/// 404 `NoSuchEntity` for a user.
pub fn no_such_user(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
        format!("The user with name {name} cannot be found."),
    )
}

/// The store owner that `principal` is. A role session owns no keys or devices: IAM's
/// answer when an action's implicit user is a role (`ValidationError`).
pub fn owner_of(principal: &Principal) -> Result<KeyOwner, ApiError> {
    match principal {
        Principal::Root { .. } => Ok(KeyOwner::Root),
        Principal::User { name, .. } => Ok(KeyOwner::User(name.clone())),
        Principal::AssumedRole { .. } | Principal::FederatedUser { .. } => Err(not_a_user()),
    }
}

/// 400 `ValidationError` for an action whose implicit user is a role session.
pub fn not_a_user() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        "Must specify userName when calling with non-User credentials",
    )
}

/// Runs a store call on the blocking pool.
pub async fn db<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<Result<T, StoreError>, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(ApiError::internal)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch.
pub fn iso8601(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn paths() {
        assert!(valid_path("/"));
        assert!(valid_path("/a/b/"));
        assert!(!valid_path("//"));
        assert!(!valid_path("/a"));
    }
}
