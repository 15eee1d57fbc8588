//! Small pieces the dashboard pages share: result notices, action errors, the
//! confirm disclosure, pagination.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;

/// A success message (from the query after an action), announced politely.
#[component]
pub fn Notice(#[prop(into)] text: Signal<Option<String>>) -> impl IntoView {
    move || {
        text.get().map(|t| {
            view! { <p class="notice success" role="status" data-testid="notice">{t}</p> }
        })
    }
}

/// The error of the last run of a server action, shown inline.
#[component]
pub fn ActionError<S>(action: ServerAction<S>) -> impl IntoView
where
    S: ServerFn + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
    S::Error: Clone + Send + Sync + std::fmt::Display + 'static,
{
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
                view! { <p class="notice error" role="alert" data-testid="action-error">{text}</p> }
            })
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
