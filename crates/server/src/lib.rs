//! The tokengate service: the AWS STS and IAM query APIs over HTTP.
//!
//! One catch-all route speaks the AWS query protocol (sts-iam.md §0, §1.3–1.4): form bodies
//! (POST) or query strings (GET), `Action` + `Version` dispatch, SigV4 authentication, XML
//! results and AWS error XML. The credential scope's service (`sts` or `iam`) selects the
//! API. Beside it: `GET /healthz` and `GET /.well-known/jwks.json` (the session-token keys).
//!
//! This crate knows nothing of USB or the terminal; it persists through
//! [`tokengate_store::Store`] only.

pub mod auth;
pub mod config;
pub mod error;
pub mod iam;
pub mod iam_mfa;
pub mod mfa;
pub mod params;
pub mod qr;
pub mod security_keys;
pub mod state;
pub mod sts;
pub mod xml;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ring::rand::SecureRandom;
use time::format_description::well_known::Rfc3339;
use tokengate_token::query::decode_form;
use tokengate_token::sigv4::HttpRequest;

pub use crate::config::Config;
use crate::error::ApiError;
use crate::params::Params;
pub use crate::state::AppState;

/// Largest request body accepted (the largest STS parameter, a web identity token, is
/// 20 000 characters; policies are smaller).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The HTTP application.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(query_api)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `router(state)` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    state: Arc<AppState>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
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

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch.
pub fn iso8601(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// AWS's answer to an action it does not know in this version.
pub fn invalid_action(action: &str, version: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidAction",
        format!("Could not find operation {action} for version {version}"),
    )
}

/// A random UUID (v4) for `RequestId`.
fn request_id(rng: &dyn SecureRandom) -> String {
    let mut b = [0u8; 16];
    if rng.fill(&mut b).is_err() {
        return "00000000-0000-4000-8000-000000000000".to_owned();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = data_encoding::HEXLOWER.encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Which API a request is for, when authentication has not said it yet.
fn guess_service(action: Option<&str>) -> &'static str {
    match action {
        Some(a) if is_iam_action(a) => "iam",
        _ => "sts",
    }
}

fn is_iam_action(action: &str) -> bool {
    iam::ACTIONS.contains(&action)
        || iam_mfa::ACTIONS.contains(&action)
        || security_keys::IAM_ACTIONS.contains(&action)
}

fn namespace(service: &str) -> &'static str {
    if service == "iam" {
        iam::NAMESPACE
    } else {
        sts::NAMESPACE
    }
}

fn xml_response(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

fn error_response(service: &str, request_id: &str, e: &ApiError) -> Response {
    let mut x = xml::Xml::new();
    x.root("ErrorResponse", namespace(service), |x| {
        x.elem("Error", |x| {
            x.text("Type", e.fault());
            x.text("Code", e.code);
            x.text("Message", &e.message);
        });
        x.text("RequestId", request_id);
    });
    xml_response(e.status, request_id, x.finish())
}

fn success_response(
    service: &str,
    action: &str,
    request_id: &str,
    result: Option<String>,
) -> Response {
    let mut x = xml::Xml::new();
    x.root(&format!("{action}Response"), namespace(service), |x| {
        if let Some(inner) = &result {
            x.elem(&format!("{action}Result"), |x| x.raw(inner));
        }
        x.elem("ResponseMetadata", |x| x.text("RequestId", request_id));
    });
    xml_response(StatusCode::OK, request_id, x.finish())
}

async fn query_api(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request_id = request_id(&state.rng);
    let mut service = "sts";
    let outcome = handle(&state, &method, &uri, &headers, body, &mut service).await;
    match outcome {
        Ok((action, result)) => {
            tracing::debug!(%request_id, service, action, "ok");
            success_response(service, &action, &request_id, result)
        }
        Err(e) => {
            tracing::info!(%request_id, service, code = e.code, status = e.status.as_u16(), "refused");
            error_response(service, &request_id, &e)
        }
    }
}

async fn handle(
    state: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    service: &mut &'static str,
) -> Result<(String, Option<String>), ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "RequestEntityTooLarge",
            format!("The request body was refused: {e}"),
        )
    })?;
    if method != Method::GET && method != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The method {method} is not allowed; use GET or POST."),
        ));
    }
    let query = uri.query().unwrap_or("");
    let malformed = |e: tokengate_token::query::QueryError| {
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        ApiError::new(status, e.aws_code(), e.to_string())
    };
    let mut pairs = decode_form(query.as_bytes()).map_err(malformed)?;
    if method == Method::POST {
        pairs.extend(decode_form(&body).map_err(malformed)?);
    }
    let params = Params::new(pairs);
    *service = guess_service(params.get("Action"));

    let header_pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect();
    let request = HttpRequest {
        method: method.as_str(),
        path: uri.path(),
        query,
        headers: &header_pairs,
        body: &body,
    };
    let (caller, scope_service) = auth::authenticate(state, &request).await?;
    *service = match scope_service.as_str() {
        "sts" => "sts",
        "iam" => "iam",
        other => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                format!(
                    "Credential should be scoped to correct service: 'sts' or 'iam', not '{other}'."
                ),
            ));
        }
    };
    let action = params.get("Action").unwrap_or("").to_owned();
    if action.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "Missing Action",
        ));
    }
    let known = if *service == "iam" {
        is_iam_action(&action)
    } else {
        sts::ACTIONS.contains(&action.as_str())
            || security_keys::STS_ACTIONS.contains(&action.as_str())
    };
    let version = if *service == "iam" {
        iam::VERSION
    } else {
        sts::VERSION
    };
    if params.get("Version") != Some(version) || !known {
        return Err(invalid_action(&action, params.get("Version").unwrap_or("")));
    }
    let result = if *service == "iam" {
        iam::dispatch(state, &caller, &action, &params).await?
    } else {
        sts::dispatch(state, &caller, &action, &params).await?
    };
    Ok((action, result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuid_v4() {
        let rng = ring::rand::SystemRandom::new();
        let id = request_id(&rng);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id(&rng));
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
