//! The usage recorder (issue 12, points 2 and 3): who used what, without a database write
//! per request.
//!
//! The chokepoint tells [`UsageRecorder::note`] about every authenticated request (allowed
//! or refused: access advisor counts attempts, as AWS's does). The recorder keeps, in
//! memory, the last use it *recorded* for each access key and for each entity (user or
//! role) and action. A use enters the pending batch only when the recorded one is older
//! than the granularity ([`KEY_GRANULARITY_SECS`], [`ACTION_GRANULARITY_SECS`]) or, for a
//! key, when it was for another service or region; every other request costs one mutex
//! and a hash lookup, and allocates nothing.
//!
//! The pending batch is written by [`UsageRecorder::flush`] (one transaction per
//! [`FLUSH_CHUNK_ROWS`] rows): every
//! [`FLUSH_INTERVAL_SECS`] by the task [`crate::serve`] runs, once more at shutdown, and
//! before anything that reads usage (GetAccessKeyLastUsed, the access advisor, the
//! credential report), so a reader on this replica sees its own uses. The write keeps the
//! IAM generation (usage is no IAM state: no policy cache is invalidated).
//! [`UsageRecorder::writes`] counts the transactions, for tests and the load tool.
//!
//! What is lost on a crash: the uses of at most the last flush interval. Each replica
//! keeps its own memory; the store keeps the newest use whichever replica wrote it.
//! Password last use (first use per 5 minutes) is written by
//! [`crate::passwords::verify_password`]; security keys' and TOTP devices' last use are
//! part of their counter and replay writes, which happen anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokengate_store::{EntityUse, KeyLastUsed, Store, StoreError, UsageBatch};
use tokengate_token::Principal;

use crate::action::ActionSpec;
use crate::auth::Caller;

/// A key's use is recorded when the recorded one is at least this old (AWS: "at most
/// once per 15 minutes", IAMUG `id_credentials_getting-report.md`).
pub const KEY_GRANULARITY_SECS: i64 = 15 * 60;
/// An entity's attempt at an action is recorded when the recorded one is at least this
/// old (AWS: "recent activity usually appears within four hours"; we are finer).
pub const ACTION_GRANULARITY_SECS: i64 = 15 * 60;
/// How often the serving task writes the pending batch.
pub const FLUSH_INTERVAL_SECS: u64 = 10;
/// The most rows one usage transaction writes.
pub const FLUSH_CHUNK_ROWS: usize = 1_000;
/// A bound on remembered keys and entities; past it the memory starts over (which only
/// costs one more write per key and action).
const MAX_REMEMBERED: usize = 1 << 18;

/// What an entity (user or role) is, for the advisor: its unique id and ARN.
fn entity_of(principal: &Principal) -> Option<(&str, String)> {
    match principal {
        Principal::User { user_id, .. } => Some((user_id, principal.arn())),
        Principal::AssumedRole { role_id, .. } => Some((role_id, principal.role_arn()?)),
        // Root is outside the advisor (AWS has no report for it); a federated user's
        // session carries only the IAM user's id, not its ARN.
        Principal::Root { .. } | Principal::FederatedUser { .. } => None,
    }
}

