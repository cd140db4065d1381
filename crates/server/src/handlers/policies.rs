//! The policies family (policy.md §4.3–4.6): customer managed policies and their versions,
//! the AWS managed policies shipped read-only (crates/policy's catalog), attaching them to
//! users, groups and roles, their inline policies, users' and roles' permissions boundaries
//! and policy tags. Every document is validated by crates/policy with AWS's messages before it
//! is stored; documents go back URL-encoded, as IAM sends them.

use tokengate_policy::{AwsManagedPolicy, PolicyDocument, PolicyKind, aws_managed_policy};
use tokengate_store::{
    Entity, ManagedPolicy, NewManagedPolicy, PolicyTarget, PolicyUsage, PolicyUseCounts,
    PolicyVersion, StoreError,
};
use tokengate_token::keys;

use crate::common::{EXISTING_USER_NAME, db, no_such_user};
use crate::entities::{
    DESCRIPTION, GROUP_NAME, MAX_ATTACHED, MAX_POLICIES, MAX_POLICY_VERSIONS, MAX_TAGS, POLICY_ARN,
    POLICY_DOCUMENT, POLICY_NAME, POLICY_PATH, Page, PrefixShape, ROLE_NAME, already_exists,
    check_boundary_arn, delete_conflict, document_text, limit_exceeded, no_such_entity,
    no_such_group, no_such_policy, no_such_role, not_attachable, policy_arn, policy_error,
    policy_xml, read_path_prefix, read_tag_keys, read_tags, tag_xml, tags_xml, truncation_xml,
    valid_policy_path, valid_version_id,
};
use crate::error::ApiError;
use crate::params::{Params, Rule, Validator};
use crate::registry::{Call, ResourceInput};
use crate::xml::Xml;

/// `PermissionsBoundary` of Put*PermissionsBoundary.
const BOUNDARY_ARN: Rule = Rule {
    name: "PermissionsBoundary",
    ..POLICY_ARN
};

/// A managed policy: AWS's (static) or the account's.
enum Managed {
    Aws(&'static AwsManagedPolicy, PolicyUseCounts),
    Customer(ManagedPolicy),
}

impl Managed {
    fn write(&self, x: &mut Xml, with_description: bool) {
        match self {
            Self::Customer(p) => policy_xml(x, p, with_description),
            Self::Aws(p, counts) => {
                x.text("PolicyName", p.name);
                x.text("PolicyId", p.policy_id);
                x.text("Arn", p.arn);
                x.text("Path", p.path);
                x.text("DefaultVersionId", p.version_id);
                x.text("AttachmentCount", &counts.attachments.to_string());
                x.text(
                    "PermissionsBoundaryUsageCount",
                    &counts.boundary_uses.to_string(),
                );
                x.text("IsAttachable", "true");
                if with_description {
                    x.text("Description", p.description);
                }
                x.text("CreateDate", p.create_date);
                x.text("UpdateDate", p.update_date);
            }
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Aws(p, _) => p.name,
            Self::Customer(p) => &p.name,
        }
    }
}

/// The managed policy at `arn`, if any.
async fn managed(c: &Call, arn: &str) -> Result<Option<Managed>, ApiError> {
    if let Some(p) = aws_managed_policy(arn) {
        let a = arn.to_owned();
        let counts = db(&c.state, move |s| s.policy_use_counts(&a)).await??;
        return Ok(Some(Managed::Aws(p, counts)));
    }
    let a = arn.to_owned();
    Ok(db(&c.state, move |s| s.managed_policy(&a))
        .await??
        .map(Managed::Customer))
}

/// AWS managed policies cannot be changed or deleted (policy.md §1.4).
fn refuse_aws_managed(arn: &str) -> Result<(), ApiError> {
    if arn.starts_with("arn:aws:iam::aws:") {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "UnmodifiableEntity",
            format!("Policy {arn} is an AWS managed policy and cannot be modified."),
        ));
    }
    Ok(())
}

fn read_arn(v: &mut Validator, p: &Params) -> String {
    v.required(p, POLICY_ARN).unwrap_or_default()
}

