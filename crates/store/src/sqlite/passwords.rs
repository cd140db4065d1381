//! The account password policy, login profiles and the password history (issue 12).
//!
//! A login profile holds the password's argon2id PHC string, never the password; the
//! history keeps the latest [`MAX_PASSWORD_HISTORY`] hashes per user for
//! PasswordReusePrevention. Password changes by the user are compare-and-set on the hash
//! the old password was verified against.

use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, backend, exists_or_backend};
use crate::{
    Entity, LoginProfile, LoginProfileUpdate, MAX_PASSWORD_HISTORY, NewPassword, PasswordPolicy,
    PasswordUse, StoreError,
};

const POLICY_COLUMNS: &str = "minimum_length, require_symbols, require_numbers, \
     require_uppercase, require_lowercase, allow_users_to_change, max_age_days, \
     reuse_prevention, hard_expiry";

fn policy_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PasswordPolicy> {
    Ok(PasswordPolicy {
        minimum_length: r.get(0)?,
        require_symbols: r.get(1)?,
        require_numbers: r.get(2)?,
        require_uppercase: r.get(3)?,
        require_lowercase: r.get(4)?,
        allow_users_to_change: r.get(5)?,
        max_age_days: r.get(6)?,
        reuse_prevention: r.get(7)?,
        hard_expiry: r.get(8)?,
    })
}

pub(super) const PROFILE_COLUMNS: &str = "u.name, p.password_hash, p.created, \
     p.password_changed, p.reset_required, p.last_used, p.max_session_duration";

pub(super) fn profile_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LoginProfile> {
    Ok(LoginProfile {
        user_name: r.get(0)?,
        password_hash: r.get(1)?,
        created: r.get(2)?,
        password_changed: r.get(3)?,
        reset_required: r.get(4)?,
        last_used: r.get(5)?,
        max_session_duration: r.get(6)?,
    })
}

pub(super) fn password_policy(store: &SqliteStore) -> Result<Option<PasswordPolicy>, StoreError> {
    store
        .read()?
        .prepare_cached(&format!(
            "SELECT {POLICY_COLUMNS} FROM password_policy WHERE id = 1"
        ))
        .and_then(|mut stmt| stmt.query_row([], policy_row).optional())
        .map_err(backend)
}

pub(super) fn set_password_policy(
    store: &SqliteStore,
    p: &PasswordPolicy,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        tx.execute(
            &format!(
                "INSERT OR REPLACE INTO password_policy (id, {POLICY_COLUMNS})
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ),
            params![
                p.minimum_length,
                p.require_symbols,
                p.require_numbers,
                p.require_uppercase,
                p.require_lowercase,
                p.allow_users_to_change,
                p.max_age_days,
                p.reuse_prevention,
                p.hard_expiry
            ],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn delete_password_policy(store: &SqliteStore) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let n = tx
            .execute("DELETE FROM password_policy WHERE id = 1", [])
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::PasswordPolicy));
        }
        Ok(())
    })
}

fn user_id(tx: &Connection, name: &str) -> Result<String, StoreError> {
    tx.query_row(
        "SELECT user_id FROM iam_user WHERE name = ?1",
        [name],
        |r| r.get(0),
    )
    .optional()
    .map_err(backend)?
    .ok_or(StoreError::NotFound(Entity::User))
}

/// Appends `hash` to the user's history and drops all but the latest
/// [`MAX_PASSWORD_HISTORY`].
fn push_history(tx: &Connection, user_id: &str, hash: &str, at: i64) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO password_history (user_id, seq, password_hash, changed)
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM password_history
                      WHERE user_id = ?1), ?2, ?3)",
        params![user_id, hash, at],
    )
    .map_err(backend)?;
    let keep = i64::try_from(MAX_PASSWORD_HISTORY).map_err(backend)?;
    tx.execute(
        "DELETE FROM password_history WHERE user_id = ?1 AND seq <=
             (SELECT max(seq) FROM password_history WHERE user_id = ?1) - ?2",
        params![user_id, keep],
    )
    .map_err(backend)?;
    Ok(())
}

pub(super) fn create_login_profile(
    store: &SqliteStore,
    user: &str,
    password: &NewPassword,
    reset_required: bool,
    max_session_duration: Option<u32>,
) -> Result<LoginProfile, StoreError> {
    store.write(|tx, _| {
        let id = user_id(tx, user)?;
        tx.execute(
            "INSERT INTO login_profile (user_id, password_hash, created, password_changed,
                 reset_required, max_session_duration)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
            params![
                id,
                password.hash,
                password.at,
                reset_required,
                max_session_duration
            ],
        )
        .map_err(exists_or_backend(Entity::LoginProfile))?;
        push_history(tx, &id, &password.hash, password.at)?;
        tx.query_row(
            &format!(
                "SELECT {PROFILE_COLUMNS} FROM login_profile p
                 JOIN iam_user u ON u.user_id = p.user_id WHERE p.user_id = ?1"
            ),
            [&id],
            profile_row,
        )
        .map_err(backend)
    })
}

