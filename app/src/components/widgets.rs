//! Small pieces the dashboard pages share: result notices, action errors, the
//! confirm disclosure, pagination.
//!
//! After an action the page settles: every open confirmation closes and focus
//! moves to the outcome (the notice, or the inline error). A `<details open>`
//! is DOM state Leptos does not own, so without this a confirmation left open
//! stays open on whatever the page shows next (on a re-rendered list, another
//! item's), one Enter away from confirming something nobody chose.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::model::AppIdentity;

/// A success message (from the query after an action), announced politely.
/// Hydrated, its appearance settles the page (see the module header).
#[component]
pub fn Notice(#[prop(into)] text: Signal<Option<String>>) -> impl IntoView {
    let node = NodeRef::<leptos::html::P>::new();
    settle_on(node, move || text.with(Option::is_some));
    move || {
        text.get().map(|t| {
            view! {
                <p node_ref=node class="notice success" role="status" tabindex="-1" data-testid="notice">{t}</p>
            }
        })
    }
}

/// The error of the last run of a server action, shown inline. Hydrated, its
/// appearance settles the page (see the module header). Without JavaScript it
/// comes from the query of the form post's redirect (`ssr::refuse`).
#[component]
pub fn ActionError<S>(action: ServerAction<S>) -> impl IntoView
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
    S::Error: Clone + Send + Sync + std::fmt::Display + 'static,
{
    let node = NodeRef::<leptos::html::P>::new();
    settle_on(node, move || {
        action.value().with(|v| matches!(v, Some(Err(_))))
    });
    move || {
        action
            .value()
            .get()
            .and_then(|result| result.err())
            .map(|e| {
                let text = e.to_string();
                // ServerFnError's Display prefixes its kind; people need the message.
                let text = text
                    .split_once(": ")
                    .map(|(_, m)| m.to_string())
                    .unwrap_or(text);
                view! {
                    <p node_ref=node class="notice error" role="alert" tabindex="-1" data-testid="action-error">{text}</p>
                }
            })
    }
}

/// Each time the outcome changes while it is `shown` (and once on mount):
/// closes every open confirmation and moves focus to `node`, the outcome's
/// element. Hydrated only: the server renders confirmations closed.
fn settle_on(node: NodeRef<leptos::html::P>, shown: impl Fn() -> bool + Send + Sync + 'static) {
    Effect::new(move || {
        if !shown() {
            return;
        }
        if let Some(el) = node.get() {
            close_confirmations();
            // Focus is a courtesy: a refusal (e.g. a detached node) changes nothing.
            let _ = el.focus();
        }
    });
}

/// Closes every `<details class="confirm">` on the page.
fn close_confirmations() {
    #[cfg(feature = "hydrate")]
    if let Ok(open) = document().query_selector_all("details.confirm[open]") {
        for i in 0..open.length() {
            if let Some(el) = open
                .item(i)
                .and_then(|n| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(n).ok())
            {
                let _ = el.remove_attribute("open");
            }
        }
    }
}

/// A button that opens a confirmation in place (a `<details>` disclosure):
/// keyboard-operable and working without JavaScript. `children` holds the form
/// that really does it.
#[component]
pub fn Confirm(
    label: String,
    question: String,
    detail: String,
    children: Children,
) -> impl IntoView {
    let group_label = question.clone();
    view! {
        <details class="confirm">
            <summary class="button danger-outline">{label}</summary>
            <div class="confirm-body" role="group" aria-label=group_label>
                <p class="confirm-question"><strong>{question}</strong></p>
                <p class="muted">{detail}</p>
                <div class="confirm-actions">{children()}</div>
            </div>
        </details>
    }
}

/// "Page 2 of 11" with previous and next links (`base?page=N`).
#[component]
pub fn Pager(page: i64, pages: i64, base: String) -> impl IntoView {
    (pages > 1).then(|| {
        let sep = if base.contains('?') { '&' } else { '?' };
        let link = move |n: i64| format!("{base}{sep}page={n}");
        view! {
            <nav class="pager" aria-label="Pages">
                {(page > 1).then(|| view! { <a class="button secondary" href=link(page - 1) rel="prev">"Previous"</a> })}
                <span class="muted">{format!("Page {page} of {pages}")}</span>
                {(page < pages).then(|| view! { <a class="button secondary" href=link(page + 1) rel="next">"Next"</a> })}
            </nav>
        }
    })
}

/// The `page` query parameter, read by [`crate::model::page_number`]: within
/// `1..=MAX_PAGE`, 1 when absent or not a number. The server clamps again
/// (server functions can be called with any number).
pub fn page_param(
    query: Memo<leptos_router::params::ParamsMap>,
) -> impl Fn() -> i64 + Copy + Send + Sync + 'static {
    move || crate::model::page_number(query.read().get_str("page"))
}

/// A GET search form (`?q=`): works without JavaScript, keeps the query.
#[component]
pub fn SearchForm(action: &'static str, label: &'static str, value: String) -> impl IntoView {
    view! {
        <form method="get" action=action class="search" role="search">
            <label for="q">{label}</label>
            <input id="q" name="q" type="search" value=value/>
            <button type="submit" class="button secondary">"Search"</button>
        </form>
    }
}

/// An app's logo as people recognise it (issue 14): a letter tile (the name's
/// first letter) with the registered logo over it, loaded by the browser from
/// the app's URI without a referrer. When there is no logo,
/// or it does not load, the tile shows (the image has an empty `alt`: the name
/// is always written beside it).
#[component]
pub fn AppLogo(app: AppIdentity) -> impl IntoView {
    let letter = app.letter();
    view! {
        <span class="app-logo" aria-hidden="true">
            <span class="app-letter">{letter}</span>
            {app.logo_uri.map(|src| view! {
                <img src=src alt="" referrerpolicy="no-referrer" loading="lazy" width="40" height="40"/>
            })}
        </span>
    }
}

/// The links an app registered: its home page (shown by host), privacy
/// policy and terms of service; nothing when it registered none.
#[component]
pub fn AppLinks(app: AppIdentity) -> impl IntoView {
    let home = app
        .client_uri
        .clone()
        .zip(app.home_host.clone())
        .map(|(href, host)| view! { <a href=href rel="noopener noreferrer" target="_blank" data-testid="app-home">{host}</a> });
    let policy = app.policy_uri.clone().map(
        |href| view! { <a href=href rel="noopener noreferrer" target="_blank">"Privacy policy"</a> },
    );
    let terms = app
        .tos_uri
        .clone()
        .map(|href| view! { <a href=href rel="noopener noreferrer" target="_blank">"Terms"</a> });
    let any = home.is_some() || policy.is_some() || terms.is_some();
    any.then(|| view! { <span class="app-links">{home}{policy}{terms}</span> })
}

/// An app in one line: logo, name, home page's host.
#[component]
pub fn AppBadge(app: AppIdentity) -> impl IntoView {
    view! {
        <span class="app-badge">
            <AppLogo app=app.clone()/>
            <span><strong>{app.name.clone()}</strong>" "<AppLinks app=app/></span>
        </span>
    }
}
