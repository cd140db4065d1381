//! `/portal`: the signed-in user's temporary credentials (as GetSessionToken mints them,
//! with the sign-in's MFA context) and every role they may assume — each decided by
//! [`crate::authz::authorize`] for `sts:AssumeRole`, exactly as the API decides it — and
//! `/portal/role`, which mints a role session (as AssumeRole does) for a role that passes
//! the same decision; a role the page did not list is refused there too.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;
use tokengate_store::{PortalSession, PortalStage, Role, User};
use tokengate_token::Principal;
use tokengate_token::session::{ISSUER, MfaContext, MfaMethod, SessionAttributes, SessionClaims};

use super::session;
use super::signin::{Notice, session_user, user_caller};
use super::{failure, forbidden, html, redirect, same_origin};
use crate::assume::{ASSUME_ROLE, CHAINED_MAX_SECS, ROLE_DURATION_DEFAULT_SECS, target_role};
use crate::auth::Caller;
use crate::authz::{RequestFacts, authorize, mfa_method};
use crate::common::{db, iso8601};
use crate::credentials::{self, Credentials, NewSession};
use crate::error::ApiError;
use crate::params::Params;
use crate::registry::{self, Api};
use crate::state::AppState;

/// Credentials as the page shows them.
struct CredentialsView {
    /// Element id prefix.
    id: &'static str,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    /// The `~/.aws/credentials` profile name.
    profile: String,
    /// The MFA method, or "none".
    mfa: String,
    /// The time left, in words.
    expires_in: String,
    /// The `~/.aws/config` snippet for `tokengate login` (snippets.rs).
    config: String,
}

/// A role the user may assume.
struct RoleView {
    name: String,
    arn: String,
    description: String,
}

#[derive(Template)]
#[template(path = "portal/portal.html")]
struct PortalPage<'a> {
    account_id: &'a str,
    user_arn: String,
    csrf: String,
    creds: CredentialsView,
    roles: Vec<RoleView>,
}

#[derive(Template)]
#[template(path = "portal/role.html")]
struct RolePage<'a> {
    account_id: &'a str,
    user_arn: String,
    csrf: String,
    role_name: String,
    assumed_arn: String,
    creds: CredentialsView,
}

/// The role button's fields.
#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role_arn: String,
    #[serde(default)]
    csrf: String,
}

/// The peer's address, as the chokepoint reads it (absent in router tests).
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn facts(peer: Peer) -> RequestFacts {
    RequestFacts {
        source_ip: peer.map(|Extension(ConnectInfo(addr))| addr.ip()),
        secure_transport: false,
    }
}

