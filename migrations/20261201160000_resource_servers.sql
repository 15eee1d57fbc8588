-- Resource servers (APIs) are registered clients: a client with a row here is
-- one. `audience` is its resource indicator (RFC 8707 §2: an absolute URI
-- without a fragment), named in the `aud` of the access tokens meant for it
-- (RFC 9068 §3); `scopes` (space-separated) are the scopes it serves: a token
-- carrying one of them names its audience. Only resource servers introspect,
-- and only tokens meant for them (oauth/introspect.rs).
CREATE TABLE resource_servers (
    client_id  TEXT PRIMARY KEY REFERENCES clients (id),
    audience   TEXT   NOT NULL,
    scopes     TEXT   NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX resource_servers_audience ON resource_servers (audience);
