//! Usage (issue 12, points 2 and 3): access keys' last use and entities' last attempt per
//! action, written in batches; the access-advisor jobs; the account alias. None of it is
//! IAM state, so every write here takes the path that keeps the IAM generation (and with
//! it every compiled-policy cache) as it is.

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, backend};
use crate::{AdvisorJob, Entity, EntityUse, KeyLastUsed, StoreError, UsageBatch};

pub(super) fn record_usage(store: &SqliteStore, batch: &UsageBatch) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    store.write_login_state(|tx, _| {
        let mut keys = tx
            .prepare_cached(
                "UPDATE access_key
                 SET last_used_at = ?2, last_used_service = ?3, last_used_region = ?4
                 WHERE access_key_id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
            )
            .map_err(backend)?;
        for (id, u) in &batch.keys {
            keys.execute(params![id, u.at, u.service, u.region])
                .map_err(backend)?;
        }
        let mut entities = tx
            .prepare_cached(
                "INSERT INTO entity_usage (entity_id, entity_arn, service, action, last_at, region)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (entity_id, service, action) DO UPDATE
                 SET entity_arn = excluded.entity_arn, last_at = excluded.last_at,
                     region = excluded.region
                 WHERE excluded.last_at > entity_usage.last_at",
            )
            .map_err(backend)?;
        for u in &batch.entities {
            entities
                .execute(params![
                    u.entity_id,
                    u.entity_arn,
                    u.service,
                    u.action,
                    u.at,
                    u.region
                ])
                .map_err(backend)?;
        }
        Ok(())
    })
}

pub(super) fn access_key_last_used(
    store: &SqliteStore,
    access_key_id: &str,
) -> Result<Option<KeyLastUsed>, StoreError> {
    store
        .read()?
        .prepare_cached(
            "SELECT last_used_at, last_used_service, last_used_region FROM access_key
             WHERE access_key_id = ?1 AND last_used_at IS NOT NULL",
        )
        .and_then(|mut stmt| {
            stmt.query_row([access_key_id], |r| {
                Ok(KeyLastUsed {
                    at: r.get(0)?,
                    service: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    region: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                })
            })
            .optional()
        })
        .map_err(backend)
}

pub(super) fn entity_usage(
    store: &SqliteStore,
    entity_ids: &[String],
) -> Result<Vec<EntityUse>, StoreError> {
    store.read_tx(|tx| {
        let mut stmt = tx
            .prepare_cached(
                "SELECT entity_id, entity_arn, service, action, last_at, region
                 FROM entity_usage WHERE entity_id = ?1 ORDER BY service, action",
            )
            .map_err(backend)?;
        let mut out = Vec::new();
        for id in entity_ids {
            let rows = stmt
                .query_map([id], |r| {
                    Ok(EntityUse {
                        entity_id: r.get(0)?,
                        entity_arn: r.get(1)?,
                        service: r.get(2)?,
                        action: r.get(3)?,
                        at: r.get(4)?,
                        region: r.get(5)?,
                    })
                })
                .map_err(backend)?;
            for row in rows {
                out.push(row.map_err(backend)?);
            }
        }
        Ok(out)
    })
}

pub(super) fn put_advisor_job(
    store: &SqliteStore,
    job: &AdvisorJob,
    expire_before: i64,
) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        tx.execute(
            "DELETE FROM advisor_job WHERE created < ?1",
            [expire_before],
        )
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO advisor_job (job_id, requester, created, completed, granularity, result)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                job.job_id,
                job.requester,
                job.created,
                job.completed,
                job.granularity,
                job.result
            ],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn advisor_job(
    store: &SqliteStore,
    job_id: &str,
) -> Result<Option<AdvisorJob>, StoreError> {
    store
        .read()?
        .prepare_cached(
            "SELECT job_id, requester, created, completed, granularity, result
             FROM advisor_job WHERE job_id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([job_id], |r| {
                Ok(AdvisorJob {
                    job_id: r.get(0)?,
                    requester: r.get(1)?,
                    created: r.get(2)?,
                    completed: r.get(3)?,
                    granularity: r.get(4)?,
                    result: r.get(5)?,
                })
            })
            .optional()
        })
        .map_err(backend)
}

