//! Groups, memberships, attached and inline policies of users, groups and roles, users'
//! permissions boundaries and tags, and the policy sets authorization reads
//! ([`user_policies`], [`group_policies`]). Customer managed policies, their versions and
//! the policy entities are not ported yet (docs/status.md).
//!
//! Names compare as SQLite's `COLLATE NOCASE` does: `lower(x) = lower($n)` against unique
//! indexes on `lower(…)`, ordered by `lower(…)`. Every write starts with [`begin_admin`],
//! which serialises IAM writes across replicas, so its existence and quota checks hold.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{backend, begin_admin, exists_or_backend};
use crate::{
    AttachedPolicy, AttachedPolicyDocument, Entity, Group, GroupPolicies, InlinePolicy,
    PolicyTarget, StoreError, Tag, User, UserPolicies,
};

/// The tables that hold one kind of target's policies.
struct TargetTables {
    id_column: &'static str,
    attached: &'static str,
    inline: &'static str,
}

const USER_TABLES: TargetTables = TargetTables {
    id_column: "user_id",
    attached: "user_attached_policy",
    inline: "user_inline_policy",
};

const GROUP_TABLES: TargetTables = TargetTables {
    id_column: "group_id",
    attached: "group_attached_policy",
    inline: "group_inline_policy",
};

const ROLE_TABLES: TargetTables = TargetTables {
    id_column: "role_id",
    attached: "role_attached_policy",
    inline: "role_inline_policy",
};

pub(super) const GROUP_COLUMNS: &str = "g.group_id, g.name, g.path, g.created FROM iam_group g";

pub(super) const USER_COLUMNS: &str = "u.user_id, u.name, u.path, u.created FROM iam_user u";

/// The default version's document of the customer policy `{arn}`, if it is one.
const DOCUMENT_OF_ARN: &str = "(SELECT v.document FROM managed_policy p
     JOIN policy_version v ON v.policy_id = p.policy_id AND v.version_id = p.default_version
     WHERE p.arn = {arn})";

pub(super) fn group_row(r: &Row) -> Group {
    Group {
        group_id: r.get(0),
        name: r.get(1),
        path: r.get(2),
        created: r.get(3),
    }
}

pub(super) fn user_row(r: &Row) -> User {
    User {
        user_id: r.get(0),
        name: r.get(1),
        path: r.get(2),
        created: r.get(3),
    }
}

