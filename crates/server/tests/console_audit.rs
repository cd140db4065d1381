//! The portal's sign-in steps as CloudTrail console sign-in events (portal.md §4.3,
//! docs/audit.md "Console sign-in"), through the real router: `CheckMfa` after a right
//! password, `ConsoleLogin` Success / Failure with the reason, AWS's hidden name for an
//! unknown user, found by LookupEvents (Username, EventName, EventSource) — and no
//! password or code in any event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hygiene::{Service, element, encode};
use serde_json::{Value, json};
use tokengate_server::state::Clock;
use tokengate_token::sigv4::{HttpRequest, SigningCredentials, sign_request};
use tokengate_verifier::totp::{Generator, TotpParams};
use tower::ServiceExt;

const PASSWORD: &str = "Corr3ct-horse-battery";
const WRONG_PASSWORD: &str = "Wr0ng-horse-battery";
const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

/// A browser's cookie jar, enough for the sign-in pages.
#[derive(Default)]
struct Browser {
    cookies: HashMap<String, String>,
}

impl Browser {
    async fn send(
        &mut self,
        s: &Service,
        method: &str,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost:8787")
            .header(header::USER_AGENT, "Mozilla/5.0 (X11) test \"browser\"");
        if method == "POST" {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, "http://localhost:8787")
                .header("sec-fetch-site", "same-origin");
        }
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header(header::COOKIE, cookie);
        }
        let response = tokengate_server::router(s.state.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        for c in response.headers().get_all(header::SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (k, v) = c.split(';').next().unwrap().split_once('=').unwrap();
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    async fn csrf(&mut self, s: &Service, path: &str) -> String {
        let (_, body) = self.send(s, "GET", path, &[]).await;
        let marker = "name=\"csrf\" value=\"";
        let start = body.find(marker).expect("a form token") + marker.len();
        let end = body[start..].find('"').unwrap() + start;
        body[start..end].to_owned()
    }

    async fn password(&mut self, s: &Service, user: &str, password: &str) -> StatusCode {
        let csrf = self.csrf(s, "/signin").await;
        let form = [
            ("account", "000000000000"),
            ("user_name", user),
            ("password", password),
            ("csrf", &csrf),
        ];
        self.send(s, "POST", "/signin", &form).await.0
    }

    async fn code(&mut self, s: &Service, serial: &str, code: &str) -> StatusCode {
        let csrf = self.csrf(s, "/signin/mfa").await;
        let form = [("serial", serial), ("code", code), ("csrf", &csrf)];
        self.send(s, "POST", "/signin/mfa", &form).await.0
    }
}

/// alice, with a password and an enabled virtual MFA device: its serial and generator.
async fn alice(s: &Service) -> (String, Generator) {
    s.user("alice").await;
    let profile = [
        ("Action", "CreateLoginProfile"),
        ("UserName", "alice"),
        ("Password", PASSWORD),
    ];
    s.ok(&s.root, &profile).await;
    let body = s
        .ok(
            &s.root,
            &[
                ("Action", "CreateVirtualMFADevice"),
                ("VirtualMFADeviceName", "alice-phone"),
            ],
        )
        .await;
    let serial = element(&body, "SerialNumber").unwrap();
    let base32 = data_encoding::BASE64
        .decode(element(&body, "Base32StringSeed").unwrap().as_bytes())
        .unwrap();
    let text = String::from_utf8(base32).unwrap();
    let seed = data_encoding::BASE32_NOPAD
        .decode(text.trim_end_matches('=').as_bytes())
        .unwrap();
    let generator = Generator::new(&seed, TotpParams::AWS);
    let step = step(s);
    let enable = [
        ("Action", "EnableMFADevice"),
        ("UserName", "alice"),
        ("SerialNumber", serial.as_str()),
        ("AuthenticationCode1", &generator.code(step - 1)),
        ("AuthenticationCode2", &generator.code(step)),
    ];
    s.ok(&s.root, &enable).await;
    s.advance(30);
    (serial, generator)
}

fn step(s: &Service) -> u64 {
    u64::try_from(s.now()).unwrap() / 30
}

/// LookupEvents with `request`, signed by root; every page's events.
async fn lookup(s: &Service, mut request: Value) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let body = request.to_string();
        let headers = [
            ("host", "localhost"),
            ("x-amz-target", TARGET),
            ("content-type", "application/x-amz-json-1.1"),
        ];
        let req = HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let signing = SigningCredentials {
            access_key_id: &s.root.0,
            secret_access_key: &s.root.1,
            session_token: None,
        };
        let signed = sign_request(&req, &signing, "us-east-1", "cloudtrail", s.clock.now());
        let mut builder = Request::post("/");
        for (name, value) in headers.iter().copied() {
            builder = builder.header(name, value);
        }
        for (name, value) in signed {
            builder = builder.header(name, value);
        }
        let response = tokengate_server::router(Arc::clone(&s.state))
            .oneshot(builder.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        events.extend(page["Events"].as_array().unwrap().iter().cloned());
        match page.get("NextToken") {
            Some(token) => request["NextToken"] = token.clone(),
            None => return events,
        }
    }
}