/// `GET /portal`.
pub async fn page(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> Response {
    let live = match session::current(&state, &headers, Some(PortalStage::SignedIn)).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    let endpoint = super::snippets::endpoint(&headers);
    match portal_page(&state, facts(peer), &live, &endpoint).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn portal_page(
    state: &Arc<AppState>,
    facts: RequestFacts,
    live: &session::Live,
    endpoint: &str,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    let mfa = mfa_of(&live.record);
    let caller = user_caller(state, &user);
    let duration = i64::from(state.config.portal.credentials_secs);
    // GetSessionToken's minting, with the sign-in's second factor.
    let creds = credentials::mint(state, &caller, duration, mfa.clone())?;
    let profile = format!("{}_{}", state.account_id, user.name);
    let config = super::snippets::user_config(endpoint, &user.name, mfa.device.as_deref());
    let creds = view(state, "session", &creds, profile, &mfa, config)?;
    let caller = signed_in_caller(state, &user, &live.record);
    let mut roles = Vec::new();
    let all = db(state, |s| s.list_roles("/")).await??;
    for role in all {
        let arn = tokengate_token::arn::role_arn(&state.account_id, &role.path, &role.name);
        if may_assume(state, &caller, &arn, facts).is_ok() {
            roles.push(RoleView {
                name: role.name,
                arn,
                description: role.description,
            });
        }
    }
    Ok(html(
        StatusCode::OK,
        &PortalPage {
            account_id: &state.account_id,
            user_arn: caller.principal.arn(),
            csrf: live.id.csrf_token(),
            creds,
            roles,
        },
    ))
}

/// `POST /portal/role`: role credentials, if the policies allow it now.
pub async fn assume_role(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<RoleForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    let live = match session::current(&state, &headers, Some(PortalStage::SignedIn)).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    if !live.id.csrf_matches(&form.csrf) {
        return forbidden();
    }
    let endpoint = super::snippets::endpoint(&headers);
    let page = role_page(&state, facts(peer), &live, &form.role_arn, &endpoint);
    match page.await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn role_page(
    state: &Arc<AppState>,
    facts: RequestFacts,
    live: &session::Live,
    role_arn: &str,
    endpoint: &str,
) -> Result<Response, ApiError> {
    let (id, record) = (&live.id, &live.record);
    let user = session_user(state, record).await?;
    let caller = signed_in_caller(state, &user, record);
    let role = match may_assume(state, &caller, role_arn, facts) {
        Ok(role) => role,
        Err(e) => {
            tracing::warn!(
                target: "audit", principal = %caller.principal.arn(), role = role_arn,
                reason = %e.message, "portal AssumeRole refused"
            );
            return Ok(html(
                StatusCode::FORBIDDEN,
                &Notice {
                    account_id: &state.account_id,
                    heading: "Not allowed",
                    paragraphs: vec![format!(
                        "You may not assume {role_arn}: its trust policy and your permissions \
                         do not allow it."
                    )],
                    commands: Vec::new(),
                },
            ));
        }
    };
    let mfa = mfa_of(record);
    let duration = ROLE_DURATION_DEFAULT_SECS
        .min(i64::from(role.max_session_duration))
        .min(CHAINED_MAX_SECS);
    let principal = Principal::AssumedRole {
        account: state.account_id.clone(),
        role_name: role.name.clone(),
        role_path: role.path.clone(),
        role_id: role.role_id.clone(),
        session_name: session_name(&user),
    };
    // AssumeRole's minting: a role session chained from the portal's user session.
    let creds = credentials::mint_session(
        state,
        NewSession {
            principal: principal.clone(),
            src: String::new(),
            duration,
            mfa: mfa.clone(),
            session_policy: None,
            chained: true,
            attributes: SessionAttributes::default(),
        },
    )?;
    record_role_use(state, &role.role_id);
    tracing::info!(
        target: "audit", principal = %caller.principal.arn(), role = role_arn,
        "portal AssumeRole"
    );
    let profile = format!("{}_{}", state.account_id, role.name);
    let config = super::snippets::role_config(
        endpoint,
        &user.name,
        &role.name,
        role_arn,
        mfa.device.as_deref(),
    );
    Ok(html(
        StatusCode::OK,
        &RolePage {
            account_id: &state.account_id,
            user_arn: caller.principal.arn(),
            csrf: id.csrf_token(),
            role_name: role.name,
            assumed_arn: principal.arn(),
            creds: view(state, "role", &creds, profile, &mfa, config)?,
        },
    ))
}

/// Whether `caller` may assume the role `role_arn` — the API's decision: the registry's
/// AssumeRole entry, [`authorize`] (identity policies, boundary, the role's trust policy),
/// and with `mfa.required` a session that carries MFA. The role when allowed.
fn may_assume(
    state: &Arc<AppState>,
    caller: &Caller,
    role_arn: &str,
    facts: RequestFacts,
) -> Result<Role, ApiError> {
    let spec = registry::lookup(Api::Sts, "AssumeRole")
        .ok_or_else(|| ApiError::internal("the registry has no AssumeRole"))?;
    if state.config.mfa.required && !caller.mfa_present() {
        return Err(ApiError::access_denied(crate::mfa::MFA_REQUIRED));
    }
    let params = Params::new(vec![
        ("RoleArn".to_owned(), role_arn.to_owned()),
        ("RoleSessionName".to_owned(), caller.principal.arn()),
    ]);
    authorize(state, caller, spec, role_arn, &params, facts)?;
    target_role(state, role_arn)?
        .map(|r| r.role.clone())
        .ok_or_else(|| ApiError::not_authorized(&caller.principal.arn(), ASSUME_ROLE, role_arn))
}

/// The caller the API would see for the portal's session credentials: the user, with a
/// GetSessionToken-style session carrying the sign-in's MFA context.
fn signed_in_caller(state: &AppState, user: &User, record: &PortalSession) -> Caller {
    let mut caller = user_caller(state, user);
    let mfa = mfa_of(record);
    caller.session = Some(std::sync::Arc::new(SessionClaims {
        iss: ISSUER.to_owned(),
        sub: caller.principal.arn(),
        akid: String::new(),
        iat: mfa.auth_time.unwrap_or(record.created),
        exp: record.expires,
        principal: caller.principal.clone(),
        src: String::new(),
        mfa,
        session_policy: None,
        chained: false,
        attributes: SessionAttributes::default(),
    }));
    caller
}

/// The sign-in's MFA context, as stored with the session.
pub(super) fn mfa_of(record: &PortalSession) -> MfaContext {
    let method = match record.mfa_method.as_deref() {
        Some(m) if m == mfa_method(MfaMethod::Totp) => Some(MfaMethod::Totp),
        Some(m) if m == mfa_method(MfaMethod::Fido2) => Some(MfaMethod::Fido2),
        Some(m) if m == mfa_method(MfaMethod::U2f) => Some(MfaMethod::U2f),
        _ => None,
    };
    MfaContext {
        present: method.is_some(),
        method,
        device: record.mfa_device.clone(),
        auth_time: record.mfa_time,
    }
}

/// The role session's name: the user name, as the console uses (at least 2 characters,
/// RoleSessionName's minimum).
fn session_name(user: &User) -> String {
    if user.name.len() >= 2 {
        user.name.clone()
    } else {
        format!("portal-{}", user.name)
    }
}

fn view(
    state: &AppState,
    id: &'static str,
    c: &Credentials,
    profile: String,
    mfa: &MfaContext,
    config: String,
) -> Result<CredentialsView, ApiError> {
    let left = c.expiration - state.clock.now().unix_timestamp();
    let secret = c
        .secret_access_key
        .expose_str()
        .ok_or_else(|| ApiError::internal("derived secret is not text"))?;
    Ok(CredentialsView {
        id,
        access_key_id: c.access_key_id.clone(),
        secret_access_key: secret.to_owned(),
        session_token: c.session_token.clone(),
        expiration: iso8601(c.expiration),
        profile,
        mfa: mfa.method.map_or("none", mfa_method).to_owned(),
        expires_in: super::snippets::time_left(left),
        config,
    })
}

/// Records `RoleLastUsed` off the request path, as AssumeRole does.
fn record_role_use(state: &Arc<AppState>, role_id: &str) {
    let store = Arc::clone(&state.store);
    let role_id = role_id.to_owned();
    let now = state.clock.now().unix_timestamp();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = store.record_role_use(&role_id, now, super::signin::PORTAL_REGION) {
            tracing::warn!(role_id, error = %e, "could not record the role's last use");
        }
    });
}
