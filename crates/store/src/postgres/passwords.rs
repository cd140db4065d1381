//! The account password policy, login profiles and the password history. Columns that are
//! `INTEGER` 0/1 or counts on SQLite are `BIGINT` here, converted at this edge.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;

use super::{backend, begin_admin, exists_or_backend};
use crate::{
    Entity, LoginProfile, LoginProfileUpdate, MAX_PASSWORD_HISTORY, NewPassword, PasswordPolicy,
    PasswordUse, StoreError,
};

const POLICY_COLUMNS: &str = "minimum_length, require_symbols, require_numbers, \
     require_uppercase, require_lowercase, allow_users_to_change, max_age_days, \
     reuse_prevention, hard_expiry";

pub(super) const PROFILE_COLUMNS: &str = "u.name, p.password_hash, p.created, \
     p.password_changed, p.reset_required, p.last_used, p.max_session_duration";

fn flag(r: &Row, i: usize) -> bool {
    r.get::<_, i64>(i) != 0
}

/// The columns' CHECK constraints keep these far inside u32.
fn small(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn policy_row(r: &Row) -> PasswordPolicy {
    PasswordPolicy {
        minimum_length: small(r.get(0)),
        require_symbols: flag(r, 1),
        require_numbers: flag(r, 2),
        require_uppercase: flag(r, 3),
        require_lowercase: flag(r, 4),
        allow_users_to_change: flag(r, 5),
        max_age_days: r.get::<_, Option<i64>>(6).map(small),
        reuse_prevention: r.get::<_, Option<i64>>(7).map(small),
        hard_expiry: r.get::<_, Option<i64>>(8).map(|v| v != 0),
    }
}

pub(super) fn profile_row(r: &Row) -> LoginProfile {
    LoginProfile {
        user_name: r.get(0),
        password_hash: r.get(1),
        created: r.get(2),
        password_changed: r.get(3),
        reset_required: flag(r, 4),
        last_used: r.get(5),
        max_session_duration: r.get::<_, Option<i64>>(6).map(small),
    }
}

async fn user_id(c: &impl GenericClient, name: &str) -> Result<String, StoreError> {
    c.query_opt(
        "SELECT user_id FROM iam_user WHERE lower(name) = lower($1)",
        &[&name],
    )
    .await
    .map_err(backend)?
    .map(|r| r.get(0))
    .ok_or(StoreError::NotFound(Entity::User))
}

async fn push_history(
    c: &impl GenericClient,
    user_id: &str,
    hash: &str,
    at: i64,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO password_history (user_id, seq, password_hash, changed)
         VALUES ($1, (SELECT coalesce(max(seq), 0) + 1 FROM password_history
                      WHERE user_id = $1), $2, $3)",
        &[&user_id, &hash, &at],
    )
    .await
    .map_err(backend)?;
    let keep = i64::try_from(MAX_PASSWORD_HISTORY).map_err(backend)?;
    c.execute(
        "DELETE FROM password_history WHERE user_id = $1 AND seq <=
             (SELECT max(seq) FROM password_history WHERE user_id = $1) - $2",
        &[&user_id, &keep],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

pub(super) async fn password_policy(c: &Object) -> Result<Option<PasswordPolicy>, StoreError> {
    Ok(c.query_opt(
        &format!("SELECT {POLICY_COLUMNS} FROM password_policy WHERE id = 1"),
        &[],
    )
    .await
    .map_err(backend)?
    .as_ref()
    .map(policy_row))
}

pub(super) async fn set_password_policy(
    c: &mut Object,
    p: &PasswordPolicy,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let b = |v: bool| i64::from(v);
    tx.execute(
        &format!(
            "INSERT INTO password_policy (id, {POLICY_COLUMNS})
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (id) DO UPDATE SET
                 minimum_length = excluded.minimum_length,
                 require_symbols = excluded.require_symbols,
                 require_numbers = excluded.require_numbers,
                 require_uppercase = excluded.require_uppercase,
                 require_lowercase = excluded.require_lowercase,
                 allow_users_to_change = excluded.allow_users_to_change,
                 max_age_days = excluded.max_age_days,
                 reuse_prevention = excluded.reuse_prevention,
                 hard_expiry = excluded.hard_expiry"
        ),
        &[
            &i64::from(p.minimum_length),
            &b(p.require_symbols),
            &b(p.require_numbers),
            &b(p.require_uppercase),
            &b(p.require_lowercase),
            &b(p.allow_users_to_change),
            &p.max_age_days.map(i64::from),
            &p.reuse_prevention.map(i64::from),
            &p.hard_expiry.map(b),
        ],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn delete_password_policy(c: &mut Object) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let n = tx
        .execute("DELETE FROM password_policy WHERE id = 1", &[])
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::PasswordPolicy));
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn create_login_profile(
    c: &mut Object,
    user: &str,
    password: &NewPassword,
    reset_required: bool,
    max_session_duration: Option<u32>,
) -> Result<LoginProfile, StoreError> {
    let tx = begin_admin(c).await?;
    let id = user_id(&tx, user).await?;
    tx.execute(
        "INSERT INTO login_profile (user_id, password_hash, created, password_changed,
             reset_required, max_session_duration)
         VALUES ($1, $2, $3, $3, $4, $5)",
        &[
            &id,
            &password.hash,
            &password.at,
            &i64::from(reset_required),
            &max_session_duration.map(i64::from),
        ],
    )
    .await
    .map_err(exists_or_backend(Entity::LoginProfile))?;
    push_history(&tx, &id, &password.hash, password.at).await?;
    let profile = tx
        .query_one(
            &format!(
                "SELECT {PROFILE_COLUMNS} FROM login_profile p
                 JOIN iam_user u ON u.user_id = p.user_id WHERE p.user_id = $1"
            ),
            &[&id],
        )
        .await
        .map_err(backend)?;
    let profile = profile_row(&profile);
    tx.commit().await.map_err(backend)?;
    Ok(profile)
}

pub(super) async fn login_profile(
    c: &mut Object,
    user: &str,
) -> Result<Option<LoginProfile>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let id = user_id(&tx, user).await?;
    Ok(tx
        .query_opt(
            &format!(
                "SELECT {PROFILE_COLUMNS} FROM login_profile p
                 JOIN iam_user u ON u.user_id = p.user_id WHERE p.user_id = $1"
            ),
            &[&id],
        )
        .await
        .map_err(backend)?
        .as_ref()
        .map(profile_row))
}

