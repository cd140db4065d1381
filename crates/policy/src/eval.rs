//! The decision procedure of policy.md §1.1–§1.3, as a pure function of compiled policies
//! and a request.

use crate::context::Context;
use crate::document::{Effect, PolicyKind, Principals, Statement};
use crate::request::{Policy, PolicySet, PrincipalKind, Request, RequestPrincipal, SourceType};

/// The simulator's `EvalDecision` (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Some policy allows and nothing denies.
    Allowed,
    /// A `Deny` statement applies.
    ExplicitDeny,
    /// Nothing allows (or a boundary / session policy does not).
    ImplicitDeny,
}

impl Decision {
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allowed => "allowed",
            Decision::ExplicitDeny => "explicitDeny",
            Decision::ImplicitDeny => "implicitDeny",
        }
    }
}

/// Why a request was denied, for AWS's `AccessDenied` text (§4.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// A `Deny` in an identity-based policy.
    ExplicitIdentity,
    /// A `Deny` in the permissions boundary.
    ExplicitBoundary,
    /// A `Deny` in a session policy.
    ExplicitSession,
    /// A `Deny` in the resource-based policy.
    ExplicitResource,
    /// No identity-based policy allows.
    NoIdentityAllow,
    /// The permissions boundary does not allow.
    NoBoundaryAllow,
    /// No session policy allows (or a federated session has none).
    NoSessionAllow,
    /// A trust policy does not allow (§1.3: the trust policy must allow). AWS's message
    /// then ends after the resource, so [`DenyReason::message_suffix`] is empty.
    NoResourceAllow,
}

impl DenyReason {
    /// The text after `on resource: RES ` in the `AccessDenied` message (§4.10); empty for
    /// [`DenyReason::NoResourceAllow`], where the message ends at the resource.
    pub fn message_suffix(&self, action: &str) -> String {
        match self {
            DenyReason::ExplicitIdentity => {
                "with an explicit deny in an identity-based policy".to_owned()
            }
            DenyReason::ExplicitBoundary => {
                "with an explicit deny in a permissions boundary".to_owned()
            }
            DenyReason::ExplicitSession => "with an explicit deny in a session policy".to_owned(),
            DenyReason::ExplicitResource => {
                "with an explicit deny in a resource-based policy".to_owned()
            }
            DenyReason::NoIdentityAllow => {
                format!("because no identity-based policy allows the {action} action")
            }
            DenyReason::NoBoundaryAllow => {
                format!("because no permissions boundary allows the {action} action")
            }
            DenyReason::NoSessionAllow => {
                format!("because no session policy allows the {action} action")
            }
            DenyReason::NoResourceAllow => String::new(),
        }
    }
}

/// A statement that decided, for the simulator's `MatchedStatements` (§4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedStatement {
    /// The policy's [`Policy::id`].
    pub policy_id: String,
    /// The policy's [`Policy::source`].
    pub source: SourceType,
    /// 0-based index of the statement in its policy.
    pub index: usize,
    /// Its `Sid`, if any.
    pub sid: Option<String>,
    /// Line and column (1-based, columns in characters) of the statement's `{`.
    pub start: (u32, u32),
    /// Line and column just after the statement's `}`.
    pub end: (u32, u32),
}

/// The result of [`evaluate`]: the decision and what explains it. Deterministic: the same
/// inputs give the same value, lists in policy and statement order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// The decision.
    pub decision: Decision,
    /// Why it is not `Allowed`; `None` when allowed.
    pub reason: Option<DenyReason>,
    /// The `Deny` statements that apply if explicitly denied; the identity, session and
    /// resource `Allow` statements that granted, if allowed; empty on implicit deny.
    pub matched: Vec<MatchedStatement>,
    /// Condition keys (and `${…}` variables without a default) referenced by statements
    /// whose action, resource and principal matched, but absent from the context. Each
    /// once, in first-seen order.
    pub missing_context: Vec<String>,
    /// Whether the boundary allows; `None` without a boundary.
    pub boundary_allows: Option<bool>,
}

/// How a resource-based policy statement names the caller (§1.1 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    /// `arn:aws:iam::ACCT:root` or `ACCT`: delegates to the account's identity policies.
    Account,
    /// The role of a role session, or the IAM user behind a federated session: limited by
    /// the boundary and session policies.
    Entity,
    /// The user, session or federated-user ARN, its unique ID, or `*`: not limited.
    Direct,
}

