//! Issue 13, self-service, through the real router with the clock injected: the pages that
//! mirror ListMFADevices, CreateVirtualMFADevice, EnableMFADevice, DeactivateMFADevice and
//! ChangePassword, each governed by policy exactly as the API call (AWS's "manage your own
//! MFA" example policy on a group), each refusal tested; the enrolment a user without a
//! device meets at sign-in; the credential_process snippet and the copy buttons.
//! tests/interop/test_portal_selfservice.py drives the same pages in a real browser.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;
#[path = "support/portal_browser.rs"]
mod portal_browser;

use axum::http::{StatusCode, header};
use hygiene::{Service, element};
use portal_browser::{Browser, PASSWORD, Page, step, user_with_mfa};
use tokengate_verifier::totp::{Generator, TotpParams};

/// AWS IAM User Guide example "Allows MFA-authenticated IAM users to manage their own MFA
/// device" (as tests/interop/test_policies.py has it).
const SELF_MANAGE_MFA: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "AllowViewAccountInfo", "Effect": "Allow",
     "Action": "iam:ListVirtualMFADevices", "Resource": "*"},
    {"Sid": "AllowManageOwnVirtualMFADevice", "Effect": "Allow",
     "Action": ["iam:CreateVirtualMFADevice"], "Resource": "arn:aws:iam::*:mfa/*"},
    {"Sid": "AllowManageOwnUserMFA", "Effect": "Allow",
     "Action": ["iam:DeactivateMFADevice", "iam:EnableMFADevice", "iam:GetUser",
                "iam:GetMFADevice", "iam:ListMFADevices", "iam:ResyncMFADevice"],
     "Resource": "arn:aws:iam::*:user/${aws:username}"},
    {"Sid": "DenyAllExceptListedIfNoMFA", "Effect": "Deny",
     "NotAction": ["iam:CreateVirtualMFADevice", "iam:EnableMFADevice", "iam:GetUser",
                   "iam:GetMFADevice", "iam:ListMFADevices", "iam:ListVirtualMFADevices",
                   "iam:ResyncMFADevice", "sts:GetSessionToken"],
     "Resource": "*",
     "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}}
  ]
}"#;

/// The policy on group `mfa-users`, with `users` in it.
async fn manage_own_mfa(s: &Service, users: &[&str]) {
    let body = s
        .ok(
            &s.root,
            &[
                ("Action", "CreatePolicy"),
                ("PolicyName", "SelfManageMFA"),
                ("PolicyDocument", SELF_MANAGE_MFA),
            ],
        )
        .await;
    let arn = element(&body, "Arn").unwrap();
    s.ok(
        &s.root,
        &[("Action", "CreateGroup"), ("GroupName", "mfa-users")],
    )
    .await;
    s.ok(
        &s.root,
        &[
            ("Action", "AttachGroupPolicy"),
            ("GroupName", "mfa-users"),
            ("PolicyArn", &arn),
        ],
    )
    .await;
    for user in users {
        s.ok(
            &s.root,
            &[
                ("Action", "AddUserToGroup"),
                ("GroupName", "mfa-users"),
                ("UserName", user),
            ],
        )
        .await;
    }
}

async fn user_with_password(s: &Service, name: &str) {
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
}

/// Signs `name` in with password and a code of its device.
async fn signed_in(s: &Service, name: &str, serial: &str, g: &Generator) -> Browser {
    let mut b = Browser::new();
    let page = b.password(s, name, PASSWORD).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/signin/mfa"),
        "{}",
        page.body
    );
    let page = b.code(s, serial, &g.code(step(s))).await;
    assert_eq!(page.location.as_deref(), Some("/portal"), "{}", page.body);
    b
}

/// The text of the element with `id="…"`, up to the next `<`.
fn by_id(page: &Page, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    let start = page.body.find(&marker).expect(id) + marker.len();
    let end = page.body[start..].find('<').unwrap() + start;
    page.body[start..end].to_owned()
}

/// The TOTP generator of the secret an enrol page shows.
fn generator_of(page: &Page) -> Generator {
    let secret = by_id(page, "secret");
    Generator::new(
        &data_encoding::BASE32_NOPAD
            .decode(secret.as_bytes())
            .unwrap(),
        TotpParams::AWS,
    )
}

