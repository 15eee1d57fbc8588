//! One client: its token policy, registration (edit, secret rotation), its
//! resource-server role, undelivered back-channel logouts, and revoking or
//! deleting it.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{AdminFrame, AdminNotFound, MetadataInputs, PolicyInputs};
use crate::{
    api::admin::*,
    components::{
        layout::Loaded,
        widgets::{ActionError, AppBadge, Confirm, Notice},
    },
    model::{format_time, AdminDelivery, AdminResourceServer},
    paths,
};

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
        <Loaded data=data page=move |loaded| match loaded {
            ClientView { me, detail: Some(d), new_secret } => {
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
                        <p class="crumbs"><a href=paths::ADMIN_CLIENTS>"Clients"</a>" / "</p>
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
            ClientView { me, detail: None, .. } => view! {
                <AdminNotFound user=me what="Client" back=paths::ADMIN_CLIENTS back_label="All clients"/>
            }.into_any(),
        }/>
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
                                                <a href=paths::admin_user(&u.user_id)>{if u.one_sign_in { "one sign-in" } else { "all sessions" }}</a>
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
