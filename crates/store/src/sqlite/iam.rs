//! Groups, customer managed policies and their versions, attachments, inline policies,
//! permissions boundaries and tags (migration `0004_groups_and_policies.sql`). Attachments
//! and inline policies of roles are here too, through [`PolicyTarget::Role`]; the roles
//! themselves are [`super::roles`].
//!
//! Every write runs in one IMMEDIATE transaction through [`SqliteStore::write`]: existence
//! and quotas are read and the row written in that transaction, so two writers cannot both
//! pass a quota. Every multi-statement read runs in one read transaction
//! ([`SqliteStore::read_tx`]), so it sees one snapshot.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend, exists_or_backend};
use crate::{
    AttachedPolicy, AttachedPolicyDocument, Entity, Group, GroupPolicies, InlinePolicy,
    ManagedPolicy, NewManagedPolicy, PolicyEntities, PolicyTarget, PolicyUsage, PolicyUseCounts,
    PolicyVersion, StoreError, Tag, User, UserPolicies,
};

/// The tables that hold one kind of target's policies.
pub(super) struct TargetTables {
    /// The id column in both tables.
    pub(super) id_column: &'static str,
    /// Attached managed policies.
    pub(super) attached: &'static str,
    /// Inline policies.
    pub(super) inline: &'static str,
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

/// The tables that hold one kind of resource's tags.
pub(super) struct TagTable {
    pub(super) table: &'static str,
    pub(super) id_column: &'static str,
}

const USER_TAGS: TagTable = TagTable {
    table: "user_tag",
    id_column: "user_id",
};

const POLICY_TAGS: TagTable = TagTable {
    table: "policy_tag",
    id_column: "policy_id",
};

const GROUP_COLUMNS: &str = "g.group_id, g.name, g.path, g.created FROM iam_group g";

const USER_COLUMNS: &str = "u.user_id, u.name, u.path, u.created FROM iam_user u";

/// A customer policy with its live counts, as a table `p` to filter on.
const POLICY_SELECT: &str = "SELECT * FROM (
     SELECT p.policy_id, p.name, p.path, p.arn, p.description, p.default_version,
            p.created, p.updated,
            (SELECT count(*) FROM user_attached_policy a WHERE a.policy_arn = p.arn)
          + (SELECT count(*) FROM group_attached_policy a WHERE a.policy_arn = p.arn)
          + (SELECT count(*) FROM role_attached_policy a WHERE a.policy_arn = p.arn)
              AS attachments,
            (SELECT count(*) FROM user_permissions_boundary b WHERE b.policy_arn = p.arn)
          + (SELECT count(*) FROM role_permissions_boundary b WHERE b.policy_arn = p.arn)
              AS boundary_uses
     FROM managed_policy p) p";

/// The default version's document of the customer policy `arn`, if it is one.
pub(super) const DOCUMENT_OF_ARN: &str = "(SELECT v.document FROM managed_policy p
     JOIN policy_version v ON v.policy_id = p.policy_id AND v.version_id = p.default_version
     WHERE p.arn = {arn})";

fn group_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        group_id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        created: r.get(3)?,
    })
}

fn policy_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ManagedPolicy> {
    Ok(ManagedPolicy {
        policy_id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        arn: r.get(3)?,
        description: r.get(4)?,
        default_version: r.get(5)?,
        created: r.get(6)?,
        updated: r.get(7)?,
        attachment_count: count_column(r, 8)?,
        boundary_usage_count: count_column(r, 9)?,
    })
}

pub(super) fn count_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u32> {
    let n: i64 = r.get(i)?;
    // A count is never negative and IAM's quotas keep it far below u32::MAX.
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn version_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyVersion> {
    Ok(PolicyVersion {
        version_id: r.get(0)?,
        document: r.get(1)?,
        is_default: r.get(2)?,
        created: r.get(3)?,
    })
}

pub(super) fn tag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tag> {
    Ok(Tag {
        key: r.get(0)?,
        value: r.get(1)?,
    })
}

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The first column of a one-row query, as a count.
pub(super) fn count(
    tx: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<usize, StoreError> {
    let n: i64 = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(args, |r| r.get(0)))
        .map_err(backend)?;
    Ok(to_usize(n))
}

pub(super) fn collect<T>(
    tx: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = tx.prepare_cached(sql).map_err(backend)?;
    stmt.query_map(args, row)
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)
}

pub(super) fn one<T>(
    tx: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    row: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>, StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(args, row).optional())
        .map_err(backend)
}

/// The id of user `name` (ignoring case), or `NotFound(User)`.
fn user_id(tx: &Connection, name: &str) -> Result<String, StoreError> {
    one(
        tx,
        "SELECT user_id FROM iam_user WHERE name = ?1",
        [name],
        |r| r.get(0),
    )?
    .ok_or(StoreError::NotFound(Entity::User))
}

/// The id of group `name` (ignoring case), or `NotFound(Group)`.
fn group_id(tx: &Connection, name: &str) -> Result<String, StoreError> {
    one(
        tx,
        "SELECT group_id FROM iam_group WHERE name = ?1",
        [name],
        |r| r.get(0),
    )?
    .ok_or(StoreError::NotFound(Entity::Group))
}

/// The id of the customer policy `arn`, or `NotFound(Policy)`.
pub(super) fn policy_id(tx: &Connection, arn: &str) -> Result<String, StoreError> {
    one(
        tx,
        "SELECT policy_id FROM managed_policy WHERE arn = ?1",
        [arn],
        |r| r.get(0),
    )?
    .ok_or(StoreError::NotFound(Entity::Policy))
}

/// The target's id and tables, or `NotFound(User | Group | Role)`.
fn resolve(
    tx: &Connection,
    target: &PolicyTarget,
) -> Result<(String, &'static TargetTables), StoreError> {
    Ok(match target {
        PolicyTarget::User(name) => (user_id(tx, name)?, &USER_TABLES),
        PolicyTarget::Group(name) => (group_id(tx, name)?, &GROUP_TABLES),
        PolicyTarget::Role(name) => (super::roles::role_id(tx, name)?, &super::roles::ROLE_TABLES),
    })
}

fn use_counts(tx: &Connection, arn: &str) -> Result<PolicyUseCounts, StoreError> {
    tx.prepare_cached(
        "SELECT (SELECT count(*) FROM user_attached_policy WHERE policy_arn = ?1)
              + (SELECT count(*) FROM group_attached_policy WHERE policy_arn = ?1)
              + (SELECT count(*) FROM role_attached_policy WHERE policy_arn = ?1),
                (SELECT count(*) FROM user_permissions_boundary WHERE policy_arn = ?1)
              + (SELECT count(*) FROM role_permissions_boundary WHERE policy_arn = ?1)",
    )
    .and_then(|mut stmt| {
        stmt.query_row([arn], |r| {
            Ok(PolicyUseCounts {
                attachments: count_column(r, 0)?,
                boundary_uses: count_column(r, 1)?,
            })
        })
    })
    .map_err(backend)
}

/// Upserts `tags` on resource `id` (keys matched ignoring case, key case and value
/// replaced), then checks the resulting count: the caller's transaction rolls back on
/// `LimitExceeded(Tag)`.
pub(super) fn put_tags(
    tx: &Connection,
    t: &TagTable,
    id: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    let (table, id_column) = (t.table, t.id_column);
    for tag in tags {
        tx.prepare_cached(&format!(
            "INSERT INTO {table} ({id_column}, tag_key, tag_value) VALUES (?1, ?2, ?3)
             ON CONFLICT ({id_column}, tag_key)
             DO UPDATE SET tag_key = excluded.tag_key, tag_value = excluded.tag_value"
        ))
        .and_then(|mut stmt| stmt.execute(params![id, tag.key, tag.value]))
        .map_err(backend)?;
    }
    let n = count(
        tx,
        &format!("SELECT count(*) FROM {table} WHERE {id_column} = ?1"),
        [id],
    )?;
    if n > max_tags {
        return Err(StoreError::LimitExceeded(Entity::Tag));
    }
    Ok(())
}

