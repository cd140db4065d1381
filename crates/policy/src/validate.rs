//! Validation of a policy document with AWS's messages, in the order IAM reports them
//! (policy.md §4.9; order as in moto's AWS-derived validator): syntax, version, legacy
//! parsing, Sid rules, actions present, resource formats, action vendors, then the rules
//! that depend on the policy's kind.

use crate::condition::Operator;
use crate::document::PolicyKind;
use crate::error::{self, PolicyError};
use crate::json::Json;

pub(crate) const VERSION_2012: &str = "2012-10-17";
const VERSION_2008: &str = "2008-10-17";

/// Partitions accepted in a resource ARN, plus `*`.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// Resource-part prefixes of IAM ARNs (§4.9), plus `root` and `*` (decision: the account
/// root ARN and a wildcard resource part are valid IAM resources).
const IAM_RESOURCE_PREFIXES: &[&str] = &[
    "user/",
    "federated-user/",
    "role/",
    "group/",
    "instance-profile/",
    "mfa/",
    "server-certificate/",
    "policy/",
    "sms-mfa/",
    "saml-provider/",
    "oidc-provider/",
    "report/",
    "access-report/",
    "root",
    "*",
];

/// A policy that passed the syntax check, as plain data.
#[derive(Debug)]
pub(crate) struct RawPolicy {
    pub(crate) version: Option<String>,
    pub(crate) statements: Vec<RawStatement>,
}

#[derive(Debug)]
pub(crate) struct RawStatement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: String,
    /// `Principal` or `NotPrincipal` (the bool is true for `NotPrincipal`).
    pub(crate) principal: Option<(bool, RawPrincipal)>,
    /// `Action` or `NotAction` (true for `NotAction`).
    pub(crate) action: Option<(bool, Vec<String>)>,
    /// `Resource` or `NotResource` (true for `NotResource`).
    pub(crate) resource: Option<(bool, Vec<String>)>,
    /// Operator name → (key, values), in document order.
    pub(crate) conditions: RawConditions,
}

#[derive(Debug)]
pub(crate) enum RawPrincipal {
    /// `"*"`.
    Star,
    /// `{"AWS": [...], "Service": [...], ...}`.
    Map(Vec<(String, Vec<String>)>),
}

fn syntax() -> PolicyError {
    PolicyError::malformed(error::SYNTAX)
}

/// Checks `text` and returns its data, or the first error IAM would report.
pub(crate) fn validate(text: &str, kind: PolicyKind) -> Result<RawPolicy, PolicyError> {
    let json = Json::parse(text).ok_or_else(syntax)?;
    let policy = read_policy(&json).ok_or_else(syntax)?;

    if kind == PolicyKind::Managed && policy.version.as_deref() != Some(VERSION_2012) {
        return Err(PolicyError::malformed(error::VERSION));
    }

    // Legacy parsing: exact Effect spelling and Date values; resource formats are collected
    // here but, as in IAM, reported only after the Sid and action checks.
    let mut resource_error = None;
    for statement in &policy.statements {
        if statement.effect != "Allow" && statement.effect != "Deny" {
            return Err(PolicyError::malformed(error::LEGACY));
        }
        for (operator, keys) in &statement.conditions {
            if Operator::parse(operator).is_some_and(|op| op.is_date())
                && keys
                    .iter()
                    .flat_map(|(_, values)| values)
                    .any(|v| !legacy_date(v))
            {
                return Err(PolicyError::malformed(error::LEGACY));
            }
        }
    }
    for negated in [false, true] {
        for statement in &policy.statements {
            let Some((_, resources)) = statement.resource.as_ref().filter(|r| r.0 == negated)
            else {
                continue;
            };
            let mut sorted: Vec<&String> = resources.iter().collect();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            for resource in sorted {
                if let Some(message) = resource_format_error(resource) {
                    resource_error = Some(message);
                }
            }
            if resource_error.is_none() && resources.iter().any(|r| !legacy_resource(r)) {
                return Err(PolicyError::malformed(error::LEGACY));
            }
        }
    }

    let mut sids: Vec<&str> = Vec::new();
    for sid in policy.statements.iter().filter_map(|s| s.sid.as_deref()) {
        if sid.is_empty() {
            continue;
        }
        if sids.contains(&sid) {
            return Err(PolicyError::malformed(error::SID_UNIQUE));
        }
        sids.push(sid);
    }
    if kind != PolicyKind::Resource
        && !sids
            .iter()
            .all(|s| s.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(PolicyError::malformed(error::SID_CHARSET));
    }

    if policy
        .statements
        .iter()
        .any(|s| s.action.as_ref().is_none_or(|(_, a)| a.is_empty()))
    {
        return Err(PolicyError::malformed(error::NO_ACTIONS));
    }
    if let Some(message) = resource_error {
        return Err(PolicyError::Malformed(message));
    }
    for negated in [false, true] {
        for statement in &policy.statements {
            if let Some((n, actions)) = &statement.action
                && *n == negated
            {
                actions.iter().try_for_each(|a| check_prefixed(a))?;
            }
        }
    }
    for statement in &policy.statements {
        for (_, keys) in &statement.conditions {
            keys.iter().try_for_each(|(key, _)| check_prefixed(key))?;
        }
    }

    check_kind(&policy, kind)?;
    Ok(policy)
}

