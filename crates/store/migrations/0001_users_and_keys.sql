CREATE TABLE account (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    account_id  TEXT NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TABLE service_secret (
    name    TEXT PRIMARY KEY,
    sealed  BLOB NOT NULL
);
CREATE TABLE signing_key (
    kid           TEXT PRIMARY KEY,
    sealed_pkcs8  BLOB NOT NULL,
    created       INTEGER NOT NULL,
    retired       INTEGER
);
CREATE TABLE iam_user (
    user_id  TEXT PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE COLLATE NOCASE,
    path     TEXT NOT NULL,
    created  INTEGER NOT NULL
);
CREATE TABLE access_key (
    access_key_id  TEXT PRIMARY KEY,
    owner_user_id  TEXT REFERENCES iam_user(user_id),
    status         TEXT NOT NULL CHECK (status IN ('Active', 'Inactive')),
    created        INTEGER NOT NULL,
    sealed_secret  BLOB NOT NULL
);
CREATE INDEX access_key_owner ON access_key(owner_user_id);
