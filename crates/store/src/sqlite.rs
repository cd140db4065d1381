//! The embedded SQLite store (the default).
//!
//! One connection behind a mutex, WAL journal, `synchronous=FULL` (a commit is on disk
//! before the response that depends on it leaves), foreign keys on. Each trait method is
//! one transaction; conditional writes are expressed in SQL (unique constraints, `WHERE`
//! clauses on counts), never as a read in one transaction and a write in another.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokengate_token::Secret;

use crate::seal::Sealer;
use crate::{
    AccessKey, Account, Bootstrap, Entity, KeyOwner, KeyStatus, Store, StoreError,
    StoredSigningKey, User,
};

/// Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE account (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    account_id  TEXT NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TABLE service_secret (
    name    TEXT PRIMARY KEY,
    sealed  BLOB NOT NULL
);
CREATE TABLE signing_key (
    kid           TEXT PRIMARY KEY,
    sealed_pkcs8  BLOB NOT NULL,
    created       INTEGER NOT NULL,
    retired       INTEGER
);
CREATE TABLE iam_user (
    user_id  TEXT PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    path     TEXT NOT NULL,
    created  INTEGER NOT NULL
);
CREATE TABLE access_key (
    access_key_id  TEXT PRIMARY KEY,
    owner_user_id  TEXT REFERENCES iam_user(user_id),
    status         TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created        INTEGER NOT NULL,
    sealed_secret  BLOB NOT NULL
);
CREATE INDEX access_key_owner ON access_key(owner_user_id);
"#];

/// The SQLite-backed [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    sealer: Sealer,
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

fn key_aad(access_key_id: &str) -> String {
    format!("access_key/{access_key_id}/secret")
}

fn secret_aad(name: &str) -> String {
    format!("service_secret/{name}")
}

fn signing_aad(kid: &str) -> String {
    format!("signing_key/{kid}/pkcs8")
}

impl SqliteStore {
    /// Opens (creating with mode 0600 if needed) the database at `path` and migrates it.
    pub fn open(path: &Path, master_key: &Secret) -> Result<Self, StoreError> {
        // Create the file ourselves so that it is 0600 from its first byte; SQLite gives
        // its -wal and -shm files the same mode.
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let conn = Connection::open(path).map_err(backend)?;
        Self::with_connection(conn, master_key)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory(master_key: &Secret) -> Result<Self, StoreError> {
        Self::with_connection(Connection::open_in_memory().map_err(backend)?, master_key)
    }

    fn with_connection(mut conn: Connection, master_key: &Secret) -> Result<Self, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            sealer: Sealer::new(master_key)?,
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("store mutex poisoned".into()))
    }

    /// Runs `f` in one IMMEDIATE transaction and commits it when `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>, &Sealer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx, &self.sealer)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    fn owner_id(tx: &Connection, owner: &KeyOwner) -> Result<Option<String>, StoreError> {
        match owner {
            KeyOwner::Root => Ok(None),
            KeyOwner::User(name) => tx
                .query_row(
                    "SELECT user_id FROM iam_user WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?
                .map(Some)
                .ok_or(StoreError::NotFound(Entity::User)),
        }
    }

    fn insert_access_key(
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
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::AlreadyExists(Entity::AccessKey)
            } else {
                backend(e)
            }
        })?;
        Ok(())
    }

    fn row_to_key(&self, row: KeyRow) -> Result<AccessKey, StoreError> {
        let secret = self
            .sealer
            .open(&key_aad(&row.access_key_id), &row.sealed)?;
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
}

struct KeyRow {
    access_key_id: String,
    owner_name: Option<String>,
    status: String,
    created: i64,
    sealed: Vec<u8>,
}