pub(super) fn account_alias(store: &SqliteStore) -> Result<Option<String>, StoreError> {
    store
        .read()?
        .prepare_cached("SELECT alias FROM account_alias WHERE id = 1")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)).optional())
        .map_err(backend)
}

pub(super) fn set_account_alias(store: &SqliteStore, alias: &str) -> Result<(), StoreError> {
    // The alias is no input to authorization: no cache needs to hear of it.
    store.write_login_state(|tx, _| {
        tx.execute(
            "INSERT OR REPLACE INTO account_alias (id, alias) VALUES (1, ?1)",
            [alias],
        )
        .map_err(backend)?;
        Ok(())
    })
}

pub(super) fn delete_account_alias(store: &SqliteStore, alias: &str) -> Result<(), StoreError> {
    store.write_login_state(|tx, _| {
        let n = tx
            .execute(
                "DELETE FROM account_alias WHERE id = 1 AND alias = ?1",
                [alias],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(Entity::AccountAlias));
        }
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{
        AdvisorJob, Entity, EntityUse, KeyLastUsed, KeyOwner, Store, StoreError, UsageBatch,
    };

    fn entity_use(action: &str, at: i64) -> EntityUse {
        EntityUse {
            entity_id: "AIDAALICE".into(),
            entity_arn: "arn:aws:iam::000000000000:user/alice".into(),
            service: "iam".into(),
            action: action.into(),
            at,
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn usage_keeps_the_newest_use_and_leaves_the_iam_generation_alone() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        s.bootstrap(&bootstrap()).unwrap();
        s.create_user(&user("alice")).unwrap();
        s.create_access_key(&key("AKIAALICE1", KeyOwner::User("alice".into())), 2)
            .unwrap();
        let generation = s.iam_generation();
        let used = |at| KeyLastUsed {
            at,
            service: "sts".into(),
            region: "eu-west-1".into(),
        };
        s.record_usage(&UsageBatch {
            keys: vec![("AKIAALICE1".into(), used(100))],
            entities: vec![entity_use("GetUser", 100), entity_use("ListUsers", 90)],
        })
        .unwrap();
        // An older use (another replica's late batch) changes nothing.
        s.record_usage(&UsageBatch {
            keys: vec![("AKIAALICE1".into(), used(50))],
            entities: vec![entity_use("GetUser", 50), entity_use("ListUsers", 120)],
        })
        .unwrap();
        assert_eq!(s.iam_generation(), generation);
        let inventory = s.credential_inventory().unwrap();
        assert_eq!(inventory.users[0].1.keys[0].last_used, Some(used(100)));
        assert_eq!(
            s.access_key_last_used("AKIAALICE1").unwrap(),
            Some(used(100))
        );
        assert_eq!(s.access_key_last_used("AKIAROOT").unwrap(), None);
        let uses = s
            .entity_usage(&["AIDAALICE".into(), "AIDANONE".into()])
            .unwrap();
        let got: Vec<(&str, i64)> = uses.iter().map(|u| (u.action.as_str(), u.at)).collect();
        assert_eq!(got, [("GetUser", 100), ("ListUsers", 120)]);
    }

    #[test]
    fn jobs_expire_and_the_alias_is_one() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        let job = |id: &str, created| AdvisorJob {
            job_id: id.into(),
            requester: "arn:aws:iam::000000000000:root".into(),
            created,
            completed: created,
            granularity: "SERVICE_LEVEL".into(),
            result: "[]".into(),
        };
        s.put_advisor_job(&job("a", 10), 0).unwrap();
        s.put_advisor_job(&job("b", 20), 15).unwrap();
        assert_eq!(s.advisor_job("a").unwrap(), None);
        assert_eq!(s.advisor_job("b").unwrap(), Some(job("b", 20)));

        assert_eq!(s.account_alias().unwrap(), None);
        s.set_account_alias("first").unwrap();
        s.set_account_alias("second").unwrap();
        assert_eq!(s.account_alias().unwrap().as_deref(), Some("second"));
        assert!(matches!(
            s.delete_account_alias("first"),
            Err(StoreError::NotFound(Entity::AccountAlias))
        ));
        s.delete_account_alias("second").unwrap();
        assert_eq!(s.account_alias().unwrap(), None);
    }
}