fn by(key: &str, value: &str) -> Value {
    json!({"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]})
}

fn record(event: &Value) -> Value {
    serde_json::from_str(event["CloudTrailEvent"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn sign_in_steps_are_console_events_with_their_reasons() {
    let s = Service::new();
    let (serial, g) = alice(&s).await;

    // 1. A wrong password; 2. a name that is no user.
    let mut b = Browser::default();
    assert_eq!(
        b.password(&s, "alice", WRONG_PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        b.password(&s, "mallory", WRONG_PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );
    // 3. The right password (CheckMfa), 4. a wrong code, 5. the right one.
    assert_eq!(
        b.password(&s, "alice", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    let code = g.code(step(&s));
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_eq!(b.code(&s, &serial, &wrong).await, StatusCode::UNAUTHORIZED);
    assert_eq!(b.code(&s, &serial, &code).await, StatusCode::SEE_OTHER);
    // 6. The same code from another browser: a replay.
    let mut other = Browser::default();
    assert_eq!(
        other.password(&s, "alice", PASSWORD).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        other.code(&s, &serial, &code).await,
        StatusCode::UNAUTHORIZED
    );

    // alice's console events, newest first.
    let events = lookup(&s, by("Username", "alice")).await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["EventName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ConsoleLogin",
            "CheckMfa",
            "ConsoleLogin",
            "ConsoleLogin",
            "CheckMfa",
            "ConsoleLogin"
        ]
    );
    for e in &events {
        assert_eq!(e["EventSource"], "signin.amazonaws.com");
        assert_eq!(e["Username"], "alice");
        assert_eq!(e["ReadOnly"], "false");
        let r = record(e);
        assert_eq!(r["eventType"], "AwsConsoleSignIn");
        assert_eq!(r["eventSource"], "signin.amazonaws.com");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["requestParameters"], Value::Null);
        assert_eq!(r["userAgent"], "Mozilla/5.0 (X11) test \"browser\"");
        assert_eq!(r["recipientAccountId"], "000000000000");
        assert_eq!(r["userIdentity"]["type"], "IAMUser");
        assert_eq!(r["userIdentity"]["userName"], "alice");
        assert!(
            r["userIdentity"]["principalId"]
                .as_str()
                .unwrap()
                .starts_with("AIDA")
        );
    }
    let [
        replayed,
        check2,
        success,
        wrong_code,
        check1,
        wrong_password,
    ] = events
        .iter()
        .map(record)
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();

    // The wrong password: AWS's failure shape (no ARN, an empty access key id).
    assert_eq!(wrong_password["errorMessage"], "Failed authentication");
    assert_eq!(
        wrong_password["responseElements"],
        json!({"ConsoleLogin": "Failure"})
    );
    assert_eq!(
        wrong_password["additionalEventData"],
        json!({"MobileVersion": "No", "MFAUsed": "No", "FailureReason": "password_invalid"})
    );
    assert!(wrong_password["userIdentity"].get("arn").is_none());
    assert_eq!(wrong_password["userIdentity"]["accessKeyId"], "");

    for check in [&check1, &check2] {
        assert_eq!(check["responseElements"], json!({"CheckMfa": "Success"}));
        assert_eq!(
            check["additionalEventData"],
            json!({"MfaType": "Virtual MFA"})
        );
        assert!(check.get("errorMessage").is_none());
    }

    assert_eq!(wrong_code["errorMessage"], "Failed authentication");
    assert_eq!(
        wrong_code["additionalEventData"],
        json!({"MobileVersion": "No", "MFAIdentifier": serial, "MFAUsed": "Yes",
               "MfaMethod": "totp", "FailureReason": "mfa_code_invalid"})
    );
    assert_eq!(
        replayed["additionalEventData"]["FailureReason"],
        "mfa_code_replayed"
    );
    assert_eq!(
        replayed["responseElements"],
        json!({"ConsoleLogin": "Failure"})
    );

    // Success: the ARN, no access key id, MFA used with the device.
    assert_eq!(
        success["responseElements"],
        json!({"ConsoleLogin": "Success"})
    );
    assert!(success.get("errorMessage").is_none());
    assert_eq!(
        success["additionalEventData"],
        json!({"MobileVersion": "No", "MFAIdentifier": serial, "MFAUsed": "Yes",
               "MfaMethod": "totp"})
    );
    assert_eq!(
        success["userIdentity"]["arn"],
        "arn:aws:iam::000000000000:user/alice"
    );
    assert!(success["userIdentity"].get("accessKeyId").is_none());

    // The unknown name is hidden, as AWS hides it, with AWS's text.
    let hidden = lookup(&s, by("Username", "HIDDEN_DUE_TO_SECURITY_REASONS")).await;
    assert_eq!(hidden.len(), 1);
    let mallory = record(&hidden[0]);
    assert_eq!(
        mallory["errorMessage"],
        "No username found in supplied account"
    );
    assert_eq!(
        mallory["additionalEventData"]["FailureReason"],
        "user_unknown"
    );
    assert!(mallory["userIdentity"].get("principalId").is_none());
    assert!(lookup(&s, by("Username", "mallory")).await.is_empty());

    // By event name and by source: the same seven ConsoleLogin / CheckMfa events.
    let logins = lookup(&s, by("EventName", "ConsoleLogin")).await;
    assert_eq!(logins.len(), 5);
    let signin = lookup(&s, by("EventSource", "signin.amazonaws.com")).await;
    assert_eq!(signin.len(), 7);

    // No password and no code in any event (the API events of the set-up included).
    let everything = lookup(&s, json!({})).await;
    assert!(everything.len() > 7);
    for e in &everything {
        let text = e.to_string();
        for secret in [PASSWORD, WRONG_PASSWORD, code.as_str(), wrong.as_str()] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
