//! Security keys in the browser (docs/portal.md): `/signin/key`, the second factor by
//! `navigator.credentials.get`, and `/portal/keys`, registering a key by
//! `navigator.credentials.create`. The browser only carries bytes (assets/webauthn.js);
//! every check is the API's:
//!
//! - Sign-in: one fresh challenge of the store's (`touch::new_challenge`, the one
//!   GetSecurityKeyChallenge issues), stored once per usable key of the user with the same
//!   random bytes — `allowCredentials` names all of them and the browser signs one
//!   challenge — and verified by [`touch::verify_login`], the check GetSessionTokenWithSecurityKey
//!   and AssumeRoleWithSecurityKey share: the key is the user's and not locked out or
//!   flagged, the challenge is live, this principal's and this key's, the signature, rpIdHash,
//!   origin, user presence and counter (clone rule) verify, and the counter and spent challenge
//!   are recorded before the session is signed in; a failure counts toward the key's lockout.
//!   A credential that is not one of the user's keys is refused before any of that.
//! - Registration: the two IAM calls `tokengate mfa register-key` makes —
//!   CreateSecurityKeyRegistrationChallenge and EnableSecurityKey — run through
//!   [`crate::chokepoint::invoke`] with the signed-in user as the caller, so they are
//!   authorized (as `iam:EnableMFADevice`), verified (the same attestation trust rules) and
//!   audited exactly as the API calls.
//!
//! The relying party is the API's (`security_keys.rp_id`, `origin`), so a key registered
//! here works with `tokengate login` and the other way round.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Form};
use data_encoding::{BASE64, BASE64URL_NOPAD, HEXLOWER};
use serde::Deserialize;
use tokengate_store::{CeremonyKind, Challenge, KeyOwner, PortalSession, PortalStage, User};
use tokengate_token::secret::constant_time_eq;
use tokengate_token::session::MfaContext;

use super::console::mfa_of;
use super::session::{self, Live};
use super::signin::{
    session_user, signed_in_response, signin_expiry, totp_serials, user_caller, with_mfa,
};
use super::{failure, forbidden, html, redirect, same_origin, security_headers};
use crate::action::Api;
use crate::audit::{SignInFactor, SignInMeta, SignInOutcome, SignInRefusal, SignInUser};
use crate::authz::{RequestFacts, mfa_method};
use crate::common::db;
use crate::error::ApiError;
use crate::params::{Params, Validator};
use crate::state::AppState;
use crate::touch::{self, CHALLENGE_ID_LEN, new_challenge, random, store_challenge};

/// The text of every refused key sign-in (the reason goes to the audit log only).
pub const KEY_FAILED: &str = "The security key was not accepted. Try again with a key \
                              registered for this user, or use another method.";
/// At most this many challenge ids are read back from a form (the MFA-device quota).
const MAX_FORM_CHALLENGES: usize = tokengate_store::MAX_MFA_DEVICES;

/// The peer's address, as the chokepoint reads it (absent in router tests).
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn facts(peer: &Peer) -> RequestFacts {
    RequestFacts {
        source_ip: peer.as_ref().map(|Extension(ConnectInfo(addr))| addr.ip()),
        secure_transport: false,
    }
}

// ---- Sign-in ----

#[derive(Template)]
#[template(path = "portal/key_signin.html")]
struct KeySigninPage<'a> {
    account_id: &'a str,
    user_name: &'a str,
    rp_id: &'a str,
    origin: &'a str,
    /// base64url, as the script decodes it.
    challenge: String,
    /// The user's usable keys' credential ids, base64url, comma-separated.
    credentials: String,
    /// The ids of the challenges this page issued, comma-separated.
    challenges: String,
    timeout_ms: i64,
    csrf: String,
    error: Option<&'a str>,
    keys_available: bool,
    has_totp: bool,
    /// The script starts the ceremony on load, except after a refusal (no loop of failures
    /// counting toward the key's lockout).
    autostart: bool,
}