/// Adds a device named `name` on the security page (CreateVirtualMFADevice).
async fn create(s: &Service, b: &mut Browser, name: &str) -> Page {
    let csrf = b.get(s, "/portal/security").await.csrf();
    b.post(
        s,
        "/portal/mfa/create",
        &[("device_name", name), ("csrf", &csrf)],
    )
    .await
}

async fn enable(s: &Service, b: &mut Browser, serial: &str, codes: [&str; 2]) -> Page {
    let csrf = b.get(s, "/portal/security").await.csrf();
    b.post(
        s,
        "/portal/mfa/enable",
        &[
            ("serial", serial),
            ("code1", codes[0]),
            ("code2", codes[1]),
            ("csrf", &csrf),
        ],
    )
    .await
}

fn assert_denied(page: &Page, user: &str, action: &str) {
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("Access denied"), "{}", page.body);
    assert_eq!(by_id(page, "permission"), format!("iam:{action}"));
    assert!(
        page.body.contains(&format!(
            "User: arn:aws:iam::000000000000:user/{user} is not authorized to perform: \
             iam:{action} on resource: "
        )),
        "{}",
        page.body
    );
}

async fn mfa_devices(s: &Service, user: &str) -> String {
    s.ok(&s.root, &[("Action", "ListMFADevices"), ("UserName", user)])
        .await
}

