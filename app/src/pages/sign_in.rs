//! The sign-in page. A plain HTML form posting to the server's `/signin`
//! handler, so it works the same with JavaScript off and hydrated; the server
//! redirects back here with `?error=` when the credentials are wrong.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{api::get_upstream_buttons, components::layout::Layout, paths};

/// Why the server sent the browser back here, in words for the user.
/// (`throttled` has its own text, with the minutes: [`throttled_message`].)
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
        "upstream_unknown" => Some((
            "error",
            "That sign-in option no longer exists. Please choose another.",
        )),
        "upstream_unavailable" => Some((
            "error",
            "Your organisation's sign-in service cannot be reached right now. Please try again in a moment.",
        )),
        "upstream_denied" => Some((
            "error",
            "Signing in was cancelled at your organisation's sign-in service. You are not signed in.",
        )),
        "upstream_expired" => Some((
            "error",
            "That sign-in attempt expired or was already used. Please start again.",
        )),
        "upstream_failed" | "upstream_invalid" => Some((
            "error",
            "Your organisation's sign-in service gave an answer Latchkey could not verify, so you were not signed in. Please try again; if it keeps happening, tell your administrator.",
        )),
        "upstream_disabled" => Some((
            "error",
            "This account is disabled. Contact your administrator.",
        )),
        _ => None,
    }
}

/// Sign-in throttling's message: the same for every username, existing or not.
fn throttled_message(minutes: Option<i64>) -> String {
    match minutes.filter(|m| (1..=1440).contains(m)) {
        Some(1) => "Too many failed sign-ins. Try again in 1 minute.".to_owned(),
        Some(m) => format!("Too many failed sign-ins. Try again in {m} minutes."),
        None => "Too many failed sign-ins. Try again later.".to_owned(),
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
    let error = move || {
        let q = query.read();
        let code = q.get("error")?;
        if code == "throttled" {
            let minutes = q.get("minutes").and_then(|m| m.parse::<i64>().ok());
            return Some(throttled_message(minutes));
        }
        message_for(&code).map(|(_, text)| text.to_owned())
    };
    let signed_out = move || query.read().get("signed_out").is_some();
    let username = move || query.read().get("username").unwrap_or_default();
    // Pending state once hydrated; the form still submits natively.
    let pending = RwSignal::new(false);
    let providers = Resource::new(|| (), |_| get_upstream_buttons());

    view! {
        <Title text="Sign in"/>
        <Layout>
            <section class="card narrow signin">
                <h1>"Sign in"</h1>
                <p class="muted">"Sign in to see and control which apps can act for you."</p>
                {move || signed_out().then(|| view! {
                    <p class="notice success" role="status">"You are signed out."</p>
                })}
                {move || error().map(|text| view! {
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
                <Suspense fallback=|| ()>
                    {move || providers.get().and_then(Result::ok).filter(|p| !p.is_empty()).map(|list| view! {
                        <div class="upstreams" data-testid="upstream-buttons">
                            <p class="divider muted small"><span>"or"</span></p>
                            {list.into_iter().map(|p| view! {
                                <form method="post" action=paths::upstream_sign_in(&p.id)>
                                    <input type="hidden" name="next" value=next/>
                                    <button type="submit" class="button secondary wide">
                                        {format!("Sign in with {}", p.name)}
                                    </button>
                                </form>
                            }).collect_view()}
                        </div>
                    })}
                </Suspense>
            </section>
        </Layout>
    }
}
