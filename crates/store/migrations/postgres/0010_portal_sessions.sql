-- PostgreSQL twin of ../0010_portal_sessions.sql (ADR 0006): same tables, PostgreSQL types.
-- Issue 13: sign-in portal sessions and the sign-in throttle (docs/portal.md).
--
-- A session is found by the SHA-256 of its id; the id itself is only ever in the browser's
-- cookie. `stage` is what the session waits for: 'password' (password verified, but it must
-- be changed first), 'mfa' (second factor pending) or 'signed_in'. A user's sessions go with the user.
CREATE TABLE portal_session (
    id_hash     BYTEA PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES iam_user(user_id) ON DELETE CASCADE,
    stage       TEXT NOT NULL CHECK (stage IN ('password', 'mfa', 'signed_in')),
    mfa_method  TEXT,
    mfa_device  TEXT,
    mfa_time    BIGINT,
    created     BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    expires     BIGINT NOT NULL
);
CREATE INDEX portal_session_expires ON portal_session (expires);

-- Failed password sign-ins, one row each, by lower-cased user name (existing or not, so
-- the throttle reveals nothing); rows older than the window are pruned on insert.
CREATE TABLE portal_signin_failure (
    name  TEXT NOT NULL,
    at    BIGINT NOT NULL
);
CREATE INDEX portal_signin_failure_name ON portal_signin_failure (name, at);
