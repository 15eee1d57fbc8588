//! Everything issued under a sign-in, a grant, a user or a client dies with
//! it, including what is still in flight (issue 9, fault 1): a table of every
//! way access ends, each against every thing in flight at that moment — an
//! authorization code not yet redeemed, a consent page open in another tab,
//! refreshes running at the same time — on both backends, over real HTTP.

mod common;

use app::domain::clients::ClientKind;
use common::{
    endings::{end_access, Ending},
    flow::*,
    TestDb, TestServer,
};
use reqwest::{header, StatusCode};
use serde_json::Value;

ending_tests!(run {
    dashboard_sign_out => DashboardSignOut,
    rp_initiated_logout => RpInitiatedLogout,
    sign_out_all_other_sessions => SignOutAllOtherSessions,
    admin_signs_the_user_out_everywhere => AdminSignsOutEverywhere,
    admin_disables_the_user => AdminDisablesUser,
    user_revokes_the_app => UserRevokesApp,
    admin_revokes_the_client => AdminRevokesClient,
    admin_deletes_the_client => AdminDeletesClient,
    admin_switches_refresh_off => RefreshSwitchedOff,
});

/// Refreshes running while access ends.
const IN_PROGRESS: usize = 4;

/// Alice, signed in in her browser, uses Notes; at the moment access ends she
/// has a code the app has not redeemed yet, a consent page open in another
/// tab, and the app is refreshing in several sessions at once.
async fn run(t: TestDb, ending: Ending) {
    let server = TestServer::start(&t.db).await;
    let notes = app(&t, "Notes", ClientKind::Confidential, &["notes:read"]).await;
    let alice = person(&t, &server, "alice").await;
    // App sessions started from this sign-in (the first one consents).
    let mut sessions = Vec::new();
    for _ in 0..IN_PROGRESS {
        sessions.push(tokens_for(&alice, &server, &notes, "openid").await);
    }
    let grant_id = jwt_part(str_of(&sessions[0], "access_token"), 1)["gid"]
        .as_str()
        .unwrap()
        .to_owned();
    // In flight: a code not yet redeemed ...
    let code = code_for(&alice, &server, &notes, "openid").await;
    // ... and a consent page (prompt=consent asks again) waiting for an answer.
    let mut params = authorize_params(&notes, "openid notes:read");
    params.push(("prompt", "consent".into()));
    let res = get_authorize(&alice.http, &server, &params).await;
    assert_eq!(res.status(), StatusCode::OK);
    let consent_request = request_id(&res.text().await.unwrap());

    // Access ends while every session refreshes.
    let refreshes = sessions
        .iter()
        .map(|s| refresh(&server, &notes, str_of(s, "refresh_token")));
    let end = end_access(ending, &t, &server, &notes, &alice, &sessions[0], &grant_id);
    let ((), answers) = tokio::join!(end, futures_util::future::join_all(refreshes));
    let mut refreshed: Vec<Value> = Vec::new();
    for res in answers {
        if res.status() == StatusCode::OK {
            refreshed.push(res.json().await.unwrap());
        }
    }

    // 1. The code in flight.
    let res = redeem(&server, &notes, &code).await;
    if ending.ends_tokens() {
        let (status, error) = oauth_error(res).await;
        let expected = match ending {
            // A deleted client cannot authenticate any more.
            Ending::AdminDeletesClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            _ => (StatusCode::BAD_REQUEST, "invalid_grant"),
        };
        assert_eq!((status, error.as_str()), expected, "{ending:?}: the code");
    } else {
        assert_eq!(res.status(), StatusCode::OK, "{ending:?}: the code");
        let tokens: Value = res.json().await.unwrap();
        assert!(
            tokens.get("refresh_token").is_none(),
            "{ending:?}: no refresh token"
        );
    }

    // 2. The consent page in the other tab.
    let res = decide(&alice.http, &server, &consent_request, "allow").await;
    if ending.ends_tokens() {
        assert_eq!(
            res.status(),
            StatusCode::BAD_REQUEST,
            "{ending:?}: the consent"
        );
        assert!(res.headers().get(header::LOCATION).is_none());
    } else {
        assert_eq!(
            res.status(),
            StatusCode::SEE_OTHER,
            "{ending:?}: the consent"
        );
        let code = query_of(&location(&res))["code"].clone();
        let res = redeem(&server, &notes, &code).await;
        assert_eq!(res.status(), StatusCode::OK);
        let tokens: Value = res.json().await.unwrap();
        assert!(tokens.get("refresh_token").is_none());
    }

    // 3. The refreshes that ran meanwhile, and every session from before.
    for tokens in sessions.iter().chain(&refreshed) {
        let access = str_of(tokens, "access_token");
        // A deleted client cannot introspect (nor may any other client see
        // its tokens): userinfo tells.
        let active = match ending {
            Ending::AdminDeletesClient => userinfo_takes(&server, access).await,
            _ => is_active(&server, &notes, access).await,
        };
        assert_eq!(active, !ending.ends_tokens(), "{ending:?}: an access token");
        if let Some(rt) = tokens.get("refresh_token").and_then(Value::as_str) {
            let (_, error) = oauth_error(refresh(&server, &notes, rt).await).await;
            let expected = match ending {
                Ending::RefreshSwitchedOff => "unauthorized_client",
                Ending::AdminDeletesClient => "invalid_client",
                _ => "invalid_grant",
            };
            assert_eq!(error, expected, "{ending:?}: a refresh token");
        }
    }
    t.cleanup().await;
}