fn parse(text: &str, kind: PolicyKind) -> Result<PolicyDocument, ApiError> {
    PolicyDocument::parse(text, kind).map_err(|e| policy_error(&e))
}

fn version_xml(x: &mut Xml, v: &PolicyVersion, with_document: bool) {
    if with_document {
        document_text(x, "Document", &v.document);
    }
    x.text("VersionId", &v.version_id);
    x.text(
        "IsDefaultVersion",
        if v.is_default { "true" } else { "false" },
    );
    x.text("CreateDate", &crate::iso8601(v.created));
}

/// The one version of an AWS managed policy, dated by the policy's `UpdateDate` (the same
/// in GetPolicyVersion and ListPolicyVersions).
fn aws_version_xml(x: &mut Xml, p: &AwsManagedPolicy, with_document: bool) {
    if with_document {
        document_text(x, "Document", p.document);
    }
    x.text("VersionId", p.version_id);
    x.text("IsDefaultVersion", "true");
    x.text("CreateDate", p.update_date);
}

/// CreatePolicy's resource: the ARN the policy will have.
pub(crate) fn create_resource(input: &ResourceInput<'_>) -> String {
    let name = input.params.get("PolicyName").unwrap_or_default();
    let path = input.params.get("Path").unwrap_or("/");
    policy_arn(input.account(), path, name)
}

pub(crate) async fn create_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, POLICY_NAME);
    let path = v.optional(&c.params, POLICY_PATH);
    if let Some(p) = path.as_deref().filter(|p| !valid_policy_path(p)) {
        v.pattern_failure(p, POLICY_PATH);
    }
    let document = v.required(&c.params, POLICY_DOCUMENT);
    let description = v.optional(&c.params, DESCRIPTION);
    let tags = read_tags(&mut v, &c.params, "Tags");
    v.finish()?;
    let (name, document) = (name.unwrap_or_default(), document.unwrap_or_default());
    parse(&document, PolicyKind::Managed)?;
    let path = path.unwrap_or_else(|| "/".to_owned());
    let now = c.state.clock.now().unix_timestamp();
    let new = NewManagedPolicy {
        policy_id: keys::new_policy_id(&c.state.rng).map_err(ApiError::internal)?,
        arn: policy_arn(&c.state.account_id, &path, &name),
        name: name.clone(),
        path,
        description: description.unwrap_or_default(),
        document,
        created: now,
        tags,
    };
    let arn = new.arn.clone();
    match db(&c.state, move |s| s.create_policy(&new, MAX_POLICIES)).await? {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            return Err(already_exists(format!(
                "A policy called {name} already exists. Duplicate names are not allowed."
            )));
        }
        Err(StoreError::LimitExceeded(_)) => {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for PoliciesPerAccount: {MAX_POLICIES}"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let policy = managed(&c, &arn)
        .await?
        .ok_or_else(|| ApiError::internal("created policy vanished"))?;
    // As stored (and as GetPolicy answers): one tag per key, ordered by key.
    let a = arn.clone();
    let tags = db(&c.state, move |s| s.policy_tags(&a)).await??;
    let mut x = Xml::fragment();
    x.elem("Policy", |x| {
        policy.write(x, true);
        if !tags.is_empty() {
            tags_xml(x, &tags);
        }
    });
    Ok(Some(x.finish()))
}

pub(crate) async fn get_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    v.finish()?;
    let policy = managed(&c, &arn)
        .await?
        .ok_or_else(|| no_such_policy(&arn))?;
    let a = arn.clone();
    let tags = if let Managed::Customer(_) = policy {
        db(&c.state, move |s| s.policy_tags(&a)).await??
    } else {
        Vec::new()
    };
    let mut x = Xml::fragment();
    x.elem("Policy", |x| {
        policy.write(x, true);
        if !tags.is_empty() {
            tags_xml(x, &tags);
        }
    });
    Ok(Some(x.finish()))
}

