//! Customer managed policies: the policy rows with their live use counts, versions (ids
//! never reused: `next_version`), tags, and which entities use a policy.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use super::iam::{GROUP_COLUMNS, USER_COLUMNS, count, group_row, policy_id, user_row};
use super::roles::{ROLE_COLUMNS, role_row};
use super::{backend, begin_admin, exists_or_backend};
use crate::{
    Entity, ManagedPolicy, NewManagedPolicy, PolicyEntities, PolicyUsage, PolicyUseCounts,
    PolicyVersion, StoreError, Tag,
};

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

const VERSION_COLUMNS: &str = "v.version_id, v.document, v.version_id = p.default_version,
     v.created FROM policy_version v JOIN managed_policy p ON p.policy_id = v.policy_id";

/// A count is never negative and IAM's quotas keep it far below u32::MAX.
fn count_column(r: &Row, i: usize) -> u32 {
    u32::try_from(r.get::<_, i64>(i)).unwrap_or(u32::MAX)
}

fn policy_row(r: &Row) -> ManagedPolicy {
    ManagedPolicy {
        policy_id: r.get(0),
        name: r.get(1),
        path: r.get(2),
        arn: r.get(3),
        description: r.get(4),
        default_version: r.get(5),
        created: r.get(6),
        updated: r.get(7),
        attachment_count: count_column(r, 8),
        boundary_usage_count: count_column(r, 9),
    }
}

fn version_row(r: &Row) -> PolicyVersion {
    PolicyVersion {
        version_id: r.get(0),
        document: r.get(1),
        is_default: r.get(2),
        created: r.get(3),
    }
}

async fn use_counts(c: &impl GenericClient, arn: &str) -> Result<PolicyUseCounts, StoreError> {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM user_attached_policy WHERE policy_arn = $1)
                  + (SELECT count(*) FROM group_attached_policy WHERE policy_arn = $1)
                  + (SELECT count(*) FROM role_attached_policy WHERE policy_arn = $1),
                    (SELECT count(*) FROM user_permissions_boundary WHERE policy_arn = $1)
                  + (SELECT count(*) FROM role_permissions_boundary WHERE policy_arn = $1)",
            &[&arn],
        )
        .await
        .map_err(backend)?;
    Ok(PolicyUseCounts {
        attachments: count_column(&r, 0),
        boundary_uses: count_column(&r, 1),
    })
}

async fn put_tags(
    c: &impl GenericClient,
    id: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    for tag in tags {
        c.execute(
            "INSERT INTO policy_tag (policy_id, tag_key, tag_value) VALUES ($1, $2, $3)
             ON CONFLICT (policy_id, lower(tag_key))
             DO UPDATE SET tag_key = excluded.tag_key, tag_value = excluded.tag_value",
            &[&id, &tag.key, &tag.value],
        )
        .await
        .map_err(backend)?;
    }
    let n = count(
        c,
        "SELECT count(*) FROM policy_tag WHERE policy_id = $1",
        &[&id],
    )
    .await?;
    if n > max_tags {
        return Err(StoreError::LimitExceeded(Entity::Tag));
    }
    Ok(())
}

pub(super) async fn create_policy(
    c: &mut Object,
    p: &NewManagedPolicy,
    max_policies: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let taken = count(
        &tx,
        "SELECT count(*) FROM managed_policy WHERE lower(name) = lower($1) OR arn = $2",
        &[&p.name, &p.arn],
    )
    .await?;
    if taken > 0 {
        return Err(StoreError::AlreadyExists(Entity::Policy));
    }
    if count(&tx, "SELECT count(*) FROM managed_policy", &[]).await? >= max_policies {
        return Err(StoreError::LimitExceeded(Entity::Policy));
    }
    tx.execute(
        "INSERT INTO managed_policy (policy_id, name, path, arn, description,
             default_version, next_version, created, updated)
         VALUES ($1, $2, $3, $4, $5, 'v1', 2, $6, $6)",
        &[
            &p.policy_id,
            &p.name,
            &p.path,
            &p.arn,
            &p.description,
            &p.created,
        ],
    )
    .await
    .map_err(exists_or_backend(Entity::Policy))?;
    tx.execute(
        "INSERT INTO policy_version (policy_id, version_id, number, document, created)
         VALUES ($1, 'v1', 1, $2, $3)",
        &[&p.policy_id, &p.document, &p.created],
    )
    .await
    .map_err(backend)?;
    put_tags(&tx, &p.policy_id, &p.tags, usize::MAX).await?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn managed_policy(
    c: &Object,
    arn: &str,
) -> Result<Option<ManagedPolicy>, StoreError> {
    Ok(
        c.query_opt(&format!("{POLICY_SELECT} WHERE p.arn = $1"), &[&arn])
            .await
            .map_err(backend)?
            .as_ref()
            .map(policy_row),
    )
}

