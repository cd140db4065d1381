-- PostgreSQL twin of ../0004_groups_and_policies.sql (ADR 0006): same tables, PostgreSQL types.
CREATE TABLE iam_group (
    group_id  TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    path      TEXT NOT NULL,
    created   BIGINT NOT NULL
);
CREATE TABLE group_member (
    group_id  TEXT NOT NULL REFERENCES iam_group(group_id),
    user_id   TEXT NOT NULL REFERENCES iam_user(user_id),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_member_user ON group_member(user_id);
CREATE TABLE managed_policy (
    policy_id        TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    path             TEXT NOT NULL,
    arn              TEXT NOT NULL UNIQUE,
    description      TEXT NOT NULL,
    default_version  TEXT NOT NULL,
    -- The number of the next version to create: version ids are never reused.
    next_version     BIGINT NOT NULL,
    created          BIGINT NOT NULL,
    updated          BIGINT NOT NULL
);
CREATE TABLE policy_version (
    policy_id   TEXT NOT NULL REFERENCES managed_policy(policy_id) ON DELETE CASCADE,
    version_id  TEXT NOT NULL,
    number      BIGINT NOT NULL,
    document    TEXT NOT NULL,
    created     BIGINT NOT NULL,
    PRIMARY KEY (policy_id, version_id)
);
-- Attachments name the policy by ARN: AWS managed policies have no managed_policy row.
CREATE TABLE user_attached_policy (
    user_id     TEXT NOT NULL REFERENCES iam_user(user_id),
    policy_arn  TEXT NOT NULL,
    PRIMARY KEY (user_id, policy_arn)
);
CREATE INDEX user_attached_policy_arn ON user_attached_policy(policy_arn);
CREATE TABLE group_attached_policy (
    group_id    TEXT NOT NULL REFERENCES iam_group(group_id),
    policy_arn  TEXT NOT NULL,
    PRIMARY KEY (group_id, policy_arn)
);
CREATE INDEX group_attached_policy_arn ON group_attached_policy(policy_arn);
CREATE TABLE user_inline_policy (
    user_id   TEXT NOT NULL REFERENCES iam_user(user_id),
    name      TEXT NOT NULL,
    document  TEXT NOT NULL,
    size      BIGINT NOT NULL
);
CREATE TABLE group_inline_policy (
    group_id  TEXT NOT NULL REFERENCES iam_group(group_id),
    name      TEXT NOT NULL,
    document  TEXT NOT NULL,
    size      BIGINT NOT NULL
);
CREATE TABLE user_permissions_boundary (
    user_id     TEXT PRIMARY KEY REFERENCES iam_user(user_id) ON DELETE CASCADE,
    policy_arn  TEXT NOT NULL
);
CREATE INDEX user_permissions_boundary_arn ON user_permissions_boundary(policy_arn);
CREATE TABLE user_tag (
    user_id    TEXT NOT NULL REFERENCES iam_user(user_id) ON DELETE CASCADE,
    tag_key    TEXT NOT NULL,
    tag_value  TEXT NOT NULL
);
CREATE TABLE policy_tag (
    policy_id  TEXT NOT NULL REFERENCES managed_policy(policy_id) ON DELETE CASCADE,
    tag_key    TEXT NOT NULL,
    tag_value  TEXT NOT NULL
);
-- PostgreSQL: case-insensitive uniqueness (SQLite: COLLATE NOCASE).
CREATE UNIQUE INDEX iam_group_name_lower ON iam_group (lower(name));
CREATE UNIQUE INDEX managed_policy_name_lower ON managed_policy (lower(name));
CREATE UNIQUE INDEX user_inline_policy_key ON user_inline_policy (user_id, lower(name));
CREATE UNIQUE INDEX group_inline_policy_key ON group_inline_policy (group_id, lower(name));
CREATE UNIQUE INDEX user_tag_key ON user_tag (user_id, lower(tag_key));
CREATE UNIQUE INDEX policy_tag_key ON policy_tag (policy_id, lower(tag_key));
