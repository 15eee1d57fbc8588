//! Security activity: what happened to the person's account that they should
//! know of (`domain::security`), newest first, in plain words with what to do
//! and a link to the app or sessions concerned. Opening it marks every event
//! seen (the top bar's count goes away).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    api::get_security_activity,
    components::{
        layout::{Layout, Loaded},
        widgets::{page_param, Pager},
    },
    model::{format_time, SecurityEvent},
    paths,
};

#[component]
pub fn SecurityPage() -> impl IntoView {
    let query = use_query_map();
    let page = page_param(query);
    let activity = Resource::new(page, get_security_activity);
    view! {
        <Title text="Security activity"/>
        <Loaded data=activity page=move |view| {
            let pager = view.events.clone();
            let events = view.events.items;
            view! {
                <Layout user=view.user>
                    <h1>"Security activity"</h1>
                    <p class="lead">
                        "What happened to your account that you should know of: apps that got access, "
                        "sessions Latchkey or an administrator ended, sign-ins from new devices."
                    </p>
                    {if events.is_empty() {
                        view! {
                            <section class="card" data-testid="no-security-events">
                                <p>"Nothing yet. When something happens to your account, it shows here."</p>
                            </section>
                        }.into_any()
                    } else {
                        view! {
                            <ul class="rows card security-events" aria-label="Security events">
                                {events.into_iter().map(|e| view! { <SecurityItem event=e/> }).collect_view()}
                            </ul>
                        }.into_any()
                    }}
                    <Pager page=pager.page pages=pager.pages() base=paths::SECURITY.to_string()/>
                </Layout>
            }.into_any()
        }
        />
    }
}

#[component]
fn SecurityItem(event: SecurityEvent) -> impl IntoView {
    let when = format_time(event.at);
    let meta = match &event.ip {
        Some(ip) => format!("{when} · {ip}"),
        None => when,
    };
    view! {
        <li class="row security-event" class:unseen=event.unseen data-testid="security-event" data-kind=event.kind.clone()>
            <div>
                <h2 class="event-title">
                    {event.title.clone()}
                    {event.unseen.then(|| view! { <span class="badge ok">"New"</span> })}
                </h2>
                <p>{event.advice.clone()}</p>
                <p class="muted small">{meta}</p>
            </div>
            {event.link.clone().map(|(href, label)| view! { <a class="button secondary" href=href>{label}</a> })}
        </li>
    }
}
