//! Sessions & devices: the user's signed-in browser sessions, this one
//! marked; signing one out (or all others) ends it and the app sessions
//! started from it whose apps revoke on logout.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::{get_my_sessions, EndOtherSessions, EndSession},
    components::{
        layout::{Layout, Loaded},
        widgets::{page_param, ActionError, Confirm, Notice, Pager},
    },
    model::{format_time, SignInSession},
    paths,
};

#[component]
pub fn SessionsPage() -> impl IntoView {
    let query = use_query_map();
    let page = page_param(query);
    let end = ServerAction::<EndSession>::new();
    let end_others = ServerAction::<EndOtherSessions>::new();
    let sessions = Resource::new(
        move || {
            (
                page(),
                query.read().get("ended"),
                end.version().get(),
                end_others.version().get(),
            )
        },
        |(page, ..)| get_my_sessions(page),
    );
    let notice = move || {
        query.read().get("ended").map(|n| match n.as_str() {
            "0" => "There was no other session to sign out.".to_string(),
            "1" => "1 session signed out.".to_string(),
            n => format!("{n} sessions signed out."),
        })
    };
    view! {
        <Title text="Sessions"/>
        <Loaded data=sessions page=move |view| {
            let pager = view.sessions.clone();
            let others = view.sessions.total - 1;
            let items = view.sessions.items;
            view! {
                <Layout user=view.user>
                    <h1>"Sessions & devices"</h1>
                    <p class="lead">
                        "Where you are signed in to Latchkey. Signing a session out also ends the app sessions "
                        "started from it, for apps that end their access when you sign out."
                    </p>
                    <Notice text=Signal::derive(notice)/>
                    <ActionError action=end/>
                    <ActionError action=end_others/>
                    <ul class="rows card" aria-label="Signed-in sessions">
                        // Keyed: a row's DOM (focus, its form) never passes to another session.
                        <For each=move || items.clone() key=|s| s.id.clone() let:s>
                            <SessionItem session=s end/>
                        </For>
                    </ul>
                    <Pager page=pager.page pages=pager.pages() base=paths::SESSIONS.to_string()/>
                    {(others > 0).then(|| view! {
                        <section class="card danger-zone">
                            <h2>"Sign out all other sessions"</h2>
                            <p class="muted">"Every session but this one ends at once."</p>
                            <Confirm
                                label="Sign out all other sessions".to_string()
                                question=format!("Sign out {others} other session{}?", if others == 1 { "" } else { "s" })
                                detail="Those browsers are signed out, and the app sessions started from them end.".to_string()
                            >
                                <ActionForm action=end_others>
                                    <button type="submit" class="button danger" disabled=move || end_others.pending().get()>
                                        {move || if end_others.pending().get() { "Signing out…" } else { "Yes, sign them out" }}
                                    </button>
                                </ActionForm>
                            </Confirm>
                        </section>
                    })}
                </Layout>
            }
            .into_any()
        }
        />
    }
}

#[component]
fn SessionItem(session: SignInSession, end: ServerAction<EndSession>) -> impl IntoView {
    let apps = match session.app_sessions {
        0 => String::new(),
        1 => " · 1 app session".to_string(),
        n => format!(" · {n} app sessions"),
    };
    let label = if session.current {
        "Sign out here"
    } else {
        "Sign out"
    };
    view! {
        <li class="row" data-testid="sign-in-session" data-current=session.current.to_string()>
            <div>
                <strong>{session.device.clone()}</strong>
                {session.current.then(|| view! { <span class="badge ok">"This session"</span> })}
                <div class="muted small">
                    {format!(
                        "{} · signed in {}{} · last seen {}{apps}",
                        if session.ip.is_empty() { "unknown address" } else { session.ip.as_str() },
                        format_time(session.started_at),
                        session.via.as_deref().map(|p| format!(" with {p}")).unwrap_or_default(),
                        format_time(session.last_seen_at)
                    )}
                </div>
            </div>
            <ActionForm action=end>
                <input type="hidden" name="session_id" value=session.id.clone()/>
                <button type="submit" class="button secondary" disabled=move || end.pending().get()
                    aria-label=format!("{label} ({})", session.device)>
                    {label}
                </button>
            </ActionForm>
        </li>
    }
}
