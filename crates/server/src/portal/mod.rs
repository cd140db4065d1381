//! The sign-in portal (issue 13, docs/portal.md): browser pages on the API's listener.
//!
//! `/signin` (account, user name, password) → `/signin/password` (only when it must be
//! changed) → `/signin/mfa` (a TOTP code) or `/signin/key` (a security key, `webauthn`)
//! → `/portal` (the
//! caller's temporary credentials and every role they may assume) → `/signout`.
//!
//! The portal is a family like the API's: it verifies passwords with
//! [`crate::passwords::verify_password`], codes with [`crate::mfa::verify_code`] (the same
//! replay refusal and lockout as the API), mints with [`crate::credentials`], and decides
//! which roles to list — and whether a role button may mint — with [`crate::authz::authorize`],
//! the API's one authorization function. It imports no handler family.
//!
//! Web security (portal.md §5.5–5.6): server-rendered pages (askama, compiled in) with a
//! CSP that allows no script but the portal's own file (`/portal/webauthn.js`); `no-store`
//! on every page; sessions in the store by the hash of their id (`session`), rotated after
//! the password and after the second factor, with idle and absolute timeouts; every POST must come from this origin (`Sec-Fetch-Site` /
//! `Origin`) and carry the session's form token.

mod console;
mod selfservice;
mod session;
mod signin;
mod snippets;
mod webauthn;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::AppState;

/// The portal's stylesheet, embedded in the binary.
const CSS: &str = include_str!("../../assets/portal.css");

/// No inline script, no framing, forms only to this origin (portal.md §5.6 item 3).
const CSP: &str = "default-src 'self'; script-src 'self'; frame-ancestors 'none'; \
                   form-action 'self'; base-uri 'none'";

/// The portal's routes, merged into the service's router.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/signin", get(signin::page).post(signin::password))
        .route(
            "/signin/password",
            get(signin::password_page).post(signin::change_password),
        )
        .route("/signin/mfa", get(signin::mfa_page).post(signin::mfa))
        .route("/signout", post(signin::sign_out))
        .route("/portal", get(console::page))
        .route("/portal/role", post(console::assume_role))
        .route("/portal/portal.css", get(css))
        // Browsers ask every origin for an icon; the portal has none to show.
        .route("/favicon.ico", get(favicon))
        // Self-service (selfservice.rs) and the copy buttons' script.
        .route("/portal/security", get(selfservice::page))
        .route("/portal/mfa/create", post(selfservice::create))
        .route("/portal/mfa/enable", post(selfservice::enable))
        .route("/portal/mfa/deactivate", post(selfservice::deactivate))
        .route(
            "/portal/password",
            get(selfservice::password_page).post(selfservice::change_password),
        )
        .route("/portal/copy.js", get(copy_js))
        // Security keys in the browser (webauthn.rs).
        .route(
            "/signin/key",
            get(webauthn::signin_page).post(webauthn::signin),
        )
        .route(
            "/portal/keys",
            get(webauthn::register_form).post(webauthn::register_begin),
        )
        .route("/portal/keys/finish", post(webauthn::register_finish))
        .route("/portal/webauthn.js", get(webauthn_js))
}

/// The pages' two scripts, embedded (no inline script, nothing fetched at run time): the
/// copy buttons, and the WebAuthn ceremonies of webauthn.rs.
const COPY_JS: &str = include_str!("../../assets/copy.js");
const WEBAUTHN_JS: &str = include_str!("../../assets/webauthn.js");

async fn copy_js() -> Response {
    script(COPY_JS)
}

async fn webauthn_js() -> Response {
    script(WEBAUTHN_JS)
}

fn script(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(header::CACHE_CONTROL, "public, max-age=86400")],
    )
        .into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

/// A rendered page with the portal's security headers (every page is `no-store`: the
/// forms carry tokens and the portal page carries credentials).
fn html(status: StatusCode, page: &impl Template) -> Response {
    let body = match page.render() {
        Ok(body) => body,
        Err(e) => return failure(ApiError::internal(e)),
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(headers);
    response
}

pub(super) fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// `303 See Other` to `to` (after a POST, the browser GETs the next page).
fn redirect(to: &'static str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    security_headers(response.headers_mut());
    response
}

/// A plain page saying something went wrong; the detail goes to the log only.
fn failure(e: ApiError) -> Response {
    tracing::error!(code = e.code, status = %e.status, "portal request failed");
    let (status, text) = if e.code == "Throttling" {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many sign-ins at once. Wait a moment and try again.",
        )
    } else {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong. Try again, or ask your administrator.",
        )
    };
    let mut response = (status, text).into_response();
    security_headers(response.headers_mut());
    response
}

/// 403 for a POST that is not from a page of this origin, or lacks the form token.
fn forbidden() -> Response {
    let mut response = (
        StatusCode::FORBIDDEN,
        "This request did not come from a tokengate page and was refused.",
    )
        .into_response();
    security_headers(response.headers_mut());
    response
}

/// Whether a POST comes from a page of this origin (portal.md §5.6 item 2): a
/// `Sec-Fetch-Site` must say `same-origin`, and an `Origin` must be this host's. One of the
/// two must be present — stricter than tower-http's rule 4, as these forms are for browsers,
/// which send both.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s != "same-origin") {
        return false;
    }
    match text(header::ORIGIN) {
        Some(origin) => text(header::HOST).is_some_and(|host| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        }),
        None => site.is_some(),
    }
}
