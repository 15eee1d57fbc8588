//! The sign-in page. A plain HTML form posting to the server's `/signin`
//! handler, so it works the same with JavaScript off and hydrated; the server
//! redirects back here with `?error=` when the credentials are wrong.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{components::layout::Layout, paths};

/// Why the server sent the browser back here, in words for the user.
fn message_for(code: &str) -> Option<(&'static str, &'static str)> {
    match code {
        "invalid" => Some(("error", "Wrong username or password.")),
        "missing" => Some(("error", "Enter your username and password.")),
        "unavailable" => Some((
            "error",
            "Signing in is not possible right now. Please try again in a moment.",
        )),
        "forbidden" => Some((
            "error",
            "That request did not come from this site, so it was refused. Please try again.",
        )),
        _ => None,
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || {
        query
            .read()
            .get("next")
            .unwrap_or_else(|| paths::HOME.to_string())
    };
    let error = move || query.read().get("error").and_then(|c| message_for(&c));
    let signed_out = move || query.read().get("signed_out").is_some();
    let username = move || query.read().get("username").unwrap_or_default();
    // Pending state once hydrated; the form still submits natively.
    let pending = RwSignal::new(false);

    view! {
        <Title text="Sign in"/>
        <Layout>
            <section class="card narrow signin">
                <h1>"Sign in"</h1>
                <p class="muted">"Sign in to see and control which apps can act for you."</p>
                {move || signed_out().then(|| view! {
                    <p class="notice success" role="status">"You are signed out."</p>
                })}
                {move || error().map(|(_, text)| view! {
                    <p class="notice error" role="alert" data-testid="signin-error">{text}</p>
                })}
                <form method="post" action=paths::SIGN_IN on:submit=move |_| pending.set(true)>
                    <input type="hidden" name="next" value=next/>
                    <label for="username">"Username"</label>
                    <input id="username" name="username" type="text" autocomplete="username"
                        autocapitalize="none" spellcheck="false" required maxlength="64"
                        value=username autofocus/>
                    <label for="password">"Password"</label>
                    <input id="password" name="password" type="password" autocomplete="current-password"
                        required maxlength="1024"/>
                    <button type="submit" class="button primary wide" disabled=move || pending.get()>
                        {move || if pending.get() { "Signing in…" } else { "Sign in" }}
                    </button>
                </form>
            </section>
        </Layout>
    }
}