#[derive(Default)]
struct Memory {
    /// Per access key id: the use last put in a batch.
    keys: HashMap<String, KeyLastUsed>,
    /// Per entity id, per (service, registry action name): when last put in a batch.
    entities: HashMap<String, HashMap<(&'static str, &'static str), i64>>,
    /// Not yet written.
    pending_keys: HashMap<String, KeyLastUsed>,
    /// Not yet written, per (entity id, service, action).
    pending_entities: HashMap<(String, &'static str, String), EntityUse>,
}

/// Batches usage in memory; see the module docs.
#[derive(Default)]
pub struct UsageRecorder {
    memory: Mutex<Memory>,
    /// Serializes flushes, so that two never race with one batch each half.
    flushing: Mutex<()>,
    writes: AtomicU64,
}

impl UsageRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes one authenticated request of `caller` for `spec` at `now`.
    pub fn note(&self, caller: &Caller, spec: &'static ActionSpec, now: i64) {
        let service = spec.api.service();
        let Ok(mut m) = self.memory.lock() else {
            return;
        };
        // Long-term keys only: temporary credentials are not access keys of the account.
        if caller.session.is_none() {
            let due = m.keys.get(caller.access_key_id.as_str()).is_none_or(|u| {
                now - u.at >= KEY_GRANULARITY_SECS
                    || u.service != service
                    || u.region != caller.region
            });
            if due {
                let used = KeyLastUsed {
                    at: now,
                    service: service.to_owned(),
                    region: caller.region.clone(),
                };
                if m.keys.len() >= MAX_REMEMBERED {
                    m.keys.clear();
                }
                m.keys.insert(caller.access_key_id.clone(), used.clone());
                m.pending_keys.insert(caller.access_key_id.clone(), used);
            }
        }
        let Some((entity_id, _)) = entity_of(&caller.principal) else {
            return;
        };
        let due = m
            .entities
            .get(entity_id)
            .and_then(|actions| actions.get(&(service, spec.name)))
            .is_none_or(|&at| now - at >= ACTION_GRANULARITY_SECS);
        if !due {
            return;
        }
        if m.entities.len() >= MAX_REMEMBERED {
            m.entities.clear();
        }
        m.entities
            .entry(entity_id.to_owned())
            .or_default()
            .insert((service, spec.name), now);
        let Some((entity_id, entity_arn)) = entity_of(&caller.principal) else {
            return;
        };
        // The IAM action a tokengate-only action is authorized as (a security-key login
        // is a GetSessionToken), without its service prefix.
        let iam_action = spec.iam_action();
        let action = iam_action
            .split_once(':')
            .map_or(iam_action.as_str(), |(_, a)| a)
            .to_owned();
        let key = (entity_id.to_owned(), service, action.clone());
        m.pending_entities.insert(
            key,
            EntityUse {
                entity_id: entity_id.to_owned(),
                entity_arn,
                service: service.to_owned(),
                action,
                at: now,
                region: caller.region.clone(),
            },
        );
    }

