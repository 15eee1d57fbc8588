//! The registered clients: a searchable list with their usage, and the form
//! to register one.

use leptos::prelude::*;

use super::{query_value, AdminFrame, MetadataInputs};
use crate::{
    api::admin::*,
    components::{
        layout::Loaded,
        widgets::{ActionError, Notice, SearchForm},
    },
    model::{format_time, AppIdentity},
    paths,
};

#[component]
pub fn AdminClientsPage() -> impl IntoView {
    let q = query_value("q");
    let deleted = query_value("deleted");
    let create = ServerAction::<CreateClient>::new();
    let data = Resource::new(move || q().unwrap_or_default(), get_admin_clients);
    view! {
        <Loaded data=data page=move |(user, clients)| view! {
            <AdminFrame user title="Clients".to_string()>
                <h1>"Clients"</h1>
                <Notice text=Signal::derive(move || deleted().map(|n| format!("{n} deleted; everything it held is revoked.")))/>
                <SearchForm action=paths::ADMIN_CLIENTS label="Search by name or client_id" value=q().unwrap_or_default()/>
                <div class="table-wrap card">
                    <table class="list" data-testid="clients">
                        <thead><tr><th>"Name"</th><th>"Kind"</th><th>"Grant types"</th><th>"Refresh"</th><th>"Grants"</th><th>"Sessions"</th><th>"Last activity"</th></tr></thead>
                        <tbody>
                            {clients.into_iter().map(|c| view! {
                                <tr data-client=c.client_id.clone()>
                                    <td><a href=paths::admin_client(&c.client_id)>{c.name}</a><div class="muted small"><code>{c.client_id.clone()}</code></div></td>
                                    <td>{c.kind}</td>
                                    <td>{c.grant_types.join(", ")}</td>
                                    <td>{if c.refresh_enabled { "on" } else { "off" }}</td>
                                    <td>{c.active_grants}</td>
                                    <td>{c.active_families}</td>
                                    <td>{c.last_activity.map(format_time).unwrap_or_else(|| "never".into())}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
                <section class="card">
                    <h2>"Register a client"</h2>
                    <ActionError action=create/>
                    <ActionForm action=create attr:class="stack">
                        <label for="c-name">"Name"</label>
                        <input id="c-name" name="name" type="text" required maxlength="100"/>
                        <label for="c-kind">"Kind"</label>
                        <select id="c-kind" name="kind">
                            <option value="confidential">"Confidential (a server-side app or API: has a secret)"</option>
                            <option value="public">"Public (a browser or mobile app: PKCE, no secret)"</option>
                        </select>
                        <fieldset>
                            <legend>"Grant types"</legend>
                            <label class="check"><input type="checkbox" name="grant_code" checked/>" authorization_code"</label>
                            <label class="check"><input type="checkbox" name="grant_refresh" checked/>" refresh_token"</label>
                            <label class="check"><input type="checkbox" name="grant_client_credentials"/>" client_credentials"</label>
                        </fieldset>
                        <label for="c-redirect">"Redirect URIs (one per line)"</label>
                        <textarea id="c-redirect" name="redirect_uris" rows="2"></textarea>
                        <label for="c-logout">"Post-logout redirect URIs (one per line)"</label>
                        <textarea id="c-logout" name="post_logout_redirect_uris" rows="2"></textarea>
                        <label for="c-scopes">"Extra scopes (space-separated)"</label>
                        <input id="c-scopes" name="extra_scopes" type="text"/>
                        <MetadataInputs prefix="c" current=AppIdentity::default()/>
                        <button type="submit" class="button primary" disabled=move || create.pending().get()>
                            {move || if create.pending().get() { "Registering…" } else { "Register" }}
                        </button>
                    </ActionForm>
                </section>
            </AdminFrame>
        }.into_any()
        />
    }
}
