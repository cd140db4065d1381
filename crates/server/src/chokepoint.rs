//! The chokepoint: every query-API request passes `handle`, which authenticates it, looks
//! its action up in the [`registry`], builds the resource ARN, authorizes,
//! calls the handler and reports to the audit hook — in that order, in one function, so a
//! handler that skips a check cannot exist. Around it: decoding the request (sts-iam.md
//! §1.3) and answering in XML or AWS error XML (§1.4).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use ring::rand::SecureRandom;
use tokengate_token::Principal;
use tokengate_token::query::decode_form;
use tokengate_token::sigv4::HttpRequest;

use crate::action::{ActionSpec, Api, Call, ResourceInput};
use crate::auth::Caller;
use crate::authz::RequestFacts;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;
use crate::{assume, audit, auth, throttle};
use crate::{authz, registry, xml};

/// AWS's answer to an action it does not know in this version.
pub fn invalid_action(action: &str, version: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidAction",
        format!("Could not find operation {action} for version {version}"),
    )
}

/// The catch-all route: one query-API request in, one XML answer out — or, with an
/// `X-Amz-Target` header, one JSON 1.1 request in and JSON out (CloudTrail, portal.md §4.4).
///
/// It takes the request whole and moves its parts out: the `HeaderMap`, `Method` and `Uri`
/// extractors would each copy them (issue 15). The body is read by the `Bytes` extractor as
/// before, so the body limit and its rejection are unchanged.
pub(crate) async fn query_api(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let request_id = request_id();
    let (mut parts, body) = request.into_parts();
    let method = std::mem::take(&mut parts.method);
    let uri = std::mem::take(&mut parts.uri);
    let headers = std::mem::take(&mut parts.headers);
    let facts = RequestFacts {
        source_ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip()),
        secure_transport: false,
    };
    let body = Bytes::from_request(Request::from_parts(parts, body), &()).await;
    let mut api = Api::Sts;
    let json = headers.contains_key(X_AMZ_TARGET);
    let meta = audit::RequestMeta {
        request_id: &request_id,
        source_ip: facts.source_ip,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    };
    let mut action = None;
    let outcome = handle(
        &state,
        &method,
        &uri,
        &headers,
        body,
        facts,
        &meta,
        (&mut api, &mut action),
    )
    .await;
    state.metrics.request(
        action,
        outcome.as_ref().err().map(|e| e.code),
        started.elapsed(),
    );
    let service = api.service();
    match outcome {
        Ok((spec, result)) => {
            tracing::debug!(%request_id, service, action = spec.name, "ok");
            if json {
                json_response(StatusCode::OK, &request_id, result.unwrap_or_default())
            } else {
                success_response(api, spec.name, &request_id, result)
            }
        }
        Err(e) => {
            let status = e.status.as_u16();
            tracing::info!(%request_id, service, code = e.code, status, "refused");
            if json {
                let body = serde_json::json!({"__type": e.code, "message": e.message});
                json_response(e.status, &request_id, body.to_string())
            } else {
                error_response(api, &request_id, &e)
            }
        }
    }
}

/// The header that names a JSON 1.1 protocol operation (botocore `targetPrefix` + `.` +
/// operation).
const X_AMZ_TARGET: &str = "x-amz-target";

/// The parameters of a JSON 1.1 request: `Action` from `X-Amz-Target`, `Version` from its
/// API, and the body flattened into query-style names (`LookupAttributes.member.1.…`), so
/// that the registry, authorization, handlers and audit see one kind of request.
fn json_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, ApiError> {
    let target = headers
        .get(X_AMZ_TARGET)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let unknown = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Unknown operation {target}"),
        )
    };
    let (prefix, operation) = target.rsplit_once('.').ok_or_else(unknown)?;
    let api = Api::ALL
        .into_iter()
        .find(|api| api.json_target_prefix() == Some(prefix))
        .ok_or_else(unknown)?;
    let body = tokengate_token::query::decode_json_body(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            e.to_string(),
        )
    })?;
    let mut pairs = Vec::with_capacity(body.len() + 2);
    pairs.push(("Action".to_owned(), operation.to_owned()));
    pairs.push(("Version".to_owned(), api.version().to_owned()));
    pairs.extend(body);
    Ok(Params::new(pairs))
}

