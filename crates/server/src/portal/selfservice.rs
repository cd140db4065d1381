//! Self-service pages (issue 13, docs/portal.md): `/portal/security` lists your MFA
//! devices (authenticator apps and security keys, with their enable dates) with a button to
//! deactivate each, and a form to add an authenticator app; `/portal/mfa/create` shows the
//! new device's QR code (inline SVG) and secret; `/portal/mfa/enable` takes two consecutive
//! codes; `/portal/mfa/deactivate` removes a device; `/portal/password` changes your
//! password.
//!
//! Each page makes exactly the API call it mirrors — `ListMFADevices`,
//! `CreateVirtualMFADevice`, `EnableMFADevice`, `DeactivateMFADevice` (which also removes a
//! security key), `ChangePassword` — through [`crate::chokepoint::invoke`]: the registry's
//! resource, [`crate::authz::authorize`] with the session's principal and MFA context, the
//! API's handler and validation, the audit hook. So AWS's "manage your own MFA" policy
//! governs these pages as it governs the API, and a refusal by policy shows AWS's
//! AccessDenied text and the permission that is missing.
//!
//! The portal caller is the signed-in user with the sign-in's MFA context as the request's
//! (`aws:MultiFactorAuthPresent` true after a second factor, false without one), as the
//! console's temporary credentials carry it. A session that passed the password but has
//! no device yet (`mfa.required`) may use the add-device pages and nothing else here, and
//! only while the user still has no device; after enabling one it goes back to
//! `/signin/mfa` for a code of the new device.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Form};
use serde::Deserialize;
use tokengate_store::{KeyOwner, PortalStage, User};
use tokengate_token::session::MfaContext;
use zeroize::Zeroize;

use super::console::mfa_of;
use super::session::{self, Live};
use super::signin::{policy_rules, session_user, user_caller};
use super::{failure, forbidden, html, redirect, same_origin};
use crate::action::Api;
use crate::auth::Caller;
use crate::authz::RequestFacts;
use crate::chokepoint;
use crate::common::db;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// How long a session that must enrol its first device has for it.
pub const ENROL_SECS: i64 = 600;
/// Longest device name kept from a form (IAM's `virtualMFADeviceName` is 1..226; the API
/// validates it, this only bounds what the page echoes).
const MAX_FIELD: usize = 512;

/// The peer's address, as the chokepoint reads it (absent in router tests).
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// A device as the security page lists it.
struct DeviceView {
    serial: String,
    kind: &'static str,
    enabled: String,
    /// Element id suffix of its deactivate button.
    index: usize,
}

#[derive(Template)]
#[template(path = "portal/security.html")]
struct SecurityPage<'a> {
    account_id: &'a str,
    user_arn: String,
    user_name: &'a str,
    csrf: String,
    /// A session that must add its first device: only the add form.
    enrolling: bool,
    done: Option<&'static str>,
    devices: Vec<DeviceView>,
    /// Why the list is not shown (ListMFADevices refused).
    list_denied: Option<String>,
    device_name: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/enrol.html")]
struct EnrolPage<'a> {
    account_id: &'a str,
    user_arn: String,
    user_name: &'a str,
    csrf: String,
    enrolling: bool,
    serial: String,
    /// The QR code (inline SVG, built by [`crate::qr::svg`]); `None` when the codes are
    /// asked again (the secret is shown once).
    qr: Option<String>,
    /// The base32 secret for manual entry, shown once.
    secret: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/change_password.html")]
struct ChangePasswordPage<'a> {
    account_id: &'a str,
    user_arn: String,
    user_name: &'a str,
    csrf: String,
    enrolling: bool,
    rules: Vec<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "portal/denied.html")]
struct DeniedPage<'a> {
    account_id: &'a str,
    user_arn: String,
    csrf: String,
    enrolling: bool,
    permission: String,
    message: String,
    back: &'static str,
}

/// The add-device form.
#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    device_name: String,
    #[serde(default)]
    csrf: String,
}

/// The two-codes form.
#[derive(Deserialize)]
pub struct EnableForm {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    code1: String,
    #[serde(default)]
    code2: String,
    #[serde(default)]
    csrf: String,
}

