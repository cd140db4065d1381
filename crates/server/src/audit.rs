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
use serde_json::{Map, Value, json};
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
/// How long a batch waits for more events after its first one (bounds the fsyncs under
/// load; also the longest an event stays only in memory).
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
#[derive(Debug)]
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

/// The event JSON and its indexed columns, with `event_id` given.
pub fn build_event(p: &Pending, account_id: &str, event_id: &str) -> AuditEvent {
    let issued = p.response.as_deref().and_then(issued_session);
    let (user_identity, username, access_key_id) = user_identity(p, account_id, issued);
    let mut event = Map::new();
    event.insert("eventVersion".into(), json!(EVENT_VERSION));
    event.insert("userIdentity".into(), user_identity);
    event.insert("eventTime".into(), json!(iso8601(p.time)));
    event.insert(
        "eventSource".into(),
        json!(format!("{}.amazonaws.com", p.api.service())),
    );
    event.insert("eventName".into(), json!(p.event_name));
    event.insert(
        "awsRegion".into(),
        json!(if p.region.is_empty() {
            "us-east-1"
        } else {
            &p.region
        }),
    );
    event.insert(
        "sourceIPAddress".into(),
        json!(p.source_ip.map_or_else(String::new, |ip| ip.to_string())),
    );
    if let Some(ua) = &p.user_agent {
        event.insert("userAgent".into(), json!(ua));
    }
    if let Some((code, message)) = &p.error {
        event.insert("errorCode".into(), json!(code));
        event.insert("errorMessage".into(), json!(message));
    }
    let request_parameters = if p.parameters.is_empty() {
        Value::Null
    } else {
        Value::Object(
            p.parameters
                .iter()
                .map(|(k, v)| (camel(k), json!(v)))
                .collect(),
        )
    };
    event.insert("requestParameters".into(), request_parameters);
    let response_elements = p
        .response
        .as_deref()
        .and_then(xml_to_json)
        .unwrap_or(Value::Null);
    event.insert("responseElements".into(), response_elements);
    event.insert("requestID".into(), json!(p.request_id));
    event.insert("eventID".into(), json!(event_id));
    event.insert("readOnly".into(), json!(p.read_only));
    let resource_type = p.resource.as_deref().map(resource_type);
    if let (Some(arn), Some(kind)) = (&p.resource, resource_type) {
        event.insert(
            "resources".into(),
            json!([{"ARN": arn, "accountId": account_id, "type": kind}]),
        );
    }
    event.insert("eventType".into(), json!("AwsApiCall"));
    event.insert("managementEvent".into(), json!(true));
    event.insert("recipientAccountId".into(), json!(account_id));
    event.insert("eventCategory".into(), json!("Management"));
    AuditEvent {
        event_id: event_id.to_owned(),
        event_time: p.time,
        event_name: p.event_name.clone(),
        event_source: format!("{}.amazonaws.com", p.api.service()),
        username,
        access_key_id,
        read_only: p.read_only,
        resource_type: resource_type.map(str::to_owned),
        resource_name: p.resource.clone(),
        record: Value::Object(event).to_string(),
    }
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
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let mfa: MfaContext = serde_json::from_value(claims.get("mfa")?.clone()).ok()?;
    Some((claims.get("iat")?.as_i64()?, mfa))
}

fn mfa_method_name(method: MfaMethod) -> &'static str {
    match method {
        MfaMethod::Totp => "totp",
        MfaMethod::Fido2 => "fido2",
        MfaMethod::U2f => "u2f",
    }
}

/// `sessionContext.attributes`: `mfaAuthenticated` and `creationDate` as CloudTrail
/// writes them, plus tokengate's `mfaMethod` (docs/audit.md).
fn attributes(created: i64, mfa: Option<&MfaContext>) -> Value {
    let present = mfa.is_some_and(|m| m.present);
    let mut attributes = Map::new();
    attributes.insert("creationDate".into(), json!(iso8601(created)));
    attributes.insert(
        "mfaAuthenticated".into(),
        json!(if present { "true" } else { "false" }),
    );
    if let Some(method) = mfa.filter(|m| m.present).and_then(|m| m.method) {
        attributes.insert("mfaMethod".into(), json!(mfa_method_name(method)));
    }
    Value::Object(attributes)
}

