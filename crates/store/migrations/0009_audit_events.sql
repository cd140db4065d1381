-- Issue 12 point 5: the audit trail. One row per CloudTrail-format event, append-only; the
-- indexed columns are LookupEvents' attributes (portal.md §4.4), `record` is the full event
-- JSON (secrets already redacted by the server). `seq` orders events as they were appended
-- and is the position a NextToken names. Events older than the retention are deleted by
-- the server's audit writer.
CREATE TABLE audit_event (
    seq            INTEGER PRIMARY KEY,
    event_id       TEXT NOT NULL UNIQUE,
    event_time     INTEGER NOT NULL,
    event_name     TEXT NOT NULL,
    event_source   TEXT NOT NULL,
    username       TEXT,
    access_key_id  TEXT,
    read_only      INTEGER NOT NULL CHECK (read_only IN (0, 1)),
    resource_type  TEXT,
    resource_name  TEXT,
    record         TEXT NOT NULL
);
CREATE INDEX audit_event_time ON audit_event (event_time);
CREATE INDEX audit_event_username ON audit_event (username, seq);
CREATE INDEX audit_event_name ON audit_event (event_name, seq);
CREATE INDEX audit_event_access_key ON audit_event (access_key_id, seq);
CREATE INDEX audit_event_resource ON audit_event (resource_name, seq);
