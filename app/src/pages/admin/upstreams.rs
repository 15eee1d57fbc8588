//! The console's sign-in providers: upstream OpenID Connect providers people
//! sign in through (`domain::upstream`). A list with the form to add one, and
//! a page per provider with its health (sign-ins, token revocations and their
//! failures), its settings and removal. The client secret is write-only: no
//! page ever receives it.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{AdminFrame, AdminNotFound};
use crate::{
    api::admin::*,
    components::{
        layout::Loaded,
        widgets::{ActionError, Confirm, Notice},
    },
    model::{format_time, AdminRevocationFailure, AdminUpstream, AdminUpstreamHealth},
    paths,
};

/// The form fields a refusal can name (`DomainError::Invalid` reads
/// `field: message`).
const FIELDS: [&str; 8] = [
    "name",
    "issuer",
    "client_id",
    "client_secret",
    "scopes",
    "revocation_endpoint",
    "revocation_token_param",
    "revocation_extra_params",
];

/// The field a refused save names, to mark its input: the message as
/// `ActionError` shows it starts with `field: `; a taken name is a conflict.
fn refused_field(error: &ServerFnError) -> Option<&'static str> {
    let text = error.to_string();
    let message = text.split_once(": ").map_or(text.as_str(), |(_, m)| m);
    if message.starts_with("an upstream provider named") {
        return Some("name");
    }
    let (field, _) = message.split_once(": ")?;
    FIELDS.into_iter().find(|f| *f == field)
}

/// The field the last run of `action` was refused for, if any.
fn invalid_field<S>(action: ServerAction<S>) -> Signal<Option<&'static str>>
where
    S: leptos::server_fn::ServerFn<Error = ServerFnError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Signal::derive(move || {
        action.value().with(|v| match v {
            Some(Err(e)) => refused_field(e),
            _ => None,
        })
    })
}

/// The redirect URI to register at a provider: wrapped at any width, and
/// selected whole by one click, ready to copy.
#[component]
fn RedirectUri(uri: String) -> impl IntoView {
    view! {
        <div class="copy-field" role="group" aria-labelledby="redirect-uri-label">
            <p id="redirect-uri-label" class="copy-label">"Redirect URI to register at the provider"</p>
            <code class="copy-value" data-testid="redirect-uri">{uri}</code>
        </div>
    }
}

