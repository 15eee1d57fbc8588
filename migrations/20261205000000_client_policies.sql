-- The effective token policy of every client (issue 15, item 3;
-- app/src/domain/policy.rs): each field the client's override, else the
-- server-wide default. Every query that needs a client's effective policy
-- joins this view instead of spelling out COALESCE(client, default) per
-- field. Deleted clients are included (their rows stay): callers filter
-- `clients.deleted_at` where it matters.
CREATE VIEW client_policies AS
SELECT
    c.id AS client_id,
    COALESCE(c.refresh_enabled, d.refresh_enabled) AS refresh_enabled,
    COALESCE(c.access_ttl_secs, d.access_ttl_secs) AS access_ttl_secs,
    COALESCE(c.refresh_idle_ttl_secs, d.refresh_idle_ttl_secs) AS refresh_idle_ttl_secs,
    COALESCE(c.refresh_absolute_ttl_secs, d.refresh_absolute_ttl_secs) AS refresh_absolute_ttl_secs,
    COALESCE(c.rotate_refresh, d.rotate_refresh) AS rotate_refresh,
    COALESCE(c.reuse_grace_secs, d.reuse_grace_secs) AS reuse_grace_secs,
    COALESCE(c.revoke_on_logout, d.revoke_on_logout) AS revoke_on_logout
FROM clients c
CROSS JOIN policy_default d
WHERE d.id = 1;