/// `userIdentity`, LookupEvents' `Username` and the access key id.
fn user_identity(
    p: &Pending,
    account_id: &str,
    issued: Option<(i64, MfaContext)>,
) -> (Value, Option<String>, Option<String>) {
    let (principal, access_key_id, session, request_mfa) = match &p.identity {
        Identity::Unknown { access_key_id } => {
            let mut identity = Map::new();
            identity.insert("type".into(), json!("Unknown"));
            identity.insert("accountId".into(), json!(account_id));
            identity.insert(
                "accessKeyId".into(),
                json!(access_key_id.clone().unwrap_or_default()),
            );
            return (Value::Object(identity), None, access_key_id.clone());
        }
        Identity::Known {
            principal,
            access_key_id,
            session,
            request_mfa,
        } => (principal, access_key_id, session, request_mfa),
    };
    let mut identity = Map::new();
    let (kind, username, issuer) = match principal {
        Principal::Root { .. } => ("Root", "root".to_owned(), None),
        Principal::User { name, .. } => ("IAMUser", name.clone(), None),
        Principal::AssumedRole {
            role_name,
            role_id,
            session_name,
            ..
        } => (
            "AssumedRole",
            session_name.clone(),
            Some(json!({
                "type": "Role",
                "principalId": role_id,
                "arn": principal.role_arn(),
                "accountId": principal.account(),
                "userName": role_name,
            })),
        ),
        Principal::FederatedUser { name, user_id, .. } => (
            "FederatedUser",
            name.clone(),
            Some(json!({
                "type": "IAMUser",
                "principalId": user_id,
                "accountId": principal.account(),
            })),
        ),
    };
    identity.insert("type".into(), json!(kind));
    identity.insert("principalId".into(), json!(principal.user_id()));
    identity.insert("arn".into(), json!(principal.arn()));
    identity.insert("accountId".into(), json!(principal.account()));
    identity.insert("accessKeyId".into(), json!(access_key_id));
    if let Principal::User { name, .. } = principal {
        identity.insert("userName".into(), json!(name));
    }
    // The session's own context; for a long-term key, this request's: a factor verified
    // with it (AssumeRole's), or the one the session it just minted carries.
    let attributes = match (session, request_mfa, issued) {
        (Some((created, mfa)), None, _) => attributes(*created, Some(mfa)),
        (_, Some(mfa), _) => attributes(p.time, Some(mfa)),
        (None, None, Some((_, mfa))) => attributes(p.time, Some(&mfa)),
        (None, None, None) => attributes(p.time, None),
    };
    let mut context = Map::new();
    if let Some(issuer) = issuer {
        context.insert("sessionIssuer".into(), issuer);
    }
    context.insert("attributes".into(), attributes);
    identity.insert("sessionContext".into(), Value::Object(context));
    (
        Value::Object(identity),
        Some(username),
        Some(access_key_id.clone()),
    )
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

/// A UUID (v4) for `eventID`.
fn uuid(rng: &dyn SecureRandom) -> Option<String> {
    let mut b = [0u8; 16];
    rng.fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = data_encoding::HEXLOWER.encode(&b);
    Some(format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8)?,
        h.get(8..12)?,
        h.get(12..16)?,
        h.get(16..20)?,
        h.get(20..32)?
    ))
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
        let mut events = Vec::new();
        let mut flushes = Vec::new();
        let deadline = Instant::now() + LINGER;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(p) => match uuid(&rng) {
                    Some(id) => events.push(build_event(&p, account_id, &id)),
                    None => tracing::error!("audit: no randomness for an event id"),
                },
                Message::Flush(done) => flushes.push(done),
            }
            if events.len() >= MAX_BATCH || !flushes.is_empty() {
                // A flush is waiting: write what we have now.
                next = rx.try_recv().ok().filter(|_| events.len() < MAX_BATCH);
                continue;
            }
            next = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .ok();
        }
        if let Err(e) = store.append_audit_events(&events) {
            tracing::error!(error = %e, lost = events.len(), "audit: append failed");
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