/// The inputs of the add and edit forms. `current`: the provider edited
/// (its issuer is shown, not editable; an empty secret keeps its secret).
#[component]
fn ProviderFields(
    current: Option<AdminUpstream>,
    invalid: Signal<Option<&'static str>>,
) -> impl IntoView {
    let bad = move |field: &'static str| move || (invalid.get() == Some(field)).then_some("true");
    let editing = current.is_some();
    let p = current.unwrap_or_else(|| AdminUpstream {
        id: String::new(),
        name: String::new(),
        issuer: String::new(),
        client_id: String::new(),
        scopes: Vec::new(),
        revoke_at_logout: true,
        end_upstream_session: false,
        revocation_endpoint: None,
        revocation_token_param: None,
        revocation_extra_params: Vec::new(),
        created_at: 0,
        updated_at: 0,
    });
    let extra = p
        .revocation_extra_params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let overridden = p.revocation_endpoint.is_some()
        || p.revocation_token_param.is_some()
        || !p.revocation_extra_params.is_empty();
    let issuer = if editing {
        view! {
            <label for="u-issuer">"Issuer"</label>
            <input id="u-issuer" type="text" readonly value=p.issuer.clone() aria-describedby="u-issuer-help"/>
            <p id="u-issuer-help" class="muted small hint">"Cannot change: its users are linked to this issuer. Add another provider for another issuer."</p>
        }
        .into_any()
    } else {
        view! {
            <label for="u-issuer">"Issuer URL"</label>
            <input id="u-issuer" name="issuer" type="text" inputmode="url" required autocomplete="off"
                placeholder="https://sso.example.com" aria-describedby="u-issuer-help" aria-invalid=bad("issuer")/>
            <p id="u-issuer-help" class="muted small hint">"https (http only on localhost). Its discovery document is read at the first sign-in, not now."</p>
        }
        .into_any()
    };
    view! {
        <label for="u-name">"Name"</label>
        <input id="u-name" name="name" type="text" required maxlength="64" autocomplete="off"
            value=p.name.clone() placeholder="Corp SSO" aria-describedby="u-name-help" aria-invalid=bad("name")/>
        <p id="u-name-help" class="muted small hint">"On the sign-in page: “Sign in with …”."</p>
        {issuer}
        <label for="u-client-id">"Client ID"</label>
        <input id="u-client-id" name="client_id" type="text" required maxlength="255" autocomplete="off"
            value=p.client_id.clone() aria-invalid=bad("client_id")/>
        <label for="u-secret">{if editing { "New client secret" } else { "Client secret" }}</label>
        <input id="u-secret" name="client_secret" type="password" required=!editing autocomplete="new-password"
            placeholder=if editing { "unchanged" } else { "" } aria-describedby="u-secret-help" aria-invalid=bad("client_secret")/>
        <p id="u-secret-help" class="muted small hint">{if editing {
            "Empty keeps the current one. Stored encrypted; never shown."
        } else {
            "Stored encrypted; never shown again."
        }}</p>
        <label for="u-scopes">"Scopes besides openid (space-separated)"</label>
        <input id="u-scopes" name="scopes" type="text" autocomplete="off" value=p.scopes.join(" ")
            placeholder="profile email offline_access" aria-describedby="u-scopes-help" aria-invalid=bad("scopes")/>
        <p id="u-scopes-help" class="muted small hint">"offline_access brings a refresh token (what logout revokes); profile and email name new users."</p>
        <fieldset>
            <legend>"At logout"</legend>
            <label class="check"><input type="checkbox" name="revoke_at_logout" checked=p.revoke_at_logout data-testid="revoke-at-logout"/>
                " Revoke the provider's tokens when a sign-in through it ends"</label>
            <label class="check"><input type="checkbox" name="end_upstream_session" checked=p.end_upstream_session data-testid="end-upstream-session"/>
                " Offer signing out of the provider too"</label>
        </fieldset>
        <details class="overrides" open=move || overridden || invalid.get().is_some_and(|f| f.starts_with("revocation_"))>
            <summary>"Revocation overrides"</summary>
            <p class="muted small">"Only for a provider whose discovery document lacks revocation_endpoint, or that expects other parameters."</p>
            <label for="u-rev-endpoint">"Revocation endpoint"</label>
            <input id="u-rev-endpoint" name="revocation_endpoint" type="text" inputmode="url" autocomplete="off"
                value=p.revocation_endpoint.clone().unwrap_or_default() placeholder="from discovery" aria-invalid=bad("revocation_endpoint")/>
            <label for="u-rev-param">"Token parameter name"</label>
            <input id="u-rev-param" name="revocation_token_param" type="text" autocomplete="off"
                value=p.revocation_token_param.clone().unwrap_or_default() placeholder="token" aria-invalid=bad("revocation_token_param")/>
            <label for="u-rev-extra">"Extra parameters (one name=value per line)"</label>
            <textarea id="u-rev-extra" name="revocation_extra_params" rows="2" autocomplete="off"
                aria-invalid=bad("revocation_extra_params")>{extra}</textarea>
        </details>
    }
}

