//! The audit trail's SQL: an append-only table, paged newest first by position.

use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};

use super::group_commit::HotWrite;
use super::{SqliteStore, backend};
use crate::{AuditAttribute, AuditEvent, AuditPage, AuditQuery, StoreError};

pub(super) fn append_audit_events(
    store: &SqliteStore,
    events: Vec<AuditEvent>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    // Through the group commit when there is one: the login path's writer thread then
    // appends them in its next transaction, so audit never contends with logins for
    // SQLite's write lock and shares their fsync. Audit rows are no IAM state either way.
    match &store.committer {
        Some(committer) => committer.submit(HotWrite::AuditAppend(events)).map(|_| ()),
        None => store.write_login_state(|tx, _| insert_events(tx, &events)),
    }
}

/// Inserts `events` in the caller's transaction.
pub(super) fn insert_events(tx: &Connection, events: &[AuditEvent]) -> Result<(), StoreError> {
    let mut event = tx
        .prepare_cached(
            "INSERT INTO audit_event (event_id, event_time, event_name, event_source,
                 username, access_key_id, read_only, resource_type, resource_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(backend)?;
    let mut record = tx
        .prepare_cached("INSERT INTO audit_record (seq, record) VALUES (?1, ?2)")
        .map_err(backend)?;
    for e in events {
        event
            .execute(params![
                e.event_id,
                e.event_time,
                e.event_name,
                e.event_source,
                e.username,
                e.access_key_id,
                e.read_only,
                e.resource_type,
                e.resource_name,
            ])
            .map_err(backend)?;
        record
            .execute(params![tx.last_insert_rowid(), e.record])
            .map_err(backend)?;
    }
    Ok(())
}

pub(super) fn audit_events(
    store: &SqliteStore,
    query: &AuditQuery,
) -> Result<AuditPage, StoreError> {
    let mut sql = String::from(
        "SELECT e.seq, e.event_id, e.event_time, e.event_name, e.event_source, e.username,
                e.access_key_id, e.read_only, e.resource_type, e.resource_name, r.record
         FROM audit_event e JOIN audit_record r ON r.seq = e.seq WHERE 1 = 1",
    );
    let mut args: Vec<Value> = Vec::new();
    let mut and = |clause: &str, value: Value| {
        sql.push_str(" AND ");
        sql.push_str(clause);
        args.push(value);
    };
    match &query.attribute {
        None => {}
        Some(AuditAttribute::EventId(v)) => and("e.event_id = ?", v.clone().into()),
        Some(AuditAttribute::EventName(v)) => and("e.event_name = ?", v.clone().into()),
        Some(AuditAttribute::ReadOnly(v)) => and("e.read_only = ?", i64::from(*v).into()),
        Some(AuditAttribute::Username(v)) => and("e.username = ?", v.clone().into()),
        Some(AuditAttribute::ResourceType(v)) => and("e.resource_type = ?", v.clone().into()),
        Some(AuditAttribute::ResourceName(v)) => and("e.resource_name = ?", v.clone().into()),
        Some(AuditAttribute::EventSource(v)) => and("e.event_source = ?", v.clone().into()),
        Some(AuditAttribute::AccessKeyId(v)) => and("e.access_key_id = ?", v.clone().into()),
    }
    if let Some(start) = query.start {
        and("e.event_time >= ?", start.into());
    }
    if let Some(end) = query.end {
        and("e.event_time <= ?", end.into());
    }
    if let Some(seq) = query.before_seq {
        and("e.seq < ?", seq.into());
    }
    sql.push_str(" ORDER BY e.seq DESC LIMIT ?");
    // One more than asked: whether a next page exists.
    let limit = i64::try_from(query.limit.saturating_add(1)).map_err(backend)?;
    args.push(limit.into());
    store.read_tx(|tx| {
        let mut stmt = tx.prepare(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    AuditEvent {
                        event_id: r.get(1)?,
                        event_time: r.get(2)?,
                        event_name: r.get(3)?,
                        event_source: r.get(4)?,
                        username: r.get(5)?,
                        access_key_id: r.get(6)?,
                        read_only: r.get(7)?,
                        resource_type: r.get(8)?,
                        resource_name: r.get(9)?,
                        record: r.get(10)?,
                    },
                ))
            })
            .map_err(backend)?;
        let mut events = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
        let more = events.len() > query.limit;
        events.truncate(query.limit);
        Ok(AuditPage { events, more })
    })
}

/// Rows deleted per transaction by the retention, so that the write lock the login path
/// needs is never held for long.
const PURGE_CHUNK: i64 = 5_000;