pub(super) fn remove_tags(
    tx: &Connection,
    t: &TagTable,
    id: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    let (table, id_column) = (t.table, t.id_column);
    for key in keys {
        tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE {id_column} = ?1 AND tag_key = ?2"
        ))
        .and_then(|mut stmt| stmt.execute(params![id, key]))
        .map_err(backend)?;
    }
    Ok(())
}

pub(super) fn read_tags(tx: &Connection, t: &TagTable, id: &str) -> Result<Vec<Tag>, StoreError> {
    let (table, id_column) = (t.table, t.id_column);
    collect(
        tx,
        &format!("SELECT tag_key, tag_value FROM {table} WHERE {id_column} = ?1 ORDER BY tag_key"),
        [id],
        tag_row,
    )
}

pub(super) fn read_inline(
    tx: &Connection,
    tables: &TargetTables,
    id: &str,
) -> Result<Vec<InlinePolicy>, StoreError> {
    let (inline, id_column) = (tables.inline, tables.id_column);
    collect(
        tx,
        &format!("SELECT name, document FROM {inline} WHERE {id_column} = ?1 ORDER BY name"),
        [id],
        |r| {
            Ok(InlinePolicy {
                name: r.get(0)?,
                document: r.get(1)?,
            })
        },
    )
}

pub(super) fn read_attached_documents(
    tx: &Connection,
    tables: &TargetTables,
    id: &str,
) -> Result<Vec<AttachedPolicyDocument>, StoreError> {
    let (attached, id_column) = (tables.attached, tables.id_column);
    let document = DOCUMENT_OF_ARN.replace("{arn}", "a.policy_arn");
    collect(
        tx,
        &format!(
            "SELECT a.policy_arn, {document} FROM {attached} a WHERE a.{id_column} = ?1
             ORDER BY a.policy_arn"
        ),
        [id],
        |r| {
            Ok(AttachedPolicyDocument {
                arn: r.get(0)?,
                document: r.get(1)?,
            })
        },
    )
}

pub(super) fn create_group(
    store: &SqliteStore,
    g: &Group,
    max_groups: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        if count(
            tx,
            "SELECT count(*) FROM iam_group WHERE name = ?1",
            [&g.name],
        )? > 0
        {
            return Err(StoreError::AlreadyExists(Entity::Group));
        }
        if count(tx, "SELECT count(*) FROM iam_group", [])? >= max_groups {
            return Err(StoreError::LimitExceeded(Entity::Group));
        }
        tx.execute(
            "INSERT INTO iam_group (group_id, name, path, created) VALUES (?1, ?2, ?3, ?4)",
            params![g.group_id, g.name, g.path, g.created],
        )
        .map_err(exists_or_backend(Entity::Group))?;
        Ok(())
    })
}

pub(super) fn group(store: &SqliteStore, name: &str) -> Result<Option<Group>, StoreError> {
    store.read_tx(|tx| {
        one(
            tx,
            &format!("SELECT {GROUP_COLUMNS} WHERE g.name = ?1"),
            [name],
            group_row,
        )
    })
}

pub(super) fn list_groups(
    store: &SqliteStore,
    path_prefix: &str,
) -> Result<Vec<Group>, StoreError> {
    store.read_tx(|tx| {
        collect(
            tx,
            &format!(
                "SELECT {GROUP_COLUMNS} WHERE substr(g.path, 1, length(?1)) = ?1
                 ORDER BY g.name"
            ),
            [path_prefix],
            group_row,
        )
    })
}

pub(super) fn update_group(
    store: &SqliteStore,
    name: &str,
    new_name: Option<&str>,
    new_path: Option<&str>,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = group_id(tx, name)?;
        tx.execute(
            "UPDATE iam_group SET name = coalesce(?1, name), path = coalesce(?2, path)
             WHERE group_id = ?3",
            params![new_name, new_path, id],
        )
        .map_err(exists_or_backend(Entity::Group))?;
        Ok(())
    })
}

pub(super) fn delete_group(store: &SqliteStore, name: &str) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = group_id(tx, name)?;
        let blockers = [
            ("group_member", Entity::GroupMembership),
            ("group_inline_policy", Entity::InlinePolicy),
            ("group_attached_policy", Entity::AttachedPolicy),
        ];
        for (table, dependents) in blockers {
            let sql = format!("SELECT count(*) FROM {table} WHERE group_id = ?1");
            if count(tx, &sql, [&id])? > 0 {
                return Err(StoreError::DeleteConflict {
                    entity: Entity::Group,
                    dependents,
                });
            }
        }
        tx.execute("DELETE FROM iam_group WHERE group_id = ?1", [&id])
            .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn add_user_to_group(
    store: &SqliteStore,
    group: &str,
    user: &str,
    max_groups_per_user: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let gid = group_id(tx, group)?;
        let uid = user_id(tx, user)?;
        let member = count(
            tx,
            "SELECT count(*) FROM group_member WHERE group_id = ?1 AND user_id = ?2",
            [&gid, &uid],
        )?;
        if member > 0 {
            return Ok(());
        }
        let groups = count(
            tx,
            "SELECT count(*) FROM group_member WHERE user_id = ?1",
            [&uid],
        )?;
        if groups >= max_groups_per_user {
            return Err(StoreError::LimitExceeded(Entity::GroupMembership));
        }
        tx.execute(
            "INSERT INTO group_member (group_id, user_id) VALUES (?1, ?2)",
            [&gid, &uid],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn remove_user_from_group(
    store: &SqliteStore,
    group: &str,
    user: &str,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let gid = group_id(tx, group)?;
        let uid = user_id(tx, user)?;
        let n = tx
            .execute(
                "DELETE FROM group_member WHERE group_id = ?1 AND user_id = ?2",
                [&gid, &uid],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::GroupMembership));
        }
        Ok(())
    })
}

pub(super) fn group_members(store: &SqliteStore, group: &str) -> Result<Vec<User>, StoreError> {
    store.read_tx(|tx| {
        let gid = group_id(tx, group)?;
        collect(
            tx,
            &format!(
                "SELECT {USER_COLUMNS} JOIN group_member m ON m.user_id = u.user_id
                 WHERE m.group_id = ?1 ORDER BY u.name"
            ),
            [&gid],
            super::users::user_row,
        )
    })
}

pub(super) fn groups_for_user(store: &SqliteStore, user: &str) -> Result<Vec<Group>, StoreError> {
    store.read_tx(|tx| {
        let uid = user_id(tx, user)?;
        groups_of(tx, &uid)
    })
}

fn groups_of(tx: &Connection, uid: &str) -> Result<Vec<Group>, StoreError> {
    collect(
        tx,
        &format!(
            "SELECT {GROUP_COLUMNS} JOIN group_member m ON m.group_id = g.group_id
             WHERE m.user_id = ?1 ORDER BY g.name"
        ),
        [uid],
        group_row,
    )
}

pub(super) fn create_policy(
    store: &SqliteStore,
    p: &NewManagedPolicy,
    max_policies: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let taken = count(
            tx,
            "SELECT count(*) FROM managed_policy WHERE name = ?1 OR arn = ?2",
            [&p.name, &p.arn],
        )?;
        if taken > 0 {
            return Err(StoreError::AlreadyExists(Entity::Policy));
        }
        if count(tx, "SELECT count(*) FROM managed_policy", [])? >= max_policies {
            return Err(StoreError::LimitExceeded(Entity::Policy));
        }
        tx.execute(
            "INSERT INTO managed_policy (policy_id, name, path, arn, description,
                 default_version, next_version, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, 'v1', 2, ?6, ?6)",
            params![p.policy_id, p.name, p.path, p.arn, p.description, p.created],
        )
        .map_err(exists_or_backend(Entity::Policy))?;
        tx.execute(
            "INSERT INTO policy_version (policy_id, version_id, number, document, created)
             VALUES (?1, 'v1', 1, ?2, ?3)",
            params![p.policy_id, p.document, p.created],
        )
        .map_err(backend)?;
        put_tags(tx, &POLICY_TAGS, &p.policy_id, &p.tags, usize::MAX)
    })
}