/// The key sign-in form's fields (assets/webauthn.js fills the four blobs, base64).
#[derive(Deserialize)]
pub struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenges: String,
    #[serde(default)]
    credential_id: String,
    #[serde(default)]
    authenticator_data: String,
    #[serde(default)]
    client_data_json: String,
    #[serde(default)]
    signature: String,
}

/// The refusal of a credential that is none of the user's keys.
const NOT_USERS_KEY: &str = "not one of this user's security keys";

/// How one security-key sign-in step ended.
pub enum KeySignIn {
    /// The key's assertion was accepted: the session signs in with this MFA context.
    Accepted(MfaContext),
    /// Refused, for this reason (never shown to the browser).
    Refused(&'static str),
}

/// **The one place a key sign-in step's outcome comes out**: accepted (with its method and
/// device) or refused (with its reason), for `user`. The detailed verification refusal is
/// also on the `audit` target from [`touch::verify_login`] ("MFA refused"); this is the
/// portal's sign-in event.
fn key_signin_outcome(state: &AppState, at: &SignInMeta, user: &User, outcome: &KeySignIn) {
    // The CloudTrail event (docs/audit.md "Console sign-in"). The browser step is WebAuthn
    // whatever the key's protocol: a refusal says `fido2`; a success, the key's method.
    let who = SignInUser::of(&state.account_id, user);
    match outcome {
        KeySignIn::Accepted(mfa) => {
            let factor = match mfa.method {
                Some(tokengate_token::session::MfaMethod::U2f) => SignInFactor::U2f,
                _ => SignInFactor::Fido2,
            };
            let device = mfa.device.as_deref();
            (state.audit).console_sign_in(at, who, factor, device, SignInOutcome::Success);
        }
        KeySignIn::Refused(reason) => {
            let refusal = match *reason {
                NOT_USERS_KEY => SignInRefusal::UnknownDevice,
                _ => SignInRefusal::SignatureInvalid,
            };
            let outcome = SignInOutcome::Failure(refusal);
            (state.audit).console_sign_in(at, who, SignInFactor::Fido2, None, outcome);
        }
    }
    match outcome {
        KeySignIn::Accepted(mfa) => tracing::info!(
            target: "audit",
            user = %user.name,
            method = mfa.method.map_or("none", mfa_method),
            serial = mfa.device.as_deref().unwrap_or(""),
            "portal sign-in with MFA (security key)"
        ),
        KeySignIn::Refused(reason) => tracing::info!(
            target: "audit",
            user = %user.name,
            reason,
            "portal security-key sign-in refused"
        ),
    }
}

/// `GET /signin/key`: a fresh challenge for the user's keys; the script starts at once.
pub async fn signin_page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let live = match session::current(&state, &headers, Some(PortalStage::Mfa)).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    match key_signin_form(&state, &live, None, StatusCode::OK).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn key_signin_form(
    state: &Arc<AppState>,
    live: &Live,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    let caller = user_caller(state, &user);
    let owner = KeyOwner::User(user.name.clone());
    let keys = db(state, move |s| s.security_keys_of(&owner)).await??;
    let now = state.clock.now().unix_timestamp();
    let all = keys.len();
    // As GetSecurityKeyChallenge: a flagged or locked-out key gets no challenge.
    let usable: Vec<_> = keys
        .into_iter()
        .filter(|k| k.possibly_cloned_at.is_none() && k.lockout.locked_at(now).is_none())
        .collect();
    let has_totp = !totp_serials(state, &user.name).await?.is_empty();
    let mut error = error.map(str::to_owned);
    let mut challenges = Vec::new();
    let mut first: Option<Challenge> = None;
    for key in &usable {
        let challenge = match &first {
            None => new_challenge(
                state,
                CeremonyKind::Authenticate,
                &caller,
                key.owner.clone(),
                key.serial.clone(),
                key.protocol,
                key.name.clone(),
            )?,
            // The same bytes (the browser signs one challenge), bound to this key.
            Some(first) => Challenge {
                id: HEXLOWER.encode(&random(state, CHALLENGE_ID_LEN)?),
                serial: key.serial.clone(),
                protocol: key.protocol,
                device_name: key.name.clone(),
                ..first.clone()
            },
        };
        match store_challenge(state, challenge.clone()).await {
            Ok(()) => {}
            Err(e) if e.status.is_client_error() => {
                error = Some(format!(
                    "{} Wait a minute, then reload this page.",
                    e.message
                ));
                challenges.clear();
                break;
            }
            Err(e) => return Err(e),
        }
        challenges.push(challenge.id.clone());
        first.get_or_insert(challenge);
    }
    let keys_available = !challenges.is_empty();
    if all == 0 && error.is_none() {
        error = Some("You have no security key registered. Use another method.".to_owned());
    } else if usable.is_empty() && error.is_none() {
        error = Some(
            "None of your security keys can be used now (locked after repeated failures, or \
             flagged as possibly cloned). Use another method, or ask your administrator."
                .to_owned(),
        );
    }
    let settings = &state.security_keys;
    Ok(html(
        status,
        &KeySigninPage {
            account_id: &state.account_id,
            user_name: &user.name,
            rp_id: &settings.rp_id,
            origin: &settings.origin,
            challenge: first
                .as_ref()
                .map(|c| BASE64URL_NOPAD.encode(&c.challenge))
                .unwrap_or_default(),
            credentials: usable
                .iter()
                .map(|k| BASE64URL_NOPAD.encode(&k.credential_id))
                .collect::<Vec<_>>()
                .join(","),
            challenges: challenges.join(","),
            timeout_ms: settings.challenge_ttl * 1000,
            csrf: live.id.csrf_token(),
            error: error.as_deref(),
            keys_available,
            has_totp,
            autostart: error.is_none(),
        },
    ))
}

/// `POST /signin/key`: the browser's assertion, verified as GetSessionTokenWithSecurityKey
/// verifies it.
pub async fn signin(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
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
    let source_ip = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let at = SignInMeta::of_request(state.clock.now().unix_timestamp(), &headers, source_ip);
    match key_step(&state, &at, live, &form).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn key_step(
    state: &Arc<AppState>,
    at: &SignInMeta,
    live: Live,
    form: &KeyForm,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    let caller = user_caller(state, &user);
    let ids: Vec<String> = form
        .challenges
        .split(',')
        .filter(|id| id.len() == 2 * CHALLENGE_ID_LEN)
        .take(MAX_FORM_CHALLENGES)
        .map(str::to_owned)
        .collect();
    let outcome = verify(state, &caller, &user, &ids, form).await?;
    key_signin_outcome(state, at, &user, &outcome);
    // The page's other challenges (one per key) are spent with it.
    let arn = caller.principal.arn();
    db(state, move |s| {
        for id in &ids {
            let ours = s
                .challenge(id)?
                .is_some_and(|c| c.requester == arn && c.ceremony == CeremonyKind::Authenticate);
            if ours {
                s.discard_challenge(id)?;
            }
        }
        Ok(())
    })
    .await??;
    match outcome {
        KeySignIn::Accepted(mfa) => signed_in(state, live, &user, &mfa).await,
        KeySignIn::Refused(_) => {
            key_signin_form(state, &live, Some(KEY_FAILED), StatusCode::UNAUTHORIZED).await
        }
    }
}

/// The checks of one key sign-in: the credential is one of the user's keys, the page issued
/// a challenge for that key, and [`touch::verify_login`] accepts the assertion.
async fn verify(
    state: &Arc<AppState>,
    caller: &crate::auth::Caller,
    user: &User,
    ids: &[String],
    form: &KeyForm,
) -> Result<KeySignIn, ApiError> {
    let Ok(credential_id) = BASE64.decode(form.credential_id.as_bytes()) else {
        return Ok(KeySignIn::Refused("malformed credential id"));
    };
    let owner = KeyOwner::User(user.name.clone());
    let keys = db(state, move |s| s.security_keys_of(&owner)).await??;
    let Some(key) = keys
        .into_iter()
        .find(|k| constant_time_eq(&k.credential_id, &credential_id))
    else {
        return Ok(KeySignIn::Refused(NOT_USERS_KEY));
    };
    let (serial, arn, ids) = (key.serial.clone(), caller.principal.arn(), ids.to_vec());
    let challenge_id = db(state, move |s| {
        for id in ids {
            let matches = s.challenge(&id)?.is_some_and(|c| {
                c.serial == serial && c.requester == arn && c.ceremony == CeremonyKind::Authenticate
            });
            if matches {
                return Ok(Some(id));
            }
        }
        Ok(None)
    })
    .await??;
    let Some(challenge_id) = challenge_id else {
        return Ok(KeySignIn::Refused(
            "no live challenge of this page for the key (used or expired)",
        ));
    };
    // The API's parameters, read by the API's reader.
    let params = Params::new(vec![
        ("SerialNumber".to_owned(), key.serial.clone()),
        ("ChallengeId".to_owned(), challenge_id),
        ("CredentialId".to_owned(), form.credential_id.clone()),
        (
            "AuthenticatorData".to_owned(),
            form.authenticator_data.clone(),
        ),
        ("ClientDataJSON".to_owned(), form.client_data_json.clone()),
        ("Signature".to_owned(), form.signature.clone()),
    ]);
    let mut v = Validator::new();
    let assertion = touch::read_assertion(&mut v, &params);
    let (Ok(()), Some(assertion)) = (v.finish(), assertion) else {
        return Ok(KeySignIn::Refused("malformed assertion"));
    };
    match touch::verify_login(state, caller, &assertion).await {
        Ok(mfa) => Ok(KeySignIn::Accepted(mfa)),
        Err(e) if e.status.is_client_error() => Ok(KeySignIn::Refused(
            "the assertion was refused (the MFA record says why)",
        )),
        Err(e) => Err(e),
    }
}

/// Rotates the pending session into a signed-in one carrying the key's MFA context.
async fn signed_in(
    state: &Arc<AppState>,
    live: Live,
    user: &User,
    mfa: &MfaContext,
) -> Result<Response, ApiError> {
    let name = user.name.clone();
    let profile = db(state, move |s| s.login_profile(&name)).await??;
    let absolute = signin_expiry(
        state,
        live.record.created,
        profile.and_then(|p| p.max_session_duration),
    );
    let now = state.clock.now().unix_timestamp();
    let record = PortalSession {
        stage: PortalStage::SignedIn,
        last_seen: now,
        expires: absolute,
        ..with_mfa(live.record, mfa)
    };
    signed_in_response(state, Some(live.id.hash()), record).await
}

// ---- Registration ----

/// A registration the browser is to perform.
struct CeremonyView {
    device_name: String,
    challenge_id: String,
    rp_id: String,
    origin: String,
    challenge: String,
    exclude: String,
    user_id: String,
    attestation: &'static str,
    timeout_ms: i64,
}

/// A key just registered.
struct RegisteredView {
    name: String,
    serial: String,
    protocol: String,
    attestation: String,
}

#[derive(Template)]
#[template(path = "portal/key_register.html")]
struct RegisterPage<'a> {
    account_id: &'a str,
    user_arn: String,
    user_name: &'a str,
    csrf: String,
    error: Option<&'a str>,
    ceremony: Option<CeremonyView>,
    registered: Option<RegisteredView>,
}

/// The first registration form: the key's name.
#[derive(Deserialize)]
pub struct BeginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    device_name: String,
}

