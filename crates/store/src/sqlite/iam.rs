//! Groups, customer managed policies and their versions, attachments, inline policies,
//! permissions boundaries and tags (migration `0004_groups_and_policies.sql`).
//!
//! Every write runs in one IMMEDIATE transaction through [`SqliteStore::write`]: existence
//! and quotas are read and the row written in that transaction, so two writers cannot both
//! pass a quota. Every multi-statement read runs in one read transaction
//! ([`SqliteStore::read_tx`]), so it sees one snapshot.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend, exists_or_backend};
use crate::{
    AttachedPolicy, AttachedPolicyDocument, Entity, Group, GroupPolicies, InlinePolicy,
    ManagedPolicy, NewManagedPolicy, PolicyEntities, PolicyListFilter, PolicyTarget, PolicyUsage,
    PolicyUseCounts, PolicyVersion, StoreError, Tag, User, UserPolicies,
};

/// The tables that hold one kind of target's policies.
struct TargetTables {
    /// The id column in both tables.
    id_column: &'static str,
    /// Attached managed policies.
    attached: &'static str,
    /// Inline policies.
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

/// The tables that hold one kind of resource's tags.
struct TagTable {
    table: &'static str,
    id_column: &'static str,
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
              AS attachments,
            (SELECT count(*) FROM user_permissions_boundary b WHERE b.policy_arn = p.arn)
              AS boundary_uses
     FROM managed_policy p) p";

/// The default version's document of the customer policy `arn`, if it is one.
const DOCUMENT_OF_ARN: &str = "(SELECT v.document FROM managed_policy p
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

fn count_column(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u32> {
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

fn tag_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Tag> {
    Ok(Tag {
        key: r.get(0)?,
        value: r.get(1)?,
    })
}

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The first column of a one-row query, as a count.
fn count(tx: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<usize, StoreError> {
    let n: i64 = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| stmt.query_row(args, |r| r.get(0)))
        .map_err(backend)?;
    Ok(to_usize(n))
}

fn collect<T>(
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

fn one<T>(
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
fn policy_id(tx: &Connection, arn: &str) -> Result<String, StoreError> {
    one(
        tx,
        "SELECT policy_id FROM managed_policy WHERE arn = ?1",
        [arn],
        |r| r.get(0),
    )?
    .ok_or(StoreError::NotFound(Entity::Policy))
}

/// The target's id and tables, or `NotFound(User | Group)`.
fn resolve(
    tx: &Connection,
    target: &PolicyTarget,
) -> Result<(String, &'static TargetTables), StoreError> {
    Ok(match target {
        PolicyTarget::User(name) => (user_id(tx, name)?, &USER_TABLES),
        PolicyTarget::Group(name) => (group_id(tx, name)?, &GROUP_TABLES),
    })
}

fn use_counts(tx: &Connection, arn: &str) -> Result<PolicyUseCounts, StoreError> {
    tx.prepare_cached(
        "SELECT (SELECT count(*) FROM user_attached_policy WHERE policy_arn = ?1)
              + (SELECT count(*) FROM group_attached_policy WHERE policy_arn = ?1),
                (SELECT count(*) FROM user_permissions_boundary WHERE policy_arn = ?1)",
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
fn put_tags(
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

fn remove_tags(tx: &Connection, t: &TagTable, id: &str, keys: &[String]) -> Result<(), StoreError> {
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

fn read_tags(tx: &Connection, t: &TagTable, id: &str) -> Result<Vec<Tag>, StoreError> {
    let (table, id_column) = (t.table, t.id_column);
    collect(
        tx,
        &format!("SELECT tag_key, tag_value FROM {table} WHERE {id_column} = ?1 ORDER BY tag_key"),
        [id],
        tag_row,
    )
}

fn read_inline(
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

fn read_attached_documents(
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
    f: &PolicyListFilter<'_>,
) -> Result<Vec<ManagedPolicy>, StoreError> {
    let usage = match f.usage {
        None => 0,
        Some(PolicyUsage::Permissions) => 1,
        Some(PolicyUsage::Boundary) => 2,
    };
    store.read_tx(|tx| {
        collect(
            tx,
            &format!(
                "{POLICY_SELECT}
                 WHERE substr(p.path, 1, length(?1)) = ?1
                   AND (?2 = 0 OR p.attachments > 0)
                   AND (?3 <> 1 OR p.attachments > 0)
                   AND (?3 <> 2 OR p.boundary_uses > 0)
                 ORDER BY p.name"
            ),
            params![f.path_prefix, f.only_attached, usage],
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
        Ok(PolicyEntities { users, groups })
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
