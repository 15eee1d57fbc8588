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
                <svg class="brand-mark" viewBox="0 0 32 32" aria-hidden="true">
                    <rect width="32" height="32" rx="7" fill="#1f5fbf"/>
                    <circle cx="12" cy="16" r="5" fill="none" stroke="#fff" stroke-width="3"/>
                    <path d="M17 16h10v5M23 16v4" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round"/>
                </svg>
                "Latchkey"
            </a>
            {user.as_ref().map(|u| {
                let admin = u.is_admin;
                let unseen = u.unseen_security;
                view! {
                    <nav class="topnav" aria-label="Dashboard">
                        <a href=paths::HOME>"My apps"</a>
                        <a href=paths::SESSIONS>"Sessions"</a>
                        <a href=paths::SECURITY data-testid="security-link">
                            "Security"
                            {(unseen > 0).then(|| view! {
                                <span class="count-badge" data-testid="security-unseen">
                                    {unseen.min(99)}
                                    <span class="visually-hidden">{if unseen == 1 { " new event" } else { " new events" }}</span>
                                </span>
                            })}
                        </a>
                        {admin.then(|| view! { <a href=paths::ADMIN>"Admin"</a> })}
                    </nav>
                }
            })}
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

/// The page shown when a page's data could not be loaded.
#[component]
pub fn LoadFailed(error: String) -> impl IntoView {
    let signed_out = error.contains("not signed in");
    view! {
        <Layout>
            <section class="card narrow" role="alert">
                {if signed_out {
                    view! {
                        <h1>"You are signed out"</h1>
                        <p><a href=paths::SIGN_IN>"Sign in again"</a></p>
                    }
                    .into_any()
                } else {
                    view! {
                        <h1>"Something went wrong"</h1>
                        <p>"This page could not be loaded. Please reload it."</p>
                    }
                    .into_any()
                }}
            </section>
        </Layout>
    }
}
