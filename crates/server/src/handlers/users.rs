//! Users and access keys (IAM, API version 2010-05-08): CreateUser, GetUser, ListUsers,
//! DeleteUser, CreateAccessKey, ListAccessKeys, UpdateAccessKey, DeleteAccessKey, and the
//! user's tags: TagUser, UntagUser, ListUserTags.
//!
//! Every handler here runs for a caller the chokepoint has already authorized
//! ([`crate::authz`]); none checks permissions itself. The resource builders that
//! [`crate::registry`] names for this family's actions are here too.

use std::sync::Arc;

use axum::http::StatusCode;
use tokengate_store::{AccessKey, Entity, KeyOwner, KeyStatus, StoreError, User};
use tokengate_token::keys;
use tokengate_token::{Principal, arn};

use crate::action::ResourceInput;
use crate::auth::Caller;
use crate::common::{EXISTING_USER_NAME, MARKER, PATH, db, iso8601, no_such_user, valid_path};
use crate::entities::{
    MAX_TAGS, Page, PrefixShape, delete_conflict, limit_exceeded, read_path_prefix, read_tag_keys,
    read_tags, tag_xml, tags_xml,
};
use crate::error::ApiError;
use crate::params::{self, Params, Rule, Validator};
use crate::state::AppState;
use crate::xml::Xml;

/// IAM quota: access keys per user (and per root).
pub const MAX_ACCESS_KEYS: usize = 2;

/// `userNameType`: 1..64, `[\w+=,.@-]+`.
pub const USER_NAME: Rule = Rule {
    name: "UserName",
    min: 1,
    max: 64,
    pattern: Some(params::NAME),
};
/// `accessKeyIdType` (IAM): 16..128, `[\w]+`.
const ACCESS_KEY_ID: Rule = Rule {
    name: "AccessKeyId",
    min: 16,
    max: 128,
    pattern: Some(params::WORD_PLUS),
};

/// CreateUser's resource: the new user's ARN, with the `Path` asked for.
pub(crate) fn create_user_resource(input: &ResourceInput<'_>) -> String {
    let name = input.params.get(USER_NAME.name).unwrap_or_default();
    let path = input.params.get(PATH.name).unwrap_or("/");
    arn::user_arn(input.account(), path, name)
}

/// ListUsers' resource: `arn:aws:iam::ACCOUNT:user/`.
pub(crate) fn list_users_resource(input: &ResourceInput<'_>) -> String {
    format!("arn:aws:iam::{}:user/", input.account())
}

fn no_such_key(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NoSuchEntity",
        format!("The Access Key with id {id} cannot be found."),
    )
}

fn user_xml(x: &mut Xml, account: &str, u: &User) {
    x.text("Path", &u.path);
    x.text("UserName", &u.name);
    x.text("UserId", &u.user_id);
    x.text("Arn", &arn::user_arn(account, &u.path, &u.name));
    x.text("CreateDate", &iso8601(u.created));
}

/// The owner named by an optional `UserName`, else the caller.
fn owner_of(caller: &Caller, user_name: Option<String>) -> Result<KeyOwner, ApiError> {
    match (user_name, &caller.principal) {
        (Some(name), _) => Ok(KeyOwner::User(name)),
        (None, Principal::Root { .. }) => Ok(KeyOwner::Root),
        (None, Principal::User { name, .. }) => Ok(KeyOwner::User(name.clone())),
        (None, Principal::AssumedRole { .. } | Principal::FederatedUser { .. }) => {
            Err(crate::common::not_a_user())
        }
    }
}

fn owner_arn(state: &AppState, owner: &KeyOwner) -> String {
    match owner {
        KeyOwner::Root => format!("arn:aws:iam::{}:root", state.account_id),
        KeyOwner::User(name) => arn::user_arn(&state.account_id, "/", name),
    }
}

pub(crate) async fn create_user(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.required(p, USER_NAME);
    let path = v.optional(p, PATH);
    if let Some(path) = path.as_deref().filter(|p| !valid_path(p)) {
        v.pattern_failure(path, PATH);
    }
    v.finish()?;
    let name = name.unwrap_or_default();
    let path = path.unwrap_or_else(|| "/".to_owned());
    let user = User {
        user_id: keys::new_user_id(&state.rng).map_err(ApiError::internal)?,
        name: name.clone(),
        path,
        created: state.clock.now().unix_timestamp(),
    };
    let stored = user.clone();
    match db(state, move |s| s.create_user(&stored)).await? {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "EntityAlreadyExists",
                format!("User with name {name} already exists."),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %user.name, by = %caller.principal.arn(), "created user");
    let mut x = Xml::fragment();
    x.elem("User", |x| user_xml(x, &state.account_id, &user));
    Ok(x.finish())
}