/// Throttle → authenticate → look up the action → build its resource → authorize → run
/// the handler → audit hook. `api` is kept up to date for the answer's namespace, and
/// `action` names the registered action as soon as it is known (for the metrics), error or
/// not.
#[allow(clippy::too_many_arguments)] // the request's parts, as axum hands them over
async fn handle(
    state: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    facts: RequestFacts,
    meta: &audit::RequestMeta<'_>,
    (api, action_out): (&mut Api, &mut Option<&'static ActionSpec>),
) -> Result<(&'static ActionSpec, Option<String>), ApiError> {
    let body = body.map_err(body_refused)?;
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
    let json = headers.contains_key(X_AMZ_TARGET);
    let params = if json {
        json_params(headers, &body)?
    } else {
        let mut pairs = decode_form(query.as_bytes()).map_err(malformed)?;
        if method == Method::POST {
            pairs.extend(decode_form(&body).map_err(malformed)?);
        }
        Params::new(pairs)
    };
    *api = params
        .get("Action")
        .and_then(registry::api_of)
        .unwrap_or(Api::Sts);
    *action_out = params
        .get("Action")
        .and_then(|name| registry::lookup(*api, name));

    // Authenticate.
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
    // The throttle first: an address or key that failed too often costs no signature
    // check and no store read.
    let claimed = claimed_access_key_id(&request);
    if let Err(by) = state.throttle.check(facts.source_ip, claimed.as_deref()) {
        state.metrics.throttled(by);
        tracing::info!(
            by = by.label(),
            "throttled after repeated failed authentications"
        );
        return Err(throttle::throttled());
    }
    let (mut caller, scope_service) = match auth::authenticate(state, &request).await {
        Ok(authenticated) => authenticated,
        Err(e) => {
            // A failing store is not the client's failure; a request that names no access
            // key (no credentials at all: a browser's /favicon.ico, a probe) cost no
            // signature check or store read, so only requests that claim a key are counted.
            if !e.status.is_server_error() {
                state.metrics.auth_failure();
                if claimed.is_some() {
                    state.throttle.failure(facts.source_ip, claimed.as_deref());
                }
            }
            audit_unauthenticated(state, *api, &params, &request, meta, &e);
            return Err(e);
        }
    };
    *api = Api::from_service(&scope_service).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            format!(
                "Credential should be scoped to correct service: 'sts' or 'iam', not \
                 '{scope_service}'."
            ),
        )
    })?;

    let event_api = *api;
    let now = state.clock.now().unix_timestamp();
    // The event of this request, once it is decided (None while auditing is off).
    let draft = |caller: &Caller, name: &str, read_only: bool, resource: &str| {
        state.audit.enabled().then(|| {
            audit::Pending::new(
                event_api,
                name,
                read_only,
                now,
                audit::Identity::of(caller),
                &caller.region,
                meta,
                &params,
                resource,
            )
        })
    };
    // Look the action up (in the API the credential scope named).
    let action = params.get("Action").unwrap_or("");
    *action_out = registry::lookup(*api, action);
    if action.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "Missing Action",
        ));
    }
    let version = params.get("Version");
    let Some(spec) = registry::lookup(*api, action)
        .filter(|_| version == Some(api.version()))
        .filter(|spec| spec.api.json_target_prefix().is_some() == json)
    else {
        let refused = invalid_action(action, version.unwrap_or(""));
        record(state, draft(&caller, action, false, "*"), Err(&refused));
        return Err(refused);
    };
    // Usage (last used, access advisor) counts every authenticated attempt; batched.
    state
        .usage
        .note(&caller, spec, state.clock.now().unix_timestamp());

    // AssumeRole's second factor is verified before authorization, exactly as
    // GetSessionToken verifies it: the trust policy decides on `aws:MultiFactorAuthPresent`
    // (policy.md §5.1). Its parameters are validated first, so a bad request spends no code.
    if spec.iam_action() == assume::ASSUME_ROLE {
        let verified = async {
            let request = assume::AssumeRoleRequest::parse(&params)?;
            request.session_attributes(&caller)?;
            let touch = if spec.name == assume::ASSUME_ROLE_WITH_SECURITY_KEY {
                Some(assume::read_touch(&params, &caller)?)
            } else {
                None
            };
            assume::second_factor(state, &caller, &request, touch.as_ref()).await
        }
        .await;
        match verified {
            Ok(mfa) => caller.request_mfa = mfa,
            Err(refused) => {
                mfa_failure(state, &refused, facts, &caller.access_key_id);
                let role = params.get("RoleArn").unwrap_or("*");
                let pending = draft(&caller, spec.name, audit::is_read_only(spec), role);
                audit_hook(
                    state,
                    spec,
                    &caller.principal,
                    role,
                    pending,
                    Decision::Deny,
                    Err(&refused),
                );
                return Err(refused);
            }
        }
    }

    let result = run_as(state, caller, spec, params, facts, meta).await;
    Ok((spec, result?))
}

