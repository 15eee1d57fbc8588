//! One person: the apps holding tokens for them, their sign-in sessions,
//! and cutting them off (revoke apps, sign out everywhere, disable, admin
//! rights, lifting a sign-in lock).

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use super::{AdminFrame, AdminNotFound};
use crate::{
    api::admin::*,
    components::{
        layout::Loaded,
        widgets::{ActionError, Confirm, Notice},
    },
    model::format_time,
    paths,
};

#[component]
pub fn AdminUserPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let update = ServerAction::<UpdateUser>::new();
    let cut = ServerAction::<CutUserOff>::new();
    let data = Resource::new(
        move || {
            (
                params.read().get("id").unwrap_or_default(),
                query.read().get("saved"),
                query.read().get("revoked_grants"),
                query.read().get("sessions_ended"),
            )
        },
        |(id, ..)| get_admin_user(id),
    );
    let notice = move || {
        let q = query.read();
        let mut parts = Vec::new();
        match q.get("saved").as_deref() {
            Some("disable") => parts.push("User disabled: they cannot sign in.".to_string()),
            Some("enable") => parts.push("User enabled.".to_string()),
            Some("make_admin") => parts.push("Now an administrator.".to_string()),
            Some("remove_admin") => parts.push("No longer an administrator.".to_string()),
            Some("created") => parts.push("User created.".to_string()),
            Some("clear_throttle") => {
                parts.push("Failed sign-ins forgotten: they can sign in again.".to_string())
            }
            _ => {}
        }
        if let Some(n) = q.get("revoked_grants") {
            parts.push(format!("{n} app grants revoked."));
        }
        if let Some(n) = q.get("sessions_ended") {
            parts.push(format!("{n} sign-in sessions ended."));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    view! {
        <Loaded data=data page=move |loaded| match loaded {
            (me, Some(d)) => {
                let u = d.user.clone();
                let (id0, id1, id2, id3) = (u.id.clone(), u.id.clone(), u.id.clone(), u.id.clone());
                let id4 = u.id.clone();
                let (apps_n, sessions_n) = (d.apps.len(), d.sessions.len());
                view! {
                    <AdminFrame user=me title=u.username.clone()>
                        <p class="crumbs"><a href=paths::ADMIN_USERS>"Users"</a>" / "</p>
                        <h1 data-testid="user-name">{u.username.clone()}
                            {u.is_admin.then(|| view! { <span class="badge ok">"admin"</span> })}
                            {u.disabled.then(|| view! { <span class="badge warn">"disabled"</span> })}
                        </h1>
                        <Notice text=Signal::derive(notice)/>
                        <ActionError action=update/>
                        <ActionError action=cut/>
                        <section class="card">
                            <h2>{format!("Apps ({apps_n})")}</h2>
                            {if d.apps.is_empty() { view! { <p class="muted">"No app holds access for this user."</p> }.into_any() } else { view! {
                                <ul class="rows">{d.apps.into_iter().map(|a| view! {
                                    <li class="row"><div><a href=paths::admin_client(&a.client_id)>{a.client_name}</a>
                                        <div class="muted small">{format!("{} · given {} · last used {} · {} sessions", a.scopes.join(" "), format_time(a.granted_at), a.last_used_at.map(format_time).unwrap_or_else(|| "never".into()), a.active_families)}</div></div></li>
                                }).collect_view()}</ul>
                            }.into_any() }}
                            <Confirm label="Revoke all of this user's apps".to_string() question=format!("Revoke all {apps_n} apps of {}?", u.username)
                                detail="Every grant, session and token of theirs ends at once.".to_string()>
                                <ActionForm action=cut>
                                    <input type="hidden" name="user_id" value=id0/>
                                    <input type="hidden" name="what" value="apps"/>
                                    <button type="submit" class="button danger">"Yes, revoke their apps"</button>
                                </ActionForm>
                            </Confirm>
                        </section>
                        <section class="card">
                            <h2>{format!("Sign-in sessions ({sessions_n})")}</h2>
                            <ul class="rows">{d.sessions.into_iter().map(|s| view! {
                                <li class="row"><div><strong>{s.device}</strong>{format!(" · {} · signed in {} · last seen {}", s.ip, format_time(s.started_at), format_time(s.last_seen_at))}</div></li>
                            }).collect_view()}</ul>
                            <Confirm label="Sign out everywhere".to_string() question=format!("End all {sessions_n} sign-in sessions of {}?", u.username)
                                detail="They are signed out on every browser; app sessions started there end per each app's revoke-on-logout.".to_string()>
                                <ActionForm action=cut>
                                    <input type="hidden" name="user_id" value=id1/>
                                    <input type="hidden" name="what" value="sessions"/>
                                    <button type="submit" class="button danger">"Yes, sign them out"</button>
                                </ActionForm>
                            </Confirm>
                        </section>
                        <section class="card danger-zone">
                            <h2>"Account"</h2>
                            {d.sign_in_locked_until.map(|until| view! {
                                <div class="notice warn" data-testid="sign-in-locked">
                                    <p>{format!("Sign-in is locked until {} after repeated failed attempts (this username, from any address).", format_time(until))}</p>
                                    <ActionForm action=update>
                                        <input type="hidden" name="user_id" value=id4/>
                                        <input type="hidden" name="what" value="clear_throttle"/>
                                        <button type="submit" class="button secondary">"Allow sign-in again"</button>
                                    </ActionForm>
                                </div>
                            })}
                            <div class="card-actions">
                                <ActionForm action=update>
                                    <input type="hidden" name="user_id" value=id2/>
                                    <input type="hidden" name="what" value=if u.disabled { "enable" } else { "disable" }/>
                                    <button type="submit" class="button danger-outline">{if u.disabled { "Enable user" } else { "Disable user (revokes everything)" }}</button>
                                </ActionForm>
                                <ActionForm action=update>
                                    <input type="hidden" name="user_id" value=id3/>
                                    <input type="hidden" name="what" value=if u.is_admin { "remove_admin" } else { "make_admin" }/>
                                    <button type="submit" class="button secondary">{if u.is_admin { "Remove admin rights" } else { "Make administrator" }}</button>
                                </ActionForm>
                            </div>
                        </section>
                    </AdminFrame>
                }.into_any()
            }
            (me, None) => view! {
                <AdminNotFound user=me what="User" back=paths::ADMIN_USERS back_label="All users"/>
            }.into_any(),
        }/>
    }
}