pub(super) async fn list_policies(
    c: &Object,
    path_prefix: &str,
) -> Result<Vec<ManagedPolicy>, StoreError> {
    let sql = format!("{POLICY_SELECT} WHERE starts_with(p.path, $1) ORDER BY lower(p.name)");
    Ok(c.query(&sql, &[&path_prefix])
        .await
        .map_err(backend)?
        .iter()
        .map(policy_row)
        .collect())
}

pub(super) async fn policy_use_counts(
    c: &Object,
    arn: &str,
) -> Result<PolicyUseCounts, StoreError> {
    use_counts(c, arn).await
}

pub(super) async fn delete_policy(c: &mut Object, arn: &str) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = policy_id(&tx, arn).await?;
    let uses = use_counts(&tx, arn).await?;
    if uses.attachments > 0 || uses.boundary_uses > 0 {
        return Err(StoreError::DeleteConflict {
            entity: Entity::Policy,
            dependents: Entity::AttachedPolicy,
        });
    }
    let others = count(
        &tx,
        "SELECT count(*) FROM policy_version v JOIN managed_policy p
             ON p.policy_id = v.policy_id
         WHERE v.policy_id = $1 AND v.version_id <> p.default_version",
        &[&id],
    )
    .await?;
    if others > 0 {
        return Err(StoreError::DeleteConflict {
            entity: Entity::Policy,
            dependents: Entity::PolicyVersion,
        });
    }
    // The default version and the tags go with it (ON DELETE CASCADE).
    tx.execute("DELETE FROM managed_policy WHERE policy_id = $1", &[&id])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn create_policy_version(
    c: &mut Object,
    arn: &str,
    document: &str,
    set_default: bool,
    max_versions: usize,
    now: i64,
) -> Result<PolicyVersion, StoreError> {
    let tx = begin_admin(c).await?;
    let row = tx
        .query_opt(
            "SELECT policy_id, next_version FROM managed_policy WHERE arn = $1",
            &[&arn],
        )
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::Policy))?;
    let (id, next): (String, i64) = (row.get(0), row.get(1));
    let versions = count(
        &tx,
        "SELECT count(*) FROM policy_version WHERE policy_id = $1",
        &[&id],
    )
    .await?;
    if versions >= max_versions {
        return Err(StoreError::LimitExceeded(Entity::PolicyVersion));
    }
    let version_id = format!("v{next}");
    tx.execute(
        "INSERT INTO policy_version (policy_id, version_id, number, document, created)
         VALUES ($1, $2, $3, $4, $5)",
        &[&id, &version_id, &next, &document, &now],
    )
    .await
    .map_err(exists_or_backend(Entity::PolicyVersion))?;
    // AWS: UpdateDate is when the newest version was created.
    let n = tx
        .execute(
            "UPDATE managed_policy
             SET next_version = $1 + 1, updated = $2,
                 default_version = CASE WHEN $3 THEN $4 ELSE default_version END
             WHERE policy_id = $5 AND next_version = $1",
            &[&next, &now, &set_default, &version_id, &id],
        )
        .await
        .map_err(backend)?;
    if n != 1 {
        return Err(StoreError::Backend("policy version counter moved".into()));
    }
    tx.commit().await.map_err(backend)?;
    Ok(PolicyVersion {
        version_id,
        document: document.to_owned(),
        is_default: set_default,
        created: now,
    })
}

pub(super) async fn policy_version(
    c: &Object,
    arn: &str,
    version_id: &str,
) -> Result<Option<PolicyVersion>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} WHERE p.arn = $1 AND v.version_id = $2");
    Ok(c.query_opt(&sql, &[&arn, &version_id])
        .await
        .map_err(backend)?
        .as_ref()
        .map(version_row))
}