/// A deactivate button.
#[derive(Deserialize)]
pub struct DeactivateForm {
    #[serde(default)]
    serial: String,
    #[serde(default)]
    csrf: String,
}

/// The change-password form.
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

impl Drop for PasswordForm {
    fn drop(&mut self) {
        self.old_password.zeroize();
        self.new_password.zeroize();
        self.confirm_password.zeroize();
    }
}

/// Who is asking: the session, its user and the caller the API would see.
struct Viewer {
    live: Live,
    user: User,
    caller: Caller,
    /// Password verified, no device yet: may only add one.
    enrolling: bool,
    facts: RequestFacts,
    user_agent: Option<String>,
}

impl Viewer {
    /// One API call through the chokepoint, as this viewer.
    async fn call(
        &self,
        state: &Arc<AppState>,
        action: &str,
        params: Vec<(&str, &str)>,
    ) -> Result<Option<String>, ApiError> {
        let params = Params::new(
            params
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        );
        chokepoint::invoke(
            state,
            self.caller.clone(),
            Api::Iam,
            action,
            params,
            self.facts,
            self.user_agent.as_deref(),
        )
        .await
    }

    fn arn(&self) -> String {
        self.caller.principal.arn()
    }
}

/// What a page may accept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Signed in only.
    SignedIn,
    /// Signed in, or password verified with no device yet (adding the first device).
    Enrol,
}

/// The request's viewer, if its session may see this page.
async fn viewer(
    state: &Arc<AppState>,
    peer: Peer,
    headers: &HeaderMap,
    access: Access,
) -> Result<Option<Viewer>, ApiError> {
    let Some(live) = session::current(state, headers, None).await? else {
        return Ok(None);
    };
    let user = session_user(state, &live.record).await?;
    let enrolling = match live.record.stage {
        PortalStage::SignedIn => false,
        PortalStage::Mfa if access == Access::Enrol && !has_device(state, &user).await? => true,
        _ => return Ok(None),
    };
    let mut caller = user_caller(state, &user);
    caller.request_mfa = Some(if enrolling {
        MfaContext::default()
    } else {
        mfa_of(&live.record)
    });
    Ok(Some(Viewer {
        live,
        user,
        caller,
        enrolling,
        facts: RequestFacts {
            source_ip: peer.map(|Extension(ConnectInfo(addr))| addr.ip()),
            secure_transport: false,
        },
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(MAX_FIELD).collect()),
    }))
}

/// Whether `user` has any MFA device (an enabled TOTP device or a security key).
async fn has_device(state: &Arc<AppState>, user: &User) -> Result<bool, ApiError> {
    let owner = KeyOwner::User(user.name.clone());
    let (devices, keys) = db(state, move |s| {
        Ok::<_, tokengate_store::StoreError>((
            s.mfa_devices_of(&owner)?,
            s.security_keys_of(&owner)?,
        ))
    })
    .await??;
    Ok(devices.iter().any(|d| d.enabled_at.is_some()) || !keys.is_empty())
}

/// Whether `e` is a refusal by policy (AWS's `User: … is not authorized to perform: …`),
/// not an AccessDenied of the call itself (e.g. a wrong old password).
fn denied_by_policy(e: &ApiError) -> bool {
    e.code == "AccessDenied" && e.message.contains(" is not authorized to perform: ")
}

/// The AccessDenied page: AWS's text and the permission that is missing.
fn denied(state: &AppState, v: &Viewer, action: &str, e: &ApiError) -> Response {
    tracing::info!(
        target: "audit", principal = %v.arn(), action, reason = %e.message,
        "portal self-service refused by policy"
    );
    html(
        StatusCode::FORBIDDEN,
        &DeniedPage {
            account_id: &state.account_id,
            user_arn: v.arn(),
            csrf: v.live.id.csrf_token(),
            enrolling: v.enrolling,
            permission: format!("iam:{action}"),
            message: e.message.clone(),
            back: "/portal/security",
        },
    )
}