pub(super) async fn password_history(
    c: &mut Object,
    user: &str,
    n: usize,
) -> Result<Vec<String>, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let id = user_id(&tx, user).await?;
    let n = i64::try_from(n.min(MAX_PASSWORD_HISTORY)).map_err(backend)?;
    Ok(tx
        .query(
            "SELECT password_hash FROM password_history WHERE user_id = $1
             ORDER BY seq DESC LIMIT $2",
            &[&id, &n],
        )
        .await
        .map_err(backend)?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// A password change is a compare-and-set on the hash the old password was verified
/// against, under the generation lock every admin write takes.
pub(super) async fn update_login_profile(
    c: &mut Object,
    user: &str,
    update: &LoginProfileUpdate,
) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = user_id(&tx, user).await?;
    let current: String = tx
        .query_opt(
            "SELECT password_hash FROM login_profile WHERE user_id = $1",
            &[&id],
        )
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound(Entity::LoginProfile))?
        .get(0);
    if let Some(password) = &update.password {
        if password.expected.as_ref().is_some_and(|e| *e != current) {
            return Err(StoreError::Changed(Entity::LoginProfile));
        }
        tx.execute(
            "UPDATE login_profile SET password_hash = $2, password_changed = $3
             WHERE user_id = $1",
            &[&id, &password.hash, &password.at],
        )
        .await
        .map_err(backend)?;
        push_history(&tx, &id, &password.hash, password.at).await?;
    }
    if let Some(reset) = update.reset_required {
        tx.execute(
            "UPDATE login_profile SET reset_required = $2 WHERE user_id = $1",
            &[&id, &i64::from(reset)],
        )
        .await
        .map_err(backend)?;
    }
    if let Some(duration) = update.max_session_duration {
        tx.execute(
            "UPDATE login_profile SET max_session_duration = $2 WHERE user_id = $1",
            &[&id, &duration.map(i64::from)],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn delete_login_profile(c: &mut Object, user: &str) -> Result<(), StoreError> {
    let tx = begin_admin(c).await?;
    let id = user_id(&tx, user).await?;
    let n = tx
        .execute("DELETE FROM login_profile WHERE user_id = $1", &[&id])
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::LoginProfile));
    }
    tx.commit().await.map_err(backend)
}

/// Login-path state (no generation bump); both statements are conditional on the verified
/// hash still being current, so a password changed meanwhile (on any replica) is neither
/// marked used nor overwritten by the rehash.
pub(super) async fn record_password_use(c: &mut Object, u: &PasswordUse) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let id = user_id(&tx, &u.user_name).await?;
    tx.execute(
        "UPDATE login_profile SET last_used = $3
         WHERE user_id = $1 AND password_hash = $2
           AND (last_used IS NULL OR last_used <= $3::bigint - $4::bigint)",
        &[&id, &u.verified_hash, &u.now, &u.granularity_secs],
    )
    .await
    .map_err(backend)?;
    if let Some(rehash) = &u.rehash {
        tx.execute(
            "UPDATE login_profile SET password_hash = $3
             WHERE user_id = $1 AND password_hash = $2",
            &[&id, &u.verified_hash, rehash],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "UPDATE password_history SET password_hash = $3
             WHERE user_id = $1 AND password_hash = $2",
            &[&id, &u.verified_hash, rehash],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}
