//! Builders shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tokengate_policy::{
    Context, ContextValue, Evaluation, Policy, PolicyDocument, PolicyKind, PolicySet,
    PrincipalKind, Request, RequestPrincipal, SourceType, evaluate,
};

pub const ACCOUNT: &str = "123456789012";
pub const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
pub const ALICE_ID: &str = "AIDAALICE0000000000";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/ops";
pub const SESSION: &str = "arn:aws:sts::123456789012:assumed-role/ops/s1";
pub const FEDERATED: &str = "arn:aws:sts::123456789012:federated-user/bob";

pub fn doc(kind: PolicyKind, text: &str) -> Arc<PolicyDocument> {
    Arc::new(PolicyDocument::parse(text, kind).unwrap_or_else(|e| panic!("{e}: {text}")))
}

pub fn policy(id: &str, kind: PolicyKind, text: &str) -> Policy {
    let source = match kind {
        PolicyKind::Trust | PolicyKind::Resource => SourceType::Resource,
        PolicyKind::Session => SourceType::Session,
        _ => SourceType::UserManaged,
    };
    Policy {
        id: id.to_owned(),
        source,
        document: doc(kind, text),
    }
}

/// A 2012-10-17 identity policy with one statement.
pub fn stmt(effect: &str, action: &str, resource: &str, condition: &str) -> String {
    let condition = if condition.is_empty() {
        String::new()
    } else {
        format!(r#","Condition":{condition}"#)
    };
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}","Action":"{action}",
            "Resource":"{resource}"{condition}}}]}}"#
    )
}

pub fn identity(text: &str) -> Policy {
    policy("identity", PolicyKind::UserInline, text)
}

pub fn user() -> RequestPrincipal<'static> {
    RequestPrincipal {
        kind: PrincipalKind::User,
        arn: ALICE,
        account: ACCOUNT,
        unique_id: ALICE_ID,
        entity_arn: None,
    }
}

pub fn role_session() -> RequestPrincipal<'static> {
    RequestPrincipal {
        kind: PrincipalKind::AssumedRole,
        arn: SESSION,
        account: ACCOUNT,
        unique_id: "AROAOPS000000000000:s1",
        entity_arn: Some(ROLE),
    }
}

pub fn federated() -> RequestPrincipal<'static> {
    RequestPrincipal {
        kind: PrincipalKind::FederatedUser,
        arn: FEDERATED,
        account: ACCOUNT,
        unique_id: "123456789012:bob",
        entity_arn: Some(ALICE),
    }
}

pub fn context(entries: &[(&str, ContextValue)]) -> Context {
    let mut context = Context::new();
    for (key, value) in entries {
        context.insert(key, value.clone());
    }
    context
}

pub fn run(
    set: &PolicySet<'_>,
    principal: RequestPrincipal<'_>,
    action: &str,
    resource: &str,
    context: &Context,
) -> Evaluation {
    evaluate(
        set,
        &Request {
            principal,
            action,
            resource,
            context,
        },
    )
}

pub fn only(identity: &[Policy]) -> PolicySet<'_> {
    PolicySet {
        identity,
        boundary: None,
        session: None,
        resource: None,
    }
}

/// Whether one condition block allows `iam:GetUser` on `*` for alice with `context`.
pub fn condition_allows(condition: &str, context: &Context) -> bool {
    let p = [identity(&stmt("Allow", "iam:GetUser", "*", condition))];
    let e = run(&only(&p), user(), "iam:GetUser", "*", context);
    e.decision == tokengate_policy::Decision::Allowed
}
