//! The policy simulator family (policy.md §4.7): SimulateCustomPolicy,
//! SimulatePrincipalPolicy, GetContextKeysForCustomPolicy and
//! GetContextKeysForPrincipalPolicy. They call the same engine as enforcement
//! ([`tokengate_policy::evaluate`]), so what the simulator says is what a request gets —
//! with one difference AWS documents: the simulator infers no context key; only
//! `ContextEntries` fill the context, and keys a matching statement needed but did not get
//! are reported in `MissingContextValues`.
//!
//! One `EvaluationResults` member is returned per (action, resource) pair, with the
//! resource in `EvalResourceName`; `ResourceSpecificResults` is not used.

use std::sync::Arc;

use tokengate_policy::{
    Context, ContextValue, Evaluation, Policy, PolicyDocument, PolicyKind, PolicySet,
    PrincipalKind, Request, RequestPrincipal, SourceType, evaluate,
};

use crate::entities::{invalid_input, no_such_entity};
use crate::error::ApiError;
use crate::params::{Params, Validator};
use crate::registry::{Call, ResourceInput};
use crate::xml::Xml;

/// Most results one call evaluates (actions × resources).
const MAX_EVALUATIONS: usize = 1000;

/// SimulatePrincipalPolicy's and GetContextKeysForPrincipalPolicy's resource: the user or
/// group whose policies are read (policy.md §4.8: optional resource types user, group).
pub(crate) fn source_resource(input: &ResourceInput<'_>) -> String {
    input
        .params
        .get("PolicySourceArn")
        .unwrap_or("*")
        .to_owned()
}

/// `PolicyInputList.member.N` (or another list) parsed as identity policies.
fn policy_list(
    p: &Params,
    list: &str,
    kind: PolicyKind,
    source: SourceType,
) -> Result<Vec<Policy>, ApiError> {
    p.list(list)
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let document = PolicyDocument::parse(&text, kind)
                .map_err(|e| invalid_input(format!("{list}.{}: {e}", i + 1)))?;
            Ok(Policy {
                id: format!("{list}.{}", i + 1),
                source,
                document: Arc::new(document),
            })
        })
        .collect()
}

/// `ContextEntries.member.N.{ContextKeyName, ContextKeyValues.member.M, ContextKeyType}`.
fn context_entries(p: &Params) -> Result<Context, ApiError> {
    let mut c = Context::new();
    for i in 1.. {
        let base = format!("ContextEntries.member.{i}");
        let name = p.get(&format!("{base}.ContextKeyName"));
        let kind = p.get(&format!("{base}.ContextKeyType"));
        let values = p.list(&format!("{base}.ContextKeyValues"));
        let Some(name) = name else {
            if kind.is_none() && values.is_empty() {
                break;
            }
            return Err(invalid_input(format!("{base}.ContextKeyName is required.")));
        };
        if !(5..=256).contains(&name.chars().count()) {
            return Err(invalid_input(format!(
                "Context key name {name} must be between 5 and 256 characters."
            )));
        }
        // "If you leave the value for a condition key empty, then that key is ignored."
        if values.is_empty() {
            continue;
        }
        let kind = kind.unwrap_or("string");
        let value = ContextValue::from_simulator(kind, values).map_err(invalid_input)?;
        c.insert(name, value);
    }
    Ok(c)
}

struct Inputs {
    actions: Vec<String>,
    resources: Vec<String>,
    context: Context,
    boundary: Option<Policy>,
    resource_policy: Option<Policy>,
    caller_arn: Option<String>,
    max_items: usize,
    marker: usize,
}

