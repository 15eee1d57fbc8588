-- Sign-in throttling (issue 13, item 1; app/src/domain/throttle.rs): failed
-- sign-ins counted per username (its case-folded key) and per client IP, in
-- the database so that every instance agrees and a restart forgets nothing.
CREATE TABLE sign_in_failures (
    key               TEXT    PRIMARY KEY, -- 'username:<folded name>' or 'ip:<address>'
    failures          BIGINT  NOT NULL,    -- failures in the current window
    window_started_at BIGINT  NOT NULL,    -- unix seconds
    locked_until      BIGINT,              -- unix seconds; NULL: never locked in this streak
    lockouts          BIGINT  NOT NULL DEFAULT 0, -- lockouts in a row: each doubles the next
    updated_at        BIGINT  NOT NULL
);
-- Retention: rows quiet for a day go (and with them the streak).
CREATE INDEX sign_in_failures_updated ON sign_in_failures (updated_at);
