//! The tokengate service: the AWS STS and IAM query APIs over HTTP.
//!
//! One catch-all route speaks the AWS query protocol (sts-iam.md §0, §1.3–1.4): form bodies
//! (POST) or query strings (GET), `Action` + `Version` dispatch, SigV4 authentication, XML
//! results and AWS error XML. The credential scope's service (`sts` or `iam`) selects the
//! API. Beside it: `GET /healthz` and `GET /.well-known/jwks.json` (the session-token keys).
//!
//! # The flow of a request
//!
//! Every query-API request passes one function, `handle` in [`chokepoint`]:
//!
//! 1. **authenticate** — SigV4 against a long-term key or temporary credentials
//!    ([`auth`]); the credential scope says which [`Api`](action::Api);
//! 2. **registry** — the action is looked up in the one table of actions ([`registry`]);
//!    an unknown one (or a wrong `Version`) is `InvalidAction`;
//! 3. **authorize** — the resource ARN is built as the entry's
//!    [`ResourceSpec`](action::ResourceSpec) says, and [`authz::authorize`] decides;
//! 4. **handler** — the entry's handler runs ([`handlers`]), for a caller that is already
//!    authorized: handlers never check permissions themselves;
//! 5. **audit hook** — the decision and the outcome are reported in one place.
//!
//! Module floors, top down: `chokepoint` → `registry` and `authz` → `handlers::*` (families
//! that never import each other) → what they share (`action`, `common`, `mfa`,
//! `credentials`, `relying_party`, `touch`, `trust`, `params`, `xml`, `qr`) → `auth`, `state`, `config`,
//! `error`.
//!
//! This crate knows nothing of USB or the terminal; it persists through
//! [`tokengate_store::Store`] only.

pub mod action;
pub mod assume;
pub mod auth;
pub mod authz;
pub mod chokepoint;
pub mod common;
pub mod config;
pub mod credentials;
pub mod entities;
pub mod error;
pub mod handlers;
pub mod mfa;
pub mod params;
pub mod passwords;
pub mod principals;
pub mod qr;
pub mod registry;
pub mod relying_party;
pub mod state;
pub mod touch;
pub mod trust;
pub mod usage;
pub mod xml;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use crate::chokepoint::invalid_action;
pub use crate::common::iso8601;
pub use crate::config::Config;
/// The security-key items other crates use, at their former path.
pub use crate::relying_party as security_keys;
pub use crate::state::AppState;

/// Largest request body accepted (the largest STS parameter, a web identity token, is
/// 20 000 characters; policies are smaller).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The HTTP application.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(chokepoint::query_api)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = tokio::spawn(flush_usage(Arc::clone(&state)));
    let app =
        router(Arc::clone(&state)).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    flusher.abort();
    // The last uses, once the server has drained.
    let store = Arc::clone(&state.store);
    let last = tokio::task::spawn_blocking(move || state.usage.flush(store.as_ref())).await;
    if let Ok(Err(e)) = last {
        tracing::warn!(error = %e, "usage: the last flush failed");
    }
    served
}

/// Writes the batched usage every [`usage::FLUSH_INTERVAL_SECS`] (docs/hygiene.md).
async fn flush_usage(state: Arc<AppState>) {
    let period = std::time::Duration::from_secs(usage::FLUSH_INTERVAL_SECS);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let state = Arc::clone(&state);
        let flushed =
            tokio::task::spawn_blocking(move || state.usage.flush(state.store.as_ref())).await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "usage: flush failed; kept for the next one");
        }
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.account()).await {
        Ok(Ok(Some(_))) => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        Ok(Ok(None)) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "no account"}),
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "health check: store failed");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "store unavailable"}),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "health check task failed");
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "error"}),
            )
        }
    }
}

async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let mut response = json(StatusCode::OK, state.verifier.jwks());
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}
