//! What the IAM entity families (groups, roles, policies, users' tags, the simulator) share:
//! the parameter rules of their botocore shapes (policy.md §4.1), AWS's error texts for them
//! (§4.9), pagination, tag lists and the XML of groups and policies. One floor below the
//! handler families, which import this and never each other.

use axum::http::StatusCode;
use tokengate_store::{Group, ManagedPolicy, StoreError, Tag};
use tokengate_token::query::percent_encode;

use crate::error::ApiError;
use crate::params::{self, Params, Pattern, Rule, Validator};
use crate::xml::Xml;

/// `groupNameType`: 1..128, `[\w+=,.@-]+`.
pub const GROUP_NAME: Rule = Rule {
    name: "GroupName",
    min: 1,
    max: 128,
    pattern: Some(params::NAME),
};
/// `roleNameType`: 1..64, `[\w+=,.@-]+` (every role operation, lookups included).
pub const ROLE_NAME: Rule = Rule {
    name: "RoleName",
    min: 1,
    max: 64,
    pattern: Some(params::NAME),
};
/// `policyNameType`: 1..128, `[\w+=,.@-]+`.
pub const POLICY_NAME: Rule = Rule {
    name: "PolicyName",
    min: 1,
    max: 128,
    pattern: Some(params::NAME),
};
/// `arnType`: 20..2048.
pub const POLICY_ARN: Rule = Rule {
    name: "PolicyArn",
    min: 20,
    max: 2048,
    pattern: None,
};
/// `policyDocumentType`: 1..131072, `[\u0009\u000A\u000D\u0020-\u00FF]+`.
pub const POLICY_DOCUMENT: Rule = Rule {
    name: "PolicyDocument",
    min: 1,
    max: 131_072,
    pattern: Some(DOCUMENT_CHARS),
};
/// The character class of policy documents.
pub const DOCUMENT_CHARS: Pattern = Pattern {
    text: r"[\u0009\u000A\u000D\u0020-\u00FF]+",
    allows: |c| matches!(c, '\t' | '\n' | '\r') || ('\u{20}'..='\u{ff}').contains(&c),
    _plus: true,
};
/// `policyDescriptionType`: 0..1000.
pub const DESCRIPTION: Rule = Rule {
    name: "Description",
    min: 0,
    max: 1000,
    pattern: None,
};
/// `policyVersionIdType`: `v[1-9][0-9]*(\.[A-Za-z0-9-]*)?` (checked by [`valid_version_id`]).
pub const VERSION_ID: Rule = Rule {
    name: "VersionId",
    min: 1,
    max: 128,
    pattern: Some(Pattern {
        text: r"v[1-9][0-9]*(\.[A-Za-z0-9-]*)?",
        allows: |c| c.is_ascii_alphanumeric() || c == '.' || c == '-',
        _plus: true,
    }),
};
/// `policyPathType`: `((/[A-Za-z0-9\.,\+@=_-]+)*)/`.
pub const POLICY_PATH: Rule = Rule {
    name: "Path",
    min: 1,
    max: 512,
    pattern: Some(Pattern {
        text: r"((/[A-Za-z0-9\.,\+@=_-]+)*)/",
        allows: |c| c.is_ascii_alphanumeric() || "/.,+@=_-".contains(c),
        _plus: true,
    }),
};
/// `pathPrefixType`: 1..512, `\u002F[\u0021-\u007F]*`.
pub const PATH_PREFIX: Rule = Rule {
    name: "PathPrefix",
    min: 1,
    max: 512,
    pattern: Some(Pattern {
        text: r"\u002F[\u0021-\u007F]*",
        allows: |c| ('\u{21}'..='\u{7f}').contains(&c),
        _plus: false,
    }),
};
/// The three shapes botocore gives a `PathPrefix` member.
#[derive(Debug, Clone, Copy)]
pub enum PrefixShape {
    /// `pathPrefixType`, `\u002F[\u0021-\u007F]*` (ListUsers, ListGroups).
    Any,
    /// `policyPathType`, `((/[A-Za-z0-9\.,\+@=_-]+)*)/` (ListPolicies,
    /// ListAttached*Policies).
    PolicyPath,
    /// `pathType`, `(\u002F)|(\u002F[\u0021-\u007E]+\u002F)` (ListEntitiesForPolicy).
    Path,
}

