//! Issue 12 through the real router: the account password policy, login profiles,
//! ChangePassword (authorization, violations, reuse, races), `verify_password` (expiry with
//! the clock moved, last use, rehash on use) and the credential report's lifecycle.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;

use axum::http::StatusCode;
use hygiene::{DAY, Service, T0, cheap_passwords, element};
use tokengate_server::config::PasswordConfig;
use tokengate_server::passwords::{Password, SignIn, verify_password};

const GOOD: &str = "Corr3ct-horse";

fn pw(s: &str) -> Password {
    Password::new(s.to_owned())
}

#[tokio::test]
async fn every_policy_field_round_trips_and_omitted_fields_take_their_defaults() {
    let s = Service::new();
    let root = s.root.clone();
    let message = s
        .fails(
            &root,
            &[("Action", "GetAccountPasswordPolicy")],
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
        )
        .await;
    assert_eq!(
        message,
        "The Password Policy with domain name 000000000000 cannot be found."
    );
    let message = s
        .fails(
            &root,
            &[("Action", "DeleteAccountPasswordPolicy")],
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
        )
        .await;
    assert_eq!(
        message,
        "The account policy with name PasswordPolicy cannot be found."
    );
    s.ok(
        &root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("MinimumPasswordLength", "14"),
            ("RequireSymbols", "true"),
            ("RequireNumbers", "true"),
            ("RequireUppercaseCharacters", "true"),
            ("RequireLowercaseCharacters", "true"),
            ("AllowUsersToChangePassword", "true"),
            ("MaxPasswordAge", "90"),
            ("PasswordReusePrevention", "24"),
            ("HardExpiry", "true"),
        ],
    )
    .await;
    let body = s.ok(&root, &[("Action", "GetAccountPasswordPolicy")]).await;
    for (name, value) in [
        ("MinimumPasswordLength", "14"),
        ("RequireSymbols", "true"),
        ("RequireNumbers", "true"),
        ("RequireUppercaseCharacters", "true"),
        ("RequireLowercaseCharacters", "true"),
        ("AllowUsersToChangePassword", "true"),
        ("ExpirePasswords", "true"),
        ("MaxPasswordAge", "90"),
        ("PasswordReusePrevention", "24"),
        ("HardExpiry", "true"),
    ] {
        assert_eq!(
            element(&body, name).as_deref(),
            Some(value),
            "{name}: {body}"
        );
    }
    // No partial updates: what is left out reverts to its default.
    s.ok(&root, &[("Action", "UpdateAccountPasswordPolicy")])
        .await;
    let body = s.ok(&root, &[("Action", "GetAccountPasswordPolicy")]).await;
    assert_eq!(
        element(&body, "MinimumPasswordLength").as_deref(),
        Some("6")
    );
    for name in [
        "RequireSymbols",
        "RequireNumbers",
        "RequireUppercaseCharacters",
        "RequireLowercaseCharacters",
        "AllowUsersToChangePassword",
        "ExpirePasswords",
    ] {
        assert_eq!(element(&body, name).as_deref(), Some("false"), "{name}");
    }
    for name in ["MaxPasswordAge", "PasswordReusePrevention", "HardExpiry"] {
        assert_eq!(element(&body, name), None, "{name}: {body}");
    }
    // Ranges, with AWS's validation texts.
    for (name, value, constraint) in [
        ("MinimumPasswordLength", "5", "greater than or equal to 6"),
        ("MinimumPasswordLength", "129", "less than or equal to 128"),
        ("MaxPasswordAge", "0", "greater than or equal to 1"),
        ("MaxPasswordAge", "1096", "less than or equal to 1095"),
        ("PasswordReusePrevention", "0", "greater than or equal to 1"),
        ("PasswordReusePrevention", "25", "less than or equal to 24"),
    ] {
        let message = s
            .fails(
                &root,
                &[("Action", "UpdateAccountPasswordPolicy"), (name, value)],
                StatusCode::BAD_REQUEST,
                "ValidationError",
            )
            .await;
        let member = format!("{}{}", name[..1].to_lowercase(), &name[1..]);
        assert_eq!(
            message,
            format!(
                "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
                 constraint: Member must have value {constraint}"
            )
        );
    }
    s.ok(&root, &[("Action", "DeleteAccountPasswordPolicy")])
        .await;
    s.fails(
        &root,
        &[("Action", "GetAccountPasswordPolicy")],
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
    )
    .await;
}

