-- What people see of an app besides its name (issue 14, item 1): RFC 7591 §2
-- client metadata. Each URI is https (http only on a loopback host), at most
-- 500 characters, checked by app/src/domain/clients.rs; NULL: not given.
-- `description` is one short paragraph (at most 300 characters) shown on the
-- consent page and in My apps.
ALTER TABLE clients ADD COLUMN logo_uri TEXT;
ALTER TABLE clients ADD COLUMN client_uri TEXT;
ALTER TABLE clients ADD COLUMN policy_uri TEXT;
ALTER TABLE clients ADD COLUMN tos_uri TEXT;
ALTER TABLE clients ADD COLUMN description TEXT;
