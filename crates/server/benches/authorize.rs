//! Authorization at the chokepoint (`authz::authorize`) for an IAM user with 10 attached
//! customer managed policies of 10 statements each, every statement with conditions: the
//! request context built from the caller (an MFA session), the compiled policies taken from
//! the per-user cache, the evaluation, the AccessDenied text when refused.
//! Goal (the authorization issue): ≤ 10 µs per decision.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tokengate_server::auth::Caller;
use tokengate_server::authz::{RequestFacts, authorize};
use tokengate_server::config::Config;
use tokengate_server::params::Params;
use tokengate_server::registry::{Api, lookup};
use tokengate_server::state::{self, SystemClock};
use tokengate_store::{NewManagedPolicy, PolicyTarget, SqliteStore, Store, Tag, User};
use tokengate_token::session::{ISSUER, MfaContext, MfaMethod, SessionClaims};
use tokengate_token::{Principal, Secret};

const ACCOUNT: &str = "000000000000";

/// Statement `s` of policy `p`: five shapes, each with conditions; none allows what is
/// benchmarked except the one statement [`policy`] rewrites.
fn statement(p: usize, s: usize) -> String {
    let (effect, action, resource, condition) = match s % 5 {
        0 => (
            "Allow",
            format!("iam:Get{p}{s}*"),
            "arn:aws:iam::*:user/${aws:username}",
            r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"},
                "IpAddress":{"aws:SourceIp":["10.0.0.0/8","127.0.0.0/8"]}}"#,
        ),
        1 => (
            "Allow",
            format!("iam:List{p}{s}?sers"),
            "*",
            r#"{"StringLike":{"aws:PrincipalTag/team":["red*","blue*"]},
                "DateLessThan":{"aws:CurrentTime":"2099-01-01T00:00:00Z"}}"#,
        ),
        2 => (
            "Deny",
            format!("iam:Delete{p}{s}*"),
            "arn:aws:iam::*:user/admin-*",
            r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#,
        ),
        3 => (
            "Allow",
            format!("iam:Tag{p}{s}*"),
            "arn:aws:iam::*:user/*",
            r#"{"StringEquals":{"aws:RequestTag/team":"${aws:PrincipalTag/team}"},
                "ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#,
        ),
        _ => (
            "Deny",
            "iam:*".to_owned(),
            "*",
            r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","127.0.0.0/8"]}}"#,
        ),
    };
    format!(
        r#"{{"Sid":"S{p}x{s}","Effect":"{effect}","Action":"{action}","Resource":"{resource}",
            "Condition":{condition}}}"#
    )
}

fn policy(p: usize) -> String {
    let statements: Vec<String> = (0..10).map(|s| statement(p, s)).collect();
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    );
    if p == 9 {
        // The last statement allowing anything allows the benchmarked action.
        text.replacen("iam:Get95*", "iam:GetUser", 1)
    } else {
        text
    }
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open_in_memory(&Secret::new(vec![7; 32])).unwrap());
    let config = Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let state = Arc::new(state::open_with_store(config, store, Arc::new(SystemClock)).unwrap());
    let user = User {
        user_id: "AIDABENCHBENCHBENCH12".into(),
        name: "bench".into(),
        path: "/".into(),
        created: 0,
    };
    state.store.create_user(&user).unwrap();
    let tags = [Tag {
        key: "team".into(),
        value: "red".into(),
    }];
    state.store.tag_user("bench", &tags, 50).unwrap();
    for p in 0..10 {
        let arn = format!("arn:aws:iam::{ACCOUNT}:policy/p{p}");
        let new = NewManagedPolicy {
            policy_id: format!("ANPABENCHBENCHBENCH{p:02}"),
            name: format!("p{p}"),
            path: "/".into(),
            arn: arn.clone(),
            description: String::new(),
            document: policy(p),
            created: 0,
            tags: Vec::new(),
        };
        state.store.create_policy(&new, 1500).unwrap();
        let target = PolicyTarget::User("bench".into());
        state.store.attach_policy(&target, &arn, false, 10).unwrap();
    }
    let principal = Principal::User {
        account: ACCOUNT.into(),
        path: "/".into(),
        name: "bench".into(),
        user_id: user.user_id.clone(),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let caller = Caller {
        principal: principal.clone(),
        access_key_id: "ASIABENCHBENCHBENCH1".into(),
        session: Some(std::sync::Arc::new(SessionClaims {
            iss: ISSUER.into(),
            sub: principal.arn(),
            akid: "ASIABENCHBENCHBENCH1".into(),
            iat: now,
            exp: now + 3600,
            principal,
            src: "AKIABENCHBENCHBENCH1".into(),
            mfa: MfaContext {
                present: true,
                method: Some(MfaMethod::Fido2),
                device: Some(format!("arn:aws:iam::{ACCOUNT}:u2f/user/bench/key")),
                auth_time: Some(now),
            },
            session_policy: None,
            chained: false,
            attributes: Default::default(),
        })),
        request_mfa: None,
        region: "us-east-1".into(),
    };
    let facts = RequestFacts {
        source_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        secure_transport: false,
    };
    let get_user = lookup(Api::Iam, "GetUser").unwrap();
    let create_user = lookup(Api::Iam, "CreateUser").unwrap();
    let resource = format!("arn:aws:iam::{ACCOUNT}:user/bench");
    let params = Params::new(vec![("UserName".into(), "bench".into())]);
    // Warm the per-user cache: what every request after the first one finds.
    authorize(&state, &caller, get_user, &resource, &params, facts).unwrap();
    assert!(authorize(&state, &caller, create_user, &resource, &params, facts).is_err());

    let mut group = c.benchmark_group("authorize (10 policies x 10 statements)");
    group.bench_function("allowed", |b| {
        b.iter(|| {
            authorize(
                black_box(&state),
                &caller,
                get_user,
                &resource,
                &params,
                facts,
            )
        })
    });
    group.bench_function("implicitly denied", |b| {
        b.iter(|| {
            authorize(
                black_box(&state),
                &caller,
                create_user,
                &resource,
                &params,
                facts,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