/// The chokepoint's second half, for a caller already authenticated: builds the resource
/// ARN, authorizes, runs the handler and reports to the audit hook. The query API reaches
/// it after SigV4; the sign-in portal (docs/portal.md) reaches it for the API calls its
/// pages mirror (registering a security key), with the signed-in user as the caller — so
/// a portal action is authorized, run and audited exactly as its API call.
async fn run_as(
    state: &Arc<AppState>,
    caller: Caller,
    spec: &'static ActionSpec,
    params: Params,
    facts: RequestFacts,
    meta: &audit::RequestMeta<'_>,
) -> Result<Option<String>, ApiError> {
    let now = state.clock.now().unix_timestamp();
    // Authorize.
    let resource = spec.resource.build(&ResourceInput {
        state,
        caller: &caller,
        params: &params,
    })?;
    let pending = state.audit.enabled().then(|| {
        audit::Pending::new(
            spec.api,
            spec.name,
            audit::is_read_only(spec),
            now,
            audit::Identity::of(&caller),
            &caller.region,
            meta,
            &params,
            &resource,
        )
    });
    if let Err(denied) = authz::authorize(state, &caller, spec, &resource, &params, facts) {
        audit_hook(
            state,
            spec,
            &caller.principal,
            &resource,
            pending,
            Decision::Deny,
            Err(&denied),
        );
        return Err(denied);
    }

    // Run the handler; the audit hook hears how it went.
    let principal = caller.principal.clone();
    let key_id = caller.access_key_id.clone();
    let call = Call {
        state: Arc::clone(state),
        caller,
        params,
        action: spec,
    };
    let result = (spec.handler)(call).await;
    if let Err(refused) = &result {
        mfa_failure(state, refused, facts, &key_id);
    }
    let outcome = result.as_ref().map(Option::as_deref);
    audit_hook(
        state,
        spec,
        &principal,
        &resource,
        pending,
        Decision::Allow,
        outcome,
    );
    result
}

/// A refused second factor (a wrong code, a bad assertion) is a failed authentication:
/// the throttle counts it against the address and the access key.
fn mfa_failure(state: &AppState, refused: &ApiError, facts: RequestFacts, key_id: &str) {
    if refused.mfa_refused {
        state.metrics.auth_failure();
        state.throttle.failure(facts.source_ip, Some(key_id));
    }
}

/// A body that could not be read: too large (413, `RequestEntityTooLarge`), or stalled
/// past `http.body_read_timeout_ms` (408, `RequestTimeout`), or cut off (400).
fn body_refused(e: BytesRejection) -> ApiError {
    let timed_out = {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut found = false;
        while let Some(err) = source {
            if err.is::<tower_http::timeout::TimeoutError>() {
                found = true;
                break;
            }
            source = err.source();
        }
        found
    };
    if timed_out {
        return ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            "The request body was not received within the timeout; send it again.",
        );
    }
    let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        "RequestEntityTooLarge"
    } else {
        "IncompleteBody"
    };
    ApiError::new(
        e.status(),
        code,
        format!("The request body was refused: {e}"),
    )
}

/// The portal's way to an API action by name (issue 13, docs/portal.md): looks the action
/// up and goes through [`run_as`] — build its resource, [`authz::authorize`], run its
/// handler, the audit hook — for a caller the portal authenticated with a session cookie.
/// The portal's pages call IAM only through here, so a policy governs a page exactly as it
/// governs the API call it mirrors, and the call is audited as that call.
///
/// `params` are the action's own (no `Action`/`Version`). AssumeRole is not taken here: its
/// second factor is the sign-in's, which the portal's role page handles. Usage (key last
/// used, access advisor) is not noted: a portal caller has no access key.
pub(crate) async fn invoke(
    state: &Arc<AppState>,
    caller: Caller,
    api: Api,
    action: &str,
    params: Params,
    facts: RequestFacts,
    user_agent: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let started = std::time::Instant::now();
    let spec = registry::lookup(api, action)
        .filter(|spec| spec.iam_action() != assume::ASSUME_ROLE)
        .ok_or_else(|| ApiError::internal(format!("the portal asked for {action}")))?;
    let request_id = request_id();
    let meta = audit::RequestMeta {
        request_id: &request_id,
        source_ip: facts.source_ip,
        user_agent,
    };
    let result = run_as(state, caller, spec, params, facts, &meta).await;
    // Counted as the API call it is, like a request through `query_api`.
    state.metrics.request(
        Some(spec),
        result.as_ref().err().map(|e| e.code),
        started.elapsed(),
    );
    result
}