#[tokio::test]
async fn a_user_without_a_device_enrols_one_at_sign_in_then_signs_in_with_it() {
    let s = Service::new();
    user_with_password(&s, "bob").await;
    let mut b = Browser::new();
    let page = b.password(&s, "bob", PASSWORD).await;
    assert_eq!(page.location.as_deref(), Some("/portal/security"));
    let page = b.get(&s, "/portal/security").await;
    assert!(page.body.contains("Set up multi-factor authentication"));
    // Not signed in: no credentials, no other self-service page.
    assert_eq!(
        b.get(&s, "/portal").await.location.as_deref(),
        Some("/signin")
    );
    assert_eq!(
        b.get(&s, "/portal/password").await.location.as_deref(),
        Some("/signin")
    );

    // No policy lets bob create a device: AWS's AccessDenied, the permission named.
    let page = create(&s, &mut b, "bob").await;
    assert_denied(&page, "bob", "CreateVirtualMFADevice");
    assert!(!page.body.contains("id=\"secret\""));

    // With AWS's "manage your own MFA" policy on his group, he may (without MFA).
    manage_own_mfa(&s, &["bob"]).await;
    let page = create(&s, &mut b, "bob").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let serial = by_id(&page, "serial");
    assert_eq!(serial, "arn:aws:iam::000000000000:mfa/bob");
    // The QR code is inline SVG: no image fetched, no data: URI, no script.
    assert!(
        page.body
            .contains("<svg xmlns=\"http://www.w3.org/2000/svg\"")
    );
    assert!(page.body.contains("role=\"img\""));
    assert!(!page.body.contains("data:image") && !page.body.contains("<script"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.starts_with("default-src 'self'") && !csp.contains("data:"));
    let g = generator_of(&page);

    // Wrong codes: the API's own answers.
    let now = step(&s);
    let page = enable(&s, &mut b, &serial, ["000000", "000001"]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(
        page.body
            .contains("Authentication code for device is not valid.")
    );
    assert!(
        !page.body.contains("id=\"secret\""),
        "the secret is shown once"
    );
    // Two right codes, but not consecutive.
    let (c1, c3) = (g.code(now - 2), g.code(now));
    let page = enable(&s, &mut b, &serial, [&c1, &c3]).await;
    assert!(
        page.body
            .contains("Authentication code for device is not valid.")
    );
    // Malformed: the API's ValidationError text.
    let page = enable(&s, &mut b, &serial, ["12ab56", &g.code(now)]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(
        page.body.contains("authenticationCode1") || page.body.contains("AuthenticationCode1"),
        "{}",
        page.body
    );
    assert!(!mfa_devices(&s, "bob").await.contains("<member>"));

    // Right: enabled; back to the MFA step, where a code of the new device signs in.
    let page = enable(&s, &mut b, &serial, [&g.code(now - 1), &g.code(now)]).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/signin/mfa"),
        "{}",
        page.body
    );
    assert!(mfa_devices(&s, "bob").await.contains(&serial));
    // Now that bob has a device, the enrolment pages are closed to a pre-MFA session.
    assert_eq!(
        b.get(&s, "/portal/security").await.location.as_deref(),
        Some("/signin")
    );
    s.advance(30);
    let page = b.code(&s, &serial, &g.code(step(&s))).await;
    assert_eq!(page.location.as_deref(), Some("/portal"), "{}", page.body);
    let page = b.get(&s, "/portal").await;
    assert_eq!(page.status, StatusCode::OK);
}

#[tokio::test]
async fn the_manage_own_mfa_policy_governs_the_pages_as_it_governs_the_api() {
    let s = Service::new();
    let (alice_serial, alice) = user_with_mfa(&s, "alice").await;
    let (carol_serial, _) = user_with_mfa(&s, "carol").await;
    manage_own_mfa(&s, &["alice"]).await;
    let mut b = signed_in(&s, "alice", &alice_serial, &alice).await;

    // The list: her device, with its enable date.
    let page = b.get(&s, "/portal/security").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&alice_serial));
    assert!(page.body.contains("Authenticator app (TOTP)"));
    assert!(!page.body.contains(&carol_serial));
    assert!(page.body.contains("<time datetime=\"20"));

    // A second device, added in the portal.
    let page = create(&s, &mut b, "alice-tablet").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let g = generator_of(&page);
    let serial = by_id(&page, "serial");
    let now = step(&s);
    let page = enable(&s, &mut b, &serial, [&g.code(now - 1), &g.code(now)]).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/portal/security?done=enabled")
    );
    let page = b.get(&s, "/portal/security?done=enabled").await;
    assert!(page.body.contains("Your MFA device is enabled."));
    assert!(page.body.contains(&serial) && page.body.contains(&alice_serial));
    // The same name again: the API's conflict, said plainly.
    let page = create(&s, &mut b, "alice-tablet").await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(
        page.body
            .contains("A device named alice-tablet already exists.")
    );

    // Carol's device is not hers to deactivate: the page only ever names her own user,
    // and the API finds no such device of hers.
    let csrf = page.csrf();
    let page = b
        .post(
            &s,
            "/portal/mfa/deactivate",
            &[("serial", &carol_serial), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    assert!(page.body.contains(&format!(
        "MFA device with serial number {carol_serial} does not exist."
    )));
    assert!(mfa_devices(&s, "carol").await.contains(&carol_serial));

    // Her own: deactivated.
    let page = b
        .post(
            &s,
            "/portal/mfa/deactivate",
            &[("serial", &serial), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/portal/security?done=deactivated")
    );
    let listed = mfa_devices(&s, "alice").await;
    assert!(!listed.contains(&serial) && listed.contains(&alice_serial));
}

#[tokio::test]
async fn without_the_permission_each_page_shows_access_denied() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "dave").await;
    let mut b = signed_in(&s, "dave", &serial, &g).await;
    // ListMFADevices refused: the page says so instead of listing.
    let page = b.get(&s, "/portal/security").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("is not authorized to perform: iam:ListMFADevices"),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let page = b
        .post(
            &s,
            "/portal/mfa/deactivate",
            &[("serial", &serial), ("csrf", &csrf)],
        )
        .await;
    assert_denied(&page, "dave", "DeactivateMFADevice");
    assert!(mfa_devices(&s, "dave").await.contains(&serial));
    let page = create(&s, &mut b, "dave-2").await;
    assert_denied(&page, "dave", "CreateVirtualMFADevice");
    // An explicit Deny wins over the policy that allows it.
    manage_own_mfa(&s, &["dave"]).await;
    s.ok(
        &s.root,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "dave"),
            ("PolicyName", "no-deactivate"),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny",
                    "Action":"iam:DeactivateMFADevice","Resource":"*"}]}"#,
            ),
        ],
    )
    .await;
    let page = b
        .post(
            &s,
            "/portal/mfa/deactivate",
            &[("serial", &serial), ("csrf", &csrf)],
        )
        .await;
    assert_denied(&page, "dave", "DeactivateMFADevice");
    assert!(page.body.contains("with an explicit deny"), "{}", page.body);
}

