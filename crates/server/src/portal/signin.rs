//! `/signin` (account, user name, password), `/signin/mfa` (a TOTP code) and `/signout`.
//!
//! Failures say nothing about why: a wrong account, an unknown user, a user without a
//! password, a wrong password and a throttled name all get [`SIGNIN_FAILED`] (AWS's
//! console text); the reason goes to the audit log. Wrong passwords are counted per user
//! name (`portal.max_signin_failures` per `portal.signin_failure_window_secs`); codes go
//! through [`crate::mfa::verify_code`], so replay and lockout are the API's.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tokengate_store::{KeyOwner, PortalSession, PortalStage, StoreError, User};
use tokengate_token::Principal;
use tokengate_token::session::MfaContext;
use zeroize::Zeroize;

use super::session::{self, PENDING_MFA_SECS, PRE_COOKIE, SESSION_COOKIE, SessionId};
use super::{failure, forbidden, html, redirect, same_origin};
use crate::audit::{MfaKinds, SignInFactor, SignInMeta, SignInOutcome, SignInRefusal, SignInUser};
use crate::auth::Caller;
use crate::authz::mfa_method;
use crate::common::db;
use crate::error::ApiError;
use crate::mfa::CodeRefusal;
use crate::passwords::{Password, SignIn, change_own_password, verify_password};
use crate::state::AppState;

/// AWS's console text for every failed sign-in.
pub const SIGNIN_FAILED: &str = "Your authentication information is incorrect. Please try again.";
/// The text for every refused code (wrong, replayed, locked out, not this user's device).
pub const CODE_FAILED: &str =
    "The MFA code is not valid. Wait for your authenticator to show a new code and try again.";
/// The region of portal callers (the console's sign-in has no credential scope).
pub const PORTAL_REGION: &str = "us-east-1";
/// Longest user name (IAM's `userNameType`).
const MAX_USER_NAME: usize = 64;
/// Longest password accepted (IAM's `passwordType`).
const MAX_PASSWORD: usize = 128;

#[derive(Template)]
#[template(path = "portal/signin.html")]
struct SigninPage<'a> {
    account_id: &'a str,
    user_name: &'a str,
    csrf: String,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "portal/mfa.html")]
struct MfaPage<'a> {
    account_id: &'a str,
    user_name: &'a str,
    serials: Vec<String>,
    csrf: String,
    error: Option<&'a str>,
    /// The user has security keys: offer them (webauthn.rs).
    has_keys: bool,
}

#[derive(Template)]
#[template(path = "portal/notice.html")]
pub(super) struct Notice<'a> {
    pub account_id: &'a str,
    pub heading: &'a str,
    pub paragraphs: Vec<String>,
    pub commands: Vec<String>,
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub struct SigninForm {
    #[serde(default)]
    account: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

// The passwords a form carried are wiped when it is dropped (the copies handed on are
// `Password`s, which wipe themselves).
impl Drop for SigninForm {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

impl Drop for PasswordForm {
    fn drop(&mut self) {
        self.old_password.zeroize();
        self.new_password.zeroize();
        self.confirm_password.zeroize();
    }
}

/// The MFA form's fields.
#[derive(Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
}

/// A form with only the form token (sign-out).
#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
}

/// `GET /signin`: the form, with a fresh pre-session cookie and its token.
pub async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match session::current(&state, &headers, Some(PortalStage::SignedIn)).await {
        Ok(Some(_)) => return redirect("/portal"),
        Ok(None) => {}
        Err(e) => return failure(e),
    }
    signin_form(&state, "", None, StatusCode::OK)
}

fn signin_form(
    state: &AppState,
    user_name: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let pre = match SessionId::new(state) {
        Ok(pre) => pre,
        Err(e) => return failure(e),
    };
    let mut response = html(
        status,
        &SigninPage {
            account_id: &state.account_id,
            user_name,
            csrf: pre.csrf_token(),
            error,
        },
    );
    match pre.set_cookie(&mut response, PRE_COOKIE) {
        Ok(()) => response,
        Err(e) => failure(e),
    }
}

