//! Every way access ends, as its actor ends it: the table that
//! `in_flight.rs` checks against everything in flight and `backchannel.rs`
//! against the logout tokens apps receive.

use app::domain::{
    admin::{self, UserChange},
    audit::Actor,
    policy::{self, PolicyChange},
};
use reqwest::{header, StatusCode};
use serde_json::Value;

use super::{
    flow::{another_browser, call, str_of, App, Person},
    TestDb, TestServer,
};

/// One test per way of ending (`name => Variant`, each running
/// `$run(t, Ending::Variant)`), and the `$other` tests after the braces, all
/// on both backends (one `on_both_backends!` per test file).
#[macro_export]
macro_rules! ending_tests {
    ($run:ident { $($name:ident => $ending:ident),* $(,)? } $($other:ident),* $(,)?) => {
        $(async fn $name(t: $crate::common::TestDb) {
            $run(t, $crate::common::endings::Ending::$ending).await
        })*
        $crate::on_both_backends!($($name,)* $($other),*);
    };
}

/// How access ends in one row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    DashboardSignOut,
    RpInitiatedLogout,
    SignOutAllOtherSessions,
    AdminSignsOutEverywhere,
    AdminDisablesUser,
    UserRevokesApp,
    AdminRevokesClient,
    AdminDeletesClient,
    RefreshSwitchedOff,
}

impl Ending {
    /// Whether it ends the tokens (every row but switching refresh off, which
    /// stops refresh tokens at their next use and leaves access tokens be).
    pub fn ends_tokens(self) -> bool {
        !matches!(self, Ending::RefreshSwitchedOff)
    }
}

/// Ends access the way `ending` says, as its actor would.
pub async fn end_access(
    ending: Ending,
    t: &TestDb,
    server: &TestServer,
    notes: &App,
    alice: &Person,
    tokens: &Value,
    grant_id: &str,
) {
    let admin = Actor::user("an-admin");
    match ending {
        Ending::DashboardSignOut => {
            let res = alice
                .http
                .post(server.url("/signout"))
                .header(header::ORIGIN, server.base.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::SEE_OTHER);
        }
        Ending::RpInitiatedLogout => {
            // The app sends alice's own browser, with her ID token.
            let res = alice
                .http
                .get(server.url("/oauth/logout"))
                .query(&[("id_token_hint", str_of(tokens, "id_token"))])
                .send()
                .await
                .unwrap();
            let html = res.text().await.unwrap();
            assert!(html.contains(r#"data-testid="signed-out""#), "{html}");
        }
        Ending::SignOutAllOtherSessions => {
            let phone = another_browser(alice, server).await;
            let res = call(&phone, server, "end_other_sessions", &[]).await;
            assert!(res.status().is_redirection(), "{}", res.status());
        }
        Ending::AdminSignsOutEverywhere => {
            admin::sign_out_everywhere(&t.db, &server.revoked, &alice.user_id, &admin)
                .await
                .unwrap();
        }
        Ending::AdminDisablesUser => {
            let change = UserChange {
                disabled: Some(true),
                is_admin: None,
            };
            admin::update_user(&t.db, &server.revoked, &alice.user_id, change, &admin)
                .await
                .unwrap();
        }
        Ending::UserRevokesApp => {
            let res = call(alice, server, "revoke_app", &[("grant_id", grant_id)]).await;
            assert!(res.status().is_redirection(), "{}", res.status());
        }
        Ending::AdminRevokesClient => {
            admin::revoke_client(&t.db, &server.revoked, &notes.client_id, &admin)
                .await
                .unwrap();
        }
        Ending::AdminDeletesClient => {
            admin::delete_client(&t.db, &server.revoked, &notes.client_id, &admin)
                .await
                .unwrap();
        }
        Ending::RefreshSwitchedOff => {
            let off = PolicyChange {
                refresh_enabled: Some(Some(false)),
                ..Default::default()
            };
            policy::set_client(&t.db, &notes.client_id, &off, None)
                .await
                .unwrap();
        }
    }
}
