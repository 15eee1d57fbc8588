-- Retention (issue 11, item 2; app/src/domain/retention.rs): the indexes
-- that let each rule find what goes without scanning its table. Partial where
-- only ended rows qualify, so live writes pay nothing for them.
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
CREATE INDEX refresh_tokens_revoked ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX token_families_revoked ON token_families (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX grants_revoked ON grants (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX login_sessions_ended ON login_sessions (ended_at) WHERE ended_at IS NOT NULL;
CREATE INDEX outbox_done ON outbox (created_at)
    WHERE delivered_at IS NOT NULL OR gave_up_at IS NOT NULL;
