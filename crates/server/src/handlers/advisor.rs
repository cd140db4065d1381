//! Account advisor (IAM, API version 2010-05-08; portal.md §2): GetAccessKeyLastUsed, the
//! access advisor (Generate/GetServiceLastAccessedDetails), GetAccountSummary,
//! GetAccountAuthorizationDetails and the account alias.
//!
//! Usage comes from [`crate::usage`]: the recorder's pending batch is flushed before a read,
//! so what this replica saw is in the answer. An access-advisor job is computed when it is
//! generated and stored with its result, so GetServiceLastAccessedDetails answers
//! `COMPLETED` at once and the same job always reads the same (as AWS's do).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::http::StatusCode;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use tokengate_store::{
    AdvisorJob, EntityUse, Group, KeyOwner, ManagedPolicy, PolicyUsage, PolicyVersion,
    RolePolicies, Store, StoreError, UserPolicies,
};
use tokengate_token::{Principal, arn};

use crate::action::ResourceInput;
use crate::auth::Caller;
use crate::common::{db, iso8601};
use crate::entities::{
    self, MAX_ATTACHED, MAX_GROUPS, MAX_GROUPS_PER_USER, MAX_POLICIES, MAX_POLICY_VERSIONS,
    MAX_ROLES, Page, boundary_xml, document_text, group_xml, invalid_input, no_such_entity,
    policy_xml, tags_xml, truncation_xml,
};
use crate::error::ApiError;
use crate::params::{self, Params, Pattern, Rule, Validator};
use crate::state::AppState;
use crate::xml::Xml;

/// The services tokengate answers, as the advisor lists them: namespace and name, sorted
/// by namespace (AWS's default order).
const SERVICES: [(&str, &str); 2] = [
    ("iam", "AWS Identity and Access Management"),
    ("sts", "AWS Security Token Service"),
];

/// Jobs are kept this long (seconds); AWS documents none, 30 days is ample for a client.
const JOB_RETENTION_SECS: i64 = 30 * 86_400;

/// `accessKeyIdType`: 16–128, `[\w]+`.
const ACCESS_KEY_ID: Rule = Rule {
    name: "AccessKeyId",
    min: 16,
    max: 128,
    pattern: Some(params::WORD_PLUS),
};

/// `arnType`: 20–2048.
const ENTITY_ARN: Rule = Rule {
    name: "Arn",
    min: 20,
    max: 2048,
    pattern: None,
};

/// `jobIDType`: exactly 36.
const JOB_ID: Rule = Rule {
    name: "JobId",
    min: 36,
    max: 36,
    pattern: None,
};

/// `accountAliasType`'s pattern (botocore-iam); the character class is checked by the rule,
/// the shape by [`valid_alias`].
const ALIAS_PATTERN: &str = "^[a-z0-9]([a-z0-9]|-(?!-)){1,61}[a-z0-9]$";

/// `accountAliasType`: 3–63, lowercase letters, digits and single inner dashes.
const ACCOUNT_ALIAS: Rule = Rule {
    name: "AccountAlias",
    min: 3,
    max: 63,
    pattern: Some(Pattern {
        text: ALIAS_PATTERN,
        allows: |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
        _plus: true,
    }),
};

/// Whether `alias` has the shape of [`ALIAS_PATTERN`] (its characters already checked):
/// no dash first or last, never two in a row.
fn valid_alias(alias: &str) -> bool {
    !alias.starts_with('-') && !alias.ends_with('-') && !alias.contains("--")
}

/// A random UUID (v4): a job id.
fn uuid(state: &AppState) -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    state.rng.fill(&mut b).map_err(ApiError::internal)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = data_encoding::HEXLOWER.encode(&b);
    // Indexing is safe: `h` is 32 ASCII hex digits.
    Ok(format!(
        "{}-{}-{}-{}-{}",
        h.get(0..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..32).unwrap_or_default()
    ))
}

/// Writes what the usage recorder holds, so that a read sees this replica's uses.
async fn flush_usage(state: &Arc<AppState>) -> Result<(), ApiError> {
    let s = Arc::clone(state);
    db(state, move |store| s.usage.flush(store)).await??;
    Ok(())
}

// ---- GetAccessKeyLastUsed ------------------------------------------------------------

