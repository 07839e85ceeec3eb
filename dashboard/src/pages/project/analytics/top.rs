//! What visitors asked for, where they came from and what they used. Every
//! key here is chosen by visitors (paths, referrers, user agents), so it is
//! only ever text: escaped, and never made into a link.

use maud::{html, Markup};

use super::{count, part};
use crate::chart::{bars, figure, inline_bar};
use crate::components::table_wrap;
use crate::model::AnalyticsTab;

/// Rows the top-pages chart draws; the table lists all the handler sent.
const CHART_ROWS: usize = 10;

pub fn section(a: &AnalyticsTab) -> Markup {
    let t = &a.top;
    let body = html! {
        @if t.pages.is_empty() {
            figure.chart #chart-pages {
                figcaption.chart-title { "Top pages" }
                p.muted { "No page views in this range." }
            }
        } @else {
            (figure("chart-pages", "Top pages", &[],
                bars("Top pages by page views", &t.pages[..t.pages.len().min(CHART_ROWS)]),
                list("Top pages", "Page", "Page views", &t.pages)))
        }
        div.grid-2 {
            (titled("top-not-found", "Resources not found", "Path", "Requests", &t.not_found,
                html! { "No 404 responses in this range." }))
            (titled("top-referrers", "Referrers", "Referrer", "Page views", &t.referrers,
                html! { "No referrers: visitors came directly, or their browsers sent none." }))
            (titled("top-countries", "Countries", "Country", "Page views", &t.countries,
                if a.geoip {
                    html! { "No countries recorded in this range." }
                } else {
                    html! { "Countries need a GeoIP database: configure a GeoIP database on the edge nodes (" code { "edge-node run --geoip FILE.mmdb" } ") to see them." }
                }))
            (titled("top-browsers", "Browsers", "Browser", "Page views", &t.browsers,
                html! { "No browsers recorded in this range." }))
            (titled("top-os", "Operating systems", "System", "Page views", &t.os,
                html! { "No operating systems recorded in this range." }))
            (titled("top-devices", "Devices", "Device", "Page views", &t.devices,
                html! { "No devices recorded in this range." }))
        }
    };
    part("analytics-top", "Pages and visitors", body)
}

fn titled(
    id: &str,
    title: &str,
    key: &str,
    what: &str,
    rows: &[(String, u64)],
    none: Markup,
) -> Markup {
    html! {
        div.top-list id=(id) {
            h4 { (title) }
            @if rows.is_empty() {
                p.muted { (none) }
            } @else {
                (list(title, key, what, rows))
            }
        }
    }
}

/// Key, count and a bar relative to the first (largest) row.
fn list(caption: &str, key: &str, what: &str, rows: &[(String, u64)]) -> Markup {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0);
    table_wrap(
        caption,
        &[key, what, ""],
        html! {
            @for (k, n) in rows {
                tr {
                    th scope="row" { code.break { (k) } }
                    (count(*n))
                    td.bar-cell { (inline_bar(*n, max)) }
                }
            }
        },
    )
}
