//! IAM roles: the role rows, their tags and permissions boundaries. A role's attached and
//! inline policies go through [`super::iam`] with [`crate::PolicyTarget::Role`].

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use super::{backend, begin_admin, exists_or_backend};
use crate::{
    AttachedPolicyDocument, Entity, InlinePolicy, MAX_TAGS, PrincipalBinding, Role, RolePolicies,
    StoreError, Tag,
};

pub(super) const ROLE_COLUMNS: &str = "r.role_id, r.name, r.path, r.created,
     r.assume_role_policy, r.description, r.max_session_duration, r.last_used,
     r.last_used_region, r.trust_principals
     FROM iam_role r";

pub(super) fn role_row(r: &Row) -> Role {
    let seconds: i64 = r.get(6);
    Role {
        role_id: r.get(0),
        name: r.get(1),
        path: r.get(2),
        created: r.get(3),
        assume_role_policy: r.get(4),
        description: r.get(5),
        // Written from a u32 by this module only.
        max_session_duration: u32::try_from(seconds).unwrap_or(u32::MAX),
        last_used: r.get(7),
        last_used_region: r.get(8),
        trust_principals: decode_bindings(&r.get::<_, String>(9)),
    }
}

/// One `ARN<TAB>UNIQUE-ID` line per binding, as the SQLite store writes them.
fn encode_bindings(bindings: &[PrincipalBinding]) -> String {
    bindings
        .iter()
        .map(|b| format!("{}\t{}\n", b.arn, b.unique_id))
        .collect()
}

fn decode_bindings(text: &str) -> Vec<PrincipalBinding> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(arn, id)| PrincipalBinding {
            arn: arn.to_owned(),
            unique_id: id.to_owned(),
        })
        .collect()
}

fn tag_row(r: &Row) -> Tag {
    Tag {
        key: r.get(0),
        value: r.get(1),
    }
}