const KEY_COLUMNS: &str = "k.access_key_id, u.name, k.status, k.created, k.sealed_secret
     FROM access_key k LEFT JOIN iam_user u ON u.user_id = k.owner_user_id";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        access_key_id: r.get(0)?,
        owner_name: r.get(1)?,
        status: r.get(2)?,
        created: r.get(3)?,
        sealed: r.get(4)?,
    })
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        user_id: r.get(0)?,
        name: r.get(1)?,
        path: r.get(2)?,
        created: r.get(3)?,
    })
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    let applied = usize::try_from(applied).map_err(backend)?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {applied}, newer than this tokengate knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction().map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        let version = i64::try_from(i + 1).map_err(backend)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn account(&self) -> Result<Option<Account>, StoreError> {
        self.lock()?
            .query_row(
                "SELECT account_id, created FROM account WHERE id = 1",
                [],
                |r| {
                    Ok(Account {
                        account_id: r.get(0)?,
                        created: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(backend)
    }

    fn bootstrap(&self, b: &Bootstrap) -> Result<(), StoreError> {
        self.write(|tx, sealer| {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO account (id, account_id, created) VALUES (1, ?1, ?2)",
                    params![b.account.account_id, b.account.created],
                )
                .map_err(backend)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists(Entity::Account));
            }
            Self::insert_access_key(tx, sealer, None, &b.root_key)?;
            let name = crate::DERIVATION_KEY;
            let sealed = sealer.seal(&secret_aad(name), b.derivation_key.expose())?;
            tx.execute(
                "INSERT INTO service_secret (name, sealed) VALUES (?1, ?2)",
                params![name, sealed],
            )
            .map_err(backend)?;
            let k = &b.signing_key;
            let sealed = sealer.seal(&signing_aad(&k.kid), k.pkcs8.expose())?;
            tx.execute(
                "INSERT INTO signing_key (kid, sealed_pkcs8, created, retired)
                 VALUES (?1, ?2, ?3, NULL)",
                params![k.kid, sealed, k.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn service_secret(&self, name: &str) -> Result<Option<Secret>, StoreError> {
        let sealed: Option<Vec<u8>> = self
            .lock()?
            .query_row(
                "SELECT sealed FROM service_secret WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        sealed
            .map(|s| self.sealer.open(&secret_aad(name), &s))
            .transpose()
    }

    fn signing_keys(&self) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows: Vec<(String, Vec<u8>, i64, Option<i64>)> = {
            let conn = self.lock()?;
            let mut stmt = conn
                .prepare(
                    "SELECT kid, sealed_pkcs8, created, retired FROM signing_key
                     ORDER BY created DESC, kid",
                )
                .map_err(backend)?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?
        };
        rows.into_iter()
            .map(|(kid, sealed, created, retired)| {
                let pkcs8 = self.sealer.open(&signing_aad(&kid), &sealed)?;
                Ok(StoredSigningKey {
                    kid,
                    pkcs8,
                    created,
                    retired,
                })
            })
            .collect()
    }

    fn rotate_signing_key(
        &self,
        expected_current: &str,
        key: &StoredSigningKey,
    ) -> Result<(), StoreError> {
        self.write(|tx, sealer| {
            let current: Option<String> = tx
                .query_row(
                    "SELECT kid FROM signing_key WHERE retired IS NULL
                     ORDER BY created DESC, kid LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?;
            if current.as_deref() != Some(expected_current) {
                return Err(StoreError::AlreadyExists(Entity::Account));
            }
            tx.execute(
                "UPDATE signing_key SET retired = ?1 WHERE retired IS NULL",
                params![key.created],
            )
            .map_err(backend)?;
            let sealed = sealer.seal(&signing_aad(&key.kid), key.pkcs8.expose())?;
            tx.execute(
                "INSERT INTO signing_key (kid, sealed_pkcs8, created, retired)
                 VALUES (?1, ?2, ?3, NULL)",
                params![key.kid, sealed, key.created],
            )
            .map_err(backend)?;
            Ok(())
        })
    }

    fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.execute(
                "INSERT INTO iam_user (user_id, name, path, created) VALUES (?1, ?2, ?3, ?4)",
                params![user.user_id, user.name, user.path, user.created],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::AlreadyExists(Entity::User)
                } else {
                    backend(e)
                }
            })?;
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.lock()?
            .query_row(
                "SELECT user_id, name, path, created FROM iam_user WHERE name = ?1",
                [name],
                user_row,
            )
            .optional()
            .map_err(backend)
    }

    fn list_users(
        &self,
        path_prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        let conn = self.lock()?;
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

    fn delete_user(&self, name: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let user_id = Self::owner_id(tx, &KeyOwner::User(name.to_owned()))?;
            let keys: i64 = tx
                .query_row(
                    "SELECT count(*) FROM access_key WHERE owner_user_id = ?1",
                    [&user_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if keys > 0 {
                return Err(StoreError::DeleteConflict {
                    entity: Entity::User,
                    dependents: Entity::AccessKey,
                });
            }
            tx.execute("DELETE FROM iam_user WHERE user_id = ?1", [&user_id])
                .map_err(backend)?;
            Ok(())
        })
    }

    fn create_access_key(&self, key: &AccessKey, max_per_owner: usize) -> Result<(), StoreError> {
        self.write(|tx, sealer| {
            let owner_id = Self::owner_id(tx, &key.owner)?;
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
            Self::insert_access_key(tx, sealer, owner_id.as_deref(), key)
        })
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        let row = self
            .lock()?
            .query_row(
                &format!("SELECT {KEY_COLUMNS} WHERE k.access_key_id = ?1"),
                [access_key_id],
                key_row,
            )
            .optional()
            .map_err(backend)?;
        row.map(|r| self.row_to_key(r)).transpose()
    }

    fn access_keys_of(&self, owner: &KeyOwner) -> Result<Vec<AccessKey>, StoreError> {
        let rows: Vec<KeyRow> = {
            let conn = self.lock()?;
            let owner_id = Self::owner_id(&conn, owner)?;
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} WHERE k.owner_user_id IS ?1
                     ORDER BY k.created, k.access_key_id"
                ))
                .map_err(backend)?;
            stmt.query_map([owner_id], key_row)
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?
        };
        rows.into_iter().map(|r| self.row_to_key(r)).collect()
    }

    fn set_access_key_status(
        &self,
        owner: &KeyOwner,
        access_key_id: &str,
        status: KeyStatus,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let owner_id = Self::owner_id(tx, owner)?;
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

    fn delete_access_key(&self, owner: &KeyOwner, access_key_id: &str) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let owner_id = Self::owner_id(tx, owner)?;
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn master() -> Secret {
        Secret::new(vec![9u8; 32])
    }

    fn key(id: &str, owner: KeyOwner) -> AccessKey {
        AccessKey {
            access_key_id: id.into(),
            owner,
            status: KeyStatus::Active,
            created: 1,
            secret: Secret::from(format!("secret-of-{id}")),
        }
    }

    fn user(name: &str) -> User {
        User {
            user_id: format!("AIDA{name}"),
            name: name.into(),
            path: "/".into(),
            created: 1,
        }
    }

    fn bootstrap() -> Bootstrap {
        Bootstrap {
            account: Account {
                account_id: "000000000000".into(),
                created: 1,
            },
            root_key: key("AKIAROOT", KeyOwner::Root),
            derivation_key: Secret::new(vec![1; 32]),
            signing_key: StoredSigningKey {
                kid: "kid1".into(),
                pkcs8: Secret::new(vec![2; 10]),
                created: 1,
                retired: None,
            },
        }
    }

    #[test]
    fn bootstrap_once() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        assert!(s.account().unwrap().is_none());
        s.bootstrap(&bootstrap()).unwrap();
        assert_eq!(s.account().unwrap().unwrap().account_id, "000000000000");
        assert_eq!(
            s.bootstrap(&bootstrap()).err(),
            Some(StoreError::AlreadyExists(Entity::Account))
        );
        let root = s.access_key("AKIAROOT").unwrap().unwrap();
        assert_eq!(root.owner, KeyOwner::Root);
        assert_eq!(root.secret.expose(), b"secret-of-AKIAROOT");
        assert_eq!(
            s.service_secret(crate::DERIVATION_KEY)
                .unwrap()
                .unwrap()
                .expose(),
            &[1; 32]
        );
        assert_eq!(s.signing_keys().unwrap().len(), 1);
    }

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

    #[test]
    fn signing_key_rotation_is_compare_and_set() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.bootstrap(&bootstrap()).unwrap();
        let new = StoredSigningKey {
            kid: "kid2".into(),
            pkcs8: Secret::new(vec![3; 10]),
            created: 5,
            retired: None,
        };
        s.rotate_signing_key("kid1", &new).unwrap();
        // A second replica that still believes kid1 is current loses the race.
        let racer = StoredSigningKey {
            kid: "kid3".into(),
            ..new
        };
        assert!(s.rotate_signing_key("kid1", &racer).is_err());
        let keys = s.signing_keys().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].kid, "kid2");
        assert_eq!(keys[1].retired, Some(5));
    }

    #[test]
    fn file_store_persists_and_never_holds_secrets_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let s = SqliteStore::open(&path, &master()).unwrap();
            s.bootstrap(&bootstrap()).unwrap();
        }
        let s = SqliteStore::open(&path, &master()).unwrap();
        assert!(s.access_key("AKIAROOT").unwrap().is_some());
        drop(s);
        let mut raw = fs::read(&path).unwrap();
        if let Ok(wal) = fs::read(dir.path().join("t.db-wal")) {
            raw.extend(wal);
        }
        assert!(!raw.windows(18).any(|w| w == b"secret-of-AKIAROOT"));
        // A wrong master key cannot open the secrets.
        let wrong = SqliteStore::open(&path, &Secret::new(vec![8u8; 32])).unwrap();
        assert_eq!(wrong.access_key("AKIAROOT").err(), Some(StoreError::Unseal));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