pub(crate) async fn list_policies(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let scope = v.one_of(&c.params, "Scope", &["All", "AWS", "Local"], false);
    let only_attached = v.one_of(&c.params, "OnlyAttached", &["true", "false"], false);
    let prefix = read_path_prefix(&mut v, &c.params, PrefixShape::PolicyPath);
    let usage = v.one_of(
        &c.params,
        "PolicyUsageFilter",
        &["PermissionsPolicy", "PermissionsBoundary"],
        false,
    );
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let scope = scope.unwrap_or("All");
    let only_attached = only_attached == Some("true");
    let prefix = prefix.unwrap_or_else(|| "/".to_owned());
    let usage = match usage {
        Some("PermissionsPolicy") => Some(PolicyUsage::Permissions),
        Some(_) => Some(PolicyUsage::Boundary),
        None => None,
    };
    let mut all: Vec<Managed> = Vec::new();
    if scope != "Local" {
        for p in tokengate_policy::aws_managed_policies() {
            if !p.path.starts_with(prefix.as_str()) {
                continue;
            }
            let a = p.arn.to_owned();
            let counts = db(&c.state, move |s| s.policy_use_counts(&a)).await??;
            if listed(only_attached, usage, counts) {
                all.push(Managed::Aws(p, counts));
            }
        }
    }
    if scope != "AWS" {
        let p = prefix.clone();
        let local = db(&c.state, move |s| s.list_policies(&p)).await??;
        all.extend(
            local
                .into_iter()
                .filter(|p| {
                    let counts = PolicyUseCounts {
                        attachments: p.attachment_count,
                        boundary_uses: p.boundary_usage_count,
                    };
                    listed(only_attached, usage, counts)
                })
                .map(Managed::Customer),
        );
    }
    all.sort_by(|a, b| a.name().cmp(b.name()));
    let mut x = Xml::fragment();
    page.write(&mut x, "Policies", &all, Managed::name, |x, p| {
        p.write(x, false);
    });
    Ok(Some(x.finish()))
}

/// Whether ListPolicies lists a policy in use `counts` times. `PolicyUsageFilter` keeps
/// the policies in use that way (`AttachmentCount` or `PermissionsBoundaryUsageCount` above
/// zero); `OnlyAttached` without it keeps those in use either way (decision: AWS documents
/// neither combination further). The same rule for AWS and customer managed policies.
fn listed(only_attached: bool, usage: Option<PolicyUsage>, counts: PolicyUseCounts) -> bool {
    match usage {
        Some(PolicyUsage::Permissions) => counts.attachments > 0,
        Some(PolicyUsage::Boundary) => counts.boundary_uses > 0,
        None => !only_attached || counts.attachments > 0 || counts.boundary_uses > 0,
    }
}

