-- Access keys in creation order (the credential report's access_key_1 / access_key_2 and
-- ListAccessKeys). `created` has whole seconds, so two keys made in one second need a
-- tie-breaker that follows insertion, as SQLite's rowid does: a sequence number, given to
-- existing keys (in no particular order) when the column is added.
ALTER TABLE access_key ADD COLUMN seq BIGINT GENERATED ALWAYS AS IDENTITY;