#[tokio::test]
async fn login_profiles_live_and_die_with_aws_answers() {
    let s = Service::new();
    let root = s.root.clone();
    s.user("alice").await;
    let create = |password: &'static str| {
        vec![
            ("Action", "CreateLoginProfile"),
            ("UserName", "alice"),
            ("Password", password),
            ("PasswordResetRequired", "true"),
        ]
    };
    // The default policy applies while none is set (8 characters, 3 classes of 4).
    let message = s
        .fails(
            &root,
            &create("Ab1!"),
            StatusCode::BAD_REQUEST,
            "PasswordPolicyViolation",
        )
        .await;
    assert_eq!(message, "Password should have a minimum length of 8");
    let message = s
        .fails(
            &root,
            &create("abcdefg1"),
            StatusCode::BAD_REQUEST,
            "PasswordPolicyViolation",
        )
        .await;
    assert_eq!(
        message,
        "Password should meet 1 more of the following requirements: Password should have at \
         least one uppercase letter, Password should have at least one symbol"
    );
    // A password outside the pattern is refused without being echoed.
    let message = s
        .fails(
            &root,
            &create("Secret\u{100}Value1"),
            StatusCode::BAD_REQUEST,
            "ValidationError",
        )
        .await;
    assert!(!message.contains("Secret"), "{message}");
    s.fails(
        &root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "nobody"),
            ("Password", GOOD),
        ],
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
    )
    .await;
    let body = s.ok(&root, &create(GOOD)).await;
    assert_eq!(element(&body, "UserName").as_deref(), Some("alice"));
    assert_eq!(
        element(&body, "PasswordResetRequired").as_deref(),
        Some("true")
    );
    assert!(!body.contains(GOOD));
    let message = s
        .fails(
            &root,
            &create(GOOD),
            StatusCode::CONFLICT,
            "EntityAlreadyExists",
        )
        .await;
    assert_eq!(message, "Login Profile for user alice already exists.");
    let body = s
        .ok(
            &root,
            &[("Action", "GetLoginProfile"), ("UserName", "alice")],
        )
        .await;
    assert_eq!(
        element(&body, "PasswordResetRequired").as_deref(),
        Some("true")
    );
    assert_eq!(
        element(&body, "CreateDate").as_deref(),
        Some("2027-01-15T08:00:00Z")
    );
    // UpdateLoginProfile: the flag alone, then a new password; the hash is stored.
    s.ok(
        &root,
        &[
            ("Action", "UpdateLoginProfile"),
            ("UserName", "alice"),
            ("PasswordResetRequired", "false"),
            ("MaxSigninSessionDuration", "3600"),
        ],
    )
    .await;
    let body = s
        .ok(
            &root,
            &[("Action", "GetLoginProfile"), ("UserName", "alice")],
        )
        .await;
    assert_eq!(element(&body, "PasswordResetRequired"), None, "{body}");
    assert_eq!(
        element(&body, "MaxSigninSessionDuration").as_deref(),
        Some("3600")
    );
    s.fails(
        &root,
        &[
            ("Action", "UpdateLoginProfile"),
            ("UserName", "alice"),
            ("MaxSigninSessionDuration", "3600"),
            ("ResetMaxSigninSessionDuration", "true"),
        ],
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    )
    .await;
    s.ok(
        &root,
        &[
            ("Action", "UpdateLoginProfile"),
            ("UserName", "alice"),
            ("Password", "N3w-password"),
        ],
    )
    .await;
    let stored = s.state.store.login_profile("alice").unwrap().unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$v=19$"),
        "{stored:?}"
    );
    assert_eq!(
        verify_password(&s.state, "alice", &pw("N3w-password"))
            .await
            .unwrap(),
        SignIn::Accepted {
            reset_required: false,
            max_session_duration: Some(3600)
        }
    );
    // A user with a password cannot be deleted until it is.
    s.state
        .store
        .delete_access_key(
            &tokengate_store::KeyOwner::User("alice".into()),
            &s.state
                .store
                .access_keys_of(&tokengate_store::KeyOwner::User("alice".into()))
                .unwrap()[0]
                .access_key_id,
        )
        .unwrap();
    let message = s
        .fails(
            &root,
            &[("Action", "DeleteUser"), ("UserName", "alice")],
            StatusCode::CONFLICT,
            "DeleteConflict",
        )
        .await;
    assert_eq!(
        message,
        "Cannot delete entity, must delete login profile first."
    );
    s.ok(
        &root,
        &[("Action", "DeleteLoginProfile"), ("UserName", "alice")],
    )
    .await;
    let message = s
        .fails(
            &root,
            &[("Action", "GetLoginProfile"), ("UserName", "alice")],
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
        )
        .await;
    assert_eq!(message, "Login Profile for User alice cannot be found.");
    s.fails(
        &root,
        &[("Action", "DeleteLoginProfile"), ("UserName", "alice")],
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
    )
    .await;
    s.ok(&root, &[("Action", "DeleteUser"), ("UserName", "alice")])
        .await;
}