pub(super) async fn policy_versions(
    c: &mut Object,
    arn: &str,
) -> Result<Vec<PolicyVersion>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let id = policy_id(&tx, arn).await?;
    let sql = format!("SELECT {VERSION_COLUMNS} WHERE p.policy_id = $1 ORDER BY v.number DESC");
    Ok(tx
        .query(&sql, &[&id])
        .await
        .map_err(backend)?
        .iter()
        .map(version_row)
        .collect())
}

pub(super) async fn delete_policy_version(
    c: &mut Object,
    arn: &str,
    version_id: &str,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let row = tx
        .query_opt(
            "SELECT policy_id, default_version FROM managed_policy WHERE arn = $1",
            &[&arn],
        )
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::Policy))?;
    let (id, default): (String, String) = (row.get(0), row.get(1));
    if default == version_id {
        return Err(StoreError::DeleteConflict {
            entity: Entity::PolicyVersion,
            dependents: Entity::PolicyVersion,
        });
    }
    let n = tx
        .execute(
            "DELETE FROM policy_version WHERE policy_id = $1 AND version_id = $2
               AND version_id <> (SELECT default_version FROM managed_policy
                                  WHERE policy_id = $1)",
            &[&id, &version_id],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::PolicyVersion));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn set_default_policy_version(
    c: &mut Object,
    arn: &str,
    version_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = policy_id(&tx, arn).await?;
    let n = tx
        .execute(
            "UPDATE managed_policy SET default_version = $2, updated = $3
             WHERE policy_id = $1 AND EXISTS (
                 SELECT 1 FROM policy_version WHERE policy_id = $1 AND version_id = $2)",
            &[&id, &version_id, &now],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::PolicyVersion));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn policy_entities(
    c: &mut Object,
    arn: &str,
    usage: Option<PolicyUsage>,
) -> Result<PolicyEntities, StoreError> {
    let attached = usage != Some(PolicyUsage::Boundary);
    let boundary = usage != Some(PolicyUsage::Permissions);
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(backend)?;
    let users = tx
        .query(
            &format!(
                "SELECT {USER_COLUMNS}
                 WHERE ($2 AND u.user_id IN (
                           SELECT user_id FROM user_attached_policy WHERE policy_arn = $1))
                    OR ($3 AND u.user_id IN (
                           SELECT user_id FROM user_permissions_boundary WHERE policy_arn = $1))
                 ORDER BY lower(u.name)"
            ),
            &[&arn, &attached, &boundary],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(user_row)
        .collect();
    let groups = tx
        .query(
            &format!(
                "SELECT {GROUP_COLUMNS}
                 WHERE $2 AND g.group_id IN (
                     SELECT group_id FROM group_attached_policy WHERE policy_arn = $1)
                 ORDER BY lower(g.name)"
            ),
            &[&arn, &attached],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(group_row)
        .collect();
    let roles = tx
        .query(
            &format!(
                "SELECT {ROLE_COLUMNS}
                 WHERE ($2 AND r.role_id IN (
                           SELECT role_id FROM role_attached_policy WHERE policy_arn = $1))
                    OR ($3 AND r.role_id IN (
                           SELECT role_id FROM role_permissions_boundary WHERE policy_arn = $1))
                 ORDER BY lower(r.name)"
            ),
            &[&arn, &attached, &boundary],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(role_row)
        .collect();
    Ok(PolicyEntities {
        users,
        groups,
        roles,
    })
}

pub(super) async fn tag_policy(
    c: &mut Object,
    arn: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = policy_id(&tx, arn).await?;
    put_tags(&tx, &id, tags, max_tags).await?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn untag_policy(
    c: &mut Object,
    arn: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = policy_id(&tx, arn).await?;
    for key in keys {
        tx.execute(
            "DELETE FROM policy_tag WHERE policy_id = $1 AND lower(tag_key) = lower($2)",
            &[&id, key],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn policy_tags(c: &mut Object, arn: &str) -> Result<Vec<Tag>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let id = policy_id(&tx, arn).await?;
    Ok(tx
        .query(
            "SELECT tag_key, tag_value FROM policy_tag WHERE policy_id = $1
             ORDER BY lower(tag_key)",
            &[&id],
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
