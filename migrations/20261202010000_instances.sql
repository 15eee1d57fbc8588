-- Exact revocation across instances (issue 11, item 3;
-- app/src/domain/instances.rs). Each running instance registers itself and
-- reports, at least every second and at once after it read something new,
-- how far it has applied the revocation log and the change counter. A
-- revocation (or a registration, policy or key change) is acknowledged once
-- every live instance reported it, or after a bound past which a lagging
-- instance fails closed on its own.
CREATE TABLE instances (
    id               TEXT   PRIMARY KEY,
    started_at       BIGINT NOT NULL,   -- unix seconds
    seen_at_ms       BIGINT NOT NULL,   -- unix milliseconds of its last report
    applied_position BIGINT NOT NULL,   -- revocation_log position applied
    applied_change   BIGINT NOT NULL    -- change_head.generation applied
);

-- Bumped after every change that instances keep in memory: client
-- registrations and secrets, resource servers, signing keys.
CREATE TABLE change_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT  NOT NULL
);
INSERT INTO change_head (id, generation) VALUES (1, 0);
