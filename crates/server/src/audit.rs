//! The audit trail (issue 12 point 5, docs/audit.md): every decided request becomes one
//! CloudTrail-format event (portal.md §4.1–4.2), stored durably and served by CloudTrail
//! LookupEvents ([`crate::handlers::audit`]).
//!
//! The request path only copies what the event needs into a [`Pending`] — secrets are
//! left out right there ([`REDACTED_PARAMETERS`]), so they never enter the queue — and
//! offers it to a bounded queue without waiting. One writer thread turns pending events
//! into JSON, gives each its `eventID`, and appends a batch in one store transaction
//! (one fsync per batch; audit rows never bump the IAM generation). It also deletes
//! events older than the retention. A full queue drops the event and counts it: the
//! request path never waits for the disk.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value};
use tokengate_store::{AuditEvent, Store};
use tokengate_token::Principal;
use tokengate_token::session::{MfaContext, MfaMethod};

use crate::action::{AccessLevel, ActionSpec, Api};
use crate::auth::Caller;
use crate::common::iso8601;
use crate::error::ApiError;
use crate::params::Params;

/// `eventVersion` (CTUG record contents: 1.08 in the archived guide; the fields written
/// here are all ≤ 1.08).
pub const EVENT_VERSION: &str = "1.08";
/// Request and response members that never reach an event: one-time codes, passwords,
/// secret keys, session tokens, TOTP seeds and their QR code, security-key challenge and
/// assertion or attestation blobs. Matched on the wire name, ignoring ASCII case, at any
/// depth; the member is left out, as AWS leaves out CreateLoginProfile's password.
pub const REDACTED_PARAMETERS: &[&str] = &[
    "TokenCode",
    "AuthenticationCode1",
    "AuthenticationCode2",
    "Password",
    "OldPassword",
    "NewPassword",
    "SecretAccessKey",
    "SessionToken",
    "Base32StringSeed",
    "QRCodePNG",
    "Challenge",
    "ClientDataJSON",
    "AuthenticatorData",
    "Signature",
    "AttestationObject",
    "RegistrationData",
    "UserHandle",
];
/// Longest `userAgent` kept (CloudTrail: 1 KB, truncated).
const MAX_USER_AGENT: usize = 1024;
/// Longest `eventName` kept (an unknown action is recorded as sent).
const MAX_EVENT_NAME: usize = 128;
/// Longest `errorMessage` kept (CloudTrail: 1 KB).
const MAX_ERROR_MESSAGE: usize = 1024;
/// Most events appended in one transaction.
const MAX_BATCH: usize = 2048;
/// How long the writer sleeps after a batch's first event, letting more queue up (bounds
/// the transactions under load; also about the longest an event stays only in memory).
/// Each append rewrites the last, partly filled page of the event table, the record table
/// and each index, so fewer, larger appends write fewer bytes: at 100 ms that overhead is
/// a few percent of the audit rows' own bytes (at 20 ms it was about a fifth). A flush
/// (LookupEvents, shutdown) cuts the sleep short.
const LINGER: Duration = Duration::from_millis(100);
/// How often the writer deletes events past the retention.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Who made a request, as far as it is known.
// `Unknown` is the rare case, and a `Pending` travels boxed: no point boxing `Known` too.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Identity {
    /// An authenticated caller.
    Known {
        /// The principal.
        principal: Principal,
        /// The access key id the request was signed with.
        access_key_id: String,
        /// The session's creation time and MFA context, for temporary credentials.
        session: Option<(i64, MfaContext)>,
        /// A second factor verified with this very request (AssumeRole's).
        request_mfa: Option<MfaContext>,
    },
    /// A request that failed authentication: only the access key id it claimed.
    Unknown {
        /// The claimed access key id, if the request named one.
        access_key_id: Option<String>,
    },
}

impl Identity {
    /// The identity of an authenticated caller.
    pub fn of(caller: &Caller) -> Self {
        Identity::Known {
            principal: caller.principal.clone(),
            access_key_id: caller.access_key_id.clone(),
            session: caller.session.as_ref().map(|s| (s.iat, s.mfa.clone())),
            request_mfa: caller.request_mfa.clone(),
        }
    }
}

/// One decided request, as the request path hands it over (no secrets in it but the
/// response of a credential-issuing call, which the writer reads and drops).
#[derive(Debug, Clone)]
pub struct Pending {
    /// When the request was decided (epoch seconds).
    pub time: i64,
    /// The API (the event source).
    pub api: Api,
    /// The action's wire name.
    pub event_name: String,
    /// Whether the action only reads.
    pub read_only: bool,
    /// The region the request was signed for.
    pub region: String,
    /// The peer's address.
    pub source_ip: Option<IpAddr>,
    /// The `User-Agent` header, truncated.
    pub user_agent: Option<String>,
    /// The request id answered to the client.
    pub request_id: String,
    /// Who.
    pub identity: Identity,
    /// The resource ARN authorization used (`None` for `*`).
    pub resource: Option<String>,
    /// The request parameters, secrets already left out.
    pub parameters: Vec<(String, String)>,
    /// The handler's result (XML inside `{Action}Result`), kept for changing and
    /// credential-issuing calls only.
    pub response: Option<String>,
    /// The error answered, if any.
    pub error: Option<(&'static str, String)>,
}

impl Pending {
    /// A pending event for action `event_name` of `api`, decided at `time`; parameters are
    /// copied without secrets. [`Pending::finish`] adds the outcome.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: Api,
        event_name: &str,
        read_only: bool,
        time: i64,
        identity: Identity,
        region: &str,
        meta: &RequestMeta<'_>,
        params: &Params,
        resource: &str,
    ) -> Self {
        Pending {
            time,
            api,
            event_name: truncate(event_name, MAX_EVENT_NAME),
            read_only,
            region: region.to_owned(),
            source_ip: meta.source_ip,
            user_agent: meta.user_agent.map(|ua| truncate(ua, MAX_USER_AGENT)),
            request_id: meta.request_id.to_owned(),
            identity,
            resource: Some(resource).filter(|r| *r != "*").map(str::to_owned),
            parameters: audited_parameters(params),
            response: None,
            error: None,
        }
    }

    /// Records how the request ended: the error, or the result of a changing or
    /// credential-issuing call (read from it off the request path).
    pub fn finish(mut self, outcome: Result<Option<&str>, &ApiError>) -> Self {
        match outcome {
            Ok(Some(result)) if !self.read_only || result.contains("<Credentials>") => {
                self.response = Some(result.to_owned());
            }
            Ok(_) => {}
            Err(e) => self.error = Some((e.code, truncate(&e.message, MAX_ERROR_MESSAGE))),
        }
        self
    }
}

/// Whether an action only reads (CloudTrail's `readOnly`).
pub fn is_read_only(spec: &ActionSpec) -> bool {
    matches!(spec.access, AccessLevel::Read | AccessLevel::List)
}

/// What the chokepoint knows about a request besides its parameters.
#[derive(Debug, Clone, Copy)]
pub struct RequestMeta<'a> {
    /// The request id answered to the client.
    pub request_id: &'a str,
    /// The peer's address.
    pub source_ip: Option<IpAddr>,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a str>,
}

/// Whether `name` (a parameter or element name, possibly dotted) carries a secret.
pub fn is_redacted(name: &str) -> bool {
    name.split('.').any(|part| {
        REDACTED_PARAMETERS
            .iter()
            .any(|r| r.eq_ignore_ascii_case(part))
    })
}

/// The request parameters an event records: everything but `Action`, `Version`, the
/// query-string SigV4 members (`X-Amz-*`, among them a session token) and the secrets.
fn audited_parameters(params: &Params) -> Vec<(String, String)> {
    params
        .pairs()
        .iter()
        .filter(|(k, _)| {
            k != "Action"
                && k != "Version"
                && !k.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("X-Amz-"))
                && !is_redacted(k)
        })
        .cloned()
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

