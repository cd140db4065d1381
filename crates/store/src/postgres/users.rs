//! IAM users and their access keys. No row cache: every read is one indexed round trip, so
//! a key deactivated on any replica is refused by every replica on its next request.

use deadpool_postgres::Object;
use tokio_postgres::Row;

use super::{backend, begin_admin, exists_or_backend, owner_id};
use crate::seal::Sealer;
use crate::sqlite::users::{KeyRow, key_aad, row_to_key};
use crate::{AccessKey, Entity, KeyOwner, KeyStatus, StoreError, User};

const USER_COLUMNS: &str = "user_id, name, path, created FROM iam_user";

const KEY_COLUMNS: &str = "k.access_key_id, u.name, k.status, k.created, k.sealed_secret
     FROM access_key k LEFT JOIN iam_user u ON u.user_id = k.owner_user_id";

fn user_row(r: &Row) -> User {
    User {
        user_id: r.get(0),
        name: r.get(1),
        path: r.get(2),
        created: r.get(3),
    }
}

fn key_row(r: &Row) -> KeyRow {
    KeyRow {
        access_key_id: r.get(0),
        owner_name: r.get(1),
        status: r.get(2),
        created: r.get(3),
        sealed: r.get(4),
    }
}

pub(super) fn clone_key(k: &AccessKey) -> AccessKey {
    AccessKey {
        access_key_id: k.access_key_id.clone(),
        owner: k.owner.clone(),
        status: k.status,
        created: k.created,
        secret: k.secret.clone(),
    }
}

pub(super) async fn create_user(c: &mut Object, user: &User) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    tx.execute(
        "INSERT INTO iam_user (user_id, name, path, created) VALUES ($1, $2, $3, $4)",
        &[&user.user_id, &user.name, &user.path, &user.created],
    )
    .await
    .map_err(exists_or_backend(Entity::User))?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn user(c: &Object, name: &str) -> Result<Option<User>, StoreError> {
    Ok(c.query_opt(
        &format!("SELECT {USER_COLUMNS} WHERE lower(name) = lower($1)"),
        &[&name],
    )
    .await
    .map_err(backend)?
    .as_ref()
    .map(user_row))
}

pub(super) async fn user_by_id(c: &Object, user_id: &str) -> Result<Option<User>, StoreError> {
    Ok(c.query_opt(
        &format!("SELECT {USER_COLUMNS} WHERE user_id = $1"),
        &[&user_id],
    )
    .await
    .map_err(backend)?
    .as_ref()
    .map(user_row))
}

/// Ordered as SQLite's `COLLATE NOCASE` orders: by the lower-cased name.
pub(super) async fn list_users(
    c: &Object,
    path_prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<User>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    Ok(c.query(
        &format!(
            "SELECT {USER_COLUMNS}
                 WHERE starts_with(path, $1) AND ($2::text IS NULL OR lower(name) > lower($2))
                 ORDER BY lower(name) LIMIT $3"
        ),
        &[&path_prefix, &after, &limit],
    )
    .await
    .map_err(backend)?
    .iter()
    .map(user_row)
    .collect())
}

/// What blocks deleting a user, in the order of the SQLite store
/// (`crate::sqlite::users::DELETE_USER_BLOCKERS`).
const DELETE_USER_BLOCKERS: [(&str, Entity); 7] = [
    (
        "SELECT count(*) FROM login_profile WHERE user_id = $1",
        Entity::LoginProfile,
    ),
    (
        "SELECT count(*) FROM access_key WHERE owner_user_id = $1",
        Entity::AccessKey,
    ),
    (
        "SELECT count(*) FROM mfa_device WHERE owner = $1",
        Entity::MfaDevice,
    ),
    (
        "SELECT count(*) FROM security_key WHERE owner = $1",
        Entity::SecurityKey,
    ),
    (
        "SELECT count(*) FROM user_inline_policy WHERE user_id = $1",
        Entity::InlinePolicy,
    ),
    (
        "SELECT count(*) FROM user_attached_policy WHERE user_id = $1",
        Entity::AttachedPolicy,
    ),
    (
        "SELECT count(*) FROM group_member WHERE user_id = $1",
        Entity::GroupMembership,
    ),
];

