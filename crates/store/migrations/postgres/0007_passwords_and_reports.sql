-- PostgreSQL twin of ../0007_passwords_and_reports.sql (ADR 0006): same tables, PostgreSQL types.
-- Issue 12: the account password policy, login profiles (console passwords, as argon2id PHC
-- strings: never the password), the password history that PasswordReusePrevention reads,
-- the one stored credential report, and the last-used columns of access keys.

-- UpdateAccountPasswordPolicy: at most one row. NULL in max_age_days / reuse_prevention /
-- hard_expiry means "not set" (GetAccountPasswordPolicy then omits the member).
CREATE TABLE password_policy (
    id                     BIGINT PRIMARY KEY CHECK (id = 1),
    minimum_length         BIGINT NOT NULL CHECK (minimum_length BETWEEN 6 AND 128),
    require_symbols        BIGINT NOT NULL CHECK (require_symbols IN (0, 1)),
    require_numbers        BIGINT NOT NULL CHECK (require_numbers IN (0, 1)),
    require_uppercase      BIGINT NOT NULL CHECK (require_uppercase IN (0, 1)),
    require_lowercase      BIGINT NOT NULL CHECK (require_lowercase IN (0, 1)),
    allow_users_to_change  BIGINT NOT NULL CHECK (allow_users_to_change IN (0, 1)),
    max_age_days           BIGINT CHECK (max_age_days BETWEEN 1 AND 1095),
    reuse_prevention       BIGINT CHECK (reuse_prevention BETWEEN 1 AND 24),
    hard_expiry            BIGINT CHECK (hard_expiry IN (0, 1))
);

-- CreateLoginProfile. A user with a login profile cannot be deleted (DeleteConflict), as
-- in IAM, so no cascade.
CREATE TABLE login_profile (
    user_id               TEXT PRIMARY KEY REFERENCES iam_user(user_id),
    password_hash         TEXT NOT NULL,
    created               BIGINT NOT NULL,
    password_changed      BIGINT NOT NULL,
    reset_required        BIGINT NOT NULL CHECK (reset_required IN (0, 1)),
    last_used             BIGINT,
    max_session_duration  BIGINT
);

-- The hashes of a user's latest passwords, the current one included (newest seq last);
-- at most 24 (PasswordReusePrevention's maximum) are kept. They outlive the login profile
-- (a new one may not reuse them) but not the user.
CREATE TABLE password_history (
    user_id        TEXT NOT NULL REFERENCES iam_user(user_id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    password_hash  TEXT NOT NULL,
    changed        BIGINT NOT NULL,
    PRIMARY KEY (user_id, seq)
);

-- GenerateCredentialReport: AWS keeps one report per account.
CREATE TABLE credential_report (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generated  BIGINT NOT NULL,
    content    BYTEA NOT NULL
);

-- GetAccessKeyLastUsed and the credential report's access_key_N_last_used_* columns. NULL
-- until a use is recorded (Store::record_access_key_last_used).
ALTER TABLE access_key ADD COLUMN last_used_at BIGINT;
ALTER TABLE access_key ADD COLUMN last_used_service TEXT;
ALTER TABLE access_key ADD COLUMN last_used_region TEXT;