pub(crate) async fn delete_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    v.finish()?;
    refuse_aws_managed(&arn)?;
    let a = arn.clone();
    match db(&c.state, move |s| s.delete_policy(&a)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(_)) => Err(no_such_policy(&arn)),
        Err(StoreError::DeleteConflict {
            dependents: Entity::PolicyVersion,
            ..
        }) => Err(delete_conflict(
            "This policy has more than one version. Before you delete a policy, you must \
             delete the policy's versions. The default version is deleted with the policy.",
        )),
        Err(StoreError::DeleteConflict { .. }) => Err(delete_conflict(
            "Cannot delete a policy attached to entities.",
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn create_policy_version(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    let document = v.required(&c.params, POLICY_DOCUMENT);
    let set_default = v.one_of(&c.params, "SetAsDefault", &["true", "false"], false);
    v.finish()?;
    refuse_aws_managed(&arn)?;
    let document = document.unwrap_or_default();
    parse(&document, PolicyKind::Managed)?;
    let set_default = set_default == Some("true");
    let now = c.state.clock.now().unix_timestamp();
    let a = arn.clone();
    let version = match db(&c.state, move |s| {
        s.create_policy_version(&a, &document, set_default, MAX_POLICY_VERSIONS, now)
    })
    .await?
    {
        Ok(version) => version,
        Err(StoreError::NotFound(_)) => return Err(no_such_policy(&arn)),
        Err(StoreError::LimitExceeded(_)) => {
            return Err(limit_exceeded(
                "A managed policy can have up to 5 versions. Before you create a new version, \
                 you must delete an existing version.",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut x = Xml::fragment();
    x.elem("PolicyVersion", |x| version_xml(x, &version, false));
    Ok(Some(x.finish()))
}

fn no_such_version(arn: &str, version_id: &str) -> ApiError {
    no_such_entity(format!(
        "Policy {arn} version {version_id} does not exist or is not attachable."
    ))
}

fn version_params(c: &Call) -> Result<(String, String), ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    let version_id = v.required(&c.params, crate::entities::VERSION_ID);
    if let Some(id) = version_id.as_deref().filter(|id| !valid_version_id(id)) {
        v.pattern_failure(id, crate::entities::VERSION_ID);
    }
    v.finish()?;
    Ok((arn, version_id.unwrap_or_default()))
}

pub(crate) async fn get_policy_version(c: Call) -> Result<Option<String>, ApiError> {
    let (arn, version_id) = version_params(&c)?;
    let version = if let Some(p) = aws_managed_policy(&arn) {
        (p.version_id == version_id).then(|| PolicyVersion {
            version_id: p.version_id.to_owned(),
            document: p.document.to_owned(),
            is_default: true,
            created: 0,
        })
    } else {
        let (a, id) = (arn.clone(), version_id.clone());
        db(&c.state, move |s| s.policy_version(&a, &id)).await??
    };
    let version = version.ok_or_else(|| no_such_version(&arn, &version_id))?;
    let mut x = Xml::fragment();
    x.elem("PolicyVersion", |x| match aws_managed_policy(&arn) {
        Some(p) => aws_version_xml(x, p, true),
        None => version_xml(x, &version, true),
    });
    Ok(Some(x.finish()))
}

pub(crate) async fn list_policy_versions(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let aws = aws_managed_policy(&arn);
    let versions = if let Some(p) = aws {
        vec![PolicyVersion {
            version_id: p.version_id.to_owned(),
            document: String::new(),
            is_default: true,
            created: 0,
        }]
    } else {
        let a = arn.clone();
        match db(&c.state, move |s| s.policy_versions(&a)).await? {
            Ok(v) => v,
            Err(StoreError::NotFound(_)) => return Err(no_such_policy(&arn)),
            Err(e) => return Err(e.into()),
        }
    };
    let mut x = Xml::fragment();
    page.write(
        &mut x,
        "Versions",
        &versions,
        |v| v.version_id.as_str(),
        |x, v| match aws {
            Some(p) => aws_version_xml(x, p, false),
            None => version_xml(x, v, false),
        },
    );
    Ok(Some(x.finish()))
}

pub(crate) async fn delete_policy_version(c: Call) -> Result<Option<String>, ApiError> {
    let (arn, version_id) = version_params(&c)?;
    refuse_aws_managed(&arn)?;
    let (a, id) = (arn.clone(), version_id.clone());
    match db(&c.state, move |s| s.delete_policy_version(&a, &id)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(Entity::Policy)) => Err(no_such_policy(&arn)),
        Err(StoreError::NotFound(_)) => Err(no_such_version(&arn, &version_id)),
        Err(StoreError::DeleteConflict { .. }) => Err(delete_conflict(
            "Cannot delete the default version of a policy.",
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn set_default_policy_version(c: Call) -> Result<Option<String>, ApiError> {
    let (arn, version_id) = version_params(&c)?;
    refuse_aws_managed(&arn)?;
    let now = c.state.clock.now().unix_timestamp();
    let (a, id) = (arn.clone(), version_id.clone());
    match db(&c.state, move |s| {
        s.set_default_policy_version(&a, &id, now)
    })
    .await?
    {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(Entity::Policy)) => Err(no_such_policy(&arn)),
        Err(StoreError::NotFound(_)) => Err(no_such_version(&arn, &version_id)),
        Err(e) => Err(e.into()),
    }
}

/// The kind of entity an attach/inline/boundary action works on, from its name
/// (`AttachGroupPolicy`, `PutRolePolicy`, …): one handler serves all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    User,
    Group,
    Role,
}

fn target_kind(c: &Call) -> TargetKind {
    let name = c.action.name;
    if name.contains("Group") {
        TargetKind::Group
    } else if name.contains("Role") {
        TargetKind::Role
    } else {
        TargetKind::User
    }
}

/// `UserName`, `GroupName` or `RoleName`, as the action's target.
fn target(v: &mut Validator, c: &Call) -> PolicyTarget {
    let p = &c.params;
    match target_kind(c) {
        TargetKind::Group => PolicyTarget::Group(v.required(p, GROUP_NAME).unwrap_or_default()),
        TargetKind::Role => PolicyTarget::Role(v.required(p, ROLE_NAME).unwrap_or_default()),
        TargetKind::User => {
            PolicyTarget::User(v.required(p, EXISTING_USER_NAME).unwrap_or_default())
        }
    }
}

fn no_such_target(t: &PolicyTarget) -> ApiError {
    match t {
        PolicyTarget::User(n) => no_such_user(n),
        PolicyTarget::Group(n) => no_such_group(n),
        PolicyTarget::Role(n) => no_such_role(n),
    }
}

/// AttachUserPolicy, AttachGroupPolicy and AttachRolePolicy.
pub(crate) async fn attach_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = target(&mut v, &c);
    let arn = read_arn(&mut v, &c.params);
    v.finish()?;
    let aws = aws_managed_policy(&arn).is_some();
    if arn.starts_with("arn:aws:iam::aws:") && !aws {
        return Err(not_attachable(&arn));
    }
    let (tt, a) = (t.clone(), arn.clone());
    match db(&c.state, move |s| {
        s.attach_policy(&tt, &a, aws, MAX_ATTACHED)
    })
    .await?
    {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(Entity::User | Entity::Group | Entity::Role)) => {
            Err(no_such_target(&t))
        }
        Err(StoreError::NotFound(_)) => Err(not_attachable(&arn)),
        Err(StoreError::LimitExceeded(_)) => Err(limit_exceeded(match t {
            PolicyTarget::User(_) => {
                format!("Cannot exceed quota for PoliciesPerUser: {MAX_ATTACHED}")
            }
            PolicyTarget::Group(_) => {
                format!("Cannot exceed quota for PoliciesPerGroup: {MAX_ATTACHED}")
            }
            PolicyTarget::Role(_) => {
                format!("Cannot exceed quota for PoliciesPerRole: {MAX_ATTACHED}")
            }
        })),
        Err(e) => Err(e.into()),
    }
}

/// DetachUserPolicy, DetachGroupPolicy and DetachRolePolicy.
pub(crate) async fn detach_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = target(&mut v, &c);
    let arn = read_arn(&mut v, &c.params);
    v.finish()?;
    let (tt, a) = (t.clone(), arn.clone());
    match db(&c.state, move |s| s.detach_policy(&tt, &a)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(Entity::User | Entity::Group | Entity::Role)) => {
            Err(no_such_target(&t))
        }
        Err(StoreError::NotFound(_)) => Err(no_such_policy(&arn)),
        Err(e) => Err(e.into()),
    }
}

/// ListAttachedUserPolicies, ListAttachedGroupPolicies and ListAttachedRolePolicies.
pub(crate) async fn list_attached_policies(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = target(&mut v, &c);
    let prefix = read_path_prefix(&mut v, &c.params, PrefixShape::PolicyPath);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let tt = t.clone();
    let mut attached = match db(&c.state, move |s| s.attached_policies(&tt)).await? {
        Ok(a) => a,
        Err(StoreError::NotFound(_)) => return Err(no_such_target(&t)),
        Err(e) => return Err(e.into()),
    };
    if let Some(prefix) = prefix {
        attached.retain(|a| policy_path_of(&a.arn).starts_with(prefix.as_str()));
    }
    let mut x = Xml::fragment();
    page.write(
        &mut x,
        "AttachedPolicies",
        &attached,
        |a| a.arn.as_str(),
        |x, a| {
            x.text("PolicyName", &a.name);
            x.text("PolicyArn", &a.arn);
        },
    );
    Ok(Some(x.finish()))
}

/// The path of a policy ARN (`arn:aws:iam::A:policy/p/q/N` → `/p/q/`).
fn policy_path_of(arn: &str) -> &str {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or("");
    let rest = resource.strip_prefix("policy").unwrap_or(resource);
    match rest.rfind('/') {
        Some(i) => &rest[..=i],
        None => "/",
    }
}

pub(crate) async fn list_entities_for_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    let filter = v.one_of(
        &c.params,
        "EntityFilter",
        &[
            "User",
            "Role",
            "Group",
            "LocalManagedPolicy",
            "AWSManagedPolicy",
        ],
        false,
    );
    let prefix = read_path_prefix(&mut v, &c.params, PrefixShape::Path);
    let usage = v.one_of(
        &c.params,
        "PolicyUsageFilter",
        &["PermissionsPolicy", "PermissionsBoundary"],
        false,
    );
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    if managed(&c, &arn).await?.is_none() {
        return Err(no_such_policy(&arn));
    }
    let usage = match usage {
        Some("PermissionsPolicy") => Some(PolicyUsage::Permissions),
        Some(_) => Some(PolicyUsage::Boundary),
        None => None,
    };
    let a = arn.clone();
    let mut entities = db(&c.state, move |s| s.policy_entities(&a, usage)).await??;
    let prefix = prefix.unwrap_or_else(|| "/".to_owned());
    entities
        .users
        .retain(|u| u.path.starts_with(prefix.as_str()));
    entities
        .groups
        .retain(|g| g.path.starts_with(prefix.as_str()));
    entities
        .roles
        .retain(|r| r.path.starts_with(prefix.as_str()));
    let (users, groups, roles) = match filter {
        Some("User") => (true, false, false),
        Some("Group") => (false, true, false),
        Some("Role") => (false, false, true),
        Some(_) => (false, false, false),
        None => (true, true, true),
    };
    // One list for paging, in key order: the groups, the roles, then the users, each by
    // name.
    let mut listed: Vec<(String, PolicyEntity<'_>)> = Vec::new();
    if groups {
        listed.extend(
            entities
                .groups
                .iter()
                .map(|g| (format!("group/{}", g.name), PolicyEntity::Group(g))),
        );
    }
    if roles {
        listed.extend(
            entities
                .roles
                .iter()
                .map(|r| (format!("role/{}", r.name), PolicyEntity::Role(r))),
        );
    }
    if users {
        listed.extend(
            entities
                .users
                .iter()
                .map(|u| (format!("user/{}", u.name), PolicyEntity::User(u))),
        );
    }
    let (page, next) = page.slice(&listed, |(key, _)| key.as_str());
    let mut x = Xml::fragment();
    for list in ["PolicyGroups", "PolicyUsers", "PolicyRoles"] {
        x.elem(list, |x| {
            for (_, entity) in page {
                let (in_list, members) = entity.member();
                if in_list == list {
                    x.elem("member", |x| {
                        for (name, value) in members {
                            x.text(name, value);
                        }
                    });
                }
            }
        });
    }
    truncation_xml(&mut x, next.as_deref());
    Ok(Some(x.finish()))
}

/// One member of ListEntitiesForPolicy's answer.
enum PolicyEntity<'a> {
    Group(&'a tokengate_store::Group),
    Role(&'a tokengate_store::Role),
    User(&'a tokengate_store::User),
}

impl PolicyEntity<'_> {
    /// The list it is answered in, and its name and id members.
    fn member(&self) -> (&'static str, [(&'static str, &str); 2]) {
        match self {
            Self::Group(g) => (
                "PolicyGroups",
                [("GroupName", &g.name), ("GroupId", &g.group_id)],
            ),
            Self::User(u) => (
                "PolicyUsers",
                [("UserName", &u.name), ("UserId", &u.user_id)],
            ),
            Self::Role(r) => (
                "PolicyRoles",
                [("RoleName", &r.name), ("RoleId", &r.role_id)],
            ),
        }
    }
}

fn inline_kind(t: &PolicyTarget) -> (PolicyKind, usize, &'static str) {
    match t {
        PolicyTarget::User(_) => (
            PolicyKind::UserInline,
            tokengate_policy::USER_INLINE_MAX_SIZE,
            "user",
        ),
        PolicyTarget::Group(_) => (
            PolicyKind::GroupInline,
            tokengate_policy::GROUP_INLINE_MAX_SIZE,
            "group",
        ),
        PolicyTarget::Role(_) => (
            PolicyKind::RoleInline,
            tokengate_policy::ROLE_INLINE_MAX_SIZE,
            "role",
        ),
    }
}

fn target_name(t: &PolicyTarget) -> &str {
    match t {
        PolicyTarget::User(n) | PolicyTarget::Group(n) | PolicyTarget::Role(n) => n,
    }
}

fn no_such_inline(t: &PolicyTarget, name: &str) -> ApiError {
    let (_, _, what) = inline_kind(t);
    no_such_entity(format!(
        "The {what} policy with name {name} cannot be found."
    ))
}

/// PutUserPolicy, PutGroupPolicy and PutRolePolicy.
pub(crate) async fn put_inline_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = target(&mut v, &c);
    let name = v.required(&c.params, POLICY_NAME);
    let document = v.required(&c.params, POLICY_DOCUMENT);
    v.finish()?;
    let (name, document) = (name.unwrap_or_default(), document.unwrap_or_default());
    let (kind, max, what) = inline_kind(&t);
    parse(&document, kind)?;
    let size = tokengate_policy::policy_size(&document);
    let tt = t.clone();
    match db(&c.state, move |s| {
        s.put_inline_policy(&tt, &name, &document, size, max)
    })
    .await?
    {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(_)) => Err(no_such_target(&t)),
        Err(StoreError::LimitExceeded(_)) => Err(limit_exceeded(format!(
            "Maximum policy size of {max} bytes exceeded for {what} {}",
            target_name(&t)
        ))),
        Err(e) => Err(e.into()),
    }
}

