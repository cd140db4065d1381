//! The roles family: CreateRole, GetRole, ListRoles, UpdateRole, UpdateRoleDescription,
//! UpdateAssumeRolePolicy, DeleteRole, TagRole, UntagRole, ListRoleTags (policy.md §4.5,
//! §4.6). A role's attached and inline policies and its permissions boundary are the
//! policies family's; assuming a role is the STS family's.
//!
//! Trust policies are validated by crates/policy as [`PolicyKind::Trust`] (a `Principal` in
//! every statement, no `Resource`), and every user or role of this account that they name
//! must exist, as IAM checks when it stores a trust policy (§1.3). The unique id of each is
//! stored beside the document ([`crate::trust`]), so that a user or role deleted and created
//! again under the same name is not trusted in its place.

use std::borrow::Cow;
use tokengate_policy::{PolicyDocument, PolicyKind};

use tokengate_store::{Entity, PrincipalBinding, Role, Store, StoreError, Tag};
use tokengate_token::keys;

use crate::common::{db, path_rule, valid_path};
use crate::entities::{
    DESCRIPTION, MAX_ROLES, MAX_TAGS, POLICY_ARN, POLICY_DOCUMENT, Page, PrefixShape, ROLE_NAME,
    already_exists, boundary_xml, check_boundary_arn, delete_conflict, document_text,
    limit_exceeded, malformed, no_such_role, not_attachable, read_path_prefix, read_tag_keys,
    read_tags, role_arn, tag_xml, tags_xml, trust_policy_error,
};
use crate::error::ApiError;
use crate::params::{Params, Rule, Validator};
use crate::registry::{Call, ResourceInput};
use crate::trust::{self, aws_principals, named_entity};
use crate::xml::Xml;

/// `AssumeRolePolicyDocument` of CreateRole (`policyDocumentType`).
const ASSUME_ROLE_POLICY_DOCUMENT: Rule = Rule {
    name: "AssumeRolePolicyDocument",
    ..POLICY_DOCUMENT
};
/// `PermissionsBoundary` of CreateRole (`arnType`).
const BOUNDARY_ARN: Rule = Rule {
    name: "PermissionsBoundary",
    ..POLICY_ARN
};
/// `roleMaxSessionDurationType`: one to twelve hours, in seconds (policy.md §4.5).
const MIN_SESSION_DURATION: i64 = 3_600;
/// See [`MIN_SESSION_DURATION`].
const MAX_SESSION_DURATION: i64 = 43_200;
/// A role's maximum session duration when CreateRole does not say (one hour).
const DEFAULT_SESSION_DURATION: u32 = 3_600;

/// CreateRole's resource: the ARN the role will have.
pub(crate) fn create_role_resource(input: &ResourceInput<'_>) -> String {
    let name = input.params.get(ROLE_NAME.name).unwrap_or_default();
    let path = input.params.get("Path").unwrap_or("/");
    role_arn(input.account(), path, name)
}

/// ListRoles' resource: `arn:aws:iam::ACCOUNT:role/`.
pub(crate) fn list_roles_resource(input: &ResourceInput<'_>) -> String {
    format!("arn:aws:iam::{}:role/", input.account())
}

fn no_such_role_or(name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(Entity::Role) => no_such_role(name),
        e => e.into(),
    }
}

/// `MaxSessionDuration`, if given, in range.
fn read_max_session_duration(v: &mut Validator, p: &Params) -> Option<u32> {
    v.integer(
        p,
        "MaxSessionDuration",
        MIN_SESSION_DURATION,
        MAX_SESSION_DURATION,
    )
    .and_then(|n| u32::try_from(n).ok())
}

/// Parses a trust policy and checks that the users and roles it names exist, with AWS's
/// messages (policy.md §4.9); returns each with its unique id, to be stored with the policy.
async fn check_trust_policy(c: &Call, document: &str) -> Result<Vec<PrincipalBinding>, ApiError> {
    PolicyDocument::parse(document, PolicyKind::Trust).map_err(|e| trust_policy_error(&e))?;
    let account = c.state.account_id.clone();
    let mut bindings: Vec<PrincipalBinding> = Vec::new();
    for principal in aws_principals(document) {
        let Some((role, path, name)) = named_entity(&account, &principal) else {
            continue;
        };
        let name = name.to_owned();
        let found = db(&c.state, move |s| {
            // The principal names a user or role by exact ARN: case and path must match.
            Ok(if role {
                s.role(&name)?
                    .filter(|r| r.name == name && r.path == path)
                    .map(|r| r.role_id)
            } else {
                s.user(&name)?
                    .filter(|u| u.name == name && u.path == path)
                    .map(|u| u.user_id)
            })
        })
        .await??;
        let Some(unique_id) = found else {
            return Err(malformed(format!(
                "Invalid principal in policy: \"AWS\":\"{principal}\""
            )));
        };
        if !bindings.iter().any(|b| b.arn == principal) {
            bindings.push(PrincipalBinding {
                arn: principal,
                unique_id,
            });
        }
    }
    Ok(bindings)
}