#[tokio::test]
async fn change_password_is_authorized_by_policy_or_allow_users_to_change_password() {
    let s = Service::new();
    let root = s.root.clone();
    let alice = s.user("alice").await;
    s.ok(
        &root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "alice"),
            ("Password", GOOD),
        ],
    )
    .await;
    let change = |old: &'static str, new: &'static str| {
        vec![
            ("Action", "ChangePassword"),
            ("OldPassword", old),
            ("NewPassword", new),
        ]
    };
    // No policy allows it yet: refused on alice's own user ARN.
    let message = s
        .fails(
            &alice,
            &change(GOOD, "Second-pass1"),
            StatusCode::FORBIDDEN,
            "AccessDenied",
        )
        .await;
    assert!(
        message.contains(
            "is not authorized to perform: iam:ChangePassword on resource: \
             arn:aws:iam::000000000000:user/alice"
        ),
        "{message}"
    );
    // A UserName sent anyway does not choose the resource.
    let (status, _) = s
        .iam(
            &alice,
            &[
                ("Action", "ChangePassword"),
                ("UserName", "bob"),
                ("OldPassword", GOOD),
                ("NewPassword", "Second-pass1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.fails(
        &alice,
        &[("Action", "GetAccountPasswordPolicy")],
        StatusCode::FORBIDDEN,
        "AccessDenied",
    )
    .await;
    // AllowUsersToChangePassword grants both, as IAMUserChangePassword would.
    s.ok(
        &root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("AllowUsersToChangePassword", "true"),
            ("MinimumPasswordLength", "10"),
            ("RequireNumbers", "true"),
            ("PasswordReusePrevention", "2"),
        ],
    )
    .await;
    s.ok(&alice, &[("Action", "GetAccountPasswordPolicy")])
        .await;
    let message = s
        .fails(
            &alice,
            &change("wrong-old-1", "Second-pass1"),
            StatusCode::FORBIDDEN,
            "AccessDenied",
        )
        .await;
    assert_eq!(message, "The old password was incorrect.");
    let message = s
        .fails(
            &alice,
            &change(GOOD, "short1"),
            StatusCode::BAD_REQUEST,
            "PasswordPolicyViolation",
        )
        .await;
    assert_eq!(message, "Password should have a minimum length of 10");
    let message = s
        .fails(
            &alice,
            &change(GOOD, "no-numbers-here"),
            StatusCode::BAD_REQUEST,
            "PasswordPolicyViolation",
        )
        .await;
    assert_eq!(message, "Password should have at least one number");
    // Reuse prevention: the current password is one of the last two.
    let message = s
        .fails(
            &alice,
            &change(GOOD, GOOD),
            StatusCode::BAD_REQUEST,
            "PasswordPolicyViolation",
        )
        .await;
    assert_eq!(
        message,
        "Policy constraint violation with password reuse prevention during password change."
    );
    s.ok(&alice, &change(GOOD, "Second-pass1")).await;
    s.ok(&alice, &change("Second-pass1", "Third-pass1")).await;
    // GOOD has left the last two: it may come back.
    s.fails(
        &alice,
        &change("Third-pass1", "Second-pass1"),
        StatusCode::BAD_REQUEST,
        "PasswordPolicyViolation",
    )
    .await;
    s.ok(&alice, &change("Third-pass1", GOOD)).await;
    // An explicit Deny still refuses.
    let deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"iam:ChangePassword","Resource":"*"}]}"#;
    s.ok(
        &root,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "alice"),
            ("PolicyName", "no-change"),
            ("PolicyDocument", deny),
        ],
    )
    .await;
    s.fails(
        &alice,
        &change(GOOD, "Fourth-pass1"),
        StatusCode::FORBIDDEN,
        "AccessDenied",
    )
    .await;
    // Root has no password to change.
    s.ok(
        &root,
        &[
            ("Action", "DeleteUserPolicy"),
            ("UserName", "alice"),
            ("PolicyName", "no-change"),
        ],
    )
    .await;
    s.fails(
        &root,
        &change(GOOD, "Fourth-pass1"),
        StatusCode::BAD_REQUEST,
        "InvalidUserType",
    )
    .await;
}