/// GetUserPolicy, GetGroupPolicy and GetRolePolicy.
pub(crate) async fn get_inline_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = target(&mut v, &c);
    let name = v.required(&c.params, POLICY_NAME).unwrap_or_default();
    v.finish()?;
    let (tt, n) = (t.clone(), name.clone());
    let document = match db(&c.state, move |s| s.inline_policy(&tt, &n)).await? {
        Ok(Some(d)) => d,
        Ok(None) => return Err(no_such_inline(&t, &name)),
        Err(StoreError::NotFound(_)) => return Err(no_such_target(&t)),
        Err(e) => return Err(e.into()),
    };
    let mut x = Xml::fragment();
    match &t {
        PolicyTarget::User(n) => x.text("UserName", n),
        PolicyTarget::Group(n) => x.text("GroupName", n),
        PolicyTarget::Role(n) => x.text("RoleName", n),
    }
    x.text("PolicyName", &name);
    document_text(&mut x, "PolicyDocument", &document);
    Ok(Some(x.finish()))
}

/// DeleteUserPolicy, DeleteGroupPolicy and DeleteRolePolicy.
pub(crate) async fn delete_inline_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = target(&mut v, &c);
    let name = v.required(&c.params, POLICY_NAME).unwrap_or_default();
    v.finish()?;
    let (tt, n) = (t.clone(), name.clone());
    match db(&c.state, move |s| s.delete_inline_policy(&tt, &n)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(Entity::User | Entity::Group | Entity::Role)) => {
            Err(no_such_target(&t))
        }
        Err(StoreError::NotFound(_)) => Err(no_such_inline(&t, &name)),
        Err(e) => Err(e.into()),
    }
}

