//! The account, its bootstrap (exactly once across replicas), the service secrets and the
//! session-token signing keys (rotated once across replicas).

use deadpool_postgres::Object;
use tokengate_token::Secret;

use super::{backend, begin_admin};
use crate::seal::Sealer;
use crate::sqlite::accounts::{secret_aad, signing_aad};
use crate::sqlite::users::key_aad;
use crate::{Account, Bootstrap, Entity, StoreError, StoredSigningKey};

/// A [`Bootstrap`] the store's runtime can own (its secrets cloned, still zeroized on drop).
pub(super) struct OwnedBootstrap {
    account: Account,
    root_key_id: String,
    root_created: i64,
    root_status: &'static str,
    root_secret: Secret,
    derivation_key: Secret,
    signing_key: StoredSigningKey,
}

impl From<&Bootstrap> for OwnedBootstrap {
    fn from(b: &Bootstrap) -> Self {
        Self {
            account: b.account.clone(),
            root_key_id: b.root_key.access_key_id.clone(),
            root_created: b.root_key.created,
            root_status: b.root_key.status.as_str(),
            root_secret: b.root_key.secret.clone(),
            derivation_key: b.derivation_key.clone(),
            signing_key: clone_signing_key(&b.signing_key),
        }
    }
}

pub(super) fn clone_signing_key(k: &StoredSigningKey) -> StoredSigningKey {
    StoredSigningKey {
        kid: k.kid.clone(),
        pkcs8: k.pkcs8.clone(),
        created: k.created,
        retired: k.retired,
    }
}

pub(super) async fn account(c: &Object) -> Result<Option<Account>, StoreError> {
    Ok(
        c.query_opt("SELECT account_id, created FROM account WHERE id = 1", &[])
            .await
            .map_err(backend)?
            .map(|r| Account {
                account_id: r.get(0),
                created: r.get(1),
            }),
    )
}

/// One transaction whose first write is the account row with `ON CONFLICT DO NOTHING`: a
/// second replica bootstrapping at the same moment waits on the unique index until the first
/// commits, then inserts nothing and gets `AlreadyExists(Account)` — one account, one root
/// key, one derivation key, one signing key.
pub(super) async fn bootstrap(
    c: &mut Object,
    sealer: &Sealer,
    b: OwnedBootstrap,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let inserted = tx
        .execute(
            "INSERT INTO account (id, account_id, created) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
            &[&b.account.account_id, &b.account.created],
        )
        .await
        .map_err(backend)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(Entity::Account));
    }
    let sealed = sealer.seal(&key_aad(&b.root_key_id), b.root_secret.expose())?;
    tx.execute(
        "INSERT INTO access_key (access_key_id, owner_user_id, status, created, sealed_secret)
         VALUES ($1, NULL, $2, $3, $4)",
        &[&b.root_key_id, &b.root_status, &b.root_created, &sealed],
    )
    .await
    .map_err(super::exists_or_backend(Entity::AccessKey))?;
    let name = crate::DERIVATION_KEY;
    let sealed = sealer.seal(&secret_aad(name), b.derivation_key.expose())?;
    tx.execute(
        "INSERT INTO service_secret (name, sealed) VALUES ($1, $2)",
        &[&name, &sealed],
    )
    .await
    .map_err(backend)?;
    let k = &b.signing_key;
    let sealed = sealer.seal(&signing_aad(&k.kid), k.pkcs8.expose())?;
    tx.execute(
        "INSERT INTO signing_key (kid, sealed_pkcs8, created, retired)
         VALUES ($1, $2, $3, NULL)",
        &[&k.kid, &sealed, &k.created],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn service_secret(
    c: &Object,
    sealer: &Sealer,
    name: &str,
) -> Result<Option<Secret>, StoreError> {
    let row = c
        .query_opt(
            "SELECT sealed FROM service_secret WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(backend)?;
    row.map(|r| sealer.open(&secret_aad(name), r.get::<_, &[u8]>(0)))
        .transpose()
}

pub(super) async fn signing_keys(
    c: &Object,
    sealer: &Sealer,
) -> Result<Vec<StoredSigningKey>, StoreError> {
    c.query(
        "SELECT kid, sealed_pkcs8, created, retired FROM signing_key
         ORDER BY created DESC, kid",
        &[],
    )
    .await
    .map_err(backend)?
    .into_iter()
    .map(|r| {
        let kid: String = r.get(0);
        let pkcs8 = sealer.open(&signing_aad(&kid), r.get::<_, &[u8]>(1))?;
        Ok(StoredSigningKey {
            kid,
            pkcs8,
            created: r.get(2),
            retired: r.get(3),
        })
    })
    .collect()
}

/// The compare-and-set of rotation: the admin write's generation lock serialises rotators,
/// so the second one sees the first one's key as current and gets `AlreadyExists`.
pub(super) async fn rotate_signing_key(
    c: &mut Object,
    sealer: &Sealer,
    expected_current: &str,
    key: StoredSigningKey,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let current: Option<String> = tx
        .query_opt(
            "SELECT kid FROM signing_key WHERE retired IS NULL
             ORDER BY created DESC, kid LIMIT 1",
            &[],
        )
        .await
        .map_err(backend)?
        .map(|r| r.get(0));
    if current.as_deref() != Some(expected_current) {
        return Err(StoreError::AlreadyExists(Entity::Account));
    }
    tx.execute(
        "UPDATE signing_key SET retired = $1 WHERE retired IS NULL",
        &[&key.created],
    )
    .await
    .map_err(backend)?;
    let sealed = sealer.seal(&signing_aad(&key.kid), key.pkcs8.expose())?;
    tx.execute(
        "INSERT INTO signing_key (kid, sealed_pkcs8, created, retired)
         VALUES ($1, $2, $3, NULL)",
        &[&key.kid, &sealed, &key.created],
    )
    .await
    .map_err(backend)?;
    tx.execute("SELECT pg_notify('tokengate_signing_key', $1)", &[&key.kid])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)
}
