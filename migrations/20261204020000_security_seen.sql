-- Security activity (issue 14, item 3; app/src/domain/security.rs): the
-- newest of the person's security events they have seen (an audit event id;
-- ids are time-ordered). Their events after it are unseen, counted in the top
-- bar. NULL: they have not looked yet.
ALTER TABLE users ADD COLUMN security_seen_id TEXT;