#[tokio::test]
async fn a_signed_in_user_changes_their_password_under_the_policy() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "erin").await;
    s.ok(
        &s.root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("MinimumPasswordLength", "14"),
            ("RequireSymbols", "true"),
            ("PasswordReusePrevention", "2"),
            ("AllowUsersToChangePassword", "true"),
        ],
    )
    .await;
    let mut b = signed_in(&s, "erin", &serial, &g).await;
    let page = b.get(&s, "/portal/password").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("At least 14 characters."));
    assert!(page.body.contains("At least a symbol."));
    assert!(page.body.contains("Not one of your last 2 passwords."));
    let csrf = page.csrf();
    let change = |old: &'static str, new: &'static str, confirm: &'static str| {
        [
            ("old_password", old),
            ("new_password", new),
            ("confirm_password", confirm),
        ]
    };
    let post = async |b: &mut Browser, form: [(&str, &str); 3]| {
        let mut form = form.to_vec();
        form.push(("csrf", &csrf));
        b.post(&s, "/portal/password", &form).await
    };
    let page = post(
        &mut b,
        change(PASSWORD, "Another-l0ng-one!", "Another-l0ng-0ne!"),
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("The new passwords do not match."));
    // The policy, enforced by ChangePassword itself (its AWS text).
    let page = post(&mut b, change(PASSWORD, "Sh0rt!", "Sh0rt!")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("minimum length of 14"), "{}", page.body);
    let page = post(
        &mut b,
        change(PASSWORD, "NoSymbolsButLong1", "NoSymbolsButLong1"),
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("symbol"), "{}", page.body);
    let page = post(&mut b, change(PASSWORD, PASSWORD, PASSWORD)).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let page = post(
        &mut b,
        change("not-my-password", "Another-l0ng-one!", "Another-l0ng-one!"),
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.body.contains("The old password was incorrect."));
    assert!(!page.body.contains("Access denied"));
    let page = post(
        &mut b,
        change(PASSWORD, "Another-l0ng-one!", "Another-l0ng-one!"),
    )
    .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/portal/security?done=password"),
        "{}",
        page.body
    );
    // The new password signs in; the old one does not.
    s.advance(30);
    let mut other = Browser::new();
    assert_eq!(
        other.password(&s, "erin", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = other.password(&s, "erin", "Another-l0ng-one!").await;
    assert_eq!(page.location.as_deref(), Some("/signin/mfa"));

    // Without AllowUsersToChangePassword (and no policy): AccessDenied for ChangePassword.
    s.ok(
        &s.root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("AllowUsersToChangePassword", "false"),
        ],
    )
    .await;
    let page = post(
        &mut b,
        change(
            "Another-l0ng-one!",
            "Yet-an0ther-one!!",
            "Yet-an0ther-one!!",
        ),
    )
    .await;
    assert_denied(&page, "erin", "ChangePassword");
}