pub(super) async fn count(
    c: &impl GenericClient,
    sql: &str,
    args: &[&(dyn ToSql + Sync)],
) -> Result<usize, StoreError> {
    let n: i64 = c.query_one(sql, args).await.map_err(backend)?.get(0);
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

async fn id_of(
    c: &impl GenericClient,
    sql: &str,
    name: &str,
    missing: Entity,
) -> Result<String, StoreError> {
    c.query_opt(sql, &[&name])
        .await
        .map_err(backend)?
        .map(|r| r.get(0))
        .ok_or(StoreError::NotFound(missing))
}

async fn user_id(c: &impl GenericClient, name: &str) -> Result<String, StoreError> {
    let sql = "SELECT user_id FROM iam_user WHERE lower(name) = lower($1)";
    id_of(c, sql, name, Entity::User).await
}

async fn group_id(c: &impl GenericClient, name: &str) -> Result<String, StoreError> {
    let sql = "SELECT group_id FROM iam_group WHERE lower(name) = lower($1)";
    id_of(c, sql, name, Entity::Group).await
}

pub(super) async fn policy_id(c: &impl GenericClient, arn: &str) -> Result<String, StoreError> {
    let sql = "SELECT policy_id FROM managed_policy WHERE arn = $1";
    id_of(c, sql, arn, Entity::Policy).await
}

async fn resolve(
    c: &impl GenericClient,
    target: &PolicyTarget,
) -> Result<(String, &'static TargetTables), StoreError> {
    Ok(match target {
        PolicyTarget::User(name) => (user_id(c, name).await?, &USER_TABLES),
        PolicyTarget::Group(name) => (group_id(c, name).await?, &GROUP_TABLES),
        PolicyTarget::Role(name) => {
            let sql = "SELECT role_id FROM iam_role WHERE lower(name) = lower($1)";
            (id_of(c, sql, name, Entity::Role).await?, &ROLE_TABLES)
        }
    })
}

async fn read_inline(
    c: &impl GenericClient,
    tables: &TargetTables,
    id: &str,
) -> Result<Vec<InlinePolicy>, StoreError> {
    let (inline, id_column) = (tables.inline, tables.id_column);
    let sql =
        format!("SELECT name, document FROM {inline} WHERE {id_column} = $1 ORDER BY lower(name)");
    Ok(c.query(&sql, &[&id])
        .await
        .map_err(backend)?
        .iter()
        .map(|r| InlinePolicy {
            name: r.get(0),
            document: r.get(1),
        })
        .collect())
}

async fn read_attached_documents(
    c: &impl GenericClient,
    tables: &TargetTables,
    id: &str,
) -> Result<Vec<AttachedPolicyDocument>, StoreError> {
    let (attached, id_column) = (tables.attached, tables.id_column);
    let document = DOCUMENT_OF_ARN.replace("{arn}", "a.policy_arn");
    let sql = format!(
        "SELECT a.policy_arn, {document} FROM {attached} a WHERE a.{id_column} = $1
         ORDER BY a.policy_arn"
    );
    Ok(c.query(&sql, &[&id])
        .await
        .map_err(backend)?
        .iter()
        .map(|r| AttachedPolicyDocument {
            arn: r.get(0),
            document: r.get(1),
        })
        .collect())
}

async fn read_user_tags(c: &impl GenericClient, uid: &str) -> Result<Vec<Tag>, StoreError> {
    Ok(c.query(
        "SELECT tag_key, tag_value FROM user_tag WHERE user_id = $1 ORDER BY lower(tag_key)",
        &[&uid],
    )
    .await
    .map_err(backend)?
    .iter()
    .map(|r| Tag {
        key: r.get(0),
        value: r.get(1),
    })
    .collect())
}

async fn groups_of(c: &impl GenericClient, uid: &str) -> Result<Vec<Group>, StoreError> {
    let sql = format!(
        "SELECT {GROUP_COLUMNS} JOIN group_member m ON m.group_id = g.group_id
         WHERE m.user_id = $1 ORDER BY lower(g.name)"
    );
    Ok(c.query(&sql, &[&uid])
        .await
        .map_err(backend)?
        .iter()
        .map(group_row)
        .collect())
}

async fn group_policies_of(
    c: &impl GenericClient,
    group: Group,
) -> Result<GroupPolicies, StoreError> {
    Ok(GroupPolicies {
        inline: read_inline(c, &GROUP_TABLES, &group.group_id).await?,
        attached: read_attached_documents(c, &GROUP_TABLES, &group.group_id).await?,
        group,
    })
}

pub(super) async fn create_group(
    c: &mut Object,
    g: &Group,
    max_groups: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let taken = count(
        &tx,
        "SELECT count(*) FROM iam_group WHERE lower(name) = lower($1)",
        &[&g.name],
    )
    .await?;
    if taken > 0 {
        return Err(StoreError::AlreadyExists(Entity::Group));
    }
    if count(&tx, "SELECT count(*) FROM iam_group", &[]).await? >= max_groups {
        return Err(StoreError::LimitExceeded(Entity::Group));
    }
    tx.execute(
        "INSERT INTO iam_group (group_id, name, path, created) VALUES ($1, $2, $3, $4)",
        &[&g.group_id, &g.name, &g.path, &g.created],
    )
    .await
    .map_err(exists_or_backend(Entity::Group))?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn group(c: &Object, name: &str) -> Result<Option<Group>, StoreError> {
    let sql = format!("SELECT {GROUP_COLUMNS} WHERE lower(g.name) = lower($1)");
    Ok(c.query_opt(&sql, &[&name])
        .await
        .map_err(backend)?
        .as_ref()
        .map(group_row))
}

pub(super) async fn list_groups(c: &Object, path_prefix: &str) -> Result<Vec<Group>, StoreError> {
    let sql =
        format!("SELECT {GROUP_COLUMNS} WHERE starts_with(g.path, $1) ORDER BY lower(g.name)");
    Ok(c.query(&sql, &[&path_prefix])
        .await
        .map_err(backend)?
        .iter()
        .map(group_row)
        .collect())
}

pub(super) async fn update_group(
    c: &mut Object,
    name: &str,
    new_name: Option<&str>,
    new_path: Option<&str>,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = group_id(&tx, name).await?;
    tx.execute(
        "UPDATE iam_group SET name = coalesce($1, name), path = coalesce($2, path)
         WHERE group_id = $3",
        &[&new_name, &new_path, &id],
    )
    .await
    .map_err(exists_or_backend(Entity::Group))?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn delete_group(c: &mut Object, name: &str) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = group_id(&tx, name).await?;
    let blockers = [
        ("group_member", Entity::GroupMembership),
        ("group_inline_policy", Entity::InlinePolicy),
        ("group_attached_policy", Entity::AttachedPolicy),
    ];
    for (table, dependents) in blockers {
        let sql = format!("SELECT count(*) FROM {table} WHERE group_id = $1");
        if count(&tx, &sql, &[&id]).await? > 0 {
            return Err(StoreError::DeleteConflict {
                entity: Entity::Group,
                dependents,
            });
        }
    }
    tx.execute("DELETE FROM iam_group WHERE group_id = $1", &[&id])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn add_user_to_group(
    c: &mut Object,
    group: &str,
    user: &str,
    max_groups_per_user: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let gid = group_id(&tx, group).await?;
    let uid = user_id(&tx, user).await?;
    let member = count(
        &tx,
        "SELECT count(*) FROM group_member WHERE group_id = $1 AND user_id = $2",
        &[&gid, &uid],
    )
    .await?;
    if member > 0 {
        return tx.commit().await.map_err(backend);
    }
    let groups = count(
        &tx,
        "SELECT count(*) FROM group_member WHERE user_id = $1",
        &[&uid],
    )
    .await?;
    if groups >= max_groups_per_user {
        return Err(StoreError::LimitExceeded(Entity::GroupMembership));
    }
    tx.execute(
        "INSERT INTO group_member (group_id, user_id) VALUES ($1, $2)",
        &[&gid, &uid],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn remove_user_from_group(
    c: &mut Object,
    group: &str,
    user: &str,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let gid = group_id(&tx, group).await?;
    let uid = user_id(&tx, user).await?;
    let n = tx
        .execute(
            "DELETE FROM group_member WHERE group_id = $1 AND user_id = $2",
            &[&gid, &uid],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::GroupMembership));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn group_members(c: &mut Object, group: &str) -> Result<Vec<User>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let gid = group_id(&tx, group).await?;
    let sql = format!(
        "SELECT {USER_COLUMNS} JOIN group_member m ON m.user_id = u.user_id
         WHERE m.group_id = $1 ORDER BY lower(u.name)"
    );
    Ok(tx
        .query(&sql, &[&gid])
        .await
        .map_err(backend)?
        .iter()
        .map(user_row)
        .collect())
}

pub(super) async fn groups_for_user(c: &mut Object, user: &str) -> Result<Vec<Group>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let uid = user_id(&tx, user).await?;
    groups_of(&tx, &uid).await
}

pub(super) async fn attach_policy(
    c: &mut Object,
    target: &PolicyTarget,
    arn: &str,
    aws_managed: bool,
    max_attached: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let (id, tables) = resolve(&tx, target).await?;
    if !aws_managed {
        policy_id(&tx, arn).await?;
    }
    let (attached, id_column) = (tables.attached, tables.id_column);
    let already = count(
        &tx,
        &format!("SELECT count(*) FROM {attached} WHERE {id_column} = $1 AND policy_arn = $2"),
        &[&id, &arn],
    )
    .await?;
    if already > 0 {
        return tx.commit().await.map_err(backend);
    }
    let n = count(
        &tx,
        &format!("SELECT count(*) FROM {attached} WHERE {id_column} = $1"),
        &[&id],
    )
    .await?;
    if n >= max_attached {
        return Err(StoreError::LimitExceeded(Entity::AttachedPolicy));
    }
    tx.execute(
        &format!("INSERT INTO {attached} ({id_column}, policy_arn) VALUES ($1, $2)"),
        &[&id, &arn],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn detach_policy(
    c: &mut Object,
    target: &PolicyTarget,
    arn: &str,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let (id, tables) = resolve(&tx, target).await?;
    let (attached, id_column) = (tables.attached, tables.id_column);
    let n = tx
        .execute(
            &format!("DELETE FROM {attached} WHERE {id_column} = $1 AND policy_arn = $2"),
            &[&id, &arn],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::AttachedPolicy));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn attached_policies(
    c: &mut Object,
    target: &PolicyTarget,
) -> Result<Vec<AttachedPolicy>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let (id, tables) = resolve(&tx, target).await?;
    let (attached, id_column) = (tables.attached, tables.id_column);
    let rows = tx
        .query(
            &format!(
                "SELECT a.policy_arn, p.name FROM {attached} a
                 LEFT JOIN managed_policy p ON p.arn = a.policy_arn
                 WHERE a.{id_column} = $1 ORDER BY a.policy_arn"
            ),
            &[&id],
        )
        .await
        .map_err(backend)?;
    Ok(rows
        .iter()
        .map(|r| {
            let arn: String = r.get(0);
            let name: Option<String> = r.get(1);
            AttachedPolicy {
                // An AWS managed policy has no row: its name is the ARN's last segment.
                name: name.unwrap_or_else(|| arn.rsplit('/').next().unwrap_or(&arn).to_owned()),
                arn,
            }
        })
        .collect())
}

pub(super) async fn put_inline_policy(
    c: &mut Object,
    target: &PolicyTarget,
    name: &str,
    document: &str,
    size: usize,
    max_aggregate_size: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let (id, tables) = resolve(&tx, target).await?;
    let (inline, id_column) = (tables.inline, tables.id_column);
    let others = count(
        &tx,
        &format!(
            "SELECT coalesce(sum(size), 0)::bigint FROM {inline}
             WHERE {id_column} = $1 AND lower(name) <> lower($2)"
        ),
        &[&id, &name],
    )
    .await?;
    if others.saturating_add(size) > max_aggregate_size {
        return Err(StoreError::LimitExceeded(Entity::InlinePolicy));
    }
    let size = i64::try_from(size).map_err(backend)?;
    tx.execute(
        &format!(
            "INSERT INTO {inline} ({id_column}, name, document, size) VALUES ($1, $2, $3, $4)
             ON CONFLICT ({id_column}, lower(name)) DO UPDATE
             SET name = excluded.name, document = excluded.document, size = excluded.size"
        ),
        &[&id, &name, &document, &size],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn inline_policy(
    c: &mut Object,
    target: &PolicyTarget,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let (id, tables) = resolve(&tx, target).await?;
    let (inline, id_column) = (tables.inline, tables.id_column);
    Ok(tx
        .query_opt(
            &format!(
                "SELECT document FROM {inline} WHERE {id_column} = $1 AND lower(name) = lower($2)"
            ),
            &[&id, &name],
        )
        .await
        .map_err(backend)?
        .map(|r| r.get(0)))
}

pub(super) async fn inline_policy_names(
    c: &mut Object,
    target: &PolicyTarget,
) -> Result<Vec<String>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let (id, tables) = resolve(&tx, target).await?;
    Ok(read_inline(&tx, tables, &id)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect())
}

pub(super) async fn delete_inline_policy(
    c: &mut Object,
    target: &PolicyTarget,
    name: &str,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let (id, tables) = resolve(&tx, target).await?;
    let (inline, id_column) = (tables.inline, tables.id_column);
    let n = tx
        .execute(
            &format!("DELETE FROM {inline} WHERE {id_column} = $1 AND lower(name) = lower($2)"),
            &[&id, &name],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::InlinePolicy));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn set_user_permissions_boundary(
    c: &mut Object,
    user: &str,
    arn: Option<&str>,
    aws_managed: bool,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let uid = user_id(&tx, user).await?;
    match arn {
        None => {
            tx.execute(
                "DELETE FROM user_permissions_boundary WHERE user_id = $1",
                &[&uid],
            )
            .await
            .map_err(backend)?;
        }
        Some(arn) => {
            if !aws_managed {
                policy_id(&tx, arn).await?;
            }
            tx.execute(
                "INSERT INTO user_permissions_boundary (user_id, policy_arn) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET policy_arn = excluded.policy_arn",
                &[&uid, &arn],
            )
            .await
            .map_err(backend)?;
        }
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn user_permissions_boundary(
    c: &mut Object,
    user: &str,
) -> Result<Option<String>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let uid = user_id(&tx, user).await?;
    Ok(tx
        .query_opt(
            "SELECT policy_arn FROM user_permissions_boundary WHERE user_id = $1",
            &[&uid],
        )
        .await
        .map_err(backend)?
        .map(|r| r.get(0)))
}

pub(super) async fn tag_user(
    c: &mut Object,
    user: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let uid = user_id(&tx, user).await?;
    for tag in tags {
        tx.execute(
            "INSERT INTO user_tag (user_id, tag_key, tag_value) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, lower(tag_key))
             DO UPDATE SET tag_key = excluded.tag_key, tag_value = excluded.tag_value",
            &[&uid, &tag.key, &tag.value],
        )
        .await
        .map_err(backend)?;
    }
    let n = count(
        &tx,
        "SELECT count(*) FROM user_tag WHERE user_id = $1",
        &[&uid],
    )
    .await?;
    if n > max_tags {
        return Err(StoreError::LimitExceeded(Entity::Tag));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn untag_user(
    c: &mut Object,
    user: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let uid = user_id(&tx, user).await?;
    for key in keys {
        tx.execute(
            "DELETE FROM user_tag WHERE user_id = $1 AND lower(tag_key) = lower($2)",
            &[&uid, key],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn user_tags(c: &mut Object, user: &str) -> Result<Vec<Tag>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let uid = user_id(&tx, user).await?;
    read_user_tags(&tx, &uid).await
}

/// Everything authorization needs about a group, read in one transaction (one snapshot).
pub(super) async fn group_policies(
    c: &mut Object,
    name: &str,
) -> Result<Option<GroupPolicies>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let sql = format!("SELECT {GROUP_COLUMNS} WHERE lower(g.name) = lower($1)");
    let Some(group) = tx
        .query_opt(&sql, &[&name])
        .await
        .map_err(backend)?
        .as_ref()
        .map(group_row)
    else {
        return Ok(None);
    };
    Ok(Some(group_policies_of(&tx, group).await?))
}

/// Everything authorization needs about a user, read in one REPEATABLE READ transaction,
/// so that it is one snapshot as on SQLite.
pub(super) async fn user_policies(
    c: &mut Object,
    user_id: &str,
) -> Result<Option<UserPolicies>, StoreError> {
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(backend)?;
    let sql = format!("SELECT {USER_COLUMNS} WHERE u.user_id = $1");
    let Some(user) = tx
        .query_opt(&sql, &[&user_id])
        .await
        .map_err(backend)?
        .as_ref()
        .map(user_row)
    else {
        return Ok(None);
    };
    let mut groups = Vec::new();
    for group in groups_of(&tx, user_id).await? {
        groups.push(group_policies_of(&tx, group).await?);
    }
    let document = DOCUMENT_OF_ARN.replace("{arn}", "b.policy_arn");
    let boundary = tx
        .query_opt(
            &format!(
                "SELECT b.policy_arn, {document} FROM user_permissions_boundary b
                 WHERE b.user_id = $1"
            ),
            &[&user_id],
        )
        .await
        .map_err(backend)?
        .map(|r| AttachedPolicyDocument {
            arn: r.get(0),
            document: r.get(1),
        });
    Ok(Some(UserPolicies {
        tags: read_user_tags(&tx, user_id).await?,
        inline: read_inline(&tx, &USER_TABLES, user_id).await?,
        attached: read_attached_documents(&tx, &USER_TABLES, user_id).await?,
        groups,
        boundary,
        user,
    }))
}
