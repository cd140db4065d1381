-- PostgreSQL twin of ../0001_users_and_keys.sql (ADR 0006): same tables, PostgreSQL types.
CREATE TABLE account (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    account_id  TEXT NOT NULL,
    created     BIGINT NOT NULL
);
CREATE TABLE service_secret (
    name    TEXT PRIMARY KEY,
    sealed  BYTEA NOT NULL
);
CREATE TABLE signing_key (
    kid           TEXT PRIMARY KEY,
    sealed_pkcs8  BYTEA NOT NULL,
    created       BIGINT NOT NULL,
    retired       BIGINT
);
CREATE TABLE iam_user (
    user_id  TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    path     TEXT NOT NULL,
    created  BIGINT NOT NULL
);
CREATE TABLE access_key (
    access_key_id  TEXT PRIMARY KEY,
    owner_user_id  TEXT REFERENCES iam_user(user_id),
    status         TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created        BIGINT NOT NULL,
    sealed_secret  BYTEA NOT NULL
);
CREATE INDEX access_key_owner ON access_key(owner_user_id);
-- PostgreSQL: case-insensitive uniqueness (SQLite: COLLATE NOCASE).
CREATE UNIQUE INDEX iam_user_name_lower ON iam_user (lower(name));
-- PostgreSQL only (ADR 0006): the IAM generation, bumped by every admin write in its own
-- transaction, so that every replica sees an IAM change before its next request.
CREATE TABLE iam_generation (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    value  BIGINT NOT NULL
);
INSERT INTO iam_generation (id, value) VALUES (1, 0);