fn common_inputs(p: &Params) -> Result<Inputs, ApiError> {
    let mut v = Validator::new();
    v.optional(p, crate::entities::MARKER);
    let max_items = v.integer(p, "MaxItems", 1, 1000);
    v.finish()?;
    let actions = p.list("ActionNames");
    if actions.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'actionNames' failed to satisfy \
             constraint: Member must not be null",
        ));
    }
    if let Some(a) = actions.iter().find(|a| a.contains('*')) {
        return Err(invalid_input(format!(
            "Action names must not contain wildcards: {a}"
        )));
    }
    let mut resources = p.list("ResourceArns");
    if resources.is_empty() {
        resources.push("*".to_owned());
    }
    if actions.len().saturating_mul(resources.len()) > MAX_EVALUATIONS {
        return Err(invalid_input(format!(
            "Too many evaluations: at most {MAX_EVALUATIONS} actions × resources per call."
        )));
    }
    let mut boundaries = policy_list(
        p,
        "PermissionsBoundaryPolicyInputList",
        PolicyKind::Managed,
        SourceType::None,
    )?;
    if boundaries.len() > 1 {
        return Err(invalid_input(
            "Only one permissions boundary policy may be simulated.",
        ));
    }
    let resource_policy = match p.get("ResourcePolicy") {
        Some(text) => Some(Policy {
            id: "ResourcePolicy".to_owned(),
            source: SourceType::Resource,
            document: Arc::new(
                PolicyDocument::parse(text, PolicyKind::Resource)
                    .map_err(|e| invalid_input(format!("ResourcePolicy: {e}")))?,
            ),
        }),
        None => None,
    };
    let caller_arn = p.get("CallerArn").map(str::to_owned);
    if resource_policy.is_some() && caller_arn.is_none() && p.get("PolicySourceArn").is_none() {
        return Err(invalid_input(
            "CallerArn is required when a ResourcePolicy is given.",
        ));
    }
    let marker = match p.get("Marker") {
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| invalid_input(format!("Invalid Marker: {m}")))?,
        None => 0,
    };
    Ok(Inputs {
        actions,
        resources,
        context: context_entries(p)?,
        boundary: boundaries.pop(),
        resource_policy,
        caller_arn,
        max_items: max_items
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(100),
        marker,
    })
}

fn simulate(
    account: &str,
    identity: &[Policy],
    boundary: Option<&Policy>,
    inputs: &Inputs,
    default_caller: &str,
) -> Result<String, ApiError> {
    let caller = inputs.caller_arn.as_deref().unwrap_or(default_caller);
    let pairs: Vec<(&String, &String)> = inputs
        .actions
        .iter()
        .flat_map(|a| inputs.resources.iter().map(move |r| (a, r)))
        .collect();
    let start = inputs.marker.min(pairs.len());
    let end = (start + inputs.max_items).min(pairs.len());
    let set = PolicySet {
        identity,
        boundary,
        session: None,
        resource: inputs.resource_policy.as_ref(),
    };
    let mut x = Xml::fragment();
    x.elem("EvaluationResults", |x| {
        for (action, resource) in &pairs[start..end] {
            let request = Request {
                principal: RequestPrincipal {
                    kind: PrincipalKind::User,
                    arn: caller,
                    account,
                    unique_id: caller,
                    entity_arn: None,
                },
                action,
                resource,
                context: &inputs.context,
            };
            let e = evaluate(&set, &request);
            x.elem("member", |x| result_xml(x, action, resource, &e));
        }
    });
    let truncated = end < pairs.len();
    x.text("IsTruncated", if truncated { "true" } else { "false" });
    if truncated {
        x.text("Marker", &end.to_string());
    }
    Ok(x.finish())
}

fn result_xml(x: &mut Xml, action: &str, resource: &str, e: &Evaluation) {
    x.text("EvalActionName", action);
    x.text("EvalResourceName", resource);
    x.text("EvalDecision", e.decision.as_str());
    x.elem("MatchedStatements", |x| {
        for m in &e.matched {
            x.elem("member", |x| {
                x.text("SourcePolicyId", &m.policy_id);
                x.text("SourcePolicyType", m.source.as_str());
                x.elem("StartPosition", |x| {
                    x.text("Line", &m.start.0.to_string());
                    x.text("Column", &m.start.1.to_string());
                });
                x.elem("EndPosition", |x| {
                    x.text("Line", &m.end.0.to_string());
                    x.text("Column", &m.end.1.to_string());
                });
            });
        }
    });
    x.elem("MissingContextValues", |x| {
        for k in &e.missing_context {
            x.text("member", k);
        }
    });
    if let Some(allowed) = e.boundary_allows {
        x.elem("PermissionsBoundaryDecisionDetail", |x| {
            x.text(
                "AllowedByPermissionsBoundary",
                if allowed { "true" } else { "false" },
            );
        });
    }
}

pub(crate) async fn simulate_custom_policy(c: Call) -> Result<Option<String>, ApiError> {
    let identity = policy_list(
        &c.params,
        "PolicyInputList",
        PolicyKind::UserInline,
        SourceType::None,
    )?;
    if identity.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'policyInputList' failed to satisfy \
             constraint: Member must not be null",
        ));
    }
    let inputs = common_inputs(&c.params)?;
    let caller = format!("arn:aws:iam::{}:user/simulated", c.state.account_id);
    simulate(
        &c.state.account_id,
        &identity,
        inputs.boundary.as_ref(),
        &inputs,
        &caller,
    )
    .map(Some)
}

