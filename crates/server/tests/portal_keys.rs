//! Security keys in the portal through the real router (portal/webauthn.rs): the refusals
//! that need no authenticator — cross-site and token-less POSTs, a registration the
//! user's policies do not allow (authorized as the API's EnableMFADevice), an attestation
//! that does not verify, a credential that is not the user's. The ceremonies themselves,
//! with Chromium's virtual authenticator: tests/interop/test_portal_webauthn.py.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hygiene::{Service, element, encode};
use tokengate_verifier::totp::{Generator, TotpParams};
use tower::ServiceExt;

const PASSWORD: &str = "Corr3ct-horse-battery";
const KEY_FAILED: &str = "The security key was not accepted.";

/// A cookie jar and the headers a same-origin browser form sends.
struct Browser {
    cookies: HashMap<String, String>,
    origin: &'static str,
    site: &'static str,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Page {
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a form token") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }
}

impl Browser {
    fn new() -> Self {
        Self {
            cookies: HashMap::new(),
            origin: "http://localhost:8787",
            site: "same-origin",
        }
    }

    async fn send(&mut self, s: &Service, method: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "localhost:8787");
        if method == "POST" {
            req = req
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ORIGIN, self.origin)
                .header("sec-fetch-site", self.site);
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
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Page {
            status,
            location,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&mut self, s: &Service, path: &str) -> Page {
        self.send(s, "GET", path, &[]).await
    }

    async fn post(&mut self, s: &Service, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(s, "POST", path, form).await
    }

    /// The password step; the browser then waits at the second factor.
    async fn password(&mut self, s: &Service, user: &str) -> Page {
        let csrf = self.get(s, "/signin").await.csrf();
        let page = self
            .post(
                s,
                "/signin",
                &[
                    ("account", "000000000000"),
                    ("user_name", user),
                    ("password", PASSWORD),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page
    }

    /// Password and code: signed in.
    async fn sign_in(&mut self, s: &Service, user: &str, serial: &str, g: &Generator) {
        self.password(s, user).await;
        let csrf = self.get(s, "/signin/mfa").await.csrf();
        let code = g.code(u64::try_from(s.now()).unwrap() / 30);
        let page = self
            .post(
                s,
                "/signin/mfa",
                &[("serial", serial), ("code", &code), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(page.location.as_deref(), Some("/portal"), "{}", page.body);
    }
}

/// A user with a password and an enabled virtual MFA device; its serial and generator.
async fn user_with_mfa(s: &Service, name: &str) -> (String, Generator) {
    s.user(name).await;
    s.ok(
        &s.root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", name),
            ("Password", PASSWORD),
        ],
    )
    .await;
    let body = s
        .ok(
            &s.root,
            &[
                ("Action", "CreateVirtualMFADevice"),
                ("VirtualMFADeviceName", &format!("{name}-phone")),
            ],
        )
        .await;
    let serial = element(&body, "SerialNumber").unwrap();
    let base32 = data_encoding::BASE64
        .decode(element(&body, "Base32StringSeed").unwrap().as_bytes())
        .unwrap();
    let seed = data_encoding::BASE32_NOPAD
        .decode(
            std::str::from_utf8(&base32)
                .unwrap()
                .trim_end_matches('=')
                .as_bytes(),
        )
        .unwrap();
    let generator = Generator::new(&seed, TotpParams::AWS);
    let step = u64::try_from(s.now()).unwrap() / 30;
    s.ok(
        &s.root,
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", name),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &generator.code(step - 1)),
            ("AuthenticationCode2", &generator.code(step)),
        ],
    )
    .await;
    s.advance(30);
    (serial, generator)
}

/// AWS's "manage your own MFA" statement, for `name`.
async fn may_manage_own_mfa(s: &Service, name: &str) {
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "iam:EnableMFADevice",
            "Resource": "arn:aws:iam::*:user/${aws:username}",
        }],
    })
    .to_string();
    s.ok(
        &s.root,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", name),
            ("PolicyName", "own-mfa"),
            ("PolicyDocument", &policy),
        ],
    )
    .await;
}