pub(super) fn login_profile(
    store: &SqliteStore,
    user: &str,
) -> Result<Option<LoginProfile>, StoreError> {
    store.read_tx(|tx| {
        let id = user_id(tx, user)?;
        tx.prepare_cached(&format!(
            "SELECT {PROFILE_COLUMNS} FROM login_profile p
             JOIN iam_user u ON u.user_id = p.user_id WHERE p.user_id = ?1"
        ))
        .and_then(|mut stmt| stmt.query_row([&id], profile_row).optional())
        .map_err(backend)
    })
}

pub(super) fn password_history(
    store: &SqliteStore,
    user: &str,
    n: usize,
) -> Result<Vec<String>, StoreError> {
    store.read_tx(|tx| {
        let id = user_id(tx, user)?;
        let n = i64::try_from(n.min(MAX_PASSWORD_HISTORY)).map_err(backend)?;
        let mut stmt = tx
            .prepare_cached(
                "SELECT password_hash FROM password_history WHERE user_id = ?1
                 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(backend)?;
        stmt.query_map(params![id, n], |r| r.get(0))
            .map_err(backend)?
            .collect::<Result<_, _>>()
            .map_err(backend)
    })
}

pub(super) fn update_login_profile(
    store: &SqliteStore,
    user: &str,
    update: &LoginProfileUpdate,
) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = user_id(tx, user)?;
        let current: String = tx
            .query_row(
                "SELECT password_hash FROM login_profile WHERE user_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?
            .ok_or(StoreError::NotFound(Entity::LoginProfile))?;
        if let Some(password) = &update.password {
            // Compare-and-set inside this transaction: the hash the old password was
            // verified against must still be the current one.
            if password.expected.as_ref().is_some_and(|e| *e != current) {
                return Err(StoreError::Changed(Entity::LoginProfile));
            }
            tx.execute(
                "UPDATE login_profile SET password_hash = ?2, password_changed = ?3
                 WHERE user_id = ?1",
                params![id, password.hash, password.at],
            )
            .map_err(backend)?;
            push_history(tx, &id, &password.hash, password.at)?;
        }
        if let Some(reset) = update.reset_required {
            tx.execute(
                "UPDATE login_profile SET reset_required = ?2 WHERE user_id = ?1",
                params![id, reset],
            )
            .map_err(backend)?;
        }
        if let Some(duration) = update.max_session_duration {
            tx.execute(
                "UPDATE login_profile SET max_session_duration = ?2 WHERE user_id = ?1",
                params![id, duration],
            )
            .map_err(backend)?;
        }
        Ok(())
    })
}

pub(super) fn delete_login_profile(store: &SqliteStore, user: &str) -> Result<(), StoreError> {
    store.write(|tx, _| {
        let id = user_id(tx, user)?;
        let n = tx
            .execute("DELETE FROM login_profile WHERE user_id = ?1", [&id])
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::LoginProfile));
        }
        Ok(())
    })
}