/// The resource of GetAccessKeyLastUsed: the key owner's ARN (`*` for an unknown key).
pub(crate) fn key_owner_resource(input: &ResourceInput<'_>) -> String {
    let Some(id) = input.params.get("AccessKeyId") else {
        return "*".to_owned();
    };
    // A point read, inline on the worker (ADR 0003); a failed read answers `*` and the
    // handler meets the failure again.
    match input.state.store.access_key(id) {
        Ok(Some(key)) => match key.owner {
            KeyOwner::Root => Principal::Root {
                account: input.account().to_owned(),
            }
            .arn(),
            KeyOwner::User(name) => input.user_arn(&name).unwrap_or_else(|_| "*".to_owned()),
        },
        _ => "*".to_owned(),
    }
}

pub(crate) async fn get_access_key_last_used(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let id = v.required(p, ACCESS_KEY_ID).unwrap_or_default();
    v.finish()?;
    flush_usage(state).await?;
    let lookup = id.clone();
    let (key, used) = db(state, move |s| {
        Ok((s.access_key(&lookup)?, s.access_key_last_used(&lookup)?))
    })
    .await??;
    // Unverified text (portal.md §2.1: LocalStack's and moto's).
    let key =
        key.ok_or_else(|| no_such_entity(format!("The Access Key with id {id} cannot be found.")))?;
    let mut x = Xml::fragment();
    match &key.owner {
        KeyOwner::User(name) => x.text("UserName", name),
        KeyOwner::Root => x.text("UserName", &state.account_id),
    }
    x.elem("AccessKeyLastUsed", |x| {
        let na = |s: &str| {
            if s.is_empty() {
                "N/A".to_owned()
            } else {
                s.to_owned()
            }
        };
        match &used {
            Some(u) => {
                x.text("LastUsedDate", &iso8601(u.at));
                x.text("ServiceName", &na(&u.service));
                x.text("Region", &na(&u.region));
            }
            None => {
                x.text("ServiceName", "N/A");
                x.text("Region", "N/A");
            }
        }
    });
    Ok(x.finish())
}

// ---- Access advisor ------------------------------------------------------------------

