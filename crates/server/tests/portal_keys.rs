//! Security keys in the portal through the real router (portal/webauthn.rs): the refusals
//! that need no authenticator — cross-site and token-less POSTs, a registration the
//! user's policies do not allow (authorized as the API's EnableMFADevice), an attestation
//! that does not verify, a credential that is not the user's. The ceremonies themselves,
//! with Chromium's virtual authenticator: tests/interop/test_portal_webauthn.py.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;
#[path = "support/portal_browser.rs"]
mod portal_browser;

use axum::http::StatusCode;
use hygiene::Service;
use portal_browser::{Browser, PASSWORD, user_with_mfa};
const KEY_FAILED: &str = "The security key was not accepted.";

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
    b.site = Some("cross-site");
    b.origin = Some("http://127.0.0.1:8787");
    assert_eq!(
        b.post(&s, "/portal/keys", &begin).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        b.post(&s, "/portal/keys/finish", &finish).await.status,
        StatusCode::FORBIDDEN
    );
    b.site = Some("same-origin");
    b.origin = Some("http://localhost:8787");
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
    pending.password(&s, "alice", PASSWORD).await;
    let csrf = pending.get(&s, "/signin/key").await.csrf();
    pending.site = Some("cross-site");
    pending.origin = Some("http://127.0.0.1:8787");
    let form = [("credential_id", "AAAA"), ("csrf", csrf.as_str())];
    assert_eq!(
        pending.post(&s, "/signin/key", &form).await.status,
        StatusCode::FORBIDDEN
    );
    pending.site = Some("same-origin");
    pending.origin = Some("http://localhost:8787");
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
    b.password(&s, "bob", PASSWORD).await;
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
