//! Issue 12 points 2 and 3 through the real router: a key's last use and the access
//! advisor reflect the calls made, a burst of 10 000 requests with one key is a handful of
//! usage writes (counted), and the account summary, authorization details and alias
//! answer as AWS's do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/hygiene.rs"]
mod hygiene;

use axum::http::StatusCode;
use hygiene::{Service, element};
use tokengate_server::usage::KEY_GRANULARITY_SECS;

/// Every `<name>` element's text, in order.
fn elements(xml: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(v) = element(rest, name) {
        out.push(v);
        let close = format!("</{name}>");
        let Some(end) = rest.find(&close) else { break };
        rest = &rest[end + close.len()..];
    }
    out
}

#[tokio::test]
async fn a_burst_of_ten_thousand_requests_is_a_handful_of_usage_writes() {
    let s = Service::new();
    let root = s.root.clone();
    let alice = s.user("alice").await;
    s.ok(
        &root,
        &[
            ("Action", "AttachUserPolicy"),
            ("UserName", "alice"),
            ("PolicyArn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
        ],
    )
    .await;
    let key_id = alice.0.clone();
    // Never used: no LastUsedDate, N/A for service and region.
    let body = s
        .ok(
            &root,
            &[("Action", "GetAccessKeyLastUsed"), ("AccessKeyId", &key_id)],
        )
        .await;
    assert_eq!(element(&body, "UserName").as_deref(), Some("alice"));
    assert_eq!(element(&body, "LastUsedDate"), None, "{body}");
    assert_eq!(element(&body, "ServiceName").as_deref(), Some("N/A"));
    assert_eq!(element(&body, "Region").as_deref(), Some("N/A"));

    let before = s.state.usage.writes();
    let t0 = s.now();
    for i in 0..10_000 {
        if i % 1_000 == 0 {
            s.advance(1);
        }
        let (status, body) = s
            .call(
                &alice,
                "sts",
                "eu-west-1",
                &[("Action", "GetCallerIdentity")],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Read back: the read flushes what the recorder holds.
    let body = s
        .ok(
            &root,
            &[("Action", "GetAccessKeyLastUsed"), ("AccessKeyId", &key_id)],
        )
        .await;
    let writes = s.state.usage.writes() - before;
    // One: the first request made the key and the action due; the rest were in memory.
    assert_eq!(writes, 1, "{writes} usage writes for a burst of 10 000");
    assert_eq!(
        element(&body, "LastUsedDate").as_deref(),
        Some(tokengate_server::iso8601(t0 + 1).as_str())
    );
    assert_eq!(element(&body, "ServiceName").as_deref(), Some("sts"));
    assert_eq!(element(&body, "Region").as_deref(), Some("eu-west-1"));

    // Past the granularity, a use moves the date again.
    s.advance(KEY_GRANULARITY_SECS);
    s.call(
        &alice,
        "sts",
        "eu-west-1",
        &[("Action", "GetCallerIdentity")],
    )
    .await;
    let body = s
        .ok(
            &root,
            &[("Action", "GetAccessKeyLastUsed"), ("AccessKeyId", &key_id)],
        )
        .await;
    assert_eq!(
        element(&body, "LastUsedDate").as_deref(),
        Some(tokengate_server::iso8601(s.now()).as_str())
    );

    // The access advisor on alice: sts used (by her), iam attempted (a refused call counts).
    let (status, _) = s.iam(&alice, &[("Action", "ListUsers")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .iam(&alice, &[("Action", "CreateUser"), ("UserName", "x")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let alice_arn = "arn:aws:iam::000000000000:user/alice";
    for (granularity, actions) in [
        ("SERVICE_LEVEL", vec![]),
        (
            "ACTION_LEVEL",
            // Her own (allowed, then refused) attempt at the first job is an attempt too.
            vec![
                "CreateUser",
                "GetServiceLastAccessedDetails",
                "ListUsers",
                "GetCallerIdentity",
            ],
        ),
    ] {
        let body = s
            .ok(
                &root,
                &[
                    ("Action", "GenerateServiceLastAccessedDetails"),
                    ("Arn", alice_arn),
                    ("Granularity", granularity),
                ],
            )
            .await;
        let job = element(&body, "JobId").unwrap();
        assert_eq!(job.len(), 36);
        let body = s
            .ok(
                &root,
                &[("Action", "GetServiceLastAccessedDetails"), ("JobId", &job)],
            )
            .await;
        assert_eq!(element(&body, "JobStatus").as_deref(), Some("COMPLETED"));
        assert_eq!(element(&body, "JobType").as_deref(), Some(granularity));
        assert_eq!(elements(&body, "ServiceNamespace"), ["iam", "sts"]);
        assert_eq!(
            elements(&body, "LastAuthenticatedEntity"),
            [alice_arn, alice_arn]
        );
        assert_eq!(elements(&body, "TotalAuthenticatedEntities"), ["1", "1"]);
        assert_eq!(
            elements(&body, "LastAuthenticatedRegion"),
            ["us-east-1", "eu-west-1"]
        );
        assert_eq!(elements(&body, "ActionName"), actions, "{body}");
        // A job is its requester's.
        let (status, _) = s
            .iam(
                &alice,
                &[("Action", "GetServiceLastAccessedDetails"), ("JobId", &job)],
            )
            .await;
        assert_ne!(status, StatusCode::OK);
    }
    // Root's usage is not the advisor's; nobody else used anything yet.
    let body = s
        .ok(
            &root,
            &[
                ("Action", "GenerateServiceLastAccessedDetails"),
                ("Arn", "arn:aws:iam::aws:policy/IAMReadOnlyAccess"),
            ],
        )
        .await;
    let job = element(&body, "JobId").unwrap();
    let body = s
        .ok(
            &root,
            &[
                ("Action", "GetServiceLastAccessedDetails"),
                ("JobId", &job),
                ("MaxItems", "1"),
            ],
        )
        .await;
    assert_eq!(elements(&body, "ServiceNamespace"), ["iam"]);
    assert_eq!(element(&body, "IsTruncated").as_deref(), Some("true"));
    assert_eq!(element(&body, "Marker").as_deref(), Some("iam"));
    assert_eq!(elements(&body, "LastAuthenticatedEntity"), [alice_arn]);
    s.fails(
        &root,
        &[
            ("Action", "GenerateServiceLastAccessedDetails"),
            ("Arn", "arn:aws:iam::000000000000:user/nobody"),
        ],
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
    )
    .await;
    s.fails(
        &root,
        &[
            ("Action", "GenerateServiceLastAccessedDetails"),
            ("Arn", "arn:aws:s3:::some-bucket-name"),
        ],
        StatusCode::BAD_REQUEST,
        "InvalidInput",
    )
    .await;
    // Usage writes leave the IAM generation alone: no policy cache was invalidated by them.
    let generation = s.state.store.iam_generation();
    s.call(
        &alice,
        "sts",
        "eu-west-2",
        &[("Action", "GetCallerIdentity")],
    )
    .await;
    s.state.usage.flush(s.state.store.as_ref()).unwrap();
    assert_eq!(s.state.store.iam_generation(), generation);
}

#[tokio::test]
async fn summary_authorization_details_and_alias() {
    let s = Service::new();
    let root = s.root.clone();
    s.user("bob").await;
    s.ok(&root, &[("Action", "CreateGroup"), ("GroupName", "admins")])
        .await;
    s.ok(
        &root,
        &[
            ("Action", "AddUserToGroup"),
            ("GroupName", "admins"),
            ("UserName", "bob"),
        ],
    )
    .await;
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:Get*","Resource":"*"}]}"#;
    s.ok(
        &root,
        &[
            ("Action", "CreatePolicy"),
            ("PolicyName", "getters"),
            ("PolicyDocument", doc),
        ],
    )
    .await;
    s.ok(
        &root,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "bob"),
            ("PolicyName", "inline"),
            ("PolicyDocument", doc),
        ],
    )
    .await;

    let body = s.ok(&root, &[("Action", "GetAccountSummary")]).await;
    let keys = elements(&body, "key");
    assert_eq!(keys.len(), 34, "{body}");
    let value = |k: &str| {
        let at = keys.iter().position(|x| x == k).unwrap();
        elements(&body, "value")[at].clone()
    };
    assert_eq!(value("Users"), "1");
    assert_eq!(value("Groups"), "1");
    assert_eq!(value("Policies"), "1");
    assert_eq!(value("AccountAccessKeysPresent"), "1");
    assert_eq!(value("AccountMFAEnabled"), "0");
    assert_eq!(value("AccessKeysPerUserQuota"), "2");

    let body = s
        .ok(&root, &[("Action", "GetAccountAuthorizationDetails")])
        .await;
    assert_eq!(elements(&body, "UserName"), ["bob"]);
    assert_eq!(elements(&body, "GroupName"), ["admins"]);
    // Documents are URL-encoded, as IAM returns them.
    assert!(body.contains("%22Version%22"), "{body}");
    assert!(body.contains("<VersionId>v1</VersionId>"), "{body}");
    // Filter and pagination.
    let body = s
        .ok(
            &root,
            &[
                ("Action", "GetAccountAuthorizationDetails"),
                ("Filter.member.1", "User"),
                ("Filter.member.2", "LocalManagedPolicy"),
                ("MaxItems", "1"),
            ],
        )
        .await;
    assert_eq!(elements(&body, "UserName"), ["bob"]);
    assert_eq!(
        elements(&body, "PolicyName").len(),
        1,
        "bob's inline policy only: {body}"
    );
    assert_eq!(element(&body, "IsTruncated").as_deref(), Some("true"));
    let marker = element(&body, "Marker").unwrap();
    let body = s
        .ok(
            &root,
            &[
                ("Action", "GetAccountAuthorizationDetails"),
                ("Filter.member.1", "User"),
                ("Filter.member.2", "LocalManagedPolicy"),
                ("Marker", &marker),
            ],
        )
        .await;
    assert_eq!(elements(&body, "UserName"), Vec::<String>::new());
    assert!(
        body.contains("<Arn>arn:aws:iam::000000000000:policy/getters</Arn>"),
        "{body}"
    );
    assert_eq!(element(&body, "IsTruncated").as_deref(), Some("false"));
    s.fails(
        &root,
        &[
            ("Action", "GetAccountAuthorizationDetails"),
            ("Filter.member.1", "Users"),
        ],
        StatusCode::BAD_REQUEST,
        "ValidationError",
    )
    .await;

    // The alias: one per account, AWS's pattern.
    let body = s.ok(&root, &[("Action", "ListAccountAliases")]).await;
    assert_eq!(elements(&body, "member"), Vec::<String>::new());
    for bad in ["ab", "-corp", "corp-", "my--corp", "MyCorp"] {
        s.fails(
            &root,
            &[("Action", "CreateAccountAlias"), ("AccountAlias", bad)],
            StatusCode::BAD_REQUEST,
            "ValidationError",
        )
        .await;
    }
    s.ok(
        &root,
        &[
            ("Action", "CreateAccountAlias"),
            ("AccountAlias", "my-corp"),
        ],
    )
    .await;
    s.ok(
        &root,
        &[
            ("Action", "CreateAccountAlias"),
            ("AccountAlias", "my-corp-2"),
        ],
    )
    .await;
    let body = s.ok(&root, &[("Action", "ListAccountAliases")]).await;
    assert_eq!(elements(&body, "member"), ["my-corp-2"]);
    s.fails(
        &root,
        &[
            ("Action", "DeleteAccountAlias"),
            ("AccountAlias", "my-corp"),
        ],
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
    )
    .await;
    s.ok(
        &root,
        &[
            ("Action", "DeleteAccountAlias"),
            ("AccountAlias", "my-corp-2"),
        ],
    )
    .await;
    // bob may not (no iam:CreateAccountAlias).
    let bob_key = s.user("carol").await;
    s.fails(
        &bob_key,
        &[("Action", "CreateAccountAlias"), ("AccountAlias", "nope")],
        StatusCode::FORBIDDEN,
        "AccessDenied",
    )
    .await;
}

#[tokio::test]
async fn get_mfa_device_dates_a_totp_device_by_its_last_accepted_step() {
    use tokengate_store::{KeyOwner, MfaDevice, MfaKind};
    use tokengate_verifier::totp::{TotpAlgorithm, TotpParams, TotpState};

    let s = Service::new();
    let root = s.root.clone();
    s.user("dana").await;
    let serial = "arn:aws:iam::000000000000:mfa/dana-phone";
    let store = &s.state.store;
    store
        .create_mfa_device(&MfaDevice {
            serial: serial.into(),
            kind: MfaKind::Virtual,
            owner: None,
            enabled_at: None,
            created: s.now(),
            seed: tokengate_token::Secret::new(vec![7; 20]),
            params: TotpParams {
                algorithm: TotpAlgorithm::Sha1,
                digits: 6,
                period: 30,
            },
            state: TotpState::default(),
        })
        .unwrap();
    let dana = KeyOwner::User("dana".into());
    store
        .enable_mfa_device(serial, &dana, s.now(), &TotpState::default(), 8)
        .unwrap();
    let get = [
        ("Action", "GetMFADevice"),
        ("UserName", "dana"),
        ("SerialNumber", serial),
    ];
    let body = s.ok(&root, &get).await;
    assert_eq!(element(&body, "SerialNumber").as_deref(), Some(serial));
    assert_eq!(
        element(&body, "EnableDate").as_deref(),
        Some(tokengate_server::iso8601(s.now()).as_str())
    );
    assert_eq!(element(&body, "LastUsedDate"), None, "{body}");
    // A code accepted at step 60 000 001: used then (no write beyond the replay check's).
    assert!(store.record_totp_success(serial, 60_000_001).unwrap());
    let body = s.ok(&root, &get).await;
    assert_eq!(
        element(&body, "LastUsedDate").as_deref(),
        Some(tokengate_server::iso8601(60_000_001 * 30).as_str())
    );
    // Someone else's serial is not found.
    s.user("erin").await;
    s.fails(
        &root,
        &[
            ("Action", "GetMFADevice"),
            ("UserName", "erin"),
            ("SerialNumber", serial),
        ],
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
    )
    .await;
}
