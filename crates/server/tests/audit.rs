//! The audit trail through the real router: CloudTrail-format events for successes and
//! refusals (a wrong MFA code among them), LookupEvents over JSON 1.1 with filters and
//! NextToken, its authorization by policy, and a scan of every event for secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;

use std::sync::Arc;

use axum::http::StatusCode;
use hygiene::{Service, element, encode};
use serde_json::{Value, json};
use tokengate_server::state::Clock;
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};
use tokengate_verifier::totp::{Generator, TotpParams};
use tower::ServiceExt;

const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

/// A signed POST to `service` with `body` and extra headers.
async fn post(
    s: &Service,
    creds: &(String, String),
    service: &str,
    headers: &[(&str, &str)],
    body: String,
) -> (StatusCode, String) {
    let mut all = vec![("host", "localhost")];
    all.extend_from_slice(headers);
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &all,
        body: body.as_bytes(),
    };
    let signing = SigningCredentials {
        access_key_id: &creds.0,
        secret_access_key: &creds.1,
        session_token: None,
    };
    let signed = sign_request(&req, &signing, "us-east-1", service, s.clock.now());
    let mut builder = axum::http::Request::post("/");
    for (name, value) in &all {
        builder = builder.header(*name, *value);
    }
    for (name, value) in signed {
        builder = builder.header(name, value);
    }
    let response = tokengate_server::router(Arc::clone(&s.state))
        .oneshot(builder.body(axum::body::Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

async fn sts(
    s: &Service,
    creds: &(String, String),
    params: &[(&str, &str)],
) -> (StatusCode, String) {
    let body = params
        .iter()
        .chain([("Version", "2011-06-15")].iter())
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    post(s, creds, "sts", &[], body).await
}

async fn lookup(s: &Service, creds: &(String, String), request: Value) -> (StatusCode, Value) {
    let headers = [
        ("x-amz-target", TARGET),
        ("content-type", "application/x-amz-json-1.1"),
    ];
    let (status, body) = post(s, creds, "cloudtrail", &headers, request.to_string()).await;
    (status, serde_json::from_str(&body).unwrap())
}

/// Every event, following NextToken.
async fn all_events(s: &Service, creds: &(String, String)) -> Vec<Value> {
    let mut events = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = json!({"MaxResults": 50});
        if let Some(t) = &token {
            request["NextToken"] = json!(t);
        }
        let (status, page) = lookup(s, creds, request).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        events.extend(page["Events"].as_array().unwrap().iter().cloned());
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_owned()),
            None => return events,
        }
    }
}

