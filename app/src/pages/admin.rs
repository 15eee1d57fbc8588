//! The admin console: activity, clients with their token policy, the
//! server-wide defaults, users, sign-in providers ([`upstreams`]), the audit
//! log. Every page and action is checked on the server (the page guard and
//! each server function): 403 for anyone who is not an admin.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    api::admin::*,
    components::{
        chart::ActivityChart,
        layout::{Layout, LoadFailed},
        widgets::{ActionError, AppBadge, Confirm, Notice, Pager, SearchForm},
    },
    model::{
        format_time, AdminDelivery, AdminResourceServer, AppIdentity, CurrentUser, PolicyField,
    },
};

mod scopes;
mod upstreams;
pub use scopes::AdminScopesPage;
pub use upstreams::{AdminUpstreamPage, AdminUpstreamsPage};

/// The console's own navigation, above each admin page.
#[component]
fn AdminFrame(user: CurrentUser, title: String, children: Children) -> impl IntoView {
    view! {
        <Title text=title.clone()/>
        <Layout user=user>
            <nav class="subnav" aria-label="Admin">
                <a href="/admin">"Activity"</a>
                <a href="/admin/clients">"Clients"</a>
                <a href="/admin/defaults">"Default policy"</a>
                <a href="/admin/scopes">"Scopes"</a>
                <a href="/admin/users">"Users"</a>
                <a href="/admin/upstreams">"Sign-in providers"</a>
                <a href="/admin/audit">"Audit log"</a>
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

#[component]
pub fn AdminHomePage() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_admin_home());
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((user, stats)) => view! {
                        <AdminFrame user title="Admin".to_string()>
                            <h1>"Activity"</h1>
                            <div class="charts">
                                <section class="card"><ActivityChart title="Last 24 hours, per hour".to_string() buckets=stats.hourly hourly=true/></section>
                                <section class="card"><ActivityChart title="Last 30 days, per day".to_string() buckets=stats.daily hourly=false/></section>
                            </div>
                            <section class="card">
                                <h2>"Top clients by active sessions"</h2>
                                {if stats.top_clients.is_empty() {
                                    view! { <p class="muted">"No client holds a live session."</p> }.into_any()
                                } else {
                                    let max = stats.top_clients.iter().map(|c| c.families).max().unwrap_or(1).max(1);
                                    view! {
                                        <ol class="bars" data-testid="top-clients">
                                            {stats.top_clients.into_iter().map(|c| {
                                                // An SVG bar, not a style attribute: the CSP allows no inline styles.
                                                let width = (c.families * 100 / max).max(2).to_string();
                                                view! {
                                                    <li>
                                                        <a href=format!("/admin/clients/{}", c.client_id)>{c.name}</a>
                                                        <svg class="bar" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true">
                                                            <rect width=width height="1"></rect>
                                                        </svg>
                                                        <span class="muted">{c.families}</span>
                                                    </li>
                                                }
                                            }).collect_view()}
                                        </ol>
                                    }.into_any()
                                }}
                            </section>
                        </AdminFrame>
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn AdminClientsPage() -> impl IntoView {
    let q = query_value("q");
    let deleted = query_value("deleted");
    let create = ServerAction::<CreateClient>::new();
    let data = Resource::new(move || q().unwrap_or_default(), get_admin_clients);
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((user, clients)) => view! {
                        <AdminFrame user title="Clients".to_string()>
                            <h1>"Clients"</h1>
                            <Notice text=Signal::derive(move || deleted().map(|n| format!("{n} deleted; everything it held is revoked.")))/>
                            <SearchForm action="/admin/clients" label="Search by name or client_id" value=q().unwrap_or_default()/>
                            <div class="table-wrap card">
                                <table class="list" data-testid="clients">
                                    <thead><tr><th>"Name"</th><th>"Kind"</th><th>"Grant types"</th><th>"Refresh"</th><th>"Grants"</th><th>"Sessions"</th><th>"Last activity"</th></tr></thead>
                                    <tbody>
                                        {clients.into_iter().map(|c| view! {
                                            <tr data-client=c.client_id.clone()>
                                                <td><a href=format!("/admin/clients/{}", c.client_id)>{c.name}</a><div class="muted small"><code>{c.client_id.clone()}</code></div></td>
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
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
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

#[component]
pub fn AdminClientPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let client_id = move || params.read().get("id").unwrap_or_default();
    let save = ServerAction::<SaveClientPolicy>::new();
    let revoke = ServerAction::<RevokeClientTokens>::new();
    let rotate = ServerAction::<RotateClientSecret>::new();
    let delete = ServerAction::<DeleteClient>::new();
    let edit = ServerAction::<UpdateClient>::new();
    let serve = ServerAction::<SaveResourceServer>::new();
    let data = Resource::new(
        move || {
            (
                client_id(),
                query.read().get("saved"),
                query.read().get("revoked_grants"),
                save.version().get(),
                edit.version().get(),
                serve.version().get(),
            )
        },
        |(id, ..)| get_admin_client(id),
    );
    let notice = move || {
        let q = query.read();
        match (
            q.get("saved").as_deref(),
            q.get("revoked_grants"),
            q.get("revoked_families"),
        ) {
            (_, Some(g), Some(f)) => Some(format!(
                "Revoked {g} grants and {f} sessions: no token of this client works any more."
            )),
            (Some("policy"), ..) => {
                Some("Policy saved. It applies from the next token request on.".to_string())
            }
            (Some("secret"), ..) => {
                Some("New secret made. The old one stopped working.".to_string())
            }
            (Some("created"), ..) => Some("Client registered.".to_string()),
            (Some("registration"), ..) => Some("Registration saved.".to_string()),
            (Some("resource_server"), ..) => Some(
                "Resource server saved. Tokens issued from now on name its audience.".to_string(),
            ),
            _ => None,
        }
    };
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(ClientView { me, detail: Some(d), new_secret }) => {
                        let c = d.client.clone();
                        let id = c.client_id.clone();
                        let edit_id = id.clone();
                        let (id2, id3, id4) = (id.clone(), id.clone(), id.clone());
                        let rs_id = id.clone();
                        let name = c.name.clone();
                        let logout_uri = d.backchannel_logout_uri.clone().unwrap_or_default();
                        let deliveries = (d.backchannel_logout_uri.is_some() || !d.undelivered.is_empty())
                            .then(|| d.undelivered.clone());
                        view! {
                            <AdminFrame user=me title=c.name.clone()>
                                <p class="crumbs"><a href="/admin/clients">"Clients"</a>" / "</p>
                                <h1 data-testid="client-name">{c.name.clone()}</h1>
                                <p class="muted"><code>{id.clone()}</code>{format!(" · {} · registered {}", c.kind, format_time(d.created_at))}</p>
                                <Notice text=Signal::derive(notice)/>
                                {new_secret.map(|s| view! {
                                    <div class="notice success secret" role="status">
                                        <p><strong>"Client secret — shown this once. Copy it now."</strong></p>
                                        <input type="text" readonly value=s.clone() data-testid="new-secret" aria-label="Client secret" class="mono"/>
                                        <button type="button" class="button secondary"
                                            on:click=move |_| {
                                                #[cfg(feature = "hydrate")]
                                                {
                                                    let _ = window().navigator().clipboard().write_text(&s);
                                                }
                                            }>"Copy"</button>
                                    </div>
                                })}
                                <section class="card">
                                    <h2>"Token policy"</h2>
                                    <p class="muted">"Empty fields and “Inherit” use the server default. Durations: 90s, 15m, 1h, 30d."</p>
                                    <ActionError action=save/>
                                    <ActionForm action=save attr:class="policy-form" attr:data-testid="policy-form">
                                        <input type="hidden" name="client_id" value=id.clone()/>
                                        <PolicyInputs fields=d.policy.clone() inherit=true live_refresh_tokens=d.live_refresh_tokens/>
                                        <button type="submit" class="button primary" disabled=move || save.pending().get()>
                                            {move || if save.pending().get() { "Saving…" } else { "Save policy" }}
                                        </button>
                                    </ActionForm>
                                </section>
                                <section class="card">
                                    <h2>"Registration"</h2>
                                    <dl class="facts">
                                        <div><dt>"Grant types"</dt><dd>{c.grant_types.join(", ")}</dd></div>
                                        <div><dt>"Redirect URIs"</dt><dd>{d.redirect_uris.join(" ")}</dd></div>
                                        <div><dt>"Post-logout URIs"</dt><dd>{d.post_logout_redirect_uris.join(" ")}</dd></div>
                                        <div><dt>"Extra scopes"</dt><dd>{d.extra_scopes.join(" ")}</dd></div>
                                        <div><dt>"Shown to people"</dt><dd data-testid="client-identity"><AppBadge app=d.identity.clone()/></dd></div>
                                        <div><dt>"In use"</dt><dd>{format!("{} grants, {} sessions", c.active_grants, c.active_families)}</dd></div>
                                        <div><dt>"Back-channel logout"</dt><dd data-testid="backchannel-uri">{match &d.backchannel_logout_uri {
                                            Some(uri) => format!("{uri}{}", if d.backchannel_logout_session_required { " (sid required)" } else { "" }),
                                            None => "none".to_string(),
                                        }}</dd></div>
                                    </dl>
                                    // Open while its save was refused: the message and the form are inside.
                                    <details class="edit" open=move || edit.value().with(|v| matches!(v, Some(Err(_))))>
                                        <summary class="button secondary">"Edit registration"</summary>
                                        <ActionError action=edit/>
                                        <ActionForm action=edit attr:class="stack">
                                            <input type="hidden" name="client_id" value=edit_id/>
                                            <label for="e-name">"Name"</label>
                                            <input id="e-name" name="name" type="text" required maxlength="100" value=c.name.clone()/>
                                            <fieldset>
                                                <legend>"Grant types"</legend>
                                                <label class="check"><input type="checkbox" name="grant_code" checked=c.grant_types.iter().any(|g| g == "authorization_code")/>" authorization_code"</label>
                                                <label class="check"><input type="checkbox" name="grant_refresh" checked=c.grant_types.iter().any(|g| g == "refresh_token")/>" refresh_token"</label>
                                                <label class="check"><input type="checkbox" name="grant_client_credentials" checked=c.grant_types.iter().any(|g| g == "client_credentials")/>" client_credentials"</label>
                                            </fieldset>
                                            <label for="e-redirect">"Redirect URIs (one per line)"</label>
                                            <textarea id="e-redirect" name="redirect_uris" rows="2">{d.redirect_uris.join("\n")}</textarea>
                                            <label for="e-logout">"Post-logout redirect URIs (one per line)"</label>
                                            <textarea id="e-logout" name="post_logout_redirect_uris" rows="2">{d.post_logout_redirect_uris.join("\n")}</textarea>
                                            <label for="e-scopes">"Extra scopes (space-separated)"</label>
                                            <input id="e-scopes" name="extra_scopes" type="text" value=d.extra_scopes.join(" ")/>
                                            <label for="e-bcl">"Back-channel logout URI (https, or http on localhost; empty: none)"</label>
                                            <input id="e-bcl" name="backchannel_logout_uri" type="text" inputmode="url" autocomplete="off" value=logout_uri/>
                                            <label class="check"><input type="checkbox" name="backchannel_logout_session_required" checked=d.backchannel_logout_session_required/>" Logout tokens must name the sign-in (sid)"</label>
                                            <MetadataInputs prefix="e" current=d.identity.clone()/>
                                            <button type="submit" class="button primary" disabled=move || edit.pending().get()>"Save registration"</button>
                                        </ActionForm>
                                    </details>
                                    <ActionError action=rotate/>
                                    {(c.kind == "confidential").then(|| view! {
                                        <Confirm label="Rotate secret".to_string() question="Make a new secret?".to_string()
                                            detail="The current secret stops working at once; the app needs the new one.".to_string()>
                                            <ActionForm action=rotate>
                                                <input type="hidden" name="client_id" value=id2.clone()/>
                                                <button type="submit" class="button danger">"Yes, rotate the secret"</button>
                                            </ActionForm>
                                        </Confirm>
                                    })}
                                </section>
                                <ResourceServerCard client_id=rs_id current=d.resource_server.clone() serve/>
                                {deliveries.map(|undelivered| view! { <Deliveries undelivered current=d.backchannel_logout_uri.clone()/> })}
                                <section class="card danger-zone">
                                    <h2>"Revoke and delete"</h2>
                                    <ActionError action=revoke/>
                                    <ActionError action=delete/>
                                    <div class="card-actions">
                                        <Confirm label="Revoke all tokens of this client".to_string()
                                            question=format!("Revoke all tokens of {name}?")
                                            detail=format!("{} grants and {} sessions end at once; its client_credentials tokens too.", c.active_grants, c.active_families)>
                                            <ActionForm action=revoke>
                                                <input type="hidden" name="client_id" value=id3.clone()/>
                                                <button type="submit" class="button danger" disabled=move || revoke.pending().get()>"Yes, revoke everything"</button>
                                            </ActionForm>
                                        </Confirm>
                                        <Confirm label="Delete client".to_string()
                                            question=format!("Delete {name}?")
                                            detail=format!("{} grants and {} sessions die, and the client can no longer sign anyone in.", c.active_grants, c.active_families)>
                                            <ActionForm action=delete>
                                                <input type="hidden" name="client_id" value=id4.clone()/>
                                                <input type="hidden" name="name" value=name.clone()/>
                                                <button type="submit" class="button danger">"Yes, delete it"</button>
                                            </ActionForm>
                                        </Confirm>
                                    </div>
                                </section>
                            </AdminFrame>
                        }.into_any()
                    }
                    Ok(ClientView { me, detail: None, .. }) => view! {
                        <AdminNotFound user=me what="Client" back="/admin/clients" back_label="All clients"/>
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Whether a client is a resource server: its audience and served scopes,
/// a form to set them, and a way back to an ordinary client.
#[component]
fn ResourceServerCard(
    client_id: String,
    current: Option<AdminResourceServer>,
    serve: ServerAction<SaveResourceServer>,
) -> impl IntoView {
    let (audience, scopes) = current
        .as_ref()
        .map(|r| (r.audience.clone(), r.scopes.join(" ")))
        .unwrap_or_default();
    let remove_id = client_id.clone();
    view! {
        <section class="card" data-testid="resource-server">
            <h2>"Resource server"</h2>
            {match &current {
                Some(r) => view! {
                    <dl class="facts">
                        <div><dt>"Audience"</dt><dd><code>{r.audience.clone()}</code></dd></div>
                        <div><dt>"Serves"</dt><dd>{if r.scopes.is_empty() { "No scope yet".to_string() } else { r.scopes.join(" ") }}</dd></div>
                    </dl>
                    <p class="muted">"Tokens carrying a scope it serves name this audience; it may introspect them and no others."</p>
                }.into_any(),
                None => view! {
                    <p class="muted">"Not a resource server. An API that checks Latchkey's tokens is one: give it an audience (a URI) and the scopes it serves."</p>
                }.into_any(),
            }}
            <ActionError action=serve/>
            <details class="edit" open=move || serve.value().with(|v| matches!(v, Some(Err(_))))>
                <summary class="button secondary">{if current.is_some() { "Edit resource server" } else { "Make it a resource server" }}</summary>
                <ActionForm action=serve attr:class="stack">
                    <input type="hidden" name="client_id" value=client_id/>
                    <label for="rs-audience">"Audience (an absolute URI, e.g. https://notes.example/api)"</label>
                    <input id="rs-audience" name="audience" type="text" required maxlength="200" value=audience/>
                    <label for="rs-scopes">"Scopes it serves (space-separated)"</label>
                    <input id="rs-scopes" name="scopes" type="text" value=scopes/>
                    <button type="submit" class="button primary" disabled=move || serve.pending().get()>"Save resource server"</button>
                </ActionForm>
            </details>
            {current.is_some().then(|| view! {
                <Confirm label="Stop being a resource server".to_string() question="Make it an ordinary client?".to_string()
                    detail="New tokens no longer name its audience, and it can no longer introspect them.".to_string()>
                    <ActionForm action=serve>
                        <input type="hidden" name="client_id" value=remove_id/>
                        <input type="hidden" name="remove" value="yes"/>
                        <button type="submit" class="button danger">"Yes, stop"</button>
                    </ActionForm>
                </Confirm>
            })}
        </section>
    }
}

/// A client's back-channel logout tokens not delivered: still being retried,
/// or given up. A row's target is named only where it is not the client's
/// `current` URI (it was changed since).
#[component]
fn Deliveries(undelivered: Vec<AdminDelivery>, current: Option<String>) -> impl IntoView {
    let to = current
        .clone()
        .map(|uri| view! { " Sent to "<code>{uri}</code>"." });
    view! {
        <section class="card" data-testid="deliveries">
            <h2>"Back-channel logout deliveries"</h2>
            {if undelivered.is_empty() {
                view! { <p class="muted">"Every logout token was delivered."{to}</p> }.into_any()
            } else {
                view! {
                    <p class="muted">"Not delivered yet (retried with growing delays for 24 hours) or given up, newest first."{to}</p>
                    <div class="table-wrap">
                        <table class="list deliveries">
                            <thead><tr><th>"Since"</th><th>"Ends"</th><th>"Attempts"</th><th>"Last error"</th><th>"Next attempt"</th></tr></thead>
                            <tbody>
                                {undelivered.into_iter().map(|u| {
                                    let elsewhere = (Some(&u.target) != current.as_ref()).then(|| view! { <div class="muted small mono">{u.target.clone()}</div> });
                                    view! {
                                        <tr>
                                            <td class="when">{format_time(u.created_at)}</td>
                                            <td class="ends">
                                                <a href=format!("/admin/users/{}", u.user_id)>{if u.one_sign_in { "one sign-in" } else { "all sessions" }}</a>
                                                {elsewhere}
                                            </td>
                                            <td>{u.attempts}</td>
                                            <td class="error small">{u.last_error.unwrap_or_else(|| "—".into())}</td>
                                            <td>{match (u.next_attempt_at, u.gave_up_at) {
                                                (_, Some(at)) => view! { <span class="warn-text">{format!("gave up {}", format_time(at))}</span> }.into_any(),
                                                (Some(at), None) => format_time(at).into_any(),
                                                (None, None) => "—".into_any(),
                                            }}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

#[component]
pub fn AdminDefaultsPage() -> impl IntoView {
    let saved = query_value("saved");
    let save = ServerAction::<SavePolicyDefaults>::new();
    let data = Resource::new(
        move || (saved(), save.version().get()),
        |_| get_policy_defaults(),
    );
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((user, fields, live)) => view! {
                        <AdminFrame user title="Default policy".to_string()>
                            <h1>"Default token policy"</h1>
                            <p class="lead">"What every client gets unless it overrides a field."</p>
                            <Notice text=Signal::derive(move || saved().map(|_| "Defaults saved. They apply from the next token request on.".to_string()))/>
                            <section class="card">
                                <ActionError action=save/>
                                <ActionForm action=save attr:class="policy-form">
                                    <PolicyInputs fields inherit=false live_refresh_tokens=live/>
                                    <button type="submit" class="button primary" disabled=move || save.pending().get()>"Save defaults"</button>
                                </ActionForm>
                            </section>
                        </AdminFrame>
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn AdminUsersPage() -> impl IntoView {
    let q = query_value("q");
    let create = ServerAction::<CreateUser>::new();
    let data = Resource::new(move || q().unwrap_or_default(), get_admin_users);
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((user, users)) => view! {
                        <AdminFrame user title="Users".to_string()>
                            <h1>"Users"</h1>
                            <SearchForm action="/admin/users" label="Search by username" value=q().unwrap_or_default()/>
                            <div class="table-wrap card">
                                <table class="list" data-testid="users">
                                    <thead><tr><th>"Username"</th><th>"Role"</th><th>"Status"</th><th>"Created"</th></tr></thead>
                                    <tbody>
                                        {users.into_iter().map(|u| view! {
                                            <tr>
                                                <td><a href=format!("/admin/users/{}", u.id)>{u.username}</a></td>
                                                <td>{if u.is_admin { "admin" } else { "user" }}</td>
                                                <td>{if u.disabled { "disabled" } else { "active" }}</td>
                                                <td>{format_time(u.created_at)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                            <section class="card">
                                <h2>"Create a user"</h2>
                                <ActionError action=create/>
                                <ActionForm action=create attr:class="stack">
                                    <label for="u-name">"Username"</label>
                                    <input id="u-name" name="username" type="text" required maxlength="64" autocomplete="off"/>
                                    <label for="u-pass">"Password"</label>
                                    <input id="u-pass" name="password" type="password" required autocomplete="new-password"/>
                                    <label class="check"><input type="checkbox" name="is_admin"/>" Administrator"</label>
                                    <button type="submit" class="button primary" disabled=move || create.pending().get()>"Create user"</button>
                                </ActionForm>
                            </section>
                        </AdminFrame>
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn AdminUserPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let update = ServerAction::<UpdateUser>::new();
    let cut = ServerAction::<CutUserOff>::new();
    let data = Resource::new(
        move || {
            (
                params.read().get("id").unwrap_or_default(),
                query.read().get("saved"),
                query.read().get("revoked_grants"),
                query.read().get("sessions_ended"),
            )
        },
        |(id, ..)| get_admin_user(id),
    );
    let notice = move || {
        let q = query.read();
        let mut parts = Vec::new();
        match q.get("saved").as_deref() {
            Some("disable") => parts.push("User disabled: they cannot sign in.".to_string()),
            Some("enable") => parts.push("User enabled.".to_string()),
            Some("make_admin") => parts.push("Now an administrator.".to_string()),
            Some("remove_admin") => parts.push("No longer an administrator.".to_string()),
            Some("created") => parts.push("User created.".to_string()),
            Some("clear_throttle") => {
                parts.push("Failed sign-ins forgotten: they can sign in again.".to_string())
            }
            _ => {}
        }
        if let Some(n) = q.get("revoked_grants") {
            parts.push(format!("{n} app grants revoked."));
        }
        if let Some(n) = q.get("sessions_ended") {
            parts.push(format!("{n} sign-in sessions ended."));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok((me, Some(d))) => {
                        let u = d.user.clone();
                        let (id0, id1, id2, id3) = (u.id.clone(), u.id.clone(), u.id.clone(), u.id.clone());
                        let id4 = u.id.clone();
                        let (apps_n, sessions_n) = (d.apps.len(), d.sessions.len());
                        view! {
                            <AdminFrame user=me title=u.username.clone()>
                                <p class="crumbs"><a href="/admin/users">"Users"</a>" / "</p>
                                <h1 data-testid="user-name">{u.username.clone()}
                                    {u.is_admin.then(|| view! { <span class="badge ok">"admin"</span> })}
                                    {u.disabled.then(|| view! { <span class="badge warn">"disabled"</span> })}
                                </h1>
                                <Notice text=Signal::derive(notice)/>
                                <ActionError action=update/>
                                <ActionError action=cut/>
                                <section class="card">
                                    <h2>{format!("Apps ({apps_n})")}</h2>
                                    {if d.apps.is_empty() { view! { <p class="muted">"No app holds access for this user."</p> }.into_any() } else { view! {
                                        <ul class="rows">{d.apps.into_iter().map(|a| view! {
                                            <li class="row"><div><a href=format!("/admin/clients/{}", a.client_id)>{a.client_name}</a>
                                                <div class="muted small">{format!("{} · given {} · last used {} · {} sessions", a.scopes.join(" "), format_time(a.granted_at), a.last_used_at.map(format_time).unwrap_or_else(|| "never".into()), a.active_families)}</div></div></li>
                                        }).collect_view()}</ul>
                                    }.into_any() }}
                                    <Confirm label="Revoke all of this user's apps".to_string() question=format!("Revoke all {apps_n} apps of {}?", u.username)
                                        detail="Every grant, session and token of theirs ends at once.".to_string()>
                                        <ActionForm action=cut>
                                            <input type="hidden" name="user_id" value=id0/>
                                            <input type="hidden" name="what" value="apps"/>
                                            <button type="submit" class="button danger">"Yes, revoke their apps"</button>
                                        </ActionForm>
                                    </Confirm>
                                </section>
                                <section class="card">
                                    <h2>{format!("Sign-in sessions ({sessions_n})")}</h2>
                                    <ul class="rows">{d.sessions.into_iter().map(|s| view! {
                                        <li class="row"><div><strong>{s.device}</strong>{format!(" · {} · signed in {} · last seen {}", s.ip, format_time(s.started_at), format_time(s.last_seen_at))}</div></li>
                                    }).collect_view()}</ul>
                                    <Confirm label="Sign out everywhere".to_string() question=format!("End all {sessions_n} sign-in sessions of {}?", u.username)
                                        detail="They are signed out on every browser; app sessions started there end per each app's revoke-on-logout.".to_string()>
                                        <ActionForm action=cut>
                                            <input type="hidden" name="user_id" value=id1/>
                                            <input type="hidden" name="what" value="sessions"/>
                                            <button type="submit" class="button danger">"Yes, sign them out"</button>
                                        </ActionForm>
                                    </Confirm>
                                </section>
                                <section class="card danger-zone">
                                    <h2>"Account"</h2>
                                    {d.sign_in_locked_until.map(|until| view! {
                                        <div class="notice warn" data-testid="sign-in-locked">
                                            <p>{format!("Sign-in is locked until {} after repeated failed attempts (this username, from any address).", format_time(until))}</p>
                                            <ActionForm action=update>
                                                <input type="hidden" name="user_id" value=id4/>
                                                <input type="hidden" name="what" value="clear_throttle"/>
                                                <button type="submit" class="button secondary">"Allow sign-in again"</button>
                                            </ActionForm>
                                        </div>
                                    })}
                                    <div class="card-actions">
                                        <ActionForm action=update>
                                            <input type="hidden" name="user_id" value=id2/>
                                            <input type="hidden" name="what" value=if u.disabled { "enable" } else { "disable" }/>
                                            <button type="submit" class="button danger-outline">{if u.disabled { "Enable user" } else { "Disable user (revokes everything)" }}</button>
                                        </ActionForm>
                                        <ActionForm action=update>
                                            <input type="hidden" name="user_id" value=id3/>
                                            <input type="hidden" name="what" value=if u.is_admin { "remove_admin" } else { "make_admin" }/>
                                            <button type="submit" class="button secondary">{if u.is_admin { "Remove admin rights" } else { "Make administrator" }}</button>
                                        </ActionForm>
                                    </div>
                                </section>
                            </AdminFrame>
                        }.into_any()
                    }
                    Ok((me, None)) => view! {
                        <AdminNotFound user=me what="User" back="/admin/users" back_label="All users"/>
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn AdminAuditPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.read().get(k).unwrap_or_default();
    let data = Resource::new(
        move || {
            (
                get("user"),
                get("client"),
                get("kind"),
                get("from"),
                get("to"),
                crate::model::page_number(Some(&get("page"))),
            )
        },
        |(user, client, kind, from, to, page)| get_audit(user, client, kind, from, to, page),
    );
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let filters: Vec<(&str, String)> = ["user", "client", "kind", "from", "to"].into_iter().map(|k| (k, get(k))).collect();
                let qs: String = url_query(&filters);
                match data.await {
                    Ok((user, page)) => view! {
                        <AdminFrame user title="Audit log".to_string()>
                            <h1>"Audit log"</h1>
                            <form method="get" action="/admin/audit" class="filters">
                                {filters.iter().map(|(k, v)| {
                                    let label = match *k { "user" => "User (id or name)", "client" => "Client id", "kind" => "Event kind", "from" => "From (YYYY-MM-DD)", _ => "To (YYYY-MM-DD)" };
                                    view! { <label>{label}<input name=*k type="text" value=v.clone()/></label> }
                                }).collect_view()}
                                <button type="submit" class="button secondary">"Filter"</button>
                            </form>
                            <p class="muted">{format!("{} events. ", page.total)}
                                <a href=format!("/admin/audit/export?format=csv&{qs}") data-testid="export-csv">"Export CSV"</a>" · "
                                <a href=format!("/admin/audit/export?format=json&{qs}")>"Export JSON"</a>
                            </p>
                            // Scrolls sideways on narrow screens: focusable, so the keyboard scrolls it too.
                            <div class="table-wrap card" tabindex="0" role="region" aria-label="Audit events">
                                <table class="list audit" data-testid="audit">
                                    <thead><tr><th>"Time"</th><th>"Event"</th><th>"Actor"</th><th>"User"</th><th>"Client"</th><th>"IP"</th><th>"Detail"</th></tr></thead>
                                    <tbody>{page.items.iter().cloned().map(|e| view! {
                                        <tr><td>{format_time(e.at)}</td><td>{e.kind}</td><td>{e.actor}</td><td>{e.subject}</td><td>{e.client}</td><td>{e.ip}</td><td class="detail"><code>{e.detail}</code></td></tr>
                                    }).collect_view()}</tbody>
                                </table>
                            </div>
                            <Pager page=page.page pages=page.pages() base=if qs.is_empty() { "/admin/audit".to_string() } else { format!("/admin/audit?{qs}") }/>
                        </AdminFrame>
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn url_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value (no dependency on `url`, which is server-only).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
