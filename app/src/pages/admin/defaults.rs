//! The server-wide default token policy every client inherits.

use leptos::prelude::*;

use super::{query_value, AdminFrame, PolicyInputs};
use crate::{
    api::admin::*,
    components::{
        layout::Loaded,
        widgets::{ActionError, Notice},
    },
};

#[component]
pub fn AdminDefaultsPage() -> impl IntoView {
    let saved = query_value("saved");
    let save = ServerAction::<SavePolicyDefaults>::new();
    let data = Resource::new(
        move || (saved(), save.version().get()),
        |_| get_policy_defaults(),
    );
    view! {
        <Loaded data=data page=move |(user, fields, live)| view! {
            <AdminFrame user title="Default policy".to_string()>
                <h1>"Default token policy"</h1>
                <p class="lead">"What every client gets unless it overrides a field."</p>
                <Notice text=Signal::derive(move || saved().map(|_| "Defaults saved. They apply from the next token request on.".to_string()))/>
                <section class="card">
                    <ActionError action=save/>
                    <ActionForm action=save attr:class="policy-form">
                        <PolicyInputs fields inherit=false live_refresh_tokens=live/>
                        <button type="submit" class="button primary" disabled=move || save.pending().get()>"Save defaults"</button>
                    </ActionForm>
                </section>
            </AdminFrame>
        }.into_any()
        />
    }
}