/// `UserName` → `userName`: CloudTrail's member names.
fn camel(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// **Stored records are compact**: the writer puts one control byte (0x01–0x1F) where a
/// record has one of these fixed fragments, and [`expand_record`] puts the fragment back
/// when LookupEvents answers — the same bytes, about 60% fewer of them on disk (and in
/// the WAL, and through each checkpoint). Compact JSON never holds a raw control byte
/// (strings escape them), so the tokens cannot be confused with text, and a record
/// without tokens (written before, or a console sign-in) expands to itself.
///
/// **This table is part of the stored format**: entries are never changed or reordered;
/// new ones may only be appended (up to 0x1F).
pub const TOKENS: [&str; 26] = [
    "{\"eventVersion\":\"1.08\",\"userIdentity\":",
    "{\"type\":\"IAMUser\",\"principalId\":",
    "{\"type\":\"AssumedRole\",\"principalId\":",
    ",\"arn\":",
    ",\"accountId\":",
    ",\"accessKeyId\":",
    ",\"userName\":",
    ",\"sessionContext\":{",
    "\"attributes\":{\"creationDate\":\"",
    "\",\"mfaAuthenticated\":\"true\"",
    "\",\"mfaAuthenticated\":\"false\"",
    ",\"mfaMethod\":\"",
    ",\"eventTime\":\"",
    "\",\"eventSource\":\"sts.amazonaws.com\",\"eventName\":",
    "\",\"eventSource\":\"iam.amazonaws.com\",\"eventName\":",
    ",\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":\"",
    ",\"userAgent\":",
    ",\"requestParameters\":",
    ",\"responseElements\":",
    ",\"requestID\":",
    ",\"eventID\":",
    ",\"readOnly\":true,\"eventType\":\"AwsApiCall\",\"managementEvent\":true,\
     \"recipientAccountId\":",
    ",\"readOnly\":false,\"eventType\":\"AwsApiCall\",\"managementEvent\":true,\
     \"recipientAccountId\":",
    ",\"eventCategory\":\"Management\"}",
    ",\"errorCode\":",
    ",\"errorMessage\":",
];

/// Token bytes: `TOKENS[t - 1]`.
mod tok {
    pub const HEAD: u8 = 1;
    pub const IAM_USER: u8 = 2;
    pub const ASSUMED_ROLE: u8 = 3;
    pub const ARN: u8 = 4;
    pub const ACCOUNT_ID: u8 = 5;
    pub const ACCESS_KEY_ID: u8 = 6;
    pub const USER_NAME: u8 = 7;
    pub const SESSION_CONTEXT: u8 = 8;
    pub const ATTRIBUTES: u8 = 9;
    pub const MFA_TRUE: u8 = 10;
    pub const MFA_FALSE: u8 = 11;
    pub const MFA_METHOD: u8 = 12;
    pub const EVENT_TIME: u8 = 13;
    pub const STS_SOURCE: u8 = 14;
    pub const IAM_SOURCE: u8 = 15;
    pub const US_EAST_1: u8 = 16;
    pub const USER_AGENT: u8 = 17;
    pub const REQUEST_PARAMETERS: u8 = 18;
    pub const RESPONSE_ELEMENTS: u8 = 19;
    pub const REQUEST_ID: u8 = 20;
    pub const EVENT_ID: u8 = 21;
    pub const READ_ONLY_TRUE: u8 = 22;
    pub const READ_ONLY_FALSE: u8 = 23;
    pub const TAIL: u8 = 24;
    pub const ERROR_CODE: u8 = 25;
    pub const ERROR_MESSAGE: u8 = 26;
}

/// Appends token `t` (one of [`tok`]).
fn token(out: &mut String, t: u8) {
    // Every `tok` constant is 1..=26, an ASCII control character.
    out.push(char::from(t));
}

/// The CloudTrail record of a stored one: its tokens (see [`TOKENS`]) expanded. A record
/// without tokens is returned as it is.
pub fn expand_record(stored: &str) -> std::borrow::Cow<'_, str> {
    if !stored.bytes().any(|b| b < 0x20) {
        return std::borrow::Cow::Borrowed(stored);
    }
    let mut out = String::with_capacity(stored.len() * 3);
    let mut start = 0;
    for (i, b) in stored.bytes().enumerate() {
        if b < 0x20 {
            // `i` is an ASCII byte's index: a char boundary on both sides.
            out.push_str(stored.get(start..i).unwrap_or_default());
            let fragment = usize::from(b)
                .checked_sub(1)
                .and_then(|t| TOKENS.get(t))
                .copied()
                .unwrap_or_default();
            out.push_str(fragment);
            start = i + 1;
        }
    }
    out.push_str(stored.get(start..).unwrap_or_default());
    std::borrow::Cow::Owned(out)
}

/// The event JSON (compact, see [`TOKENS`]) and its indexed columns, with `event_id`
/// given.
///
/// The record is written directly into one buffer, in CloudTrail's field order (CTUG
/// record contents), with serde_json's escaping — the same bytes the first, serde-derived
/// version wrote (a unit test compares them), without its intermediate strings.
pub fn build_event(p: &Pending, account_id: &str, event_id: &str) -> AuditEvent {
    let issued = p.response.as_deref().and_then(issued_session);
    let access_key_id = match &p.identity {
        Identity::Known { access_key_id, .. } => Some(access_key_id.as_str()),
        Identity::Unknown { access_key_id } => access_key_id.as_deref(),
    };
    let event_source = event_source(p.api);
    let resource_type = p.resource.as_deref().map(resource_type);
    let mut out = String::with_capacity(512);
    token(&mut out, tok::HEAD);
    let username = write_user_identity(&mut out, p, account_id, issued.as_ref());
    token(&mut out, tok::EVENT_TIME);
    write_time(&mut out, p.time);
    match p.api {
        Api::Sts => token(&mut out, tok::STS_SOURCE),
        Api::Iam => token(&mut out, tok::IAM_SOURCE),
        Api::CloudTrail => {
            out.push_str("\",\"eventSource\":\"");
            out.push_str(event_source);
            out.push_str("\",\"eventName\":");
        }
    }
    write_str(&mut out, &p.event_name);
    if p.region.is_empty() || p.region == "us-east-1" {
        token(&mut out, tok::US_EAST_1);
    } else {
        out.push_str(",\"awsRegion\":");
        write_str(&mut out, &p.region);
        out.push_str(",\"sourceIPAddress\":\"");
    }
    if let Some(ip) = p.source_ip {
        // An address's text needs no escaping.
        let _ = write!(out, "{ip}");
    }
    out.push('"');
    if let Some(ua) = &p.user_agent {
        token(&mut out, tok::USER_AGENT);
        write_str(&mut out, ua);
    }
    if let Some((code, message)) = &p.error {
        token(&mut out, tok::ERROR_CODE);
        write_str(&mut out, code);
        token(&mut out, tok::ERROR_MESSAGE);
        write_str(&mut out, message);
    }
    token(&mut out, tok::REQUEST_PARAMETERS);
    if p.parameters.is_empty() {
        out.push_str("null");
    } else {
        out.push('{');
        for (i, (name, value)) in p.parameters.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_camel(&mut out, name);
            out.push(':');
            write_str(&mut out, value);
        }
        out.push('}');
    }
    token(&mut out, tok::RESPONSE_ELEMENTS);
    match p.response.as_deref().and_then(xml_to_json) {
        // Serializing a `Value` cannot fail.
        Some(v) => out.push_str(&serde_json::to_string(&v).unwrap_or_else(|_| "null".into())),
        None => out.push_str("null"),
    }
    token(&mut out, tok::REQUEST_ID);
    write_str(&mut out, &p.request_id);
    token(&mut out, tok::EVENT_ID);
    write_str(&mut out, event_id);
    let resources = p.resource.as_deref().zip(resource_type);
    if resources.is_some() {
        out.push_str(",\"readOnly\":");
        out.push_str(if p.read_only { "true" } else { "false" });
    }
    if let Some((arn, kind)) = resources {
        out.push_str(",\"resources\":[{\"ARN\":");
        write_str(&mut out, arn);
        out.push_str(",\"accountId\":");
        write_str(&mut out, account_id);
        out.push_str(",\"type\":\"");
        out.push_str(kind);
        out.push_str("\"}]");
    }
    if resources.is_some() {
        out.push_str(
            ",\"eventType\":\"AwsApiCall\",\"managementEvent\":true,\"recipientAccountId\":",
        );
    } else if p.read_only {
        token(&mut out, tok::READ_ONLY_TRUE);
    } else {
        token(&mut out, tok::READ_ONLY_FALSE);
    }
    write_str(&mut out, account_id);
    token(&mut out, tok::TAIL);
    AuditEvent {
        event_id: event_id.to_owned(),
        event_time: p.time,
        event_name: p.event_name.clone(),
        event_source: event_source.to_owned(),
        username,
        access_key_id: access_key_id.map(str::to_owned),
        read_only: p.read_only,
        resource_type: resource_type.map(str::to_owned),
        resource_name: p.resource.clone(),
        record: out,
    }
}