/// `PathPrefix` in `shape`, including the parts of its pattern that a character class
/// cannot express (the leading `/`, and the trailing one of the path shapes).
pub fn read_path_prefix(v: &mut Validator, p: &Params, shape: PrefixShape) -> Option<String> {
    let (rule, shaped): (Rule, fn(&str) -> bool) = match shape {
        PrefixShape::Any => (PATH_PREFIX, |s| s.starts_with('/')),
        PrefixShape::PolicyPath => (
            Rule {
                name: PATH_PREFIX.name,
                ..POLICY_PATH
            },
            valid_policy_path,
        ),
        PrefixShape::Path => (
            Rule {
                name: PATH_PREFIX.name,
                ..crate::common::PATH
            },
            crate::common::valid_path,
        ),
    };
    let prefix = v.optional(p, rule)?;
    if !shaped(&prefix) {
        v.pattern_failure(&prefix, rule);
        return None;
    }
    Some(prefix)
}
/// `markerType`: 1..320.
pub use crate::common::MARKER;
/// `tagKeyType`: 1..128, `[\p{L}\p{Z}\p{N}_.:/=+\-@]+`.
const TAG_KEY_MAX: usize = 128;
/// `tagValueType`: 0..256.
const TAG_VALUE_MAX: usize = 256;
/// IAM quota: tags per user, role or policy.
pub const MAX_TAGS: usize = 50;

/// IAM quota: managed policies attached to a user or a group (policy.md §4.9).
pub const MAX_ATTACHED: usize = 10;
/// IAM quota: groups a user may belong to.
pub const MAX_GROUPS_PER_USER: usize = 10;
/// IAM quota: groups per account (the default, 300).
pub const MAX_GROUPS: usize = 300;
/// IAM quota: customer managed policies per account (the default, 1500).
pub const MAX_POLICIES: usize = 1500;
/// IAM quota: versions of one managed policy.
pub const MAX_POLICY_VERSIONS: usize = 5;
/// IAM quota: roles per account (the default, 1000).
pub const MAX_ROLES: usize = tokengate_store::MAX_ROLES;

/// Whether `id` matches `v[1-9][0-9]*(\.[A-Za-z0-9-]*)?`.
pub fn valid_version_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix('v') else {
        return false;
    };
    let (number, suffix) = rest.split_once('.').unwrap_or((rest, ""));
    number.starts_with(|c: char| ('1'..='9').contains(&c))
        && number.chars().all(|c| c.is_ascii_digit())
        && suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Whether a policy path has the shape `/` or `/a/b/`.
pub fn valid_policy_path(path: &str) -> bool {
    path == "/"
        || (path.len() >= 3 && path.starts_with('/') && path.ends_with('/') && !path.contains("//"))
}

/// 404 `NoSuchEntity`.
pub fn no_such_entity(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NoSuchEntity", message)
}

/// 404 for a group.
pub fn no_such_group(name: &str) -> ApiError {
    no_such_entity(format!("The group with name {name} cannot be found."))
}

/// 404 for a role (policy.md §4.9).
pub fn no_such_role(name: &str) -> ApiError {
    no_such_entity(format!("The role with name {name} cannot be found."))
}

/// 404 for a managed policy (GetPolicy, policy.md §4.9).
pub fn no_such_policy(arn: &str) -> ApiError {
    no_such_entity(format!("Policy {arn} was not found."))
}

/// 404 for a policy that cannot be attached (Attach*Policy, Put*PermissionsBoundary).
pub fn not_attachable(arn: &str) -> ApiError {
    no_such_entity(format!("Policy {arn} does not exist or is not attachable."))
}

/// 409 `EntityAlreadyExists`.
pub fn already_exists(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "EntityAlreadyExists", message)
}

/// 409 `LimitExceeded`.
pub fn limit_exceeded(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "LimitExceeded", message)
}

/// 409 `DeleteConflict`.
pub fn delete_conflict(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "DeleteConflict", message)
}

/// 400 `InvalidInput`.
pub fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidInput", message)
}

/// 400 `MalformedPolicyDocument` with the engine's (AWS's) message.
pub fn malformed(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "MalformedPolicyDocument", message)
}

/// The error for a policy document the engine refused, in the kind's own words.
pub fn policy_error(e: &tokengate_policy::PolicyError) -> ApiError {
    match e {
        tokengate_policy::PolicyError::TooLarge { limit } => {
            limit_exceeded(format!("Cannot exceed quota for PolicySize: {limit}"))
        }
        other => malformed(other.to_string()),
    }
}

/// The error for a trust policy the engine refused: its size quota is `ACLSizePerRole`
/// (policy.md §4.9).
pub fn trust_policy_error(e: &tokengate_policy::PolicyError) -> ApiError {
    match e {
        tokengate_policy::PolicyError::TooLarge { limit } => {
            limit_exceeded(format!("Cannot exceed quota for ACLSizePerRole: {limit}"))
        }
        other => policy_error(other),
    }
}

