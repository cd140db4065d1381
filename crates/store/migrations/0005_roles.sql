CREATE TABLE iam_role (
    role_id               TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    path                  TEXT NOT NULL,
    created               BIGINT NOT NULL,
    -- The trust policy, as given (validated by the caller).
    assume_role_policy    TEXT NOT NULL,
    description           TEXT NOT NULL,
    -- Seconds, 3600..43200 (checked by the caller).
    max_session_duration  INTEGER NOT NULL,
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
    name      TEXT NOT NULL COLLATE NOCASE,
    document  TEXT NOT NULL,
    size      INTEGER NOT NULL,
    PRIMARY KEY (role_id, name)
);
CREATE TABLE role_permissions_boundary (
    role_id     TEXT PRIMARY KEY REFERENCES iam_role(role_id) ON DELETE CASCADE,
    policy_arn  TEXT NOT NULL
);
CREATE INDEX role_permissions_boundary_arn ON role_permissions_boundary(policy_arn);
CREATE TABLE role_tag (
    role_id    TEXT NOT NULL REFERENCES iam_role(role_id) ON DELETE CASCADE,
    tag_key    TEXT NOT NULL COLLATE NOCASE,
    tag_value  TEXT NOT NULL,
    PRIMARY KEY (role_id, tag_key)
);
