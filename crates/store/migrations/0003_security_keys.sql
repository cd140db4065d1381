CREATE TABLE security_key (
    serial              TEXT PRIMARY KEY,
    -- 'root': the root user; else an iam_user.user_id (as mfa_device.owner).
    owner               TEXT NOT NULL,
    name                TEXT NOT NULL,
    protocol            TEXT NOT NULL CHECK (protocol IN ('fido2', 'u2f')),
    credential_id       BLOB NOT NULL UNIQUE,
    public_key          BLOB NOT NULL,
    sign_count          INTEGER NOT NULL CHECK (sign_count BETWEEN 0 AND 4294967295),
    backup_eligible     INTEGER NOT NULL CHECK (backup_eligible IN (0, 1)),
    aaguid              BLOB NOT NULL,
    attestation_format  TEXT NOT NULL,
    attestation         TEXT NOT NULL,
    user_handle         BLOB NOT NULL,
    enabled_at          INTEGER NOT NULL,
    last_used           INTEGER,
    possibly_cloned_at  INTEGER,
    failures            INTEGER NOT NULL DEFAULT 0,
    locked_until        INTEGER,
    lockouts            INTEGER NOT NULL DEFAULT 0
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
    challenge    BLOB NOT NULL,
    created      INTEGER NOT NULL,
    expires      INTEGER NOT NULL
);
CREATE INDEX challenge_expires ON challenge(expires);
CREATE INDEX challenge_requester ON challenge(requester);
