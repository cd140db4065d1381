//! Fuzz `PolicyDocument::parse`: IAM policy JSON from CreatePolicy, Put*Policy,
//! CreateRole / UpdateAssumeRolePolicy and session policies.
//!
//! The input, as UTF-8, is parsed as every policy kind. Beyond "never panics", each
//! accepted document must be canonical: parsing its `text()` again gives the same
//! statement count and context keys, and evaluating it against a fixed request (as an
//! identity, boundary, session or resource policy, by kind) never panics and is
//! deterministic. The same bytes, split into lines, are also the simulator's
//! `ContextKeyValues` of every `ContextKeyType` (`ContextValue::from_simulator`), and what
//! that accepts joins the request context the documents are evaluated in.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use tokengate_policy::{
    Context, ContextValue, Policy, PolicyDocument, PolicyKind, PolicySet, PrincipalKind, Request,
    RequestPrincipal, SourceType, evaluate,
};

const KINDS: [PolicyKind; 8] = [
    PolicyKind::Managed,
    PolicyKind::AwsManaged,
    PolicyKind::UserInline,
    PolicyKind::GroupInline,
    PolicyKind::RoleInline,
    PolicyKind::Trust,
    PolicyKind::Session,
    PolicyKind::Resource,
];

/// The simulator's `ContextKeyType` values (policy.md §4.7).
const SIMULATOR_TYPES: [&str; 12] = [
    "string",
    "stringList",
    "numeric",
    "numericList",
    "boolean",
    "booleanList",
    "ip",
    "ipList",
    "binary",
    "binaryList",
    "date",
    "dateList",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut context = Context::new();
    context.insert("aws:username", ContextValue::from("alice"));
    context.insert("aws:MultiFactorAuthPresent", ContextValue::from(true));
    context.insert("aws:SourceIp", ContextValue::from("10.1.2.3"));
    context.insert(
        "aws:CurrentTime",
        ContextValue::from("2026-05-01T12:00:00Z"),
    );
    context.insert("aws:TagKeys", ContextValue::list(["team", "env"]));
    let values: Vec<String> = text.split('\n').map(str::to_owned).collect();
    for kind in SIMULATOR_TYPES {
        if let Ok(value) = ContextValue::from_simulator(kind, values.clone()) {
            context.insert(&format!("fuzz:{kind}"), value);
        }
    }
    let request = Request {
        principal: RequestPrincipal {
            kind: PrincipalKind::AssumedRole,
            arn: "arn:aws:sts::123456789012:assumed-role/ops/s1",
            account: "123456789012",
            unique_id: "AROAOPS000000000000:s1",
            entity_arn: Some("arn:aws:iam::123456789012:role/ops"),
        },
        action: "iam:GetUser",
        resource: "arn:aws:iam::123456789012:user/alice",
        context: &context,
    };
    for kind in KINDS {
        let Ok(document) = PolicyDocument::parse(text, kind) else {
            continue;
        };
        let again = PolicyDocument::parse(document.text(), kind).expect("text() re-parses");
        assert_eq!(again.statement_count(), document.statement_count());
        assert_eq!(again.context_keys(), document.context_keys());
        let policy = Policy {
            id: "fuzz".into(),
            source: SourceType::None,
            document: Arc::new(document),
        };
        let one = std::slice::from_ref(&policy);
        let set = match kind {
            PolicyKind::Trust | PolicyKind::Resource => PolicySet {
                identity: &[],
                boundary: None,
                session: None,
                resource: Some(&policy),
            },
            PolicyKind::Session => PolicySet {
                identity: one,
                boundary: None,
                session: Some(one),
                resource: None,
            },
            _ => PolicySet {
                identity: one,
                boundary: Some(&policy),
                session: None,
                resource: None,
            },
        };
        let first = evaluate(&set, &request);
        assert_eq!(evaluate(&set, &request), first);
    }
});
