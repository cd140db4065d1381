//! IAM users and their access keys.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend, exists_or_backend};
use crate::seal::Sealer;
use crate::{AccessKey, Entity, KeyOwner, KeyStatus, StoreError, User};

pub(crate) fn key_aad(access_key_id: &str) -> String {
    format!("access_key/{access_key_id}/secret")
}

#[derive(Clone)]
pub(crate) struct KeyRow {
    pub(crate) access_key_id: String,
    pub(crate) owner_name: Option<String>,
    pub(crate) status: String,
    pub(crate) created: i64,
    pub(crate) sealed: Vec<u8>,
}

pub(super) const KEY_COLUMNS: &str = "k.access_key_id, u.name, k.status, k.created, k.sealed_secret
     FROM access_key k LEFT JOIN iam_user u ON u.user_id = k.owner_user_id";

pub(super) fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        access_key_id: r.get(0)?,
        owner_name: r.get(1)?,
        status: r.get(2)?,
        created: r.get(3)?,
        sealed: r.get(4)?,
    })
}

pub(super) fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        user_id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        created: r.get(3)?,
    })
}

pub(super) fn insert_access_key(
    tx: &Connection,
    sealer: &Sealer,
    owner_id: Option<&str>,
    key: &AccessKey,
) -> Result<(), StoreError> {
    let sealed = sealer.seal(&key_aad(&key.access_key_id), key.secret.expose())?;
    tx.execute(
        "INSERT INTO access_key (access_key_id, owner_user_id, status, created, sealed_secret)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            key.access_key_id,
            owner_id,
            key.status.as_str(),
            key.created,
            sealed
        ],
    )
    .map_err(exists_or_backend(Entity::AccessKey))?;
    Ok(())
}

pub(crate) fn row_to_key(sealer: &Sealer, row: KeyRow) -> Result<AccessKey, StoreError> {
    let secret = sealer.open(&key_aad(&row.access_key_id), &row.sealed)?;
    let status = match row.status.as_str() {
        "Active" => KeyStatus::Active,
        "Inactive" => KeyStatus::Inactive,
        other => return Err(StoreError::Backend(format!("bad key status {other:?}"))),
    };
    let owner = row.owner_name.map_or(KeyOwner::Root, KeyOwner::User);
    Ok(AccessKey {
        access_key_id: row.access_key_id,
        owner,
        status,
        created: row.created,
        secret,
    })
}

pub(super) fn create_user(store: &SqliteStore, user: &User) -> Result<(), StoreError> {
    store.write(|tx, _| {
        tx.execute(
            "INSERT INTO iam_user (user_id, name, path, created) VALUES (?1, ?2, ?3, ?4)",
            params![user.user_id, user.name, user.path, user.created],
        )
        .map_err(exists_or_backend(Entity::User))?;
        Ok(())
    })
}

pub(super) fn user(store: &SqliteStore, name: &str) -> Result<Option<User>, StoreError> {
    let key = name.to_ascii_lowercase();
    if let Some(user) = store.users.get(&key) {
        return Ok(Some(user));
    }
    let generation = store.users.generation();
    let user = store
        .read()?
        .prepare_cached("SELECT user_id, name, path, created FROM iam_user WHERE name = ?1")
        .and_then(|mut stmt| stmt.query_row([name], user_row).optional())
        .map_err(backend)?;
    if let Some(user) = &user {
        store.users.insert(key, user.clone(), generation);
    }
    Ok(user)
}

pub(super) fn user_by_id(store: &SqliteStore, user_id: &str) -> Result<Option<User>, StoreError> {
    if let Some(user) = store.users_by_id.get(user_id) {
        return Ok(Some(user));
    }
    let generation = store.users_by_id.generation();
    let user = store
        .read()?
        .prepare_cached("SELECT user_id, name, path, created FROM iam_user WHERE user_id = ?1")
        .and_then(|mut stmt| stmt.query_row([user_id], user_row).optional())
        .map_err(backend)?;
    if let Some(user) = &user {
        store
            .users_by_id
            .insert(user_id.to_owned(), user.clone(), generation);
    }
    Ok(user)
}

