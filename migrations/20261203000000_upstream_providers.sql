-- Sign-in through upstream OpenID Connect providers, and revoking their
-- tokens at logout (issue 12; app/src/domain/upstream.rs).
--
-- A provider an admin configured. Discovery (the issuer's
-- /.well-known/openid-configuration and JWKS) is fetched and cached by each
-- instance, not stored. The client secret is AES-256-GCM under a key derived
-- from the master key, like signing keys. Removing a provider sets
-- deleted_at: its sign-ins' pending revocations are still delivered.
CREATE TABLE upstream_providers (
    id                      TEXT    PRIMARY KEY,
    name                    TEXT    NOT NULL,  -- shown on the button: "Sign in with <name>"
    issuer                  TEXT    NOT NULL,
    client_id               TEXT    NOT NULL,
    client_secret_enc       TEXT    NOT NULL,
    scopes                  TEXT    NOT NULL DEFAULT '', -- space-separated, besides openid
    revoke_at_logout        BOOLEAN NOT NULL DEFAULT TRUE,
    end_upstream_session    BOOLEAN NOT NULL DEFAULT FALSE, -- offer RP-initiated logout upstream
    -- Overrides for providers whose discovery lacks or differs (NULL: discovery's / RFC 7009's).
    revocation_endpoint     TEXT,
    revocation_token_param  TEXT,
    revocation_extra_params TEXT,             -- JSON object of extra form parameters
    created_at              BIGINT  NOT NULL,
    updated_at              BIGINT  NOT NULL,
    deleted_at              BIGINT
);
CREATE UNIQUE INDEX upstream_providers_name ON upstream_providers (lower(name)) WHERE deleted_at IS NULL;

-- A local user linked to an upstream account: found by (issuer, sub) only,
-- never by e-mail or username.
CREATE TABLE upstream_identities (
    issuer          TEXT   NOT NULL,
    sub             TEXT   NOT NULL,
    user_id         TEXT   NOT NULL REFERENCES users (id),
    provider_id     TEXT   NOT NULL REFERENCES upstream_providers (id),
    created_at      BIGINT NOT NULL,
    last_sign_in_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, sub)
);
CREATE INDEX upstream_identities_user ON upstream_identities (user_id);

-- How a sign-in was made: NULL with a password, else through this provider.
ALTER TABLE login_sessions ADD COLUMN upstream_provider_id TEXT REFERENCES upstream_providers (id);

-- The upstream tokens of one sign-in (AES-256-GCM, NULL once revoked or no
-- longer needed), and their revocation at the provider: the row is its own
-- outbox entry. The transaction that ends the sign-in sets next_attempt_at
-- (due now) and revoke_requested_at; the outbox worker (server/src/outbox.rs)
-- leases due rows, POSTs RFC 7009 revocations, then clears the tokens and sets
-- revoked_at, or records last_error and retries with backoff until the
-- deadline after revoke_requested_at sets gave_up_at.
CREATE TABLE upstream_tokens (
    login_session_id    TEXT    PRIMARY KEY REFERENCES login_sessions (id),
    provider_id         TEXT    NOT NULL REFERENCES upstream_providers (id),
    refresh_token_enc   TEXT,
    access_token_enc    TEXT,
    id_token_enc        TEXT,   -- the id_token_hint of RP-initiated logout upstream
    created_at          BIGINT  NOT NULL,
    revoke_requested_at BIGINT,
    next_attempt_at     BIGINT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    revoked_at          BIGINT,
    gave_up_at          BIGINT
);
CREATE INDEX upstream_tokens_due ON upstream_tokens (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX upstream_tokens_provider ON upstream_tokens (provider_id, revoke_requested_at);