/// A statement that applied.
#[derive(Debug, Clone, Copy)]
struct Hit<'a> {
    policy: &'a Policy,
    index: usize,
    statement: &'a Statement,
}

#[derive(Debug, Default)]
struct Scan<'a> {
    allows: Vec<Hit<'a>>,
    denies: Vec<Hit<'a>>,
    grant: Option<Grant>,
}

/// Decides `request` against `set` (§1.1–§1.3):
///
/// 1. A `Deny` that applies in any identity, boundary, session or resource policy →
///    `ExplicitDeny` (reason in that order of precedence).
/// 2. Identity path: an identity Allow, and the boundary allows (if any), and a session
///    policy allows (if the session carries them; an empty list allows nothing).
/// 3. Resource path (non-trust policies): a statement naming the caller's own ARN, unique
///    ID, or `*` allows by itself; one naming the role (for a role session) or the
///    federating user allows within the boundary and session policies; one naming the
///    account allows nothing by itself.
/// 4. Trust policies must allow (§1.3): naming the caller directly suffices; naming the
///    role needs the boundary and session policies; naming the account needs the identity
///    path as well.
pub fn evaluate(set: &PolicySet<'_>, request: &Request<'_>) -> Evaluation {
    let mut missing: Vec<&str> = Vec::new();
    let identity = scan_policies(set.identity, request, &mut missing);
    let boundary = set
        .boundary
        .map(|b| scan_policies([b], request, &mut missing));
    let session = set.session.map(|s| scan_policies(s, request, &mut missing));
    let resource = set
        .resource
        .map(|r| scan_policies([r], request, &mut missing));
    let boundary_allows = boundary.as_ref().map(|b| !b.allows.is_empty());
    let missing_context = dedup(missing);

    let explicit = [
        (Some(&identity), DenyReason::ExplicitIdentity),
        (boundary.as_ref(), DenyReason::ExplicitBoundary),
        (session.as_ref(), DenyReason::ExplicitSession),
        (resource.as_ref(), DenyReason::ExplicitResource),
    ];
    if let Some(&(_, reason)) = explicit
        .iter()
        .find(|(s, _)| s.is_some_and(|s| !s.denies.is_empty()))
    {
        let matched = explicit
            .iter()
            .filter_map(|(s, _)| *s)
            .flat_map(|s| s.denies.iter())
            .map(matched_statement)
            .collect();
        return Evaluation {
            decision: Decision::ExplicitDeny,
            reason: Some(reason),
            matched,
            missing_context,
            boundary_allows,
        };
    }

    let identity_allows = !identity.allows.is_empty();
    let boundary_ok = boundary_allows.unwrap_or(true);
    let session_ok = session.as_ref().is_none_or(|s| !s.allows.is_empty());
    let identity_path = identity_allows && boundary_ok && session_ok;
    let grant = resource.as_ref().and_then(|r| r.grant);
    let is_trust = set
        .resource
        .is_some_and(|r| r.document.kind() == PolicyKind::Trust);
    let resource_path = match grant {
        Some(Grant::Direct) => true,
        Some(Grant::Entity) => boundary_ok && session_ok,
        Some(Grant::Account) => is_trust && identity_path,
        None => false,
    };
    let allowed = resource_path || (identity_path && !is_trust);

    if allowed {
        let mut matched: Vec<MatchedStatement> = Vec::new();
        if identity_path {
            matched.extend(identity.allows.iter().map(matched_statement));
            if let Some(session) = &session {
                matched.extend(session.allows.iter().map(matched_statement));
            }
        }
        if resource_path && let Some(resource) = &resource {
            matched.extend(resource.allows.iter().map(matched_statement));
        }
        return Evaluation {
            decision: Decision::Allowed,
            reason: None,
            matched,
            missing_context,
            boundary_allows,
        };
    }

    let reason = if is_trust && grant.is_none() {
        DenyReason::NoResourceAllow
    } else if !identity_allows && grant != Some(Grant::Entity) {
        DenyReason::NoIdentityAllow
    } else if !boundary_ok {
        DenyReason::NoBoundaryAllow
    } else if !session_ok {
        DenyReason::NoSessionAllow
    } else {
        DenyReason::NoIdentityAllow
    };
    Evaluation {
        decision: Decision::ImplicitDeny,
        reason: Some(reason),
        matched: Vec::new(),
        missing_context,
        boundary_allows,
    }
}