/// The peer address extension (absent in router tests without connect info).
type Peer = Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

/// When and from where a sign-in step came, for its `ConsoleLogin` / `CheckMfa` event.
fn sign_in_meta(state: &AppState, headers: &HeaderMap, peer: Peer) -> SignInMeta {
    let source_ip = peer.map(|axum::Extension(axum::extract::ConnectInfo(a))| a.ip());
    SignInMeta::of_request(state.clock.now().unix_timestamp(), headers, source_ip)
}

/// The user named `name`, or `Unknown` (recorded as AWS's hidden name).
async fn sign_in_user(state: &Arc<AppState>, name: &str) -> Result<SignInUser, ApiError> {
    if name.is_empty() || name.len() > MAX_USER_NAME {
        return Ok(SignInUser::Unknown);
    }
    let key = name.to_owned();
    let user = db(state, move |s| s.user(&key)).await??;
    Ok(user.map_or(SignInUser::Unknown, |u| {
        SignInUser::of(&state.account_id, &u)
    }))
}

/// `POST /signin`: the password step.
pub async fn password(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    if !same_origin(&headers)
        || !SessionId::from_cookie(&headers, PRE_COOKIE)
            .is_some_and(|pre| pre.csrf_matches(&form.csrf))
    {
        tracing::warn!(target: "audit", "portal sign-in refused: cross-site or without form token");
        return forbidden();
    }
    let at = sign_in_meta(&state, &headers, peer);
    match password_step(&state, &at, &form).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn password_step(
    state: &Arc<AppState>,
    at: &SignInMeta,
    form: &SigninForm,
) -> Result<Response, ApiError> {
    let name = form.user_name.trim();
    let refuse = |reason: SignInRefusal, user: SignInUser| {
        let code = reason.code();
        tracing::info!(target: "audit", user = %name, reason = code, "portal sign-in refused");
        let outcome = SignInOutcome::Failure(reason);
        (state.audit).console_sign_in(at, user, SignInFactor::Password, None, outcome);
        signin_form(state, name, Some(SIGNIN_FAILED), StatusCode::UNAUTHORIZED)
    };
    if name.is_empty()
        || name.len() > MAX_USER_NAME
        || form.password.is_empty()
        || form.password.len() > MAX_PASSWORD
    {
        return Ok(refuse(
            SignInRefusal::Malformed,
            sign_in_user(state, name).await?,
        ));
    }
    let now = state.clock.now().unix_timestamp();
    let portal = &state.config.portal;
    let window = i64::from(portal.signin_failure_window_secs);
    let key = name.to_owned();
    let failures = db(state, move |s| s.portal_signin_failures(&key, now - window)).await??;
    if failures >= portal.max_signin_failures {
        return Ok(refuse(
            SignInRefusal::Throttled,
            sign_in_user(state, name).await?,
        ));
    }
    let password = Password::new(form.password.clone());
    let verdict = verify_password(state, name, &password).await?;
    let account_ok = form.account.trim() == state.account_id;
    let (reset_required, max_session) = match verdict {
        SignIn::Accepted {
            reset_required,
            max_session_duration,
        } if account_ok => (reset_required, max_session_duration),
        SignIn::Expired { may_change: false } if account_ok => {
            let user = sign_in_user(state, name).await?;
            let outcome = SignInOutcome::Failure(SignInRefusal::PasswordExpired);
            (state.audit).console_sign_in(at, user, SignInFactor::Password, None, outcome);
            return Ok(password_change_needed(state, name));
        }
        SignIn::Expired { may_change: true } if account_ok => (true, None),
        _ => {
            let key = name.to_owned();
            db(state, move |s| {
                s.record_portal_signin_failure(&key, now, window)
            })
            .await??;
            let user = sign_in_user(state, name).await?;
            let reason = match (&user, account_ok) {
                (_, false) => SignInRefusal::WrongAccount,
                (SignInUser::Unknown, true) => SignInRefusal::UnknownUser,
                (SignInUser::Known { .. }, true) => SignInRefusal::WrongPassword,
            };
            return Ok(refuse(reason, user));
        }
    };
    let key = name.to_owned();
    let Some(user) = db(state, move |s| s.user(&key)).await?? else {
        return Ok(refuse(SignInRefusal::UnknownUser, SignInUser::Unknown));
    };
    if reset_required {
        // Nothing else until the password is changed (the next page).
        tracing::info!(
            target: "audit", user = %user.name,
            "portal password accepted; it must be changed"
        );
        let record = session::record(
            user.user_id,
            now,
            PortalStage::Password,
            now + PENDING_MFA_SECS,
        );
        let id = session::start(state, None, record).await?;
        let mut response = redirect("/signin/password");
        session::clear_cookie(&mut response, PRE_COOKIE);
        id.set_cookie(&mut response, SESSION_COOKIE)?;
        return Ok(response);
    }
    after_password(state, at, &user, now, max_session, None).await
}

/// What follows a password that is right and current: the second factor, or (no device)
/// the enrol page, or (no device, `mfa.required = false`) the portal. `replaces` is the
/// session of a password change.
async fn after_password(
    state: &Arc<AppState>,
    at: &SignInMeta,
    user: &User,
    now: i64,
    max_session: Option<u32>,
    replaces: Option<Vec<u8>>,
) -> Result<Response, ApiError> {
    let serials = totp_serials(state, &user.name).await?;
    let has_keys = state_has_keys(state, &user.name).await?;
    let absolute = signin_expiry(state, now, max_session);
    let event = |outcome| {
        let who = SignInUser::of(&state.account_id, user);
        (state.audit).console_sign_in(at, who, SignInFactor::Password, None, outcome);
    };
    if serials.is_empty() && !has_keys {
        if state.config.mfa.required {
            // The sign-in does not complete: the user is sent to enrol a device.
            event(SignInOutcome::Failure(SignInRefusal::MfaNotEnrolled));
            // No device of any kind: add one now (docs/portal.md, self-service).
            return super::selfservice::start_enrolment(state, user, now, absolute, replaces).await;
        }
        tracing::info!(
            target: "audit", user = %user.name,
            "portal sign-in without MFA (mfa.required = false)"
        );
        event(SignInOutcome::Success);
        let record = session::record(user.user_id.clone(), now, PortalStage::SignedIn, absolute);
        return signed_in_response(state, replaces, record).await;
    }
    tracing::info!(target: "audit", user = %user.name, "portal password accepted; MFA pending");
    event(SignInOutcome::MfaRequired(
        match (serials.is_empty(), has_keys) {
            (false, true) => MfaKinds::Both,
            (true, _) => MfaKinds::SecurityKey,
            (false, false) => MfaKinds::Totp,
        },
    ));
    let record = session::record(
        user.user_id.clone(),
        now,
        PortalStage::Mfa,
        absolute.min(now + PENDING_MFA_SECS),
    );
    let id = session::start(state, replaces, record).await?;
    // A user with security keys only goes straight to the key page (webauthn.rs).
    let mut response = redirect(if serials.is_empty() {
        "/signin/key"
    } else {
        "/signin/mfa"
    });
    session::clear_cookie(&mut response, PRE_COOKIE);
    id.set_cookie(&mut response, SESSION_COOKIE)?;
    Ok(response)
}

/// The absolute end of a session signed in at `now`: `portal.absolute_timeout_secs`, or the
/// login profile's `MaxSigninSessionDuration` when shorter.
pub(super) fn signin_expiry(state: &AppState, now: i64, max_session: Option<u32>) -> i64 {
    let absolute = i64::from(state.config.portal.absolute_timeout_secs);
    now + max_session.map_or(absolute, |m| absolute.min(i64::from(m)))
}

/// The serials of `user_name`'s enabled TOTP devices.
pub(super) async fn totp_serials(
    state: &Arc<AppState>,
    user_name: &str,
) -> Result<Vec<String>, ApiError> {
    let owner = KeyOwner::User(user_name.to_owned());
    let devices = db(state, move |s| s.mfa_devices_of(&owner)).await??;
    Ok(devices
        .into_iter()
        .filter(|d| d.enabled_at.is_some())
        .map(|d| d.serial)
        .collect())
}

async fn state_has_keys(state: &Arc<AppState>, user_name: &str) -> Result<bool, ApiError> {
    let owner = KeyOwner::User(user_name.to_owned());
    let keys = db(state, move |s| s.security_keys_of(&owner)).await??;
    Ok(!keys.is_empty())
}

/// An expired password under `HardExpiry`: only an administrator can help.
fn password_change_needed(state: &AppState, name: &str) -> Response {
    tracing::info!(target: "audit", user = %name, "portal sign-in: password expired (HardExpiry)");
    html(
        StatusCode::FORBIDDEN,
        &Notice {
            account_id: &state.account_id,
            heading: "Your password has expired",
            paragraphs: vec![
                "The account's password policy does not let you change an expired password \
                 yourself: ask your administrator to set a new one."
                    .to_owned(),
            ],
            commands: Vec::new(),
        },
    )
}

#[derive(Template)]
#[template(path = "portal/password.html")]
struct PasswordPage<'a> {
    account_id: &'a str,
    user_name: &'a str,
    reason: &'a str,
    rules: Vec<String>,
    csrf: String,
    error: Option<&'a str>,
}