/// `GET /portal/security`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let v = match viewer(&state, peer, &headers, Access::Enrol).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    let done = match query.as_deref() {
        Some("done=enabled") => Some("Your MFA device is enabled."),
        Some("done=deactivated") => Some("The MFA device was deactivated."),
        Some("done=password") => Some("Your password was changed."),
        _ => None,
    };
    let device_name = v.user.name.clone();
    match security_page(&state, &v, done, device_name, None, StatusCode::OK).await {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

async fn security_page(
    state: &Arc<AppState>,
    v: &Viewer,
    done: Option<&'static str>,
    device_name: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let (devices, list_denied) = if v.enrolling {
        (Vec::new(), None)
    } else {
        match v
            .call(state, "ListMFADevices", vec![("UserName", &v.user.name)])
            .await
        {
            Ok(body) => (devices_of(body.as_deref().unwrap_or_default()), None),
            Err(e) if denied_by_policy(&e) => (Vec::new(), Some(e.message)),
            Err(e) => return Err(e),
        }
    };
    Ok(html(
        status,
        &SecurityPage {
            account_id: &state.account_id,
            user_arn: v.arn(),
            user_name: &v.user.name,
            csrf: v.live.id.csrf_token(),
            enrolling: v.enrolling,
            done,
            devices,
            list_denied,
            device_name,
            error,
        },
    ))
}

/// The devices of a ListMFADevices result (our own XML: `member`s with `SerialNumber` and
/// an optional `EnableDate`).
fn devices_of(xml: &str) -> Vec<DeviceView> {
    xml.split("<member>")
        .skip(1)
        .enumerate()
        .filter_map(|(index, member)| {
            let serial = element(member, "SerialNumber")?;
            let kind = if crate::relying_party::is_security_key_serial(&serial) {
                "Security key"
            } else {
                "Authenticator app (TOTP)"
            };
            Some(DeviceView {
                enabled: element(member, "EnableDate").unwrap_or_else(|| "—".to_owned()),
                serial,
                kind,
                index,
            })
        })
        .collect()
}

/// The text of the first `<name>` element of `xml`, entities decoded.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml.get(start..)?.find(&format!("</{name}>"))? + start;
    Some(
        xml.get(start..end)?
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

/// Checks the origin and the form token of a POST; the viewer when both pass.
async fn post_viewer(
    state: &Arc<AppState>,
    peer: Peer,
    headers: &HeaderMap,
    access: Access,
    csrf: &str,
) -> Result<Option<Viewer>, Response> {
    if !same_origin(headers) {
        return Err(forbidden());
    }
    match viewer(state, peer, headers, access).await {
        Ok(Some(v)) if v.live.id.csrf_matches(csrf) => Ok(Some(v)),
        Ok(Some(_)) => Err(forbidden()),
        Ok(None) => Ok(None),
        Err(e) => Err(failure(e)),
    }
}

/// `POST /portal/mfa/create`: CreateVirtualMFADevice, then the QR code and secret.
pub async fn create(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<CreateForm>,
) -> Response {
    let v = match post_viewer(&state, peer, &headers, Access::Enrol, &form.csrf).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/signin"),
        Err(response) => return response,
    };
    let name: String = form.device_name.trim().chars().take(MAX_FIELD).collect();
    let result = v
        .call(
            &state,
            "CreateVirtualMFADevice",
            vec![("VirtualMFADeviceName", &name)],
        )
        .await;
    let body = match result {
        Ok(body) => body.unwrap_or_default(),
        Err(e) if denied_by_policy(&e) => return denied(&state, &v, "CreateVirtualMFADevice", &e),
        Err(e) if e.status.is_client_error() => {
            let message = if e.code == "EntityAlreadyExists" {
                format!("A device named {name} already exists. Choose another name.")
            } else {
                e.message
            };
            return security_page(&state, &v, None, name, Some(message), e.status)
                .await
                .unwrap_or_else(failure);
        }
        Err(e) => return failure(e),
    };
    match enrol_page(&state, &v, &body) {
        Ok(response) => response,
        Err(e) => failure(e),
    }
}

/// The QR code and secret of a CreateVirtualMFADevice result. The secret leaves the result
/// once, into this page; the otpauth URI is rebuilt from it for the SVG.
fn enrol_page(state: &AppState, v: &Viewer, body: &str) -> Result<Response, ApiError> {
    let serial = element(body, "SerialNumber")
        .ok_or_else(|| ApiError::internal("CreateVirtualMFADevice without SerialNumber"))?;
    let seed = element(body, "Base32StringSeed")
        .ok_or_else(|| ApiError::internal("CreateVirtualMFADevice without a seed"))?;
    let base32 = zeroize::Zeroizing::new(
        data_encoding::BASE64
            .decode(seed.as_bytes())
            .map_err(ApiError::internal)?,
    );
    let base32 = zeroize::Zeroizing::new(
        String::from_utf8(base32.to_vec()).map_err(|_| ApiError::internal("seed not text"))?,
    );
    let name = serial.rsplit('/').next().unwrap_or_default();
    let uri = zeroize::Zeroizing::new(crate::qr::otpauth_uri(name, &state.account_id, &base32));
    let label = format!("QR code of the secret key of {name}, for your authenticator app");
    let qr = crate::qr::svg(&uri, &label).map_err(ApiError::internal)?;
    Ok(html(
        StatusCode::OK,
        &EnrolPage {
            account_id: &state.account_id,
            user_arn: v.arn(),
            user_name: &v.user.name,
            csrf: v.live.id.csrf_token(),
            enrolling: v.enrolling,
            serial,
            qr: Some(qr),
            secret: Some(base32.to_string()),
            error: None,
        },
    ))
}

/// `POST /portal/mfa/enable`: EnableMFADevice for the viewer's own user, with the API's
/// validation of the two codes.
pub async fn enable(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<EnableForm>,
) -> Response {
    let v = match post_viewer(&state, peer, &headers, Access::Enrol, &form.csrf).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/signin"),
        Err(response) => return response,
    };
    let serial: String = form.serial.chars().take(MAX_FIELD).collect();
    let result = v
        .call(
            &state,
            "EnableMFADevice",
            vec![
                ("UserName", &v.user.name),
                ("SerialNumber", &serial),
                ("AuthenticationCode1", &form.code1),
                ("AuthenticationCode2", &form.code2),
            ],
        )
        .await;
    match result {
        Ok(_) if v.enrolling => redirect("/signin/mfa"),
        Ok(_) => redirect("/portal/security?done=enabled"),
        Err(e) if denied_by_policy(&e) => denied(&state, &v, "EnableMFADevice", &e),
        Err(e) if e.status.is_client_error() => html(
            e.status,
            &EnrolPage {
                account_id: &state.account_id,
                user_arn: v.arn(),
                user_name: &v.user.name,
                csrf: v.live.id.csrf_token(),
                enrolling: v.enrolling,
                serial,
                qr: None,
                secret: None,
                error: Some(e.message),
            },
        ),
        Err(e) => failure(e),
    }
}

