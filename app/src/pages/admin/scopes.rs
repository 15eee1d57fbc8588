//! The console's scope catalogue (`domain::scopes`): each scope clients may
//! be registered for, with the words people read on the consent page and in
//! My apps, and whether it is sensitive. Add or change one; remove one no
//! client is registered for.

use leptos::prelude::*;

use super::{query_value, AdminFrame};
use crate::{
    api::admin::*,
    components::{
        layout::Loaded,
        widgets::{ActionError, Confirm, Notice},
    },
    model::{format_time, AdminScope},
};

#[component]
pub fn AdminScopesPage() -> impl IntoView {
    let save = ServerAction::<SaveScope>::new();
    let remove = ServerAction::<RemoveScope>::new();
    let data = Resource::new(
        move || (save.version().get(), remove.version().get()),
        |_| get_admin_scopes(),
    );
    let saved = query_value("saved");
    let removed = query_value("removed");
    let notice = move || {
        saved()
            .map(|s| format!("Saved {s}: people read the new words from now on."))
            .or_else(|| removed().map(|s| format!("Removed {s} from the catalogue.")))
    };
    view! {
        <Loaded data=data page=move |(me, scopes)| view! {
            <AdminFrame user=me title="Scopes".to_string()>
                <h1>"Scopes"</h1>
                <p class="lead">"The permissions apps may ask people for, in the words people read on the consent page and in My apps. A client can be registered only for scopes listed here; the OpenID scopes (openid, profile, email, offline_access) are built in."</p>
                <Notice text=Signal::derive(notice)/>
                <ActionError action=remove/>
                <section class="card">
                    <h2>"Catalogue"</h2>
                    {if scopes.is_empty() {
                        view! { <p class="muted" data-testid="no-scopes">"No scope yet: add one below."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="rows" data-testid="scope-list">
                                {scopes.into_iter().map(|s| view! { <ScopeRow scope=s save remove/> }).collect_view()}
                            </ul>
                        }.into_any()
                    }}
                </section>
                <section class="card">
                    <h2>"Add a scope"</h2>
                    <p class="muted">"To reword one in the catalogue, use its Edit button above."</p>
                    <ActionError action=save/>
                    <ActionForm action=save attr:class="stack" attr:data-testid="scope-form">
                        <label for="s-scope">"Scope"</label>
                        <input id="s-scope" name="scope" type="text" required maxlength="128" autocomplete="off"
                            placeholder="notes:read" aria-describedby="s-scope-help"/>
                        <p id="s-scope-help" class="muted small hint">"As apps send it: no spaces, quotes or backslashes."</p>
                        <label for="s-description">"What it lets an app do"</label>
                        <input id="s-description" name="description" type="text" required maxlength="120" autocomplete="off"
                            placeholder="Read your notes" aria-describedby="s-description-help"/>
                        <p id="s-description-help" class="muted small hint">"Plain words people read before they allow it, at most 120 characters."</p>
                        <label class="check"><input type="checkbox" name="sensitive"/>" Sensitive: list it first and mark it"</label>
                        <button type="submit" class="button primary" disabled=move || save.pending().get()>
                            {move || if save.pending().get() { "Saving…" } else { "Save scope" }}
                        </button>
                    </ActionForm>
                </section>
            </AdminFrame>
        }.into_any()
        />
    }
}

/// One catalogued scope: its words, who is registered for it; edit them
/// (the form holds the current words and mark), remove.
#[component]
fn ScopeRow(
    scope: AdminScope,
    save: ServerAction<SaveScope>,
    remove: ServerAction<RemoveScope>,
) -> impl IntoView {
    let name = scope.scope.clone();
    let row_name = name.clone();
    let edit_name = name.clone();
    let field_id = format!(
        "edit-{}",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
    );
    let in_use = !scope.clients.is_empty();
    view! {
        <li class="row" data-testid="scope-row" data-scope=row_name.clone()>
            <div>
                <code>{row_name.clone()}</code>
                {scope.sensitive.then(|| view! { <span class="badge warn">"Sensitive"</span> })}
                <p>{scope.description.clone()}</p>
                <p class="muted small">{if in_use {
                    format!("Registered by {} · changed {}", scope.clients.join(", "), format_time(scope.updated_at))
                } else {
                    format!("No client registered for it · changed {}", format_time(scope.updated_at))
                }}</p>
            </div>
            <details class="edit">
                <summary class="button secondary">"Edit"</summary>
                <ActionForm action=save attr:class="stack">
                    <input type="hidden" name="scope" value=edit_name/>
                    <label for=field_id.clone()>"What it lets an app do"</label>
                    <input id=field_id name="description" type="text" required maxlength="120" autocomplete="off"
                        value=scope.description.clone()/>
                    <label class="check"><input type="checkbox" name="sensitive" checked=scope.sensitive/>" Sensitive: list it first and mark it"</label>
                    <button type="submit" class="button primary" disabled=move || save.pending().get()>"Save words"</button>
                </ActionForm>
            </details>
            {(!in_use).then(move || view! {
                <Confirm label="Remove".to_string() question=format!("Remove {name}?")
                    detail="No client is registered for it; grants that carry it keep it, shown by its name.".to_string()>
                    <ActionForm action=remove>
                        <input type="hidden" name="scope" value=name.clone()/>
                        <button type="submit" class="button danger">"Yes, remove it"</button>
                    </ActionForm>
                </Confirm>
            })}
        </li>
    }
}
