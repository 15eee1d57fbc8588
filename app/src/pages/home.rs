//! My apps, the signed-in home: every app that holds a live grant for the
//! user, what it can do, when it was last used and from where, and a button
//! that ends its access at once.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{get_my_apps, RevokeAllApps, RevokeApp},
    components::{
        layout::{Layout, Loaded},
        widgets::{page_param, ActionError, AppLinks, AppLogo, Confirm, Notice, Pager},
    },
    model::{format_time, AppSummary},
    paths,
};

#[component]
pub fn HomePage() -> impl IntoView {
    let query = use_query_map();
    let page = page_param(query);
    let revoke = ServerAction::<RevokeApp>::new();
    let revoke_all = ServerAction::<RevokeAllApps>::new();
    let apps = Resource::new(
        move || {
            (
                page(),
                query.read().get("revoked"),
                revoke.version().get(),
                revoke_all.version().get(),
            )
        },
        |(page, ..)| get_my_apps(page),
    );
    let notice = move || {
        let q = query.read();
        if let Some(name) = q.get("revoked") {
            Some(format!(
                "Access for {name} revoked. Its tokens stopped working at once."
            ))
        } else {
            q.get("revoked_all").map(|n| match n.as_str() {
                "0" => "No app had access to revoke.".to_string(),
                "1" => "Access for 1 app revoked.".to_string(),
                n => format!("Access for {n} apps revoked."),
            })
        }
    };

    view! {
        <Title text="My apps"/>
        <Loaded data=apps page=move |view| {
            let total = view.apps.total;
            let pager = view.apps.clone();
            let apps = view.apps.items;
            view! {
                <Layout user=view.user>
                    <div class="page-head">
                        <div>
                            <h1>"My apps"</h1>
                            <p class="lead">
                                "Apps you allowed to act for you. Revoking ends their access at once: "
                                "every token they hold stops working on the next request."
                            </p>
                        </div>
                    </div>
                    <Notice text=Signal::derive(notice)/>
                    <ActionError action=revoke/>
                    <ActionError action=revoke_all/>
                    {if total == 0 {
                        view! {
                            <section class="card empty" data-testid="no-apps">
                                <h2>"No app holds access to your account"</h2>
                                <p class="muted">
                                    "When you allow an app to sign you in or act for you, it appears here — "
                                    "with what it can do, when it last did it, and a button that ends its access."
                                </p>
                            </section>
                        }
                        .into_any()
                    } else {
                        view! {
                            <p class="muted count" data-testid="app-count">
                                {if total == 1 { "1 app has access.".to_string() } else { format!("{total} apps have access.") }}
                            </p>
                            <ul class="app-list" aria-label="Apps with access">
                                // Keyed: a card's DOM (an open confirmation, focus) never passes to another app.
                                <For each=move || apps.clone() key=|app| app.grant_id.clone() let:app>
                                    <AppCard app revoke/>
                                </For>
                            </ul>
                            <Pager page=pager.page pages=pager.pages() base=paths::HOME.to_string()/>
                            <section class="card danger-zone">
                                <h2>"Revoke all apps"</h2>
                                <p class="muted">"Every app above loses access at once and has to ask you again."</p>
                                <Confirm
                                    label="Revoke all apps".to_string()
                                    question=format!("Revoke access for all {total} apps?")
                                    detail="Each one loses every token it holds for you, on every device.".to_string()
                                >
                                    <ActionForm action=revoke_all>
                                        <button type="submit" class="button danger" disabled=move || revoke_all.pending().get()>
                                            {move || if revoke_all.pending().get() { "Revoking…" } else { "Yes, revoke all apps" }}
                                        </button>
                                    </ActionForm>
                                </Confirm>
                            </section>
                        }
                        .into_any()
                    }}
                </Layout>
            }
            .into_any()
        }
        />
    }
}

/// One app: name, what it can do, when and where it was last used, sessions, revoke.
#[component]
fn AppCard(app: AppSummary, revoke: ServerAction<RevokeApp>) -> impl IntoView {
    let last_used = match (app.last_used_at, &app.last_used_device, &app.last_used_ip) {
        (Some(at), device, ip) => {
            let mut text = format_time(at);
            if let Some(device) = device {
                text.push_str(&format!(" · {device}"));
            }
            if let Some(ip) = ip {
                text.push_str(&format!(" · {ip}"));
            }
            text
        }
        (None, ..) => "Not yet".to_string(),
    };
    let loses: Vec<String> = app.scopes.iter().map(|s| s.description.clone()).collect();
    let sessions = match app.active_sessions {
        0 => "No active session".to_string(),
        1 => "1 active session".to_string(),
        n => format!("{n} active sessions"),
    };
    let name = app.app.name.clone();
    let grant_id = app.grant_id.clone();
    let yes = format!("Yes, revoke {name}");
    view! {
        <li class="card app-card" data-testid="app-card" data-app=name.clone()>
            <div class="app-head">
                <AppLogo app=app.app.clone()/>
                <div class="app-title">
                    <h2><a href=paths::app(&app.grant_id)>{name.clone()}</a></h2>
                    <AppLinks app=app.app.clone()/>
                </div>
                {app.refresh_off.then(|| view! {
                    <span class="badge warn" title="The administrator switched refresh tokens off for this app">
                        "Refresh off"
                    </span>
                })}
            </div>
            <ul class="scope-chips" aria-label="What it can do">
                {app.scopes.iter().map(|s| view! {
                    <li title=s.scope.clone() class:sensitive=s.sensitive>
                        {s.sensitive.then(|| view! { <span class="visually-hidden">"Sensitive: "</span> })}
                        {s.description.clone()}
                    </li>
                }).collect_view()}
            </ul>
            <dl class="facts">
                <div><dt>"Access given"</dt><dd>{format_time(app.granted_at)}</dd></div>
                <div><dt>"Last used"</dt><dd data-testid="last-used">{last_used}</dd></div>
                <div><dt>"Sessions"</dt><dd>{sessions}</dd></div>
            </dl>
            <div class="card-actions">
                <a class="button secondary" href=paths::app(&app.grant_id)>"Details"</a>
                <Confirm
                    label="Revoke access".to_string()
                    question=format!("Revoke access for {name}?")
                    detail=format!(
                        "{name} loses: {}. Its tokens stop working at once, on every device; it has to ask you again to get access back.",
                        loses.join("; ")
                    )
                >
                    <ActionForm action=revoke>
                        <input type="hidden" name="grant_id" value=grant_id.clone()/>
                        <button type="submit" class="button danger" disabled=move || revoke.pending().get()>
                            {move || if revoke.pending().get() { "Revoking…".to_string() } else { yes.clone() }}
                        </button>
                    </ActionForm>
                </Confirm>
            </div>
        </li>
    }
}
