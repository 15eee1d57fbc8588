//! The page for a path no route matches.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{components::layout::Layout, paths};

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <Title text="Not found"/>
        <Layout>
            <section class="card narrow">
                <h1>"Page not found"</h1>
                <p>"There is nothing at this address."</p>
                <p><a href=paths::HOME>"Go to your dashboard"</a></p>
            </section>
        </Layout>
    }
}
