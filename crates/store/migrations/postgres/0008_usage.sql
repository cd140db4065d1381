-- PostgreSQL twin of ../0008_usage.sql (ADR 0006): same tables, PostgreSQL types.
-- Issue 12, points 2 and 3: what each principal used (access advisor), the access-advisor
-- jobs, and the account alias. Access-key last use lives in access_key (0007).

-- The last recorded attempt of one entity (a user or a role, by its unique id) at one
-- action (`iam:GetUser`, `sts:GetSessionToken`). Written in batches by the usage recorder
-- (at most one row change per entity and action per granularity span), never on the
-- request path. A deleted entity's rows stay: ids are unique and never reused, and every
-- read starts from a live entity's id.
CREATE TABLE entity_usage (
    entity_id   TEXT NOT NULL,
    entity_arn  TEXT NOT NULL,
    service     TEXT NOT NULL,
    action      TEXT NOT NULL,
    last_at     BIGINT NOT NULL,
    region      TEXT NOT NULL,
    PRIMARY KEY (entity_id, service, action)
);

-- GenerateServiceLastAccessedDetails: the job is computed when it is generated (so it is
-- COMPLETED at once) and its result kept as the server serialized it.
CREATE TABLE advisor_job (
    job_id      TEXT PRIMARY KEY,
    requester   TEXT NOT NULL,
    created     BIGINT NOT NULL,
    completed   BIGINT NOT NULL,
    granularity TEXT NOT NULL,
    result      TEXT NOT NULL
);

-- CreateAccountAlias: one alias per account.
CREATE TABLE account_alias (
    id     BIGINT PRIMARY KEY CHECK (id = 1),
    alias  TEXT NOT NULL
);
