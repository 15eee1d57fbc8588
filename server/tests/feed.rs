//! The revocation log and its feed for resource servers
//! (`/oauth/revocations`, `/oauth/revocations/stream`), on both backends:
//! who may read it, one entry per revocation in position order with the
//! right `until`, paging, the stream's backlog, live entries and resumption
//! with `Last-Event-ID`, restarts, expiry, and another instance's revocations.

mod common;

use std::time::{Duration, Instant};

use app::domain::{
    policy::{self, PolicyChange},
    retention::{self, Retention},
    revocation::{RevokedBy, RevokedSets},
    store::now,
};
use common::{
    exec, flow,
    flow::{
        cc_token, get_bearer, jwt_part, person, refresh, revoke_by_rfc7009, service, str_of,
        tokens_for, App,
    },
    Site, TestDb, TestServer, PATIENCE,
};
use reqwest::{header, StatusCode};
use serde_json::Value;

on_both_backends!(
    the_feed_takes_a_revocations_token_of_a_client_allowed_it,
    every_revocation_writes_its_entries_once_in_order,
    snapshots_page_and_resume_after_a_position,
    the_stream_sends_the_backlog_then_each_entry_and_resumes_without_gap,
    entries_survive_a_restart_and_go_when_their_time_passed,
    until_covers_tokens_issued_under_a_longer_lifetime,
    another_instance_streams_what_this_one_revoked,
    concurrent_revocations_take_distinct_positions_in_commit_order,
    a_stream_ends_when_its_token_is_revoked,
    a_long_log_of_expired_entries_is_read_past_not_held_in_memory,
);

const SCOPE: &str = "latchkey:revocations";
const SYSTEM: RevokedBy<'static> = RevokedBy {
    actor: "system",
    reason: "test",
    actor_user_id: None,
    actor_client_id: None,
};

/// A resource server allowed the feed, and its token.
async fn subscriber(t: &TestDb, server: &impl Site) -> (App, String) {
    let api = service(&t.db, "Notes API", &[SCOPE]).await;
    let token = cc_token(server, &api).await;
    (api, token)
}

async fn get_feed(server: &impl Site, token: &str, query: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url(&format!("/oauth/revocations{query}")))
        .bearer_auth(token)
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap()
}

async fn snapshot(server: &impl Site, token: &str, query: &str) -> Value {
    let res = get_feed(server, token, query).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    res.json().await.unwrap()
}

fn entries(snapshot: &Value) -> Vec<Value> {
    snapshot["entries"].as_array().unwrap().clone()
}

fn position(entry: &Value) -> i64 {
    entry["position"].as_i64().unwrap()
}

/// A service's token revoked by RFC 7009; returns its `jti`.
async fn revoked_jti(t: &TestDb, server: &impl Site, name: &str) -> String {
    let app = service(&t.db, name, &[]).await;
    let token = cc_token(server, &app).await;
    revoke_by_rfc7009(server, &app, &token).await;
    str_of(&jwt_part(&token, 1), "jti").to_owned()
}