pub(super) fn managed_policy(
    store: &SqliteStore,
    arn: &str,
) -> Result<Option<ManagedPolicy>, StoreError> {
    store.read_tx(|tx| {
        one(
            tx,
            &format!("{POLICY_SELECT} WHERE p.arn = ?1"),
            [arn],
            policy_row,
        )
    })
}

pub(super) fn list_policies(
    store: &SqliteStore,
    path_prefix: &str,
) -> Result<Vec<ManagedPolicy>, StoreError> {
    store.read_tx(|tx| {
        collect(
            tx,
            &format!(
                "{POLICY_SELECT}
                 WHERE substr(p.path, 1, length(?1)) = ?1
                 ORDER BY p.name"
            ),
            [path_prefix],
            policy_row,
        )
    })
}

pub(super) fn policy_use_counts(
    store: &SqliteStore,
    arn: &str,
) -> Result<PolicyUseCounts, StoreError> {
    store.read_tx(|tx| use_counts(tx, arn))
}

pub(super) fn delete_policy(store: &SqliteStore, arn: &str) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = policy_id(tx, arn)?;
        let uses = use_counts(tx, arn)?;
        if uses.attachments > 0 || uses.boundary_uses > 0 {
            return Err(StoreError::DeleteConflict {
                entity: Entity::Policy,
                dependents: Entity::AttachedPolicy,
            });
        }
        let others = count(
            tx,
            "SELECT count(*) FROM policy_version v JOIN managed_policy p
                 ON p.policy_id = v.policy_id
             WHERE v.policy_id = ?1 AND v.version_id <> p.default_version",
            [&id],
        )?;
        if others > 0 {
            return Err(StoreError::DeleteConflict {
                entity: Entity::Policy,
                dependents: Entity::PolicyVersion,
            });
        }
        // The default version and the tags go with it (ON DELETE CASCADE).
        tx.execute("DELETE FROM managed_policy WHERE policy_id = ?1", [&id])
            .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn create_policy_version(
    store: &SqliteStore,
    arn: &str,
    document: &str,
    set_default: bool,
    max_versions: usize,
    now: i64,
) -> Result<PolicyVersion, StoreError> {
    store.write(|tx, _| {
        let (id, next): (String, i64) = one(
            tx,
            "SELECT policy_id, next_version FROM managed_policy WHERE arn = ?1",
            [arn],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .ok_or(StoreError::NotFound(Entity::Policy))?;
        let versions = count(
            tx,
            "SELECT count(*) FROM policy_version WHERE policy_id = ?1",
            [&id],
        )?;
        if versions >= max_versions {
            return Err(StoreError::LimitExceeded(Entity::PolicyVersion));
        }
        let version_id = format!("v{next}");
        tx.execute(
            "INSERT INTO policy_version (policy_id, version_id, number, document, created)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, version_id, next, document, now],
        )
        .map_err(exists_or_backend(Entity::PolicyVersion))?;
        // AWS: UpdateDate is when the newest version was created.
        let n = tx
            .execute(
                "UPDATE managed_policy
                 SET next_version = ?1 + 1, updated = ?2,
                     default_version = CASE WHEN ?3 THEN ?4 ELSE default_version END
                 WHERE policy_id = ?5 AND next_version = ?1",
                params![next, now, set_default, version_id, id],
            )
            .map_err(backend)?;
        if n != 1 {
            return Err(StoreError::Backend("policy version counter moved".into()));
        }
        Ok(PolicyVersion {
            version_id,
            document: document.to_owned(),
            is_default: set_default,
            created: now,
        })
    })
}

const VERSION_COLUMNS: &str = "v.version_id, v.document, v.version_id = p.default_version,
     v.created FROM policy_version v JOIN managed_policy p ON p.policy_id = v.policy_id";

pub(super) fn policy_version(
    store: &SqliteStore,
    arn: &str,
    version_id: &str,
) -> Result<Option<PolicyVersion>, StoreError> {
    store.read_tx(|tx| {
        one(
            tx,
            &format!("SELECT {VERSION_COLUMNS} WHERE p.arn = ?1 AND v.version_id = ?2"),
            [arn, version_id],
            version_row,
        )
    })
}

pub(super) fn policy_versions(
    store: &SqliteStore,
    arn: &str,
) -> Result<Vec<PolicyVersion>, StoreError> {
    store.read_tx(|tx| {
        let id = policy_id(tx, arn)?;
        collect(
            tx,
            &format!("SELECT {VERSION_COLUMNS} WHERE p.policy_id = ?1 ORDER BY v.number DESC"),
            [&id],
            version_row,
        )
    })
}

pub(super) fn delete_policy_version(
    store: &SqliteStore,
    arn: &str,
    version_id: &str,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let (id, default): (String, String) = one(
            tx,
            "SELECT policy_id, default_version FROM managed_policy WHERE arn = ?1",
            [arn],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .ok_or(StoreError::NotFound(Entity::Policy))?;
        if default == version_id {
            return Err(StoreError::DeleteConflict {
                entity: Entity::PolicyVersion,
                dependents: Entity::PolicyVersion,
            });
        }
        let n = tx
            .execute(
                "DELETE FROM policy_version WHERE policy_id = ?1 AND version_id = ?2
                   AND version_id <> (SELECT default_version FROM managed_policy
                                      WHERE policy_id = ?1)",
                [&id, version_id],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::PolicyVersion));
        }
        Ok(())
    })
}

pub(super) fn set_default_policy_version(
    store: &SqliteStore,
    arn: &str,
    version_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = policy_id(tx, arn)?;
        let n = tx
            .execute(
                "UPDATE managed_policy SET default_version = ?2, updated = ?3
                 WHERE policy_id = ?1 AND EXISTS (
                     SELECT 1 FROM policy_version WHERE policy_id = ?1 AND version_id = ?2)",
                params![id, version_id, now],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::PolicyVersion));
        }
        Ok(())
    })
}

pub(super) fn attach_policy(
    store: &SqliteStore,
    target: &PolicyTarget,
    arn: &str,
    aws_managed: bool,
    max_attached: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let (id, tables) = resolve(tx, target)?;
        if !aws_managed {
            policy_id(tx, arn)?;
        }
        let (attached, id_column) = (tables.attached, tables.id_column);
        let already = count(
            tx,
            &format!("SELECT count(*) FROM {attached} WHERE {id_column} = ?1 AND policy_arn = ?2"),
            [&id, arn],
        )?;
        if already > 0 {
            return Ok(());
        }
        let n = count(
            tx,
            &format!("SELECT count(*) FROM {attached} WHERE {id_column} = ?1"),
            [&id],
        )?;
        if n >= max_attached {
            return Err(StoreError::LimitExceeded(Entity::AttachedPolicy));
        }
        tx.execute(
            &format!("INSERT INTO {attached} ({id_column}, policy_arn) VALUES (?1, ?2)"),
            [&id, arn],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn detach_policy(
    store: &SqliteStore,
    target: &PolicyTarget,
    arn: &str,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let (id, tables) = resolve(tx, target)?;
        let (attached, id_column) = (tables.attached, tables.id_column);
        let n = tx
            .execute(
                &format!("DELETE FROM {attached} WHERE {id_column} = ?1 AND policy_arn = ?2"),
                [&id, arn],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::AttachedPolicy));
        }
        Ok(())
    })
}

pub(super) fn attached_policies(
    store: &SqliteStore,
    target: &PolicyTarget,
) -> Result<Vec<AttachedPolicy>, StoreError> {
    store.read_tx(|tx| {
        let (id, tables) = resolve(tx, target)?;
        let (attached, id_column) = (tables.attached, tables.id_column);
        let rows: Vec<(String, Option<String>)> = collect(
            tx,
            &format!(
                "SELECT a.policy_arn, p.name FROM {attached} a
                 LEFT JOIN managed_policy p ON p.arn = a.policy_arn
                 WHERE a.{id_column} = ?1 ORDER BY a.policy_arn"
            ),
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows
            .into_iter()
            .map(|(arn, name)| AttachedPolicy {
                // An AWS managed policy has no row: its name is the ARN's last segment.
                name: name.unwrap_or_else(|| arn.rsplit('/').next().unwrap_or(&arn).to_owned()),
                arn,
            })
            .collect())
    })
}