#[component]
pub fn AdminUpstreamsPage() -> impl IntoView {
    let query = use_query_map();
    let removed = move || query.read().get("removed");
    let add = ServerAction::<AddUpstream>::new();
    let invalid = invalid_field(add);
    let data = Resource::new(removed, |_| get_admin_upstreams());
    view! {
        <Loaded data=data page=move |UpstreamsView { me, providers, redirect_uri }| view! {
            <AdminFrame user=me title="Sign-in providers".to_string()>
                <h1>"Sign-in providers"</h1>
                <p class="lead">"People can sign in through another OpenID Connect provider, such as your company's. Signing out of Latchkey can revoke that provider's tokens too."</p>
                <Notice text=Signal::derive(move || removed().map(|n| format!("{n} removed: no new sign-ins through it. Its users stay, and can come back if it is added again.")))/>
                {if providers.is_empty() {
                    view! { <p class="card muted" data-testid="upstreams-empty">"No provider yet: people sign in with their Latchkey password only."</p> }.into_any()
                } else {
                    view! {
                        <div class="table-wrap card">
                            <table class="list upstreams stack-on-phone" data-testid="upstreams">
                                <thead><tr><th>"Name"</th><th>"Issuer"</th><th>"Client ID"</th><th>"Revoke at logout"</th></tr></thead>
                                <tbody>
                                    {providers.into_iter().map(|p| view! {
                                        <tr data-upstream=p.id.clone()>
                                            <td><a href=paths::admin_upstream(&p.id)>{p.name}</a></td>
                                            <td class="url" data-label="Issuer"><code>{p.issuer}</code></td>
                                            <td class="url" data-label="Client ID"><code>{p.client_id}</code></td>
                                            <td data-label="Revoke at logout">{if p.revoke_at_logout { "on" } else { "off" }}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any()
                }}
                <section class="card">
                    <h2>"Add provider"</h2>
                    <p class="muted">"First register Latchkey as a confidential client (authorization code flow) at the provider, with this redirect URI:"</p>
                    <RedirectUri uri=redirect_uri/>
                    <ActionError action=add/>
                    <ActionForm action=add attr:class="stack provider-form" attr:data-testid="add-upstream">
                        <ProviderFields current=None invalid/>
                        <button type="submit" class="button primary" disabled=move || add.pending().get()>
                            {move || if add.pending().get() { "Adding…" } else { "Add provider" }}
                        </button>
                    </ActionForm>
                </section>
            </AdminFrame>
        }.into_any()
        />
    }
}

#[component]
pub fn AdminUpstreamPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let save = ServerAction::<UpdateUpstream>::new();
    let remove = ServerAction::<RemoveUpstream>::new();
    let invalid = invalid_field(save);
    // Saves that succeeded: each reloads the page's data (a refused one does
    // not, so the form keeps what was typed next to its error).
    let saves = RwSignal::new(0u32);
    Effect::new(move || {
        if save.value().with(|v| matches!(v, Some(Ok(_)))) {
            saves.update(|n| *n += 1);
        }
    });
    let data = Resource::new(
        move || {
            (
                params.read().get("id").unwrap_or_default(),
                query.read().get("saved"),
                saves.get(),
            )
        },
        |(id, ..)| get_admin_upstream(id),
    );
    let notice = move || {
        match query.read().get("saved").as_deref() {
        Some("added") => Some(
            "Provider added: the sign-in page offers it now. Register the redirect URI at the provider if you have not yet."
                .to_string(),
        ),
        Some("settings") => Some("Settings saved. They apply from the next sign-in or logout on.".to_string()),
        Some("unchanged") => Some("Nothing changed.".to_string()),
        _ => None,
    }
    };
    view! {
        <Loaded data=data page=move |loaded| match loaded {
            UpstreamView { me, detail: Some(d), redirect_uri } => {
                let p = d.provider.clone();
                let (id, name) = (p.id.clone(), p.name.clone());
                let remove_id = id.clone();
                let linked = d.health.linked_users;
                view! {
                    <AdminFrame user=me title=p.name.clone()>
                        <p class="crumbs"><a href=paths::ADMIN_UPSTREAMS>"Sign-in providers"</a>" / "</p>
                        <h1 data-testid="upstream-name">{p.name.clone()}</h1>
                        <p class="muted">{format!("Added {} · changed {}", format_time(p.created_at), format_time(p.updated_at))}</p>
                        <Notice text=Signal::derive(notice)/>
                        <section class="card">
                            <dl class="facts provider-facts">
                                <div><dt>"Issuer"</dt><dd><code data-testid="upstream-issuer">{p.issuer.clone()}</code></dd></div>
                                <div><dt>"Client ID"</dt><dd><code>{p.client_id.clone()}</code></dd></div>
                                <div><dt>"Scopes"</dt><dd>{std::iter::once("openid".to_string()).chain(p.scopes.iter().cloned()).collect::<Vec<_>>().join(" ")}</dd></div>
                                <div><dt>"Revoke tokens at logout"</dt><dd data-testid="upstream-revoke">{if p.revoke_at_logout { "on" } else { "off" }}</dd></div>
                                <div><dt>"Offer signing out there"</dt><dd data-testid="upstream-end-session">{if p.end_upstream_session { "on" } else { "off" }}</dd></div>
                                <div><dt>"Revocation endpoint"</dt><dd>{p.revocation_endpoint.clone().unwrap_or_else(|| "from discovery".into())}</dd></div>
                            </dl>
                            <RedirectUri uri=redirect_uri/>
                        </section>
                        <Health health=d.health.clone()/>
                        <section class="card">
                            <h2>"Settings"</h2>
                            <ActionError action=save/>
                            <ActionForm action=save attr:class="stack provider-form" attr:data-testid="upstream-settings">
                                <input type="hidden" name="provider_id" value=id.clone()/>
                                <ProviderFields current=Some(p.clone()) invalid/>
                                <button type="submit" class="button primary" disabled=move || save.pending().get()>
                                    {move || if save.pending().get() { "Saving…" } else { "Save settings" }}
                                </button>
                            </ActionForm>
                        </section>
                        <section class="card danger-zone">
                            <h2>"Remove"</h2>
                            <ActionError action=remove/>
                            <Confirm label="Remove provider".to_string()
                                question=format!("Remove {name}?")
                                detail=format!("No one can sign in through it any more. Its {linked} linked user{} stay; adding it again with the same issuer lets them back in. Revocations already due are still sent.", if linked == 1 { "" } else { "s" })>
                                <ActionForm action=remove>
                                    <input type="hidden" name="provider_id" value=remove_id/>
                                    <button type="submit" class="button danger" disabled=move || remove.pending().get()>"Yes, remove it"</button>
                                </ActionForm>
                            </Confirm>
                        </section>
                    </AdminFrame>
                }.into_any()
            }
            UpstreamView { me, detail: None, .. } => view! {
                <AdminNotFound user=me what="Provider" back=paths::ADMIN_UPSTREAMS back_label="All sign-in providers"/>
            }.into_any(),
        }/>
    }
}

/// Sign-ins through a provider and the revocation of its tokens: counts,
/// and the latest revocations that failed (issue 12: failures are shown).
#[component]
fn Health(health: AdminUpstreamHealth) -> impl IntoView {
    let AdminUpstreamHealth {
        linked_users,
        live_sign_ins,
        pending_revocations,
        revoked_30d,
        gave_up_30d,
        failures,
    } = health;
    view! {
        <section class="card" data-testid="upstream-health">
            <h2>"Sign-ins and revocations"</h2>
            <dl class="facts stats">
                <div><dt>"Linked users"</dt><dd data-testid="health-linked">{linked_users}</dd></div>
                <div><dt>"Live sign-ins"</dt><dd data-testid="health-live">{live_sign_ins}</dd></div>
                <div><dt>"Pending revocations"</dt><dd data-testid="health-pending">{pending_revocations}</dd></div>
                <div><dt>"Revoked, 30 days"</dt><dd data-testid="health-revoked">{revoked_30d}</dd></div>
                <div><dt>"Given up, 30 days"</dt><dd data-testid="health-gave-up" class=(gave_up_30d != 0).then_some("warn-text")>{gave_up_30d}</dd></div>
            </dl>
            {if failures.is_empty() {
                view! { <p class="muted" data-testid="failures-none">"No revocation failed in the last 30 days."</p> }.into_any()
            } else {
                view! {
                    <h3>"Latest revocation failures"</h3>
                    <p class="muted small">"Retried with growing delays for 24 hours after the sign-in ended; newest first."</p>
                    <div class="table-wrap">
                        <table class="list failures stack-on-phone" data-testid="revocation-failures">
                            <thead><tr><th>"Sign-in ended"</th><th>"Attempts"</th><th>"Last error"</th><th>"Next attempt"</th></tr></thead>
                            <tbody>{failures.into_iter().map(failure_row).collect_view()}</tbody>
                        </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

fn failure_row(f: AdminRevocationFailure) -> impl IntoView {
    let next = match (f.revoked, f.gave_up, f.next_attempt_at) {
        (true, ..) => {
            view! { <span class="ok-text">"revoked on a later attempt"</span> }.into_any()
        }
        (_, true, _) => view! { <span class="warn-text">"gave up"</span> }.into_any(),
        (_, _, Some(at)) => format_time(at).into_any(),
        _ => "—".into_any(),
    };
    view! {
        <tr>
            <td class="when" data-label="Sign-in ended">{format_time(f.requested_at)}</td>
            <td data-label="Attempts">{f.attempts}</td>
            <td class="error small" data-label="Last error">{f.last_error}</td>
            <td class="when" data-label="Next attempt">{next}</td>
        </tr>
    }
}