pub(super) fn purge_audit_events(store: &SqliteStore, before: i64) -> Result<usize, StoreError> {
    // Time grows with `seq` (events are appended as they are decided): the first event at
    // or after `before` bounds the rows to delete. Found on a reader, walking only the old
    // rows; with none that new, every row is old.
    let cutoff: Option<i64> = store.read_tx(|tx| {
        tx.query_row(
            "SELECT COALESCE(
                 (SELECT seq FROM audit_event WHERE event_time >= ?1 ORDER BY seq LIMIT 1),
                 (SELECT MAX(seq) + 1 FROM audit_event))",
            [before],
            |r| r.get(0),
        )
        .map_err(backend)
    })?;
    let Some(cutoff) = cutoff else {
        return Ok(0);
    };
    let mut deleted = 0;
    loop {
        let n = store.write_login_state(|tx, _| {
            // The oldest chunk: `seq` below the cut, from the smallest left.
            let last: Option<i64> = tx
                .query_row(
                    "SELECT MAX(seq) FROM (SELECT seq FROM audit_event WHERE seq < ?1
                         ORDER BY seq LIMIT ?2)",
                    [cutoff, PURGE_CHUNK],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let Some(last) = last else { return Ok(0) };
            tx.execute("DELETE FROM audit_record WHERE seq <= ?1", [last])
                .map_err(backend)?;
            tx.execute("DELETE FROM audit_event WHERE seq <= ?1", [last])
                .map_err(backend)
        })?;
        deleted += n;
        if i64::try_from(n).unwrap_or(0) < PURGE_CHUNK {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use crate::sqlite::SqliteStore;
    use crate::sqlite::fixtures::*;
    use crate::{AuditAttribute, AuditEvent, AuditQuery, Store};

    fn event(n: i64, user: &str) -> AuditEvent {
        AuditEvent {
            event_id: format!("id-{n}"),
            event_time: 1000 + n,
            event_name: if n % 2 == 0 {
                "GetUser"
            } else {
                "GetSessionToken"
            }
            .into(),
            event_source: "iam.amazonaws.com".into(),
            username: Some(user.into()),
            access_key_id: Some("AKIAEXAMPLE".into()),
            read_only: n % 2 == 0,
            resource_type: None,
            resource_name: None,
            record: format!("{{\"n\":{n}}}"),
        }
    }

    #[test]
    fn pages_newest_first_with_filters_and_purge() {
        let s = SqliteStore::open_in_memory(&master()).unwrap();
        let generation = s.iam_generation();
        let events: Vec<_> = (0..10)
            .map(|n| event(n, if n < 6 { "alice" } else { "bob" }))
            .collect();
        s.append_audit_events(events).unwrap();
        assert_eq!(s.iam_generation(), generation, "audit is no IAM change");

        let mut query = AuditQuery {
            attribute: Some(AuditAttribute::Username("alice".into())),
            limit: 4,
            ..AuditQuery::default()
        };
        let first = s.audit_events(&query).unwrap();
        let ids: Vec<_> = first
            .events
            .iter()
            .map(|(_, e)| e.event_id.as_str())
            .collect();
        assert_eq!(ids, ["id-5", "id-4", "id-3", "id-2"]);
        assert!(first.more);
        query.before_seq = Some(first.events[3].0);
        let second = s.audit_events(&query).unwrap();
        let ids: Vec<_> = second
            .events
            .iter()
            .map(|(_, e)| e.event_id.as_str())
            .collect();
        assert_eq!(ids, ["id-1", "id-0"]);
        assert!(!second.more);

        let read_only = s
            .audit_events(&AuditQuery {
                attribute: Some(AuditAttribute::ReadOnly(true)),
                start: Some(1004),
                end: Some(1008),
                limit: 50,
                ..AuditQuery::default()
            })
            .unwrap();
        let ids: Vec<_> = read_only
            .events
            .iter()
            .map(|(_, e)| e.event_id.as_str())
            .collect();
        assert_eq!(ids, ["id-8", "id-6", "id-4"]);

        assert_eq!(s.purge_audit_events(1005).unwrap(), 5);
        let all = s
            .audit_events(&AuditQuery {
                limit: 50,
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(all.events.len(), 5);
        assert_eq!(all.events[4].1.record, "{\"n\":5}");
    }

    #[test]
    fn a_file_store_appends_through_the_group_commit_and_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        {
            let s = SqliteStore::open(&path, &master()).unwrap();
            let generation = s.iam_generation();
            s.append_audit_events((0..300).map(|n| event(n, "carol")).collect())
                .unwrap();
            assert_eq!(s.iam_generation(), generation);
            let page = s
                .audit_events(&AuditQuery {
                    attribute: Some(AuditAttribute::Username("carol".into())),
                    limit: 50,
                    ..AuditQuery::default()
                })
                .unwrap();
            assert_eq!(page.events.len(), 50);
            assert!(page.more);
        }
        let again = SqliteStore::open(&path, &master()).unwrap();
        assert_eq!(again.purge_audit_events(1000 + 100).unwrap(), 100);
        assert_eq!(again.purge_audit_events(1000 + 100).unwrap(), 0);
        // Everything older than every event: all of them.
        assert_eq!(again.purge_audit_events(i64::MAX).unwrap(), 200);
    }
}