async fn the_feed_takes_a_revocations_token_of_a_client_allowed_it(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let http = reqwest::Client::new();
    for path in ["/oauth/revocations", "/oauth/revocations/stream"] {
        // No token at all.
        let res = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"latchkey\""
        );
        // A token that is not one.
        let res = get_bearer(&server, path, "not-a-token").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(res.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\""));
    }
    // A client_credentials token without the scope.
    let other = service(&t.db, "Reporting", &["reports:read"]).await;
    let token = cc_token(&server, &other).await;
    let res = get_feed(&server, &token, "").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("scope=\"latchkey:revocations\""),
        "{challenge}"
    );
    // Nor may that client ask for the scope.
    let res = reqwest::Client::new()
        .post(server.url("/oauth/token"))
        .basic_auth(&other.client_id, other.secret.as_deref())
        .form(&[("grant_type", "client_credentials"), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(flow::oauth_error(res).await.1, "invalid_scope");

    // A person can never consent to it, even for an app registered with it.
    let app = flow::app(
        &t,
        "Greedy",
        app::domain::clients::ClientKind::Confidential,
        &[SCOPE],
    )
    .await;
    let alice = person(&t, &server, "alice").await;
    let scope = format!("openid {SCOPE}");
    let params = flow::authorize_params(&app, &scope);
    let res = flow::get_authorize(&alice.http, &server, &params).await;
    let location = flow::location(&res);
    assert_eq!(
        flow::query_of(&location).get("error").map(String::as_str),
        Some("invalid_scope"),
        "{location}"
    );

    // The subscriber's own token works, until it is revoked.
    let (api, token) = subscriber(&t, &server).await;
    let body = snapshot(&server, &token, "").await;
    assert_eq!(body["entries"], serde_json::json!([]));
    assert_eq!(body["more"], false);
    revoke_by_rfc7009(&server, &api, &token).await;
    let res = get_feed(&server, &token, "").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Taking the scope away from the registration refuses a token at once.
    let token = cc_token(&server, &api).await;
    assert_eq!(get_feed(&server, &token, "").await.status(), StatusCode::OK);
    app::domain::clients::update_client(
        &t.db,
        &api.client_id,
        &app::domain::clients::ClientChange {
            extra_scopes: Some(vec![]),
            ..Default::default()
        },
        &app::domain::audit::Actor::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        get_feed(&server, &token, "").await.status(),
        StatusCode::FORBIDDEN
    );
    t.cleanup().await;
}

async fn every_revocation_writes_its_entries_once_in_order(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (_, feed) = subscriber(&t, &server).await;
    let app = flow::app(
        &t,
        "Notes",
        app::domain::clients::ClientKind::Confidential,
        &[],
    )
    .await;
    let alice = person(&t, &server, "alice").await;

    // A family, by RFC 7009 of its refresh token.
    let first = tokens_for(&alice, &server, &app, "openid offline_access").await;
    let first_claims = jwt_part(str_of(&first, "access_token"), 1);
    let res = reqwest::Client::new()
        .post(server.url("/oauth/revoke"))
        .basic_auth(&app.client_id, app.secret.as_deref())
        .form(&[("token", str_of(&first, "refresh_token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Revoking it again adds nothing.
    let res = refresh(&server, &app, str_of(&first, "refresh_token")).await;
    assert_eq!(flow::oauth_error(res).await.1, "invalid_grant");

    // The grant (every family of the app for alice), by the domain's cascade.
    let second = tokens_for(&alice, &server, &app, "openid offline_access").await;
    let second_claims = jwt_part(str_of(&second, "access_token"), 1);
    let gid = str_of(&second_claims, "gid").to_owned();
    assert!(server
        .revoked
        .revoke_grant(&t.db, &gid, &SYSTEM)
        .await
        .unwrap());
    assert!(!server
        .revoked
        .revoke_grant(&t.db, &gid, &SYSTEM)
        .await
        .unwrap());

    // One access token by jti.
    let jti = revoked_jti(&t, &server, "Batch job").await;

    let body = snapshot(&server, &feed, "").await;
    let got = entries(&body);
    let kinds: Vec<(&str, &str)> = got
        .iter()
        .map(|e| (str_of(e, "kind"), str_of(e, "id")))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("family", str_of(&first_claims, "fid")),
            ("grant", gid.as_str()),
            ("jti", jti.as_str()),
        ],
        "one entry per revocation, the grant's families covered by the grant's entry"
    );
    let positions: Vec<i64> = got.iter().map(position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(body["next"].as_i64(), positions.last().copied());
    // `until` is the latest exp a covered token can carry: not before the
    // tokens' own, not beyond the default 10-minute lifetime from now.
    for (entry, claims) in [(&got[0], &first_claims), (&got[1], &second_claims)] {
        let until = entry["until"].as_i64().unwrap();
        assert!(until >= claims["exp"].as_i64().unwrap(), "{entry} {claims}");
        assert!(until <= now() + 600, "{entry}");
    }
    // The database holds the same, and the head is the last position.
    assert_eq!(common::count(&t.db, "revocation_log").await, 3);
    t.cleanup().await;
}

async fn snapshots_page_and_resume_after_a_position(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (_, feed) = subscriber(&t, &server).await;
    let mut jtis = Vec::new();
    for i in 0..5 {
        jtis.push(revoked_jti(&t, &server, &format!("Job {i}")).await);
    }
    let mut seen = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let body = snapshot(&server, &feed, &format!("?after={after}&limit=2")).await;
        let page = entries(&body);
        assert!(page.len() <= 2);
        pages += 1;
        seen.extend(page.iter().map(|e| str_of(e, "id").to_owned()));
        let next = body["next"].as_i64().unwrap();
        if let Some(last) = page.last() {
            assert_eq!(next, position(last));
        }
        after = next;
        if body["more"] == false {
            break;
        }
    }
    assert_eq!(seen, jtis, "every entry once, in order");
    assert_eq!(pages, 3);
    // Nothing after the last one; a position beyond it stays where it is.
    let body = snapshot(&server, &feed, &format!("?after={after}")).await;
    assert_eq!(body["entries"], serde_json::json!([]));
    assert_eq!(body["next"].as_i64(), Some(after));
    let body = snapshot(&server, &feed, "?after=1000000").await;
    assert_eq!(body["next"].as_i64(), Some(1_000_000));

    for bad in [
        "?after=-1",
        "?after=x",
        "?after=1&after=2",
        "?limit=0",
        "?limit=10001",
        "?limit=ten",
    ] {
        let res = get_feed(&server, &feed, bad).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{bad}");
    }
    t.cleanup().await;
}

/// An open `/oauth/revocations/stream`, read event by event.
struct Stream {
    res: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(server: &impl Site, token: &str, last_event_id: Option<i64>) -> Stream {
        let mut request = reqwest::Client::new()
            .get(server.url("/oauth/revocations/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        Stream {
            res,
            buffer: String::new(),
        }
    }

    /// The next `revocation` event: its `id:` and its data (comments skipped).
    async fn next(&mut self) -> (i64, Value) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                let mut event = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<i64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    assert_eq!(event.as_deref(), Some("revocation"));
                    assert_eq!(position(&data), id, "the event id is the entry's position");
                    return (id, data);
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.res.chunk())
                .await
                .expect("an event within the test's patience")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

async fn the_stream_sends_the_backlog_then_each_entry_and_resumes_without_gap(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (_, feed) = subscriber(&t, &server).await;
    let before = revoked_jti(&t, &server, "Earlier").await;

    let mut stream = Stream::open(&server, &feed, None).await;
    let (first, entry) = stream.next().await;
    assert_eq!(str_of(&entry, "id"), before, "the backlog first");

    let live = revoked_jti(&t, &server, "Live").await;
    let (second, entry) = stream.next().await;
    assert_eq!(str_of(&entry, "id"), live, "then each entry as it commits");
    assert!(second > first);
    drop(stream);

    // Revoked while no stream was open: sent on resuming, once each.
    let missed = [
        revoked_jti(&t, &server, "Missed 1").await,
        revoked_jti(&t, &server, "Missed 2").await,
    ];
    let mut stream = Stream::open(&server, &feed, Some(second)).await;
    for id in &missed {
        let (_, entry) = stream.next().await;
        assert_eq!(str_of(&entry, "id"), id);
    }
    let after = revoked_jti(&t, &server, "After").await;
    let (_, entry) = stream.next().await;
    assert_eq!(
        str_of(&entry, "id"),
        after,
        "nothing sent twice, nothing skipped"
    );

    // `?after=` works like Last-Event-ID; a bad one is refused.
    let mut stream = reqwest::Client::new()
        .get(server.url(&format!("/oauth/revocations/stream?after={second}")))
        .bearer_auth(&feed)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let chunk = tokio::time::timeout(PATIENCE, stream.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains(&missed[0]));
    let res = reqwest::Client::new()
        .get(server.url("/oauth/revocations/stream"))
        .bearer_auth(&feed)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    t.cleanup().await;
}

async fn entries_survive_a_restart_and_go_when_their_time_passed(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let jti = revoked_jti(&t, &server, "Kept").await;
    drop(server);

    // A new process loads the log: the token stays refused there.
    let server = TestServer::start(&t.db).await;
    assert!(server.revoked.is_revoked("-", None, &jti));
    let (_, feed) = subscriber(&t, &server).await;
    let body = snapshot(&server, &feed, "").await;
    assert_eq!(str_of(&entries(&body)[0], "id"), jti);

    // An entry whose time passes is forgotten in memory, then pruned.
    let short = "short-lived-jti";
    server
        .revoked
        .revoke_access_token(&t.db, short, now() + 1, &SYSTEM)
        .await
        .unwrap();
    assert!(server.revoked.is_revoked("-", None, short));
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.revoked.is_revoked("-", None, short) {
        assert!(
            Instant::now() < deadline,
            "the expired entry is dropped from memory"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = snapshot(&server, &feed, "").await;
    assert!(!body.to_string().contains(short), "{body}");
    // Pruned from the table once its time has long passed.
    exec(
        &t.db,
        "UPDATE revocation_log SET until_at = 1 WHERE id = 'short-lived-jti'",
    )
    .await;
    let pruned = retention::run(&t.db, &Retention::default()).await.unwrap();
    let log = pruned.iter().find(|p| p.table == "revocation_log").unwrap();
    assert_eq!(log.rows, 1, "{pruned:?}");
    let after = RevokedSets::load(&t.db).await.unwrap();
    assert!(!after.is_revoked("-", None, short));
    assert!(after.is_revoked("-", None, &jti));
    t.cleanup().await;
}

async fn until_covers_tokens_issued_under_a_longer_lifetime(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let job = service(&t.db, "Long job", &[]).await;
    let change = |ttl: &str| PolicyChange {
        access_ttl_secs: Some(Some(policy::parse_duration("access_ttl", ttl).unwrap())),
        ..Default::default()
    };
    policy::set_client(&t.db, &job.client_id, &change("2h"), None)
        .await
        .unwrap();
    let token = cc_token(&server, &job).await;
    let exp = jwt_part(&token, 1)["exp"].as_i64().unwrap();
    assert!(exp >= now() + 7000);
    // Shortened, then everything of the client revoked.
    policy::set_client(&t.db, &job.client_id, &change("5m"), None)
        .await
        .unwrap();
    let done = server
        .revoked
        .revoke_client_grants(&t.db, &job.client_id, &SYSTEM)
        .await
        .unwrap();
    assert_eq!(done.grants.len(), 1);
    assert!(done.until >= exp, "until {} < exp {exp}", done.until);
    let (_, feed) = subscriber(&t, &server).await;
    let body = snapshot(&server, &feed, "").await;
    assert!(entries(&body)[0]["until"].as_i64().unwrap() >= exp);
    // The same for a change of the server-wide default.
    let job2 = service(&t.db, "Other job", &[]).await;
    policy::set_defaults(&t.db, &change("3h"), None)
        .await
        .unwrap();
    let token = cc_token(&server, &job2).await;
    let exp = jwt_part(&token, 1)["exp"].as_i64().unwrap();
    policy::set_defaults(&t.db, &change("10m"), None)
        .await
        .unwrap();
    let done = server
        .revoked
        .revoke_client_grants(&t.db, &job2.client_id, &SYSTEM)
        .await
        .unwrap();
    assert!(done.until >= exp, "until {} < exp {exp}", done.until);
    t.cleanup().await;
}

async fn another_instance_streams_what_this_one_revoked(t: TestDb) {
    let a = TestServer::start(&t.db).await;
    let b = TestServer::start(&t.db).await;
    let (_, feed) = subscriber(&t, &b).await;
    let mut stream = Stream::open(&b, &feed, None).await;
    let jti = revoked_jti(&t, &a, "Revoked at A").await;
    let (_, entry) = stream.next().await;
    assert_eq!(str_of(&entry, "id"), jti);
    assert!(b.revoked.is_revoked("-", None, &jti));
    t.cleanup().await;
}

async fn concurrent_revocations_take_distinct_positions_in_commit_order(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (_, feed) = subscriber(&t, &server).await;
    let mut stream = Stream::open(&server, &feed, None).await;
    let n = 16;
    let revocations = (0..n).map(|i| {
        let revoked = server.revoked.clone();
        let db = t.db.clone();
        tokio::spawn(async move {
            revoked
                .revoke_access_token(&db, &format!("jti-{i}"), now() + 600, &SYSTEM)
                .await
                .unwrap();
        })
    });
    futures_util::future::join_all(revocations).await;
    let mut ids = Vec::new();
    let mut last = 0;
    for _ in 0..n {
        let (position, entry) = stream.next().await;
        assert!(position > last, "positions only grow on the stream");
        last = position;
        ids.push(str_of(&entry, "id").to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "each revocation once");
    let body = snapshot(&server, &feed, "").await;
    let positions: Vec<i64> = entries(&body).iter().map(position).collect();
    assert_eq!(
        positions,
        (1..=n as i64).collect::<Vec<_>>(),
        "no gaps, no repeats"
    );
    t.cleanup().await;
}

async fn a_stream_ends_when_its_token_is_revoked(t: TestDb) {
    let server = TestServer::start(&t.db).await;
    let (api, feed) = subscriber(&t, &server).await;
    let mut stream = Stream::open(&server, &feed, None).await;
    revoke_by_rfc7009(&server, &api, &feed).await;
    // The stream closes (reading past keep-alives and entries until it does).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.res.chunk())
            .await
            .expect("the stream ends within the test's patience")
            .unwrap();
        if chunk.is_none() {
            break;
        }
    }
    // A new one with the revoked token is refused.
    let res = get_feed(&server, &feed, "/stream").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    t.cleanup().await;
}

/// A log of many entries whose time passed (months of traffic before
/// retention caught up): start-up takes none of them into memory, yet
/// applies every position, so the follower never reads them again; a live
/// entry after them is taken.
async fn a_long_log_of_expired_entries_is_read_past_not_held_in_memory(t: TestDb) {
    const EXPIRED: i64 = 20_000;
    exec(
        &t.db,
        &format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {EXPIRED}) \
             INSERT INTO revocation_log (position, kind, id, until_at, revoked_at) \
             SELECT i, 'jti', 'old-' || i, 1000, 400 FROM n"
        ),
    )
    .await;
    exec(
        &t.db,
        &format!("UPDATE revocation_log_head SET position = {EXPIRED}"),
    )
    .await;
    let sets = RevokedSets::load(&t.db).await.unwrap();
    assert_eq!(sets.applied(), EXPIRED, "every position applied");
    assert!(sets.is_empty(), "none of them in memory");
    assert!(!sets.is_revoked("-", None, "old-1"));

    // A revocation after them is read, and only it.
    sets.revoke_access_token(&t.db, "live-jti", now() + 600, &SYSTEM)
        .await
        .unwrap();
    let again = RevokedSets::load(&t.db).await.unwrap();
    assert_eq!(again.applied(), EXPIRED + 1);
    assert_eq!(again.len(), 1);
    assert!(again.is_revoked("-", None, "live-jti"));
    t.cleanup().await;
}
