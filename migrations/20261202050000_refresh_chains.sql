-- Refresh tokens as one chain per token family (issue 11: storage that does
-- not grow with every refresh). A refresh token is now generation n of its
-- family's chain, MACed with a key derived from the master key
-- (app/src/domain/refresh.rs, `Presented`); the family row holds the chain,
-- and nothing is stored per token. Tokens issued before stay in
-- refresh_tokens and keep working; the first rotation of one starts its
-- family's chain at generation 1.
ALTER TABLE token_families ADD COLUMN scopes TEXT;                -- the chain's scopes (NULL: no chain yet)
ALTER TABLE token_families ADD COLUMN chain_generation BIGINT;    -- current generation (NULL: no chain)
ALTER TABLE token_families ADD COLUMN chain_rotated_at BIGINT;    -- when it was issued by a rotation (NULL: generation 0)
ALTER TABLE token_families ADD COLUMN chain_expires_at BIGINT;    -- idle expiry of the current generation
-- Retention: families that ended without being revoked (idle or absolute
-- expiry, or never given a refresh token) go after their last use.
CREATE INDEX token_families_ended ON token_families (last_used_at) WHERE revoked_at IS NULL;
