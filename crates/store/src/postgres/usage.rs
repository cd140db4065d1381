//! Usage (access-key last use, access advisor), advisor jobs, the account alias and the
//! audit trail. None of it is IAM state: no generation bump, no lock beyond the row.

use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;

use super::backend;
use crate::{
    AdvisorJob, AuditAttribute, AuditEvent, AuditPage, AuditQuery, Entity, EntityUse, KeyLastUsed,
    StoreError, UsageBatch,
};

const KEY_LAST_USED: &str = "UPDATE access_key
     SET last_used_at = $2, last_used_service = $3, last_used_region = $4
     WHERE access_key_id = $1 AND (last_used_at IS NULL OR last_used_at < $2)";

/// Later uses win, whichever replica flushes first (the `WHERE` keeps the newest).
pub(super) async fn record_usage(c: &mut Object, batch: &UsageBatch) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let keys = tx.prepare_cached(KEY_LAST_USED).await.map_err(backend)?;
    for (id, u) in &batch.keys {
        tx.execute(&keys, &[id, &u.at, &u.service, &u.region])
            .await
            .map_err(backend)?;
    }
    let entities = tx
        .prepare_cached(
            "INSERT INTO entity_usage (entity_id, entity_arn, service, action, last_at, region)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (entity_id, service, action) DO UPDATE
             SET entity_arn = excluded.entity_arn, last_at = excluded.last_at,
                 region = excluded.region
             WHERE excluded.last_at > entity_usage.last_at",
        )
        .await
        .map_err(backend)?;
    for u in &batch.entities {
        tx.execute(
            &entities,
            &[
                &u.entity_id,
                &u.entity_arn,
                &u.service,
                &u.action,
                &u.at,
                &u.region,
            ],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn record_access_key_last_used(
    c: &mut Object,
    uses: &[(String, KeyLastUsed)],
) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let stmt = tx.prepare_cached(KEY_LAST_USED).await.map_err(backend)?;
    for (id, u) in uses {
        tx.execute(&stmt, &[id, &u.at, &u.service, &u.region])
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn access_key_last_used(
    c: &Object,
    access_key_id: &str,
) -> Result<Option<KeyLastUsed>, StoreError> {
    Ok(c.query_opt(
        "SELECT last_used_at, last_used_service, last_used_region FROM access_key
             WHERE access_key_id = $1 AND last_used_at IS NOT NULL",
        &[&access_key_id],
    )
    .await
    .map_err(backend)?
    .map(|r| KeyLastUsed {
        at: r.get(0),
        service: r.get::<_, Option<String>>(1).unwrap_or_default(),
        region: r.get::<_, Option<String>>(2).unwrap_or_default(),
    }))
}

/// In the order of the ids given, each entity's rows by service and action.
pub(super) async fn entity_usage(
    c: &Object,
    entity_ids: &[String],
) -> Result<Vec<EntityUse>, StoreError> {
    let rows = c
        .query(
            "SELECT u.entity_id, u.entity_arn, u.service, u.action, u.last_at, u.region
             FROM unnest($1::text[]) WITH ORDINALITY AS ids(id, n)
             JOIN entity_usage u ON u.entity_id = ids.id
             ORDER BY ids.n, u.service, u.action",
            &[&entity_ids],
        )
        .await
        .map_err(backend)?;
    Ok(rows
        .iter()
        .map(|r| EntityUse {
            entity_id: r.get(0),
            entity_arn: r.get(1),
            service: r.get(2),
            action: r.get(3),
            at: r.get(4),
            region: r.get(5),
        })
        .collect())
}

pub(super) async fn put_advisor_job(
    c: &mut Object,
    job: &AdvisorJob,
    expire_before: i64,
) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    tx.execute(
        "DELETE FROM advisor_job WHERE created < $1",
        &[&expire_before],
    )
    .await
    .map_err(backend)?;
    tx.execute(
        "INSERT INTO advisor_job (job_id, requester, created, completed, granularity, result)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &job.job_id,
            &job.requester,
            &job.created,
            &job.completed,
            &job.granularity,
            &job.result,
        ],
    )
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)
}

pub(super) async fn advisor_job(
    c: &Object,
    job_id: &str,
) -> Result<Option<AdvisorJob>, StoreError> {
    Ok(c.query_opt(
        "SELECT job_id, requester, created, completed, granularity, result
             FROM advisor_job WHERE job_id = $1",
        &[&job_id],
    )
    .await
    .map_err(backend)?
    .map(|r| AdvisorJob {
        job_id: r.get(0),
        requester: r.get(1),
        created: r.get(2),
        completed: r.get(3),
        granularity: r.get(4),
        result: r.get(5),
    }))
}

pub(super) async fn account_alias(c: &Object) -> Result<Option<String>, StoreError> {
    Ok(
        c.query_opt("SELECT alias FROM account_alias WHERE id = 1", &[])
            .await
            .map_err(backend)?
            .map(|r| r.get(0)),
    )
}