/// `eventSource`.
fn event_source(api: Api) -> &'static str {
    match api {
        Api::Iam => "iam.amazonaws.com",
        Api::Sts => "sts.amazonaws.com",
        Api::CloudTrail => "cloudtrail.amazonaws.com",
    }
}

/// `s` as a JSON string, escaped exactly as serde_json escapes (`"`, `\`, and the C0
/// controls: the short forms `\b \t \n \f \r`, the rest as `\u00xx`).
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x09 => "\\t",
            0x0a => "\\n",
            0x0c => "\\f",
            0x0d => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` is an ASCII byte's index: a char boundary on both sides.
        out.push_str(s.get(start..i).unwrap_or_default());
        if short.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// `UserName` → `"userName"` (see [`camel`]), escaped.
fn write_camel(out: &mut String, name: &str) {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphabetic() && !needs_escape(chars.as_str()) => {
            out.push('"');
            out.push(first.to_ascii_lowercase());
            out.push_str(chars.as_str());
            out.push('"');
        }
        _ => write_str(out, &camel(name)),
    }
}

fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as [`iso8601`] writes it (without the quotes).
fn write_time(out: &mut String, unix: i64) {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) if (0..=9999).contains(&t.year()) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
        }
        _ => out.push_str(&iso8601(unix)),
    }
}

/// The claims of a session token that the audit trail reads.
#[derive(serde::Deserialize)]
struct IssuedClaims {
    iat: i64,
    mfa: MfaContext,
}

/// The MFA context and issue time of the session a credential-issuing call just minted,
/// read from the session token's claims (our own JWT, fresh from the handler). The token
/// itself goes no further.
fn issued_session(result: &str) -> Option<(i64, MfaContext)> {
    const OPEN: &str = "<SessionToken>";
    let start = result.find(OPEN)? + OPEN.len();
    let token = result.get(start..)?;
    // A JWT holds no `<`: the token ends at the first one.
    let token = token.get(..token.find('<')?)?;
    let payload = token.split('.').nth(1)?;
    let bytes = data_encoding::BASE64URL_NOPAD
        .decode(payload.as_bytes())
        .ok()?;
    let claims: IssuedClaims = serde_json::from_slice(&bytes).ok()?;
    Some((claims.iat, claims.mfa))
}

fn mfa_method_name(method: MfaMethod) -> &'static str {
    match method {
        MfaMethod::Totp => "totp",
        MfaMethod::Fido2 => "fido2",
        MfaMethod::U2f => "u2f",
    }
}

/// `sessionContext.attributes`: `creationDate` and `mfaAuthenticated` as CloudTrail
/// writes them, plus tokengate's `mfaMethod` (docs/audit.md).
fn write_attributes(out: &mut String, created: i64, mfa: Option<&MfaContext>) {
    let present = mfa.filter(|m| m.present);
    token(out, tok::ATTRIBUTES);
    write_time(out, created);
    token(
        out,
        if present.is_some() {
            tok::MFA_TRUE
        } else {
            tok::MFA_FALSE
        },
    );
    if let Some(method) = present.and_then(|m| m.method) {
        token(out, tok::MFA_METHOD);
        out.push_str(mfa_method_name(method));
        out.push('"');
    }
    out.push('}');
}

/// Writes `userIdentity`; returns LookupEvents' `Username`.
fn write_user_identity(
    out: &mut String,
    p: &Pending,
    account_id: &str,
    issued: Option<&(i64, MfaContext)>,
) -> Option<String> {
    let (principal, access_key_id, session, request_mfa) = match &p.identity {
        Identity::Unknown { access_key_id } => {
            out.push_str("{\"type\":\"Unknown\",\"accountId\":");
            write_str(out, account_id);
            out.push_str(",\"accessKeyId\":");
            write_str(out, access_key_id.as_deref().unwrap_or_default());
            out.push('}');
            return None;
        }
        Identity::Known {
            principal,
            access_key_id,
            session,
            request_mfa,
        } => (principal, access_key_id, session, request_mfa),
    };
    let (kind, username, user_name) = match principal {
        Principal::Root { .. } => ("Root", "root", None),
        Principal::User { name, .. } => ("IAMUser", name.as_str(), Some(name.as_str())),
        Principal::AssumedRole { session_name, .. } => ("AssumedRole", session_name.as_str(), None),
        Principal::FederatedUser { name, .. } => ("FederatedUser", name.as_str(), None),
    };
    match kind {
        "IAMUser" => token(out, tok::IAM_USER),
        "AssumedRole" => token(out, tok::ASSUMED_ROLE),
        _ => {
            out.push_str("{\"type\":\"");
            out.push_str(kind);
            out.push_str("\",\"principalId\":");
        }
    }
    write_str(out, &principal.user_id());
    token(out, tok::ARN);
    write_str(out, &principal.arn());
    token(out, tok::ACCOUNT_ID);
    write_str(out, principal.account());
    token(out, tok::ACCESS_KEY_ID);
    write_str(out, access_key_id);
    if let Some(name) = user_name {
        token(out, tok::USER_NAME);
        write_str(out, name);
    }
    token(out, tok::SESSION_CONTEXT);
    match principal {
        Principal::AssumedRole {
            role_name, role_id, ..
        } => {
            out.push_str("\"sessionIssuer\":{\"type\":\"Role\",\"principalId\":");
            write_str(out, role_id);
            if let Some(arn) = principal.role_arn() {
                out.push_str(",\"arn\":");
                write_str(out, &arn);
            }
            out.push_str(",\"accountId\":");
            write_str(out, principal.account());
            out.push_str(",\"userName\":");
            write_str(out, role_name);
            out.push_str("},");
        }
        Principal::FederatedUser { user_id, .. } => {
            out.push_str("\"sessionIssuer\":{\"type\":\"IAMUser\",\"principalId\":");
            write_str(out, user_id);
            out.push_str(",\"accountId\":");
            write_str(out, principal.account());
            out.push_str("},");
        }
        Principal::Root { .. } | Principal::User { .. } => {}
    }
    // The session's own context; for a long-term key, this request's: a factor verified
    // with it (AssumeRole's), or the one the session it just minted carries.
    match (session, request_mfa, issued) {
        (Some((created, mfa)), None, _) => write_attributes(out, *created, Some(mfa)),
        (_, Some(mfa), _) | (None, None, Some((_, mfa))) => {
            write_attributes(out, p.time, Some(mfa));
        }
        (None, None, None) => write_attributes(out, p.time, None),
    }
    out.push_str("}}");
    Some(username.to_owned())
}

/// `userName` of a console sign-in by a name that is no user (AWS's, IAMUG
/// `cloudtrail-integration.md`).
pub const HIDDEN_USER_NAME: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";
/// The `eventSource` of console sign-in events.
pub const SIGNIN_EVENT_SOURCE: &str = "signin.amazonaws.com";

/// When and from where a console sign-in step came.
#[derive(Debug, Clone)]
pub struct SignInMeta {
    /// When it was decided (epoch seconds).
    pub time: i64,
    /// The browser's address.
    pub source_ip: Option<IpAddr>,
    /// The browser's `User-Agent`, truncated to CloudTrail's 1 KB.
    pub user_agent: Option<String>,
}

impl SignInMeta {
    /// The same, from `source_ip` (when the request's address is already at hand).
    pub fn with_source_ip(self, source_ip: Option<IpAddr>) -> Self {
        SignInMeta { source_ip, ..self }
    }

    /// The meta of a portal request decided at `time`.
    pub fn of_request(
        time: i64,
        headers: &axum::http::HeaderMap,
        source_ip: Option<IpAddr>,
    ) -> Self {
        SignInMeta {
            time,
            source_ip,
            user_agent: headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| truncate(ua, MAX_USER_AGENT)),
        }
    }
}

/// Who a console sign-in step was for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInUser {
    /// An IAM user of this account.
    Known {
        /// The user name.
        name: String,
        /// The unique id (`AIDA…`).
        user_id: String,
        /// The user's ARN.
        arn: String,
    },
    /// A name that is no user of this account (or none): recorded as
    /// [`HIDDEN_USER_NAME`], so that a password typed into the name field is not kept.
    Unknown,
}

impl SignInUser {
    /// `user` of account `account_id`.
    pub fn of(account_id: &str, user: &tokengate_store::User) -> Self {
        SignInUser::Known {
            name: user.name.clone(),
            user_id: user.user_id.clone(),
            arn: tokengate_token::arn::user_arn(account_id, &user.path, &user.name),
        }
    }
}

/// The factor a console sign-in step checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInFactor {
    /// The password page.
    Password,
    /// An authenticator-app (TOTP) code.
    Totp,
    /// A FIDO2 / WebAuthn security key.
    Fido2,
    /// A U2F security key.
    U2f,
}

/// Which kinds of second factor a user has, for `CheckMfa`'s `MfaType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaKinds {
    /// Authenticator-app (TOTP) devices only: `Virtual MFA`.
    Totp,
    /// Security keys only: `U2F MFA` (AWS's name for every FIDO key).
    SecurityKey,
    /// Both: `Multiple MFA Devices`.
    Both,
}

