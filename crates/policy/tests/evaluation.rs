//! The decision procedure: every row of policy.md §1.2, the trust-policy table of §1.3, the
//! MFA examples of §3.2, policy variables (§2.4) and what an `Evaluation` reports.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tokengate_policy::{
    Context, ContextValue, Decision, DenyReason, PolicyKind, PolicySet, SourceType,
};

const RES: &str = "arn:aws:iam::123456789012:user/alice";

fn allow_all() -> Policy {
    identity(&stmt("Allow", "iam:*", "*", ""))
}

use tokengate_policy::Policy;

fn set<'a>(
    identity: &'a [Policy],
    boundary: Option<&'a Policy>,
    session: Option<&'a [Policy]>,
    resource: Option<&'a Policy>,
) -> PolicySet<'a> {
    PolicySet {
        identity,
        boundary,
        session,
        resource,
    }
}

fn boundary(action: &str) -> Policy {
    policy(
        "boundary",
        PolicyKind::Managed,
        &stmt("Allow", action, "*", ""),
    )
}

fn session_policy(effect: &str, action: &str) -> Policy {
    policy(
        "session",
        PolicyKind::Session,
        &stmt(effect, action, "*", ""),
    )
}

fn resource_policy(principal: &str, effect: &str) -> Policy {
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}",
            "Principal":{{"AWS":"{principal}"}},"Action":"iam:GetUser","Resource":"*"}}]}}"#
    );
    policy("resource", PolicyKind::Resource, &text)
}

fn trust(principal: &str, effect: &str) -> Policy {
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"{effect}",
            "Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    policy("trust", PolicyKind::Trust, &text)
}

fn decide(set: &PolicySet<'_>, who: tokengate_policy::RequestPrincipal<'_>) -> Decision {
    run(set, who, "iam:GetUser", RES, &Context::new()).decision
}

#[test]
fn identity_only() {
    let e = run(&only(&[]), user(), "iam:GetUser", RES, &Context::new());
    assert_eq!(e.decision, Decision::ImplicitDeny);
    assert_eq!(e.reason, Some(DenyReason::NoIdentityAllow));
    assert_eq!(e.boundary_allows, None);
    let p = [allow_all()];
    let e = run(&only(&p), user(), "iam:GetUser", RES, &Context::new());
    assert_eq!(e.decision, Decision::Allowed);
    assert_eq!(e.reason, None);
    assert_eq!(e.matched.len(), 1);
    let e = run(
        &only(&p),
        user(),
        "sts:GetSessionToken",
        "*",
        &Context::new(),
    );
    assert_eq!(e.decision, Decision::ImplicitDeny);
}

