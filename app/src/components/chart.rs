//! Activity charts as inline SVG, rendered on the server like the rest of the
//! page: no chart library, nothing downloaded at run time, readable without
//! JavaScript. Each chart carries its numbers as a table too (for screen
//! readers and for people who want the exact counts).

use leptos::prelude::*;

use crate::model::{format_day, format_time, ActivityBucket};

const W: f64 = 640.0;
const H: f64 = 200.0;
const PAD_L: f64 = 40.0;
const PAD_B: f64 = 24.0;
const PAD_T: f64 = 10.0;

/// The series drawn, with their colours (distinguishable without colour too:
/// solid, dashed, dotted lines, and the legend names them).
const SERIES: [(&str, &str, &str); 3] = [
    ("Issued", "#1f5fbf", ""),
    ("Refreshed", "#1e6b3a", "6 4"),
    ("Revoked", "#b3261e", "2 3"),
];

fn value(b: &ActivityBucket, i: usize) -> i64 {
    match i {
        0 => b.issued,
        1 => b.refreshed,
        _ => b.revoked,
    }
}

/// A line chart of issued / refreshed / revoked per bucket, with reuse
/// detections marked. `hourly` picks the label format.
#[component]
pub fn ActivityChart(title: String, buckets: Vec<ActivityBucket>, hourly: bool) -> impl IntoView {
    let n = buckets.len().max(2) as f64;
    let max = buckets
        .iter()
        .flat_map(|b| [b.issued, b.refreshed, b.revoked])
        .max()
        .unwrap_or(0)
        .max(1);
    // A round top for the axis: 1, 2, 5, 10, 20, 50, ...
    let top = {
        let mut step = 1i64;
        loop {
            if let Some(t) = [step, step * 2, step * 5].into_iter().find(|t| *t >= max) {
                break t;
            }
            step *= 10;
        }
    };
    let x = move |i: usize| PAD_L + (W - PAD_L - 10.0) * (i as f64) / (n - 1.0);
    let y = move |v: i64| PAD_T + (H - PAD_T - PAD_B) * (1.0 - v as f64 / top as f64);
    let label = move |start: i64| {
        if hourly {
            format_time(start)[11..16].to_string()
        } else {
            format_day(start)[5..].to_string()
        }
    };
    let lines = SERIES
        .iter()
        .enumerate()
        .map(|(s, (name, color, dash))| {
            let points: String = buckets
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{:.1},{:.1}", x(i), y(value(b, s))))
                .collect::<Vec<_>>()
                .join(" ");
            view! {
                <polyline points=points fill="none" stroke=*color stroke-width="2"
                    stroke-dasharray=*dash data-series=*name/>
            }
        })
        .collect_view();
    let reuse = buckets
        .iter()
        .enumerate()
        .filter(|(_, b)| b.reuse > 0)
        .map(|(i, b)| {
            view! {
                <g class="reuse-mark">
                    <circle cx=format!("{:.1}", x(i)) cy=format!("{:.1}", PAD_T + 4.0) r="5" fill="#b3261e"/>
                    <title>{format!("{} reuse detection(s)", b.reuse)}</title>
                </g>
            }
        })
        .collect_view();
    let ticks = (0..buckets.len())
        .step_by((buckets.len() / 6).max(1))
        .map(|i| {
            view! {
                <text x=format!("{:.1}", x(i)) y=format!("{:.1}", H - 6.0) text-anchor="middle" class="tick">
                    {label(buckets[i].start)}
                </text>
            }
        })
        .collect_view();
    let totals: Vec<i64> = (0..3)
        .map(|s| buckets.iter().map(|b| value(b, s)).sum())
        .collect();
    let reuse_total: i64 = buckets.iter().map(|b| b.reuse).sum();
    let rows = buckets
        .iter()
        .rev()
        .filter(|b| b.issued + b.refreshed + b.revoked + b.reuse > 0)
        .map(|b| {
            view! {
                <tr>
                    <td>{if hourly { format_time(b.start) } else { format_day(b.start) }}</td>
                    <td>{b.issued}</td><td>{b.refreshed}</td><td>{b.revoked}</td><td>{b.reuse}</td>
                </tr>
            }
        })
        .collect_view();
    let summary = format!(
        "{}: {} issued, {} refreshed, {} revoked, {} reuse detections",
        title, totals[0], totals[1], totals[2], reuse_total
    );
    view! {
        <figure class="chart" data-testid="chart">
            <figcaption>
                <strong>{title.clone()}</strong>
                <span class="legend">
                    {SERIES.iter().enumerate().map(|(s, (name, color, dash))| view! {
                        <span class="legend-item">
                            <svg width="22" height="10" aria-hidden="true">
                                <line x1="0" y1="5" x2="22" y2="5" stroke=*color stroke-width="2" stroke-dasharray=*dash data-series=*name/>
                            </svg>
                            {format!("{name} ({})", totals[s])}
                        </span>
                    }).collect_view()}
                    <span class="legend-item reuse">{format!("● reuse detected ({reuse_total})")}</span>
                </span>
            </figcaption>
            <svg viewBox=format!("0 0 {W} {H}") role="img" aria-label=summary class="chart-svg">
                <line x1=PAD_L y1=y(0) x2=W - 10.0 y2=y(0) class="axis"/>
                <line x1=PAD_L y1=y(top) x2=W - 10.0 y2=y(top) class="grid"/>
                <line x1=PAD_L y1=y(top / 2) x2=W - 10.0 y2=y(top / 2) class="grid"/>
                <text x=PAD_L - 6.0 y=y(top) + 4.0 text-anchor="end" class="tick">{top}</text>
                <text x=PAD_L - 6.0 y=y(top / 2) + 4.0 text-anchor="end" class="tick">{top / 2}</text>
                <text x=PAD_L - 6.0 y=y(0) + 4.0 text-anchor="end" class="tick">"0"</text>
                {lines}
                {reuse}
                {ticks}
            </svg>
            <details class="chart-table">
                <summary>"Show the numbers"</summary>
                <table>
                    <thead><tr><th>{if hourly { "Hour" } else { "Day" }}</th><th>"Issued"</th><th>"Refreshed"</th><th>"Revoked"</th><th>"Reuse"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </details>
        </figure>
    }
    // Type-erased: the chart's view type is deep enough to hit rustc's query limit in callers.
    .into_any()
}
