//! Latchkey's Leptos application: the dashboard pages and, behind the `ssr`
//! feature, the domain and storage layer the OAuth endpoints share.
//!
//! | module | owns |
//! | --- | --- |
//! | [`pages`] | one component per route: sign-in, My apps (home), app detail, sessions, security activity, the admin console |
//! | [`components`] | pieces pages share: the page layout, notices, confirm, pager |
//! | [`api`] | `#[server]` functions: thin, check the session, call the domain |
//! | [`model`] | wire types shared with the browser (never secrets) |
//! | `domain` (ssr) | store, users, clients, sign-in sessions, audit, demo data |
//!
//! Built twice by cargo-leptos: natively with `ssr` (linked into the `latchkey`
//! binary) and to wasm with `hydrate`.

#![recursion_limit = "256"]

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};

pub mod api;
pub mod components;
pub mod model;
pub mod pages;

#[cfg(feature = "ssr")]
pub mod domain;

/// Paths of the dashboard, shared by the router, links and the server's guards.
pub mod paths {
    pub const HOME: &str = "/";
    pub const SIGN_IN: &str = "/signin";
    pub const SIGN_OUT: &str = "/signout";
    pub const SESSIONS: &str = "/sessions";
    pub const SECURITY: &str = "/security";
    /// Where an upstream provider sends the browser back (the redirect URI
    /// registered there: `{issuer}/signin/upstream/callback`).
    pub const UPSTREAM_CALLBACK: &str = "/signin/upstream/callback";

    /// Starts a sign-in through upstream provider `id` (a form POST).
    pub fn upstream_sign_in(id: &str) -> String {
        format!("/signin/upstream/{id}")
    }

    /// The admin console: its activity page, then one path per console page.
    pub const ADMIN: &str = "/admin";
    pub const ADMIN_CLIENTS: &str = "/admin/clients";
    pub const ADMIN_DEFAULTS: &str = "/admin/defaults";
    pub const ADMIN_SCOPES: &str = "/admin/scopes";
    pub const ADMIN_USERS: &str = "/admin/users";
    pub const ADMIN_UPSTREAMS: &str = "/admin/upstreams";
    pub const ADMIN_AUDIT: &str = "/admin/audit";
    /// The audit log's CSV/JSON download (a server route, not a page).
    pub const ADMIN_AUDIT_EXPORT: &str = "/admin/audit/export";

    /// The console page of one client (by client_id).
    pub fn admin_client(client_id: &str) -> String {
        format!("{ADMIN_CLIENTS}/{client_id}")
    }

    /// The console page of one user (by id).
    pub fn admin_user(user_id: &str) -> String {
        format!("{ADMIN_USERS}/{user_id}")
    }

    /// The console page of one upstream sign-in provider (by id).
    pub fn admin_upstream(id: &str) -> String {
        format!("{ADMIN_UPSTREAMS}/{id}")
    }

    /// Whether a path belongs to the admin console.
    pub fn is_admin(path: &str) -> bool {
        path.strip_prefix(ADMIN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    /// The detail page of one of the user's apps (by grant id).
    pub fn app(grant_id: &str) -> String {
        format!("/apps/{grant_id}")
    }
}

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The document title as it goes into the page. leptos_meta 0.8 writes the
/// server-rendered `<title>` without escaping it, and titles carry app names
/// that clients chose: on the server they are escaped here (in the browser
/// the title is set as text, so it stays as it is).
fn title_markup(title: String) -> String {
    #[cfg(feature = "ssr")]
    {
        html_escape::encode_text(&title).into_owned()
    }
    #[cfg(not(feature = "ssr"))]
    {
        title
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/latchkey.css"/>
        <Title formatter=|page: String| {
            title_markup(if page.is_empty() { "Latchkey".to_string() } else { format!("{page} · Latchkey") })
        }/>
        <Router>
            <Routes fallback=pages::not_found::NotFound>
                // Data pages render completely on the server (SsrMode::Async), so they
                // work with JavaScript off; hydration then takes over.
                <Route path=path!("/") view=pages::home::HomePage ssr=SsrMode::Async/>
                <Route path=path!("/apps/:id") view=pages::app_detail::AppDetailPage ssr=SsrMode::Async/>
                <Route path=path!("/sessions") view=pages::sessions::SessionsPage ssr=SsrMode::Async/>
                <Route path=path!("/security") view=pages::security::SecurityPage ssr=SsrMode::Async/>
                <Route path=path!("/admin") view=pages::admin::AdminHomePage ssr=SsrMode::Async/>
                <Route path=path!("/admin/clients") view=pages::admin::AdminClientsPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/clients/:id") view=pages::admin::AdminClientPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/defaults") view=pages::admin::AdminDefaultsPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/scopes") view=pages::admin::AdminScopesPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/users") view=pages::admin::AdminUsersPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/users/:id") view=pages::admin::AdminUserPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/upstreams") view=pages::admin::AdminUpstreamsPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/upstreams/:id") view=pages::admin::AdminUpstreamPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/audit") view=pages::admin::AdminAuditPage ssr=SsrMode::Async/>
                <Route path=path!("/signin") view=pages::sign_in::SignInPage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // Tells browser tests (and curious people) that the page is interactive now.
    if let Some(body) = document().body() {
        let _ = body.set_attribute("data-hydrated", "");
    }
}

#[cfg(test)]
mod tests {
    use super::paths;

    /// The route table's `path!` literals (the macro takes literals only) are
    /// the paths the rest of the app links to.
    #[test]
    fn paths_match_the_route_table() {
        let source = include_str!("lib.rs");
        let routes: Vec<&str> = source
            .split("<Route path=path!(\"")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(route, _)| route))
            .collect();
        let linked = [
            paths::HOME.to_string(),
            paths::app(":id"),
            paths::SESSIONS.to_string(),
            paths::SECURITY.to_string(),
            paths::SIGN_IN.to_string(),
            paths::ADMIN.to_string(),
            paths::ADMIN_CLIENTS.to_string(),
            paths::admin_client(":id"),
            paths::ADMIN_DEFAULTS.to_string(),
            paths::ADMIN_SCOPES.to_string(),
            paths::ADMIN_USERS.to_string(),
            paths::admin_user(":id"),
            paths::ADMIN_UPSTREAMS.to_string(),
            paths::admin_upstream(":id"),
            paths::ADMIN_AUDIT.to_string(),
        ];
        let mut sorted_routes = routes.clone();
        sorted_routes.sort_unstable();
        let mut sorted_linked: Vec<&str> = linked.iter().map(String::as_str).collect();
        sorted_linked.sort_unstable();
        assert_eq!(sorted_routes, sorted_linked);
        for path in linked.iter().filter(|p| p.starts_with(paths::ADMIN)) {
            assert!(paths::is_admin(path), "{path}");
        }
        assert!(!paths::is_admin("/administrator"));
    }
}
