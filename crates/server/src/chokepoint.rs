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
use crate::authz::RequestFacts;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;
use crate::{assume, auth};
use crate::{authz, registry, xml};

/// AWS's answer to an action it does not know in this version.
pub fn invalid_action(action: &str, version: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidAction",
        format!("Could not find operation {action} for version {version}"),
    )
}

/// The catch-all route: one query-API request in, one XML answer out.
///
/// It takes the request whole and moves its parts out: the `HeaderMap`, `Method` and `Uri`
/// extractors would each copy them (issue 15). The body is read by the `Bytes` extractor as
/// before, so the body limit and its rejection are unchanged.
pub(crate) async fn query_api(State(state): State<Arc<AppState>>, request: Request) -> Response {
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
    let outcome = handle(&state, &method, &uri, &headers, body, facts, &mut api).await;
    let service = api.service();
    match outcome {
        Ok((spec, result)) => {
            tracing::debug!(%request_id, service, action = spec.name, "ok");
            success_response(api, spec.name, &request_id, result)
        }
        Err(e) => {
            let status = e.status.as_u16();
            tracing::info!(%request_id, service, code = e.code, status, "refused");
            error_response(api, &request_id, &e)
        }
    }
}

/// Authenticate → look up the action → build its resource → authorize → run the handler →
/// audit hook. `api` is kept up to date for the answer's namespace, error or not.
async fn handle(
    state: &Arc<AppState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    facts: RequestFacts,
    api: &mut Api,
) -> Result<(&'static ActionSpec, Option<String>), ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "RequestEntityTooLarge",
            format!("The request body was refused: {e}"),
        )
    })?;
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
    let mut pairs = decode_form(query.as_bytes()).map_err(malformed)?;
    if method == Method::POST {
        pairs.extend(decode_form(&body).map_err(malformed)?);
    }
    let params = Params::new(pairs);
    *api = params
        .get("Action")
        .and_then(registry::api_of)
        .unwrap_or(Api::Sts);

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
    let (mut caller, scope_service) = auth::authenticate(state, &request).await?;
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

    // Look the action up.
    let action = params.get("Action").unwrap_or("");
    if action.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "Missing Action",
        ));
    }
    let version = params.get("Version");
    let spec = registry::lookup(*api, action)
        .filter(|_| version == Some(api.version()))
        .ok_or_else(|| invalid_action(action, version.unwrap_or("")))?;
    // Usage (last used, access advisor) counts every authenticated attempt; batched.
    state
        .usage
        .note(&caller, spec, state.clock.now().unix_timestamp());

    // AssumeRole's second factor is verified before authorization, exactly as
    // GetSessionToken verifies it: the trust policy decides on `aws:MultiFactorAuthPresent`
    // (policy.md §5.1). Its parameters are validated first, so a bad request spends no code.
    if spec.iam_action() == assume::ASSUME_ROLE {
        let request = assume::AssumeRoleRequest::parse(&params)?;
        request.session_attributes(&caller)?;
        let touch = if spec.name == assume::ASSUME_ROLE_WITH_SECURITY_KEY {
            Some(assume::read_touch(&params, &caller)?)
        } else {
            None
        };
        caller.request_mfa =
            assume::second_factor(state, &caller, &request, touch.as_ref()).await?;
    }

    // Authorize.
    let resource = spec.resource.build(&ResourceInput {
        state,
        caller: &caller,
        params: &params,
    })?;
    if let Err(denied) = authz::authorize(state, &caller, spec, &resource, &params, facts) {
        audit_hook(
            spec,
            &caller.principal,
            &resource,
            Decision::Deny,
            Err(&denied),
        );
        return Err(denied);
    }

    // Run the handler; the audit hook hears how it went. The principal is kept for it only
    // while the hook has a listener (today a `debug` event): no copy per request otherwise.
    let principal = audit_enabled().then(|| caller.principal.clone());
    let call = Call {
        state: Arc::clone(state),
        caller,
        params,
        action: spec,
    };
    let result = (spec.handler)(call).await;
    if let Some(principal) = &principal {
        let outcome = result.as_ref().map(|_| ());
        audit_hook(spec, principal, &resource, Decision::Allow, outcome);
    }
    Ok((spec, result?))
}

/// An authorization decision, as the audit hook records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Allow,
    Deny,
}

/// Whether [`audit_hook`] has a listener. When the audit trail plugs into the hook, this
/// says `true` for it.
fn audit_enabled() -> bool {
    tracing::enabled!(target: "audit", tracing::Level::DEBUG)
}

/// **The audit hook**: every authorized or refused action passes here once, with who asked,
/// what, on which resource, the decision and the outcome. Today it is a `debug` event on the
/// `audit` target; the audit trail (store) plugs in here.
fn audit_hook(
    spec: &ActionSpec,
    principal: &Principal,
    resource: &str,
    decision: Decision,
    outcome: Result<(), &ApiError>,
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
}

/// A `RequestId`: shaped like a UUID (version 4 bits set), unique rather than secret
/// (issue 15): 62 bits drawn from the OS once per process, then a process-wide counter — no
/// system call per request. Two processes collide only if their random prefixes do.
fn request_id() -> String {
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