#[tokio::test]
async fn change_password_clears_reset_required_and_races_lose_with_entity_temporarily_unmodifiable()
{
    let s = Service::new();
    let root = s.root.clone();
    let alice = s.user("alice").await;
    s.ok(
        &root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "alice"),
            ("Password", GOOD),
            ("PasswordResetRequired", "true"),
        ],
    )
    .await;
    s.ok(
        &root,
        &[
            ("Action", "AttachUserPolicy"),
            ("UserName", "alice"),
            ("PolicyArn", "arn:aws:iam::aws:policy/IAMUserChangePassword"),
        ],
    )
    .await;
    assert_eq!(
        verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap(),
        SignIn::Accepted {
            reset_required: true,
            max_session_duration: None
        }
    );
    // Two changes verified against the same old password: the second loses the race.
    let stale = s
        .state
        .store
        .login_profile("alice")
        .unwrap()
        .unwrap()
        .password_hash;
    s.ok(
        &alice,
        &[
            ("Action", "ChangePassword"),
            ("OldPassword", GOOD),
            ("NewPassword", "Changed-pass1"),
        ],
    )
    .await;
    let lost = s.state.store.update_login_profile(
        "alice",
        &tokengate_store::LoginProfileUpdate {
            password: Some(tokengate_store::NewPassword {
                hash: "x".into(),
                at: s.now(),
                expected: Some(stale),
            }),
            ..Default::default()
        },
    );
    assert_eq!(
        lost.err(),
        Some(tokengate_store::StoreError::Changed(
            tokengate_store::Entity::LoginProfile
        ))
    );
    assert_eq!(
        verify_password(&s.state, "alice", &pw("Changed-pass1"))
            .await
            .unwrap(),
        SignIn::Accepted {
            reset_required: false,
            max_session_duration: None
        }
    );
    assert_eq!(
        verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap(),
        SignIn::Refused
    );
}

#[tokio::test]
async fn verify_password_applies_expiry_records_use_and_rehashes() {
    let s = Service::new();
    let root = s.root.clone();
    s.user("alice").await;
    s.ok(
        &root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "alice"),
            ("Password", GOOD),
        ],
    )
    .await;
    assert_eq!(
        verify_password(&s.state, "nobody", &pw(GOOD))
            .await
            .unwrap(),
        SignIn::Refused
    );
    assert_eq!(
        verify_password(&s.state, "alice", &pw("wrong"))
            .await
            .unwrap(),
        SignIn::Refused
    );
    assert_eq!(
        s.state
            .store
            .login_profile("alice")
            .unwrap()
            .unwrap()
            .last_used,
        None
    );

    // First use recorded; a second within 5 minutes is not.
    s.advance(10);
    assert!(matches!(
        verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap(),
        SignIn::Accepted { .. }
    ));
    assert_eq!(
        s.state
            .store
            .login_profile("alice")
            .unwrap()
            .unwrap()
            .last_used,
        Some(T0 + 10)
    );
    s.advance(60);
    verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap();
    assert_eq!(
        s.state
            .store
            .login_profile("alice")
            .unwrap()
            .unwrap()
            .last_used,
        Some(T0 + 10)
    );

    // New parameters: the next successful sign-in stores a hash made with them.
    let before = s
        .state
        .store
        .login_profile("alice")
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(before.contains("m=64,t=1,p=1"), "{before}");
    let upgraded = s.restart(PasswordConfig {
        argon2_iterations: 3,
        ..cheap_passwords()
    });
    assert!(matches!(
        verify_password(&upgraded, "alice", &pw(GOOD))
            .await
            .unwrap(),
        SignIn::Accepted { .. }
    ));
    let after = s
        .state
        .store
        .login_profile("alice")
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(after.contains("m=64,t=3,p=1"), "{after}");
    assert!(matches!(
        verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap(),
        SignIn::Accepted { .. }
    ));

    // MaxPasswordAge: expiry is enforced at once; HardExpiry says who may change it.
    s.ok(
        &root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("MaxPasswordAge", "30"),
        ],
    )
    .await;
    s.advance(30 * DAY - 100);
    assert!(matches!(
        verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap(),
        SignIn::Accepted { .. }
    ));
    s.advance(100);
    assert_eq!(
        verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap(),
        SignIn::Expired { may_change: true }
    );
    s.ok(
        &root,
        &[
            ("Action", "UpdateAccountPasswordPolicy"),
            ("MaxPasswordAge", "30"),
            ("HardExpiry", "true"),
        ],
    )
    .await;
    assert_eq!(
        verify_password(&s.state, "alice", &pw(GOOD)).await.unwrap(),
        SignIn::Expired { may_change: false }
    );
    // Expired, the wrong password is still just refused.
    assert_eq!(
        verify_password(&s.state, "alice", &pw("wrong"))
            .await
            .unwrap(),
        SignIn::Refused
    );
    // An administrator's reset starts a new age.
    s.ok(
        &root,
        &[
            ("Action", "UpdateLoginProfile"),
            ("UserName", "alice"),
            ("Password", "Reset-pass1"),
        ],
    )
    .await;
    assert!(matches!(
        verify_password(&s.state, "alice", &pw("Reset-pass1"))
            .await
            .unwrap(),
        SignIn::Accepted { .. }
    ));
}

