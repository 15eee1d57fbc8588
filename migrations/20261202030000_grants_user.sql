-- "Revoke all apps" (and every cascade selecting a user's grants) found
-- them by a full scan: the only index on grants.user_id is partial (live
-- grants). At a million revoked grants that took a second per statement.
CREATE INDEX grants_user ON grants (user_id);
