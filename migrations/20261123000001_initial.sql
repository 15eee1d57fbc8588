-- Latchkey's first-cut schema (see ../shared/design.md, "Data model").
--
-- One file for SQLite and PostgreSQL: only types and syntax both understand.
-- * ids are TEXT made by the application (random, or time-ordered for audit rows);
-- * times are BIGINT unix seconds (UTC);
-- * secrets are stored as hex SHA-256 of a high-entropy value, passwords as Argon2id PHC strings;
-- * lists (redirect URIs) are JSON arrays in TEXT, scopes are space-separated TEXT;
-- * policy overrides on a client are NULL when the client inherits the server default.
-- Table names are plural because `user` and `grant` are reserved words in PostgreSQL.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    disabled_at   BIGINT,
    created_at    BIGINT NOT NULL
);
-- Usernames are unique regardless of case ("Alice" and "alice" are one user).
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE policy_default (
    id                        INTEGER PRIMARY KEY CHECK (id = 1),
    refresh_enabled           BOOLEAN NOT NULL,
    access_ttl_secs           BIGINT  NOT NULL,
    refresh_idle_ttl_secs     BIGINT  NOT NULL,
    refresh_absolute_ttl_secs BIGINT  NOT NULL,
    rotate_refresh            BOOLEAN NOT NULL,
    reuse_grace_secs          BIGINT  NOT NULL,
    revoke_on_logout          BOOLEAN NOT NULL,
    updated_at                BIGINT  NOT NULL
);
-- 10 min access tokens; refresh tokens die after 14 days unused and 90 days at most;
-- rotation on with no reuse grace; signing out revokes what the sign-in issued.
INSERT INTO policy_default VALUES (1, TRUE, 600, 1209600, 7776000, TRUE, 0, TRUE, 0);

CREATE TABLE clients (
    id                         TEXT PRIMARY KEY,          -- the OAuth client_id
    name                       TEXT NOT NULL,
    kind                       TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash                TEXT,                      -- NULL for public clients
    redirect_uris              TEXT NOT NULL,             -- JSON array, matched exactly
    post_logout_redirect_uris  TEXT NOT NULL,             -- JSON array, matched exactly
    grant_types                TEXT NOT NULL,             -- space-separated
    extra_scopes               TEXT NOT NULL DEFAULT '',  -- scopes beyond the OpenID ones
    refresh_enabled            BOOLEAN,
    access_ttl_secs            BIGINT,
    refresh_idle_ttl_secs      BIGINT,
    refresh_absolute_ttl_secs  BIGINT,
    rotate_refresh             BOOLEAN,
    reuse_grace_secs           BIGINT,
    revoke_on_logout           BOOLEAN,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    deleted_at                 BIGINT
);
CREATE UNIQUE INDEX clients_name_key ON clients (lower(name)) WHERE deleted_at IS NULL;

-- A user's signed-in browser session; its id is the OpenID Connect `sid`.
CREATE TABLE login_sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    user_agent   TEXT NOT NULL DEFAULT '',
    ip           TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at     BIGINT,
    end_reason   TEXT
);
CREATE INDEX login_sessions_user ON login_sessions (user_id, ended_at);

-- A user's consent to one client, or a client_credentials client's own grant (user_id NULL).
CREATE TABLE grants (
    id            TEXT PRIMARY KEY,
    user_id       TEXT REFERENCES users (id),
    client_id     TEXT NOT NULL REFERENCES clients (id),
    scopes        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    last_used_ip  TEXT,
    last_used_ua  TEXT,
    revoked_at    BIGINT,
    revoked_by    TEXT,
    revoke_reason TEXT
);
CREATE UNIQUE INDEX grants_live_user_client ON grants (user_id, client_id)
    WHERE revoked_at IS NULL AND user_id IS NOT NULL;
CREATE UNIQUE INDEX grants_live_client_only ON grants (client_id)
    WHERE revoked_at IS NULL AND user_id IS NULL;
CREATE INDEX grants_client ON grants (client_id, revoked_at);

-- One code redemption and its chain of refresh tokens: one app session on one device.
CREATE TABLE token_families (
    id               TEXT PRIMARY KEY,
    grant_id         TEXT NOT NULL REFERENCES grants (id),
    login_session_id TEXT REFERENCES login_sessions (id),
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT NOT NULL,
    last_used_ip     TEXT,
    last_used_ua     TEXT,
    revoked_at       BIGINT,
    revoke_reason    TEXT
);
CREATE INDEX token_families_grant ON token_families (grant_id, revoked_at);
CREATE INDEX token_families_login_session ON token_families (login_session_id);

CREATE TABLE refresh_tokens (
    hash        TEXT PRIMARY KEY,   -- hex SHA-256 of the token
    family_id   TEXT NOT NULL REFERENCES token_families (id),
    parent_hash TEXT,               -- the token this one was rotated from
    scopes      TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,    -- idle expiry; the absolute cap is read from policy at use
    used_at     BIGINT,             -- set when rotated
    revoked_at  BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE auth_codes (
    hash             TEXT PRIMARY KEY,  -- hex SHA-256 of the code
    client_id        TEXT NOT NULL REFERENCES clients (id),
    user_id          TEXT NOT NULL REFERENCES users (id),
    grant_id         TEXT NOT NULL REFERENCES grants (id),
    login_session_id TEXT REFERENCES login_sessions (id),
    redirect_uri     TEXT NOT NULL,
    code_challenge   TEXT,              -- PKCE S256 challenge
    scopes           TEXT NOT NULL,
    nonce            TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    consumed_at      BIGINT,
    family_id        TEXT               -- the family its redemption started (revoked on reuse)
);
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

-- Access tokens revoked one by one (by jti); pruned once they have expired anyway.
CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires ON revoked_access_tokens (expires_at);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    algorithm     TEXT NOT NULL,       -- EdDSA or RS256
    private_key   TEXT NOT NULL,       -- encrypted at rest, base64
    public_jwk    TEXT NOT NULL,       -- JSON
    created_at    BIGINT NOT NULL,
    retired_at    BIGINT,
    last_token_expires_at BIGINT       -- keeps a retired key in JWKS until its tokens expired
);

CREATE TABLE audit_events (
    id              TEXT PRIMARY KEY,  -- time-ordered
    at              BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    actor_user_id   TEXT,
    actor_client_id TEXT,
    subject_user_id TEXT,
    client_id       TEXT,
    ip              TEXT,
    detail          TEXT NOT NULL DEFAULT '{}'  -- JSON
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_subject ON audit_events (subject_user_id, at);
CREATE INDEX audit_events_client ON audit_events (client_id, at);
CREATE INDEX audit_events_kind ON audit_events (kind, at);