pub(super) async fn set_account_alias(c: &Object, alias: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO account_alias (id, alias) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET alias = excluded.alias",
        &[&alias],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

pub(super) async fn delete_account_alias(c: &Object, alias: &str) -> Result<(), StoreError> {
    let n = c
        .execute(
            "DELETE FROM account_alias WHERE id = 1 AND alias = $1",
            &[&alias],
        )
        .await
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::NotFound(Entity::AccountAlias));
    }
    Ok(())
}

/// Appends in one transaction; `seq` comes from the identity column, so events of several
/// replicas interleave in commit order of their sequence numbers.
pub(super) async fn append_audit_events(
    c: &mut Object,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    let event = tx
        .prepare_cached(
            "INSERT INTO audit_event (event_id, event_time, event_name, event_source,
                 username, access_key_id, read_only, resource_type, resource_name)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
        )
        .await
        .map_err(backend)?;
    let record = tx
        .prepare_cached("INSERT INTO audit_record (seq, record) VALUES ($1, $2)")
        .await
        .map_err(backend)?;
    for e in events {
        let seq: i64 = tx
            .query_one(
                &event,
                &[
                    &e.event_id,
                    &e.event_time,
                    &e.event_name,
                    &e.event_source,
                    &e.username,
                    &e.access_key_id,
                    &i64::from(e.read_only),
                    &e.resource_type,
                    &e.resource_name,
                ],
            )
            .await
            .map_err(backend)?
            .get(0);
        tx.execute(&record, &[&seq, &e.record])
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

pub(super) async fn audit_events(c: &Object, query: &AuditQuery) -> Result<AuditPage, StoreError> {
    let mut sql = String::from(
        "SELECT e.seq, e.event_id, e.event_time, e.event_name, e.event_source, e.username,
                e.access_key_id, e.read_only, e.resource_type, e.resource_name, r.record
         FROM audit_event e JOIN audit_record r ON r.seq = e.seq WHERE true",
    );
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut and = |column: &str, value: Box<dyn ToSql + Sync + Send>| {
        args.push(value);
        sql.push_str(&format!(" AND {column} ${}", args.len()));
    };
    match &query.attribute {
        None => {}
        Some(AuditAttribute::EventId(v)) => and("e.event_id =", Box::new(v.clone())),
        Some(AuditAttribute::EventName(v)) => and("e.event_name =", Box::new(v.clone())),
        Some(AuditAttribute::ReadOnly(v)) => and("e.read_only =", Box::new(i64::from(*v))),
        Some(AuditAttribute::Username(v)) => and("e.username =", Box::new(v.clone())),
        Some(AuditAttribute::ResourceType(v)) => and("e.resource_type =", Box::new(v.clone())),
        Some(AuditAttribute::ResourceName(v)) => and("e.resource_name =", Box::new(v.clone())),
        Some(AuditAttribute::EventSource(v)) => and("e.event_source =", Box::new(v.clone())),
        Some(AuditAttribute::AccessKeyId(v)) => and("e.access_key_id =", Box::new(v.clone())),
    }
    if let Some(start) = query.start {
        and("e.event_time >=", Box::new(start));
    }
    if let Some(end) = query.end {
        and("e.event_time <=", Box::new(end));
    }
    if let Some(seq) = query.before_seq {
        and("e.seq <", Box::new(seq));
    }
    // One more than asked: whether a next page exists.
    let limit = i64::try_from(query.limit.saturating_add(1)).map_err(backend)?;
    args.push(Box::new(limit));
    sql.push_str(&format!(" ORDER BY e.seq DESC LIMIT ${}", args.len()));
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = c.query(&sql, &params).await.map_err(backend)?;
    let mut events: Vec<(i64, AuditEvent)> = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                AuditEvent {
                    event_id: r.get(1),
                    event_time: r.get(2),
                    event_name: r.get(3),
                    event_source: r.get(4),
                    username: r.get(5),
                    access_key_id: r.get(6),
                    read_only: r.get::<_, i64>(7) != 0,
                    resource_type: r.get(8),
                    resource_name: r.get(9),
                    record: r.get(10),
                },
            )
        })
        .collect();
    let more = events.len() > query.limit;
    events.truncate(query.limit);
    Ok(AuditPage { events, more })
}

/// Deletes events older than `before` (time grows with `seq`), records first.
pub(super) async fn purge_audit_events(c: &mut Object, before: i64) -> Result<usize, StoreError> {
    let tx = c.transaction().await.map_err(backend)?;
    tx.execute(
        "DELETE FROM audit_record WHERE seq IN
             (SELECT seq FROM audit_event WHERE event_time < $1)",
        &[&before],
    )
    .await
    .map_err(backend)?;
    let n = tx
        .execute("DELETE FROM audit_event WHERE event_time < $1", &[&before])
        .await
        .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    usize::try_from(n).map_err(backend)
}
