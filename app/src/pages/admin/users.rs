//! The people: a searchable list, and the form to create one.

use leptos::prelude::*;

use super::{query_value, AdminFrame};
use crate::{
    api::admin::*,
    components::{
        layout::Loaded,
        widgets::{ActionError, SearchForm},
    },
    model::format_time,
    paths,
};

#[component]
pub fn AdminUsersPage() -> impl IntoView {
    let q = query_value("q");
    let create = ServerAction::<CreateUser>::new();
    let data = Resource::new(move || q().unwrap_or_default(), get_admin_users);
    view! {
        <Loaded data=data page=move |(user, users)| view! {
            <AdminFrame user title="Users".to_string()>
                <h1>"Users"</h1>
                <SearchForm action=paths::ADMIN_USERS label="Search by username" value=q().unwrap_or_default()/>
                <div class="table-wrap card">
                    <table class="list" data-testid="users">
                        <thead><tr><th>"Username"</th><th>"Role"</th><th>"Status"</th><th>"Created"</th></tr></thead>
                        <tbody>
                            {users.into_iter().map(|u| view! {
                                <tr>
                                    <td><a href=paths::admin_user(&u.id)>{u.username}</a></td>
                                    <td>{if u.is_admin { "admin" } else { "user" }}</td>
                                    <td>{if u.disabled { "disabled" } else { "active" }}</td>
                                    <td>{format_time(u.created_at)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
                <section class="card">
                    <h2>"Create a user"</h2>
                    <ActionError action=create/>
                    <ActionForm action=create attr:class="stack">
                        <label for="u-name">"Username"</label>
                        <input id="u-name" name="username" type="text" required maxlength="64" autocomplete="off"/>
                        <label for="u-pass">"Password"</label>
                        <input id="u-pass" name="password" type="password" required autocomplete="new-password"/>
                        <label class="check"><input type="checkbox" name="is_admin"/>" Administrator"</label>
                        <button type="submit" class="button primary" disabled=move || create.pending().get()>"Create user"</button>
                    </ActionForm>
                </section>
            </AdminFrame>
        }.into_any()
        />
    }
}
