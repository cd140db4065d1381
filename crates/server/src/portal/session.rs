//! Portal sessions: the `__Host-` cookies, the session id (256 random bits from ring's
//! `SystemRandom`), its hash in the store, rotation, timeouts and the form token.
//!
//! - The id is only in the browser's cookie; the store keys the session by
//!   `SHA-256("tokengate portal session\0" ‖ id)`.
//! - The form (CSRF) token is `SHA-256("tokengate portal csrf\0" ‖ id)`: it changes with the
//!   id, is never stored, cannot be computed from the stored hash, and is compared in
//!   constant time.
//! - Before the password there is no session, only a pre-session cookie whose token guards
//!   the sign-in form itself (login CSRF, portal.md §5.6 item 2).
//! - Cookies: `__Host-` prefix, `Secure`, `HttpOnly`, `SameSite=Strict`, `Path=/`, no
//!   `Domain`, no `Max-Age` (portal.md §5.5: Chromium and Firefox store `Secure` cookies
//!   from `http://localhost`; Safari does not).

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use data_encoding::BASE64URL_NOPAD;
use ring::digest::{SHA256, digest};
use ring::rand::SecureRandom;
use tokengate_store::{PortalSession, PortalStage};
use tokengate_token::secret::constant_time_eq;

use crate::common::db;
use crate::error::ApiError;
use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "__Host-tg_session";
/// The pre-session cookie of the sign-in form.
pub const PRE_COOKIE: &str = "__Host-tg_pre";
/// How long a session waits for its second factor.
pub const PENDING_MFA_SECS: i64 = 300;
/// Random bytes in a session id (256 bits).
const ID_BYTES: usize = 32;
/// The longest cookie value accepted (an id is 43 characters).
const MAX_ID_CHARS: usize = 64;

/// A session id in clear, as the cookie carries it. No `Debug`; never logged.
pub struct SessionId(String);

impl SessionId {
    /// A new random id.
    pub fn new(state: &AppState) -> Result<Self, ApiError> {
        let mut bytes = [0u8; ID_BYTES];
        state
            .rng
            .fill(&mut bytes)
            .map_err(|_| ApiError::internal("the system RNG failed"))?;
        Ok(Self(BASE64URL_NOPAD.encode(&bytes)))
    }

    /// The id the request's cookie `name` carries, if any.
    pub fn from_cookie(headers: &HeaderMap, name: &str) -> Option<Self> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty() && v.len() <= MAX_ID_CHARS)
            .map(|v| Self(v.to_owned()))
    }

    /// What the store keys the session by.
    pub fn hash(&self) -> Vec<u8> {
        tagged_sha256(b"tokengate portal session\0", &self.0)
    }

    /// The form token of this session.
    pub fn csrf_token(&self) -> String {
        BASE64URL_NOPAD.encode(&tagged_sha256(b"tokengate portal csrf\0", &self.0))
    }

    /// Whether `presented` is this session's form token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(self.csrf_token().as_bytes(), presented.as_bytes())
    }

    /// `Set-Cookie` that gives the browser this id as cookie `name`.
    pub fn set_cookie(&self, response: &mut Response, name: &str) -> Result<(), ApiError> {
        let value = format!(
            "{name}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
            self.0
        );
        let value = HeaderValue::from_str(&value).map_err(ApiError::internal)?;
        response.headers_mut().append(header::SET_COOKIE, value);
        Ok(())
    }
}

/// `Set-Cookie` that makes the browser forget cookie `name`.
pub fn clear_cookie(response: &mut Response, name: &'static str) {
    let value = format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn tagged_sha256(tag: &[u8], id: &str) -> Vec<u8> {
    let mut input = Vec::with_capacity(tag.len() + id.len());
    input.extend_from_slice(tag);
    input.extend_from_slice(id.as_bytes());
    digest(&SHA256, &input).as_ref().to_vec()
}

/// A live session of the request: its id and its record.
pub struct Live {
    /// The id from the cookie.
    pub id: SessionId,
    /// As stored.
    pub record: PortalSession,
}

/// The request's session at `stage` (any stage: `None`), if it has one that is neither idle
/// too long nor past its absolute end; its idle timeout restarts. A void session is deleted.
pub async fn current(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    stage: Option<PortalStage>,
) -> Result<Option<Live>, ApiError> {
    let Some(id) = SessionId::from_cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let hash = id.hash();
    let lookup = hash.clone();
    let Some(record) = db(state, move |s| s.portal_session(&lookup)).await?? else {
        return Ok(None);
    };
    let now = state.clock.now().unix_timestamp();
    let idle = i64::from(state.config.portal.idle_timeout_secs);
    if now >= record.expires || now - record.last_seen >= idle {
        tracing::info!(target: "audit", user_id = %record.user_id, "portal session timed out");
        db(state, move |s| s.delete_portal_session(&hash)).await??;
        return Ok(None);
    }
    if stage.is_some_and(|stage| record.stage != stage) {
        return Ok(None);
    }
    db(state, move |s| s.touch_portal_session(&hash, now)).await??;
    Ok(Some(Live { id, record }))
}

/// Starts a session (replacing `replaces`, the id rotation of each privilege step) and
/// returns its new id.
pub async fn start(
    state: &Arc<AppState>,
    replaces: Option<Vec<u8>>,
    record: PortalSession,
) -> Result<SessionId, ApiError> {
    let id = SessionId::new(state)?;
    let record = PortalSession {
        id_hash: id.hash(),
        ..record
    };
    db(state, move |s| {
        s.put_portal_session(replaces.as_deref(), &record)
    })
    .await??;
    Ok(id)
}

/// Ends the session whose id hashes to `hash`.
pub async fn end(state: &Arc<AppState>, hash: Vec<u8>) -> Result<(), ApiError> {
    db(state, move |s| s.delete_portal_session(&hash)).await??;
    Ok(())
}

/// A new session record for `user_id` at `now` (its id hash is set by [`start`]).
pub fn record(user_id: String, now: i64, stage: PortalStage, expires: i64) -> PortalSession {
    PortalSession {
        id_hash: Vec::new(),
        user_id,
        stage,
        mfa_method: None,
        mfa_device: None,
        mfa_time: None,
        created: now,
        last_seen: now,
        expires,
    }
}