/// `POST /portal/mfa/deactivate`: DeactivateMFADevice for the viewer's own user (a
/// security key is removed, as the API does).
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<DeactivateForm>,
) -> Response {
    let v = match post_viewer(&state, peer, &headers, Access::SignedIn, &form.csrf).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/signin"),
        Err(response) => return response,
    };
    let serial: String = form.serial.chars().take(MAX_FIELD).collect();
    let result = v
        .call(
            &state,
            "DeactivateMFADevice",
            vec![("UserName", &v.user.name), ("SerialNumber", &serial)],
        )
        .await;
    match result {
        Ok(_) => redirect("/portal/security?done=deactivated"),
        Err(e) if denied_by_policy(&e) => denied(&state, &v, "DeactivateMFADevice", &e),
        Err(e) if e.status.is_client_error() => {
            let name = v.user.name.clone();
            security_page(&state, &v, None, name, Some(e.message), e.status)
                .await
                .unwrap_or_else(failure)
        }
        Err(e) => failure(e),
    }
}

/// `GET /portal/password`.
pub async fn password_page(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let v = match viewer(&state, peer, &headers, Access::SignedIn).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/signin"),
        Err(e) => return failure(e),
    };
    password_form(&state, &v, None, StatusCode::OK)
        .await
        .unwrap_or_else(failure)
}

