-- The scope catalogue (issue 14, item 2; app/src/domain/scopes.rs): every
-- scope a client may be registered for, besides the OpenID ones and
-- Latchkey's own, with the plain words people read on the consent page and
-- in My apps. `sensitive` ones are listed first and marked. A scope is
-- removed only once no client is registered for it.
CREATE TABLE scope_catalogue (
    scope       TEXT    PRIMARY KEY,
    description TEXT    NOT NULL,
    sensitive   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