/// The identity policies (and boundary) of the user, group or role `arn` names, read
/// through the same cache as enforcement.
async fn source_policies(c: &Call, arn: &str) -> Result<(Vec<Policy>, Option<Policy>), ApiError> {
    let prefix = format!("arn:aws:iam::{}:", c.state.account_id);
    let resource = arn
        .strip_prefix(&prefix)
        .ok_or_else(|| invalid_input(format!("Invalid ARN: {arn}")))?;
    let name = resource.rsplit('/').next().unwrap_or_default().to_owned();
    let (kind, missing) = match resource.split('/').next() {
        Some("user") => (
            "user",
            format!("The user with name {name} cannot be found."),
        ),
        Some("group") => (
            "group",
            format!("The group with name {name} cannot be found."),
        ),
        Some("role") => (
            "role",
            format!("The role with name {name} cannot be found."),
        ),
        _ => {
            return Err(invalid_input(format!(
                "PolicySourceArn must name a user, a group or a role: {arn}"
            )));
        }
    };
    let state = Arc::clone(&c.state);
    let found = tokio::task::spawn_blocking(move || {
        let (store, cache) = (state.store.as_ref(), &state.policies);
        Ok::<_, ApiError>(match kind {
            "user" => match store.user(&name)? {
                Some(u) => cache
                    .user(store, &u.user_id)?
                    .map(|a| (a.identity.clone(), a.boundary.clone())),
                None => None,
            },
            "role" => match store.role(&name)? {
                Some(r) => cache
                    .role(store, &r.role_id)?
                    .map(|a| (a.identity.clone(), a.boundary.clone())),
                None => None,
            },
            _ => cache.group(store, &name)?.map(|identity| (identity, None)),
        })
    })
    .await
    .map_err(ApiError::internal)??;
    found.ok_or_else(|| no_such_entity(missing))
}

pub(crate) async fn simulate_principal_policy(c: Call) -> Result<Option<String>, ApiError> {
    let source = c
        .params
        .get("PolicySourceArn")
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::validation(
                "1 validation error detected: Value null at 'policySourceArn' failed to \
                 satisfy constraint: Member must not be null",
            )
        })?;
    let inputs = common_inputs(&c.params)?;
    let (mut identity, boundary) = source_policies(&c, &source).await?;
    identity.extend(policy_list(
        &c.params,
        "PolicyInputList",
        PolicyKind::UserInline,
        SourceType::None,
    )?);
    // A boundary passed in replaces the entity's own (§4.7).
    let boundary = inputs.boundary.clone().or(boundary);
    simulate(
        &c.state.account_id,
        &identity,
        boundary.as_ref(),
        &inputs,
        &source,
    )
    .map(Some)
}

fn context_keys_xml(policies: &[Policy]) -> String {
    let mut keys: Vec<String> = Vec::new();
    for p in policies {
        for k in p.document.context_keys() {
            if !keys.iter().any(|have| have.eq_ignore_ascii_case(&k)) {
                keys.push(k);
            }
        }
    }
    keys.sort_by_key(|k| k.to_ascii_lowercase());
    let mut x = Xml::fragment();
    x.elem("ContextKeyNames", |x| {
        for k in &keys {
            x.text("member", k);
        }
    });
    x.finish()
}

pub(crate) async fn get_context_keys_for_custom_policy(
    c: Call,
) -> Result<Option<String>, ApiError> {
    let policies = policy_list(
        &c.params,
        "PolicyInputList",
        PolicyKind::UserInline,
        SourceType::None,
    )?;
    if policies.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'policyInputList' failed to satisfy \
             constraint: Member must not be null",
        ));
    }
    Ok(Some(context_keys_xml(&policies)))
}

pub(crate) async fn get_context_keys_for_principal_policy(
    c: Call,
) -> Result<Option<String>, ApiError> {
    let source = c
        .params
        .get("PolicySourceArn")
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::validation(
                "1 validation error detected: Value null at 'policySourceArn' failed to \
                 satisfy constraint: Member must not be null",
            )
        })?;
    let (mut policies, boundary) = source_policies(&c, &source).await?;
    policies.extend(boundary);
    policies.extend(policy_list(
        &c.params,
        "PolicyInputList",
        PolicyKind::UserInline,
        SourceType::None,
    )?);
    Ok(Some(context_keys_xml(&policies)))
}