#[test]
fn identity_and_boundary_intersect() {
    let p = [allow_all()];
    let b = boundary("iam:Get*");
    let e = run(
        &set(&p, Some(&b), None, None),
        user(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(
        (e.decision, e.boundary_allows),
        (Decision::Allowed, Some(true))
    );
    let e = run(
        &set(&p, Some(&b), None, None),
        user(),
        "iam:ListUsers",
        "*",
        &Context::new(),
    );
    assert_eq!(e.decision, Decision::ImplicitDeny);
    assert_eq!(e.reason, Some(DenyReason::NoBoundaryAllow));
    assert_eq!(e.boundary_allows, Some(false));
    // A boundary alone grants nothing.
    let e = run(
        &set(&[], Some(&b), None, None),
        user(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.reason, Some(DenyReason::NoIdentityAllow));
}

#[test]
fn identity_boundary_and_session_intersect() {
    let p = [allow_all()];
    let b = boundary("iam:*");
    let s = [session_policy("Allow", "iam:GetUser")];
    let full = set(&p, Some(&b), Some(&s), None);
    assert_eq!(decide(&full, role_session()), Decision::Allowed);
    let e = run(&full, role_session(), "iam:ListUsers", "*", &Context::new());
    assert_eq!(e.reason, Some(DenyReason::NoSessionAllow));
    // A session policy alone grants nothing.
    assert_eq!(
        decide(&set(&[], None, Some(&s), None), role_session()),
        Decision::ImplicitDeny
    );
    // GetFederationToken without a session policy: no permissions (§1.1 step 6).
    let e = run(
        &set(&p, None, Some(&[]), None),
        federated(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.decision, Decision::ImplicitDeny);
    assert_eq!(e.reason, Some(DenyReason::NoSessionAllow));
    // A role session without session policies: identity alone.
    assert_eq!(
        decide(&set(&p, None, None, None), role_session()),
        Decision::Allowed
    );
}

#[test]
fn deny_anywhere_wins() {
    let p = [allow_all()];
    let deny_identity = [allow_all(), identity(&stmt("Deny", "iam:GetUser", "*", ""))];
    let e = run(
        &only(&deny_identity),
        user(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.decision, Decision::ExplicitDeny);
    assert_eq!(e.reason, Some(DenyReason::ExplicitIdentity));
    assert_eq!(e.matched.len(), 1);
    assert_eq!(e.matched[0].index, 0);

    let b = policy(
        "b",
        PolicyKind::Managed,
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
            {"Effect":"Deny","Action":"iam:GetUser","Resource":"*"}]}"#,
    );
    let e = run(
        &set(&p, Some(&b), None, None),
        user(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.reason, Some(DenyReason::ExplicitBoundary));
    assert_eq!(e.matched[0].index, 1);

    let s = [
        session_policy("Allow", "*"),
        session_policy("Deny", "iam:GetUser"),
    ];
    let e = run(
        &set(&p, None, Some(&s), None),
        role_session(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.reason, Some(DenyReason::ExplicitSession));

    let r = resource_policy(ALICE, "Deny");
    let e = run(
        &set(&p, None, None, Some(&r)),
        user(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.reason, Some(DenyReason::ExplicitResource));
    // A resource-policy Deny naming someone else does not apply.
    let r = resource_policy("arn:aws:iam::123456789012:user/carol", "Deny");
    assert_eq!(
        decide(&set(&p, None, None, Some(&r)), user()),
        Decision::Allowed
    );
    // The boundary's Deny beats a resource policy Allow for the role (iam-simulate row).
    let r = resource_policy(ROLE, "Allow");
    let deny_b = policy("b", PolicyKind::Managed, &stmt("Deny", "*", "*", ""));
    let e = run(
        &set(&[], Some(&deny_b), None, Some(&r)),
        role_session(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.decision, Decision::ExplicitDeny);
}

#[test]
fn resource_policy_naming_the_user() {
    // Not limited by identity implicit deny nor by the boundary.
    let r = resource_policy(ALICE, "Allow");
    let b = boundary("s3:*");
    let e = run(
        &set(&[], Some(&b), None, Some(&r)),
        user(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(e.decision, Decision::Allowed);
    assert_eq!(e.matched[0].source, SourceType::Resource);
    // By unique ID too.
    let r = resource_policy(ALICE_ID, "Allow");
    assert_eq!(
        decide(&set(&[], None, None, Some(&r)), user()),
        Decision::Allowed
    );
    // Principal "*".
    let r = resource_policy("*", "Allow");
    assert_eq!(
        decide(&set(&[], None, None, Some(&r)), user()),
        Decision::Allowed
    );
}

#[test]
fn resource_policy_naming_the_session_or_role() {
    let b = boundary("s3:*");
    let s = [session_policy("Allow", "s3:*")];
    // Session ARN: not limited by anything.
    let r = resource_policy(SESSION, "Allow");
    assert_eq!(
        decide(&set(&[], Some(&b), Some(&s), Some(&r)), role_session()),
        Decision::Allowed
    );
    // Role ARN: limited by boundary and session policy.
    let r = resource_policy(ROLE, "Allow");
    assert_eq!(
        decide(&set(&[], None, None, Some(&r)), role_session()),
        Decision::Allowed
    );
    let e = run(
        &set(&[], Some(&b), None, Some(&r)),
        role_session(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(
        (e.decision, e.reason),
        (Decision::ImplicitDeny, Some(DenyReason::NoBoundaryAllow))
    );
    let e = run(
        &set(&[], None, Some(&s), Some(&r)),
        role_session(),
        "iam:GetUser",
        RES,
        &Context::new(),
    );
    assert_eq!(
        (e.decision, e.reason),
        (Decision::ImplicitDeny, Some(DenyReason::NoSessionAllow))
    );
    // Role unique ID names the role.
    let r = resource_policy("AROAOPS000000000000", "Allow");
    assert_eq!(
        decide(&set(&[], Some(&b), None, Some(&r)), role_session()),
        Decision::ImplicitDeny
    );
    // Federated user: its own ARN is not limited; the federating user's is.
    let r = resource_policy(FEDERATED, "Allow");
    assert_eq!(
        decide(&set(&[], None, Some(&[]), Some(&r)), federated()),
        Decision::Allowed
    );
    let r = resource_policy(ALICE, "Allow");
    assert_eq!(
        decide(&set(&[], None, Some(&[]), Some(&r)), federated()),
        Decision::ImplicitDeny
    );
}

#[test]
fn resource_policy_naming_the_account_needs_identity() {
    for principal in [ACCOUNT, "arn:aws:iam::123456789012:root"] {
        let r = resource_policy(principal, "Allow");
        let e = run(
            &set(&[], None, None, Some(&r)),
            user(),
            "iam:GetUser",
            RES,
            &Context::new(),
        );
        assert_eq!(e.decision, Decision::ImplicitDeny);
        assert_eq!(e.reason, Some(DenyReason::NoIdentityAllow));
        let p = [allow_all()];
        assert_eq!(
            decide(&set(&p, None, None, Some(&r)), user()),
            Decision::Allowed
        );
    }
    // Another account's root names nobody here.
    let r = resource_policy("arn:aws:iam::999999999999:root", "Allow");
    assert_eq!(
        decide(&set(&[], None, None, Some(&r)), user()),
        Decision::ImplicitDeny
    );
}

#[test]
fn trust_policy_table() {
    let assume = |trust: &Policy, identity: &[Policy]| {
        let s = set(identity, None, None, Some(trust));
        run(&s, user(), "sts:AssumeRole", ROLE, &Context::new())
    };
    let allows = [identity(&stmt("Allow", "sts:AssumeRole", ROLE, ""))];
    let denies = [identity(&stmt("Deny", "sts:AssumeRole", "*", ""))];
    // Trust names the user, identity silent: allowed.
    assert_eq!(
        assume(&trust(ALICE, "Allow"), &[]).decision,
        Decision::Allowed
    );
    // Trust names the account, identity allows: allowed.
    assert_eq!(
        assume(&trust("arn:aws:iam::123456789012:root", "Allow"), &allows).decision,
        Decision::Allowed
    );
    assert_eq!(
        assume(&trust(ACCOUNT, "Allow"), &allows).decision,
        Decision::Allowed
    );
    // Trust names the account, identity silent: implicit deny.
    let e = assume(&trust("arn:aws:iam::123456789012:root", "Allow"), &[]);
    assert_eq!(
        (e.decision, e.reason),
        (Decision::ImplicitDeny, Some(DenyReason::NoIdentityAllow))
    );
    // Trust names another user or account, identity allows: implicit deny (trust must allow).
    for other in [
        "arn:aws:iam::123456789012:user/carol",
        "arn:aws:iam::999999999999:root",
    ] {
        let e = assume(&trust(other, "Allow"), &allows);
        assert_eq!(
            (e.decision, e.reason),
            (Decision::ImplicitDeny, Some(DenyReason::NoResourceAllow))
        );
        assert_eq!(
            DenyReason::NoResourceAllow.message_suffix("sts:AssumeRole"),
            ""
        );
    }
    // Identity denies: explicit deny whatever the trust says.
    assert_eq!(
        assume(&trust(ALICE, "Allow"), &denies).decision,
        Decision::ExplicitDeny
    );
    // Trust denies: explicit deny.
    let e = assume(&trust(ALICE, "Deny"), &allows);
    assert_eq!(
        (e.decision, e.reason),
        (Decision::ExplicitDeny, Some(DenyReason::ExplicitResource))
    );
    // A user named directly with no identity policy and an empty boundary: allowed.
    let b = boundary("s3:GetObject");
    let s = set(&[], Some(&b), None, None);
    let t = trust(ALICE, "Allow");
    let s = PolicySet {
        resource: Some(&t),
        ..s
    };
    assert_eq!(
        run(&s, user(), "sts:AssumeRole", ROLE, &Context::new()).decision,
        Decision::Allowed
    );
}

#[test]
fn mfa_examples_of_section_3_2() {
    let allow = allow_all();
    let deny_if_exists = identity(&stmt(
        "Deny",
        "*",
        "*",
        r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"false"}}"#,
    ));
    let deny_bool = identity(&stmt(
        "Deny",
        "*",
        "*",
        r#"{"Bool":{"aws:MultiFactorAuthPresent":"false"}}"#,
    ));
    let long_term = Context::new();
    let no_mfa = context(&[("aws:MultiFactorAuthPresent", ContextValue::from(false))]);
    let with_mfa = context(&[("aws:MultiFactorAuthPresent", ContextValue::from(true))]);
    let check = |deny: &Policy, ctx: &Context| {
        let p = [allow.clone(), deny.clone()];
        run(&only(&p), user(), "iam:GetUser", RES, ctx).decision
    };
    assert_eq!(check(&deny_if_exists, &long_term), Decision::ExplicitDeny);
    assert_eq!(check(&deny_if_exists, &no_mfa), Decision::ExplicitDeny);
    assert_eq!(check(&deny_if_exists, &with_mfa), Decision::Allowed);
    assert_eq!(check(&deny_bool, &long_term), Decision::Allowed);
    assert_eq!(check(&deny_bool, &no_mfa), Decision::ExplicitDeny);
    assert_eq!(check(&deny_bool, &with_mfa), Decision::Allowed);
    // Allow + BoolIfExists true admits long-term keys and MFA sessions; Bool only MFA.
    let if_exists = r#"{"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}"#;
    let bool_true = r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#;
    assert!(condition_allows(if_exists, &long_term));
    assert!(condition_allows(if_exists, &with_mfa));
    assert!(!condition_allows(if_exists, &no_mfa));
    assert!(!condition_allows(bool_true, &long_term));
    assert!(condition_allows(bool_true, &with_mfa));
}

#[test]
fn variables_in_resource_and_conditions() {
    let own = [identity(&stmt(
        "Allow",
        "iam:*AccessKey*",
        "arn:aws:iam::*:user/${aws:username}",
        "",
    ))];
    let alice = context(&[("aws:username", ContextValue::from("alice"))]);
    let e = run(&only(&own), user(), "iam:CreateAccessKey", RES, &alice);
    assert_eq!(e.decision, Decision::Allowed);
    let bob = "arn:aws:iam::123456789012:user/bob";
    assert_eq!(
        run(&only(&own), user(), "iam:CreateAccessKey", bob, &alice).decision,
        Decision::ImplicitDeny
    );
    // Missing variable: the resource matches nothing, and the key is reported missing.
    let e = run(
        &only(&own),
        user(),
        "iam:CreateAccessKey",
        RES,
        &Context::new(),
    );
    assert_eq!(e.decision, Decision::ImplicitDeny);
    assert_eq!(e.missing_context, vec!["aws:username"]);
    // The substituted value is literal.
    let star = context(&[("aws:username", ContextValue::from("*"))]);
    assert_eq!(
        run(&only(&own), user(), "iam:CreateAccessKey", RES, &star).decision,
        Decision::ImplicitDeny
    );
    // Variables only in the resource part of the ARN.
    let region = [identity(&stmt(
        "Allow",
        "ec2:*",
        "arn:aws:ec2:${aws:RequestedRegion}:*:*",
        "",
    ))];
    let ctx = context(&[("aws:RequestedRegion", ContextValue::from("us-east-1"))]);
    let instance = "arn:aws:ec2:us-east-1:1:instance/i-1";
    assert_eq!(
        run(&only(&region), user(), "ec2:RunInstances", instance, &ctx).decision,
        Decision::ImplicitDeny
    );
    // In conditions: StringEquals against a variable; missing → positive no, negated yes.
    let eq = r#"{"StringEquals":{"aws:PrincipalTag/owner":"${aws:username}"}}"#;
    let ne = r#"{"StringNotEquals":{"aws:PrincipalTag/owner":"${aws:username}"}}"#;
    let tagged = context(&[("aws:PrincipalTag/owner", ContextValue::from("alice"))]);
    let mut both = tagged.clone();
    both.insert("aws:username", ContextValue::from("alice"));
    assert!(condition_allows(eq, &both));
    assert!(!condition_allows(eq, &tagged));
    assert!(!condition_allows(ne, &both));
    assert!(condition_allows(ne, &tagged));
    // Defaults and special characters.
    let dflt = [identity(&stmt(
        "Allow",
        "iam:GetUser",
        "arn:aws:iam::*:user/${aws:PrincipalTag/team, 'shared'}-*",
        "",
    ))];
    let shared = "arn:aws:iam::123456789012:user/shared-x";
    assert_eq!(
        run(&only(&dflt), user(), "iam:GetUser", shared, &Context::new()).decision,
        Decision::Allowed
    );
    let red = context(&[("aws:PrincipalTag/team", ContextValue::from("red"))]);
    assert_eq!(
        run(&only(&dflt), user(), "iam:GetUser", shared, &red).decision,
        Decision::ImplicitDeny
    );
    let special = [identity(&stmt(
        "Allow",
        "iam:GetUser",
        "arn:aws:iam::*:user/a${*}b${?}c${$}",
        "",
    ))];
    let literal = "arn:aws:iam::1:user/a*b?c$";
    assert_eq!(
        run(
            &only(&special),
            user(),
            "iam:GetUser",
            literal,
            &Context::new()
        )
        .decision,
        Decision::Allowed
    );
    assert_eq!(
        run(
            &only(&special),
            user(),
            "iam:GetUser",
            "arn:aws:iam::1:user/axbyc$",
            &Context::new()
        )
        .decision,
        Decision::ImplicitDeny
    );
}

#[test]
fn version_2008_takes_variables_literally() {
    let text = r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"iam:GetUser",
        "Resource":"arn:aws:iam::*:user/${aws:username}"}}"#;
    let p = [identity(text)];
    let alice = context(&[("aws:username", ContextValue::from("alice"))]);
    assert_eq!(
        run(&only(&p), user(), "iam:GetUser", RES, &alice).decision,
        Decision::ImplicitDeny
    );
    let literal = "arn:aws:iam::1:user/${aws:username}";
    assert_eq!(
        run(&only(&p), user(), "iam:GetUser", literal, &alice).decision,
        Decision::Allowed
    );
    // Missing Version means 2008-10-17 for inline policies.
    let text = r#"{"Statement":{"Effect":"Allow","Action":"iam:GetUser",
        "Resource":"arn:aws:iam::*:user/${aws:username}"}}"#;
    let p = [identity(text)];
    assert_eq!(
        run(&only(&p), user(), "iam:GetUser", RES, &alice).decision,
        Decision::ImplicitDeny
    );
    assert!(doc(PolicyKind::UserInline, text).context_keys().is_empty());
}

#[test]
fn not_action_and_not_resource() {
    let p = [identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":["iam:*"],
            "NotResource":"arn:aws:s3:::secret/*"}}"#,
    )];
    assert_eq!(
        run(
            &only(&p),
            user(),
            "s3:GetObject",
            "arn:aws:s3:::public/x",
            &Context::new()
        )
        .decision,
        Decision::Allowed
    );
    assert_eq!(
        run(
            &only(&p),
            user(),
            "s3:GetObject",
            "arn:aws:s3:::secret/x",
            &Context::new()
        )
        .decision,
        Decision::ImplicitDeny
    );
    assert_eq!(
        run(&only(&p), user(), "IAM:GetUser", RES, &Context::new()).decision,
        Decision::ImplicitDeny
    );
}

#[test]
fn evaluation_reports_positions_and_missing_keys() {
    let text = "{\"Version\":\"2012-10-17\",\n\"Statement\":[\n  {\"Sid\":\"A\",\"Effect\":\"Allo\
        w\",\"Action\":\"iam:GetUser\",\"Resource\":\"*\",\n   \"Condition\":{\"StringEqualsIfExis\
        ts\":{\"aws:PrincipalTag/team\":\"red\"}}},\n  {\"Effect\":\"Allow\",\"Action\":\"iam:List\
        *\",\"Resource\":\"*\",\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"true\"}}}\n]}";
    let p = [tokengate_policy::Policy {
        id: "PolicyInputList.1".into(),
        source: SourceType::None,
        document: doc(PolicyKind::Managed, text),
    }];
    let e = run(&only(&p), user(), "iam:GetUser", "*", &Context::new());
    assert_eq!(e.decision, Decision::Allowed);
    assert_eq!(e.matched.len(), 1);
    let m = &e.matched[0];
    assert_eq!(
        (m.policy_id.as_str(), m.index, m.sid.as_deref()),
        ("PolicyInputList.1", 0, Some("A"))
    );
    assert_eq!((m.start, m.end), ((3, 3), (4, 73)));
    assert_eq!(e.missing_context, vec!["aws:PrincipalTag/team"]);
    let e = run(&only(&p), user(), "iam:ListUsers", "*", &Context::new());
    assert_eq!(e.decision, Decision::ImplicitDeny);
    assert!(e.matched.is_empty());
    assert_eq!(e.missing_context, vec!["aws:SecureTransport"]);
    assert_eq!(Decision::ImplicitDeny.as_str(), "implicitDeny");
    assert_eq!(
        DenyReason::NoIdentityAllow.message_suffix("iam:ListUsers"),
        "because no identity-based policy allows the iam:ListUsers action"
    );
    assert_eq!(SourceType::AwsManaged.as_str(), "aws-managed");
}