/// Checks a `PermissionsBoundary` ARN as Put{User,Role}PermissionsBoundary and CreateRole
/// do before the store looks for the policy: `InvalidInput` for an ARN that names no
/// policy, `NoSuchEntity` for an AWS managed policy tokengate does not ship. Answers whether
/// it is an AWS managed policy (which needs no customer policy row).
pub fn check_boundary_arn(arn: &str) -> Result<bool, ApiError> {
    let aws = tokengate_policy::aws_managed_policy(arn).is_some();
    if !arn.contains(":policy/") {
        return Err(invalid_input(format!("ARN {arn} is not valid.")));
    }
    if arn.starts_with("arn:aws:iam::aws:") && !aws {
        return Err(not_attachable(arn));
    }
    Ok(aws)
}

/// `<PermissionsBoundary>` of a user or role.
pub fn boundary_xml(x: &mut Xml, arn: &str) {
    x.elem("PermissionsBoundary", |x| {
        x.text("PermissionsBoundaryType", "PermissionsBoundaryPolicy");
        x.text("PermissionsBoundaryArn", arn);
    });
}

/// Any other store error.
pub fn store_error(e: StoreError) -> ApiError {
    ApiError::from(e)
}

/// `MaxItems` (1..1000, default 100) and `Marker` of a list call.
pub struct Page {
    /// Most items to return.
    pub max_items: usize,
    /// Where the previous page ended (the last item's key).
    pub marker: Option<String>,
}

impl Page {
    /// Reads `Marker` and `MaxItems` into `v`.
    pub fn read(v: &mut Validator, p: &Params) -> Self {
        let marker = v.optional(p, MARKER);
        let max_items = v.integer(p, "MaxItems", 1, 1000);
        Self {
            max_items: max_items
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(100),
            marker,
        }
    }

    /// One page of `items`, which are in list order with unique keys, and the marker of
    /// the next page when there is one. The marker is the key of the page's last item; the
    /// next page starts after the item with that key, or — when that item is gone — at the
    /// first item whose key sorts after it (lists in ascending key order).
    pub fn slice<'a, T>(
        &self,
        items: &'a [T],
        key: impl Fn(&T) -> &str,
    ) -> (&'a [T], Option<String>) {
        let start = match &self.marker {
            Some(m) => match items.iter().position(|i| key(i) == m.as_str()) {
                Some(at) => at + 1,
                None => items
                    .iter()
                    .position(|i| key(i) > m.as_str())
                    .unwrap_or(items.len()),
            },
            None => 0,
        };
        let rest = items.get(start..).unwrap_or_default();
        let page = rest.get(..self.max_items).unwrap_or(rest);
        let next = match page.last() {
            Some(last) if rest.len() > page.len() => Some(key(last).to_owned()),
            _ => None,
        };
        (page, next)
    }

    /// Writes one page of `items` (see [`Page::slice`]) with `IsTruncated` and `Marker`.
    pub fn write<T>(
        &self,
        x: &mut Xml,
        list: &str,
        items: &[T],
        key: impl Fn(&T) -> &str,
        each: impl Fn(&mut Xml, &T),
    ) {
        let (page, next) = self.slice(items, key);
        x.elem(list, |x| {
            for item in page {
                x.elem("member", |x| each(x, item));
            }
        });
        truncation_xml(x, next.as_deref());
    }
}

/// `IsTruncated`, and `Marker` when there is a next page.
pub fn truncation_xml(x: &mut Xml, next: Option<&str>) {
    x.text("IsTruncated", if next.is_some() { "true" } else { "false" });
    if let Some(marker) = next {
        x.text("Marker", marker);
    }
}

/// `Tags.member.N.Key` / `.Value`, validated (policy.md §4.1, §4.6).
pub fn read_tags(v: &mut Validator, p: &Params, list: &str) -> Vec<Tag> {
    let mut tags = Vec::new();
    for i in 1.. {
        let key = p.get(&format!("{list}.member.{i}.Key"));
        let value = p.get(&format!("{list}.member.{i}.Value"));
        let (key, value) = match (key, value) {
            (None, None) => break,
            (k, val) => (k.unwrap_or_default(), val.unwrap_or_default()),
        };
        let key_ok =
            !key.is_empty() && key.chars().count() <= TAG_KEY_MAX && key.chars().all(tag_char);
        let value_ok = value.chars().count() <= TAG_VALUE_MAX && value.chars().all(tag_char);
        if !key_ok {
            v.custom(format!(
                "Value '{key}' at 'tags.{i}.member.key' failed to satisfy constraint: Member \
                 must satisfy regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+"
            ));
        }
        if !value_ok {
            v.custom(format!(
                "Value '{value}' at 'tags.{i}.member.value' failed to satisfy constraint: \
                 Member must satisfy regular expression pattern: \
                 [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*"
            ));
        }
        tags.push(Tag {
            key: key.to_owned(),
            value: value.to_owned(),
        });
    }
    if tags.len() > MAX_TAGS {
        v.custom(format!(
            "Value at 'tags' failed to satisfy constraint: Member must have length less than \
             or equal to {MAX_TAGS}"
        ));
    }
    tags
}

