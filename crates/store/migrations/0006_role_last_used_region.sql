-- RoleLastUsed.Region: the region the last AssumeRole of the role was signed for.
ALTER TABLE iam_role ADD COLUMN last_used_region TEXT;