pub(super) fn policy_entities(
    store: &SqliteStore,
    arn: &str,
    usage: Option<PolicyUsage>,
) -> Result<PolicyEntities, StoreError> {
    let attached = usage != Some(PolicyUsage::Boundary);
    let boundary = usage != Some(PolicyUsage::Permissions);
    store.read_tx(|tx| {
        let users = collect(
            tx,
            &format!(
                "SELECT {USER_COLUMNS}
                 WHERE (?2 AND u.user_id IN (
                           SELECT user_id FROM user_attached_policy WHERE policy_arn = ?1))
                    OR (?3 AND u.user_id IN (
                           SELECT user_id FROM user_permissions_boundary WHERE policy_arn = ?1))
                 ORDER BY u.name"
            ),
            params![arn, attached, boundary],
            super::users::user_row,
        )?;
        let groups = collect(
            tx,
            &format!(
                "SELECT {GROUP_COLUMNS}
                 WHERE ?2 AND g.group_id IN (
                     SELECT group_id FROM group_attached_policy WHERE policy_arn = ?1)
                 ORDER BY g.name"
            ),
            params![arn, attached],
            group_row,
        )?;
        let roles = collect(
            tx,
            &format!(
                "SELECT {ROLE_COLUMNS}
                 WHERE (?2 AND r.role_id IN (
                           SELECT role_id FROM role_attached_policy WHERE policy_arn = ?1))
                    OR (?3 AND r.role_id IN (
                           SELECT role_id FROM role_permissions_boundary WHERE policy_arn = ?1))
                 ORDER BY r.name",
                ROLE_COLUMNS = super::roles::ROLE_COLUMNS
            ),
            params![arn, attached, boundary],
            super::roles::role_row,
        )?;
        Ok(PolicyEntities {
            users,
            groups,
            roles,
        })
    })
}

pub(super) fn put_inline_policy(
    store: &SqliteStore,
    target: &PolicyTarget,
    name: &str,
    document: &str,
    size: usize,
    max_aggregate_size: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let (id, tables) = resolve(tx, target)?;
        let (inline, id_column) = (tables.inline, tables.id_column);
        let others = count(
            tx,
            &format!(
                "SELECT coalesce(sum(size), 0) FROM {inline} WHERE {id_column} = ?1 AND name <> ?2"
            ),
            [&id, name],
        )?;
        if others.saturating_add(size) > max_aggregate_size {
            return Err(StoreError::LimitExceeded(Entity::InlinePolicy));
        }
        let size = i64::try_from(size).map_err(backend)?;
        tx.execute(
            &format!(
                "INSERT INTO {inline} ({id_column}, name, document, size) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT ({id_column}, name) DO UPDATE
                 SET name = excluded.name, document = excluded.document, size = excluded.size"
            ),
            params![id, name, document, size],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn inline_policy(
    store: &SqliteStore,
    target: &PolicyTarget,
    name: &str,
) -> Result<Option<String>, StoreError> {
    store.read_tx(|tx| {
        let (id, tables) = resolve(tx, target)?;
        let (inline, id_column) = (tables.inline, tables.id_column);
        one(
            tx,
            &format!("SELECT document FROM {inline} WHERE {id_column} = ?1 AND name = ?2"),
            [&id, name],
            |r| r.get(0),
        )
    })
}

pub(super) fn inline_policy_names(
    store: &SqliteStore,
    target: &PolicyTarget,
) -> Result<Vec<String>, StoreError> {
    store.read_tx(|tx| {
        let (id, tables) = resolve(tx, target)?;
        Ok(read_inline(tx, tables, &id)?
            .into_iter()
            .map(|p| p.name)
            .collect())
    })
}

pub(super) fn delete_inline_policy(
    store: &SqliteStore,
    target: &PolicyTarget,
    name: &str,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let (id, tables) = resolve(tx, target)?;
        let (inline, id_column) = (tables.inline, tables.id_column);
        let n = tx
            .execute(
                &format!("DELETE FROM {inline} WHERE {id_column} = ?1 AND name = ?2"),
                [&id, name],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::InlinePolicy));
        }
        Ok(())
    })
}

