//! The account, its bootstrap, the service secrets and the session-token signing keys.

use rusqlite::{OptionalExtension, params};
use tokengate_token::Secret;

use super::{SqliteStore, backend};
use crate::{Account, Bootstrap, Entity, StoreError, StoredSigningKey};

pub(crate) fn secret_aad(name: &str) -> String {
    format!("service_secret/{name}")
}

pub(crate) fn signing_aad(kid: &str) -> String {
    format!("signing_key/{kid}/pkcs8")
}

pub(super) fn account(store: &SqliteStore) -> Result<Option<Account>, StoreError> {
    store
        .lock()?
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

pub(super) fn bootstrap(store: &SqliteStore, b: &Bootstrap) -> Result<(), StoreError> {
    store.write(|tx, sealer| {
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO account (id, account_id, created) VALUES (1, ?1, ?2)",
                params![b.account.account_id, b.account.created],
            )
            .map_err(backend)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(Entity::Account));
        }
        super::users::insert_access_key(tx, sealer, None, &b.root_key)?;
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

pub(super) fn service_secret(
    store: &SqliteStore,
    name: &str,
) -> Result<Option<Secret>, StoreError> {
    let sealed: Option<Vec<u8>> = store
        .lock()?
        .query_row(
            "SELECT sealed FROM service_secret WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    sealed
        .map(|s| store.sealer.open(&secret_aad(name), &s))
        .transpose()
}

pub(super) fn signing_keys(store: &SqliteStore) -> Result<Vec<StoredSigningKey>, StoreError> {
    let rows: Vec<(String, Vec<u8>, i64, Option<i64>)> = {
        let conn = store.lock()?;
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
            let pkcs8 = store.sealer.open(&signing_aad(&kid), &sealed)?;
            Ok(StoredSigningKey {
                kid,
                pkcs8,
                created,
                retired,
            })
        })
        .collect()
}

pub(super) fn rotate_signing_key(
    store: &SqliteStore,
    expected_current: &str,
    key: &StoredSigningKey,
) -> Result<(), StoreError> {
    store.write(|tx, sealer| {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokengate_token::Secret;

    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{Entity, KeyOwner, Store, StoreError, StoredSigningKey};

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
}