fn report_csv(body: &str) -> String {
    let content = element(body, "Content").unwrap();
    String::from_utf8(data_encoding::BASE64.decode(content.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn the_credential_report_is_generated_kept_four_hours_then_expires() {
    let s = Service::new();
    let root = s.root.clone();
    let message = s
        .fails(
            &root,
            &[("Action", "GetCredentialReport")],
            StatusCode::GONE,
            "ReportNotPresent",
        )
        .await;
    assert_eq!(
        message,
        "The request was rejected because the credential report does not exist. To generate \
         a credential report, use GenerateCredentialReport."
    );
    s.user("alice").await;
    s.user("bob").await;
    s.ok(
        &root,
        &[
            ("Action", "CreateLoginProfile"),
            ("UserName", "bob"),
            ("Password", GOOD),
        ],
    )
    .await;
    let body = s.ok(&root, &[("Action", "GenerateCredentialReport")]).await;
    assert_eq!(element(&body, "State").as_deref(), Some("STARTED"));
    assert_eq!(
        element(&body, "Description").as_deref(),
        Some("No report exists. Starting a new report generation task")
    );
    let body = s.ok(&root, &[("Action", "GenerateCredentialReport")]).await;
    assert_eq!(element(&body, "State").as_deref(), Some("COMPLETE"));
    assert_eq!(element(&body, "Description"), None);
    let body = s.ok(&root, &[("Action", "GetCredentialReport")]).await;
    assert_eq!(element(&body, "ReportFormat").as_deref(), Some("text/csv"));
    assert_eq!(
        element(&body, "GeneratedTime").as_deref(),
        Some("2027-01-15T08:00:00Z")
    );
    let csv = report_csv(&body);
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows.iter().all(|r| r.len() == 22), "{csv}");
    assert_eq!(rows[1][0], "<root_account>");
    assert_eq!(
        (rows[2][0], rows[2][3], rows[2][4]),
        ("alice", "false", "N/A")
    );
    assert_eq!(
        (rows[3][0], rows[3][3], rows[3][4]),
        ("bob", "true", "no_information")
    );
    assert_eq!(&rows[2][10..13], ["N/A", "N/A", "N/A"]);

    // A sign-in shows in the next report, not in the stored one.
    verify_password(&s.state, "bob", &pw(GOOD)).await.unwrap();
    s.advance(4 * 3600 - 1);
    let body = s.ok(&root, &[("Action", "GenerateCredentialReport")]).await;
    assert_eq!(element(&body, "State").as_deref(), Some("COMPLETE"));
    assert!(
        report_csv(&s.ok(&root, &[("Action", "GetCredentialReport")]).await).contains(
            "bob,arn:aws:iam::000000000000:user/bob,2027-01-15T08:00:00+00:00,true,no_information"
        )
    );
    s.advance(1);
    let message = s
        .fails(
            &root,
            &[("Action", "GetCredentialReport")],
            StatusCode::GONE,
            "ReportExpired",
        )
        .await;
    assert!(message.starts_with(
        "The request was rejected because the most recent credential report has expired."
    ));
    let body = s.ok(&root, &[("Action", "GenerateCredentialReport")]).await;
    assert_eq!(element(&body, "State").as_deref(), Some("STARTED"));
    let csv = report_csv(&s.ok(&root, &[("Action", "GetCredentialReport")]).await);
    assert!(
        csv.contains("bob,arn:aws:iam::000000000000:user/bob,2027-01-15T08:00:00+00:00,true,2027-01-15T08:00:00+00:00"),
        "{csv}"
    );
    // A user without permission is refused on `*`.
    let alice = s
        .state
        .store
        .access_keys_of(&tokengate_store::KeyOwner::User("alice".into()))
        .unwrap();
    let alice = (
        alice[0].access_key_id.clone(),
        alice[0].secret.expose_str().unwrap().to_owned(),
    );
    let message = s
        .fails(
            &alice,
            &[("Action", "GetCredentialReport")],
            StatusCode::FORBIDDEN,
            "AccessDenied",
        )
        .await;
    assert!(
        message.contains("iam:GetCredentialReport on resource: *"),
        "{message}"
    );
}
