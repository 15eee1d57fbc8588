-- OpenID Connect Back-Channel Logout 1.0 (issue 10, item 4), and the one
-- durable outbox for everything Latchkey delivers to someone else.
--
-- A client registers where its logout tokens go (§2.2); NULL: it gets none.
ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE clients ADD COLUMN backchannel_logout_session_required BOOLEAN NOT NULL DEFAULT FALSE;

-- One delivery per row, written in the transaction that causes it (the
-- revocation cascade), sent by each instance's worker (server/src/outbox.rs):
-- due rows are leased by moving next_attempt_at ahead, then sent; 2xx marks
-- delivered_at, anything else records last_error and the next attempt with
-- exponential backoff, until the deadline after created_at sets gave_up_at.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,        -- time-ordered
    kind            TEXT NOT NULL CHECK (kind IN ('backchannel_logout')),
    client_id       TEXT NOT NULL REFERENCES clients (id),
    target_url      TEXT NOT NULL,           -- copied from the client at enqueue time
    payload         TEXT NOT NULL,           -- JSON: the claims to sign, e.g. {"sub": ..., "sid": ...}
    jti             TEXT NOT NULL,           -- fixed per row: a retried token keeps its jti
    created_at      BIGINT NOT NULL,
    next_attempt_at BIGINT,                  -- NULL once delivered or given up
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    delivered_at    BIGINT,
    gave_up_at      BIGINT
);
-- The worker's query: rows still to deliver, by when they are due.
CREATE INDEX outbox_due ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
-- The admin console's client page.
CREATE INDEX outbox_client ON outbox (client_id, created_at);
