//! The admin console: one module per route, sharing the console's frame
//! ([`AdminFrame`]), its not-found page and the policy and metadata inputs.
//! Every page and action is checked on the server (the page guard and each
//! server function): 403 for anyone who is not an admin.
//!
//! | module | route |
//! | --- | --- |
//! | [`home`] | `/admin`: activity |
//! | [`clients`] | `/admin/clients`: the clients, registering one |
//! | [`client`] | `/admin/clients/{id}`: one client with its token policy |
//! | [`defaults`] | `/admin/defaults`: the server-wide default policy |
//! | [`scopes`] | `/admin/scopes`: the scope catalogue |
//! | [`users`] | `/admin/users`: the people, creating one |
//! | [`user`] | `/admin/users/{id}`: one person |
//! | [`upstreams`] | `/admin/upstreams`, `/admin/upstreams/{id}`: sign-in providers |
//! | [`audit`] | `/admin/audit`: the audit log |

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    components::layout::Layout,
    model::{AppIdentity, CurrentUser, PolicyField},
    paths,
};

mod audit;
mod client;
mod clients;
mod defaults;
mod home;
mod scopes;
mod upstreams;
mod user;
mod users;
pub use audit::AdminAuditPage;
pub use client::AdminClientPage;
pub use clients::AdminClientsPage;
pub use defaults::AdminDefaultsPage;
pub use home::AdminHomePage;
pub use scopes::AdminScopesPage;
pub use upstreams::{AdminUpstreamPage, AdminUpstreamsPage};
pub use user::AdminUserPage;
pub use users::AdminUsersPage;

/// The console's own navigation, above each admin page.
#[component]
fn AdminFrame(user: CurrentUser, title: String, children: Children) -> impl IntoView {
    view! {
        <Title text=title.clone()/>
        <Layout user=user>
            <nav class="subnav" aria-label="Admin">
                <a href=paths::ADMIN>"Activity"</a>
                <a href=paths::ADMIN_CLIENTS>"Clients"</a>
                <a href=paths::ADMIN_DEFAULTS>"Default policy"</a>
                <a href=paths::ADMIN_SCOPES>"Scopes"</a>
                <a href=paths::ADMIN_USERS>"Users"</a>
                <a href=paths::ADMIN_UPSTREAMS>"Sign-in providers"</a>
                <a href=paths::ADMIN_AUDIT>"Audit log"</a>
            </nav>
            {children()}
        </Layout>
    }
}

/// The console page of something that does not exist (404): what, and the
/// way back to its list.
#[component]
fn AdminNotFound(
    user: CurrentUser,
    what: &'static str,
    back: &'static str,
    back_label: &'static str,
) -> impl IntoView {
    let title = format!("{what} not found");
    view! {
        <AdminFrame user=user title=title.clone()>
            <section class="card narrow"><h1>{title}</h1><p><a href=back>{back_label}</a></p></section>
        </AdminFrame>
    }
}

fn query_value(key: &'static str) -> impl Fn() -> Option<String> + Copy + Send + Sync + 'static {
    let query = use_query_map();
    move || query.read().get(key)
}

/// The RFC 7591 metadata inputs of the create and edit forms (ids `{prefix}-logo` ...).
#[component]
fn MetadataInputs(prefix: &'static str, current: AppIdentity) -> impl IntoView {
    let field = |key: &'static str, label: &'static str, value: Option<String>| {
        let id = format!("{prefix}-{key}");
        view! {
            <label for=id.clone()>{label}</label>
            <input id=id name=key type="url" inputmode="url" autocomplete="off" maxlength="500"
                placeholder="https://" value=value.unwrap_or_default()/>
        }
    };
    view! {
        <fieldset>
            <legend>"What people see (optional; https, or http on localhost)"</legend>
            {field("logo_uri", "Logo URL", current.logo_uri)}
            {field("client_uri", "Home page", current.client_uri)}
            {field("policy_uri", "Privacy policy", current.policy_uri)}
            {field("tos_uri", "Terms of service", current.tos_uri)}
            <label for=format!("{prefix}-description")>"Description (one paragraph, at most 300 characters)"</label>
            <textarea id=format!("{prefix}-description") name="description" rows="2" maxlength="300">{current.description.unwrap_or_default()}</textarea>
        </fieldset>
    }
}

/// The inputs of a policy form: each field with its default and effective value.
#[component]
fn PolicyInputs(
    fields: Vec<PolicyField>,
    inherit: bool,
    live_refresh_tokens: i64,
) -> impl IntoView {
    fields
        .into_iter()
        .map(|f| {
            let id = format!("p-{}", f.key);
            let state = match (&f.overridden, inherit) {
                (Some(v), true) => format!("Override: {v}. Effective: {}.", f.effective),
                (None, true) => format!("Inherits default ({}).", f.default),
                (_, false) => format!("Now: {}.", f.effective),
            };
            let input = if f.switch {
                let current = f.overridden.clone().unwrap_or_else(|| if inherit { "inherit".into() } else { f.effective.clone() });
                view! {
                    <select id=id.clone() name=f.key.clone() data-testid=format!("policy-{}", f.key)>
                        {inherit.then(|| view! { <option value="inherit" selected=current == "inherit">{format!("Inherit default ({})", f.default)}</option> })}
                        <option value="on" selected=current == "on">"On"</option>
                        <option value="off" selected=current == "off">"Off"</option>
                    </select>
                }
                .into_any()
            } else {
                let value = if inherit { f.overridden.clone().unwrap_or_default() } else { f.effective.clone() };
                let placeholder = if inherit { format!("inherits {}", f.default) } else { String::new() };
                view! {
                    <input id=id.clone() name=f.key.clone() type="text" value=value placeholder=placeholder
                        inputmode="text" autocomplete="off" data-testid=format!("policy-{}", f.key)/>
                }
                .into_any()
            };
            let warn = (f.key == "refresh_enabled" && live_refresh_tokens > 0).then(|| {
                view! {
                    <p class="warn-text small" data-testid="refresh-warning">
                        {format!("Switching refresh off stops {live_refresh_tokens} live refresh token{} at their next use.", if live_refresh_tokens == 1 { "" } else { "s" })}
                    </p>
                }
            });
            view! {
                <div class="policy-field">
                    <label for=id>{f.label}</label>
                    {input}
                    <p class="muted small" data-testid=format!("policy-state-{}", f.key)>{state}" "{f.help}</p>
                    {warn}
                </div>
            }
        })
        .collect_view()
}