pub(super) fn list_users(
    store: &SqliteStore,
    path_prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<User>, StoreError> {
    let conn = store.lock()?;
    let mut stmt = conn
        .prepare(
            "SELECT user_id, name, path, created FROM iam_user
             WHERE substr(path, 1, length(?1)) = ?1 AND (?2 IS NULL OR name > ?2)
             ORDER BY name LIMIT ?3",
        )
        .map_err(backend)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    stmt.query_map(params![path_prefix, after, limit], user_row)
        .map_err(backend)?
        .collect::<Result<_, _>>()
        .map_err(backend)
}

/// What blocks deleting a user, in the order [`Store::delete_user`](crate::Store) reports
/// it: each query counts the user's (`?1`) rows of that kind. Tags and the permissions
/// boundary block nothing: they go with the user (ON DELETE CASCADE).
const DELETE_USER_BLOCKERS: [(&str, Entity); 7] = [
    // A console password first, as IAM's DeleteUser documentation lists it.
    (
        "SELECT count(*) FROM login_profile WHERE user_id = ?1",
        Entity::LoginProfile,
    ),
    (
        "SELECT count(*) FROM access_key WHERE owner_user_id = ?1",
        Entity::AccessKey,
    ),
    // TOTP devices enabled for the user (an unassigned device belongs to no one).
    (
        "SELECT count(*) FROM mfa_device WHERE owner = ?1",
        Entity::MfaDevice,
    ),
    // Security keys are MFA devices to AWS too; they are named apart so that the caller
    // can tell, and may report both as AWS's "must delete MFA device first".
    (
        "SELECT count(*) FROM security_key WHERE owner = ?1",
        Entity::SecurityKey,
    ),
    (
        "SELECT count(*) FROM user_inline_policy WHERE user_id = ?1",
        Entity::InlinePolicy,
    ),
    (
        "SELECT count(*) FROM user_attached_policy WHERE user_id = ?1",
        Entity::AttachedPolicy,
    ),
    (
        "SELECT count(*) FROM group_member WHERE user_id = ?1",
        Entity::GroupMembership,
    ),
];

pub(super) fn delete_user(store: &SqliteStore, name: &str) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let user_id: String = tx
            .query_row(
                "SELECT user_id FROM iam_user WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or(StoreError::NotFound(Entity::User))?;
        for (sql, dependents) in DELETE_USER_BLOCKERS {
            let n: i64 = tx
                .query_row(sql, [&user_id], |r| r.get(0))
                .map_err(backend)?;
            if n > 0 {
                return Err(StoreError::DeleteConflict {
                    entity: Entity::User,
                    dependents,
                });
            }
        }
        tx.execute("DELETE FROM iam_user WHERE user_id = ?1", [&user_id])
            .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn create_access_key(
    store: &SqliteStore,
    key: &AccessKey,
    max_per_owner: usize,
) -> Result<(), StoreError> {
    store.write(|tx, sealer| {
        let owner_id = SqliteStore::owner_id(tx, &key.owner)?;
        let count: i64 = tx
            .query_row(
                "SELECT count(*) FROM access_key WHERE owner_user_id IS ?1",
                [&owner_id],
                |r| r.get(0),
            )
            .map_err(backend)?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max_per_owner {
            return Err(StoreError::LimitExceeded(Entity::AccessKey));
        }
        insert_access_key(tx, sealer, owner_id.as_deref(), key)
    })
}

pub(super) fn access_key(
    store: &SqliteStore,
    access_key_id: &str,
) -> Result<Option<AccessKey>, StoreError> {
    if let Some(row) = store.keys.get(access_key_id) {
        return row_to_key(&store.sealer, row).map(Some);
    }
    let generation = store.keys.generation();
    let row = store
        .read()?
        .prepare_cached(&format!("SELECT {KEY_COLUMNS} WHERE k.access_key_id = ?1"))
        .and_then(|mut stmt| stmt.query_row([access_key_id], key_row).optional())
        .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    // The secret stays sealed in the cache; it is opened for each use.
    store
        .keys
        .insert(access_key_id.to_owned(), row.clone(), generation);
    row_to_key(&store.sealer, row).map(Some)
}

pub(super) fn access_keys_of(
    store: &SqliteStore,
    owner: &KeyOwner,
) -> Result<Vec<AccessKey>, StoreError> {
    let rows: Vec<KeyRow> = {
        let conn = store.lock()?;
        let owner_id = SqliteStore::owner_id(&conn, owner)?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {KEY_COLUMNS} WHERE k.owner_user_id IS ?1
                 ORDER BY k.created, k.rowid"
            ))
            .map_err(backend)?;
        stmt.query_map([owner_id], key_row)
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)?
    };
    rows.into_iter()
        .map(|r| row_to_key(&store.sealer, r))
        .collect()
}