pub(crate) async fn get_user(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, EXISTING_USER_NAME);
    v.finish()?;
    let mut x = Xml::fragment();
    match (name, &caller.principal) {
        (None, Principal::Root { account }) => {
            let account = account.clone();
            let created = db(state, |s| s.account()).await??.map_or(0, |a| a.created);
            x.elem("User", |x| {
                x.text("UserId", &account);
                x.text("Arn", &format!("arn:aws:iam::{account}:root"));
                x.text("CreateDate", &iso8601(created));
            });
        }
        (name, _) => {
            let name = name
                .or_else(|| caller.principal.user_name().map(str::to_owned))
                .unwrap_or_default();
            let lookup = name.clone();
            let (user, boundary, tags) = db(state, move |s| {
                let Some(user) = s.user(&lookup)? else {
                    return Ok(None);
                };
                let boundary = s.user_permissions_boundary(&lookup)?;
                let tags = s.user_tags(&lookup)?;
                Ok(Some((user, boundary, tags)))
            })
            .await??
            .ok_or_else(|| no_such_user(&name))?;
            x.elem("User", |x| {
                user_xml(x, &state.account_id, &user);
                if let Some(arn) = &boundary {
                    x.elem("PermissionsBoundary", |x| {
                        x.text("PermissionsBoundaryType", "PermissionsBoundaryPolicy");
                        x.text("PermissionsBoundaryArn", arn);
                    });
                }
                if !tags.is_empty() {
                    tags_xml(x, &tags);
                }
            });
        }
    }
    Ok(x.finish())
}

pub(crate) async fn list_users(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let prefix = read_path_prefix(&mut v, p, PrefixShape::Any);
    let marker = v.optional(p, MARKER);
    let max_items = v.integer(p, "MaxItems", 1, 1000);
    v.finish()?;
    let prefix = prefix.unwrap_or_else(|| "/".to_owned());
    let limit = usize::try_from(max_items.unwrap_or(100)).unwrap_or(100);
    let mut users = db(state, move |s| {
        s.list_users(&prefix, marker.as_deref(), limit + 1)
    })
    .await??;
    let truncated = users.len() > limit;
    users.truncate(limit);
    let mut x = Xml::fragment();
    x.elem("Users", |x| {
        for u in &users {
            x.elem("member", |x| user_xml(x, &state.account_id, u));
        }
    });
    x.text("IsTruncated", if truncated { "true" } else { "false" });
    if let (true, Some(last)) = (truncated, users.last()) {
        x.text("Marker", &last.name);
    }
    Ok(x.finish())
}

