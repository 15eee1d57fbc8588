//! The frame around every page: the header with the product name and, when
//! signed in, who is signed in and the sign-out button.

use leptos::prelude::*;

use crate::{model::CurrentUser, paths};

/// The page frame. `user` is `None` on the sign-in page.
#[component]
pub fn Layout(#[prop(optional)] user: Option<CurrentUser>, children: Children) -> impl IntoView {
    let main_ref = NodeRef::<leptos::html::Main>::new();
    #[cfg(feature = "hydrate")]
    {
        let location = leptos_router::hooks::use_location();
        Effect::new(move || {
            if let Some(main) = main_ref.get() {
                focus_after_navigation(&main, &location.pathname.get_untracked());
            }
        });
    }
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
        <main class="page" node_ref=main_ref>{children()}</main>
    }
}

/// After an in-app navigation (hydrated, the router swaps the page without a
/// load) focus would stay on the document with Tab resuming where the old
/// page's focus was, often its end. As a page load would, it starts over: the
/// new page's heading takes the focus (and screen readers read it), unless
/// something on the page already took it (a notice after an action). The
/// first page (hydration) and re-renders on the same path leave focus alone.
#[cfg(feature = "hydrate")]
fn focus_after_navigation(main: &web_sys::HtmlElement, path: &str) {
    use std::cell::RefCell;
    use wasm_bindgen::JsCast;
    thread_local! {
        static LAST_PATH: RefCell<Option<String>> = const { RefCell::new(None) };
    }
    let navigated = LAST_PATH.with(|last| {
        let mut last = last.borrow_mut();
        let navigated = last.as_deref().is_some_and(|p| p != path);
        *last = Some(path.to_owned());
        navigated
    });
    if !navigated {
        return;
    }
    // Once the new page is in the document (the router swaps it in after
    // rendering it).
    let main = main.clone();
    request_animation_frame(move || {
        let body: Option<web_sys::Element> = document().body().map(Into::into);
        let focus_is_free = document()
            .active_element()
            .is_none_or(|el| Some(&el) == body.as_ref());
        if !(main.is_connected() && focus_is_free) {
            return;
        }
        if let Some(heading) = main
            .query_selector("h1")
            .ok()
            .flatten()
            .and_then(|el| el.dyn_into::<web_sys::HtmlElement>().ok())
        {
            let _ = heading.set_attribute("tabindex", "-1");
            let _ = heading.focus();
        }
    });
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

/// A page that needs `data` first: "Loading…" while it loads, `page` of
/// it once loaded, [`LoadFailed`] when it could not be (signed out: a link
/// to sign in). Every page of the dashboard and the console is one of these
/// but the audit log, which reads its filters before its data arrives.
#[component]
pub fn Loaded<T, P, V>(data: Resource<Result<T, ServerFnError>>, page: P) -> impl IntoView
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    P: Fn(T) -> V + Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || {
                let page = page.clone();
                Suspend::new(async move {
                    match data.await {
                        Ok(loaded) => page(loaded).into_any(),
                        Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                    }
                })
            }}
        </Suspense>
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