/// How a console sign-in step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInOutcome {
    /// Signed in: `ConsoleLogin` `Success`.
    Success,
    /// The password was right and a second factor is asked next: `CheckMfa` `Success`.
    MfaRequired(MfaKinds),
    /// Refused: `ConsoleLogin` `Failure`, with why (`additionalEventData.FailureReason`).
    Failure(SignInRefusal),
}

/// Why a console sign-in step was refused. The browser sees one text for all of them;
/// the reason is for the audit trail only, and names no secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRefusal {
    /// An empty or oversized name or password.
    Malformed,
    /// No user of that name in this account (`No username found in supplied account`).
    UnknownUser,
    /// The wrong password, or a user without one.
    WrongPassword,
    /// The account field names another account.
    WrongAccount,
    /// Too many failed sign-ins for this name lately.
    Throttled,
    /// The password is past `MaxPasswordAge` and `HardExpiry` forbids changing it.
    PasswordExpired,
    /// `mfa.required` and the user has no second factor yet.
    MfaNotEnrolled,
    /// The device named is not one of the user's.
    UnknownDevice,
    /// A code that is not six digits.
    MalformedCode,
    /// A wrong code.
    WrongCode,
    /// A code of a step already used.
    ReplayedCode,
    /// The device is locked out after repeated failures.
    LockedOut,
    /// A security-key assertion whose signature (or challenge, origin) did not verify.
    SignatureInvalid,
    /// A security-key signature counter that did not increase (possible clone).
    CounterRegressed,
}

impl SignInRefusal {
    /// `additionalEventData.FailureReason` (tokengate's; portal.md §4.3's suggestion).
    pub fn code(self) -> &'static str {
        match self {
            SignInRefusal::Malformed => "malformed_form",
            SignInRefusal::UnknownUser => "user_unknown",
            SignInRefusal::WrongPassword => "password_invalid",
            SignInRefusal::WrongAccount => "account_mismatch",
            SignInRefusal::Throttled => "throttled",
            SignInRefusal::PasswordExpired => "password_expired",
            SignInRefusal::MfaNotEnrolled => "mfa_not_enrolled",
            SignInRefusal::UnknownDevice => "mfa_device_unknown",
            SignInRefusal::MalformedCode => "mfa_code_malformed",
            SignInRefusal::WrongCode => "mfa_code_invalid",
            SignInRefusal::ReplayedCode => "mfa_code_replayed",
            SignInRefusal::LockedOut => "locked_out",
            SignInRefusal::SignatureInvalid => "webauthn_signature_invalid",
            SignInRefusal::CounterRegressed => "webauthn_counter_regressed",
        }
    }
}

/// A console sign-in step, as the writer receives it.
#[derive(Debug, Clone)]
struct ConsoleSignIn {
    meta: SignInMeta,
    user: SignInUser,
    factor: SignInFactor,
    device: Option<String>,
    outcome: SignInOutcome,
}

