//! `evaluate` for a principal with 10 attached policies of 10 statements each, all with
//! conditions (StringLike, Bool/BoolIfExists, IpAddress, DateLessThan, variables).
//! Goal: ≤ 10 µs per decision.
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tokengate_policy::{
    Context, ContextValue, Decision, Policy, PolicyDocument, PolicyKind, PolicySet, PrincipalKind,
    Request, RequestPrincipal, SourceType, evaluate,
};

fn statement(p: usize, s: usize) -> String {
    let (effect, action, resource, condition) = match s % 5 {
        0 => (
            "Allow",
            format!("iam:Get{p}{s}*"),
            "arn:aws:iam::*:user/${aws:username}".to_owned(),
            r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"},
                "IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}"#,
        ),
        1 => (
            "Allow",
            format!("iam:List{p}{s}?sers"),
            "*".to_owned(),
            r#"{"StringLike":{"aws:PrincipalTag/team":["red*","blue*"]},
                "DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#,
        ),
        2 => (
            "Deny",
            format!("iam:Delete{p}{s}*"),
            "arn:aws:iam::*:role/admin-*".to_owned(),
            r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#,
        ),
        3 => (
            "Allow",
            format!("sts:Assume{p}{s}*"),
            format!("arn:aws:iam::123456789012:role/team-{p}-*"),
            r#"{"StringEquals":{"aws:PrincipalTag/team":"${aws:PrincipalTag/team}"},
                "Bool":{"aws:SecureTransport":"true"}}"#,
        ),
        _ => (
            "Deny",
            "*".to_owned(),
            "*".to_owned(),
            r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16","172.16.0.0/12"]}}"#,
        ),
    };
    format!(
        r#"{{"Sid":"S{p}x{s}","Effect":"{effect}","Action":"{action}","Resource":"{resource}",
            "Condition":{condition}}}"#
    )
}

fn policies() -> Vec<Policy> {
    (0..10)
        .map(|p| {
            let statements: Vec<String> = (0..10).map(|s| statement(p, s)).collect();
            let mut text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                statements.join(",")
            );
            if p == 9 {
                // The last policy allows the benchmarked action.
                text = text.replacen("iam:Get95*", "iam:GetUser", 1);
            }
            Policy {
                id: format!("arn:aws:iam::123456789012:policy/p{p}"),
                source: SourceType::UserManaged,
                document: Arc::new(PolicyDocument::parse(&text, PolicyKind::Managed).unwrap()),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let policies = policies();
    let set = PolicySet {
        identity: &policies,
        boundary: None,
        session: None,
        resource: None,
    };
    let mut context = Context::new();
    context.insert("aws:username", ContextValue::from("alice"));
    context.insert("aws:MultiFactorAuthPresent", ContextValue::from(true));
    context.insert("aws:SourceIp", ContextValue::from("10.1.2.3"));
    context.insert(
        "aws:CurrentTime",
        ContextValue::from("2026-05-01T12:00:00Z"),
    );
    context.insert("aws:SecureTransport", ContextValue::from(true));
    context.insert("aws:PrincipalTag/team", ContextValue::from("red"));
    let principal = RequestPrincipal {
        kind: PrincipalKind::User,
        arn: "arn:aws:iam::123456789012:user/alice",
        account: "123456789012",
        unique_id: "AIDAALICE0000000000",
        entity_arn: None,
    };
    let allowed = Request {
        principal,
        action: "iam:GetUser",
        resource: "arn:aws:iam::123456789012:user/alice",
        context: &context,
    };
    assert_eq!(evaluate(&set, &allowed).decision, Decision::Allowed);
    let mut outside = context.clone();
    outside.insert("aws:SourceIp", ContextValue::from("203.0.113.9"));
    let denied = Request {
        context: &outside,
        ..allowed
    };
    assert_eq!(evaluate(&set, &denied).decision, Decision::ExplicitDeny);
    let implicit = Request {
        action: "iam:CreateUser",
        ..allowed
    };
    assert_eq!(evaluate(&set, &implicit).decision, Decision::ImplicitDeny);

    c.bench_function("evaluate/allowed", |b| {
        b.iter(|| evaluate(black_box(&set), black_box(&allowed)))
    });
    c.bench_function("evaluate/explicit_deny", |b| {
        b.iter(|| evaluate(black_box(&set), black_box(&denied)))
    });
    c.bench_function("evaluate/implicit_deny", |b| {
        b.iter(|| evaluate(black_box(&set), black_box(&implicit)))
    });
    let text = policies[0].document.text().to_owned();
    c.bench_function("parse/10_statements", |b| {
        b.iter(|| PolicyDocument::parse(black_box(&text), PolicyKind::Managed))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