pub(crate) async fn delete_user(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let name = v.required(p, EXISTING_USER_NAME);
    v.finish()?;
    let name = name.unwrap_or_default();
    let target = name.clone();
    match db(state, move |s| s.delete_user(&target)).await? {
        Ok(()) => {
            tracing::info!(user = %name, by = %caller.principal.arn(), "deleted user");
            Ok(())
        }
        Err(StoreError::NotFound(_)) => Err(no_such_user(&name)),
        Err(StoreError::DeleteConflict { dependents, .. }) => {
            Err(delete_conflict(match dependents {
                Entity::AccessKey => "Cannot delete entity, must delete access keys first.",
                Entity::MfaDevice | Entity::SecurityKey => {
                    "Cannot delete entity, must delete MFA device first."
                }
                Entity::InlinePolicy => "Cannot delete entity, must delete policies first.",
                Entity::AttachedPolicy => "Cannot delete entity, must detach all policies first.",
                Entity::LoginProfile => "Cannot delete entity, must delete login profile first.",
                _ => "Cannot delete entity, must remove user from all groups first.",
            }))
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn tag_user(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let name = v.required(p, EXISTING_USER_NAME).unwrap_or_default();
    let tags = read_tags(&mut v, p, "Tags");
    if tags.is_empty() {
        v.custom(
            "Value null at 'tags' failed to satisfy constraint: Member must not be null".to_owned(),
        );
    }
    v.finish()?;
    let n = name.clone();
    match db(state, move |s| s.tag_user(&n, &tags, MAX_TAGS)).await? {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(no_such_user(&name)),
        Err(StoreError::LimitExceeded(_)) => Err(limit_exceeded(format!(
            "Cannot exceed quota for TagsPerUser: {MAX_TAGS}"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn untag_user(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let name = v.required(p, EXISTING_USER_NAME).unwrap_or_default();
    let keys = read_tag_keys(&mut v, p);
    v.finish()?;
    let n = name.clone();
    match db(state, move |s| s.untag_user(&n, &keys)).await? {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound(_)) => Err(no_such_user(&name)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn list_user_tags(
    state: &Arc<AppState>,
    _caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.required(p, EXISTING_USER_NAME).unwrap_or_default();
    let page = Page::read(&mut v, p);
    v.finish()?;
    let n = name.clone();
    let tags = match db(state, move |s| s.user_tags(&n)).await? {
        Ok(tags) => tags,
        Err(StoreError::NotFound(_)) => return Err(no_such_user(&name)),
        Err(e) => return Err(e.into()),
    };
    let mut x = Xml::fragment();
    page.write(&mut x, "Tags", &tags, |t| t.key.as_str(), tag_xml);
    Ok(x.finish())
}

pub(crate) async fn create_access_key(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, EXISTING_USER_NAME);
    v.finish()?;
    let owner = owner_of(caller, name)?;
    let key = AccessKey {
        access_key_id: keys::new_long_term_key_id(&state.rng).map_err(ApiError::internal)?,
        owner: owner.clone(),
        status: KeyStatus::Active,
        created: state.clock.now().unix_timestamp(),
        secret: keys::new_secret_access_key(&state.rng).map_err(ApiError::internal)?,
    };
    let id = key.access_key_id.clone();
    let created = key.created;
    let secret = key.secret.clone();
    match db(state, move |s| s.create_access_key(&key, MAX_ACCESS_KEYS)).await? {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => return Err(no_such_user(owner_name(&owner))),
        Err(StoreError::LimitExceeded(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "LimitExceeded",
                format!("Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS}"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(access_key_id = %id, owner = %owner_arn(state, &owner), "created access key");
    let secret = secret
        .expose_str()
        .ok_or_else(|| ApiError::internal("secret is not text"))?;
    let mut x = Xml::fragment();
    x.elem("AccessKey", |x| {
        if let KeyOwner::User(name) = &owner {
            x.text("UserName", name);
        }
        x.text("AccessKeyId", &id);
        x.text("Status", KeyStatus::Active.as_str());
        x.text("SecretAccessKey", secret);
        x.text("CreateDate", &iso8601(created));
    });
    Ok(x.finish())
}

fn owner_name(owner: &KeyOwner) -> &str {
    match owner {
        KeyOwner::Root => "root",
        KeyOwner::User(n) => n,
    }
}

pub(crate) async fn list_access_keys(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<String, ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, EXISTING_USER_NAME);
    v.optional(p, MARKER);
    v.integer(p, "MaxItems", 1, 1000);
    v.finish()?;
    let owner = owner_of(caller, name)?;
    let query = owner.clone();
    let keys = match db(state, move |s| s.access_keys_of(&query)).await? {
        Ok(keys) => keys,
        Err(StoreError::NotFound(Entity::User)) => return Err(no_such_user(owner_name(&owner))),
        Err(e) => return Err(e.into()),
    };
    let mut x = Xml::fragment();
    x.elem("AccessKeyMetadata", |x| {
        for k in &keys {
            x.elem("member", |x| {
                if let KeyOwner::User(name) = &k.owner {
                    x.text("UserName", name);
                }
                x.text("AccessKeyId", &k.access_key_id);
                x.text("Status", k.status.as_str());
                x.text("CreateDate", &iso8601(k.created));
            });
        }
    });
    x.text("IsTruncated", "false");
    Ok(x.finish())
}

pub(crate) async fn update_access_key(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, EXISTING_USER_NAME);
    let id = v.required(p, ACCESS_KEY_ID);
    let status = v.one_of(p, "Status", &["Active", "Inactive"], true);
    v.finish()?;
    let (Some(id), Some(status)) = (id, status) else {
        return Err(ApiError::internal("validated parameter missing"));
    };
    let status = if status == "Active" {
        KeyStatus::Active
    } else {
        KeyStatus::Inactive
    };
    let owner = owner_of(caller, name)?;
    let (o, k) = (owner.clone(), id.clone());
    match db(state, move |s| s.set_access_key_status(&o, &k, status)).await? {
        Ok(()) => {
            tracing::info!(access_key_id = %id, status = status.as_str(), "updated access key");
            Ok(())
        }
        Err(StoreError::NotFound(Entity::User)) => Err(no_such_user(owner_name(&owner))),
        Err(StoreError::NotFound(_)) => Err(no_such_key(&id)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn delete_access_key(
    state: &Arc<AppState>,
    caller: &Caller,
    p: &Params,
) -> Result<(), ApiError> {
    let mut v = Validator::new();
    let name = v.optional(p, EXISTING_USER_NAME);
    let id = v.required(p, ACCESS_KEY_ID);
    v.finish()?;
    let id = id.unwrap_or_default();
    let owner = owner_of(caller, name)?;
    let (o, k) = (owner.clone(), id.clone());
    match db(state, move |s| s.delete_access_key(&o, &k)).await? {
        Ok(()) => {
            tracing::info!(access_key_id = %id, "deleted access key");
            Ok(())
        }
        Err(StoreError::NotFound(Entity::User)) => Err(no_such_user(owner_name(&owner))),
        Err(StoreError::NotFound(_)) => Err(no_such_key(&id)),
        Err(e) => Err(e.into()),
    }
}