/// ListUserPolicies, ListGroupPolicies and ListRolePolicies.
pub(crate) async fn list_inline_policies(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = target(&mut v, &c);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let tt = t.clone();
    let names = match db(&c.state, move |s| s.inline_policy_names(&tt)).await? {
        Ok(n) => n,
        Err(StoreError::NotFound(_)) => return Err(no_such_target(&t)),
        Err(e) => return Err(e.into()),
    };
    let mut x = Xml::fragment();
    page.write(&mut x, "PolicyNames", &names, String::as_str, |x, n| {
        x.escaped(n);
    });
    Ok(Some(x.finish()))
}

/// `UserName` or `RoleName` of a permissions-boundary action.
fn boundary_target(v: &mut Validator, c: &Call) -> PolicyTarget {
    match target_kind(c) {
        TargetKind::Role => {
            PolicyTarget::Role(v.required(&c.params, ROLE_NAME).unwrap_or_default())
        }
        _ => PolicyTarget::User(
            v.required(&c.params, EXISTING_USER_NAME)
                .unwrap_or_default(),
        ),
    }
}

/// Sets or removes (`None`) the boundary of a user or a role.
async fn set_boundary(
    c: &Call,
    t: &PolicyTarget,
    arn: Option<String>,
    aws: bool,
) -> Result<(), ApiError> {
    let (tt, a) = (t.clone(), arn.clone());
    let result = db(&c.state, move |s| match &tt {
        PolicyTarget::Role(n) => s.set_role_permissions_boundary(n, a.as_deref(), aws),
        other => s.set_user_permissions_boundary(target_name(other), a.as_deref(), aws),
    })
    .await?;
    match result {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound(Entity::User | Entity::Role)) => Err(no_such_target(t)),
        Err(StoreError::NotFound(_)) => Err(not_attachable(arn.as_deref().unwrap_or_default())),
        Err(e) => Err(e.into()),
    }
}

