CREATE TABLE mfa_device (
    serial        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('virtual', 'hardware')),
    -- NULL: unassigned; 'root': the root user; else an iam_user.user_id.
    owner         TEXT,
    enabled_at    INTEGER,
    created       INTEGER NOT NULL,
    sealed_seed   BLOB NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        INTEGER NOT NULL,
    period        INTEGER NOT NULL,
    last_step     INTEGER,
    drift         INTEGER NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    lockouts      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX mfa_device_owner ON mfa_device(owner);
