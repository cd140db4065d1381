-- PostgreSQL twin of ../0002_mfa_devices.sql (ADR 0006): same tables, PostgreSQL types.
CREATE TABLE mfa_device (
    serial        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('virtual', 'hardware')),
    -- NULL: unassigned; 'root': the root user; else an iam_user.user_id.
    owner         TEXT,
    enabled_at    BIGINT,
    created       BIGINT NOT NULL,
    sealed_seed   BYTEA NOT NULL,
    algorithm     TEXT NOT NULL,
    digits        BIGINT NOT NULL,
    period        BIGINT NOT NULL,
    last_step     BIGINT,
    drift         BIGINT NOT NULL DEFAULT 0,
    failures      BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    lockouts      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX mfa_device_owner ON mfa_device(owner);
