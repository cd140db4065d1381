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

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use serde::Serialize;
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
const LINGER: Duration = Duration::from_millis(20);
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
pub fn build_event(p: &Pending, account_id: &str, event_id: &str) -> AuditEvent {
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
        request_parameters: (!p.parameters.is_empty()).then_some(RequestParameters(&p.parameters)),
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
    let start = result.find("<SessionToken>")? + "<SessionToken>".len();
    let end = start + result.get(start..)?.find("</SessionToken>")?;
    let payload = result.get(start..end)?.split('.').nth(1)?;
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
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// The audit queue and its writer thread.
pub struct AuditTrail {
    queue: Mutex<Option<mpsc::SyncSender<Message>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    dropped: AtomicU64,
}

impl AuditTrail {
    /// A trail that records nothing (`audit.enabled = false`).
    pub fn disabled() -> Self {
        AuditTrail {
            queue: Mutex::new(None),
            thread: Mutex::new(None),
            dropped: AtomicU64::new(0),
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
        let (tx, rx) = mpsc::sync_channel::<Message>(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                writer(
                    &rx,
                    store.as_ref(),
                    &account_id,
                    retention_days,
                    &*clock_now,
                );
            })
            .ok();
        AuditTrail {
            queue: Mutex::new(thread.as_ref().map(|_| tx)),
            thread: Mutex::new(thread),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether events are recorded.
    pub fn enabled(&self) -> bool {
        self.queue.lock().is_ok_and(|q| q.is_some())
    }

    /// Offers an event to the queue without waiting; a full queue drops it (counted).
    pub fn record(&self, pending: Pending) {
        let sender = match self.queue.lock() {
            Ok(q) => q.clone(),
            Err(_) => None,
        };
        let Some(sender) = sender else { return };
        if sender.try_send(Message::Event(Box::new(pending))).is_err() {
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
            let _ = wait.await;
        }
    }

    /// Stops taking events, writes those queued and joins the writer.
    pub fn shutdown(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
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

fn writer(
    rx: &mpsc::Receiver<Message>,
    store: &dyn Store,
    account_id: &str,
    retention_days: u32,
    now: &dyn Fn() -> i64,
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
            std::thread::sleep(LINGER);
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
                Message::Flush(done) => flushes.push(done),
            }
        }
        let count = events.len();
        if let Err(e) = store.append_audit_events(events) {
            tracing::error!(error = %e, lost = count, "audit: append failed");
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
