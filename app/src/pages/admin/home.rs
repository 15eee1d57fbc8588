//! The console's front page: sign-in and token activity over the last day
//! and month, and the clients holding the most live sessions.

use leptos::prelude::*;

use super::AdminFrame;
use crate::{
    api::admin::*,
    components::{chart::ActivityChart, layout::Loaded},
    paths,
};

#[component]
pub fn AdminHomePage() -> impl IntoView {
    let data = Resource::new(|| (), |_| get_admin_home());
    view! {
        <Loaded data=data page=move |(user, stats)| view! {
            <AdminFrame user title="Admin".to_string()>
                <h1>"Activity"</h1>
                <div class="charts">
                    <section class="card"><ActivityChart title="Last 24 hours, per hour".to_string() buckets=stats.hourly hourly=true/></section>
                    <section class="card"><ActivityChart title="Last 30 days, per day".to_string() buckets=stats.daily hourly=false/></section>
                </div>
                <section class="card">
                    <h2>"Top clients by active sessions"</h2>
                    {if stats.top_clients.is_empty() {
                        view! { <p class="muted">"No client holds a live session."</p> }.into_any()
                    } else {
                        let max = stats.top_clients.iter().map(|c| c.families).max().unwrap_or(1).max(1);
                        view! {
                            <ol class="bars" data-testid="top-clients">
                                {stats.top_clients.into_iter().map(|c| {
                                    // An SVG bar, not a style attribute: the CSP allows no inline styles.
                                    let width = (c.families * 100 / max).max(2).to_string();
                                    view! {
                                        <li>
                                            <a href=paths::admin_client(&c.client_id)>{c.name}</a>
                                            <svg class="bar" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true">
                                                <rect width=width height="1"></rect>
                                            </svg>
                                            <span class="muted">{c.families}</span>
                                        </li>
                                    }
                                }).collect_view()}
                            </ol>
                        }.into_any()
                    }}
                </section>
            </AdminFrame>
        }.into_any()
        />
    }
}