pub(super) fn record_password_use(store: &SqliteStore, u: &PasswordUse) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        let id = user_id(tx, &u.user_name)?;
        // Both statements are conditional on the verified hash being current: a password
        // changed meanwhile is neither marked used nor overwritten by the rehash.
        tx.execute(
            "UPDATE login_profile SET last_used = ?3
             WHERE user_id = ?1 AND password_hash = ?2
               AND (last_used IS NULL OR last_used <= ?3 - ?4)",
            params![id, u.verified_hash, u.now, u.granularity_secs],
        )
        .map_err(backend)?;
        if let Some(rehash) = &u.rehash {
            tx.execute(
                "UPDATE login_profile SET password_hash = ?3
                 WHERE user_id = ?1 AND password_hash = ?2",
                params![id, u.verified_hash, rehash],
            )
            .map_err(backend)?;
            tx.execute(
                "UPDATE password_history SET password_hash = ?3
                 WHERE user_id = ?1 AND password_hash = ?2",
                params![id, u.verified_hash, rehash],
            )
            .map_err(backend)?;
        }
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{
        Entity, LoginProfileUpdate, MAX_PASSWORD_HISTORY, NewPassword, PasswordPolicy, PasswordUse,
        Store, StoreError,
    };

    fn pw(hash: &str, at: i64) -> NewPassword {
        NewPassword {
            hash: hash.into(),
            at,
            expected: None,
        }
    }

    #[test]
    fn the_policy_is_set_whole_and_deleted_once() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        assert_eq!(s.password_policy().unwrap(), None);
        assert_eq!(
            s.delete_password_policy().err(),
            Some(StoreError::NotFound(Entity::PasswordPolicy))
        );
        let policy = PasswordPolicy {
            minimum_length: 12,
            require_symbols: true,
            require_numbers: false,
            require_uppercase: true,
            require_lowercase: false,
            allow_users_to_change: true,
            max_age_days: Some(90),
            reuse_prevention: Some(24),
            hard_expiry: Some(false),
        };
        s.set_password_policy(&policy).unwrap();
        assert_eq!(s.password_policy().unwrap(), Some(policy.clone()));
        let minimal = PasswordPolicy {
            max_age_days: None,
            reuse_prevention: None,
            hard_expiry: None,
            ..policy
        };
        s.set_password_policy(&minimal).unwrap();
        assert_eq!(s.password_policy().unwrap(), Some(minimal));
        s.delete_password_policy().unwrap();
        assert_eq!(s.password_policy().unwrap(), None);
    }

    #[test]
    fn login_profiles_and_history() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        assert_eq!(
            s.create_login_profile("alice", &pw("h0", 1), false, None)
                .err(),
            Some(StoreError::NotFound(Entity::User))
        );
        s.create_user(&user("alice")).unwrap();
        assert_eq!(s.login_profile("alice").unwrap(), None);
        let p = s
            .create_login_profile("alice", &pw("h1", 10), true, Some(3600))
            .unwrap();
        assert_eq!(
            (p.user_name.as_str(), p.created, p.password_changed),
            ("alice", 10, 10)
        );
        assert!(p.reset_required && p.last_used.is_none());
        assert_eq!(p.max_session_duration, Some(3600));
        assert_eq!(
            s.create_login_profile("alice", &pw("hx", 11), false, None)
                .err(),
            Some(StoreError::AlreadyExists(Entity::LoginProfile))
        );
        // A user with a password cannot be deleted.
        assert_eq!(
            s.delete_user("alice").err(),
            Some(StoreError::DeleteConflict {
                entity: Entity::User,
                dependents: Entity::LoginProfile
            })
        );
        // A change by the user is compare-and-set on the verified hash.
        let change = |expected: &str, hash: &str, at| LoginProfileUpdate {
            password: Some(NewPassword {
                hash: hash.into(),
                at,
                expected: Some(expected.into()),
            }),
            reset_required: Some(false),
            max_session_duration: None,
        };
        assert_eq!(
            s.update_login_profile("alice", &change("stale", "h2", 20))
                .err(),
            Some(StoreError::Changed(Entity::LoginProfile))
        );
        s.update_login_profile("alice", &change("h1", "h2", 20))
            .unwrap();
        let p = s.login_profile("alice").unwrap().unwrap();
        assert_eq!((p.password_hash.as_str(), p.password_changed), ("h2", 20));
        assert!(!p.reset_required);
        assert_eq!(p.created, 10);
        assert_eq!(s.password_history("alice", 5).unwrap(), vec!["h2", "h1"]);
        // The history keeps the latest 24 and survives the profile.
        for i in 3..40 {
            s.update_login_profile(
                "alice",
                &LoginProfileUpdate {
                    password: Some(pw(&format!("h{i}"), 20 + i)),
                    ..LoginProfileUpdate::default()
                },
            )
            .unwrap();
        }
        let history = s.password_history("alice", 100).unwrap();
        assert_eq!(history.len(), MAX_PASSWORD_HISTORY);
        assert_eq!(history.first().map(String::as_str), Some("h39"));
        assert_eq!(history.last().map(String::as_str), Some("h16"));
        s.delete_login_profile("alice").unwrap();
        assert_eq!(
            s.delete_login_profile("alice").err(),
            Some(StoreError::NotFound(Entity::LoginProfile))
        );
        assert_eq!(
            s.update_login_profile("alice", &LoginProfileUpdate::default())
                .err(),
            Some(StoreError::NotFound(Entity::LoginProfile))
        );
        assert_eq!(s.password_history("alice", 2).unwrap(), vec!["h39", "h38"]);
        s.delete_user("alice").unwrap();
    }

    #[test]
    fn password_use_is_recorded_once_per_span_and_rehashes_the_verified_hash() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.create_user(&user("bob")).unwrap();
        s.create_login_profile("bob", &pw("old-params", 1), false, None)
            .unwrap();
        let used = |verified: &str, now, rehash: Option<&str>| PasswordUse {
            user_name: "bob".into(),
            verified_hash: verified.into(),
            now,
            granularity_secs: 300,
            rehash: rehash.map(str::to_owned),
        };
        s.record_password_use(&used("old-params", 1000, Some("new-params")))
            .unwrap();
        let p = s.login_profile("bob").unwrap().unwrap();
        assert_eq!(
            (p.password_hash.as_str(), p.last_used),
            ("new-params", Some(1000))
        );
        assert_eq!(s.password_history("bob", 1).unwrap(), vec!["new-params"]);
        // Within 5 minutes: not written again.
        s.record_password_use(&used("new-params", 1299, None))
            .unwrap();
        assert_eq!(
            s.login_profile("bob").unwrap().unwrap().last_used,
            Some(1000)
        );
        s.record_password_use(&used("new-params", 1300, None))
            .unwrap();
        assert_eq!(
            s.login_profile("bob").unwrap().unwrap().last_used,
            Some(1300)
        );
        // A stale verification writes nothing.
        s.record_password_use(&used("old-params", 5000, Some("other")))
            .unwrap();
        let p = s.login_profile("bob").unwrap().unwrap();
        assert_eq!(
            (p.password_hash.as_str(), p.last_used),
            ("new-params", Some(1300))
        );
    }
}