/// The `ConsoleLogin` / `CheckMfa` event of a console sign-in step (portal.md §4.3).
fn build_console_event(c: &ConsoleSignIn, account_id: &str, event_id: &str) -> AuditEvent {
    let event_name = match c.outcome {
        SignInOutcome::MfaRequired(_) => "CheckMfa",
        SignInOutcome::Success | SignInOutcome::Failure(_) => "ConsoleLogin",
    };
    let failure = match c.outcome {
        SignInOutcome::Failure(reason) => Some(reason),
        SignInOutcome::Success | SignInOutcome::MfaRequired(_) => None,
    };
    let mut out = String::with_capacity(768);
    out.push_str("{\"eventVersion\":\"");
    out.push_str(EVENT_VERSION);
    out.push_str("\",\"userIdentity\":{\"type\":\"IAMUser\",");
    let username = match &c.user {
        SignInUser::Known { name, user_id, arn } => {
            out.push_str("\"principalId\":");
            write_str(&mut out, user_id);
            // AWS: a failed sign-in's identity has no ARN and an empty access key id.
            if failure.is_none() {
                out.push_str(",\"arn\":");
                write_str(&mut out, arn);
            }
            out.push_str(",\"accountId\":");
            write_str(&mut out, account_id);
            if failure.is_some() {
                out.push_str(",\"accessKeyId\":\"\"");
            }
            out.push_str(",\"userName\":");
            write_str(&mut out, name);
            name.as_str()
        }
        SignInUser::Unknown => {
            out.push_str("\"accountId\":");
            write_str(&mut out, account_id);
            out.push_str(",\"accessKeyId\":\"\",\"userName\":\"");
            out.push_str(HIDDEN_USER_NAME);
            out.push('"');
            HIDDEN_USER_NAME
        }
    };
    out.push_str("},\"eventTime\":\"");
    write_time(&mut out, c.meta.time);
    out.push_str("\",\"eventSource\":\"");
    out.push_str(SIGNIN_EVENT_SOURCE);
    out.push_str("\",\"eventName\":\"");
    out.push_str(event_name);
    // Sign-in events are recorded in us-east-1 (portal.md §4.1).
    out.push_str("\",\"awsRegion\":\"us-east-1\",\"sourceIPAddress\":\"");
    if let Some(ip) = c.meta.source_ip {
        let _ = write!(out, "{ip}");
    }
    out.push('"');
    if let Some(ua) = &c.meta.user_agent {
        out.push_str(",\"userAgent\":");
        write_str(&mut out, ua);
    }
    if let Some(reason) = failure {
        out.push_str(",\"errorMessage\":\"");
        out.push_str(if reason == SignInRefusal::UnknownUser {
            "No username found in supplied account"
        } else {
            "Failed authentication"
        });
        out.push('"');
    }
    out.push_str(",\"requestParameters\":null,\"responseElements\":");
    match c.outcome {
        SignInOutcome::MfaRequired(kinds) => {
            out.push_str("{\"CheckMfa\":\"Success\"},\"additionalEventData\":{\"MfaType\":\"");
            out.push_str(match kinds {
                MfaKinds::Totp => "Virtual MFA",
                MfaKinds::SecurityKey => "U2F MFA",
                MfaKinds::Both => "Multiple MFA Devices",
            });
            out.push_str("\"}");
        }
        SignInOutcome::Success | SignInOutcome::Failure(_) => {
            out.push_str(if failure.is_some() {
                "{\"ConsoleLogin\":\"Failure\"}"
            } else {
                "{\"ConsoleLogin\":\"Success\"}"
            });
            out.push_str(",\"additionalEventData\":{\"MobileVersion\":\"No\"");
            if let Some(device) = &c.device {
                out.push_str(",\"MFAIdentifier\":");
                write_str(&mut out, device);
            }
            let method = match c.factor {
                SignInFactor::Password => None,
                SignInFactor::Totp => Some("totp"),
                SignInFactor::Fido2 => Some("fido2"),
                SignInFactor::U2f => Some("u2f"),
            };
            out.push_str(",\"MFAUsed\":\"");
            out.push_str(if method.is_some() { "Yes" } else { "No" });
            out.push('"');
            if let Some(method) = method {
                out.push_str(",\"MfaMethod\":\"");
                out.push_str(method);
                out.push('"');
            }
            if let Some(reason) = failure {
                out.push_str(",\"FailureReason\":\"");
                out.push_str(reason.code());
                out.push('"');
            }
            out.push('}');
        }
    }
    out.push_str(",\"eventID\":");
    write_str(&mut out, event_id);
    out.push_str(
        ",\"readOnly\":false,\"eventType\":\"AwsConsoleSignIn\",\"managementEvent\":true,\
         \"recipientAccountId\":",
    );
    write_str(&mut out, account_id);
    out.push_str(",\"eventCategory\":\"Management\"}");
    AuditEvent {
        event_id: event_id.to_owned(),
        event_time: c.meta.time,
        event_name: event_name.to_owned(),
        event_source: SIGNIN_EVENT_SOURCE.to_owned(),
        username: Some(username.to_owned()),
        access_key_id: None,
        read_only: false,
        resource_type: None,
        resource_name: None,
        record: out,
    }
}

/// The CloudTrail resource type of an ARN (or an MFA device serial).
fn resource_type(arn: &str) -> &'static str {
    let rest = arn.splitn(6, ':').nth(5).unwrap_or_default();
    let kind = rest.split('/').next().unwrap_or_default();
    match kind {
        "user" | "root" => "AWS::IAM::User",
        "role" => "AWS::IAM::Role",
        "group" => "AWS::IAM::Group",
        "policy" => "AWS::IAM::Policy",
        "assumed-role" => "AWS::STS::AssumedRole",
        "federated-user" => "AWS::STS::FederatedUser",
        _ => "AWS::IAM::MFADevice",
    }
}

/// Our own result XML (elements and text, no attributes) as CloudTrail's
/// `responseElements`: element names in camelCase, `member` lists as arrays, secret
/// members left out. `None` if it is not of that form.
pub fn xml_to_json(xml: &str) -> Option<Value> {
    let mut rest = xml;
    let value = parse_children(&mut rest, None)?;
    rest.trim().is_empty().then_some(value)
}