pub(super) fn set_access_key_status(
    store: &SqliteStore,
    owner: &KeyOwner,
    access_key_id: &str,
    status: KeyStatus,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let owner_id = SqliteStore::owner_id(tx, owner)?;
        let n = tx
            .execute(
                "UPDATE access_key SET status = ?1
                 WHERE access_key_id = ?2 AND owner_user_id IS ?3",
                params![status.as_str(), access_key_id, owner_id],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::AccessKey));
        }
        Ok(())
    })
}

pub(super) fn delete_access_key(
    store: &SqliteStore,
    owner: &KeyOwner,
    access_key_id: &str,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let owner_id = SqliteStore::owner_id(tx, owner)?;
        let n = tx
            .execute(
                "DELETE FROM access_key WHERE access_key_id = ?1 AND owner_user_id IS ?2",
                params![access_key_id, owner_id],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::AccessKey));
        }
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{Entity, KeyOwner, KeyStatus, Store, StoreError};

    #[test]
    fn users_are_unique_ignoring_case_and_need_no_keys_to_delete() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("alice")).unwrap();
        let mut dup = user("Alice");
        dup.user_id = "AIDAother".into();
        assert_eq!(
            s.create_user(&dup).err(),
            Some(StoreError::AlreadyExists(Entity::User))
        );
        assert_eq!(s.user("ALICE").unwrap().unwrap().name, "alice");
        s.create_access_key(&key("AKIA1", KeyOwner::User("alice".into())), 2)
            .unwrap();
        assert!(matches!(
            s.delete_user("alice"),
            Err(StoreError::DeleteConflict { .. })
        ));
        s.delete_access_key(&KeyOwner::User("alice".into()), "AKIA1")
            .unwrap();
        s.delete_user("alice").unwrap();
        assert_eq!(
            s.delete_user("alice").err(),
            Some(StoreError::NotFound(Entity::User))
        );
    }

    #[test]
    fn two_keys_per_owner() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("bob")).unwrap();
        let bob = KeyOwner::User("bob".into());
        s.create_access_key(&key("AKIA1", bob.clone()), 2).unwrap();
        s.create_access_key(&key("AKIA2", bob.clone()), 2).unwrap();
        assert_eq!(
            s.create_access_key(&key("AKIA3", bob.clone()), 2).err(),
            Some(StoreError::LimitExceeded(Entity::AccessKey))
        );
        assert_eq!(s.access_keys_of(&bob).unwrap().len(), 2);
        let nobody = KeyOwner::User("nobody".into());
        assert_eq!(
            s.create_access_key(&key("AKIA4", nobody), 2).err(),
            Some(StoreError::NotFound(Entity::User))
        );
    }

    #[test]
    fn status_and_delete_are_scoped_to_the_owner() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("a")).unwrap();
        s.create_user(&user("b")).unwrap();
        s.create_access_key(&key("AKIAA", KeyOwner::User("a".into())), 2)
            .unwrap();
        let b = KeyOwner::User("b".into());
        assert_eq!(
            s.set_access_key_status(&b, "AKIAA", KeyStatus::Inactive)
                .err(),
            Some(StoreError::NotFound(Entity::AccessKey))
        );
        assert_eq!(
            s.delete_access_key(&b, "AKIAA").err(),
            Some(StoreError::NotFound(Entity::AccessKey))
        );
        let a = KeyOwner::User("a".into());
        s.set_access_key_status(&a, "AKIAA", KeyStatus::Inactive)
            .unwrap();
        assert_eq!(
            s.access_key("AKIAA").unwrap().unwrap().status,
            KeyStatus::Inactive
        );
    }
}
