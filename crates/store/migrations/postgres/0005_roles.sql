-- PostgreSQL twin of ../0005_roles.sql (ADR 0006): same tables, PostgreSQL types.
CREATE TABLE iam_role (
    role_id               TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    path                  TEXT NOT NULL,
    created               BIGINT NOT NULL,
    -- The trust policy, as given (validated by the caller).
    assume_role_policy    TEXT NOT NULL,
    description           TEXT NOT NULL,
    -- Seconds, 3600..43200 (checked by the caller).
    max_session_duration  BIGINT NOT NULL,
    -- When the role was last assumed, seconds since the Unix epoch.
    last_used             BIGINT
);
-- Attachments name the policy by ARN: AWS managed policies have no managed_policy row.
CREATE TABLE role_attached_policy (
    role_id     TEXT NOT NULL REFERENCES iam_role(role_id),
    policy_arn  TEXT NOT NULL,
    PRIMARY KEY (role_id, policy_arn)
);
CREATE INDEX role_attached_policy_arn ON role_attached_policy(policy_arn);
CREATE TABLE role_inline_policy (
    role_id   TEXT NOT NULL REFERENCES iam_role(role_id),
    name      TEXT NOT NULL,
    document  TEXT NOT NULL,
    size      BIGINT NOT NULL
);
CREATE TABLE role_permissions_boundary (
    role_id     TEXT PRIMARY KEY REFERENCES iam_role(role_id) ON DELETE CASCADE,
    policy_arn  TEXT NOT NULL
);
CREATE INDEX role_permissions_boundary_arn ON role_permissions_boundary(policy_arn);
CREATE TABLE role_tag (
    role_id    TEXT NOT NULL REFERENCES iam_role(role_id) ON DELETE CASCADE,
    tag_key    TEXT NOT NULL,
    tag_value  TEXT NOT NULL
);
-- PostgreSQL: case-insensitive uniqueness (SQLite: COLLATE NOCASE).
CREATE UNIQUE INDEX iam_role_name_lower ON iam_role (lower(name));
CREATE UNIQUE INDEX role_inline_policy_key ON role_inline_policy (role_id, lower(name));
CREATE UNIQUE INDEX role_tag_key ON role_tag (role_id, lower(tag_key));
