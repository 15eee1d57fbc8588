//! The revocation feed for resource servers that validate access tokens
//! themselves: every entry of the revocation log that still matters, as a
//! paged snapshot and as a stream of Server-Sent Events. Served from this
//! instance's memory ([`RevokedSets`]), which follows the log: no database
//! read per request or per subscriber.
//!
//! Both endpoints take a client_credentials access token carrying
//! [`REVOCATIONS_SCOPE`] of a client whose registration lists it (RFC 6750
//! Bearer; 401 / 403 as at the admin API, [`client_holding`]).
//!
//! An entry is `{"position", "kind": "grant"|"family"|"jti", "id", "until"}`:
//! tokens whose `gid`, `fid` or `jti` claim is `id` are revoked; `until`
//! (unix seconds) is the latest `exp` such a token can carry. Positions
//! increase strictly and become visible in order on every instance.

use std::{collections::VecDeque, convert::Infallible, time::Duration};

use app::domain::{
    grants::REVOCATIONS_SCOPE,
    revocation::{Entry, RevokedSets},
    store::now,
};
use axum::{
    extract::{FromRequestParts, State},
    http::{header, request::Parts, HeaderMap, HeaderValue},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    Json,
};
use futures_util::Stream;
use serde::{Deserialize, Serialize};

use crate::{
    admin_api::{
        auth::client_holding,
        error::{ApiError, ApiQuery},
    },
    state::AppState,
};

/// Entries per snapshot page unless `limit` says otherwise, and at most.
pub const DEFAULT_LIMIT: usize = 1000;
pub const MAX_LIMIT: usize = 10_000;

/// How often an idle stream sends a `: keep-alive` comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A caller allowed to read the feed; the stream ends when its token expires.
pub struct Subscriber {
    /// Unix seconds: the `exp` of the caller's access token.
    expires_at: i64,
    grant_id: String,
    jti: String,
}

impl FromRequestParts<AppState> for Subscriber {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (_, claims) = client_holding(parts, state, REVOCATIONS_SCOPE).await?;
        Ok(Subscriber {
            expires_at: claims.exp,
            grant_id: claims.gid,
            jti: claims.jti,
        })
    }
}

#[derive(Deserialize)]
pub struct SnapshotQuery {
    after: Option<String>,
    limit: Option<String>,
}

/// A snapshot page.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Entries after `after` whose `until` has not passed, in position order.
    pub entries: Vec<Entry>,
    /// Where to continue: `after` for the next page, or `Last-Event-ID` for the stream.
    pub next: i64,
    /// Whether another page is available now.
    pub more: bool,
}

/// `GET /oauth/revocations?after=P&limit=N`: 200 [`Snapshot`]; a bad `after`
/// (not a whole number ≥ 0) or `limit` (not 1..=10000) → 400.
pub async fn snapshot(
    State(state): State<AppState>,
    _: Subscriber,
    ApiQuery(query): ApiQuery<SnapshotQuery>,
) -> Result<Json<Snapshot>, ApiError> {
    let after = position("after", query.after.as_deref())?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let (entries, more, next) = state.revoked.entries_after(after, limit);
    Ok(Json(Snapshot {
        entries,
        next,
        more,
    }))
}

/// A log position given by the caller: absent → 0.
fn position(name: &str, raw: Option<&str>) -> Result<i64, ApiError> {
    match raw {
        None => Ok(0),
        Some(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be a log position (a whole number ≥ 0)"
                ))
            }),
    }
}

/// `GET /oauth/revocations/stream`, resuming after `Last-Event-ID` (or
/// `?after=`): every entry after it that still matters, then each new one as
/// this instance reads it from the log (`event: revocation`, `id:` its
/// position, `data:` the entry as JSON); a `: keep-alive` comment every 15 s
/// when idle. The stream ends when the caller's token expires or is revoked
/// (reconnect with a new token and `Last-Event-ID`), and when the process
/// shuts down.
pub async fn stream(
    State(state): State<AppState>,
    subscriber: Subscriber,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<SnapshotQuery>,
) -> Result<Response, ApiError> {
    let last_event_id = match headers.get("last-event-id") {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::bad_request("Last-Event-ID must be a log position (a whole number ≥ 0)")
        })?),
        None => None,
    };
    let after = match last_event_id {
        Some(id) => position("Last-Event-ID", Some(id))?,
        None => position("after", query.after.as_deref())?,
    };
    let events = entries_from(state.revoked.clone(), after, subscriber);
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies (nginx) would otherwise hold events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

struct Following {
    sets: RevokedSets,
    applied: tokio::sync::watch::Receiver<i64>,
    /// The position of the last entry sent (or the one resumed after).
    last: i64,
    pending: VecDeque<Entry>,
    subscriber: Subscriber,
    ends: tokio::time::Instant,
    /// [`end_streams`] was called: the process is shutting down.
    ending: tokio::sync::watch::Receiver<bool>,
    /// Counted in `latchkey_feed_subscribers` while it lives.
    _open: Open,
}

/// Set once, when the process shuts down.
static ENDING: std::sync::LazyLock<tokio::sync::watch::Sender<bool>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(false).0);

/// Ends every revocation stream of this process (at shutdown: subscribers
/// reconnect to another instance with `Last-Event-ID`).
pub fn end_streams() {
    ENDING.send_replace(true);
}

/// One open stream in `latchkey_feed_subscribers`.
struct Open;

impl Open {
    fn new() -> Open {
        metrics::gauge!("latchkey_feed_subscribers").increment(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        metrics::gauge!("latchkey_feed_subscribers").decrement(1.0);
    }
}

/// Every entry after `after`, then each new one, until the subscriber's
/// token expires or is revoked. Wakes on the one watch channel every stream
/// of this instance shares; reads nothing from the database.
fn entries_from(
    sets: RevokedSets,
    after: i64,
    subscriber: Subscriber,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let left = u64::try_from(subscriber.expires_at - now()).unwrap_or(0);
    let following = Following {
        applied: sets.watch_applied(),
        sets,
        last: after,
        pending: VecDeque::new(),
        subscriber,
        ends: tokio::time::Instant::now() + Duration::from_secs(left),
        ending: ENDING.subscribe(),
        _open: Open::new(),
    };
    futures_util::stream::unfold(following, |mut f| async move {
        loop {
            if f.sets
                .is_revoked(&f.subscriber.grant_id, None, &f.subscriber.jti)
            {
                return None;
            }
            if let Some(entry) = f.pending.pop_front() {
                f.last = entry.position;
                let event = Event::default()
                    .event("revocation")
                    .id(entry.position.to_string())
                    .json_data(&entry)
                    .unwrap_or_else(|_| Event::default().comment("unencodable entry"));
                return Some((Ok(event), f));
            }
            // Seen before reading: a position applied after this read wakes
            // the wait below.
            f.applied.borrow_and_update();
            let (entries, ..) = f.sets.entries_after(f.last, DEFAULT_LIMIT);
            if !entries.is_empty() {
                f.pending.extend(entries);
                continue;
            }
            tokio::select! {
                changed = f.applied.changed() => if changed.is_err() { return None },
                _ = tokio::time::sleep_until(f.ends) => return None,
                _ = f.ending.wait_for(|e| *e) => return None,
            }
        }
    })
}