/// `role` with its trust policy as it applies now ([`trust::effective_trust_policy`]).
fn with_effective_trust(store: &dyn Store, mut role: Role) -> Result<Role, StoreError> {
    if let Cow::Owned(document) = trust::effective_trust_policy(store, &role)? {
        role.assume_role_policy = document;
    }
    Ok(role)
}

/// The members of a `Role`. `detail` adds what GetRole and CreateRole say beyond ListRoles:
/// the boundary, the tags and `RoleLastUsed`.
fn role_xml(x: &mut Xml, account: &str, r: &Role, detail: Option<(Option<&str>, &[Tag])>) {
    x.text("Path", &r.path);
    x.text("RoleName", &r.name);
    x.text("RoleId", &r.role_id);
    x.text("Arn", &role_arn(account, &r.path, &r.name));
    x.text("CreateDate", &crate::iso8601(r.created));
    document_text(x, "AssumeRolePolicyDocument", &r.assume_role_policy);
    if !r.description.is_empty() {
        x.text("Description", &r.description);
    }
    x.text("MaxSessionDuration", &r.max_session_duration.to_string());
    if let Some((boundary, tags)) = detail {
        if let Some(arn) = boundary {
            boundary_xml(x, arn);
        }
        if !tags.is_empty() {
            tags_xml(x, tags);
        }
        x.elem("RoleLastUsed", |x| {
            if let Some(at) = r.last_used {
                x.text("LastUsedDate", &crate::iso8601(at));
            }
            if let Some(region) = &r.last_used_region {
                x.text("Region", region);
            }
        });
    }
}

/// A role with its boundary and tags, as GetRole answers it.
async fn role_detail(c: &Call, name: &str) -> Result<String, ApiError> {
    let lookup = name.to_owned();
    let (role, boundary, tags) = db(&c.state, move |s| {
        let Some(role) = s.role(&lookup)? else {
            return Ok(None);
        };
        let role = with_effective_trust(s, role)?;
        let boundary = s.role_permissions_boundary(&lookup)?;
        let tags = s.role_tags(&lookup)?;
        Ok(Some((role, boundary, tags)))
    })
    .await??
    .ok_or_else(|| no_such_role(name))?;
    let mut x = Xml::fragment();
    x.elem("Role", |x| {
        role_xml(
            x,
            &c.state.account_id,
            &role,
            Some((boundary.as_deref(), &tags)),
        );
    });
    Ok(x.finish())
}

pub(crate) async fn create_role(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME);
    let path = v.optional(&c.params, path_rule());
    if let Some(p) = path.as_deref().filter(|p| !valid_path(p)) {
        v.pattern_failure(p, path_rule());
    }
    let document = v.required(&c.params, ASSUME_ROLE_POLICY_DOCUMENT);
    let description = v.optional(&c.params, DESCRIPTION);
    let max_session = read_max_session_duration(&mut v, &c.params);
    let boundary = v.optional(&c.params, BOUNDARY_ARN);
    let tags = read_tags(&mut v, &c.params, "Tags");
    v.finish()?;
    let (name, document) = (name.unwrap_or_default(), document.unwrap_or_default());
    let trust_principals = check_trust_policy(&c, &document).await?;
    let boundary = match boundary {
        Some(arn) => {
            let aws = check_boundary_arn(&arn)?;
            Some((arn, aws))
        }
        None => None,
    };
    let role = Role {
        role_id: keys::new_role_id(&c.state.rng).map_err(ApiError::internal)?,
        name: name.clone(),
        path: path.unwrap_or_else(|| "/".to_owned()),
        created: c.state.clock.now().unix_timestamp(),
        assume_role_policy: document,
        description: description.unwrap_or_default(),
        max_session_duration: max_session.unwrap_or(DEFAULT_SESSION_DURATION),
        last_used: None,
        last_used_region: None,
        trust_principals,
    };
    let (stored, b) = (role.clone(), boundary.clone());
    let written = db(&c.state, move |s| {
        let b = b.as_ref().map(|(arn, aws)| (arn.as_str(), *aws));
        s.create_role(&stored, &tags, b, MAX_ROLES)
    })
    .await?;
    match written {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            return Err(already_exists(format!(
                "Role with name {name} already exists."
            )));
        }
        Err(StoreError::LimitExceeded(Entity::Tag)) => {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for TagsPerRole: {MAX_TAGS}"
            )));
        }
        Err(StoreError::LimitExceeded(_)) => {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for RolesPerAccount: {MAX_ROLES}"
            )));
        }
        Err(StoreError::NotFound(Entity::Policy)) => {
            let arn = boundary.map(|(arn, _)| arn).unwrap_or_default();
            return Err(not_attachable(&arn));
        }
        Err(e) => return Err(e.into()),
    }
    // As stored (and as GetRole answers): one tag per key, ordered by key.
    role_detail(&c, &name).await.map(Some)
}

