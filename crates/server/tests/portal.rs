//! Issue 13 through the real router: the sign-in portal's pages, sessions and refusals,
//! with the clock injected (tests/interop/test_portal.py drives the same pages in a real
//! browser).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;
#[path = "support/portal_browser.rs"]
mod portal_browser;

use axum::http::{StatusCode, header};
use hygiene::Service;
use portal_browser::{Browser, PASSWORD, Page, step, user_with_mfa};
use tokengate_token::session::MfaMethod;
use tokengate_verifier::totp::Generator;

const SIGNIN_FAILED: &str = "Your authentication information is incorrect. Please try again.";
const CODE_FAILED: &str = "The MFA code is not valid.";

/// Roles: `dev` trusts alice by name (listed), `admin` trusts the account (needs an
/// identity Allow she does not have: not listed).
async fn roles(s: &Service) {
    let trust = |principal: &str, condition: serde_json::Value| {
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }],
        })
        .to_string()
    };
    let mfa = serde_json::json!({"Bool": {"aws:MultiFactorAuthPresent": "true"}});
    let dev = trust("arn:aws:iam::000000000000:user/alice", mfa);
    let admin = trust("arn:aws:iam::000000000000:root", serde_json::json!({}));
    for (name, trust) in [("dev", &dev), ("admin", &admin)] {
        s.ok(
            &s.root,
            &[
                ("Action", "CreateRole"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", trust),
            ],
        )
        .await;
    }
}

async fn signed_in(s: &Service, b: &mut Browser, serial: &str, g: &Generator) {
    b.sign_in(s, "alice", serial, g).await;
}