/// The browser's registration (assets/webauthn.js fills the blobs, base64).
#[derive(Deserialize)]
pub struct FinishForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    challenge_id: String,
    #[serde(default)]
    client_data_json: String,
    #[serde(default)]
    attestation_object: String,
}

async fn signed_in_live(
    state: &Arc<AppState>,
    headers: &HeaderMap,
) -> Result<Option<Live>, Response> {
    match session::current(state, headers, Some(PortalStage::SignedIn)).await {
        Ok(live) => Ok(live),
        Err(e) => Err(failure(e)),
    }
}

fn register_page(
    state: &AppState,
    user: &User,
    live: &Live,
    status: StatusCode,
    error: Option<&str>,
    ceremony: Option<CeremonyView>,
    registered: Option<RegisteredView>,
) -> Response {
    html(
        status,
        &RegisterPage {
            account_id: &state.account_id,
            user_arn: tokengate_token::arn::user_arn(&state.account_id, &user.path, &user.name),
            user_name: &user.name,
            csrf: live.id.csrf_token(),
            error,
            ceremony,
            registered,
        },
    )
}

/// `GET /portal/keys`: the name form.
pub async fn register_form(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let live = match signed_in_live(&state, &headers).await {
        Ok(Some(live)) => live,
        Ok(None) => return redirect("/signin"),
        Err(response) => return response,
    };
    match session_user(&state, &live.record).await {
        Ok(user) => register_page(&state, &user, &live, StatusCode::OK, None, None, None),
        Err(e) => failure(e),
    }
}

