-- PostgreSQL twin of ../0006_role_usage_and_trust_ids.sql (ADR 0006): same tables, PostgreSQL types.
-- RoleLastUsed.Region: the region the last AssumeRole of the role was signed for.
ALTER TABLE iam_role ADD COLUMN last_used_region TEXT;
-- The unique ids of the users and roles the trust policy named when it was stored, one
-- `ARN<TAB>UNIQUE-ID` per line (policy.md §8.5).
ALTER TABLE iam_role ADD COLUMN trust_principals TEXT NOT NULL DEFAULT '';
