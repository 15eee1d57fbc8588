//! The audit log: filtered by user, client, kind and time, paged, and
//! exported as CSV or JSON.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

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

/// Everything but RFC 3986's unreserved characters is percent-encoded in a
/// query value (a space as `%20`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The filters that are set, as a query string (`user=alice%20smith&kind=login`).
fn url_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::url_query;

    #[test]
    fn filters_are_percent_encoded_as_before() {
        let filters = [
            ("user", "alice smith".to_string()),
            ("client", String::new()),
            ("kind", "a+b*c~d-e_f.g".to_string()),
            ("from", "\u{fc}/?&=#%".to_string()),
            ("to", "\u{1F600}\n\"'<>".to_string()),
        ];
        assert_eq!(
            url_query(&filters),
            "user=alice%20smith&kind=a%2Bb%2Ac~d-e_f.g&from=%C3%BC%2F%3F%26%3D%23%25\
             &to=%F0%9F%98%80%0A%22%27%3C%3E"
        );
        assert_eq!(url_query(&[("user", String::new())]), "");

        // The page reads them back as they were (leptos_router's query map
        // on the server is url's query_pairs; the browser's URLSearchParams
        // decodes the same).
        #[cfg(feature = "ssr")]
        {
            let read: Vec<(String, String)> =
                url::form_urlencoded::parse(url_query(&filters).as_bytes())
                    .into_owned()
                    .collect();
            let set: Vec<(String, String)> = filters
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            assert_eq!(read, set);
        }
    }
}
