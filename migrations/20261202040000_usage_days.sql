-- Refreshes are counted, not audited one row each (issue 11, item 2): per
-- client and minute in usage_counts (the admin charts), and per user, client
-- and UTC day here (the user's app timeline: "Renewed its access N times").
-- A day, not a minute: an app refreshes once per access-token lifetime
-- (minutes), so per-minute rows per user would be one row per refresh again.
-- Retention keeps them as long as audit events (app/src/domain/retention.rs).
CREATE TABLE usage_days (
    id        TEXT   PRIMARY KEY, -- ordered id of the first count: retention deletes by it in batches
    user_id   TEXT   NOT NULL,
    client_id TEXT   NOT NULL,
    day       BIGINT NOT NULL,   -- unix seconds / 86400 (UTC days)
    kind      TEXT   NOT NULL,   -- an audit kind: token_refreshed
    n         BIGINT NOT NULL,
    last_at   BIGINT NOT NULL,   -- unix seconds of the day's latest event
    UNIQUE (user_id, client_id, day, kind)
);
CREATE INDEX usage_days_day ON usage_days (day);