#[tokio::test]
async fn every_new_form_refuses_cross_site_posts_and_missing_tokens() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "frank").await;
    manage_own_mfa(&s, &["frank"]).await;
    let mut b = signed_in(&s, "frank", &serial, &g).await;
    let csrf = b.get(&s, "/portal/security").await.csrf();
    let forms: [(&str, Vec<(&str, &str)>); 4] = [
        ("/portal/mfa/create", vec![("device_name", "frank-2")]),
        (
            "/portal/mfa/enable",
            vec![
                ("serial", &serial),
                ("code1", "123456"),
                ("code2", "654321"),
            ],
        ),
        ("/portal/mfa/deactivate", vec![("serial", &serial)]),
        (
            "/portal/password",
            vec![
                ("old_password", PASSWORD),
                ("new_password", "Whatever-l0ng-one"),
                ("confirm_password", "Whatever-l0ng-one"),
            ],
        ),
    ];
    for (path, fields) in &forms {
        // No form token, a wrong one: refused.
        let page = b.post(&s, path, fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        let mut wrong = fields.clone();
        wrong.push(("csrf", "AAAA"));
        assert_eq!(b.post(&s, path, &wrong).await.status, StatusCode::FORBIDDEN);
        // The right token from another site: refused.
        let mut with_token = fields.clone();
        with_token.push(("csrf", &csrf));
        b.origin = Some("http://evil.example");
        b.site = Some("cross-site");
        assert_eq!(
            b.post(&s, path, &with_token).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
        b.origin = Some("http://localhost:8787");
        b.site = Some("same-origin");
        // No cookie: back to sign-in, nothing done.
        let mut anonymous = Browser::new();
        let page = anonymous.post(&s, path, &with_token).await;
        assert_eq!(page.location.as_deref(), Some("/signin"), "{path}");
    }
    // Nothing changed.
    let listed = mfa_devices(&s, "frank").await;
    assert_eq!(listed.matches("<member>").count(), 1);
    let mut other = Browser::new();
    s.advance(30);
    assert_eq!(
        other
            .password(&s, "frank", PASSWORD)
            .await
            .location
            .as_deref(),
        Some("/signin/mfa")
    );
}

#[tokio::test]
async fn the_credentials_page_has_the_credential_process_snippet_and_copy_buttons() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "gina").await;
    let mut b = signed_in(&s, "gina", &serial, &g).await;
    let page = b.get(&s, "/portal").await;
    assert!(page.body.contains(
        "[profile gina-mfa]\ncredential_process = tokengate login --profile gina\n\
         endpoint_url = http://localhost:8787\n"
    ));
    assert!(page.body.contains(&format!("mfa_serial = {serial}\n")));
    // The expiry, in words and as a date.
    assert!(page.body.contains("These credentials expire at"));
    assert!(
        page.body.contains("in <strong>1 hour</strong>"),
        "{}",
        page.body
    );
    // One copy button per snippet, hidden until the script shows it; the script is a file.
    for id in ["bash", "powershell", "cmd", "file", "process"] {
        assert!(
            page.body
                .contains(&format!("class=\"copy\" hidden data-copy=\"session-{id}\"")),
            "{id}"
        );
        assert!(page.body.contains(&format!("id=\"session-{id}\"")));
    }
    assert!(
        page.body
            .contains("<script src=\"/portal/copy.js\" defer></script>")
    );
    assert_eq!(page.body.matches("<script").count(), 1);
    let js = b.get(&s, "/portal/copy.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(
        js.headers[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(js.body.contains("navigator.clipboard.writeText"));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));

    // A role's page: the role profile assumed from the user's, and its process profile.
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Principal":{"AWS":"arn:aws:iam::000000000000:user/gina"},"Action":"sts:AssumeRole"}]}"#;
    s.ok(
        &s.root,
        &[
            ("Action", "CreateRole"),
            ("RoleName", "dev"),
            ("AssumeRolePolicyDocument", trust),
        ],
    )
    .await;
    let csrf = page.csrf();
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
    assert!(role.body.contains(&format!(
        "[profile gina-dev]\nrole_arn = arn:aws:iam::000000000000:role/dev\n\
         source_profile = gina\nmfa_serial = {serial}\n"
    )));
    assert!(role.body.contains(
        "[profile gina-dev-mfa]\ncredential_process = tokengate login --profile gina-dev\n"
    ));
    assert!(
        role.body
            .contains("class=\"copy\" hidden data-copy=\"role-process\"")
    );
}