/// One service of a job's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ServiceRow {
    namespace: String,
    /// The newest attempt: when, by which entity ARN, in which region.
    last: Option<Attempt>,
    /// Entities with an attempt on the service.
    total: usize,
    /// ACTION_LEVEL: each action attempted, newest attempt.
    actions: Vec<ActionRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attempt {
    at: i64,
    entity: String,
    region: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ActionRow {
    name: String,
    last: Attempt,
}

fn newest(a: Option<Attempt>, u: &EntityUse) -> Option<Attempt> {
    match a {
        Some(a) if a.at >= u.at => Some(a),
        _ => Some(Attempt {
            at: u.at,
            entity: u.entity_arn.clone(),
            region: u.region.clone(),
        }),
    }
}

/// The service rows of `uses` (one entity's, or a group's or policy's entities').
fn service_rows(uses: &[EntityUse], action_level: bool) -> Vec<ServiceRow> {
    SERVICES
        .iter()
        .map(|&(namespace, _)| {
            let mut last = None;
            let mut entities = HashSet::new();
            let mut actions: BTreeMap<&str, Option<Attempt>> = BTreeMap::new();
            for u in uses.iter().filter(|u| u.service == namespace) {
                last = newest(last, u);
                entities.insert(u.entity_id.as_str());
                let slot = actions.entry(u.action.as_str()).or_default();
                *slot = newest(slot.take(), u);
            }
            ServiceRow {
                namespace: namespace.to_owned(),
                last,
                total: entities.len(),
                actions: if action_level {
                    actions
                        .into_iter()
                        .filter_map(|(name, last)| {
                            Some(ActionRow {
                                name: name.to_owned(),
                                last: last?,
                            })
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// The unique ids of the entities whose usage an advisor report on `arn` covers: the
/// user or role itself, a group's members, or the users, roles and group members a
/// managed policy is attached to.
fn entities_of(s: &dyn Store, account: &str, target: &str) -> Result<Vec<String>, AdvisorError> {
    let invalid = || AdvisorError::Invalid(format!("ARN {target} is not valid."));
    let rest = target.strip_prefix("arn:aws:iam::").ok_or_else(invalid)?;
    let (acct, resource) = rest.split_once(':').ok_or_else(invalid)?;
    let (kind, path_name) = resource.split_once('/').ok_or_else(invalid)?;
    let name = path_name.rsplit('/').next().unwrap_or_default();
    if name.is_empty() {
        return Err(invalid());
    }
    let path = format!("/{}", path_name.strip_suffix(name).unwrap_or_default());
    let missing =
        |what: &str| AdvisorError::Missing(format!("The {what} with name {name} cannot be found."));
    match kind {
        "user" if acct == account => {
            let u = s
                .user(name)?
                .filter(|u| u.path == path)
                .ok_or_else(|| missing("user"))?;
            Ok(vec![u.user_id])
        }
        "role" if acct == account => {
            let r = s
                .role(name)?
                .filter(|r| r.path == path)
                .ok_or_else(|| missing("role"))?;
            Ok(vec![r.role_id])
        }
        "group" if acct == account => {
            let g = s
                .group(name)?
                .filter(|g| g.path == path)
                .ok_or_else(|| missing("group"))?;
            Ok(s.group_members(&g.name)?
                .into_iter()
                .map(|u| u.user_id)
                .collect())
        }
        "policy" if acct == account || acct == "aws" => {
            if acct == account && s.managed_policy(target)?.is_none() {
                return Err(AdvisorError::Missing(format!(
                    "Policy {target} does not exist or is not attachable."
                )));
            }
            let e = s.policy_entities(target, Some(PolicyUsage::Permissions))?;
            let mut ids: Vec<String> = e.users.into_iter().map(|u| u.user_id).collect();
            ids.extend(e.roles.into_iter().map(|r| r.role_id));
            for g in e.groups {
                ids.extend(s.group_members(&g.name)?.into_iter().map(|u| u.user_id));
            }
            ids.sort();
            ids.dedup();
            Ok(ids)
        }
        _ if acct != account => Err(AdvisorError::Missing(format!(
            "The entity {target} cannot be found."
        ))),
        _ => Err(invalid()),
    }
}

/// Why a job could not be made.
enum AdvisorError {
    Invalid(String),
    Missing(String),
    Store(StoreError),
}

impl From<StoreError> for AdvisorError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The resource of GenerateServiceLastAccessedDetails: the entity ARN it reports on.
pub(crate) fn advisor_target_resource(input: &ResourceInput<'_>) -> String {
    input.params.get("Arn").unwrap_or("*").to_owned()
}

pub(crate) async fn generate_service_last_accessed_details(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let target = v.required(p, ENTITY_ARN).unwrap_or_default();
    let granularity = v
        .one_of(p, "Granularity", &["SERVICE_LEVEL", "ACTION_LEVEL"], false)
        .unwrap_or("SERVICE_LEVEL");
    v.finish()?;
    flush_usage(state).await?;
    let now = state.clock.now().unix_timestamp();
    let job = AdvisorJob {
        job_id: uuid(state)?,
        requester: caller.principal.arn(),
        created: now,
        completed: now,
        granularity: granularity.to_owned(),
        result: String::new(),
    };
    let account = state.account_id.clone();
    let computed = db(state, move |s| {
        let ids = match entities_of(s, &account, &target) {
            Ok(ids) => ids,
            Err(AdvisorError::Store(e)) => return Err(e),
            Err(e) => return Ok(Err(e)),
        };
        let uses = s.entity_usage(&ids)?;
        let rows = service_rows(&uses, job.granularity == "ACTION_LEVEL");
        let result = serde_json::to_string(&rows)
            .map_err(|e| StoreError::Backend(format!("advisor result: {e}")))?;
        let job = AdvisorJob { result, ..job };
        s.put_advisor_job(&job, now - JOB_RETENTION_SECS)?;
        Ok(Ok(job.job_id))
    })
    .await??;
    let job_id = computed.map_err(|e| match e {
        AdvisorError::Invalid(m) => invalid_input(m),
        AdvisorError::Missing(m) => no_such_entity(m),
        AdvisorError::Store(e) => ApiError::from(e),
    })?;
    let mut x = Xml::fragment();
    x.text("JobId", &job_id);
    Ok(x.finish())
}

pub(crate) async fn get_service_last_accessed_details(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let job_id = v.required(p, JOB_ID).unwrap_or_default();
    let page = Page::read(&mut v, p);
    v.finish()?;
    let lookup = job_id.clone();
    let job = db(state, move |s| s.advisor_job(&lookup)).await??;
    // A job is its requester's (IAMUG: "must be used by the same role within a session, or
    // by the same user"); anyone else is told it does not exist. Unverified text.
    let job = job
        .filter(|j| j.requester == caller.principal.arn())
        .ok_or_else(|| no_such_entity(format!("The job with ID {job_id} cannot be found.")))?;
    let rows: Vec<ServiceRow> = serde_json::from_str(&job.result).map_err(ApiError::internal)?;
    let (rows, next) = page.slice(&rows, |r| r.namespace.as_str());
    let mut x = Xml::fragment();
    x.text("JobStatus", "COMPLETED");
    x.text("JobType", &job.granularity);
    x.text("JobCreationDate", &iso8601(job.created));
    x.elem("ServicesLastAccessed", |x| {
        for r in rows {
            x.elem("member", |x| {
                let name = SERVICES
                    .iter()
                    .find(|(ns, _)| *ns == r.namespace)
                    .map_or(r.namespace.as_str(), |(_, name)| name);
                x.text("ServiceName", name);
                if let Some(last) = &r.last {
                    x.text("LastAuthenticated", &iso8601(last.at));
                }
                x.text("ServiceNamespace", &r.namespace);
                if let Some(last) = &r.last {
                    x.text("LastAuthenticatedEntity", &last.entity);
                    x.text("LastAuthenticatedRegion", &last.region);
                }
                x.text("TotalAuthenticatedEntities", &r.total.to_string());
                if !r.actions.is_empty() {
                    x.elem("TrackedActionsLastAccessed", |x| {
                        for a in &r.actions {
                            x.elem("member", |x| {
                                x.text("ActionName", &a.name);
                                x.text("LastAccessedEntity", &a.last.entity);
                                x.text("LastAccessedTime", &iso8601(a.last.at));
                                x.text("LastAccessedRegion", &a.last.region);
                            });
                        }
                    });
                }
            });
        }
    });
    x.text("JobCompletionDate", &iso8601(job.completed));
    truncation_xml(&mut x, next.as_deref());
    Ok(x.finish())
}

// ---- GetAccountSummary ---------------------------------------------------------------

/// IAM quotas tokengate answers with (`UG:reference_iam-quotas`; those it enforces are the
/// constants it enforces them with).
const USERS_QUOTA: usize = 5_000;
const SERVER_CERTIFICATES_QUOTA: usize = 20;
const USER_POLICY_SIZE_QUOTA: usize = tokengate_store::MAX_USER_INLINE_SIZE;
const GROUP_POLICY_SIZE_QUOTA: usize = tokengate_store::MAX_GROUP_INLINE_SIZE;
const ROLE_POLICY_SIZE_QUOTA: usize = 10_240;
const POLICY_SIZE_QUOTA: usize = 6_144;
const ASSUME_ROLE_POLICY_SIZE_QUOTA: usize = 2_048;
const SIGNING_CERTIFICATES_PER_USER_QUOTA: usize = 2;
const ACCESS_KEYS_PER_USER_QUOTA: usize = 2;
const POLICY_VERSIONS_IN_USE_QUOTA: usize = 10_000;
const INSTANCE_PROFILES_QUOTA: usize = 1_000;

pub(crate) async fn get_account_summary(
    state: &Arc<AppState>,
    _caller: &Caller,
    _p: &Params,
) -> Result<String, ApiError> {
    let counts = db(state, |s| {
        let inventory = s.credential_inventory()?;
        let totp = s.list_mfa_devices(None)?;
        let totp_enabled = totp
            .iter()
            .filter(|d| d.owner.is_some() && d.enabled_at.is_some())
            .count();
        let in_use: usize = inventory.root.mfa_devices
            + inventory
                .users
                .iter()
                .map(|(_, c)| c.mfa_devices)
                .sum::<usize>();
        let security_keys = in_use.saturating_sub(totp_enabled);
        let policies = s.list_policies("/")?;
        let policies_in_use: u32 = policies
            .iter()
            .map(|p| p.attachment_count + p.boundary_usage_count)
            .sum();
        Ok(vec![
            ("Users", inventory.users.len()),
            ("UsersQuota", USERS_QUOTA),
            ("Groups", s.list_groups("/")?.len()),
            ("GroupsQuota", MAX_GROUPS),
            ("ServerCertificates", 0),
            ("ServerCertificatesQuota", SERVER_CERTIFICATES_QUOTA),
            ("UserPolicySizeQuota", USER_POLICY_SIZE_QUOTA),
            ("GroupPolicySizeQuota", GROUP_POLICY_SIZE_QUOTA),
            ("GroupsPerUserQuota", MAX_GROUPS_PER_USER),
            (
                "SigningCertificatesPerUserQuota",
                SIGNING_CERTIFICATES_PER_USER_QUOTA,
            ),
            ("AccessKeysPerUserQuota", ACCESS_KEYS_PER_USER_QUOTA),
            ("MFADevices", totp.len() + security_keys),
            ("MFADevicesInUse", in_use),
            (
                "AccountMFAEnabled",
                usize::from(inventory.root.mfa_devices > 0),
            ),
            (
                "AccountAccessKeysPresent",
                usize::from(!inventory.root.keys.is_empty()),
            ),
            // The root user has no console password in tokengate.
            ("AccountPasswordPresent", 0),
            ("AccountSigningCertificatesPresent", 0),
            ("AttachedPoliciesPerGroupQuota", MAX_ATTACHED),
            ("AttachedPoliciesPerRoleQuota", MAX_ATTACHED),
            ("AttachedPoliciesPerUserQuota", MAX_ATTACHED),
            ("Policies", policies.len()),
            ("PoliciesQuota", MAX_POLICIES),
            ("PolicySizeQuota", POLICY_SIZE_QUOTA),
            (
                "PolicyVersionsInUse",
                usize::try_from(policies_in_use).unwrap_or(usize::MAX),
            ),
            ("PolicyVersionsInUseQuota", POLICY_VERSIONS_IN_USE_QUOTA),
            ("VersionsPerPolicyQuota", MAX_POLICY_VERSIONS),
            // Session tokens from the global endpoint: v1, AWS's default.
            ("GlobalEndpointTokenVersion", 1),
            ("AssumeRolePolicySizeQuota", ASSUME_ROLE_POLICY_SIZE_QUOTA),
            ("InstanceProfiles", 0),
            ("InstanceProfilesQuota", INSTANCE_PROFILES_QUOTA),
            ("Providers", 0),
            ("RolePolicySizeQuota", ROLE_POLICY_SIZE_QUOTA),
            ("Roles", s.list_roles("/")?.len()),
            ("RolesQuota", MAX_ROLES),
        ])
    })
    .await??;
    let mut x = Xml::fragment();
    x.elem("SummaryMap", |x| {
        for (key, value) in &counts {
            x.elem("entry", |x| {
                x.text("key", key);
                x.text("value", &value.to_string());
            });
        }
    });
    Ok(x.finish())
}

// ---- GetAccountAuthorizationDetails --------------------------------------------------

const FILTERS: [&str; 5] = [
    "User",
    "Role",
    "Group",
    "LocalManagedPolicy",
    "AWSManagedPolicy",
];

/// One entry of the listing, in the order AWS lists them: users, groups, roles, policies;
/// each by name. The key is the pagination marker.
enum Entry {
    User(String, String),
    Group(String, String),
    Role(String, String),
    Policy(String, String),
}

impl Entry {
    fn key(&self) -> &str {
        match self {
            Entry::User(k, _) | Entry::Group(k, _) | Entry::Role(k, _) | Entry::Policy(k, _) => k,
        }
    }
}

/// An entry with its details, read for one page.
enum Detail {
    User(Box<UserPolicies>),
    Group(Group, Vec<(String, String)>, Vec<String>),
    Role(Box<RolePolicies>),
    Policy(ManagedPolicy, Vec<PolicyVersion>),
}

fn attached_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

pub(crate) async fn get_account_authorization_details(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let mut filter = Vec::new();
    for (i, f) in p.list("Filter").iter().enumerate() {
        match FILTERS.iter().find(|a| **a == f.as_str()) {
            Some(found) => filter.push(*found),
            None => v.custom(format!(
                "Value '{f}' at 'filter.{}.member' failed to satisfy constraint: Member must \
                 satisfy enum value set: [{}]",
                i + 1,
                FILTERS.join(", ")
            )),
        }
    }
    let page = Page::read(&mut v, p);
    v.finish()?;
    let wants = |f: &str| filter.is_empty() || filter.contains(&f);
    let (users, groups, roles, local) = (
        wants("User"),
        wants("Group"),
        wants("Role"),
        wants("LocalManagedPolicy"),
    );
    let details = db(state, move |s| {
        // The whole listing (names only), in order; the marker is the last key sent.
        let mut entries = Vec::new();
        if users {
            for u in s.list_users("/", None, usize::MAX)? {
                entries.push(Entry::User(format!("1user/{}", u.name), u.user_id));
            }
        }
        if groups {
            for g in s.list_groups("/")? {
                entries.push(Entry::Group(format!("2group/{}", g.name), g.name));
            }
        }
        if roles {
            for r in s.list_roles("/")? {
                entries.push(Entry::Role(format!("3role/{}", r.name), r.role_id));
            }
        }
        if local {
            for p in s.list_policies("/")? {
                entries.push(Entry::Policy(format!("4policy/{}", p.name), p.arn));
            }
        }
        let (slice, next) = page.slice(&entries, Entry::key);
        let mut out = Vec::new();
        for e in slice {
            match e {
                Entry::User(_, id) => {
                    if let Some(u) = s.user_policies(id)? {
                        out.push(Detail::User(Box::new(u)));
                    }
                }
                Entry::Group(_, name) => {
                    if let (Some(g), Some(policies)) = (s.group(name)?, s.group_policies(name)?) {
                        let inline = policies
                            .inline
                            .into_iter()
                            .map(|i| (i.name, i.document))
                            .collect();
                        let attached = policies.attached.into_iter().map(|a| a.arn).collect();
                        out.push(Detail::Group(g, inline, attached));
                    }
                }
                Entry::Role(_, id) => {
                    if let Some(r) = s.role_policies(id)? {
                        out.push(Detail::Role(Box::new(r)));
                    }
                }
                Entry::Policy(_, arn) => {
                    if let Some(p) = s.managed_policy(arn)? {
                        let versions = s.policy_versions(arn)?;
                        out.push(Detail::Policy(p, versions));
                    }
                }
            }
        }
        Ok((out, next))
    })
    .await??;
    let (details, next) = details;
    let account = state.account_id.as_str();
    let attached_xml = |x: &mut Xml, arns: &mut dyn Iterator<Item = &str>| {
        x.elem("AttachedManagedPolicies", |x| {
            for a in arns {
                x.elem("member", |x| {
                    x.text("PolicyName", attached_name(a));
                    x.text("PolicyArn", a);
                });
            }
        });
    };
    let inline_xml = |x: &mut Xml, list: &str, policies: &[(String, String)]| {
        x.elem(list, |x| {
            for (name, document) in policies {
                x.elem("member", |x| {
                    x.text("PolicyName", name);
                    document_text(x, "PolicyDocument", document);
                });
            }
        });
    };
    let mut x = Xml::fragment();
    x.elem("UserDetailList", |x| {
        for d in &details {
            let Detail::User(u) = d else { continue };
            x.elem("member", |x| {
                let user = &u.user;
                x.text("Path", &user.path);
                x.text("UserName", &user.name);
                x.text("UserId", &user.user_id);
                x.text("Arn", &arn::user_arn(account, &user.path, &user.name));
                x.text("CreateDate", &iso8601(user.created));
                let inline: Vec<(String, String)> = u
                    .inline
                    .iter()
                    .map(|i| (i.name.clone(), i.document.clone()))
                    .collect();
                inline_xml(x, "UserPolicyList", &inline);
                x.elem("GroupList", |x| {
                    for g in &u.groups {
                        x.text("member", &g.group.name);
                    }
                });
                attached_xml(x, &mut u.attached.iter().map(|a| a.arn.as_str()));
                if let Some(b) = &u.boundary {
                    boundary_xml(x, &b.arn);
                }
                if !u.tags.is_empty() {
                    tags_xml(x, &u.tags);
                }
            });
        }
    });
    x.elem("GroupDetailList", |x| {
        for d in &details {
            let Detail::Group(g, inline, attached) = d else {
                continue;
            };
            x.elem("member", |x| {
                group_xml(x, account, g);
                inline_xml(x, "GroupPolicyList", inline);
                attached_xml(x, &mut attached.iter().map(String::as_str));
            });
        }
    });
    x.elem("RoleDetailList", |x| {
        for d in &details {
            let Detail::Role(r) = d else { continue };
            x.elem("member", |x| {
                let role = &r.role;
                x.text("Path", &role.path);
                x.text("RoleName", &role.name);
                x.text("RoleId", &role.role_id);
                x.text("Arn", &entities::role_arn(account, &role.path, &role.name));
                x.text("CreateDate", &iso8601(role.created));
                document_text(x, "AssumeRolePolicyDocument", &role.assume_role_policy);
                x.elem("InstanceProfileList", |_| {});
                let inline: Vec<(String, String)> = r
                    .inline
                    .iter()
                    .map(|i| (i.name.clone(), i.document.clone()))
                    .collect();
                inline_xml(x, "RolePolicyList", &inline);
                attached_xml(x, &mut r.attached.iter().map(|a| a.arn.as_str()));
                if let Some(b) = &r.boundary {
                    boundary_xml(x, &b.arn);
                }
                if !r.tags.is_empty() {
                    tags_xml(x, &r.tags);
                }
                x.elem("RoleLastUsed", |x| {
                    if let Some(at) = role.last_used {
                        x.text("LastUsedDate", &iso8601(at));
                    }
                    if let Some(region) = &role.last_used_region {
                        x.text("Region", region);
                    }
                });
            });
        }
    });
    x.elem("Policies", |x| {
        for d in &details {
            let Detail::Policy(p, versions) = d else {
                continue;
            };
            x.elem("member", |x| {
                policy_xml(x, p, true);
                x.elem("PolicyVersionList", |x| {
                    for version in versions {
                        x.elem("member", |x| {
                            document_text(x, "Document", &version.document);
                            x.text("VersionId", &version.version_id);
                            x.text(
                                "IsDefaultVersion",
                                if version.is_default { "true" } else { "false" },
                            );
                            x.text("CreateDate", &iso8601(version.created));
                        });
                    }
                });
            });
        }
    });
    truncation_xml(&mut x, next.as_deref());
    Ok(x.finish())
}

// ---- Account alias -------------------------------------------------------------------

fn read_alias(p: &Params) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let alias = v.required(p, ACCOUNT_ALIAS);
    if let Some(a) = &alias
        && !valid_alias(a)
    {
        v.pattern_failure(a, ACCOUNT_ALIAS);
    }
    v.finish()?;
    Ok(alias.unwrap_or_default())
}

pub(crate) async fn create_account_alias(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let alias = read_alias(p)?;
    // One alias per account: a new one replaces it (as the console's "edit" does).
    db(state, move |s| s.set_account_alias(&alias)).await??;
    Ok(())
}

pub(crate) async fn delete_account_alias(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let alias = read_alias(p)?;
    let lookup = alias.clone();
    match db(state, move |s| s.delete_account_alias(&lookup)).await? {
        Ok(()) => Ok(()),
        // Unverified text.
        Err(StoreError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NoSuchEntity",
            format!("The account alias {alias} cannot be found."),
        )),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn list_account_aliases(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let page = Page::read(&mut v, p);
    v.finish()?;
    let alias = db(state, |s| s.account_alias()).await??;
    let aliases: Vec<String> = alias.into_iter().collect();
    let (aliases, next) = page.slice(&aliases, String::as_str);
    let mut x = Xml::fragment();
    x.elem("AccountAliases", |x| {
        for a in aliases {
            x.text("member", a);
        }
    });
    truncation_xml(&mut x, next.as_deref());
    Ok(x.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_shape() {
        for ok in ["abc", "my-corp", "a1-b2-c3"] {
            assert!(valid_alias(ok), "{ok}");
        }
        for bad in ["-abc", "abc-", "a--b"] {
            assert!(!valid_alias(bad), "{bad}");
        }
    }

    #[test]
    fn service_rows_take_the_newest_attempt_and_count_entities() {
        let u = |id: &str, service: &str, action: &str, at| EntityUse {
            entity_id: id.into(),
            entity_arn: format!("arn:aws:iam::000000000000:user/{id}"),
            service: service.into(),
            action: action.into(),
            at,
            region: "us-east-1".into(),
        };
        let uses = [
            u("a", "iam", "GetUser", 10),
            u("b", "iam", "GetUser", 20),
            u("a", "iam", "ListUsers", 30),
        ];
        let rows = service_rows(&uses, true);
        assert_eq!(rows.len(), 2);
        let iam = &rows[0];
        assert_eq!(iam.total, 2);
        let last = iam.last.as_ref().map(|l| (l.at, l.entity.as_str()));
        assert_eq!(last, Some((30, "arn:aws:iam::000000000000:user/a")));
        let actions: Vec<(&str, i64)> = iam
            .actions
            .iter()
            .map(|a| (a.name.as_str(), a.last.at))
            .collect();
        assert_eq!(actions, [("GetUser", 20), ("ListUsers", 30)]);
        assert!(rows[1].last.is_none() && rows[1].total == 0);
        assert!(service_rows(&uses, false)[0].actions.is_empty());
    }
}
