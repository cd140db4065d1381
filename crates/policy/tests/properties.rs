//! Properties of the evaluator: denies are monotone, order does not matter; and the parser
//! never panics.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use proptest::prelude::*;
use tokengate_policy::{
    Context, ContextValue, Decision, Policy, PolicyDocument, PolicyKind, PolicySet,
};

const ACTIONS: &[&str] = &[
    "*",
    "iam:*",
    "iam:Get*",
    "iam:GetUser",
    "iam:List?sers",
    "sts:*",
];
const RESOURCES: &[&str] = &[
    "*",
    "arn:aws:iam::*:user/*",
    "arn:aws:iam::123456789012:user/alice",
    "arn:aws:iam::*:user/${aws:username}",
    "arn:aws:iam::*:role/*",
];
const CONDITIONS: &[&str] = &[
    "",
    r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
    r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#,
    r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
    r#"{"StringNotEquals":{"aws:username":"bob"}}"#,
    r#"{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#,
];

#[derive(Debug, Clone)]
struct Stmt {
    allow: bool,
    action: usize,
    resource: usize,
    condition: usize,
}

impl Stmt {
    fn json(&self) -> String {
        let condition = CONDITIONS[self.condition];
        let condition = if condition.is_empty() {
            String::new()
        } else {
            format!(r#","Condition":{condition}"#)
        };
        format!(
            r#"{{"Effect":"{}","Action":"{}","Resource":"{}"{condition}}}"#,
            if self.allow { "Allow" } else { "Deny" },
            ACTIONS[self.action],
            RESOURCES[self.resource],
        )
    }
}

fn stmt_strategy() -> impl Strategy<Value = Stmt> {
    (
        any::<bool>(),
        0..ACTIONS.len(),
        0..RESOURCES.len(),
        0..CONDITIONS.len(),
    )
        .prop_map(|(allow, action, resource, condition)| Stmt {
            allow,
            action,
            resource,
            condition,
        })
}

fn policies_strategy() -> impl Strategy<Value = Vec<Vec<Stmt>>> {
    prop::collection::vec(prop::collection::vec(stmt_strategy(), 1..4), 0..4)
}

fn build(policies: &[Vec<Stmt>]) -> Vec<Policy> {
    policies
        .iter()
        .enumerate()
        .map(|(i, stmts)| {
            let body: Vec<String> = stmts.iter().map(Stmt::json).collect();
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                body.join(",")
            );
            policy(&format!("p{i}"), PolicyKind::Managed, &text)
        })
        .collect()
}

fn request_context(mfa: Option<bool>, ip: bool, username: bool) -> Context {
    let mut ctx = Context::new();
    if let Some(mfa) = mfa {
        ctx.insert("aws:MultiFactorAuthPresent", ContextValue::from(mfa));
    }
    ctx.insert(
        "aws:SourceIp",
        ContextValue::from(if ip { "10.1.2.3" } else { "192.0.2.1" }),
    );
    if username {
        ctx.insert("aws:username", ContextValue::from("alice"));
    }
    ctx.insert(
        "aws:CurrentTime",
        ContextValue::from("2026-01-01T00:00:00Z"),
    );
    ctx
}

fn decide(policies: &[Policy], action: &str, ctx: &Context) -> Decision {
    let set = PolicySet {
        identity: policies,
        boundary: None,
        session: None,
        resource: None,
    };
    run(&set, user(), action, ALICE, ctx).decision
}

fn context_strategy() -> impl Strategy<Value = Context> {
    (
        prop::option::of(any::<bool>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mfa, ip, username)| request_context(mfa, ip, username))
}

proptest! {
    #[test]
    fn adding_a_deny_never_helps(
        policies in policies_strategy(),
        extra in stmt_strategy(),
        action in prop::sample::select(vec!["iam:GetUser", "iam:ListUsers", "sts:GetSessionToken"]),
        ctx in context_strategy(),
    ) {
        let before = decide(&build(&policies), action, &ctx);
        let mut more = policies.clone();
        more.push(vec![Stmt { allow: false, ..extra.clone() }]);
        let after = decide(&build(&more), action, &ctx);
        if before != Decision::Allowed {
            prop_assert_ne!(after, Decision::Allowed);
        }
        if before == Decision::ExplicitDeny {
            prop_assert_eq!(after, Decision::ExplicitDeny);
        }
        let mut more = policies;
        more.push(vec![Stmt { allow: true, ..extra }]);
        let after = decide(&build(&more), action, &ctx);
        if before == Decision::ExplicitDeny {
            prop_assert_eq!(after, Decision::ExplicitDeny);
        }
    }

    #[test]
    fn order_does_not_matter(
        policies in policies_strategy(),
        action in prop::sample::select(vec!["iam:GetUser", "iam:ListUsers", "sts:GetSessionToken"]),
        ctx in context_strategy(),
    ) {
        let before = decide(&build(&policies), action, &ctx);
        let mut reversed: Vec<Vec<Stmt>> = policies.into_iter().rev().collect();
        for stmts in &mut reversed {
            stmts.reverse();
        }
        prop_assert_eq!(decide(&build(&reversed), action, &ctx), before);
        // All statements in one policy: the same decision too.
        let merged: Vec<Stmt> = reversed.into_iter().flatten().collect();
        if !merged.is_empty() {
            prop_assert_eq!(decide(&build(&[merged]), action, &ctx), before);
        }
    }

    #[test]
    fn parse_never_panics(text in ".{0,300}") {
        for kind in [PolicyKind::Managed, PolicyKind::Trust, PolicyKind::UserInline] {
            let _ = PolicyDocument::parse(&text, kind);
        }
    }

    #[test]
    fn parse_never_panics_on_near_json(
        stmts in prop::collection::vec(stmt_strategy(), 1..3),
        cut in 0usize..400,
        insert in "[\\[\\]{}\":,*?$ a-zA-Z0-9\\\\]{0,3}",
    ) {
        let body: Vec<String> = stmts.iter().map(Stmt::json).collect();
        let text = format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, body.join(","));
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mutated = format!("{}{}{}", &text[..cut], insert, &text[cut..]);
        for kind in [PolicyKind::Managed, PolicyKind::Resource] {
            if let Ok(doc) = PolicyDocument::parse(&mutated, kind) {
                let again = PolicyDocument::parse(doc.text(), kind).unwrap();
                prop_assert_eq!(again.statement_count(), doc.statement_count());
            }
        }
    }
}
