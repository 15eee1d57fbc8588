//! The frame around every page: the header with the product name and, when
//! signed in, who is signed in and the sign-out button.

use leptos::prelude::*;

use crate::{model::CurrentUser, paths};

/// The page frame. `user` is `None` on the sign-in page.
#[component]
pub fn Layout(#[prop(optional)] user: Option<CurrentUser>, children: Children) -> impl IntoView {
    view! {
        <header class="topbar">
            <a class="brand" href=paths::HOME>
                <span class="brand-mark" aria-hidden="true">"⚿"</span>
                "Latchkey"
            </a>
            {user.map(|u| view! {
                <div class="topbar-user">
                    <span class="muted">"Signed in as "<strong data-testid="topbar-username">{u.username}</strong></span>
                    <SignOutButton/>
                </div>
            })}
        </header>
        <main class="page">{children()}</main>
    }
}

/// A plain form post: works without JavaScript; the server checks its Origin.
#[component]
pub fn SignOutButton() -> impl IntoView {
    view! {
        <form method="post" action=paths::SIGN_OUT class="inline-form">
            <button type="submit" class="button secondary">"Sign out"</button>
        </form>
    }
}