/// PutUserPermissionsBoundary and PutRolePermissionsBoundary.
pub(crate) async fn put_permissions_boundary(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = boundary_target(&mut v, &c);
    let arn = v.required(&c.params, BOUNDARY_ARN).unwrap_or_default();
    v.finish()?;
    let aws = check_boundary_arn(&arn)?;
    set_boundary(&c, &t, Some(arn), aws).await?;
    Ok(None)
}

/// DeleteUserPermissionsBoundary and DeleteRolePermissionsBoundary (idempotent, as AWS).
pub(crate) async fn delete_permissions_boundary(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let t = boundary_target(&mut v, &c);
    v.finish()?;
    set_boundary(&c, &t, None, false).await?;
    Ok(None)
}

pub(crate) async fn tag_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    let tags = read_tags(&mut v, &c.params, "Tags");
    v.finish()?;
    refuse_aws_managed(&arn)?;
    let a = arn.clone();
    match db(&c.state, move |s| s.tag_policy(&a, &tags, MAX_TAGS)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(_)) => Err(no_such_policy(&arn)),
        Err(StoreError::LimitExceeded(_)) => Err(limit_exceeded(format!(
            "Cannot exceed quota for TagsPerPolicy: {MAX_TAGS}"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn untag_policy(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    let keys = read_tag_keys(&mut v, &c.params);
    v.finish()?;
    refuse_aws_managed(&arn)?;
    let a = arn.clone();
    match db(&c.state, move |s| s.untag_policy(&a, &keys)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(_)) => Err(no_such_policy(&arn)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn list_policy_tags(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let arn = read_arn(&mut v, &c.params);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let tags = if aws_managed_policy(&arn).is_some() {
        Vec::new()
    } else {
        let a = arn.clone();
        match db(&c.state, move |s| s.policy_tags(&a)).await? {
            Ok(t) => t,
            Err(StoreError::NotFound(_)) => return Err(no_such_policy(&arn)),
            Err(e) => return Err(e.into()),
        }
    };
    let mut x = Xml::fragment();
    page.write(&mut x, "Tags", &tags, |t| t.key.as_str(), tag_xml);
    Ok(Some(x.finish()))
}
