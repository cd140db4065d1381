//! Policy documents: parsed, validated and compiled once (policy.md §2).

use crate::condition::{Condition, Operator};
use crate::error::{self, PolicyError};
use crate::json::{Position, statement_spans};
use crate::pattern::{ActionPattern, ArnPattern, ArnVariables};
use crate::validate::{RawPrincipal, RawStatement, VERSION_2012, validate};
use crate::{MANAGED_POLICY_MAX_SIZE, SESSION_POLICY_MAX_SIZE, TRUST_POLICY_MAX_SIZE};

/// Where a policy document is used; decides which elements it must or must not have and
/// its size limit (§2.1, §4.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// A customer managed policy (CreatePolicy, CreatePolicyVersion; also a permissions
    /// boundary). Version 2012-10-17 required; at most [`MANAGED_POLICY_MAX_SIZE`].
    Managed,
    /// An AWS managed policy from the built-in catalog: no size limit.
    AwsManaged,
    /// A user inline policy (PutUserPolicy). Its limit is per user, summed by the caller.
    UserInline,
    /// A group inline policy (PutGroupPolicy). Its limit is per group, summed by the caller.
    GroupInline,
    /// A role inline policy (PutRolePolicy). Its limit is per role, summed by the caller.
    RoleInline,
    /// A role trust policy: needs `Principal`, must not have `Resource`; at most
    /// [`TRUST_POLICY_MAX_SIZE`].
    Trust,
    /// A session policy (AssumeRole / GetFederationToken `Policy`); at most
    /// [`SESSION_POLICY_MAX_SIZE`].
    Session,
    /// Any other resource-based policy: needs `Principal` and `Resource`.
    Resource,
}

impl PolicyKind {
    /// The per-document size limit that [`PolicyDocument::parse`] enforces, if any.
    pub fn size_limit(self) -> Option<usize> {
        match self {
            PolicyKind::Managed => Some(MANAGED_POLICY_MAX_SIZE),
            PolicyKind::Trust => Some(TRUST_POLICY_MAX_SIZE),
            PolicyKind::Session => Some(SESSION_POLICY_MAX_SIZE),
            _ => None,
        }
    }

    fn names_principals(self) -> bool {
        matches!(self, PolicyKind::Trust | PolicyKind::Resource)
    }
}

/// `Effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    Allow,
    Deny,
}

/// A compiled `Principal` / `NotPrincipal` element. Only `AWS` entries (and `"*"`) can name
/// tokengate principals; `Service`, `Federated` and `CanonicalUser` entries never match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principals {
    pub(crate) negated: bool,
    pub(crate) any: bool,
    pub(crate) aws: Vec<String>,
}

/// One compiled statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) principals: Option<Principals>,
    pub(crate) not_action: bool,
    pub(crate) actions: Vec<ActionPattern>,
    pub(crate) not_resource: bool,
    /// `None` in trust policies: the resource is the role itself.
    pub(crate) resources: Option<Vec<ArnPattern>>,
    pub(crate) conditions: Vec<Condition>,
    /// Decision: a statement with an operator this crate does not know (accepted only with
    /// an empty key map, §2.3) fails closed: as an Allow it never applies, as a Deny it
    /// applies whenever its action, resource and other conditions do.
    pub(crate) unknown_operator: bool,
    /// Keys whose absence is reported in `missing_context`: (lower-cased, as written).
    pub(crate) keys: Vec<(String, String)>,
    /// Variables (without a default) in `Resource`: reported missing even when the
    /// resource could not match for want of them.
    pub(crate) resource_keys: Vec<(String, String)>,
    pub(crate) start: Position,
    pub(crate) end: Position,
}

/// A parsed, validated and compiled policy document. Cheap to share in an `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    text: String,
    kind: PolicyKind,
    statements: Vec<Statement>,
    context_keys: Vec<String>,
}

