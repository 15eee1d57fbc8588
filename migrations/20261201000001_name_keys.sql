-- Case-insensitive names for all of Unicode, the same on both backends.
--
-- The first cut made names unique on lower(name). SQLite's lower() folds
-- ASCII only, so "Émile" and "émile" were two users there and one on
-- PostgreSQL, and signing in as "JÜRGEN" found "Jürgen" on PostgreSQL only.
-- Now the application computes each name's key (NFKC + Unicode case folding,
-- app/src/domain/names.rs) and stores it beside the name as typed; the unique
-- indexes, lookups and searches use the key.
--
-- The key columns stay NULL here: SQL cannot compute them. `Db::migrate` fills
-- them in right after this file runs (`names::fill_missing_keys`), and every
-- insert and rename writes them from then on. A NULL key is never equal to
-- anything, so a row without one cannot collide and is not found by name.

ALTER TABLE users ADD COLUMN username_key TEXT;
ALTER TABLE clients ADD COLUMN name_key TEXT;

DROP INDEX users_username_key;
DROP INDEX clients_name_key;

CREATE UNIQUE INDEX users_username_key ON users (username_key);
CREATE UNIQUE INDEX clients_name_key ON clients (name_key) WHERE deleted_at IS NULL;
