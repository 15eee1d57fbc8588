//! The signed-in home page. For now: who you are and how to sign out; the
//! "My apps" list grows here.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

use crate::{api::get_current_user, components::layout::Layout, paths};

#[component]
pub fn HomePage() -> impl IntoView {
    let me = Resource::new(|| (), |_| get_current_user());
    view! {
        <Title text="Home"/>
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(user)) => {
                        let name = user.username.clone();
                        view! {
                            <Layout user=user>
                                <section class="card">
                                    <h1>"Welcome, "<span data-testid="username">{name}</span></h1>
                                    <p class="lead">
                                        "This is your Latchkey dashboard. Apps you allow to act for you will be listed here, "
                                        "with what they can do and when they last did it — and a button that ends their access at once."
                                    </p>
                                </section>
                            </Layout>
                        }
                        .into_any()
                    }
                    Ok(None) => view! { <Redirect path=format!("{}?next=/", paths::SIGN_IN)/> }.into_any(),
                    Err(_) => view! {
                        <Layout>
                            <section class="card narrow" role="alert">
                                <h1>"Something went wrong"</h1>
                                <p>"Your dashboard could not be loaded. Please reload the page."</p>
                            </section>
                        </Layout>
                    }
                    .into_any(),
                }
            })}
        </Suspense>
    }
}