#[tokio::test]
async fn key_pages_refuse_cross_site_and_tokenless_posts() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    may_manage_own_mfa(&s, "alice").await;
    let mut b = Browser::new();
    b.sign_in(&s, "alice", &serial, &g).await;
    let csrf = b.get(&s, "/portal/keys").await.csrf();
    let begin = [("device_name", "yubikey"), ("csrf", csrf.as_str())];
    let finish = [("challenge_id", "00"), ("csrf", csrf.as_str())];
    b.site = "cross-site";
    b.origin = "http://127.0.0.1:8787";
    assert_eq!(
        b.post(&s, "/portal/keys", &begin).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        b.post(&s, "/portal/keys/finish", &finish).await.status,
        StatusCode::FORBIDDEN
    );
    b.site = "same-origin";
    b.origin = "http://localhost:8787";
    for path in ["/portal/keys", "/portal/keys/finish"] {
        let page = b.post(&s, path, &[("device_name", "yubikey")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
    }
    // The same form from this origin works.
    assert_eq!(
        b.post(&s, "/portal/keys", &begin).await.status,
        StatusCode::OK
    );

    // The key sign-in step, too.
    let mut pending = Browser::new();
    pending.password(&s, "alice").await;
    let csrf = pending.get(&s, "/signin/key").await.csrf();
    pending.site = "cross-site";
    pending.origin = "http://127.0.0.1:8787";
    let form = [("credential_id", "AAAA"), ("csrf", csrf.as_str())];
    assert_eq!(
        pending.post(&s, "/signin/key", &form).await.status,
        StatusCode::FORBIDDEN
    );
    pending.site = "same-origin";
    pending.origin = "http://localhost:8787";
    let page = pending
        .post(&s, "/signin/key", &[("credential_id", "AAAA")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn registering_a_key_is_authorized_and_verified_as_the_api_call() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    let mut b = Browser::new();
    b.sign_in(&s, "alice", &serial, &g).await;
    let page = b.get(&s, "/portal/keys").await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page.csrf();
    // No policy allows iam:EnableMFADevice: refused by the chokepoint, as the API refuses.
    let page = b
        .post(
            &s,
            "/portal/keys",
            &[("device_name", "yubikey"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("You may not register a security key"));
    assert!(!page.body.contains("data-challenge"));

    may_manage_own_mfa(&s, "alice").await;
    // A name the API refuses gets the API's message.
    let page = b
        .post(
            &s,
            "/portal/keys",
            &[("device_name", "no spaces"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("deviceName"), "{}", page.body);
    // Allowed: the ceremony page, with the API's relying party and the default `direct`.
    let page = b
        .post(
            &s,
            "/portal/keys",
            &[("device_name", "yubikey"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("data-ceremony=\"create\""));
    assert!(page.body.contains("data-rp-id=\"tokengate.localhost\""));
    assert!(
        page.body
            .contains("data-origin=\"http://tokengate.localhost:8787\"")
    );
    assert!(page.body.contains("data-attestation=\"direct\""));
    assert!(
        page.body
            .contains("<script src=\"/portal/webauthn.js\"></script>")
    );
    let marker = "name=\"challenge_id\" value=\"";
    let start = page.body.find(marker).unwrap() + marker.len();
    let challenge_id = &page.body[start..start + 32];
    // An attestation that does not verify is refused with the API's verdict; no key.
    let page = b
        .post(
            &s,
            "/portal/keys/finish",
            &[
                ("challenge_id", challenge_id),
                ("client_data_json", "e30="),
                ("attestation_object", "oA=="),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("was not registered"), "{}", page.body);
    let listed = s
        .ok(
            &s.root,
            &[("Action", "ListMFADevices"), ("UserName", "alice")],
        )
        .await;
    assert!(!listed.contains("u2f/"), "{listed}");
    // The challenge was spent with the refusal.
    assert!(s.state.store.challenge(challenge_id).unwrap().is_none());
}

#[tokio::test]
async fn a_credential_that_is_not_the_users_is_refused() {
    let s = Service::new();
    let (_, _) = user_with_mfa(&s, "bob").await;
    let mut b = Browser::new();
    b.password(&s, "bob").await;
    // bob has no key: the page says so and offers no ceremony.
    let page = b.get(&s, "/signin/key").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("You have no security key registered"));
    assert!(!page.body.contains("webauthn-form"));
    let csrf = page.csrf();
    let page = b
        .post(
            &s,
            "/signin/key",
            &[
                ("credential_id", "c29tZW9uZSBlbHNlJ3Mga2V5"),
                ("authenticator_data", "AAAA"),
                ("client_data_json", "e30="),
                ("signature", "AAAA"),
                ("challenges", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(KEY_FAILED), "{}", page.body);
    // Still waiting for a second factor.
    assert_eq!(
        b.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );
}
