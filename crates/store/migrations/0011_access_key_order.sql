-- Access keys in creation order (the credential report's access_key_1 / access_key_2 and
-- ListAccessKeys). `created` has whole seconds, so two keys made in one second need a
-- tie-breaker that follows insertion: SQLite's rowid is one already, so this migration only
-- keeps the numbering in step with the PostgreSQL twin, which adds a sequence column.
SELECT 1;