/// `POST /portal/keys`: CreateSecurityKeyRegistrationChallenge for the signed-in user, then
/// the page that runs `navigator.credentials.create`.
pub async fn register_begin(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<BeginForm>,
) -> Response {
    let live = match checked(&state, &headers, &form.csrf).await {
        Ok(live) => live,
        Err(response) => return response,
    };
    match begin_step(&state, facts(&peer), &headers, &live, &form).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

/// A POST's signed-in session, after the origin and form-token checks.
async fn checked(state: &Arc<AppState>, headers: &HeaderMap, csrf: &str) -> Result<Live, Response> {
    if !same_origin(headers) {
        return Err(forbidden());
    }
    let live = match signed_in_live(state, headers).await? {
        Some(live) => live,
        None => return Err(redirect("/signin")),
    };
    if !live.id.csrf_matches(csrf) {
        return Err(forbidden());
    }
    Ok(live)
}

/// Runs the IAM action `name` as the signed-in user, through the chokepoint.
async fn call(
    state: &Arc<AppState>,
    facts: RequestFacts,
    headers: &HeaderMap,
    live: &Live,
    user: &User,
    name: &str,
    params: Vec<(String, String)>,
) -> Result<String, ApiError> {
    // The caller as the self-service pages build it: the user, with the sign-in's MFA
    // context as the request's (selfservice.rs, docs/portal.md "Self-service").
    let mut caller = user_caller(state, user);
    caller.request_mfa = Some(mfa_of(&live.record));
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let result = crate::chokepoint::invoke(
        state,
        caller,
        Api::Iam,
        name,
        Params::new(params),
        facts,
        user_agent,
    )
    .await?;
    Ok(result.unwrap_or_default())
}

/// What a refused registration call tells the user.
fn refused_text(e: &ApiError) -> String {
    match e.code {
        "AccessDenied" | "InvalidClientTokenId" => "You may not register a security key: your \
            permissions do not allow iam:EnableMFADevice on your user. Ask your administrator."
            .to_owned(),
        "InvalidAuthenticationCode" => "The security key was not registered: this tokengate \
            does not trust its attestation, or the request expired. Ask your administrator \
            which keys it accepts."
            .to_owned(),
        _ => e.message.clone(),
    }
}

async fn begin_step(
    state: &Arc<AppState>,
    facts: RequestFacts,
    headers: &HeaderMap,
    live: &Live,
    form: &BeginForm,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    let params = vec![
        ("UserName".to_owned(), user.name.clone()),
        ("DeviceName".to_owned(), form.device_name.trim().to_owned()),
    ];
    let name = "CreateSecurityKeyRegistrationChallenge";
    let xml = match call(state, facts, headers, live, &user, name, params).await {
        Ok(xml) => xml,
        Err(e) if e.status.is_client_error() => {
            let text = refused_text(&e);
            let status = e.status;
            return Ok(register_page(
                state,
                &user,
                live,
                status,
                Some(&text),
                None,
                None,
            ));
        }
        Err(e) => return Err(e),
    };
    let id = xml_text(&xml, "ChallengeId")
        .ok_or_else(|| ApiError::internal("the registration challenge has no id"))?
        .to_owned();
    let lookup = id.clone();
    let challenge = db(state, move |s| s.challenge(&lookup))
        .await??
        .ok_or_else(|| ApiError::internal("the registration challenge vanished"))?;
    let owner = KeyOwner::User(user.name.clone());
    let keys = db(state, move |s| s.security_keys_of(&owner)).await??;
    let settings = &state.security_keys;
    let ceremony = CeremonyView {
        device_name: challenge.device_name.clone(),
        challenge_id: id,
        rp_id: settings.rp_id.clone(),
        origin: settings.origin.clone(),
        challenge: BASE64URL_NOPAD.encode(&challenge.challenge),
        exclude: keys
            .iter()
            .map(|k| BASE64URL_NOPAD.encode(&k.credential_id))
            .collect::<Vec<_>>()
            .join(","),
        // The user handle the API's challenge names (UserId), as the CLI sends it.
        user_id: BASE64URL_NOPAD.encode(user.user_id.as_bytes()),
        attestation: settings.browser_attestation.as_str(),
        timeout_ms: settings.challenge_ttl * 1000,
    };
    Ok(register_page(
        state,
        &user,
        live,
        StatusCode::OK,
        None,
        Some(ceremony),
        None,
    ))
}

/// `POST /portal/keys/finish`: EnableSecurityKey with the browser's attestation.
pub async fn register_finish(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<FinishForm>,
) -> Response {
    let live = match checked(&state, &headers, &form.csrf).await {
        Ok(live) => live,
        Err(response) => return response,
    };
    match finish_step(&state, facts(&peer), &headers, &live, &form).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn finish_step(
    state: &Arc<AppState>,
    facts: RequestFacts,
    headers: &HeaderMap,
    live: &Live,
    form: &FinishForm,
) -> Result<Response, ApiError> {
    let user = session_user(state, &live.record).await?;
    let params = vec![
        ("ChallengeId".to_owned(), form.challenge_id.clone()),
        ("ClientDataJSON".to_owned(), form.client_data_json.clone()),
        (
            "AttestationObject".to_owned(),
            form.attestation_object.clone(),
        ),
    ];
    let xml = match call(
        state,
        facts,
        headers,
        live,
        &user,
        "EnableSecurityKey",
        params,
    )
    .await
    {
        Ok(xml) => xml,
        Err(e) if e.status.is_client_error() => {
            let text = refused_text(&e);
            return Ok(register_page(
                state,
                &user,
                live,
                e.status,
                Some(&text),
                None,
                None,
            ));
        }
        Err(e) => return Err(e),
    };
    let field = |tag: &str| xml_text(&xml, tag).map(unescape).unwrap_or_default();
    let registered = RegisteredView {
        name: field("DeviceName"),
        serial: field("SerialNumber"),
        protocol: field("Protocol"),
        attestation: field("AttestationResult"),
    };
    let mut response = register_page(
        state,
        &user,
        live,
        StatusCode::OK,
        None,
        None,
        Some(registered),
    );
    security_headers(response.headers_mut());
    Ok(response)
}

/// The text of the first `<tag>` element of XML the service itself wrote.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml.get(start..)?.find(&format!("</{tag}>"))?;
    xml.get(start..start + len)
}

/// Undoes the XML writer's escapes (the page escapes again for HTML).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_reads_the_first_element() {
        let xml = "<A><ChallengeId>ab12</ChallengeId><B>x &amp; y</B></A>";
        assert_eq!(xml_text(xml, "ChallengeId"), Some("ab12"));
        assert_eq!(xml_text(xml, "B").map(unescape).as_deref(), Some("x & y"));
        assert_eq!(xml_text(xml, "C"), None);
        assert_eq!(xml_text("<C>open", "C"), None);
    }
}