/// The change-password form's fields.
#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
    #[serde(default)]
    csrf: String,
}

/// `GET /signin/password`: the change-password form of a session that must change it.
pub async fn password_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let live = match session::current(&state, &headers, Some(PortalStage::Password)).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    match password_form(&state, &live, None, StatusCode::OK).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn password_form(
    state: &Arc<AppState>,
    live: &session::Live,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    let policy = db(state, |s| s.password_policy()).await??;
    Ok(html(
        status,
        &PasswordPage {
            account_id: &state.account_id,
            user_name: &user.name,
            reason: "Your password has expired or your administrator asked you to change it.",
            rules: policy_rules(policy.as_ref()),
            csrf: live.id.csrf_token(),
            error,
        },
    ))
}

/// The account password policy, in words.
pub(super) fn policy_rules(policy: Option<&tokengate_store::PasswordPolicy>) -> Vec<String> {
    let Some(p) = policy else {
        return vec![format!(
            "At least {} characters, with at least {} of: uppercase letters, lowercase \
             letters, numbers, symbols.",
            crate::passwords::DEFAULT_MINIMUM_LENGTH,
            crate::passwords::DEFAULT_CLASSES_REQUIRED
        )];
    };
    let mut rules = vec![format!("At least {} characters.", p.minimum_length)];
    for (required, what) in [
        (p.require_uppercase, "an uppercase letter"),
        (p.require_lowercase, "a lowercase letter"),
        (p.require_numbers, "a number"),
        (p.require_symbols, "a symbol"),
    ] {
        if required {
            rules.push(format!("At least {what}."));
        }
    }
    if let Some(n) = p.reuse_prevention {
        rules.push(format!("Not one of your last {n} passwords."));
    }
    rules
}

