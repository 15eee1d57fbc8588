-- High-volume, low-value events (issue 11, item 2): each client_credentials
-- issuance is counted per client and minute instead of writing an audit row
-- (app/src/domain/usage.rs). The admin charts and "last activity" read these
-- counts with the audit log; retention keeps them as long as audit events.
CREATE TABLE usage_counts (
    client_id TEXT   NOT NULL,
    minute    BIGINT NOT NULL,   -- unix seconds / 60
    kind      TEXT   NOT NULL,   -- an audit kind, e.g. token_issued
    n         BIGINT NOT NULL,
    PRIMARY KEY (client_id, minute, kind)
);
CREATE INDEX usage_counts_minute ON usage_counts (minute);