/// The blockers are read under the generation lock (every admin write holds it), so no
/// key or device can be added between the checks and the delete.
pub(super) async fn delete_user(c: &mut Object, name: &str) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let user_id: String = tx
        .query_opt(
            "SELECT user_id FROM iam_user WHERE lower(name) = lower($1)",
            &[&name],
        )
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::User))?
        .get(0);
    for (sql, dependents) in DELETE_USER_BLOCKERS {
        let n: i64 = tx
            .query_one(sql, &[&user_id])
            .await
            .map_err(backend)?
            .get(0);
        if n > 0 {
            return Err(StoreError::DeleteConflict {
                entity: Entity::User,
                dependents,
            });
        }
    }
    // What SQLite's ON DELETE CASCADE does (the same foreign keys on PostgreSQL).
    tx.execute("DELETE FROM iam_user WHERE user_id = $1", &[&user_id])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn create_access_key(
    c: &mut Object,
    sealer: &Sealer,
    key: &AccessKey,
    max_per_owner: usize,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let owner = owner_id(&tx, &key.owner).await?;
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM access_key WHERE owner_user_id IS NOT DISTINCT FROM $1",
            &[&owner],
        )
        .await
        .map_err(backend)?
        .get(0);
    if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_owner {
        return Err(StoreError::LimitExceeded(Entity::AccessKey));
    }
    let sealed = sealer.seal(&key_aad(&key.access_key_id), key.secret.expose())?;
    tx.execute(
        "INSERT INTO access_key (access_key_id, owner_user_id, status, created, sealed_secret)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &key.access_key_id,
            &owner,
            &key.status.as_str(),
            &key.created,
            &sealed,
        ],
    )
    .await
    .map_err(exists_or_backend(Entity::AccessKey))?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn access_key(
    c: &Object,
    sealer: &Sealer,
    access_key_id: &str,
) -> Result<Option<AccessKey>, StoreError> {
    let row = c
        .query_opt(
            &format!("SELECT {KEY_COLUMNS} WHERE k.access_key_id = $1"),
            &[&access_key_id],
        )
        .await
        .map_err(backend)?;
    row.map(|r| row_to_key(sealer, key_row(&r))).transpose()
}

pub(super) async fn access_keys_of(
    c: &Object,
    sealer: &Sealer,
    owner: &KeyOwner,
) -> Result<Vec<AccessKey>, StoreError> {
    let owner = owner_id(c, owner).await?;
    c.query(
        &format!(
            "SELECT {KEY_COLUMNS} WHERE k.owner_user_id IS NOT DISTINCT FROM $1
             ORDER BY k.created, k.seq"
        ),
        &[&owner],
    )
    .await
    .map_err(backend)?
    .iter()
    .map(|r| row_to_key(sealer, key_row(r)))
    .collect()
}

pub(super) async fn set_access_key_status(
    c: &mut Object,
    owner: &KeyOwner,
    access_key_id: &str,
    status: KeyStatus,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let owner = owner_id(&tx, owner).await?;
    let n = tx
        .execute(
            "UPDATE access_key SET status = $1
             WHERE access_key_id = $2 AND owner_user_id IS NOT DISTINCT FROM $3",
            &[&status.as_str(), &access_key_id, &owner],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::AccessKey));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn delete_access_key(
    c: &mut Object,
    owner: &KeyOwner,
    access_key_id: &str,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let owner = owner_id(&tx, owner).await?;
    let n = tx
        .execute(
            "DELETE FROM access_key
             WHERE access_key_id = $1 AND owner_user_id IS NOT DISTINCT FROM $2",
            &[&access_key_id, &owner],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::AccessKey));
    }
    tx.commit().await.map_err(backend)
}
