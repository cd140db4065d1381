-- Issue 12 point 5: the audit trail (docs/audit.md). One CloudTrail-format event per decided
-- request, append-only. `seq` orders events as they were appended (time grows with it) and
-- is the position a NextToken names. Events older than the retention are deleted by the
-- server's audit writer.
--
-- Every index is paid for on the login path's write (the rows ride in the login group
-- commit), so only append-friendly indexes exist: the event time and the event name (few
-- distinct values). An index on user name or access key id puts each event on a different
-- leaf page — one 4 KiB WAL page per event — and cost ~13% of the MFA login CPU
-- (docs/status.md). Lookups by the other attributes walk `audit_event` newest first, which
-- is also the order they answer in; the full records live apart in `audit_record`, so that
-- walk reads ~100-byte rows and fetches only the records it returns.
CREATE TABLE audit_event (
    seq            INTEGER PRIMARY KEY,
    event_id       TEXT NOT NULL,
    event_time     INTEGER NOT NULL,
    event_name     TEXT NOT NULL,
    event_source   TEXT NOT NULL,
    username       TEXT,
    access_key_id  TEXT,
    read_only      INTEGER NOT NULL CHECK (read_only IN (0, 1)),
    resource_type  TEXT,
    resource_name  TEXT
);
CREATE INDEX audit_event_time ON audit_event (event_time);
CREATE INDEX audit_event_name ON audit_event (event_name, seq);

-- The event JSON (secrets already left out by the server), by the event's `seq`.
CREATE TABLE audit_record (
    seq     INTEGER PRIMARY KEY,
    record  TEXT NOT NULL
);