/// The rules that differ between identity, trust and resource-based policies.
fn check_kind(policy: &RawPolicy, kind: PolicyKind) -> Result<(), PolicyError> {
    let statements = &policy.statements;
    match kind {
        PolicyKind::Trust => {
            if statements.iter().any(|s| s.resource.is_some()) {
                return Err(PolicyError::malformed(error::PROHIBITED_RESOURCE));
            }
            // Decision: NotPrincipal is not allowed in trust policies (§2.1) and counts as
            // "no principals".
            if statements
                .iter()
                .any(|s| !matches!(s.principal, Some((false, _))))
            {
                return Err(PolicyError::malformed(error::NO_PRINCIPALS));
            }
        }
        PolicyKind::Resource => {
            if statements
                .iter()
                .any(|s| s.resource.as_ref().is_none_or(|(_, r)| r.is_empty()))
            {
                return Err(PolicyError::malformed(error::NO_RESOURCES));
            }
            if statements.iter().any(|s| s.principal.is_none()) {
                return Err(PolicyError::malformed(error::NO_PRINCIPALS));
            }
        }
        _ => {
            if statements
                .iter()
                .any(|s| s.resource.as_ref().is_none_or(|(_, r)| r.is_empty()))
            {
                return Err(PolicyError::malformed(error::NO_RESOURCES));
            }
            if statements.iter().any(|s| s.principal.is_some()) {
                return Err(PolicyError::malformed(error::PRINCIPAL_FORBIDDEN));
            }
        }
    }
    Ok(())
}

fn read_policy(json: &Json) -> Option<RawPolicy> {
    let members = json.as_object()?;
    let mut version = None;
    let mut statement = None;
    for (key, value) in members {
        match key.as_str() {
            "Version" => {
                let v = value.as_str()?;
                if v != VERSION_2012 && v != VERSION_2008 {
                    return None;
                }
                version = Some(v.to_owned());
            }
            "Id" => {
                value.as_str()?;
            }
            "Statement" => statement = Some(value),
            // Accepted by IAM's validator at the top level and otherwise ignored (§4.9).
            "Conditions" => {}
            _ => return None,
        }
    }
    let statements = match statement? {
        Json::Array(items) if !items.is_empty() => items
            .iter()
            .map(read_statement)
            .collect::<Option<Vec<_>>>()?,
        object @ Json::Object(_) => vec![read_statement(object)?],
        _ => return None,
    };
    Some(RawPolicy {
        version,
        statements,
    })
}

fn read_statement(json: &Json) -> Option<RawStatement> {
    let mut statement = RawStatement {
        sid: None,
        effect: String::new(),
        principal: None,
        action: None,
        resource: None,
        conditions: Vec::new(),
    };
    let mut effect = None;
    for (key, value) in json.as_object()? {
        match key.as_str() {
            "Sid" => statement.sid = Some(value.as_str()?.to_owned()),
            "Effect" => effect = Some(value.as_str()?.to_owned()),
            "Action" | "NotAction" => {
                if statement.action.is_some() {
                    return None;
                }
                statement.action = Some((key == "NotAction", strings(value)?));
            }
            "Resource" | "NotResource" => {
                if statement.resource.is_some() {
                    return None;
                }
                statement.resource = Some((key == "NotResource", strings(value)?));
            }
            "Principal" | "NotPrincipal" => {
                if statement.principal.is_some() {
                    return None;
                }
                statement.principal = Some((key == "NotPrincipal", read_principal(value)?));
            }
            "Condition" => statement.conditions = read_conditions(value)?,
            _ => return None,
        }
    }
    let effect = effect?;
    if !effect.eq_ignore_ascii_case("allow") && !effect.eq_ignore_ascii_case("deny") {
        return None;
    }
    statement.effect = effect;
    Some(statement)
}