impl PolicyDocument {
    /// Parses and validates `text` as a policy of `kind`, giving AWS's
    /// `MalformedPolicyDocument` message on failure (§4.9), or
    /// [`PolicyError::TooLarge`] when the kind has a per-document limit and
    /// [`policy_size`](crate::policy_size) exceeds it.
    ///
    /// Version: `Managed` documents must say `2012-10-17`; other kinds accept
    /// `2008-10-17` too, and a missing `Version` means `2008-10-17`, where `${…}` is literal
    /// text (§2.1, §2.4).
    pub fn parse(text: &str, kind: PolicyKind) -> Result<PolicyDocument, PolicyError> {
        if let Some(limit) = kind.size_limit()
            && crate::policy_size(text) > limit
        {
            return Err(PolicyError::TooLarge { limit });
        }
        let raw = validate(text, kind)?;
        let variables = raw.version.as_deref() == Some(VERSION_2012);
        let spans = statement_spans(text).unwrap_or_default();
        let statements = raw
            .statements
            .into_iter()
            .enumerate()
            .map(|(i, statement)| {
                let (start, end) = spans.get(i).copied().unwrap_or(((0, 0), (0, 0)));
                compile_statement(statement, kind, variables, start, end)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let context_keys = collect_context_keys(&statements);
        Ok(PolicyDocument {
            text: text.to_owned(),
            kind,
            statements,
            context_keys,
        })
    }

    /// The original text, byte for byte.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The kind it was parsed as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// Condition keys the document references, in conditions and as `${…}` variables
    /// (Version 2012-10-17 only), each once (case-insensitively; spelled as first written),
    /// sorted case-insensitively — what GetContextKeysFor*Policy returns (§4.7).
    pub fn context_keys(&self) -> Vec<String> {
        self.context_keys.clone()
    }

    pub(crate) fn statements(&self) -> &[Statement] {
        &self.statements
    }
}

fn compile_statement(
    raw: RawStatement,
    kind: PolicyKind,
    variables: bool,
    start: Position,
    end: Position,
) -> Result<Statement, PolicyError> {
    let effect = if raw.effect == "Allow" {
        Effect::Allow
    } else {
        Effect::Deny
    };
    let (not_action, actions) = raw.action.unwrap_or((false, Vec::new()));
    let actions = actions.iter().map(|a| ActionPattern::compile(a)).collect();
    let resource_vars = if variables {
        ArnVariables::ResourcePart
    } else {
        ArnVariables::None
    };
    let not_resource = raw.resource.as_ref().is_some_and(|(n, _)| *n);
    let resources = raw.resource.map(|(_, list)| {
        list.iter()
            .map(|r| ArnPattern::compile(r, resource_vars))
            .collect()
    });
    let principals = if kind.names_principals() {
        raw.principal.map(|(negated, principal)| match principal {
            RawPrincipal::Star => Principals {
                negated,
                any: true,
                aws: Vec::new(),
            },
            RawPrincipal::Map(map) => {
                let aws: Vec<String> = map
                    .into_iter()
                    .filter(|(key, _)| key == "AWS")
                    .flat_map(|(_, values)| values)
                    .collect();
                let any = aws.iter().any(|a| a == "*");
                Principals { negated, any, aws }
            }
        })
    } else {
        None
    };
    let mut conditions = Vec::new();
    let mut unknown_operator = false;
    for (name, keys) in &raw.conditions {
        let Some(operator) = Operator::parse(name) else {
            unknown_operator = true;
            continue;
        };
        for (key, values) in keys {
            let condition = Condition::compile(operator, key, values, variables)
                .ok_or_else(|| PolicyError::malformed(error::LEGACY))?;
            conditions.push(condition);
        }
    }
    let mut statement = Statement {
        sid: raw.sid,
        effect,
        principals,
        not_action,
        actions,
        not_resource,
        resources,
        conditions,
        unknown_operator,
        keys: Vec::new(),
        resource_keys: Vec::new(),
        start,
        end,
    };
    statement.keys = statement_keys(&statement, true);
    statement.resource_keys = statement
        .resources
        .iter()
        .flatten()
        .flat_map(ArnPattern::variables)
        .filter(|var| !var.has_default())
        .map(|var| (var.key.to_lowercase(), var.key.clone()))
        .collect();
    Ok(statement)
}

/// Keys a statement references. With `missing_only`, variables that have a default are
/// left out (their absence changes nothing).
fn statement_keys(statement: &Statement, missing_only: bool) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str| {
        let lower = key.to_lowercase();
        if !keys.iter().any(|(l, _)| *l == lower) {
            keys.push((lower, key.to_owned()));
        }
    };
    for condition in &statement.conditions {
        add(&condition.key);
        for var in condition.variables() {
            if !(missing_only && var.has_default()) {
                add(&var.key);
            }
        }
    }
    for resource in statement.resources.iter().flatten() {
        for var in resource.variables() {
            if !(missing_only && var.has_default()) {
                add(&var.key);
            }
        }
    }
    keys
}

fn collect_context_keys(statements: &[Statement]) -> Vec<String> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for statement in statements {
        for (lower, key) in statement_keys(statement, false) {
            if !keys.iter().any(|(l, _)| *l == lower) {
                keys.push((lower, key));
            }
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys.into_iter().map(|(_, key)| key).collect()
}