fn record(event: &Value) -> Value {
    serde_json::from_str(event["CloudTrailEvent"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn logins_refusals_and_lookups_are_audited_without_secrets() {
    let s = Service::new();
    let alice = s.user("alice").await;
    // A virtual MFA device for alice, enabled with two consecutive codes.
    let created = s
        .ok(
            &s.root,
            &[
                ("Action", "CreateVirtualMFADevice"),
                ("VirtualMFADeviceName", "alice"),
            ],
        )
        .await;
    let seed_b32 = element(&created, "Base32StringSeed").unwrap();
    let serial = element(&created, "SerialNumber").unwrap();
    // The blob is base64 on the wire (a blob member), holding the base32 text.
    let b32 = data_encoding::BASE64.decode(seed_b32.as_bytes()).unwrap();
    let b32 = String::from_utf8(b32).unwrap();
    let seed = data_encoding::BASE32_NOPAD
        .decode(b32.trim_end_matches('=').as_bytes())
        .unwrap();
    let totp = Generator::new(&seed, TotpParams::AWS);
    let step = TotpParams::AWS.step_at(s.now());
    let (c1, c2) = (totp.code(step - 1), totp.code(step));
    s.ok(
        &s.root,
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", "alice"),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &c1),
            ("AuthenticationCode2", &c2),
        ],
    )
    .await;
    // A wrong code is refused, then the right one (next step) works.
    s.advance(30);
    let right = totp.code(step + 1);
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, body) = sts(
        &s,
        &alice,
        &[
            ("Action", "GetSessionToken"),
            ("SerialNumber", &serial),
            ("TokenCode", wrong),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = sts(
        &s,
        &alice,
        &[
            ("Action", "GetSessionToken"),
            ("SerialNumber", &serial),
            ("TokenCode", &right),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session_token = element(&body, "SessionToken").unwrap();
    let session_secret = element(&body, "SecretAccessKey").unwrap();
    // Secrets of other kinds: a new access key's secret, a console password.
    let key = s
        .ok(
            &s.root,
            &[("Action", "CreateAccessKey"), ("UserName", "alice")],
        )
        .await;
    let key_secret = element(&key, "SecretAccessKey").unwrap();
    let password = "Corr3ct-Horse-Battery";
    s.ok(
        &s.root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "alice"),
            ("Password", password),
        ],
    )
    .await;
    // A request with a bad signature: recorded as an unknown identity.
    let forged = (alice.0.clone(), "not-the-secret".to_owned());
    let (status, _) = sts(&s, &forged, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Alice's events, newest first: her login, then her refused attempt.
    let by_alice = json!({"LookupAttributes":
        [{"AttributeKey": "Username", "AttributeValue": "alice"}]});
    let (status, page) = lookup(&s, &s.root, by_alice.clone()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let events = page["Events"].as_array().unwrap();
    let names: Vec<_> = events
        .iter()
        .map(|e| e["EventName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["GetSessionToken", "GetSessionToken"], "{page}");
    let login = record(&events[0]);
    assert_eq!(events[0]["Username"], "alice");
    assert_eq!(events[0]["ReadOnly"], "true");
    assert_eq!(events[0]["EventSource"], "sts.amazonaws.com");
    assert_eq!(events[0]["AccessKeyId"], json!(alice.0));
    assert!(events[0]["EventTime"].is_i64());
    let identity = &login["userIdentity"];
    assert_eq!(identity["type"], "IAMUser");
    assert_eq!(identity["userName"], "alice");
    assert_eq!(identity["arn"], "arn:aws:iam::000000000000:user/alice");
    assert_eq!(identity["accessKeyId"], json!(alice.0));
    let attributes = &identity["sessionContext"]["attributes"];
    assert_eq!(attributes["mfaAuthenticated"], "true", "{login}");
    assert_eq!(attributes["mfaMethod"], "totp", "{login}");
    assert_eq!(login["eventType"], "AwsApiCall");
    assert_eq!(login["eventVersion"], "1.08");
    assert_eq!(login["recipientAccountId"], "000000000000");
    assert_eq!(login["requestParameters"]["serialNumber"], json!(serial));
    assert!(login["requestParameters"].get("tokenCode").is_none());
    let credentials = &login["responseElements"]["credentials"];
    assert!(
        credentials["accessKeyId"]
            .as_str()
            .unwrap()
            .starts_with("ASIA")
    );
    assert!(
        credentials.get("sessionToken").is_none() && credentials.get("secretAccessKey").is_none()
    );
    let refused = record(&events[1]);
    assert_eq!(refused["errorCode"], "AccessDenied", "{refused}");
    assert!(
        refused["errorMessage"].as_str().unwrap().contains("MFA"),
        "{refused}"
    );
    assert_eq!(
        refused["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"],
        "false"
    );
    assert_eq!(refused["responseElements"], Value::Null);

    // Pages of one, with NextToken; a token is only good with its own filter.
    let mut request = by_alice.clone();
    request["MaxResults"] = json!(1);
    let (_, first) = lookup(&s, &s.root, request.clone()).await;
    assert_eq!(first["Events"].as_array().unwrap().len(), 1);
    let token = first["NextToken"].as_str().unwrap().to_owned();
    request["NextToken"] = json!(token);
    let (_, second) = lookup(&s, &s.root, request).await;
    assert_eq!(second["Events"][0]["EventId"], events[1]["EventId"]);
    assert!(second.get("NextToken").is_none(), "{second}");
    let (status, err) = lookup(&s, &s.root, json!({"NextToken": token, "MaxResults": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(err["__type"], "InvalidNextTokenException");
    let (status, err) = lookup(&s, &s.root, json!({"MaxResults": 60})).await;
    assert_eq!(
        (status, &err["__type"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("InvalidMaxResultsException")
        )
    );

    // Other attributes.
    let (_, errors) = lookup(
        &s,
        &s.root,
        json!({"LookupAttributes": [{"AttributeKey": "EventName",
                                      "AttributeValue": "CreateLoginProfile"}]}),
    )
    .await;
    let profile = record(&errors["Events"][0]);
    assert_eq!(profile["requestParameters"], json!({"userName": "alice"}));
    assert_eq!(
        errors["Events"][0]["Resources"][0]["ResourceType"],
        "AWS::IAM::User"
    );
    let (_, unknown) = lookup(
        &s,
        &s.root,
        json!({"LookupAttributes": [{"AttributeKey": "AccessKeyId", "AttributeValue": alice.0}]}),
    )
    .await;
    let forged_event = unknown["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(record)
        .find(|e| e["eventName"] == "GetCallerIdentity")
        .expect("the forged request is recorded");
    assert_eq!(forged_event["userIdentity"]["type"], "Unknown");
    assert_eq!(forged_event["errorCode"], "SignatureDoesNotMatch");

    // Alice may not read the trail until a policy lets her.
    let (status, err) = lookup(&s, &alice, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(err["__type"], "AccessDenied");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("cloudtrail:LookupEvents"),
        "{err}"
    );

    // No event holds a secret that passed through the service.
    let events = all_events(&s, &s.root).await;
    assert!(events.len() >= 10, "{}", events.len());
    // The records themselves (CloudTrailEvent decoded), and the lookup answers as sent.
    let records: Vec<Value> = events.iter().map(record).collect();
    let text = serde_json::to_string(&records).unwrap() + &serde_json::to_string(&events).unwrap();
    // A six-digit code is looked for as a JSON string value (digits alone occur in ids).
    for code in [wrong, right.as_str(), c1.as_str(), c2.as_str()] {
        assert!(
            !text.contains(&format!("\"{code}\"")),
            "an event holds code {code}"
        );
    }
    for secret in [
        seed_b32.as_str(),
        b32.as_str(),
        &session_token,
        &session_secret,
        &key_secret,
        &alice.1,
        &s.root.1,
        password,
    ] {
        assert!(!text.contains(secret), "an event holds {secret}");
    }
    for name in [
        "tokenCode",
        "authenticationCode1",
        "password",
        "secretAccessKey",
        "sessionToken",
    ] {
        assert!(
            !text.contains(&format!("\"{name}\"")),
            "an event has a {name} member"
        );
    }
    assert!(!text.contains("QRCodePNG") && !text.contains("qRCodePNG"));
}

#[tokio::test]
async fn auditing_off_records_nothing() {
    let s = Service::new();
    let config = tokengate_server::config::Config {
        data_dir: s.dir.path().to_owned(),
        audit: tokengate_server::config::AuditConfig {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let state =
        tokengate_server::state::open_with_store(config, s.state.store.clone(), s.clock.clone())
            .unwrap();
    assert!(!state.audit.enabled());
    let before = s
        .state
        .store
        .audit_events(&tokengate_store::AuditQuery {
            limit: 50,
            ..Default::default()
        })
        .unwrap()
        .events
        .len();
    let off = Service {
        state: Arc::new(state),
        ..s
    };
    let (status, _) = sts(&off, &off.root, &[("Action", "GetCallerIdentity")]).await;
    assert_eq!(status, StatusCode::OK);
    off.state.audit.flush().await;
    let after = off
        .state
        .store
        .audit_events(&tokengate_store::AuditQuery {
            limit: 50,
            ..Default::default()
        })
        .unwrap()
        .events
        .len();
    assert_eq!(before, after);
}
