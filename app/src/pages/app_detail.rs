//! One app of the user: what it can do, its sessions (token families) on each
//! device with "Sign out this session", its activity, and "Revoke access".

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    api::{get_app_detail, RevokeApp, SignOutAppSession},
    components::{
        layout::{Layout, Loaded},
        widgets::{ActionError, AppLinks, AppLogo, Confirm, Notice},
    },
    model::{format_day, format_time, Activity, AppDetail, AppSession},
    paths,
};

#[component]
pub fn AppDetailPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let grant_id = move || params.read().get("id").unwrap_or_default();
    let revoke = ServerAction::<RevokeApp>::new();
    let sign_out = ServerAction::<SignOutAppSession>::new();
    let detail = Resource::new(
        move || {
            (
                grant_id(),
                query.read().get("signed_out"),
                sign_out.version().get(),
            )
        },
        |(id, ..)| get_app_detail(id),
    );
    let notice = move || {
        query.read().get("signed_out").map(|name| {
            format!("One session of {name} signed out. Its tokens stopped working at once.")
        })
    };
    view! {
        <Loaded data=detail page=move |loaded| match loaded {
            (user, Some(detail)) => view! {
                <Title text=detail.app.app.name.clone()/>
                <Layout user=user>
                    <p class="crumbs"><a href=paths::HOME>"My apps"</a>" / "</p>
                    <Notice text=Signal::derive(notice)/>
                    <ActionError action=sign_out/>
                    <ActionError action=revoke/>
                    <Detail detail revoke sign_out/>
                </Layout>
            }
            .into_any(),
            (user, None) => view! {
                <Title text="App not found"/>
                <Layout user=user>
                    <section class="card narrow" data-testid="app-not-found">
                        <h1>"App not found"</h1>
                        <p>"No app with access to your account has this address. Its access may have been revoked."</p>
                        <p><a href=paths::HOME>"Back to My apps"</a></p>
                    </section>
                </Layout>
            }
            .into_any(),
        }/>
    }
}

#[component]
fn Detail(
    detail: AppDetail,
    revoke: ServerAction<RevokeApp>,
    sign_out: ServerAction<SignOutAppSession>,
) -> impl IntoView {
    let app = detail.app;
    let name = app.app.name.clone();
    let loses: Vec<String> = app.scopes.iter().map(|s| s.description.clone()).collect();
    let yes = format!("Yes, revoke {name}");
    let grant_id = app.grant_id.clone();
    let form_grant_id = grant_id.clone();
    let sessions = detail.sessions;
    view! {
        <section class="card" data-testid="app-detail">
            <div class="app-head">
                <AppLogo app=app.app.clone()/>
                <div class="app-title">
                    <h1 data-testid="app-name">{name.clone()}</h1>
                    <AppLinks app=app.app.clone()/>
                </div>
                {app.refresh_off.then(|| view! {
                    <span class="badge warn">"Refresh off"</span>
                })}
            </div>
            {app.app.description.clone().map(|d| view! { <p data-testid="app-description">{d}</p> })}
            <p class="muted">{format!("Access given {}", format_time(app.granted_at))}</p>
            {app.refresh_off.then(|| view! {
                <p class="muted">
                    "Your administrator switched this app's refresh tokens off: its access ends when its current token expires."
                </p>
            })}
            <h2>"What it can do"</h2>
            <ul class="scope-list">
                {app.scopes.iter().map(|s| view! {
                    <li class:sensitive=s.sensitive>
                        {s.sensitive.then(|| view! { <span class="badge warn">"Sensitive"</span>" " })}
                        {s.description.clone()}<code>{s.scope.clone()}</code>
                    </li>
                }).collect_view()}
            </ul>
            <div class="card-actions">
                <Confirm
                    label="Revoke access".to_string()
                    question=format!("Revoke access for {name}?")
                    detail=format!(
                        "{name} loses: {}. All its sessions end at once, on every device; it has to ask you again to get access back.",
                        loses.join("; ")
                    )
                >
                    <ActionForm action=revoke>
                        <input type="hidden" name="grant_id" value=form_grant_id/>
                        <button type="submit" class="button danger" disabled=move || revoke.pending().get()>
                            {move || if revoke.pending().get() { "Revoking…".to_string() } else { yes.clone() }}
                        </button>
                    </ActionForm>
                </Confirm>
            </div>
        </section>

        <section class="card">
            <h2>"Sessions"</h2>
            <p class="muted">"Each session is one device or app install holding tokens. Signing one out ends only that one."</p>
            {if sessions.is_empty() {
                view! { <p data-testid="no-sessions">"No active session: the app holds no usable token for you right now."</p> }.into_any()
            } else {
                view! {
                    // Keyed: a row's DOM (focus, its form) never passes to another session.
                    <ul class="rows" aria-label="Sessions">
                        <For each=move || sessions.clone() key=|s| s.family_id.clone() let:s>
                            <SessionRow session=s grant_id=grant_id.clone() sign_out/>
                        </For>
                    </ul>
                }.into_any()
            }}
        </section>

        <section class="card">
            <h2>"Activity"</h2>
            {if detail.activity.is_empty() {
                view! { <p class="muted">"Nothing recorded yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="timeline" data-testid="activity">
                        {detail.activity.into_iter().map(|a| view! { <ActivityLine activity=a/> }).collect_view()}
                    </ol>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn SessionRow(
    session: AppSession,
    grant_id: String,
    sign_out: ServerAction<SignOutAppSession>,
) -> impl IntoView {
    let from = match session.sign_in_started_at {
        Some(at) => format!("from your sign-in of {}", format_time(at)),
        None => "its sign-in has ended".to_string(),
    };
    let ip = if session.ip.is_empty() {
        String::new()
    } else {
        format!(" · {}", session.ip)
    };
    view! {
        <li class="row" data-testid="app-session">
            <div>
                <strong>{session.device.clone()}</strong>{ip}
                <div class="muted small">
                    {format!("Started {} · last used {} · {from}", format_time(session.created_at), format_time(session.last_used_at))}
                </div>
            </div>
            <ActionForm action=sign_out>
                <input type="hidden" name="grant_id" value=grant_id/>
                <input type="hidden" name="family_id" value=session.family_id.clone()/>
                <button type="submit" class="button secondary" disabled=move || sign_out.pending().get()
                    aria-label=format!("Sign out this session ({})", session.device)>
                    "Sign out this session"
                </button>
            </ActionForm>
        </li>
    }
}

#[component]
fn ActivityLine(activity: Activity) -> impl IntoView {
    let text = match (activity.kind.as_str(), activity.count) {
        ("consent_granted", _) => "You allowed access".to_string(),
        ("code_redeemed", 1) => "Signed in on a device".to_string(),
        ("code_redeemed", n) => format!("Signed in on a device {n} times"),
        ("token_refreshed", 1) => "Renewed its access once".to_string(),
        ("token_refreshed", n) => format!("Renewed its access {n} times"),
        ("reuse_detected", _) => {
            "A used token came back: that session was ended to be safe".to_string()
        }
        ("revoked", _) => "Access revoked".to_string(),
        (other, _) => other.replace('_', " "),
    };
    let when = if matches!(activity.kind.as_str(), "token_refreshed" | "code_redeemed") {
        format_day(activity.at)
    } else {
        format_time(activity.at)
    };
    let warn = activity.kind == "reuse_detected";
    view! {
        <li class:warn=warn data-kind=activity.kind.clone()>
            <time>{when}</time>
            <span>{text}</span>
        </li>
    }
}