pub(crate) async fn get_role(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME);
    v.finish()?;
    role_detail(&c, &name.unwrap_or_default()).await.map(Some)
}

pub(crate) async fn list_roles(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let prefix = read_path_prefix(&mut v, &c.params, PrefixShape::Any);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let prefix = prefix.unwrap_or_else(|| "/".to_owned());
    let roles = db(&c.state, move |s| {
        s.list_roles(&prefix)?
            .into_iter()
            .map(|r| with_effective_trust(s, r))
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let mut x = Xml::fragment();
    page.write(
        &mut x,
        "Roles",
        &roles,
        |r| r.name.as_str(),
        |x, r| role_xml(x, &c.state.account_id, r, None),
    );
    Ok(Some(x.finish()))
}

/// UpdateRole (an empty `UpdateRoleResult`, as botocore's shape has one) and
/// UpdateRoleDescription (answers the role).
pub(crate) async fn update_role(c: Call) -> Result<Option<String>, ApiError> {
    let describe_only = c.action.name == "UpdateRoleDescription";
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME);
    let description = if describe_only {
        v.required(&c.params, DESCRIPTION)
    } else {
        v.optional(&c.params, DESCRIPTION)
    };
    let max_session = if describe_only {
        None
    } else {
        read_max_session_duration(&mut v, &c.params)
    };
    v.finish()?;
    let name = name.unwrap_or_default();
    let n = name.clone();
    db(&c.state, move |s| {
        s.update_role(&n, description.as_deref(), max_session)
    })
    .await?
    .map_err(|e| no_such_role_or(&name, e))?;
    if !describe_only {
        return Ok(Some(String::new()));
    }
    role_detail(&c, &name).await.map(Some)
}

pub(crate) async fn update_assume_role_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME);
    let document = v.required(&c.params, POLICY_DOCUMENT);
    v.finish()?;
    let (name, document) = (name.unwrap_or_default(), document.unwrap_or_default());
    // An unknown role is NoSuchEntity whatever the document says.
    let n = name.clone();
    if db(&c.state, move |s| s.role(&n)).await??.is_none() {
        return Err(no_such_role(&name));
    }
    let bindings = check_trust_policy(&c, &document).await?;
    let n = name.clone();
    db(&c.state, move |s| {
        s.update_assume_role_policy(&n, &document, &bindings)
    })
    .await?
    .map_err(|e| no_such_role_or(&name, e))?;
    Ok(None)
}

pub(crate) async fn delete_role(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME);
    v.finish()?;
    let name = name.unwrap_or_default();
    let n = name.clone();
    match db(&c.state, move |s| s.delete_role(&n)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::DeleteConflict { dependents, .. }) => {
            Err(delete_conflict(match dependents {
                Entity::InlinePolicy => "Cannot delete entity, must delete policies first.",
                _ => "Cannot delete entity, must detach all policies first.",
            }))
        }
        Err(e) => Err(no_such_role_or(&name, e)),
    }
}

pub(crate) async fn tag_role(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME).unwrap_or_default();
    let tags = read_tags(&mut v, &c.params, "Tags");
    if tags.is_empty() {
        v.custom(
            "Value null at 'tags' failed to satisfy constraint: Member must not be null".to_owned(),
        );
    }
    v.finish()?;
    let n = name.clone();
    match db(&c.state, move |s| s.tag_role(&n, &tags, MAX_TAGS)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::LimitExceeded(_)) => Err(limit_exceeded(format!(
            "Cannot exceed quota for TagsPerRole: {MAX_TAGS}"
        ))),
        Err(e) => Err(no_such_role_or(&name, e)),
    }
}

pub(crate) async fn untag_role(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME).unwrap_or_default();
    let keys = read_tag_keys(&mut v, &c.params);
    v.finish()?;
    let n = name.clone();
    db(&c.state, move |s| s.untag_role(&n, &keys))
        .await?
        .map_err(|e| no_such_role_or(&name, e))?;
    Ok(None)
}

pub(crate) async fn list_role_tags(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, ROLE_NAME).unwrap_or_default();
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let n = name.clone();
    let tags = db(&c.state, move |s| s.role_tags(&n))
        .await?
        .map_err(|e| no_such_role_or(&name, e))?;
    let mut x = Xml::fragment();
    page.write(&mut x, "Tags", &tags, |t| t.key.as_str(), tag_xml);
    Ok(Some(x.finish()))
}