/// An authorization decision, as the audit hook records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
}

/// **The audit hook**: every authorized or refused action passes here once, with who asked,
/// what, on which resource, the decision and the outcome. It writes a `debug` event on the
/// `audit` target and hands the request's CloudTrail event (`pending`, `None` while
/// auditing is off) to the audit trail ([`crate::audit`]), which stores it off the
/// request path.
fn audit_hook(
    state: &AppState,
    spec: &ActionSpec,
    principal: &Principal,
    resource: &str,
    pending: Option<audit::Pending>,
    decision: Decision,
    outcome: Result<Option<&str>, &ApiError>,
) {
    tracing::debug!(
        target: "audit",
        action = %spec.iam_action(),
        principal = %principal.arn(),
        resource,
        decision = ?decision,
        outcome = outcome.err().map_or("ok", |e| e.code),
        "request decided"
    );
    record(state, pending, outcome);
}

/// Hands a decided request's event to the audit trail.
fn record(
    state: &AppState,
    pending: Option<audit::Pending>,
    outcome: Result<Option<&str>, &ApiError>,
) {
    if let Some(pending) = pending {
        state.audit.record(pending.finish(outcome));
    }
}

/// A request that failed authentication (bad signature, unknown key, expired token) is
/// recorded when it names a known action: `userIdentity.type` `Unknown`, with the access
/// key id it claimed.
fn audit_unauthenticated(
    state: &AppState,
    api: Api,
    params: &Params,
    request: &HttpRequest<'_>,
    meta: &audit::RequestMeta<'_>,
    refused: &ApiError,
) {
    if !state.audit.enabled() {
        return;
    }
    let Some(spec) = params
        .get("Action")
        .and_then(|name| registry::lookup(api, name))
    else {
        return;
    };
    let identity = audit::Identity::Unknown {
        access_key_id: claimed_access_key_id(request),
    };
    let pending = audit::Pending::new(
        spec.api,
        spec.name,
        audit::is_read_only(spec),
        state.clock.now().unix_timestamp(),
        identity,
        "",
        meta,
        params,
        "*",
    );
    state.audit.record(pending.finish(Err(refused)));
}

/// The access key id a request claims (its credential scope's first part), if it is
/// shaped like one.
fn claimed_access_key_id(request: &HttpRequest<'_>) -> Option<String> {
    let from_header = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.split("Credential=").nth(1));
    let from_query = request
        .query
        .split('&')
        .find_map(|pair| pair.strip_prefix("X-Amz-Credential="));
    let credential = from_header.or(from_query)?;
    let id: String = credential
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .take(128)
        .collect();
    (id.len() >= 16).then_some(id)
}