fn scan_policies<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    request: &Request<'_>,
    missing: &mut Vec<&'a str>,
) -> Scan<'a> {
    let mut scan = Scan::default();
    for policy in policies {
        scan_policy(policy, request, &mut scan, missing);
    }
    scan
}

fn scan_policy<'a>(
    policy: &'a Policy,
    request: &Request<'_>,
    scan: &mut Scan<'a>,
    missing: &mut Vec<&'a str>,
) {
    let document = &policy.document;
    let check_principal = matches!(document.kind(), PolicyKind::Trust | PolicyKind::Resource);
    for (index, statement) in document.statements().iter().enumerate() {
        if !action_applies(statement, request.action) {
            continue;
        }
        if !resource_applies(statement, request.resource, request.context) {
            for (lower, key) in &statement.resource_keys {
                if request.context.get_lower(lower).is_none() {
                    missing.push(key);
                }
            }
            continue;
        }
        let grant = if check_principal {
            match statement
                .principals
                .as_ref()
                .and_then(|p| principal_grant(p, &request.principal))
            {
                Some(grant) => Some(grant),
                None => continue,
            }
        } else {
            None
        };
        for (lower, key) in &statement.keys {
            if request.context.get_lower(lower).is_none() {
                missing.push(key);
            }
        }
        let conditions_hold = statement
            .conditions
            .iter()
            .all(|c| c.holds(request.context));
        let hit = Hit {
            policy,
            index,
            statement,
        };
        match statement.effect {
            Effect::Deny if conditions_hold => scan.denies.push(hit),
            Effect::Allow if conditions_hold && !statement.unknown_operator => {
                scan.allows.push(hit);
                scan.grant = scan.grant.max(grant);
            }
            _ => {}
        }
    }
}

fn action_applies(statement: &Statement, action: &str) -> bool {
    statement.actions.iter().any(|p| p.matches(action)) != statement.not_action
}

fn resource_applies(statement: &Statement, resource: &str, context: &Context) -> bool {
    match &statement.resources {
        None => true,
        Some(patterns) => {
            patterns.iter().any(|p| p.matches(resource, context)) != statement.not_resource
        }
    }
}

/// How `principals` names the caller, `None` if it does not.
fn principal_grant(principals: &Principals, caller: &RequestPrincipal<'_>) -> Option<Grant> {
    let named = if principals.any {
        Some(Grant::Direct)
    } else {
        principals
            .aws
            .iter()
            .filter_map(|entry| entry_grant(entry, caller))
            .max()
    };
    if principals.negated {
        // NotPrincipal: everyone not listed, as if named by `*`.
        return if named.is_some() {
            None
        } else {
            Some(Grant::Direct)
        };
    }
    named
}

fn entry_grant(entry: &str, caller: &RequestPrincipal<'_>) -> Option<Grant> {
    if entry == "*" || entry == caller.arn || entry == caller.unique_id {
        return Some(Grant::Direct);
    }
    if caller.entity_arn == Some(entry) {
        return Some(Grant::Entity);
    }
    if caller.kind == PrincipalKind::AssumedRole
        && caller
            .unique_id
            .split_once(':')
            .is_some_and(|(role_id, _)| role_id == entry)
    {
        return Some(Grant::Entity);
    }
    if entry == caller.account || is_root_arn_of(entry, caller.account) {
        return Some(Grant::Account);
    }
    None
}

/// `arn:PARTITION:iam::ACCOUNT:root`.
fn is_root_arn_of(entry: &str, account: &str) -> bool {
    let mut parts = entry.split(':');
    parts.next() == Some("arn")
        && parts.next().is_some()
        && parts.next() == Some("iam")
        && parts.next() == Some("")
        && parts.next() == Some(account)
        && parts.next() == Some("root")
        && parts.next().is_none()
}

fn matched_statement(hit: &Hit<'_>) -> MatchedStatement {
    MatchedStatement {
        policy_id: hit.policy.id.clone(),
        source: hit.policy.source,
        index: hit.index,
        sid: hit.statement.sid.clone(),
        start: hit.statement.start,
        end: hit.statement.end,
    }
}

fn dedup(keys: Vec<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        if !out.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            out.push(key.to_owned());
        }
    }
    out
}