#[tokio::test]
async fn the_calls_the_pages_make_are_audited_as_those_calls_without_secrets() {
    let s = Service::new();
    let (serial, g) = user_with_mfa(&s, "hugo").await;
    let mut b = signed_in(&s, "hugo", &serial, &g).await;
    // Refused by policy, then allowed.
    let page = create(&s, &mut b, "hugo-2").await;
    assert_denied(&page, "hugo", "CreateVirtualMFADevice");
    manage_own_mfa(&s, &["hugo"]).await;
    let page = create(&s, &mut b, "hugo-2").await;
    let secret = by_id(&page, "secret");
    let new_serial = by_id(&page, "serial");
    let now = step(&s);
    let page = enable(&s, &mut b, &new_serial, [&g.code(now), &g.code(now + 1)]).await;
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "hugo's old device's codes"
    );
    s.state.audit.flush().await;
    let events = s
        .state
        .store
        .audit_events(&tokengate_store::AuditQuery {
            limit: 200,
            ..Default::default()
        })
        .unwrap()
        .events;
    let of = |name: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|(_, e)| e.event_name == name)
            // Stored records are compact; expanded as LookupEvents answers them.
            .map(|(_, e)| {
                serde_json::from_str(&tokengate_server::audit::expand_record(&e.record)).unwrap()
            })
            .filter(|r: &serde_json::Value| {
                r["userIdentity"]["arn"] == "arn:aws:iam::000000000000:user/hugo"
            })
            .collect()
    };
    let created = of("CreateVirtualMFADevice");
    assert_eq!(created.len(), 2, "{created:?}");
    assert!(
        created
            .iter()
            .any(|r| r["errorCode"] == "AccessDenied" && r["eventSource"] == "iam.amazonaws.com")
    );
    assert!(created.iter().any(|r| r.get("errorCode").is_none()));
    let enabled = of("EnableMFADevice");
    assert_eq!(enabled.len(), 1);
    assert_eq!(enabled[0]["errorCode"], "InvalidAuthenticationCode");
    assert_eq!(enabled[0]["requestParameters"]["serialNumber"], new_serial);
    // The sign-in's second factor is the request's MFA context, as the event says.
    assert_eq!(
        enabled[0]["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"],
        "true"
    );
    for (_, e) in &events {
        let record = tokengate_server::audit::expand_record(&e.record);
        assert!(!record.contains(&secret), "{record}");
        assert!(!record.contains(&g.code(now)), "{record}");
    }
}

#[tokio::test]
async fn deactivate_mfa_device_is_authorized_on_the_user_as_in_aws() {
    // AWS's service authorization reference: DeactivateMFADevice's resource is `user`.
    let s = Service::new();
    let (carol_serial, _) = user_with_mfa(&s, "carl").await;
    let own = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":"iam:DeactivateMFADevice","Resource":"arn:aws:iam::*:user/${aws:username}"}]}"#;
    // A user with keys and a device: deactivate her own (allowed), carl's (refused).
    let creds = keyed_user_with_device(&s, "jo").await;
    s.ok(
        &s.root,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "jo"),
            ("PolicyName", "own"),
            ("PolicyDocument", own),
        ],
    )
    .await;
    let message = s
        .fails(
            &creds.0,
            &[
                ("Action", "DeactivateMFADevice"),
                ("UserName", "carl"),
                ("SerialNumber", &carol_serial),
            ],
            StatusCode::FORBIDDEN,
            "AccessDenied",
        )
        .await;
    assert!(
        message.ends_with(
            "iam:DeactivateMFADevice on resource: arn:aws:iam::000000000000:user/carl \
             because no identity-based policy allows the iam:DeactivateMFADevice action"
        ),
        "{message}"
    );
    s.ok(
        &creds.0,
        &[
            ("Action", "DeactivateMFADevice"),
            ("UserName", "jo"),
            ("SerialNumber", &creds.1),
        ],
    )
    .await;
    assert!(mfa_devices(&s, "carl").await.contains(&carol_serial));
    assert!(!mfa_devices(&s, "jo").await.contains(&creds.1));
}

/// User `name` with an access key and an enabled device: (key, serial).
async fn keyed_user_with_device(s: &Service, name: &str) -> ((String, String), String) {
    let key = s.user(name).await;
    let body = s
        .ok(
            &s.root,
            &[
                ("Action", "CreateVirtualMFADevice"),
                ("VirtualMFADeviceName", name),
            ],
        )
        .await;
    let serial = element(&body, "SerialNumber").unwrap();
    let base32 = data_encoding::BASE64
        .decode(element(&body, "Base32StringSeed").unwrap().as_bytes())
        .unwrap();
    let g = Generator::new(
        &data_encoding::BASE32_NOPAD.decode(&base32).unwrap(),
        TotpParams::AWS,
    );
    let now = step(s);
    s.ok(
        &s.root,
        &[
            ("Action", "EnableMFADevice"),
            ("UserName", name),
            ("SerialNumber", &serial),
            ("AuthenticationCode1", &g.code(now - 1)),
            ("AuthenticationCode2", &g.code(now)),
        ],
    )
    .await;
    (key, serial)
}