#[tokio::test]
async fn sign_in_shows_credentials_and_assumable_roles_only() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    roles(&s).await;
    let mut b = Browser::new();

    let form = b.get(&s, "/signin").await;
    assert_eq!(form.status, StatusCode::OK);
    let csp = form.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!form.body.contains("<script"));
    let pre = &form.set_cookies[0];
    for attribute in [
        "__Host-tg_pre=",
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(pre.contains(attribute), "{pre}");
    }

    let page = b.password(&s, "alice", PASSWORD).await;
    assert_eq!(page.location.as_deref(), Some("/signin/mfa"));
    let pending = b.session().unwrap();
    assert!(!b.cookies.contains_key("__Host-tg_pre"));
    let page = b.code(&s, &serial, &g.code(step(&s))).await;
    assert_eq!(page.location.as_deref(), Some("/portal"));
    let session = b.session().unwrap();
    assert_ne!(pending, session, "the id rotates after the second factor");
    // The pre-MFA id is void.
    let mut stale = Browser::new();
    stale.cookies.insert("__Host-tg_session".into(), pending);
    assert_eq!(
        stale.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );

    let portal = b.get(&s, "/portal").await;
    assert_eq!(portal.status, StatusCode::OK, "{}", portal.body);
    assert_eq!(portal.headers[header::CACHE_CONTROL], "no-store");
    let akid = portal.export("AWS_ACCESS_KEY_ID");
    assert!(akid.starts_with("ASIA"), "{akid}");
    assert!(portal.body.contains("$Env:AWS_SESSION_TOKEN="));
    assert!(portal.body.contains("set AWS_SECRET_ACCESS_KEY="));
    assert!(portal.body.contains("aws_session_token="));
    let token = portal.export("AWS_SESSION_TOKEN");
    let claims = s.state.verifier.verify(&token, &akid, s.now()).unwrap();
    assert_eq!(claims.sub, "arn:aws:iam::000000000000:user/alice");
    assert!(claims.mfa.present);
    assert_eq!(claims.mfa.method, Some(MfaMethod::Totp));
    assert_eq!(claims.mfa.device.as_deref(), Some(serial.as_str()));
    assert!(portal.body.contains("arn:aws:iam::000000000000:role/dev"));
    assert!(!portal.body.contains("arn:aws:iam::000000000000:role/admin"));

    let csrf = portal.csrf();
    let role = b
        .post(
            &s,
            "/portal/role",
            &[
                ("role_arn", "arn:aws:iam::000000000000:role/dev"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(role.status, StatusCode::OK, "{}", role.body);
    assert_eq!(role.headers[header::CACHE_CONTROL], "no-store");
    assert!(
        role.body
            .contains("arn:aws:sts::000000000000:assumed-role/dev/alice")
    );
    let akid = role.export("AWS_ACCESS_KEY_ID");
    let claims = s
        .state
        .verifier
        .verify(&role.export("AWS_SESSION_TOKEN"), &akid, s.now())
        .unwrap();
    assert_eq!(claims.mfa.method, Some(MfaMethod::Totp));
    assert!(claims.chained);

    // A role the page does not list is refused on a direct POST.
    let refused = b
        .post(
            &s,
            "/portal/role",
            &[
                ("role_arn", "arn:aws:iam::000000000000:role/admin"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!refused.body.contains("ASIA"));
    let refused = b
        .post(
            &s,
            "/portal/role",
            &[
                ("role_arn", "arn:aws:iam::000000000000:role/nope"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn wrong_passwords_and_unknown_users_look_alike_and_are_throttled() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    let mut b = Browser::new();
    let wrong = b.password(&s, "alice", "Wr0ng-password").await;
    let unknown = b.password(&s, "mallory", PASSWORD).await;
    let account = {
        let csrf = b.get(&s, "/signin").await.csrf();
        b.post(
            &s,
            "/signin",
            &[
                ("account", "111111111111"),
                ("user_name", "alice"),
                ("password", PASSWORD),
                ("csrf", &csrf),
            ],
        )
        .await
    };
    for page in [&wrong, &unknown, &account] {
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains(SIGNIN_FAILED), "{}", page.body);
        assert!(b.session().is_none());
    }
    // Two failures for alice so far (the account mismatch counts; mallory's are
    // mallory's); three more reach the limit of five.
    for _ in 0..3 {
        b.password(&s, "alice", "Wr0ng-password").await;
    }
    let throttled = b.password(&s, "ALICE", PASSWORD).await;
    assert_eq!(throttled.status, StatusCode::UNAUTHORIZED);
    assert!(throttled.body.contains(SIGNIN_FAILED));
    s.advance(301);
    signed_in(&s, &mut b, &serial, &g).await;
}

#[tokio::test]
async fn wrong_and_replayed_codes_are_refused() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    let mut b = Browser::new();
    b.password(&s, "alice", PASSWORD).await;
    let code = g.code(step(&s));
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let page = b.code(&s, &serial, &wrong).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(CODE_FAILED));
    let page = b.code(&s, &serial, &code).await;
    assert_eq!(page.location.as_deref(), Some("/portal"));

    // Another browser, the same code in the same step: a replay.
    let mut other = Browser::new();
    other.password(&s, "alice", PASSWORD).await;
    let page = other.code(&s, &serial, &code).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains(CODE_FAILED));
    assert_eq!(
        other.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );
}

#[tokio::test]
async fn the_lockout_is_the_devices_own() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    let mut b = Browser::new();
    b.password(&s, "alice", PASSWORD).await;
    let code = g.code(step(&s));
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    for _ in 0..5 {
        b.code(&s, &serial, &wrong).await;
    }
    // The sixth try, with the right code, meets the lockout the API shares.
    let page = b.code(&s, &serial, &code).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let device = s.state.store.mfa_device(&serial).unwrap().unwrap();
    assert!(device.state.locked_at(s.now()).is_some());
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    roles(&s).await;
    let mut b = Browser::new();
    signed_in(&s, &mut b, &serial, &g).await;
    let csrf = b.get(&s, "/portal").await.csrf();
    let dev = [
        ("role_arn", "arn:aws:iam::000000000000:role/dev"),
        ("csrf", csrf.as_str()),
    ];

    // Another origin.
    b.origin = Some("http://127.0.0.1:8787");
    b.site = Some("cross-site");
    let page = b.post(&s, "/portal/role", &dev).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(!page.body.contains("ASIA"));
    // An Origin mismatch alone.
    b.site = None;
    assert_eq!(
        b.post(&s, "/portal/role", &dev).await.status,
        StatusCode::FORBIDDEN
    );
    // Neither header: not a browser form of ours.
    b.origin = None;
    assert_eq!(
        b.post(&s, "/portal/role", &dev).await.status,
        StatusCode::FORBIDDEN
    );
    // Same origin, without the form token or with another.
    b.origin = Some("http://localhost:8787");
    b.site = Some("same-origin");
    let page = b
        .post(
            &s,
            "/portal/role",
            &[("role_arn", "arn:aws:iam::000000000000:role/dev")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = b
        .post(
            &s,
            "/portal/role",
            &[
                ("role_arn", "arn:aws:iam::000000000000:role/dev"),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // A cross-site form carries no Strict cookie: no session, no credentials.
    let mut forged = Browser::new();
    forged.origin = Some("http://localhost:8787");
    let page = forged.post(&s, "/portal/role", &dev).await;
    assert_eq!(page.location.as_deref(), Some("/signin"));
    // The sign-in form needs its pre-session cookie and token too.
    let mut forged = Browser::new();
    let page = forged
        .post(
            &s,
            "/signin",
            &[
                ("account", "000000000000"),
                ("user_name", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // And the session still works for its own pages.
    assert_eq!(
        b.post(&s, "/portal/role", &dev).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_session_is_void_after_sign_out_and_after_its_timeouts() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    let mut b = Browser::new();
    signed_in(&s, &mut b, &serial, &g).await;
    let cookie = b.session().unwrap();
    let csrf = b.get(&s, "/portal").await.csrf();
    let page = b.post(&s, "/signout", &[("csrf", &csrf)]).await;
    assert_eq!(page.location.as_deref(), Some("/signin"));
    assert!(b.session().is_none());
    let mut stale = Browser::new();
    stale.cookies.insert("__Host-tg_session".into(), cookie);
    assert_eq!(
        stale.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );
    let page = stale
        .post(
            &s,
            "/portal/role",
            &[
                ("role_arn", "arn:aws:iam::000000000000:role/dev"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/signin"));

    // Idle: 900 s without a request.
    s.advance(30);
    signed_in(&s, &mut b, &serial, &g).await;
    s.advance(899);
    assert_eq!(b.get(&s, "/portal").await.status, StatusCode::OK);
    s.advance(900);
    assert_eq!(
        b.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );

    // Absolute: 12 h after sign-in, however busy.
    signed_in(&s, &mut b, &serial, &g).await;
    for _ in 0..(43_200 / 800 - 1) {
        s.advance(800);
        assert_eq!(b.get(&s, "/portal").await.status, StatusCode::OK);
    }
    s.advance(800);
    assert_eq!(
        b.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );
}

#[tokio::test]
async fn without_a_device_the_user_is_told_to_enrol_one() {
    let s = Service::new();
    s.user("bob").await;
    s.ok(
        &s.root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "bob"),
            ("Password", PASSWORD),
        ],
    )
    .await;
    let mut b = Browser::new();
    let page = b.password(&s, "bob", PASSWORD).await;
    // A session that may only add a first device (tests/portal_selfservice.rs goes on).
    assert_eq!(page.location.as_deref(), Some("/portal/security"));
    let page = b.get(&s, "/portal/security").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Set up multi-factor authentication"),
        "{}",
        page.body
    );
    assert_eq!(
        b.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );
    let mut b = Browser::new();

    // Expired under HardExpiry: only the administrator can help; no session.
    s.ok(
        &s.root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("MaxPasswordAge", "1"),
            ("HardExpiry", "true"),
            ("AllowUsersToChangePassword", "true"),
        ],
    )
    .await;
    s.advance(2 * 86_400);
    let page = b.password(&s, "bob", PASSWORD).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body.contains("Your password has expired"),
        "{}",
        page.body
    );
    assert!(b.session().is_none());
}

async fn change(s: &Service, b: &mut Browser, csrf: &str, [old, new, confirm]: [&str; 3]) -> Page {
    let form = [
        ("old_password", old),
        ("new_password", new),
        ("confirm_password", confirm),
        ("csrf", csrf),
    ];
    b.post(s, "/signin/password", &form).await
}

#[tokio::test]
async fn a_password_that_must_be_changed_is_changed_before_anything_else() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "alice").await;
    s.ok(
        &s.root,
        &[
            ("Action", "UpdateLoginProfile"),
            ("UserName", "alice"),
            ("PasswordResetRequired", "true"),
        ],
    )
    .await;
    let mut b = Browser::new();
    let page = b.password(&s, "alice", PASSWORD).await;
    assert_eq!(page.location.as_deref(), Some("/signin/password"));
    let pending = b.session().unwrap();
    // Nothing else until it is changed.
    assert_eq!(
        b.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );
    assert_eq!(
        b.get(&s, "/signin/mfa").await.location.as_deref(),
        Some("/signin")
    );
    let form = b.get(&s, "/signin/password").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("At least 8 characters"), "{}", form.body);
    let csrf = form.csrf();
    // No password policy with AllowUsersToChangePassword and no policy allowing
    // iam:ChangePassword: refused, as the API refuses it.
    let page = change(
        &s,
        &mut b,
        &csrf,
        [PASSWORD, "N3w-password!", "N3w-password!"],
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("You may not change your password"));
    s.ok(
        &s.root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("MinimumPasswordLength", "12"),
            ("AllowUsersToChangePassword", "true"),
            ("PasswordReusePrevention", "1"),
        ],
    )
    .await;
    let page = change(&s, &mut b, &csrf, [PASSWORD, "N3w-password!", "other"]).await;
    assert!(page.body.contains("do not match"), "{}", page.body);
    let page = change(&s, &mut b, &csrf, [PASSWORD, "Sh0rt!", "Sh0rt!"]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("minimum length of 12"), "{}", page.body);
    let page = change(&s, &mut b, &csrf, [PASSWORD, PASSWORD, PASSWORD]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "reuse: {}", page.body);
    let page = change(
        &s,
        &mut b,
        &csrf,
        ["Wr0ng-password!", "N3w-password!", "N3w-password!"],
    )
    .await;
    assert!(
        page.body.contains("The old password was incorrect."),
        "{}",
        page.body
    );
    let page = change(
        &s,
        &mut b,
        &csrf,
        [PASSWORD, "N3w-password!", "N3w-password!"],
    )
    .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/signin/mfa"),
        "{}",
        page.body
    );
    assert_ne!(
        b.session().unwrap(),
        pending,
        "the id rotates after the change"
    );
    let page = b.code(&s, &serial, &g.code(step(&s))).await;
    assert_eq!(page.location.as_deref(), Some("/portal"));

    // The old password is gone; the new one signs in without a detour.
    let mut again = Browser::new();
    let page = again.password(&s, "alice", PASSWORD).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let page = again.password(&s, "alice", "N3w-password!").await;
    assert_eq!(page.location.as_deref(), Some("/signin/mfa"));
}

/// The log, as every event wrote it.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// No password, code, session id, form token or credential of a portal sign-in reaches the
/// log (every event, TRACE, captured) or the database files (sessions are stored hashed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_secret_is_logged_or_stored() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let s = Service::on_disk(tempfile::tempdir().unwrap());
    let (serial, g) = user_with_mfa(&s, "alice").await;
    roles(&s).await;
    s.ok(
        &s.root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("AllowUsersToChangePassword", "true"),
        ],
    )
    .await;
    s.ok(
        &s.root,
        &[
            ("Action", "UpdateLoginProfile"),
            ("UserName", "alice"),
            ("PasswordResetRequired", "true"),
        ],
    )
    .await;
    let new_password = "Zq8-portal-NEW-password";
    let mut secrets: Vec<String> = vec![PASSWORD.into(), new_password.into()];
    let mut b = Browser::new();
    b.password(&s, "alice", "Zq8-a-wrong-one").await;
    secrets.push("Zq8-a-wrong-one".into());
    let form = b.get(&s, "/signin").await;
    secrets.push(form.csrf());
    secrets.extend(b.cookies.values().cloned());
    b.password(&s, "alice", PASSWORD).await;
    secrets.extend(b.cookies.values().cloned());
    let csrf = b.get(&s, "/signin/password").await.csrf();
    secrets.push(csrf.clone());
    let page = change(&s, &mut b, &csrf, [PASSWORD, new_password, new_password]).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/signin/mfa"),
        "{}",
        page.body
    );
    secrets.extend(b.cookies.values().cloned());
    let code = g.code(step(&s));
    secrets.push(code.clone());
    assert_eq!(
        b.code(&s, &serial, &code).await.location.as_deref(),
        Some("/portal")
    );
    secrets.extend(b.cookies.values().cloned());
    let portal = b.get(&s, "/portal").await;
    secrets.push(portal.csrf());
    secrets.push(portal.export("AWS_SECRET_ACCESS_KEY"));
    secrets.push(portal.export("AWS_SESSION_TOKEN"));
    let role = b
        .post(
            &s,
            "/portal/role",
            &[
                ("role_arn", "arn:aws:iam::000000000000:role/dev"),
                ("csrf", &portal.csrf()),
            ],
        )
        .await;
    assert_eq!(role.status, StatusCode::OK);
    secrets.push(role.export("AWS_SECRET_ACCESS_KEY"));
    secrets.push(role.export("AWS_SESSION_TOKEN"));
    b.post(&s, "/signout", &[("csrf", &portal.csrf())]).await;

    let log = log.0.lock().unwrap().clone();
    assert!(
        contains(&log, "portal sign-in with MFA"),
        "the audit lines are logged"
    );
    let files = hygiene::files_under(s.dir.path());
    for secret in &secrets {
        assert!(secret.len() >= 6, "{secret:?}");
        assert!(!contains(&log, secret), "the log holds a secret");
        for (path, bytes) in &files {
            assert!(!contains(bytes, secret), "{path} holds a secret");
        }
    }
}