async fn count(
    c: &impl GenericClient,
    sql: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<usize, StoreError> {
    let n: i64 = c.query_one(sql, args).await.map_err(backend)?.get(0);
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

async fn role_id(c: &impl GenericClient, name: &str) -> Result<String, StoreError> {
    c.query_opt(
        "SELECT role_id FROM iam_role WHERE lower(name) = lower($1)",
        &[&name],
    )
    .await
    .map_err(backend)?
    .map(|r| r.get(0))
    .ok_or(StoreError::NotFound(Entity::Role))
}

async fn put_tags(
    c: &impl GenericClient,
    id: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    for tag in tags {
        c.execute(
            "INSERT INTO role_tag (role_id, tag_key, tag_value) VALUES ($1, $2, $3)
             ON CONFLICT (role_id, lower(tag_key))
             DO UPDATE SET tag_key = excluded.tag_key, tag_value = excluded.tag_value",
            &[&id, &tag.key, &tag.value],
        )
        .await
        .map_err(backend)?;
    }
    if count(
        c,
        "SELECT count(*) FROM role_tag WHERE role_id = $1",
        &[&id],
    )
    .await?
        > max_tags
    {
        return Err(StoreError::LimitExceeded(Entity::Tag));
    }
    Ok(())
}

async fn put_boundary(
    c: &impl GenericClient,
    id: &str,
    arn: Option<&str>,
    aws_managed: bool,
) -> Result<(), StoreError> {
    let Some(arn) = arn else {
        c.execute(
            "DELETE FROM role_permissions_boundary WHERE role_id = $1",
            &[&id],
        )
        .await
        .map_err(backend)?;
        return Ok(());
    };
    if !aws_managed {
        let n = count(
            c,
            "SELECT count(*) FROM managed_policy WHERE arn = $1",
            &[&arn],
        )
        .await?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::Policy));
        }
    }
    c.execute(
        "INSERT INTO role_permissions_boundary (role_id, policy_arn) VALUES ($1, $2)
         ON CONFLICT (role_id) DO UPDATE SET policy_arn = excluded.policy_arn",
        &[&id, &arn],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// Role use is no IAM change: no generation bump. Recorded at most once per granularity
/// span and region, whichever replica sees the use.
pub(super) async fn record_role_use(
    c: &Object,
    role_id: &str,
    now: i64,
    region: &str,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE iam_role SET last_used = $2, last_used_region = $3
         WHERE role_id = $1
           AND (last_used IS NULL OR last_used <= $2::bigint - $4::bigint
                OR last_used_region IS DISTINCT FROM $3::text)",
        &[&role_id, &now, &region, &crate::ROLE_USE_GRANULARITY_SECS],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

pub(super) async fn create_role(
    c: &mut Object,
    role: &Role,
    tags: &[Tag],
    boundary: Option<(&str, bool)>,
    max_roles: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let taken = count(
        &tx,
        "SELECT count(*) FROM iam_role WHERE lower(name) = lower($1)",
        &[&role.name],
    )
    .await?;
    if taken > 0 {
        return Err(StoreError::AlreadyExists(Entity::Role));
    }
    if count(&tx, "SELECT count(*) FROM iam_role", &[]).await? >= max_roles {
        return Err(StoreError::LimitExceeded(Entity::Role));
    }
    tx.execute(
        "INSERT INTO iam_role (role_id, name, path, created, assume_role_policy,
             description, max_session_duration, last_used, trust_principals)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &role.role_id,
            &role.name,
            &role.path,
            &role.created,
            &role.assume_role_policy,
            &role.description,
            &i64::from(role.max_session_duration),
            &role.last_used,
            &encode_bindings(&role.trust_principals),
        ],
    )
    .await
    .map_err(exists_or_backend(Entity::Role))?;
    put_tags(&tx, &role.role_id, tags, MAX_TAGS).await?;
    if let Some((arn, aws_managed)) = boundary {
        put_boundary(&tx, &role.role_id, Some(arn), aws_managed).await?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn role(c: &Object, name: &str) -> Result<Option<Role>, StoreError> {
    let sql = format!("SELECT {ROLE_COLUMNS} WHERE lower(r.name) = lower($1)");
    Ok(c.query_opt(&sql, &[&name])
        .await
        .map_err(backend)?
        .as_ref()
        .map(role_row))
}

/// Everything authorization needs about a role, in one snapshot.
pub(super) async fn role_policies(
    c: &mut Object,
    role_id: &str,
) -> Result<Option<RolePolicies>, StoreError> {
    let tx = c
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(backend)?;
    let sql = format!("SELECT {ROLE_COLUMNS} WHERE r.role_id = $1");
    let Some(role) = tx
        .query_opt(&sql, &[&role_id])
        .await
        .map_err(backend)?
        .as_ref()
        .map(role_row)
    else {
        return Ok(None);
    };
    let document = "(SELECT v.document FROM managed_policy p
         JOIN policy_version v ON v.policy_id = p.policy_id AND v.version_id = p.default_version
         WHERE p.arn = {arn})";
    let boundary = tx
        .query_opt(
            &format!(
                "SELECT b.policy_arn, {} FROM role_permissions_boundary b WHERE b.role_id = $1",
                document.replace("{arn}", "b.policy_arn")
            ),
            &[&role_id],
        )
        .await
        .map_err(backend)?
        .map(|r| AttachedPolicyDocument {
            arn: r.get(0),
            document: r.get(1),
        });
    let tags = tx
        .query(
            "SELECT tag_key, tag_value FROM role_tag WHERE role_id = $1 ORDER BY lower(tag_key)",
            &[&role_id],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(tag_row)
        .collect();
    let inline = tx
        .query(
            "SELECT name, document FROM role_inline_policy WHERE role_id = $1
             ORDER BY lower(name)",
            &[&role_id],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(|r| InlinePolicy {
            name: r.get(0),
            document: r.get(1),
        })
        .collect();
    let attached = tx
        .query(
            &format!(
                "SELECT a.policy_arn, {} FROM role_attached_policy a WHERE a.role_id = $1
                 ORDER BY a.policy_arn",
                document.replace("{arn}", "a.policy_arn")
            ),
            &[&role_id],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(|r| AttachedPolicyDocument {
            arn: r.get(0),
            document: r.get(1),
        })
        .collect();
    Ok(Some(RolePolicies {
        tags,
        inline,
        attached,
        boundary,
        role,
    }))
}

pub(super) async fn list_roles(c: &Object, path_prefix: &str) -> Result<Vec<Role>, StoreError> {
    let sql = format!("SELECT {ROLE_COLUMNS} WHERE starts_with(r.path, $1) ORDER BY lower(r.name)");
    Ok(c.query(&sql, &[&path_prefix])
        .await
        .map_err(backend)?
        .iter()
        .map(role_row)
        .collect())
}

pub(super) async fn update_role(
    c: &mut Object,
    name: &str,
    description: Option<&str>,
    max_session_duration: Option<u32>,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = role_id(&tx, name).await?;
    let seconds = max_session_duration.map(i64::from);
    tx.execute(
        "UPDATE iam_role SET description = coalesce($1, description),
             max_session_duration = coalesce($2, max_session_duration)
         WHERE role_id = $3",
        &[&description, &seconds, &id],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn update_assume_role_policy(
    c: &mut Object,
    name: &str,
    document: &str,
    principals: &[PrincipalBinding],
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = role_id(&tx, name).await?;
    tx.execute(
        "UPDATE iam_role SET assume_role_policy = $1, trust_principals = $3
         WHERE role_id = $2",
        &[&document, &id, &encode_bindings(principals)],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn delete_role(c: &mut Object, name: &str) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = role_id(&tx, name).await?;
    // AWS's order (DeleteRole): inline policies, then attached policies.
    let blockers = [
        ("role_inline_policy", Entity::InlinePolicy),
        ("role_attached_policy", Entity::AttachedPolicy),
    ];
    for (table, dependents) in blockers {
        let sql = format!("SELECT count(*) FROM {table} WHERE role_id = $1");
        if count(&tx, &sql, &[&id]).await? > 0 {
            return Err(StoreError::DeleteConflict {
                entity: Entity::Role,
                dependents,
            });
        }
    }
    // Tags and the boundary go with it (ON DELETE CASCADE).
    tx.execute("DELETE FROM iam_role WHERE role_id = $1", &[&id])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn tag_role(
    c: &mut Object,
    role: &str,
    tags: &[Tag],
    max_tags: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = role_id(&tx, role).await?;
    put_tags(&tx, &id, tags, max_tags).await?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn untag_role(
    c: &mut Object,
    role: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = role_id(&tx, role).await?;
    for key in keys {
        tx.execute(
            "DELETE FROM role_tag WHERE role_id = $1 AND lower(tag_key) = lower($2)",
            &[&id, key],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn role_tags(c: &mut Object, role: &str) -> Result<Vec<Tag>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let id = role_id(&tx, role).await?;
    Ok(tx
        .query(
            "SELECT tag_key, tag_value FROM role_tag WHERE role_id = $1 ORDER BY lower(tag_key)",
            &[&id],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(tag_row)
        .collect())
}

pub(super) async fn set_role_permissions_boundary(
    c: &mut Object,
    role: &str,
    arn: Option<&str>,
    aws_managed: bool,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = role_id(&tx, role).await?;
    put_boundary(&tx, &id, arn, aws_managed).await?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn role_permissions_boundary(
    c: &mut Object,
    role: &str,
) -> Result<Option<String>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let id = role_id(&tx, role).await?;
    Ok(tx
        .query_opt(
            "SELECT policy_arn FROM role_permissions_boundary WHERE role_id = $1",
            &[&id],
        )
        .await
        .map_err(backend)?
        .map(|r| r.get(0)))
}