    /// Writes the pending uses, in transactions of at most [`FLUSH_CHUNK_ROWS`] rows each
    /// (so that a large batch never holds the store's writer long enough to stall the
    /// login path's group commit); nothing when nothing is pending. On failure what was not
    /// written is put back, to be tried again with the next flush.
    pub fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let Ok(_one_at_a_time) = self.flushing.lock() else {
            return Err(StoreError::Backend("usage flush mutex poisoned".into()));
        };
        let (mut keys, mut entities): (Vec<_>, Vec<_>) = {
            let Ok(mut m) = self.memory.lock() else {
                return Err(StoreError::Backend("usage mutex poisoned".into()));
            };
            (
                m.pending_keys.drain().collect(),
                m.pending_entities.drain().map(|(_, u)| u).collect(),
            )
        };
        while !keys.is_empty() || !entities.is_empty() {
            let n_keys = keys.len().min(FLUSH_CHUNK_ROWS);
            let n_entities = entities.len().min(FLUSH_CHUNK_ROWS - n_keys);
            let chunk = UsageBatch {
                keys: keys.drain(..n_keys).collect(),
                entities: entities.drain(..n_entities).collect(),
            };
            self.writes.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = store.record_usage(&chunk) {
                keys.extend(chunk.keys);
                entities.extend(chunk.entities);
                self.put_back(keys, entities);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Returns unwritten uses to the pending batch (a newer pending use of the same key or
    /// action wins).
    fn put_back(&self, keys: Vec<(String, KeyLastUsed)>, entities: Vec<EntityUse>) {
        let Ok(mut m) = self.memory.lock() else {
            return;
        };
        for (id, used) in keys {
            m.pending_keys.entry(id).or_insert(used);
        }
        for u in entities {
            let key = (
                u.entity_id.clone(),
                static_service(&u.service),
                u.action.clone(),
            );
            m.pending_entities.entry(key).or_insert(u);
        }
    }

    /// Usage transactions written so far (each flush with something to write is one).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

/// The `'static` service name of a namespace this recorder wrote.
fn static_service(service: &str) -> &'static str {
    match service {
        "sts" => "sts",
        _ => "iam",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use tokengate_store::{AccessKey, KeyOwner, KeyStatus, SqliteStore, User};
    use tokengate_token::Secret;

    use super::*;
    use crate::action::Api;
    use crate::registry;

    fn caller(region: &str) -> Caller {
        Caller {
            principal: Principal::User {
                account: "000000000000".into(),
                path: "/".into(),
                name: "alice".into(),
                user_id: "AIDAALICE".into(),
            },
            access_key_id: "AKIAALICE".into(),
            session: None,
            request_mfa: None,
            region: region.into(),
        }
    }

    fn store() -> Arc<dyn Store> {
        let s = SqliteStore::open_in_memory(&Secret::new(vec![3; 32])).unwrap();
        s.create_user(&User {
            user_id: "AIDAALICE".into(),
            name: "alice".into(),
            path: "/".into(),
            created: 1,
        })
        .unwrap();
        s.create_access_key(
            &AccessKey {
                access_key_id: "AKIAALICE".into(),
                owner: KeyOwner::User("alice".into()),
                status: KeyStatus::Active,
                created: 1,
                secret: Secret::new(b"secret".to_vec()),
            },
            2,
        )
        .unwrap();
        Arc::new(s)
    }

    #[test]
    fn a_burst_is_one_write_and_the_granularity_decides_the_next() {
        let store = store();
        let recorder = UsageRecorder::new();
        let get_user = registry::lookup(Api::Iam, "GetUser").unwrap();
        let list_users = registry::lookup(Api::Iam, "ListUsers").unwrap();
        let t0 = 1_000_000;
        for i in 0..10_000 {
            recorder.note(&caller("us-east-1"), get_user, t0 + i / 100);
        }
        recorder.note(&caller("us-east-1"), list_users, t0);
        recorder.flush(store.as_ref()).unwrap();
        recorder.flush(store.as_ref()).unwrap();
        assert_eq!(recorder.writes(), 1);
        let uses = store.entity_usage(&["AIDAALICE".into()]).unwrap();
        assert_eq!(uses.len(), 2);
        assert!(uses.iter().all(|u| u.at == t0));

        // Within the granularity nothing is pending; past it, or from another region, the
        // key's use is.
        recorder.note(
            &caller("us-east-1"),
            get_user,
            t0 + KEY_GRANULARITY_SECS - 1,
        );
        recorder.flush(store.as_ref()).unwrap();
        assert_eq!(recorder.writes(), 1);
        recorder.note(&caller("eu-west-1"), get_user, t0 + 10);
        recorder.flush(store.as_ref()).unwrap();
        assert_eq!(recorder.writes(), 2);
        let used = store.access_key_last_used("AKIAALICE").unwrap().unwrap();
        assert_eq!(
            (used.service.as_str(), used.region.as_str()),
            ("iam", "eu-west-1")
        );
    }

    #[test]
    fn a_large_batch_is_written_in_chunks() {
        let store = store();
        let recorder = UsageRecorder::new();
        let get_user = registry::lookup(Api::Iam, "GetUser").unwrap();
        for i in 0..2_500 {
            let mut c = caller("us-east-1");
            c.access_key_id = format!("AKIAUNKNOWN{i}");
            c.principal = Principal::User {
                account: "000000000000".into(),
                path: "/".into(),
                name: format!("u{i}"),
                user_id: format!("AIDA{i}"),
            };
            recorder.note(&c, get_user, 10);
        }
        // 2 500 keys and 2 500 entity actions: 5 000 rows, 1 000 a transaction.
        recorder.flush(store.as_ref()).unwrap();
        assert_eq!(recorder.writes(), 5);
        assert_eq!(store.entity_usage(&["AIDA2499".into()]).unwrap().len(), 1);
    }

    #[test]
    fn an_aliased_action_is_recorded_as_the_action_it_is_authorized_as() {
        let store = store();
        let recorder = UsageRecorder::new();
        let spec = registry::lookup(Api::Sts, "GetSecurityKeyChallenge").unwrap();
        recorder.note(&caller("us-east-1"), spec, 5);
        recorder.flush(store.as_ref()).unwrap();
        let uses = store.entity_usage(&["AIDAALICE".into()]).unwrap();
        assert_eq!(uses[0].service, "sts");
        assert_eq!(uses[0].action, "GetSessionToken");
    }
}
