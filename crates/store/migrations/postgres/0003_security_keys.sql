-- PostgreSQL twin of ../0003_security_keys.sql (ADR 0006): same tables, PostgreSQL types.
CREATE TABLE security_key (
    serial              TEXT PRIMARY KEY,
    -- 'root': the root user; else an iam_user.user_id (as mfa_device.owner).
    owner               TEXT NOT NULL,
    name                TEXT NOT NULL,
    protocol            TEXT NOT NULL CHECK (protocol IN ('fido2', 'u2f')),
    credential_id       BYTEA NOT NULL UNIQUE,
    public_key          BYTEA NOT NULL,
    sign_count          BIGINT NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible     BIGINT NOT NULL CHECK (backup_eligible IN (0, 1)),
    aaguid              BYTEA NOT NULL,
    attestation_format  TEXT NOT NULL,
    attestation         TEXT NOT NULL,
    user_handle         BYTEA NOT NULL,
    enabled_at          BIGINT NOT NULL,
    last_used           BIGINT,
    possibly_cloned_at  BIGINT,
    failures            BIGINT NOT NULL DEFAULT 0,
    locked_until        BIGINT,
    lockouts            BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX security_key_owner ON security_key(owner);
CREATE TABLE challenge (
    id           TEXT PRIMARY KEY,
    ceremony     TEXT NOT NULL CHECK (ceremony IN ('register', 'authenticate')),
    requester    TEXT NOT NULL,
    owner        TEXT NOT NULL,
    serial       TEXT NOT NULL,
    protocol     TEXT NOT NULL CHECK (protocol IN ('fido2', 'u2f')),
    device_name  TEXT NOT NULL,
    challenge    BYTEA NOT NULL,
    created      BIGINT NOT NULL,
    expires      BIGINT NOT NULL
);
CREATE INDEX challenge_expires ON challenge(expires);
CREATE INDEX challenge_requester ON challenge(requester);