/// `POST /signin/password`: the change, as ChangePassword makes it (same authorization,
/// same policy, same compare-and-set), then on to the second factor.
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    let live = match session::current(&state, &headers, Some(PortalStage::Password)).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    if !live.id.csrf_matches(&form.csrf) {
        return forbidden();
    }
    let facts = crate::authz::RequestFacts {
        source_ip: peer.map(|axum::Extension(axum::extract::ConnectInfo(a))| a.ip()),
        secure_transport: false,
    };
    let at = sign_in_meta(&state, &headers, None).with_source_ip(facts.source_ip);
    match change_step(&state, &at, facts, live, &form).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn change_step(
    state: &Arc<AppState>,
    at: &SignInMeta,
    facts: crate::authz::RequestFacts,
    live: session::Live,
    form: &PasswordForm,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    if form.new_password != form.confirm_password {
        return password_form(
            state,
            &live,
            Some("The new passwords do not match."),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    if form.old_password.len() > MAX_PASSWORD || form.new_password.len() > MAX_PASSWORD {
        return password_form(state, &live, Some(SIGNIN_FAILED), StatusCode::BAD_REQUEST).await;
    }
    // Authorized as the API authorizes ChangePassword: AllowUsersToChangePassword or a
    // policy allows it, an explicit Deny refuses it.
    let caller = user_caller(state, &user);
    let spec = crate::registry::lookup(crate::registry::Api::Iam, "ChangePassword")
        .ok_or_else(|| ApiError::internal("the registry has no ChangePassword"))?;
    let resource = caller.principal.arn();
    let params = crate::params::Params::new(Vec::new());
    if let Err(e) = crate::authz::authorize(state, &caller, spec, &resource, &params, facts) {
        tracing::info!(
            target: "audit", user = %user.name, reason = %e.message,
            "portal password change refused"
        );
        let message = "You may not change your password: ask your administrator to set a new one.";
        return password_form(state, &live, Some(message), StatusCode::FORBIDDEN).await;
    }
    let name = user.name.clone();
    let Some(profile) = db(state, move |s| s.login_profile(&name)).await?? else {
        return Err(ApiError::internal("login profile deleted during sign-in"));
    };
    let old = Password::new(form.old_password.clone());
    let new = Password::new(form.new_password.clone());
    match change_own_password(state, &user.name, &profile, &old, &new).await {
        Ok(()) => {}
        Err(e) if e.status.is_client_error() => {
            return password_form(state, &live, Some(&e.message), StatusCode::BAD_REQUEST).await;
        }
        Err(e) => return Err(e),
    }
    tracing::info!(target: "audit", user = %user.name, "portal password changed");
    let now = state.clock.now().unix_timestamp();
    after_password(
        state,
        at,
        &user,
        now,
        profile.max_session_duration,
        Some(live.id.hash()),
    )
    .await
}

/// `GET /signin/mfa`: the code form of a session waiting for its second factor.
pub async fn mfa_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let live = match session::current(&state, &headers, Some(PortalStage::Mfa)).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    match mfa_form(&state, &live.id, &live.record, None, StatusCode::OK).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn mfa_form(
    state: &Arc<AppState>,
    id: &SessionId,
    record: &PortalSession,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let user = session_user(state, record).await?;
    let serials = totp_serials(state, &user.name).await?;
    let has_keys = state_has_keys(state, &user.name).await?;
    if serials.is_empty() && has_keys {
        return Ok(redirect("/signin/key"));
    }
    Ok(html(
        status,
        &MfaPage {
            account_id: &state.account_id,
            user_name: &user.name,
            serials,
            csrf: id.csrf_token(),
            error,
            has_keys,
        },
    ))
}

/// The session's user (a user deleted meanwhile ends every session: the cascade).
pub(super) async fn session_user(
    state: &Arc<AppState>,
    record: &PortalSession,
) -> Result<User, ApiError> {
    let user_id = record.user_id.clone();
    db(state, move |s| s.user_by_id(&user_id))
        .await??
        .ok_or_else(|| {
            ApiError::internal(StoreError::Backend("portal session without user".into()))
        })
}

/// The caller the API would see for `user` (no access key: the console signs in with a
/// password).
pub(super) fn user_caller(state: &AppState, user: &User) -> Caller {
    Caller {
        principal: Principal::User {
            account: state.account_id.clone(),
            path: user.path.clone(),
            name: user.name.clone(),
            user_id: user.user_id.clone(),
        },
        access_key_id: String::new(),
        session: None,
        request_mfa: None,
        region: PORTAL_REGION.to_owned(),
    }
}

/// `POST /signin/mfa`: the second factor, verified as GetSessionToken verifies it.
pub async fn mfa(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<MfaForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    let live = match session::current(&state, &headers, Some(PortalStage::Mfa)).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    if !live.id.csrf_matches(&form.csrf) {
        return forbidden();
    }
    let at = sign_in_meta(&state, &headers, peer);
    match mfa_step(&state, &at, live, &form).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn mfa_step(
    state: &Arc<AppState>,
    at: &SignInMeta,
    live: session::Live,
    form: &MfaForm,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    let serials = totp_serials(state, &user.name).await?;
    let code = form.code.trim();
    let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    let known_device = serials.contains(&form.serial);
    // The device is named only when it is one of the user's (not whatever was posted).
    let device = known_device.then_some(form.serial.as_str());
    let event = |outcome| {
        let who = SignInUser::of(&state.account_id, &user);
        (state.audit).console_sign_in(at, who, SignInFactor::Totp, device, outcome);
    };
    if !well_formed || !known_device {
        tracing::info!(
            target: "audit", user = %user.name,
            "portal MFA refused: malformed or not this user's device"
        );
        event(SignInOutcome::Failure(if known_device {
            SignInRefusal::MalformedCode
        } else {
            SignInRefusal::UnknownDevice
        }));
        return mfa_form(
            state,
            &live.id,
            &live.record,
            Some(CODE_FAILED),
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    let caller = user_caller(state, &user);
    let mfa = match crate::mfa::check_code(state, &caller, &form.serial, code).await? {
        Ok(mfa) => mfa,
        Err(refusal) => {
            event(SignInOutcome::Failure(match refusal {
                CodeRefusal::NotAssigned => SignInRefusal::UnknownDevice,
                CodeRefusal::WrongCode => SignInRefusal::WrongCode,
                CodeRefusal::Replayed => SignInRefusal::ReplayedCode,
                CodeRefusal::LockedOut => SignInRefusal::LockedOut,
            }));
            return mfa_form(
                state,
                &live.id,
                &live.record,
                Some(CODE_FAILED),
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
    };
    let name = user.name.clone();
    let profile = db(state, move |s| s.login_profile(&name)).await??;
    let absolute = signin_expiry(
        state,
        live.record.created,
        profile.and_then(|p| p.max_session_duration),
    );
    let now = state.clock.now().unix_timestamp();
    tracing::info!(
        target: "audit", user = %user.name, serial = %form.serial,
        "portal sign-in with MFA (totp)"
    );
    event(SignInOutcome::Success);
    let record = PortalSession {
        stage: PortalStage::SignedIn,
        last_seen: now,
        expires: absolute,
        ..with_mfa(live.record, &mfa)
    };
    signed_in_response(state, Some(live.id.hash()), record).await
}

pub(super) fn with_mfa(record: PortalSession, mfa: &MfaContext) -> PortalSession {
    PortalSession {
        mfa_method: mfa.method.map(|m| mfa_method(m).to_owned()),
        mfa_device: mfa.device.clone(),
        mfa_time: mfa.auth_time,
        ..record
    }
}

/// Rotates into a signed-in session and sends the browser to the portal.
pub(super) async fn signed_in_response(
    state: &Arc<AppState>,
    replaces: Option<Vec<u8>>,
    record: PortalSession,
) -> Result<Response, ApiError> {
    let id = session::start(state, replaces, record).await?;
    let mut response = redirect("/portal");
    session::clear_cookie(&mut response, PRE_COOKIE);
    id.set_cookie(&mut response, SESSION_COOKIE)?;
    Ok(response)
}

/// `POST /signout`: ends the session (any stage) and forgets the cookie.
pub async fn sign_out(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Response {
    if !same_origin(&headers) {
        return forbidden();
    }
    let live = match session::current(&state, &headers, None).await {
        Ok(live) => live,
        Err(e) => return failure(e),
    };
    if let Some(live) = live {
        if !live.id.csrf_matches(&form.csrf) {
            return forbidden();
        }
        if let Err(e) = session::end(&state, live.id.hash()).await {
            return failure(e);
        }
        tracing::info!(target: "audit", user_id = %live.record.user_id, "portal sign-out");
    }
    let mut response = redirect("/signin");
    session::clear_cookie(&mut response, SESSION_COOKIE);
    response
}