/// `TagKeys.member.N`.
pub fn read_tag_keys(v: &mut Validator, p: &Params) -> Vec<String> {
    let keys = p.list("TagKeys");
    if keys.is_empty() {
        v.custom(
            "Value null at 'tagKeys' failed to satisfy constraint: Member must not be null"
                .to_owned(),
        );
    }
    if keys.len() > MAX_TAGS {
        v.custom(format!(
            "Value at 'tagKeys' failed to satisfy constraint: Member must have length less \
             than or equal to {MAX_TAGS}"
        ));
    }
    keys
}

fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// `<Tags>` of a resource.
pub fn tags_xml(x: &mut Xml, tags: &[Tag]) {
    x.elem("Tags", |x| {
        for t in tags {
            x.elem("member", |x| tag_xml(x, t));
        }
    });
}

/// The members of one `Tag`.
pub fn tag_xml(x: &mut Xml, t: &Tag) {
    x.text("Key", &t.key);
    x.text("Value", &t.value);
}

/// A policy document as IAM returns it: URL-encoded JSON (policy.md §4.1).
pub fn document_text(x: &mut Xml, name: &str, document: &str) {
    x.text(name, &percent_encode(document));
}

/// The members of a `Group`.
pub fn group_xml(x: &mut Xml, account: &str, g: &Group) {
    x.text("Path", &g.path);
    x.text("GroupName", &g.name);
    x.text("GroupId", &g.group_id);
    x.text("Arn", &group_arn(account, &g.path, &g.name));
    x.text("CreateDate", &crate::iso8601(g.created));
}

/// `arn:aws:iam::ACCOUNT:group/PATH/NAME`.
pub fn group_arn(account: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:group{path}{name}")
}

/// `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
pub fn role_arn(account: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role{path}{name}")
}

/// `arn:aws:iam::ACCOUNT:policy/PATH/NAME`.
pub fn policy_arn(account: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:policy{path}{name}")
}

/// The members of a `Policy` (customer managed).
pub fn policy_xml(x: &mut Xml, p: &ManagedPolicy, with_description: bool) {
    x.text("PolicyName", &p.name);
    x.text("PolicyId", &p.policy_id);
    x.text("Arn", &p.arn);
    x.text("Path", &p.path);
    x.text("DefaultVersionId", &p.default_version);
    x.text("AttachmentCount", &p.attachment_count.to_string());
    x.text(
        "PermissionsBoundaryUsageCount",
        &p.boundary_usage_count.to_string(),
    );
    x.text("IsAttachable", "true");
    if with_description && !p.description.is_empty() {
        x.text("Description", &p.description);
    }
    x.text("CreateDate", &crate::iso8601(p.created));
    x.text("UpdateDate", &crate::iso8601(p.updated));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn page(max_items: usize, marker: Option<&str>) -> Page {
        Page {
            max_items,
            marker: marker.map(str::to_owned),
        }
    }

    fn keys<'a>(items: &'a [&'a str]) -> Vec<&'a str> {
        items.to_vec()
    }

    #[test]
    fn pages_follow_list_order_not_key_order() {
        // Policy versions are listed newest first.
        let versions = ["v10", "v9", "v2", "v1"];
        let (first, next) = page(2, None).slice(&versions, |v| v);
        assert_eq!(
            (keys(first), next.as_deref()),
            (vec!["v10", "v9"], Some("v9"))
        );
        let (second, next) = page(2, Some("v9")).slice(&versions, |v| v);
        assert_eq!((keys(second), next), (vec!["v2", "v1"], None));
    }

    #[test]
    fn a_vanished_marker_resumes_after_its_key() {
        let names = ["a", "c", "d"];
        let (rest, next) = page(5, Some("b")).slice(&names, |n| n);
        assert_eq!((keys(rest), next), (vec!["c", "d"], None));
        let (rest, _) = page(5, Some("z")).slice(&names, |n| n);
        assert!(rest.is_empty());
    }

    #[test]
    fn path_prefix_shapes() {
        let check = |shape, value: &str| {
            let p = Params::new(vec![("PathPrefix".to_owned(), value.to_owned())]);
            let mut v = Validator::new();
            let got = read_path_prefix(&mut v, &p, shape);
            (got.is_some(), v.finish().is_ok())
        };
        assert_eq!(check(PrefixShape::Any, "/a"), (true, true));
        assert_eq!(check(PrefixShape::Any, "a/"), (false, false));
        assert_eq!(check(PrefixShape::PolicyPath, "/a/"), (true, true));
        assert_eq!(check(PrefixShape::PolicyPath, "/a"), (false, false));
        assert_eq!(check(PrefixShape::Path, "/"), (true, true));
        assert_eq!(check(PrefixShape::Path, "/a"), (false, false));
    }
}
