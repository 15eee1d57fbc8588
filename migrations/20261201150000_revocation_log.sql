-- The revocation log (../shared/design.md, "The revocation log"): one row per
-- revoked grant, token family or access-token jti, written in the same
-- transaction as the revocation, at a position taken from
-- revocation_log_head. That row is updated last in the transaction and stays
-- locked until it commits, so positions become visible in order: whoever has
-- seen position N has seen every position below it (the feed and the other
-- instances follow the log by position and never miss one).
--
-- until_at: the latest `exp` any access token the entry covers can carry;
-- after it the entry no longer matters and is pruned.
CREATE TABLE revocation_log (
    position   BIGINT PRIMARY KEY,
    kind       TEXT   NOT NULL CHECK (kind IN ('grant', 'family', 'jti')),
    id         TEXT   NOT NULL,
    until_at   BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revocation_log_until ON revocation_log (until_at);

CREATE TABLE revocation_log_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT  NOT NULL
);

-- The latest `exp` a token issued under an earlier, longer access-token
-- lifetime can carry: raised whenever the lifetime changes (policy.rs), so a
-- revocation right after the lifetime was shortened still covers the tokens
-- issued before.
ALTER TABLE clients ADD COLUMN access_exp_horizon BIGINT NOT NULL DEFAULT 0;
ALTER TABLE policy_default ADD COLUMN access_exp_horizon BIGINT NOT NULL DEFAULT 0;

-- Revocations made before the log existed, kept as long as the longest access
-- token lifetime (24 h) could make them matter; older ones are pruned at start.
INSERT INTO revocation_log (position, kind, id, until_at, revoked_at)
SELECT ROW_NUMBER() OVER (ORDER BY revoked_at, kind, id), kind, id, until_at, revoked_at
FROM (
    SELECT 'grant' AS kind, id, revoked_at + 86400 AS until_at, revoked_at
    FROM grants WHERE revoked_at IS NOT NULL
    UNION ALL
    SELECT 'family', id, revoked_at + 86400, revoked_at
    FROM token_families WHERE revoked_at IS NOT NULL
    UNION ALL
    SELECT 'jti', jti, expires_at, revoked_at FROM revoked_access_tokens
) AS earlier;
INSERT INTO revocation_log_head (id, position) SELECT 1, COUNT(*) FROM revocation_log;