/// Parses elements until `</{closing}>` (or the end at the top), into an object, an array
/// (all children `member`) or a string (text only).
fn parse_children(rest: &mut &str, closing: Option<&str>) -> Option<Value> {
    let mut object = Map::new();
    let mut members = Vec::new();
    let mut text = String::new();
    let mut saw_element = false;
    loop {
        let lt = rest.find('<');
        let Some(lt) = lt else {
            text.push_str(rest);
            *rest = "";
            if closing.is_some() {
                return None;
            }
            break;
        };
        text.push_str(rest.get(..lt)?);
        *rest = rest.get(lt..)?;
        if let Some(after) = rest.strip_prefix("</") {
            let gt = after.find('>')?;
            if Some(after.get(..gt)?) != closing {
                return None;
            }
            *rest = after.get(gt + 1..)?;
            break;
        }
        let gt = rest.find('>')?;
        let tag = rest.get(1..gt)?;
        saw_element = true;
        if let Some(name) = tag.strip_suffix('/') {
            *rest = rest.get(gt + 1..)?;
            object.insert(camel(name), Value::String(String::new()));
            continue;
        }
        let name = tag.to_owned();
        *rest = rest.get(gt + 1..)?;
        let child = parse_children(rest, Some(&name))?;
        if name == "member" {
            members.push(child);
        } else if !is_redacted(&name) {
            object.insert(camel(&name), child);
        }
    }
    Some(if !members.is_empty() {
        Value::Array(members)
    } else if saw_element {
        Value::Object(object)
    } else {
        Value::String(unescape(&text))
    })
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A UUID (v4) for `eventID`, from 16 random bytes.
fn uuid(random: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(random.get(..16).unwrap_or(&[0; 16]));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = data_encoding::HEXLOWER.encode(&b);
    let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

enum Message {
    Event(Box<Pending>),
    Console(Box<ConsoleSignIn>),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The audit queue and its writer thread.
pub struct AuditTrail {
    queue: Mutex<Option<mpsc::SyncSender<Message>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    dropped: AtomicU64,
    /// Set by a flush, to cut the writer's linger short.
    flushing: Arc<AtomicBool>,
}

impl AuditTrail {
    /// A trail that records nothing (`audit.enabled = false`).
    pub fn disabled() -> Self {
        AuditTrail {
            queue: Mutex::new(None),
            thread: Mutex::new(None),
            dropped: AtomicU64::new(0),
            flushing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts the writer: events go to `store` in batches; events older than
    /// `retention_days` are deleted (at start, then hourly), by `clock_now` (epoch secs).
    pub fn start(
        store: Arc<dyn Store>,
        account_id: String,
        capacity: usize,
        retention_days: u32,
        clock_now: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        Self::start_with_file(store, account_id, capacity, retention_days, clock_now, None)
    }

    /// [`AuditTrail::start`], also appending every event, one CloudTrail record per line,
    /// to `file` (from [`open_json_lines`]) once it is in the store.
    pub fn start_with_file(
        store: Arc<dyn Store>,
        account_id: String,
        capacity: usize,
        retention_days: u32,
        clock_now: Arc<dyn Fn() -> i64 + Send + Sync>,
        file: Option<std::fs::File>,
    ) -> Self {
        let (tx, rx) = mpsc::sync_channel::<Message>(capacity.max(1));
        let flushing = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&flushing);
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                writer(
                    &rx,
                    store.as_ref(),
                    &account_id,
                    retention_days,
                    &*clock_now,
                    &flag,
                    file.map(std::io::BufWriter::new),
                );
            })
            .ok();
        AuditTrail {
            queue: Mutex::new(thread.as_ref().map(|_| tx)),
            thread: Mutex::new(thread),
            dropped: AtomicU64::new(0),
            flushing,
        }
    }

    /// Whether events are recorded.
    pub fn enabled(&self) -> bool {
        self.queue.lock().is_ok_and(|q| q.is_some())
    }

    /// Offers an event to the queue without waiting; a full queue drops it (counted).
    pub fn record(&self, pending: Pending) {
        self.offer(|| Message::Event(Box::new(pending)));
    }

    /// **Records a console sign-in step** of the portal as CloudTrail does: a
    /// `ConsoleLogin` event (`eventSource` `signin.amazonaws.com`, `eventType`
    /// `AwsConsoleSignIn`, `responseElements` `{"ConsoleLogin": "Success"|"Failure"}`,
    /// `additionalEventData` with `MFAUsed`, `MFAIdentifier` and tokengate's `MfaMethod`
    /// and `FailureReason`), or, for a right password with a second factor to come,
    /// `CheckMfa` (portal.md §4.3; docs/audit.md "Console sign-in").
    ///
    /// - `at`: when and from where ([`SignInMeta::of_request`]);
    /// - `user`: who signed in ([`SignInUser::of`]), or [`SignInUser::Unknown`] for a
    ///   name that is no user (recorded as `HIDDEN_DUE_TO_SECURITY_REASONS`, as AWS does);
    /// - `factor`: what this step checked — [`SignInFactor::Password`] for the password
    ///   page, the second factor's kind for the MFA page (`MFAUsed: "Yes"`);
    /// - `device`: the MFA device's serial or the security key's id (`MFAIdentifier`),
    ///   when the step named one of the user's devices;
    /// - `outcome`: [`SignInOutcome`]; a refusal carries its [`SignInRefusal`].
    ///
    /// No secret is taken: neither the password nor the code nor any assertion reaches
    /// this function. Like [`AuditTrail::record`], it never waits.
    ///
    /// ```text
    /// state.audit.console_sign_in(&SignInMeta::of_request(now, &headers, peer_ip),
    ///     SignInUser::of(&state.account_id, &user), SignInFactor::Fido2,
    ///     Some(&credential_id), SignInOutcome::Success);
    /// ```
    pub fn console_sign_in(
        &self,
        at: &SignInMeta,
        user: SignInUser,
        factor: SignInFactor,
        device: Option<&str>,
        outcome: SignInOutcome,
    ) {
        self.offer(|| {
            Message::Console(Box::new(ConsoleSignIn {
                meta: at.clone(),
                user,
                factor,
                device: device.map(|d| truncate(d, MAX_EVENT_NAME * 2)),
                outcome,
            }))
        });
    }

    fn offer(&self, message: impl FnOnce() -> Message) {
        let sender = match self.queue.lock() {
            Ok(q) => q.clone(),
            Err(_) => None,
        };
        let Some(sender) = sender else { return };
        if sender.try_send(message()).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "audit queue full: events dropped");
            }
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event queued before this call is in the store.
    pub async fn flush(&self) {
        let sender = match self.queue.lock() {
            Ok(q) => q.clone(),
            Err(_) => None,
        };
        let Some(sender) = sender else { return };
        let (done, wait) = tokio::sync::oneshot::channel();
        // A full queue: wait for room off the executor.
        let sent = tokio::task::spawn_blocking(move || sender.send(Message::Flush(done))).await;
        if matches!(sent, Ok(Ok(()))) {
            self.wake_writer();
            let _ = wait.await;
        }
    }

    /// Ends the writer's linger now (events never do this; flushes and shutdown do).
    fn wake_writer(&self) {
        self.flushing.store(true, Ordering::Release);
        if let Ok(thread) = self.thread.lock()
            && let Some(handle) = thread.as_ref()
        {
            handle.thread().unpark();
        }
    }

    /// Stops taking events, writes those queued and joins the writer.
    pub fn shutdown(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        self.wake_writer();
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

impl Drop for AuditTrail {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Opens (creating) the JSON-lines file of `audit.file` for appending, mode 0600 (an
/// existing file is set to 0600: the events name users, addresses and failures).
pub fn open_json_lines(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Appends one line per record and flushes (one `write` for a batch, as a rule).
fn append_lines(out: &mut std::io::BufWriter<std::fs::File>, lines: &[String]) {
    use std::io::Write;
    let written = lines
        .iter()
        .try_for_each(|line| {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")
        })
        .and_then(|()| out.flush());
    if let Err(e) = written {
        tracing::error!(error = %e, lost = lines.len(), "audit: JSON-lines file write failed");
    }
}

fn writer(
    rx: &mpsc::Receiver<Message>,
    store: &dyn Store,
    account_id: &str,
    retention_days: u32,
    now: &dyn Fn() -> i64,
    flushing: &AtomicBool,
    mut file: Option<std::io::BufWriter<std::fs::File>>,
) {
    let rng = SystemRandom::new();
    let retention = i64::from(retention_days) * 86_400;
    let purge = |now: i64| match store.purge_audit_events(now - retention) {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "audit events past retention deleted"),
        Err(e) => tracing::error!(error = %e, "audit retention: delete failed"),
    };
    purge(now());
    let mut last_purge = Instant::now();
    loop {
        let first = match rx.recv_timeout(PURGE_EVERY) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                purge(now());
                last_purge = Instant::now();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        // Let the batch fill while this thread sleeps: senders wake no one (a blocked
        // receiver would be woken by every send, a context switch per event).
        if !matches!(first, Message::Flush(_)) {
            let until = Instant::now() + LINGER;
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() || flushing.swap(false, Ordering::AcqRel) {
                    break;
                }
                // Unparked only by a flush (events wake no one); spurious wake-ups loop.
                std::thread::park_timeout(left);
            }
        }
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(message) => batch.push(message),
                Err(_) => break,
            }
        }
        let mut ids = vec![0u8; 16 * batch.len()];
        if rng.fill(&mut ids).is_err() {
            tracing::error!("audit: no randomness for event ids");
            continue;
        }
        let mut events = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for (message, id) in batch.into_iter().zip(ids.chunks_exact(16)) {
            match message {
                Message::Event(p) => events.push(build_event(&p, account_id, &uuid(id))),
                Message::Console(c) => {
                    events.push(build_console_event(&c, account_id, &uuid(id)));
                }
                Message::Flush(done) => flushes.push(done),
            }
        }
        let count = events.len();
        // The file gets what the store kept, after it: a line never names an event that a
        // lookup cannot find.
        let lines = file.as_ref().map(|_| {
            events
                .iter()
                .map(|e| expand_record(&e.record).into_owned())
                .collect::<Vec<_>>()
        });
        match store.append_audit_events(events) {
            Ok(()) => {
                if let (Some(out), Some(lines)) = (file.as_mut(), lines) {
                    append_lines(out, &lines);
                }
            }
            Err(e) => tracing::error!(error = %e, lost = count, "audit: append failed"),
        }
        for done in flushes {
            let _ = done.send(());
        }
        if last_purge.elapsed() >= PURGE_EVERY {
            purge(now());
            last_purge = Instant::now();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use serde_json::json;

    use super::*;
    use serde::Serialize;

    // The first, serde-derived writer, kept to prove the direct one writes the same bytes.
    /// A CloudTrail record (CTUG record contents), serialized in CloudTrail's field order.
    /// Borrowed fields and `Option`s skipped when absent: one pass, no intermediate `Value`.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Record<'a> {
        event_version: &'static str,
        user_identity: UserIdentity<'a>,
        event_time: String,
        event_source: &'a str,
        event_name: &'a str,
        aws_region: &'a str,
        #[serde(rename = "sourceIPAddress")]
        source_ip_address: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_agent: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_code: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_message: Option<&'a str>,
        request_parameters: Option<RequestParameters<'a>>,
        response_elements: Option<Value>,
        #[serde(rename = "requestID")]
        request_id: &'a str,
        #[serde(rename = "eventID")]
        event_id: &'a str,
        read_only: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        resources: Option<[Resource<'a>; 1]>,
        event_type: &'static str,
        management_event: bool,
        recipient_account_id: &'a str,
        event_category: &'static str,
    }

    /// `requestParameters`: the audited pairs, names camelCased.
    struct RequestParameters<'a>(&'a [(String, String)]);

    impl Serialize for RequestParameters<'_> {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(self.0.len()))?;
            for (name, value) in self.0 {
                map.serialize_entry(&camel(name), value)?;
            }
            map.end()
        }
    }

    #[derive(Serialize)]
    struct Resource<'a> {
        #[serde(rename = "ARN")]
        arn: &'a str,
        #[serde(rename = "accountId")]
        account_id: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct UserIdentity<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        principal_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        arn: Option<String>,
        account_id: &'a str,
        access_key_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_name: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        session_context: Option<SessionContext<'a>>,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SessionContext<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        session_issuer: Option<SessionIssuer<'a>>,
        attributes: Attributes,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SessionIssuer<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        principal_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        arn: Option<String>,
        account_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_name: Option<&'a str>,
    }

    /// `sessionContext.attributes`: `mfaAuthenticated` and `creationDate` as CloudTrail
    /// writes them, plus tokengate's `mfaMethod` (docs/audit.md).
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Attributes {
        creation_date: String,
        mfa_authenticated: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        mfa_method: Option<&'static str>,
    }

    impl Attributes {
        fn new(created: i64, mfa: Option<&MfaContext>) -> Self {
            let present = mfa.filter(|m| m.present);
            Attributes {
                creation_date: iso8601(created),
                mfa_authenticated: if present.is_some() { "true" } else { "false" },
                mfa_method: present.and_then(|m| m.method).map(mfa_method_name),
            }
        }
    }

    /// The event JSON and its indexed columns, with `event_id` given.
    fn build_event_serde(p: &Pending, account_id: &str, event_id: &str) -> AuditEvent {
        let issued = p.response.as_deref().and_then(issued_session);
        let (user_identity, username) = user_identity(p, account_id, issued.as_ref());
        let access_key_id = match &p.identity {
            Identity::Known { access_key_id, .. } => Some(access_key_id.clone()),
            Identity::Unknown { access_key_id } => access_key_id.clone(),
        };
        let event_source = format!("{}.amazonaws.com", p.api.service());
        let resource_type = p.resource.as_deref().map(resource_type);
        let record = Record {
            event_version: EVENT_VERSION,
            user_identity,
            event_time: iso8601(p.time),
            event_source: &event_source,
            event_name: &p.event_name,
            aws_region: if p.region.is_empty() {
                "us-east-1"
            } else {
                &p.region
            },
            source_ip_address: p.source_ip.map_or_else(String::new, |ip| ip.to_string()),
            user_agent: p.user_agent.as_deref(),
            error_code: p.error.as_ref().map(|(code, _)| *code),
            error_message: p.error.as_ref().map(|(_, message)| message.as_str()),
            request_parameters: (!p.parameters.is_empty())
                .then_some(RequestParameters(&p.parameters)),
            response_elements: p.response.as_deref().and_then(xml_to_json),
            request_id: &p.request_id,
            event_id,
            read_only: p.read_only,
            resources: p.resource.as_deref().zip(resource_type).map(|(arn, kind)| {
                [Resource {
                    arn,
                    account_id,
                    kind,
                }]
            }),
            event_type: "AwsApiCall",
            management_event: true,
            recipient_account_id: account_id,
            event_category: "Management",
        };
        // Serializing plain structs and strings cannot fail.
        let record = serde_json::to_string(&record).unwrap_or_default();
        AuditEvent {
            event_id: event_id.to_owned(),
            event_time: p.time,
            event_name: p.event_name.clone(),
            event_source,
            username,
            access_key_id,
            read_only: p.read_only,
            resource_type: resource_type.map(str::to_owned),
            resource_name: p.resource.clone(),
            record,
        }
    }

    /// `userIdentity` and LookupEvents' `Username`.
    fn user_identity<'a>(
        p: &'a Pending,
        account_id: &'a str,
        issued: Option<&(i64, MfaContext)>,
    ) -> (UserIdentity<'a>, Option<String>) {
        let (principal, access_key_id, session, request_mfa) = match &p.identity {
            Identity::Unknown { access_key_id } => {
                let identity = UserIdentity {
                    kind: "Unknown",
                    principal_id: None,
                    arn: None,
                    account_id,
                    access_key_id: access_key_id.as_deref().unwrap_or_default(),
                    user_name: None,
                    session_context: None,
                };
                return (identity, None);
            }
            Identity::Known {
                principal,
                access_key_id,
                session,
                request_mfa,
            } => (principal, access_key_id, session, request_mfa),
        };
        let (kind, username, issuer, user_name) = match principal {
            Principal::Root { .. } => ("Root", "root", None, None),
            Principal::User { name, .. } => ("IAMUser", name.as_str(), None, Some(name.as_str())),
            Principal::AssumedRole {
                role_name,
                role_id,
                session_name,
                ..
            } => (
                "AssumedRole",
                session_name.as_str(),
                Some(SessionIssuer {
                    kind: "Role",
                    principal_id: role_id,
                    arn: principal.role_arn(),
                    account_id: principal.account(),
                    user_name: Some(role_name),
                }),
                None,
            ),
            Principal::FederatedUser { name, user_id, .. } => (
                "FederatedUser",
                name.as_str(),
                Some(SessionIssuer {
                    kind: "IAMUser",
                    principal_id: user_id,
                    arn: None,
                    account_id: principal.account(),
                    user_name: None,
                }),
                None,
            ),
        };
        // The session's own context; for a long-term key, this request's: a factor verified
        // with it (AssumeRole's), or the one the session it just minted carries.
        let attributes = match (session, request_mfa, issued) {
            (Some((created, mfa)), None, _) => Attributes::new(*created, Some(mfa)),
            (_, Some(mfa), _) => Attributes::new(p.time, Some(mfa)),
            (None, None, Some((_, mfa))) => Attributes::new(p.time, Some(mfa)),
            (None, None, None) => Attributes::new(p.time, None),
        };
        let identity = UserIdentity {
            kind,
            principal_id: Some(principal.user_id()),
            arn: Some(principal.arn()),
            account_id: principal.account(),
            access_key_id,
            user_name,
            session_context: Some(SessionContext {
                session_issuer: issuer,
                attributes,
            }),
        };
        (identity, Some(username.to_owned()))
    }

    fn sample(identity: Identity, time: i64) -> Pending {
        let params = Params::new(vec![
            ("Action".into(), "GetSessionToken".into()),
            ("Version".into(), "2011-06-15".into()),
            (
                "SerialNumber".into(),
                "arn:aws:iam::1:mfa/a\"b\\c\u{1}\u{7f}é".into(),
            ),
            ("TokenCode".into(), "123456".into()),
            ("9lives".into(), "x".into()),
            (
                "Tags.member.1.Key".into(),
                "tab\there\nnew\r\u{8}\u{c}".into(),
            ),
            ("X-Amz-Security-Token".into(), "tok".into()),
        ]);
        let meta = RequestMeta {
            request_id: "rid-1",
            source_ip: Some(IpAddr::from([10, 0, 0, 1])),
            user_agent: Some("agent \"quoted\" ☃"),
        };
        Pending::new(
            Api::Sts,
            "GetSessionToken",
            true,
            time,
            identity,
            "",
            &meta,
            &params,
            "arn:aws:iam::000000000000:role/r",
        )
    }

    #[test]
    fn the_direct_writer_writes_the_serde_bytes() {
        let mfa = MfaContext {
            present: true,
            method: Some(MfaMethod::Fido2),
            device: Some("d".into()),
            auth_time: Some(5),
        };
        let claims = r#"{"iat":1800000000,"exp":1,"mfa":{"present":true,"method":"totp"}}"#;
        let result = format!(
            "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s</SecretAccessKey>\
             <SessionToken>h.{}.s</SessionToken><Expiration>e</Expiration></Credentials>\
             <Tags><member><Key>a&amp;b</Key><Value/></member></Tags><Zeta>z</Zeta><Alpha>\"</Alpha>",
            data_encoding::BASE64URL_NOPAD.encode(claims.as_bytes())
        );
        let principals = [
            Principal::Root {
                account: "000000000000".into(),
            },
            Principal::User {
                account: "000000000000".into(),
                path: "/p/".into(),
                name: "al\"ice".into(),
                user_id: "AIDA1".into(),
            },
            Principal::AssumedRole {
                account: "000000000000".into(),
                role_name: "r".into(),
                role_path: "/".into(),
                role_id: "AROA1".into(),
                session_name: "s".into(),
            },
            Principal::FederatedUser {
                account: "000000000000".into(),
                name: "f".into(),
                user_id: "AIDA2".into(),
            },
        ];
        let mut identities = vec![
            Identity::Unknown {
                access_key_id: None,
            },
            Identity::Unknown {
                access_key_id: Some("AKIA\"".into()),
            },
        ];
        for principal in principals {
            for (session, request_mfa) in [
                (None, None),
                (Some((1_700_000_000, mfa.clone())), None),
                (None, Some(mfa.clone())),
                (
                    Some((1_700_000_000, MfaContext::default())),
                    Some(mfa.clone()),
                ),
            ] {
                identities.push(Identity::Known {
                    principal: principal.clone(),
                    access_key_id: "AKIA1".into(),
                    session,
                    request_mfa,
                });
            }
        }
        let mut compared = 0;
        for identity in identities {
            for time in [1_800_000_000, 0, -1, 300_000_000_000] {
                let base = sample(identity.clone(), time);
                let mut variants = vec![base.clone()];
                variants.push(base.clone().finish(Ok(Some(&result))));
                let mut refused = base.clone();
                refused.read_only = false;
                let error = ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "AccessDenied",
                    "no \"way\"\u{2}",
                );
                variants.push(refused.clone().finish(Err(&error)));
                let mut bare = refused.finish(Ok(Some(&result)));
                bare.parameters.clear();
                bare.resource = None;
                bare.user_agent = None;
                bare.source_ip = None;
                bare.region = "eu-west-1".into();
                bare.api = Api::Iam;
                variants.push(bare.clone());
                bare.api = Api::CloudTrail;
                bare.region = "us-east-1".into();
                variants.push(bare);
                for p in variants {
                    let mut direct = build_event(&p, "000000000000", "eid");
                    let serde = build_event_serde(&p, "000000000000", "eid");
                    assert!(direct.record.len() < serde.record.len() * 3 / 4);
                    direct.record = expand_record(&direct.record).into_owned();
                    assert_eq!(direct, serde);
                    let _: Value = serde_json::from_str(&direct.record).unwrap();
                    compared += 1;
                }
            }
        }
        assert_eq!(compared, 18 * 4 * 5);
    }

    #[test]
    fn tokens_are_text_free_of_control_bytes_and_plain_records_pass() {
        assert!(TOKENS[0].contains(EVENT_VERSION));
        for t in TOKENS {
            assert!(t.bytes().all(|b| b >= 0x20), "{t}");
        }
        assert!(TOKENS.len() < 0x20);
        let plain = r#"{"a":"b\u0001"}"#;
        assert!(matches!(
            expand_record(plain),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            expand_record("\u{18}"),
            ",\"eventCategory\":\"Management\"}"
        );
        // An unknown token (none is written) expands to nothing rather than failing.
        assert_eq!(expand_record("a\u{1f}b"), "ab");
    }

    #[test]
    fn the_json_lines_file_gets_every_stored_event_as_a_full_record() {
        use std::os::unix::fs::PermissionsExt;
        use tokengate_store::{AuditQuery, SqliteStore};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open_in_memory(&tokengate_token::Secret::new(vec![1; 32])).unwrap(),
        );
        let trail = AuditTrail::start_with_file(
            Arc::clone(&store),
            "000000000000".into(),
            16,
            90,
            Arc::new(|| 1_800_000_000),
            Some(open_json_lines(&path).unwrap()),
        );
        let user = Identity::Unknown {
            access_key_id: None,
        };
        trail.record(sample(user, 1_800_000_000));
        let at = SignInMeta {
            time: 1_800_000_001,
            source_ip: None,
            user_agent: None,
        };
        let outcome = SignInOutcome::Failure(SignInRefusal::UnknownUser);
        trail.console_sign_in(
            &at,
            SignInUser::Unknown,
            SignInFactor::Password,
            None,
            outcome,
        );
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(trail.flush());
        trail.shutdown();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let stored = store
            .audit_events(&AuditQuery {
                limit: 50,
                ..AuditQuery::default()
            })
            .unwrap();
        // The store answers newest first; the file is in append order.
        let mut records: Vec<String> = stored
            .events
            .iter()
            .map(|(_, e)| expand_record(&e.record).into_owned())
            .collect();
        records.reverse();
        assert_eq!(lines, records);
        assert!(text.ends_with('\n'));
        for line in &lines {
            let v: Value = serde_json::from_str(line).unwrap();
            assert!(v["eventID"].is_string());
            assert!(!line.bytes().any(|b| b < 0x20), "a token left in {line}");
        }
        assert_eq!(
            serde_json::from_str::<Value>(lines[1]).unwrap()["eventName"],
            "ConsoleLogin"
        );
    }

    #[test]
    fn results_become_response_elements_without_secrets() {
        let xml = "<Credentials><AccessKeyId>ASIAX</AccessKeyId>\
                   <SecretAccessKey>s3cr3t</SecretAccessKey><SessionToken>a.b.c</SessionToken>\
                   <Expiration>2026-01-01T00:00:00Z</Expiration></Credentials>\
                   <Tags><member><Key>a&amp;b</Key><Value></Value></member></Tags>";
        let v = xml_to_json(xml).unwrap();
        assert_eq!(
            v,
            json!({"credentials": {"accessKeyId": "ASIAX",
                   "expiration": "2026-01-01T00:00:00Z"},
                   "tags": [{"key": "a&b", "value": ""}]})
        );
        assert_eq!(xml_to_json("<A><B>x</A>"), None);
    }

    #[test]
    fn secrets_are_recognised_at_any_depth_and_case() {
        for name in [
            "TokenCode",
            "tokencode",
            "Tags.member.1.Password",
            "SessionToken",
        ] {
            assert!(is_redacted(name), "{name}");
        }
        assert!(!is_redacted("UserName"));
        assert!(!is_redacted("SerialNumber"));
    }

    #[test]
    fn resource_types() {
        assert_eq!(resource_type("arn:aws:iam::1:user/a/b"), "AWS::IAM::User");
        assert_eq!(resource_type("arn:aws:iam::1:role/r"), "AWS::IAM::Role");
        assert_eq!(resource_type("arn:aws:iam::1:mfa/d"), "AWS::IAM::MFADevice");
        assert_eq!(resource_type("GAHT12345678"), "AWS::IAM::MFADevice");
    }
}
