//! The audit log: filtered by user, client, kind and time, paged, and
//! exported as CSV or JSON.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use super::AdminFrame;
use crate::{
    api::admin::*,
    components::{layout::LoadFailed, widgets::Pager},
    model::format_time,
    paths,
};

#[component]
pub fn AdminAuditPage() -> impl IntoView {
    let query = use_query_map();
    let get = move |k: &str| query.read().get(k).unwrap_or_default();
    let data = Resource::new(
        move || {
            (
                get("user"),
                get("client"),
                get("kind"),
                get("from"),
                get("to"),
                crate::model::page_number(Some(&get("page"))),
            )
        },
        |(user, client, kind, from, to, page)| get_audit(user, client, kind, from, to, page),
    );
    view! {
        <Suspense fallback=|| view! { <p class="page muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let filters: Vec<(&str, String)> = ["user", "client", "kind", "from", "to"].into_iter().map(|k| (k, get(k))).collect();
                let qs: String = url_query(&filters);
                match data.await {
                    Ok((user, page)) => view! {
                        <AdminFrame user title="Audit log".to_string()>
                            <h1>"Audit log"</h1>
                            <form method="get" action=paths::ADMIN_AUDIT class="filters">
                                {filters.iter().map(|(k, v)| {
                                    let label = match *k { "user" => "User (id or name)", "client" => "Client id", "kind" => "Event kind", "from" => "From (YYYY-MM-DD)", _ => "To (YYYY-MM-DD)" };
                                    view! { <label>{label}<input name=*k type="text" value=v.clone()/></label> }
                                }).collect_view()}
                                <button type="submit" class="button secondary">"Filter"</button>
                            </form>
                            <p class="muted">{format!("{} events. ", page.total)}
                                <a href=format!("{}?format=csv&{qs}", paths::ADMIN_AUDIT_EXPORT) data-testid="export-csv">"Export CSV"</a>" · "
                                <a href=format!("{}?format=json&{qs}", paths::ADMIN_AUDIT_EXPORT)>"Export JSON"</a>
                            </p>
                            // Scrolls sideways on narrow screens: focusable, so the keyboard scrolls it too.
                            <div class="table-wrap card" tabindex="0" role="region" aria-label="Audit events">
                                <table class="list audit" data-testid="audit">
                                    <thead><tr><th>"Time"</th><th>"Event"</th><th>"Actor"</th><th>"User"</th><th>"Client"</th><th>"IP"</th><th>"Detail"</th></tr></thead>
                                    <tbody>{page.items.iter().cloned().map(|e| view! {
                                        <tr><td>{format_time(e.at)}</td><td>{e.kind}</td><td>{e.actor}</td><td>{e.subject}</td><td>{e.client}</td><td>{e.ip}</td><td class="detail"><code>{e.detail}</code></td></tr>
                                    }).collect_view()}</tbody>
                                </table>
                            </div>
                            <Pager page=page.page pages=page.pages() base=if qs.is_empty() { paths::ADMIN_AUDIT.to_string() } else { format!("{}?{qs}", paths::ADMIN_AUDIT) }/>
                        </AdminFrame>
                    }.into_any(),
                    Err(e) => view! { <LoadFailed error=e.to_string()/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn url_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value (no dependency on `url`, which is server-only).
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