/// A string or a list of strings (§2.1: "the brackets are optional").
fn strings(json: &Json) -> Option<Vec<String>> {
    match json {
        Json::String(s) => Some(vec![s.clone()]),
        Json::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

fn read_principal(json: &Json) -> Option<RawPrincipal> {
    match json {
        Json::String(s) if s == "*" => Some(RawPrincipal::Star),
        Json::Object(members) => {
            let mut map = Vec::new();
            for (key, value) in members {
                if !matches!(
                    key.as_str(),
                    "AWS" | "Federated" | "Service" | "CanonicalUser"
                ) {
                    return None;
                }
                map.push((key.clone(), strings(value)?));
            }
            Some(RawPrincipal::Map(map))
        }
        _ => None,
    }
}

type RawConditions = Vec<(String, Vec<(String, Vec<String>)>)>;

fn read_conditions(json: &Json) -> Option<RawConditions> {
    let mut conditions = Vec::new();
    for (operator, block) in json.as_object()? {
        let block = block.as_object()?;
        let mut keys = Vec::new();
        for (key, values) in block {
            keys.push((key.clone(), condition_values(values)?));
        }
        // An unknown operator is a syntax error unless its key map is empty (§2.3).
        if Operator::parse(operator).is_none() && !keys.is_empty() {
            return None;
        }
        conditions.push((operator.clone(), keys));
    }
    Some(conditions)
}

/// A string, boolean or number, or a list of those; booleans and numbers become their JSON
/// text (AWS's own AssumeRole example uses a JSON `true`, §2.3).
fn condition_values(json: &Json) -> Option<Vec<String>> {
    let scalar = |json: &Json| match json {
        Json::String(s) => Some(s.clone()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Number(n) => Some(n.clone()),
        _ => None,
    };
    match json {
        Json::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|s| vec![s]),
    }
}

/// IAM's legacy date check: text with `-` or `T` must be an ISO 8601 date, anything else
/// epoch seconds within `0..=i64::MAX` (§4.9).
fn legacy_date(value: &str) -> bool {
    crate::scalar::parse_date(value).is_some()
}

/// IAM's legacy ARN check: a `::` needs at least five colons, and the service part must
/// not be empty.
fn legacy_resource(resource: &str) -> bool {
    if resource == "*" {
        return true;
    }
    (resource.matches(':').count() >= 5 || !resource.contains("::"))
        && resource
            .split(':')
            .nth(2)
            .is_some_and(|service| !service.is_empty())
}

/// The format message for one `Resource` entry, if it has one (§4.9).
fn resource_format_error(resource: &str) -> Option<String> {
    if resource == "*" {
        return None;
    }
    let Some((_, rest)) = resource.split_once(':') else {
        return Some(format!(
            "Resource {resource} must be in ARN format or \"*\"."
        ));
    };
    let (partition, after) = match rest.split_once(':') {
        Some((partition, after)) => (partition, Some(after)),
        None => (rest, None),
    };
    if partition != "*" && !PARTITIONS.contains(&partition) {
        let remaining: Vec<&str> = after.unwrap_or("").split(':').collect();
        let first = remaining.first().copied().unwrap_or("");
        let arn1 = if !first.is_empty() || remaining.len() > 1 {
            first
        } else {
            "*"
        };
        let arn2 = remaining.get(1).copied().unwrap_or("*");
        let arn3 = remaining.get(2).copied().unwrap_or("*");
        let arn4 = remaining.get(3..).map_or("*".to_owned(), |r| r.join(":"));
        let arn4 = if arn4.is_empty() && remaining.len() <= 3 {
            "*".to_owned()
        } else {
            arn4
        };
        return Some(format!(
            "Partition \"{partition}\" is not valid for resource \
             \"arn:{partition}:{arn1}:{arn2}:{arn3}:{arn4}\"."
        ));
    }
    let Some(after) = after else {
        return Some(error::RESOURCE_VENDOR.to_owned());
    };
    let (service, region_and_rest) = after.split_once(':').unwrap_or((after, ""));
    if service.contains(['*', '?']) {
        return Some(error::RESOURCE_VENDOR.to_owned());
    }
    let resource_id = region_and_rest.splitn(3, ':').nth(2).unwrap_or("");
    let regional = !region_and_rest.starts_with(':');
    if service == "iam" && regional {
        return Some(format!(
            "IAM resource {resource} cannot contain region information."
        ));
    }
    if service == "s3" && regional && !resource_id.starts_with("accesspoint/") {
        return Some(format!(
            "Resource {resource} can not contain region information."
        ));
    }
    if service == "iam"
        && !IAM_RESOURCE_PREFIXES
            .iter()
            .any(|p| resource_id.starts_with(p))
    {
        return Some(error::IAM_PATH.to_owned());
    }
    None
}

/// `Action` entries and condition keys need a vendor prefix and one colon (§4.9). For
/// condition keys only the part before the first `/` is checked (tag keys may hold colons).
fn check_prefixed(entry: &str) -> Result<(), PolicyError> {
    let head = entry.split('/').next().unwrap_or(entry);
    let mut parts = head.split(':');
    let vendor = parts.next().unwrap_or("");
    let colons = parts.count();
    if colons == 0 && vendor != "*" {
        return Err(PolicyError::malformed(error::NO_VENDOR));
    }
    if colons > 1 {
        return Err(PolicyError::malformed(error::ONE_COLON));
    }
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    if vendor != "*" && !vendor.bytes().all(valid) {
        return Err(PolicyError::Malformed(format!(
            "Vendor {vendor} is not valid"
        )));
    }
    Ok(())
}