/// A `RequestId`: shaped like a UUID (version 4 bits set), unique rather than secret
/// (issue 15): 62 bits drawn from the OS once per process, then a process-wide counter — no
/// system call per request. Two processes collide only if their random prefixes do.
pub(crate) fn request_id() -> String {
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut p = [0u8; 8];
        // Without the OS's randomness the ids stay unique within this process (the counter).
        let _ = ring::rand::SystemRandom::new().fill(&mut p);
        p
    });
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(prefix);
    b[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

fn xml_response(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

fn json_response(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        body,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

fn error_response(api: Api, request_id: &str, e: &ApiError) -> Response {
    let mut x = xml::Xml::new();
    x.root("ErrorResponse", api.namespace(), |x| {
        x.elem("Error", |x| {
            x.text("Type", e.fault());
            x.text("Code", e.code);
            x.text("Message", &e.message);
        });
        x.text("RequestId", request_id);
    });
    xml_response(e.status, request_id, x.finish())
}

fn success_response(api: Api, action: &str, request_id: &str, result: Option<String>) -> Response {
    // The envelope is ~250 bytes besides the result (escaping may add a little).
    let size = 256 + 2 * action.len() + result.as_ref().map_or(0, String::len);
    let mut x = xml::Xml::with_capacity(size);
    x.root(&format!("{action}Response"), api.namespace(), |x| {
        if let Some(inner) = &result {
            x.elem(&format!("{action}Result"), |x| x.raw(inner));
        }
        x.elem("ResponseMetadata", |x| x.text("RequestId", request_id));
    });
    xml_response(StatusCode::OK, request_id, x.finish())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use time::OffsetDateTime;
    use tokengate_store::{AccessKey, KeyOwner, KeyStatus, SqliteStore, Store, User};
    use tokengate_token::sigv4::{SigningCredentials, sign_request};
    use tokengate_token::{Secret, keys};
    use tower::ServiceExt;

    use super::*;
    use crate::auth::Caller;
    use crate::config::Config;
    use crate::state::{self, Clock};

    const NOW: i64 = 1_800_000_000;

    struct At;

    impl Clock for At {
        fn now(&self) -> OffsetDateTime {
            OffsetDateTime::from_unix_timestamp(NOW).unwrap()
        }
    }

    /// A service with user `alice` (path `/team/`); the root's and alice's keys.
    struct Fixture {
        state: Arc<AppState>,
        root: (String, String),
        alice: (String, String),
        _dir: tempfile::TempDir,
    }

    fn key(state: &AppState, owner: KeyOwner) -> (String, String) {
        let key = AccessKey {
            access_key_id: keys::new_long_term_key_id(&state.rng).unwrap(),
            owner,
            status: KeyStatus::Active,
            created: NOW,
            secret: keys::new_secret_access_key(&state.rng).unwrap(),
        };
        state.store.create_access_key(&key, 2).unwrap();
        let secret = key.secret.expose_str().unwrap().to_owned();
        (key.access_key_id, secret)
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open_in_memory(&Secret::new(vec![3; 32])).unwrap());
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        let state = Arc::new(state::open_with_store(config, store, Arc::new(At)).unwrap());
        state
            .store
            .create_user(&User {
                user_id: "AIDAALICEALICEALICE1".into(),
                name: "alice".into(),
                path: "/team/".into(),
                created: NOW,
            })
            .unwrap();
        Fixture {
            root: key(&state, KeyOwner::Root),
            alice: key(&state, KeyOwner::User("alice".into())),
            state,
            _dir: dir,
        }
    }

    /// Sends `params` to the router, signed with `creds` for `service`.
    async fn call(
        f: &Fixture,
        creds: &(String, String),
        service: &str,
        params: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let body: String = params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let host = [("host", "localhost")];
        let req = HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &host,
            body: body.as_bytes(),
        };
        let signing = SigningCredentials {
            access_key_id: &creds.0,
            secret_access_key: &creds.1,
            session_token: None,
        };
        let signed = sign_request(&req, &signing, "us-east-1", service, At.now());
        let mut builder = axum::http::Request::post("/").header("host", "localhost");
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        let response = crate::router(Arc::clone(&f.state))
            .oneshot(builder.body(axum::body::Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    fn alice(f: &Fixture) -> Caller {
        Caller {
            principal: Principal::User {
                account: f.state.account_id.clone(),
                path: "/team/".into(),
                name: "alice".into(),
                user_id: "AIDAALICEALICEALICE1".into(),
            },
            access_key_id: f.alice.0.clone(),
            session: None,
            request_mfa: None,
            region: "us-east-1".into(),
        }
    }

    #[tokio::test]
    async fn handlers_do_not_check_the_chokepoint_does() {
        let f = fixture();
        let params = || {
            Params::new(vec![
                ("Action".into(), "ListUsers".into()),
                ("Version".into(), "2010-05-08".into()),
            ])
        };
        // The handler alone answers alice: it has no check of its own.
        let spec = registry::lookup(Api::Iam, "ListUsers").unwrap();
        let call = Call {
            state: Arc::clone(&f.state),
            caller: alice(&f),
            params: params(),
            action: spec,
        };
        let listed = (spec.handler)(call).await.unwrap().unwrap();
        assert!(listed.contains("<UserName>alice</UserName>"), "{listed}");

        // Through the chokepoint, alice is refused and root is answered.
        let (status, body) = call_list_users(&f, &f.alice).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
        assert!(
            body.contains(
                "User: arn:aws:iam::000000000000:user/team/alice is not authorized to perform: \
                 iam:ListUsers on resource: arn:aws:iam::000000000000:user/ because no \
                 identity-based policy allows the iam:ListUsers action"
            ),
            "{body}"
        );
        let (status, body) = call_list_users(&f, &f.root).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("<UserName>alice</UserName>"), "{body}");
    }

    async fn call_list_users(f: &Fixture, creds: &(String, String)) -> (StatusCode, String) {
        call(
            f,
            creds,
            "iam",
            &[("Action", "ListUsers"), ("Version", "2010-05-08")],
        )
        .await
    }

    #[tokio::test]
    async fn every_iam_action_is_refused_to_a_user_before_its_handler_runs() {
        let f = fixture();
        for spec in registry::ACTIONS.iter().filter(|a| a.api == Api::Iam) {
            // Valid or not, the parameters never reach the handler.
            let (status, body) = call(
                &f,
                &f.alice,
                "iam",
                &[("Action", spec.name), ("Version", "2010-05-08")],
            )
            .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{}: {body}", spec.name);
            let expected = format!("is not authorized to perform: {}", spec.iam_action());
            assert!(body.contains(&expected), "{}: {body}", spec.name);
        }
        // Alice's own user, with its path, is the resource of her implicit-user actions.
        let (_, body) = call(
            &f,
            &f.alice,
            "iam",
            &[("Action", "ListAccessKeys"), ("Version", "2010-05-08")],
        )
        .await;
        assert!(
            body.contains("on resource: arn:aws:iam::000000000000:user/team/alice because"),
            "{body}"
        );
        // Nothing was created meanwhile.
        assert_eq!(f.state.store.list_users("/", None, 10).unwrap().len(), 1);
        assert!(f.state.store.list_mfa_devices(None).unwrap().is_empty());
    }

    #[tokio::test]
    async fn unknown_actions_and_versions_are_invalid_actions() {
        let f = fixture();
        for params in [
            [("Action", "createuser"), ("Version", "2010-05-08")],
            [("Action", "CreateUser"), ("Version", "2011-06-15")],
            [("Action", "GetSessionToken"), ("Version", "2010-05-08")],
        ] {
            let (status, body) = call(&f, &f.root, "iam", &params).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
        }
        let (status, body) = call(
            &f,
            &f.alice,
            "sts",
            &[("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            body.contains("https://sts.amazonaws.com/doc/2011-06-15/"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_store_backend_failure_is_service_unavailable_never_a_500() {
        let e = ApiError::from(tokengate_store::StoreError::Backend(
            "disk I/O error at /secret/path".into(),
        ));
        let response = error_response(Api::Sts, "req-1", &e);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        for part in [
            "<Type>Receiver</Type>",
            "<Code>ServiceUnavailable</Code>",
            "<Message>The request has failed due to a temporary failure of the server.</Message>",
        ] {
            assert!(body.contains(part), "{body}");
        }
        assert!(!body.contains("/secret/path"), "{body}");
    }

    #[tokio::test]
    async fn throttled_requests_are_refused_before_authentication() {
        let config = crate::config::ThrottleConfig {
            burst: 2,
            ..Default::default()
        };
        let f = fixture();
        let state = Arc::new(AppState {
            throttle: crate::throttle::FailureThrottle::new(&config),
            ..state::open_with_store(
                Config {
                    data_dir: f.state.config.data_dir.clone(),
                    ..Config::default()
                },
                Arc::clone(&f.state.store),
                Arc::new(At),
            )
            .unwrap()
        });
        let f = Fixture { state, ..f };
        let wrong = (f.alice.0.clone(), "x".repeat(40));
        let whoami = [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")];
        for _ in 0..2 {
            let (_, body) = call(&f, &wrong, "sts", &whoami).await;
            assert!(
                body.contains("<Code>SignatureDoesNotMatch</Code>"),
                "{body}"
            );
        }
        // The key is throttled (oneshot requests carry no address): even its valid
        // signature is refused now, and another key is not.
        let (status, body) = call(&f, &f.alice, "sts", &whoami).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("<Code>Throttling</Code>"), "{body}");
        assert!(body.contains("<Message>Rate exceeded</Message>"), "{body}");
        let (status, body) = call(&f, &f.root, "sts", &whoami).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            f.state.metrics.requests("GetCallerIdentity", "Throttling"),
            1
        );
    }

    #[test]
    fn request_ids_are_shaped_like_uuid_v4_and_unique() {
        let ids: Vec<String> = (0..1000).map(|_| request_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 36);
            let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
            assert_eq!(dashes, [8, 13, 18, 23], "{id}");
            assert_eq!(&id[14..15], "4", "{id}");
            assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
            assert!(id.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
        }
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
