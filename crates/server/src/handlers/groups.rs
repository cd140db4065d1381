//! The groups family: CreateGroup, GetGroup, ListGroups, UpdateGroup, DeleteGroup,
//! AddUserToGroup, RemoveUserFromGroup, ListGroupsForUser (policy.md §4.2). A group's
//! policies are the policies family's.

use tokengate_store::{Entity, Group, StoreError};
use tokengate_token::{arn, keys};

use crate::common::{EXISTING_USER_NAME, db, no_such_user, path_rule, valid_path};
use crate::entities::{
    GROUP_NAME, MAX_GROUPS, MAX_GROUPS_PER_USER, Page, PrefixShape, already_exists,
    delete_conflict, group_xml, limit_exceeded, no_such_group, read_path_prefix,
};
use crate::error::ApiError;
use crate::params::{Rule, Validator};
use crate::registry::Call;
use crate::xml::Xml;

/// `NewGroupName` of UpdateGroup.
const NEW_GROUP_NAME: Rule = Rule {
    name: "NewGroupName",
    ..GROUP_NAME
};
/// `NewPath` of UpdateGroup.
fn new_path_rule() -> Rule {
    Rule {
        name: "NewPath",
        ..path_rule()
    }
}

pub(crate) async fn create_group(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, GROUP_NAME);
    let path = v.optional(&c.params, path_rule());
    if let Some(p) = path.as_deref().filter(|p| !valid_path(p)) {
        v.pattern_failure(p, path_rule());
    }
    v.finish()?;
    let name = name.unwrap_or_default();
    let group = Group {
        group_id: keys::new_group_id(&c.state.rng).map_err(ApiError::internal)?,
        name: name.clone(),
        path: path.unwrap_or_else(|| "/".to_owned()),
        created: c.state.clock.now().unix_timestamp(),
    };
    let stored = group.clone();
    match db(&c.state, move |s| s.create_group(&stored, MAX_GROUPS)).await? {
        Ok(()) => {}
        Err(StoreError::AlreadyExists(_)) => {
            return Err(already_exists(format!(
                "Group with name {name} already exists."
            )));
        }
        Err(StoreError::LimitExceeded(_)) => {
            return Err(limit_exceeded(format!(
                "Cannot exceed quota for GroupsPerAccount: {MAX_GROUPS}"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let mut x = Xml::fragment();
    x.elem("Group", |x| group_xml(x, &c.state.account_id, &group));
    Ok(Some(x.finish()))
}

pub(crate) async fn get_group(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, GROUP_NAME);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let name = name.unwrap_or_default();
    let lookup = name.clone();
    let (group, members) = db(&c.state, move |s| {
        let Some(group) = s.group(&lookup)? else {
            return Ok(None);
        };
        let members = s.group_members(&lookup)?;
        Ok(Some((group, members)))
    })
    .await??
    .ok_or_else(|| no_such_group(&name))?;
    let account = &c.state.account_id;
    let mut x = Xml::fragment();
    x.elem("Group", |x| group_xml(x, account, &group));
    page.write(
        &mut x,
        "Users",
        &members,
        |u| u.name.as_str(),
        |x, u| {
            x.text("Path", &u.path);
            x.text("UserName", &u.name);
            x.text("UserId", &u.user_id);
            x.text("Arn", &arn::user_arn(account, &u.path, &u.name));
            x.text("CreateDate", &crate::iso8601(u.created));
        },
    );
    Ok(Some(x.finish()))
}

pub(crate) async fn list_groups(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let prefix = read_path_prefix(&mut v, &c.params, PrefixShape::Any);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let prefix = prefix.unwrap_or_else(|| "/".to_owned());
    let groups = db(&c.state, move |s| s.list_groups(&prefix)).await??;
    let mut x = Xml::fragment();
    page.write(
        &mut x,
        "Groups",
        &groups,
        |g| g.name.as_str(),
        |x, g| group_xml(x, &c.state.account_id, g),
    );
    Ok(Some(x.finish()))
}

pub(crate) async fn update_group(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, GROUP_NAME);
    let new_name = v.optional(&c.params, NEW_GROUP_NAME);
    let new_path = v.optional(&c.params, new_path_rule());
    if let Some(p) = new_path.as_deref().filter(|p| !valid_path(p)) {
        v.pattern_failure(p, new_path_rule());
    }
    v.finish()?;
    let name = name.unwrap_or_default();
    let (n, nn, np) = (name.clone(), new_name.clone(), new_path);
    match db(&c.state, move |s| {
        s.update_group(&n, nn.as_deref(), np.as_deref())
    })
    .await?
    {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(_)) => Err(no_such_group(&name)),
        Err(StoreError::AlreadyExists(_)) => Err(already_exists(format!(
            "Group with name {} already exists.",
            new_name.unwrap_or_default()
        ))),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn delete_group(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let name = v.required(&c.params, GROUP_NAME);
    v.finish()?;
    let name = name.unwrap_or_default();
    let n = name.clone();
    match db(&c.state, move |s| s.delete_group(&n)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(_)) => Err(no_such_group(&name)),
        Err(StoreError::DeleteConflict { dependents, .. }) => {
            Err(delete_conflict(match dependents {
                Entity::GroupMembership | Entity::User => {
                    "Cannot delete entity, must remove users from group first."
                }
                Entity::InlinePolicy => "Cannot delete entity, must delete policies first.",
                _ => "Cannot delete entity, must detach all policies first.",
            }))
        }
        Err(e) => Err(e.into()),
    }
}

fn membership_params(c: &Call) -> Result<(String, String), ApiError> {
    let mut v = Validator::new();
    let group = v.required(&c.params, GROUP_NAME);
    let user = v.required(&c.params, EXISTING_USER_NAME);
    v.finish()?;
    Ok((group.unwrap_or_default(), user.unwrap_or_default()))
}

pub(crate) async fn add_user_to_group(c: Call) -> Result<Option<String>, ApiError> {
    let (group, user) = membership_params(&c)?;
    let (g, u) = (group.clone(), user.clone());
    match db(&c.state, move |s| {
        s.add_user_to_group(&g, &u, MAX_GROUPS_PER_USER)
    })
    .await?
    {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(Entity::Group)) => Err(no_such_group(&group)),
        Err(StoreError::NotFound(_)) => Err(no_such_user(&user)),
        Err(StoreError::LimitExceeded(_)) => Err(limit_exceeded(format!(
            "Cannot exceed quota for GroupsPerUser: {MAX_GROUPS_PER_USER}"
        ))),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn remove_user_from_group(c: Call) -> Result<Option<String>, ApiError> {
    let (group, user) = membership_params(&c)?;
    let (g, u) = (group.clone(), user.clone());
    match db(&c.state, move |s| s.remove_user_from_group(&g, &u)).await? {
        Ok(()) => Ok(None),
        Err(StoreError::NotFound(Entity::Group)) => Err(no_such_group(&group)),
        Err(StoreError::NotFound(Entity::User)) => Err(no_such_user(&user)),
        Err(StoreError::NotFound(_)) => Err(crate::entities::no_such_entity(format!(
            "The user with name {user} cannot be found in group {group}."
        ))),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn list_groups_for_user(c: Call) -> Result<Option<String>, ApiError> {
    let mut v = Validator::new();
    let user = v.required(&c.params, EXISTING_USER_NAME);
    let page = Page::read(&mut v, &c.params);
    v.finish()?;
    let user = user.unwrap_or_default();
    let u = user.clone();
    let groups = match db(&c.state, move |s| s.groups_for_user(&u)).await? {
        Ok(g) => g,
        Err(StoreError::NotFound(_)) => return Err(no_such_user(&user)),
        Err(e) => return Err(e.into()),
    };
    let mut x = Xml::fragment();
    page.write(
        &mut x,
        "Groups",
        &groups,
        |g| g.name.as_str(),
        |x, g| group_xml(x, &c.state.account_id, g),
    );
    Ok(Some(x.finish()))
}
