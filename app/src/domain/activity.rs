//! The numbers behind the admin home's charts, counted from the audit log and
//! the per-minute usage counts (`usage`) in the database (one GROUP BY per
//! period): tokens issued, refreshed and
//! revoked per hour over 24 hours and per day over 30 days, reuse detections,
//! and the clients with the most live token families.

use super::{
    error::DomainResult,
    store::{now, Db},
};
use crate::{
    model::{ActivityBucket, ActivityStats, TopClient},
    on_db,
};

/// Audit kinds that count as "a token was issued" (client_credentials and a
/// code redemption).
const ISSUED: [&str; 2] = ["token_issued", "code_redeemed"];

/// Counts per bucket of `width` seconds, `buckets` of them ending with the
/// current one.
async fn series(db: &Db, width: i64, buckets: i64, at: i64) -> DomainResult<Vec<ActivityBucket>> {
    // Buckets are aligned to the period (whole hours, whole UTC days).
    let last_start = at - at.rem_euclid(width);
    let first_start = last_start - (buckets - 1) * width;
    let rows: Vec<(i64, String, i64)> = on_db!(db, |pool| {
        sqlx::query_as(
        "SELECT (at - $1) / $2 AS bucket, kind, COUNT(*) AS n FROM audit_events \
         WHERE at >= $1 AND kind IN ('token_issued', 'code_redeemed', 'token_refreshed', 'revoked', 'reuse_detected') \
         GROUP BY (at - $1) / $2, kind \
         UNION ALL \
         SELECT (minute * 60 - $1) / $2 AS bucket, kind, CAST(SUM(n) AS BIGINT) AS n FROM usage_counts \
         WHERE minute * 60 >= $1 GROUP BY (minute * 60 - $1) / $2, kind"
    )
    .bind(first_start)
    .bind(width)
    .fetch_all(pool)
    .await
    })?;
    let mut out: Vec<ActivityBucket> = (0..buckets)
        .map(|i| ActivityBucket {
            start: first_start + i * width,
            ..ActivityBucket::default()
        })
        .collect();
    for (bucket, kind, n) in rows {
        let Some(b) = usize::try_from(bucket).ok().and_then(|i| out.get_mut(i)) else {
            continue;
        };
        match kind.as_str() {
            k if ISSUED.contains(&k) => b.issued += n,
            "token_refreshed" => b.refreshed += n,
            "revoked" => b.revoked += n,
            "reuse_detected" => b.reuse += n,
            _ => {}
        }
    }
    Ok(out)
}

/// Everything the admin home shows.
pub async fn stats(db: &Db) -> DomainResult<ActivityStats> {
    let at = now();
    let hourly = series(db, 3600, 24, at).await?;
    let daily = series(db, 86_400, 30, at).await?;
    let top: Vec<(String, String, i64)> = on_db!(db, |pool| sqlx::query_as(
        "SELECT c.id, c.name, COUNT(*) AS n FROM token_families f \
         JOIN grants g ON g.id = f.grant_id JOIN clients c ON c.id = g.client_id \
         WHERE f.revoked_at IS NULL AND g.revoked_at IS NULL AND c.deleted_at IS NULL \
         GROUP BY c.id, c.name ORDER BY n DESC, c.name LIMIT 5"
    )
    .fetch_all(pool)
    .await)?;
    Ok(ActivityStats {
        hourly,
        daily,
        top_clients: top
            .into_iter()
            .map(|(client_id, name, families)| TopClient {
                client_id,
                name,
                families,
            })
            .collect(),
    })
}
