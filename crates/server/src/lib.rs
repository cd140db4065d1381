//! The tokengate service: the AWS STS and IAM query APIs over HTTP.
//!
//! One catch-all route speaks the AWS query protocol (sts-iam.md §0, §1.3–1.4): form bodies
//! (POST) or query strings (GET), `Action` + `Version` dispatch, SigV4 authentication, XML
//! results and AWS error XML. The credential scope's service (`sts` or `iam`) selects the
//! API. Beside it: `GET /healthz`, `GET /readyz`, `GET /metrics` ([`metrics`]),
//! `GET /.well-known/jwks.json` (the session-token keys) and the sign-in portal's pages under
//! `/signin` and `/portal` ([`portal`]).
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
pub mod audit;
pub mod auth;
pub mod authz;
pub mod chokepoint;
pub mod common;
pub mod config;
pub mod credentials;
pub mod entities;
pub mod error;
pub mod handlers;
pub mod key_ring;
pub mod metrics;
pub mod mfa;
pub mod params;
pub mod passwords;
pub mod portal;
pub mod principals;
pub mod qr;
pub mod registry;
pub mod relying_party;
pub mod state;
pub mod throttle;
pub mod touch;
pub mod trust;
pub mod usage;
pub mod xml;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

pub use crate::chokepoint::invalid_action;
pub use crate::common::iso8601;
pub use crate::config::Config;
/// The security-key items other crates use, at their former path.
pub use crate::relying_party as security_keys;
pub use crate::state::AppState;

/// Largest request body accepted (the largest STS parameter, a web identity token, is
/// 20 000 characters; policies are smaller).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The most a connection may buffer while reading a request head (hyper's read buffer; its
/// default is ≈ 400 KiB). A SigV4 request with a session token has a head of 2–3 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The longest `/readyz` waits for the store before it answers "not ready".
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP application.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(portal::router())
        .fallback(chokepoint::query_api)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then drains.
///
/// Each connection is served by hyper's HTTP/1.1 connection with the `[http]` settings
/// (docs/operations.md): its header-read timer (which also closes a kept-alive connection
/// that sends no next request), keep-alive, a bounded read buffer, a request body that
/// times out between reads (tower-http's `TimeoutBody`), and at most `http.max_connections`
/// connections at once — past that, accepting waits for one to close.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flusher = tokio::spawn(flush_usage(Arc::clone(&state)));
    // The process's store reports its group commits to these metrics (one store a process).
    let _ = tokengate_store::observe::set_commit_observer(state.metrics.clone());
    let http = state.config.http.clone();
    let body_timeout = Duration::from_millis(http.body_read_timeout_ms);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms))
        .keep_alive(http.keep_alive)
        .max_buf_size(MAX_HEAD_BYTES);
    let slots = Arc::new(tokio::sync::Semaphore::new(http.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let app = router(Arc::clone(&state));
    let shutdown = std::pin::pin!(shutdown);
    let mut shutdown = shutdown;
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted:
                    // wait a little rather than spin, as axum::serve does.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let mut request = request.map(|body| TimeoutBody::new(body_timeout, body));
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(remote));
            app.clone().oneshot(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        let open = state.metrics.connection();
        tokio::spawn(async move {
            // A connection ends with an error when the client goes away or a timeout
            // closes it: nothing to answer then.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %remote, "connection closed");
            }
            drop(open);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    flusher.abort();
    // The last uses, once the server has drained.
    let store = Arc::clone(&state.store);
    let last = tokio::task::spawn_blocking(move || state.usage.flush(store.as_ref())).await;
    if let Ok(Err(e)) = last {
        tracing::warn!(error = %e, "usage: the last flush failed");
    }
    Ok(())
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

/// Ready to serve: the store answers a cheap query within [`READY_TIMEOUT`] and has every
/// migration applied. The reason given is generic; the cause goes to the log.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    let check = tokio::task::spawn_blocking(move || store.readiness());
    let reason = match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(Ok(()))) => {
            return json(StatusCode::OK, serde_json::json!({"status": "ready"}));
        }
        Ok(Ok(Err(e))) => {
            crate::metrics::store_error();
            tracing::warn!(error = %e, "readiness: the store is not ready");
            "store unavailable"
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "readiness check task failed");
            "error"
        }
        Err(_) => {
            tracing::warn!("readiness: the store did not answer in time");
            "store timed out"
        }
    };
    json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({"status": "not ready", "reason": reason}),
    )
}

/// The Prometheus text exposition (OpenMetrics 1.0) of [`metrics::Metrics`].
async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let body = state.metrics.render(state.verifier.cache().lookups());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The JWK Set of the store's live signing keys: checked against the store before serving
/// ([`key_ring::KeyRing::refresh`]), so every replica serves the same document as soon as
/// one rotated. 503 when the store cannot say (the keys may have changed).
async fn jwks(State(state): State<Arc<AppState>>) -> Response {
    let now = state.clock.now().unix_timestamp();
    if let Err(e) = state
        .signer
        .refresh(state.store.as_ref(), &state.verifier, now, false)
    {
        crate::metrics::store_error();
        tracing::warn!(error = %e, "jwks: the store's signing keys cannot be read");
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable"}),
        );
    }
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