async fn password_form(
    state: &Arc<AppState>,
    v: &Viewer,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let policy = db(state, |s| s.password_policy()).await??;
    Ok(html(
        status,
        &ChangePasswordPage {
            account_id: &state.account_id,
            user_arn: v.arn(),
            user_name: &v.user.name,
            csrf: v.live.id.csrf_token(),
            enrolling: v.enrolling,
            rules: policy_rules(policy.as_ref()),
            error,
        },
    ))
}

/// `POST /portal/password`: ChangePassword, as the API makes it (authorization, the
/// account's password policy, reuse prevention, the wrong-old-password refusal).
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    let v = match post_viewer(&state, peer, &headers, Access::SignedIn, &form.csrf).await {
        Ok(Some(v)) => v,
        Ok(None) => return redirect("/signin"),
        Err(response) => return response,
    };
    if form.new_password != form.confirm_password {
        let message = "The new passwords do not match.".to_owned();
        return password_form(&state, &v, Some(message), StatusCode::BAD_REQUEST)
            .await
            .unwrap_or_else(failure);
    }
    let result = v
        .call(
            &state,
            "ChangePassword",
            vec![
                ("OldPassword", &form.old_password),
                ("NewPassword", &form.new_password),
            ],
        )
        .await;
    match result {
        Ok(_) => redirect("/portal/security?done=password"),
        Err(e) if denied_by_policy(&e) => denied(&state, &v, "ChangePassword", &e),
        Err(e) if e.status.is_client_error() => {
            password_form(&state, &v, Some(e.message), e.status)
                .await
                .unwrap_or_else(failure)
        }
        Err(e) => failure(e),
    }
}

/// Starts the session of a user who passed the password but must add a first device
/// (`mfa.required`, no device): stage `Mfa`, [`ENROL_SECS`] to do it, then the add-device
/// page. `replaces` is the session of a password change.
pub(super) async fn start_enrolment(
    state: &Arc<AppState>,
    user: &User,
    now: i64,
    absolute: i64,
    replaces: Option<Vec<u8>>,
) -> Result<Response, ApiError> {
    tracing::info!(
        target: "audit", user = %user.name,
        "portal password accepted; no MFA device: enrolment"
    );
    let record = session::record(
        user.user_id.clone(),
        now,
        PortalStage::Mfa,
        absolute.min(now + ENROL_SECS),
    );
    let id = session::start(state, replaces, record).await?;
    let mut response = redirect("/portal/security");
    session::clear_cookie(&mut response, session::PRE_COOKIE);
    id.set_cookie(&mut response, session::SESSION_COOKIE)?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_read_from_a_list_result() {
        let xml = "<MFADevices><member><UserName>a</UserName>\
                   <SerialNumber>arn:aws:iam::0:mfa/a&amp;b</SerialNumber>\
                   <EnableDate>2026-01-01T00:00:00Z</EnableDate></member>\
                   <member><UserName>a</UserName>\
                   <SerialNumber>arn:aws:iam::0:u2f/user/a/k-ABC</SerialNumber></member>\
                   </MFADevices><IsTruncated>false</IsTruncated>";
        let d = devices_of(xml);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].serial, "arn:aws:iam::0:mfa/a&b");
        assert_eq!(d[0].enabled, "2026-01-01T00:00:00Z");
        assert_eq!(d[1].enabled, "—");
        assert!(devices_of("").is_empty());
        assert!(devices_of("<member><SerialNumber>x").is_empty());
    }

    #[test]
    fn only_policy_refusals_are_denials() {
        let policy = ApiError::access_denied(
            "User: arn:aws:iam::0:user/a is not authorized to perform: iam:X on resource: *",
        );
        assert!(denied_by_policy(&policy));
        assert!(!denied_by_policy(&ApiError::access_denied(
            "The old password was incorrect."
        )));
    }
}