pub(super) fn set_user_permissions_boundary(
    store: &SqliteStore,
    user: &str,
    arn: Option<&str>,
    aws_managed: bool,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let uid = user_id(tx, user)?;
        let Some(arn) = arn else {
            tx.execute(
                "DELETE FROM user_permissions_boundary WHERE user_id = ?1",
                [&uid],
            )
            .map_err(backend)?;
            return Ok(());
        };
        if !aws_managed {
            policy_id(tx, arn)?;
        }
        tx.execute(
            "INSERT INTO user_permissions_boundary (user_id, policy_arn) VALUES (?1, ?2)
             ON CONFLICT (user_id) DO UPDATE SET policy_arn = excluded.policy_arn",
            [&uid, arn],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn user_permissions_boundary(
    store: &SqliteStore,
    user: &str,
) -> Result<Option<String>, StoreError> {
    store.read_tx(|tx| {
        let uid = user_id(tx, user)?;
        one(
            tx,
            "SELECT policy_arn FROM user_permissions_boundary WHERE user_id = ?1",
            [&uid],
            |r| r.get(0),
        )
    })
}

pub(super) fn tag_user(
    store: &SqliteStore,
    user: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| put_tags(tx, &USER_TAGS, &user_id(tx, user)?, tags, max_tags))
}

pub(super) fn untag_user(
    store: &SqliteStore,
    user: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    store.write(|tx, _| remove_tags(tx, &USER_TAGS, &user_id(tx, user)?, keys))
}

pub(super) fn user_tags(store: &SqliteStore, user: &str) -> Result<Vec<Tag>, StoreError> {
    store.read_tx(|tx| read_tags(tx, &USER_TAGS, &user_id(tx, user)?))
}

pub(super) fn tag_policy(
    store: &SqliteStore,
    arn: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    store.write(|tx, _| put_tags(tx, &POLICY_TAGS, &policy_id(tx, arn)?, tags, max_tags))
}

pub(super) fn untag_policy(
    store: &SqliteStore,
    arn: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    store.write(|tx, _| remove_tags(tx, &POLICY_TAGS, &policy_id(tx, arn)?, keys))
}

pub(super) fn policy_tags(store: &SqliteStore, arn: &str) -> Result<Vec<Tag>, StoreError> {
    store.read_tx(|tx| read_tags(tx, &POLICY_TAGS, &policy_id(tx, arn)?))
}

pub(super) fn group_policies(
    store: &SqliteStore,
    name: &str,
) -> Result<Option<GroupPolicies>, StoreError> {
    store.read_tx(|tx| {
        let Some(group) = one(
            tx,
            &format!("SELECT {GROUP_COLUMNS} WHERE g.name = ?1"),
            [name],
            group_row,
        )?
        else {
            return Ok(None);
        };
        Ok(Some(GroupPolicies {
            inline: read_inline(tx, &GROUP_TABLES, &group.group_id)?,
            attached: read_attached_documents(tx, &GROUP_TABLES, &group.group_id)?,
            group,
        }))
    })
}

pub(super) fn user_policies(
    store: &SqliteStore,
    user_id: &str,
) -> Result<Option<UserPolicies>, StoreError> {
    store.read_tx(|tx| {
        let Some(user) = one(
            tx,
            &format!("SELECT {USER_COLUMNS} WHERE u.user_id = ?1"),
            [user_id],
            super::users::user_row,
        )?
        else {
            return Ok(None);
        };
        let groups = groups_of(tx, user_id)?
            .into_iter()
            .map(|group| {
                Ok(GroupPolicies {
                    inline: read_inline(tx, &GROUP_TABLES, &group.group_id)?,
                    attached: read_attached_documents(tx, &GROUP_TABLES, &group.group_id)?,
                    group,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let document = DOCUMENT_OF_ARN.replace("{arn}", "b.policy_arn");
        let boundary = one(
            tx,
            &format!(
                "SELECT b.policy_arn, {document} FROM user_permissions_boundary b
                 WHERE b.user_id = ?1"
            ),
            [user_id],
            |r| {
                Ok(AttachedPolicyDocument {
                    arn: r.get(0)?,
                    document: r.get(1)?,
                })
            },
        )?;
        Ok(Some(UserPolicies {
            tags: read_tags(tx, &USER_TAGS, user_id)?,
            inline: read_inline(tx, &USER_TABLES, user_id)?,
            attached: read_attached_documents(tx, &USER_TABLES, user_id)?,
            groups,
            boundary,
            user,
        }))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use tokengate_verifier::totp::TotpState;

    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{
        AttachedPolicy, AttachedPolicyDocument, Entity, Group, KeyOwner, ManagedPolicy,
        NewManagedPolicy, PolicyTarget, PolicyUsage, PolicyUseCounts, Store, StoreError, Tag,
    };

    const ACCOUNT: &str = "arn:aws:iam::000000000000";
    const ADMIN: &str = "arn:aws:iam::aws:policy/AdministratorAccess";
    const DOC: &str = r#"{"Version":"2012-10-17","Statement":[]}"#;

    fn store() -> SqliteStore {
        SqliteStore::open_in_memory(&master()).unwrap()
    }

    fn group(name: &str) -> Group {
        Group {
            group_id: format!("AGPA{name}"),
            name: name.into(),
            path: "/".into(),
            created: 1,
        }
    }

    fn arn(name: &str) -> String {
        format!("{ACCOUNT}:policy/{name}")
    }

    fn policy(name: &str) -> NewManagedPolicy {
        NewManagedPolicy {
            policy_id: format!("ANPA{name}"),
            name: name.into(),
            path: "/".into(),
            arn: arn(name),
            description: String::new(),
            document: format!("{{\"doc\":\"{name}\"}}"),
            created: 10,
            tags: vec![],
        }
    }

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    fn u(name: &str) -> PolicyTarget {
        PolicyTarget::User(name.into())
    }

    fn g(name: &str) -> PolicyTarget {
        PolicyTarget::Group(name.into())
    }

    fn counts(s: &SqliteStore, arn: &str) -> (u32, u32) {
        let c = s.policy_use_counts(arn).unwrap();
        (c.attachments, c.boundary_uses)
    }

    fn conflict(dependents: Entity, entity: Entity) -> Result<(), StoreError> {
        Err(StoreError::DeleteConflict { entity, dependents })
    }

    #[test]
    fn groups_are_unique_ignoring_case_and_limited() {
        let s = store();
        s.create_group(&group("devs"), 2).unwrap();
        let mut dup = group("DEVS");
        dup.group_id = "AGPAother".into();
        assert_eq!(
            s.create_group(&dup, 2),
            Err(StoreError::AlreadyExists(Entity::Group))
        );
        let mut ops = group("ops");
        ops.path = "/eng/".into();
        s.create_group(&ops, 2).unwrap();
        assert_eq!(
            s.create_group(&group("qa"), 2),
            Err(StoreError::LimitExceeded(Entity::Group))
        );
        assert_eq!(s.group("Devs").unwrap(), Some(group("devs")));
        assert_eq!(s.group("nobody").unwrap(), None);
        let all: Vec<_> = s
            .list_groups("/")
            .unwrap()
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(all, ["devs", "ops"]);
        assert_eq!(s.list_groups("/eng/").unwrap(), [ops]);
        // Rename and move; a taken name is refused, a case change of its own name is not.
        assert_eq!(
            s.update_group("devs", Some("OPS"), None),
            Err(StoreError::AlreadyExists(Entity::Group))
        );
        s.update_group("devs", Some("Devs"), Some("/x/")).unwrap();
        let devs = s.group("devs").unwrap().unwrap();
        assert_eq!((devs.name.as_str(), devs.path.as_str()), ("Devs", "/x/"));
        s.update_group("devs", Some("developers"), None).unwrap();
        assert!(s.group("devs").unwrap().is_none());
        assert_eq!(
            s.update_group("devs", None, None),
            Err(StoreError::NotFound(Entity::Group))
        );
        s.delete_group("developers").unwrap();
        assert_eq!(
            s.delete_group("developers"),
            Err(StoreError::NotFound(Entity::Group))
        );
    }

    #[test]
    fn group_membership_is_idempotent_limited_and_blocks_deletes() {
        let s = store();
        s.create_user(&user("alice")).unwrap();
        s.create_user(&user("bob")).unwrap();
        for i in 0..11 {
            s.create_group(&group(&format!("g{i:02}")), 300).unwrap();
        }
        for i in 0..10 {
            s.add_user_to_group(&format!("g{i:02}"), "alice", 10)
                .unwrap();
        }
        // Already a member: nothing to do, even at the quota.
        s.add_user_to_group("G00", "ALICE", 10).unwrap();
        assert_eq!(
            s.add_user_to_group("g10", "alice", 10),
            Err(StoreError::LimitExceeded(Entity::GroupMembership))
        );
        assert_eq!(s.groups_for_user("alice").unwrap().len(), 10);
        s.add_user_to_group("g00", "bob", 10).unwrap();
        let members: Vec<_> = s
            .group_members("g00")
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(members, ["alice", "bob"]);
        assert_eq!(
            s.add_user_to_group("nope", "alice", 10),
            Err(StoreError::NotFound(Entity::Group))
        );
        assert_eq!(
            s.add_user_to_group("g00", "nobody", 10),
            Err(StoreError::NotFound(Entity::User))
        );
        assert_eq!(
            s.group_members("nope"),
            Err(StoreError::NotFound(Entity::Group))
        );
        assert_eq!(
            s.groups_for_user("nobody"),
            Err(StoreError::NotFound(Entity::User))
        );
        assert_eq!(
            s.delete_group("g00"),
            conflict(Entity::GroupMembership, Entity::Group)
        );
        assert_eq!(
            s.delete_user("bob"),
            conflict(Entity::GroupMembership, Entity::User)
        );
        s.remove_user_from_group("g00", "bob").unwrap();
        assert_eq!(
            s.remove_user_from_group("g00", "bob"),
            Err(StoreError::NotFound(Entity::GroupMembership))
        );
        assert_eq!(
            s.remove_user_from_group("g00", "nobody"),
            Err(StoreError::NotFound(Entity::User))
        );
        assert_eq!(
            s.remove_user_from_group("nope", "bob"),
            Err(StoreError::NotFound(Entity::Group))
        );
        s.delete_user("bob").unwrap();
        s.remove_user_from_group("g00", "alice").unwrap();
        s.add_user_to_group("g10", "alice", 10).unwrap();
        // Inline, then attached policies block a group's delete, in that order.
        s.put_inline_policy(&g("g00"), "p", DOC, 10, 5120).unwrap();
        s.attach_policy(&g("g00"), ADMIN, true, 10).unwrap();
        assert_eq!(
            s.delete_group("g00"),
            conflict(Entity::InlinePolicy, Entity::Group)
        );
        s.delete_inline_policy(&g("g00"), "p").unwrap();
        assert_eq!(
            s.delete_group("g00"),
            conflict(Entity::AttachedPolicy, Entity::Group)
        );
        s.detach_policy(&g("g00"), ADMIN).unwrap();
        s.delete_group("g00").unwrap();
    }

    #[test]
    fn policies_are_unique_ignoring_case_limited_and_tagged() {
        let s = store();
        let mut p = policy("ReadOnly");
        p.description = "reads".into();
        p.tags = vec![tag("team", "a"), tag("Env", "")];
        s.create_policy(&p, 2).unwrap();
        let mut dup = policy("readonly");
        dup.policy_id = "ANPAother".into();
        dup.path = "/other/".into();
        dup.arn = format!("{ACCOUNT}:policy/other/readonly");
        assert_eq!(
            s.create_policy(&dup, 2),
            Err(StoreError::AlreadyExists(Entity::Policy))
        );
        s.create_policy(&policy("Write"), 2).unwrap();
        assert_eq!(
            s.create_policy(&policy("Third"), 2),
            Err(StoreError::LimitExceeded(Entity::Policy))
        );
        let got = s.managed_policy(&arn("ReadOnly")).unwrap().unwrap();
        assert_eq!(
            got,
            ManagedPolicy {
                policy_id: "ANPAReadOnly".into(),
                name: "ReadOnly".into(),
                path: "/".into(),
                arn: arn("ReadOnly"),
                description: "reads".into(),
                default_version: "v1".into(),
                created: 10,
                updated: 10,
                attachment_count: 0,
                boundary_usage_count: 0,
            }
        );
        assert!(s.managed_policy(ADMIN).unwrap().is_none());
        let v1 = s.policy_version(&arn("ReadOnly"), "v1").unwrap().unwrap();
        assert!(v1.is_default);
        assert_eq!(v1.document, p.document);
        assert_eq!(
            s.policy_tags(&arn("ReadOnly")).unwrap(),
            [tag("Env", ""), tag("team", "a")]
        );
        // Tags: upsert ignoring case (the new case wins), quota on the result, untag.
        s.tag_policy(&arn("ReadOnly"), &[tag("TEAM", "b")], 2)
            .unwrap();
        assert_eq!(
            s.policy_tags(&arn("ReadOnly")).unwrap(),
            [tag("Env", ""), tag("TEAM", "b")]
        );
        assert_eq!(
            s.tag_policy(&arn("ReadOnly"), &[tag("x", "1")], 2),
            Err(StoreError::LimitExceeded(Entity::Tag))
        );
        assert_eq!(s.policy_tags(&arn("ReadOnly")).unwrap().len(), 2);
        s.untag_policy(&arn("ReadOnly"), &["env".into(), "absent".into()])
            .unwrap();
        assert_eq!(s.policy_tags(&arn("ReadOnly")).unwrap(), [tag("TEAM", "b")]);
        assert_eq!(
            s.tag_policy(&arn("nope"), &[], 2),
            Err(StoreError::NotFound(Entity::Policy))
        );
        assert_eq!(
            s.policy_tags(&arn("nope")),
            Err(StoreError::NotFound(Entity::Policy))
        );
        // Deleting a policy takes its default version and its tags with it.
        s.delete_policy(&arn("ReadOnly")).unwrap();
        assert!(s.managed_policy(&arn("ReadOnly")).unwrap().is_none());
        assert_eq!(
            s.delete_policy(&arn("ReadOnly")),
            Err(StoreError::NotFound(Entity::Policy))
        );
        s.create_policy(&policy("ReadOnly"), 2).unwrap();
        assert!(s.policy_tags(&arn("ReadOnly")).unwrap().is_empty());
    }

    #[test]
    fn versions_count_up_are_limited_and_the_default_is_protected() {
        let s = store();
        let a = arn("P");
        s.create_policy(&policy("P"), 10).unwrap();
        for i in 2..=5 {
            let v = s.create_policy_version(&a, DOC, false, 5, 20 + i).unwrap();
            assert_eq!(v.version_id, format!("v{i}"));
            assert!(!v.is_default);
        }
        assert_eq!(
            s.create_policy_version(&a, DOC, false, 5, 30),
            Err(StoreError::LimitExceeded(Entity::PolicyVersion))
        );
        let ids: Vec<_> = s
            .policy_versions(&a)
            .unwrap()
            .into_iter()
            .map(|v| v.version_id)
            .collect();
        assert_eq!(ids, ["v5", "v4", "v3", "v2", "v1"]);
        // The default cannot be deleted; others can, and their ids are never reused.
        assert_eq!(
            s.delete_policy_version(&a, "v1"),
            conflict(Entity::PolicyVersion, Entity::PolicyVersion)
        );
        s.delete_policy_version(&a, "v5").unwrap();
        assert_eq!(
            s.delete_policy_version(&a, "v5"),
            Err(StoreError::NotFound(Entity::PolicyVersion))
        );
        let v6 = s.create_policy_version(&a, "six", true, 5, 40).unwrap();
        assert_eq!((v6.version_id.as_str(), v6.is_default), ("v6", true));
        let p = s.managed_policy(&a).unwrap().unwrap();
        assert_eq!((p.default_version.as_str(), p.updated), ("v6", 40));
        assert!(!s.policy_version(&a, "v1").unwrap().unwrap().is_default);
        s.set_default_policy_version(&a, "v2", 50).unwrap();
        let p = s.managed_policy(&a).unwrap().unwrap();
        assert_eq!((p.default_version.as_str(), p.updated), ("v2", 50));
        assert_eq!(
            s.set_default_policy_version(&a, "v5", 60),
            Err(StoreError::NotFound(Entity::PolicyVersion))
        );
        assert_eq!(
            s.set_default_policy_version(&arn("nope"), "v1", 60),
            Err(StoreError::NotFound(Entity::Policy))
        );
        assert_eq!(
            s.create_policy_version(&arn("nope"), DOC, false, 5, 1),
            Err(StoreError::NotFound(Entity::Policy))
        );
        assert_eq!(
            s.policy_versions(&arn("nope")),
            Err(StoreError::NotFound(Entity::Policy))
        );
        assert!(s.policy_version(&a, "v9").unwrap().is_none());
        // A policy with non-default versions cannot be deleted.
        assert_eq!(
            s.delete_policy(&a),
            conflict(Entity::PolicyVersion, Entity::Policy)
        );
        for v in ["v1", "v3", "v4", "v6"] {
            s.delete_policy_version(&a, v).unwrap();
        }
        s.delete_policy(&a).unwrap();
    }

    #[test]
    fn attachments_are_idempotent_limited_and_counted() {
        let s = store();
        s.create_user(&user("alice")).unwrap();
        s.create_group(&group("devs"), 10).unwrap();
        for i in 0..11 {
            s.create_policy(&policy(&format!("p{i:02}")), 100).unwrap();
        }
        for i in 0..10 {
            s.attach_policy(&u("alice"), &arn(&format!("p{i:02}")), false, 10)
                .unwrap();
        }
        // Attached already: nothing to do, even at the quota.
        s.attach_policy(&u("ALICE"), &arn("p00"), false, 10)
            .unwrap();
        assert_eq!(
            s.attach_policy(&u("alice"), &arn("p10"), false, 10),
            Err(StoreError::LimitExceeded(Entity::AttachedPolicy))
        );
        assert_eq!(
            s.attach_policy(&u("alice"), ADMIN, true, 10),
            Err(StoreError::LimitExceeded(Entity::AttachedPolicy))
        );
        assert_eq!(
            s.attach_policy(&g("devs"), &arn("nope"), false, 10),
            Err(StoreError::NotFound(Entity::Policy))
        );
        assert_eq!(
            s.attach_policy(&g("nope"), ADMIN, true, 10),
            Err(StoreError::NotFound(Entity::Group))
        );
        assert_eq!(
            s.attach_policy(&u("nope"), ADMIN, true, 10),
            Err(StoreError::NotFound(Entity::User))
        );
        s.attach_policy(&g("devs"), ADMIN, true, 10).unwrap();
        s.attach_policy(&g("devs"), &arn("p00"), false, 10).unwrap();
        assert_eq!(counts(&s, &arn("p00")), (2, 0));
        assert_eq!(counts(&s, ADMIN), (1, 0));
        assert_eq!(
            s.managed_policy(&arn("p00"))
                .unwrap()
                .unwrap()
                .attachment_count,
            2
        );
        assert_eq!(
            s.attached_policies(&g("devs")).unwrap(),
            [
                AttachedPolicy {
                    name: "p00".into(),
                    arn: arn("p00"),
                },
                AttachedPolicy {
                    name: "AdministratorAccess".into(),
                    arn: ADMIN.into(),
                },
            ]
        );
        assert_eq!(s.attached_policies(&u("alice")).unwrap().len(), 10);
        let entities = s.policy_entities(&arn("p00"), None).unwrap();
        assert_eq!(entities.users, [user("alice")]);
        assert_eq!(entities.groups, [group("devs")]);
        // Attached policies block the policy's and the user's delete.
        assert_eq!(
            s.delete_policy(&arn("p00")),
            conflict(Entity::AttachedPolicy, Entity::Policy)
        );
        assert_eq!(
            s.delete_user("alice"),
            conflict(Entity::AttachedPolicy, Entity::User)
        );
        s.detach_policy(&u("alice"), &arn("p00")).unwrap();
        assert_eq!(
            s.detach_policy(&u("alice"), &arn("p00")),
            Err(StoreError::NotFound(Entity::AttachedPolicy))
        );
        assert_eq!(
            s.detach_policy(&g("nope"), ADMIN),
            Err(StoreError::NotFound(Entity::Group))
        );
        assert_eq!(counts(&s, &arn("p00")), (1, 0));
        s.detach_policy(&g("devs"), &arn("p00")).unwrap();
        assert_eq!(counts(&s, &arn("p00")), (0, 0));
        s.delete_policy(&arn("p00")).unwrap();
        // Listed with their live counts, by path prefix.
        let listed = s.list_policies("/").unwrap();
        assert_eq!(listed.len(), 10);
        assert_eq!(listed.iter().filter(|p| p.attachment_count > 0).count(), 9);
        assert!(s.list_policies("/nope/").unwrap().is_empty());
    }

    #[test]
    fn boundaries_are_counted_block_policy_deletes_and_go_with_the_user() {
        let s = store();
        s.create_user(&user("alice")).unwrap();
        s.create_user(&user("bob")).unwrap();
        s.create_policy(&policy("Fence"), 10).unwrap();
        assert_eq!(
            s.set_user_permissions_boundary("alice", Some(&arn("nope")), false),
            Err(StoreError::NotFound(Entity::Policy))
        );
        assert_eq!(
            s.set_user_permissions_boundary("nobody", None, false),
            Err(StoreError::NotFound(Entity::User))
        );
        s.set_user_permissions_boundary("alice", Some(&arn("Fence")), false)
            .unwrap();
        s.set_user_permissions_boundary("bob", Some(ADMIN), true)
            .unwrap();
        assert_eq!(
            s.user_permissions_boundary("alice").unwrap(),
            Some(arn("Fence"))
        );
        assert_eq!(counts(&s, &arn("Fence")), (0, 1));
        let p = s.managed_policy(&arn("Fence")).unwrap().unwrap();
        assert_eq!((p.attachment_count, p.boundary_usage_count), (0, 1));
        let listed = s.list_policies("/").unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|p| (p.attachment_count, p.boundary_usage_count))
                .collect::<Vec<_>>(),
            [(0, 1)]
        );
        let used = s
            .policy_entities(&arn("Fence"), Some(PolicyUsage::Boundary))
            .unwrap();
        assert_eq!(used.users, [user("alice")]);
        assert!(
            s.policy_entities(&arn("Fence"), Some(PolicyUsage::Permissions))
                .unwrap()
                .users
                .is_empty()
        );
        assert_eq!(
            s.delete_policy(&arn("Fence")),
            conflict(Entity::AttachedPolicy, Entity::Policy)
        );
        // Replace, then remove (twice: removing none is fine).
        s.set_user_permissions_boundary("alice", Some(ADMIN), true)
            .unwrap();
        assert_eq!(counts(&s, &arn("Fence")), (0, 0));
        assert_eq!(counts(&s, ADMIN), (0, 2));
        s.set_user_permissions_boundary("alice", None, false)
            .unwrap();
        s.set_user_permissions_boundary("alice", None, false)
            .unwrap();
        assert_eq!(s.user_permissions_boundary("alice").unwrap(), None);
        // A user with a boundary and tags can be deleted; both go with it.
        s.tag_user("bob", &[tag("team", "x")], 50).unwrap();
        s.delete_user("bob").unwrap();
        assert_eq!(counts(&s, ADMIN), (0, 0));
        s.create_user(&user("bob")).unwrap();
        assert!(s.user_tags("bob").unwrap().is_empty());
        assert_eq!(s.user_permissions_boundary("bob").unwrap(), None);
        s.delete_policy(&arn("Fence")).unwrap();
    }

    #[test]
    fn inline_policies_replace_and_share_an_aggregate_size() {
        let s = store();
        s.create_user(&user("alice")).unwrap();
        let alice = u("alice");
        s.put_inline_policy(&alice, "one", "doc1", 1000, 2048)
            .unwrap();
        s.put_inline_policy(&alice, "two", "doc2", 1000, 2048)
            .unwrap();
        assert_eq!(
            s.put_inline_policy(&alice, "three", "doc3", 49, 2048),
            Err(StoreError::LimitExceeded(Entity::InlinePolicy))
        );
        // Replacing counts only the others: "one" may grow to 1048.
        s.put_inline_policy(&alice, "ONE", "doc1b", 1048, 2048)
            .unwrap();
        assert_eq!(
            s.put_inline_policy(&alice, "one", "doc1c", 1049, 2048),
            Err(StoreError::LimitExceeded(Entity::InlinePolicy))
        );
        assert_eq!(s.inline_policy_names(&alice).unwrap(), ["ONE", "two"]);
        assert_eq!(
            s.inline_policy(&alice, "one").unwrap().as_deref(),
            Some("doc1b")
        );
        assert_eq!(s.inline_policy(&alice, "nope").unwrap(), None);
        assert_eq!(
            s.inline_policy(&u("nobody"), "one"),
            Err(StoreError::NotFound(Entity::User))
        );
        assert_eq!(
            s.put_inline_policy(&g("nope"), "one", "d", 1, 10),
            Err(StoreError::NotFound(Entity::Group))
        );
        assert_eq!(
            s.delete_user("alice"),
            conflict(Entity::InlinePolicy, Entity::User)
        );
        s.delete_inline_policy(&alice, "one").unwrap();
        assert_eq!(
            s.delete_inline_policy(&alice, "one"),
            Err(StoreError::NotFound(Entity::InlinePolicy))
        );
        s.delete_inline_policy(&alice, "two").unwrap();
        s.delete_user("alice").unwrap();
    }

    #[test]
    fn user_tags_upsert_ignoring_case_and_are_limited() {
        let s = store();
        s.create_user(&user("alice")).unwrap();
        s.tag_user("alice", &[tag("b", "1"), tag("a", "2")], 3)
            .unwrap();
        s.tag_user("alice", &[tag("A", "3"), tag("c", "")], 3)
            .unwrap();
        assert_eq!(
            s.user_tags("alice").unwrap(),
            [tag("A", "3"), tag("b", "1"), tag("c", "")]
        );
        assert_eq!(
            s.tag_user("alice", &[tag("d", "4")], 3),
            Err(StoreError::LimitExceeded(Entity::Tag))
        );
        assert_eq!(s.user_tags("alice").unwrap().len(), 3, "nothing written");
        s.untag_user("alice", &["B".into(), "zzz".into()]).unwrap();
        assert_eq!(s.user_tags("alice").unwrap(), [tag("A", "3"), tag("c", "")]);
        assert_eq!(
            s.tag_user("nobody", &[], 3),
            Err(StoreError::NotFound(Entity::User))
        );
        assert_eq!(
            s.untag_user("nobody", &[]),
            Err(StoreError::NotFound(Entity::User))
        );
        assert_eq!(
            s.user_tags("nobody"),
            Err(StoreError::NotFound(Entity::User))
        );
    }

    #[test]
    fn user_policies_gathers_user_groups_and_boundary() {
        let s = store();
        s.create_user(&user("alice")).unwrap();
        assert!(s.user_policies("AIDAnobody").unwrap().is_none());
        s.create_group(&group("zeta"), 10).unwrap();
        s.create_group(&group("alpha"), 10).unwrap();
        s.create_policy(&policy("Cust"), 10).unwrap();
        s.create_policy(&policy("Fence"), 10).unwrap();
        s.create_policy_version(&arn("Fence"), "fence-v2", true, 5, 20)
            .unwrap();
        s.add_user_to_group("zeta", "alice", 10).unwrap();
        s.add_user_to_group("alpha", "alice", 10).unwrap();
        s.tag_user("alice", &[tag("team", "red")], 50).unwrap();
        s.put_inline_policy(&u("alice"), "mine", "user-inline", 11, 2048)
            .unwrap();
        s.attach_policy(&u("alice"), ADMIN, true, 10).unwrap();
        s.attach_policy(&u("alice"), &arn("Cust"), false, 10)
            .unwrap();
        s.put_inline_policy(&g("alpha"), "ours", "group-inline", 12, 5120)
            .unwrap();
        s.attach_policy(&g("zeta"), &arn("Cust"), false, 10)
            .unwrap();
        s.set_user_permissions_boundary("alice", Some(&arn("Fence")), false)
            .unwrap();
        let p = s.user_policies("AIDAalice").unwrap().unwrap();
        assert_eq!(p.user, user("alice"));
        assert_eq!(p.tags, [tag("team", "red")]);
        assert_eq!(p.inline.len(), 1);
        assert_eq!(p.inline[0].document, "user-inline");
        let cust = AttachedPolicyDocument {
            arn: arn("Cust"),
            document: Some("{\"doc\":\"Cust\"}".into()),
        };
        let admin = AttachedPolicyDocument {
            arn: ADMIN.into(),
            document: None,
        };
        assert_eq!(p.attached, [cust.clone(), admin]);
        let names: Vec<_> = p.groups.iter().map(|g| g.group.name.as_str()).collect();
        assert_eq!(names, ["alpha", "zeta"]);
        assert_eq!(p.groups[0].inline[0].document, "group-inline");
        assert!(p.groups[0].attached.is_empty());
        assert_eq!(p.groups[1].attached, [cust]);
        // One group alone, as the simulator reads it: the same as within the user's.
        assert_eq!(
            s.group_policies("ALPHA").unwrap().as_ref(),
            Some(&p.groups[0])
        );
        assert_eq!(s.group_policies("nope").unwrap(), None);
        assert_eq!(
            p.boundary,
            Some(AttachedPolicyDocument {
                arn: arn("Fence"),
                document: Some("fence-v2".into()),
            })
        );
        assert_eq!(s.user_by_id("AIDAalice").unwrap(), Some(user("alice")));
        assert_eq!(s.user_by_id("AIDAnobody").unwrap(), None);
    }

    #[test]
    fn delete_user_names_what_blocks_it_in_order() {
        let s = store();
        s.create_user(&user("alice")).unwrap();
        let alice = KeyOwner::User("alice".into());
        s.create_group(&group("devs"), 10).unwrap();
        s.add_user_to_group("devs", "alice", 10).unwrap();
        s.attach_policy(&u("alice"), ADMIN, true, 10).unwrap();
        s.put_inline_policy(&u("alice"), "p", DOC, 1, 2048).unwrap();
        s.create_mfa_device(&device("SERIAL1")).unwrap();
        s.enable_mfa_device("SERIAL1", &alice, 1, &TotpState::default(), 8)
            .unwrap();
        s.create_access_key(&key("AKIA1", alice.clone()), 2)
            .unwrap();
        let blocked = |dependents| conflict(dependents, Entity::User);
        assert_eq!(s.delete_user("alice"), blocked(Entity::AccessKey));
        s.delete_access_key(&alice, "AKIA1").unwrap();
        assert_eq!(s.delete_user("alice"), blocked(Entity::MfaDevice));
        s.deactivate_mfa_device("SERIAL1", &alice).unwrap();
        assert_eq!(s.delete_user("alice"), blocked(Entity::InlinePolicy));
        s.delete_inline_policy(&u("alice"), "p").unwrap();
        assert_eq!(s.delete_user("alice"), blocked(Entity::AttachedPolicy));
        s.detach_policy(&u("alice"), ADMIN).unwrap();
        assert_eq!(s.delete_user("alice"), blocked(Entity::GroupMembership));
        s.remove_user_from_group("devs", "alice").unwrap();
        s.delete_user("alice").unwrap();
        // (Security keys: sqlite::security_keys tests.)
    }

    #[test]
    fn the_generation_moves_with_every_write_and_only_then() {
        let s = store();
        let mut last = s.iam_generation();
        let mut wrote = |what: &str, r: Result<(), StoreError>| {
            r.unwrap();
            let now = s.iam_generation();
            assert!(now > last, "{what}");
            last = now;
        };
        wrote("create_user", s.create_user(&user("alice")));
        wrote("create_group", s.create_group(&group("devs"), 10));
        wrote(
            "add_user_to_group",
            s.add_user_to_group("devs", "alice", 10),
        );
        wrote("create_policy", s.create_policy(&policy("P"), 10));
        wrote(
            "create_policy_version",
            s.create_policy_version(&arn("P"), DOC, false, 5, 1)
                .map(drop),
        );
        wrote(
            "set_default_policy_version",
            s.set_default_policy_version(&arn("P"), "v2", 2),
        );
        wrote(
            "delete_policy_version",
            s.delete_policy_version(&arn("P"), "v1"),
        );
        wrote(
            "attach_policy",
            s.attach_policy(&g("devs"), &arn("P"), false, 10),
        );
        wrote("detach_policy", s.detach_policy(&g("devs"), &arn("P")));
        wrote(
            "put_inline_policy",
            s.put_inline_policy(&u("alice"), "x", DOC, 1, 2048),
        );
        wrote(
            "delete_inline_policy",
            s.delete_inline_policy(&u("alice"), "x"),
        );
        wrote(
            "set_user_permissions_boundary",
            s.set_user_permissions_boundary("alice", Some(ADMIN), true),
        );
        wrote("tag_user", s.tag_user("alice", &[tag("k", "v")], 50));
        wrote("untag_user", s.untag_user("alice", &["k".into()]));
        wrote("tag_policy", s.tag_policy(&arn("P"), &[tag("k", "v")], 50));
        wrote("untag_policy", s.untag_policy(&arn("P"), &["k".into()]));
        wrote("update_group", s.update_group("devs", None, Some("/x/")));
        wrote(
            "remove_user_from_group",
            s.remove_user_from_group("devs", "alice"),
        );
        wrote("delete_group", s.delete_group("devs"));
        wrote("delete_policy", s.delete_policy(&arn("P")));
        let before = s.iam_generation();
        // Reads, and writes that fail (nothing committed), leave it alone.
        s.user("alice").unwrap();
        s.user_by_id("AIDAalice").unwrap();
        s.user_policies("AIDAalice").unwrap();
        s.list_groups("/").unwrap();
        s.list_policies("/").unwrap();
        s.policy_use_counts(ADMIN).unwrap();
        s.user_tags("alice").unwrap();
        s.group("devs").unwrap();
        assert!(s.create_user(&user("alice")).is_err());
        assert!(s.delete_group("devs").is_err());
        assert_eq!(s.iam_generation(), before);
        assert_eq!(
            s.policy_use_counts("arn:aws:iam::aws:policy/Nothing")
                .unwrap(),
            PolicyUseCounts::default()
        );
    }

    #[test]
    fn concurrent_policy_versions_stop_at_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(SqliteStore::open(&dir.path().join("v.db"), &master()).unwrap());
        s.create_policy(&policy("P"), 10).unwrap();
        // v1 exists: of eight racers, four fit under five versions.
        let results: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || s.create_policy_version(&arn("P"), DOC, false, 5, i))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 4, "{results:?}");
        assert!(results.iter().all(|r| matches!(
            r,
            Ok(_) | Err(StoreError::LimitExceeded(Entity::PolicyVersion))
        )));
        let mut ids: Vec<_> = s
            .policy_versions(&arn("P"))
            .unwrap()
            .into_iter()
            .map(|v| v.version_id)
            .collect();
        ids.sort();
        assert_eq!(ids, ["v1", "v2", "v3", "v4", "v5"]);
    }
}
