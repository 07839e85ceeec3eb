//! How requests were answered: status classes and codes, response times,
//! and how much went out precompressed.

use maud::{html, Markup};

use super::{count, part};
use crate::chart::{figure, share_bar, Part};
use crate::components::table_wrap;
use crate::format::{millis, percent};
use crate::model::AnalyticsTotals;

pub fn section(t: &AnalyticsTotals) -> Markup {
    let body = html! {
        div.grid-2 {
            (status(t))
            (encodings(t))
        }
        div.grid-2 {
            div {
                h4 { "Status codes" }
                @if t.status_codes.is_empty() {
                    p.muted { "No responses recorded." }
                } @else {
                    (table_wrap("Status codes", &["Code", "Requests", "Share"], html! {
                        @for (code, n) in &t.status_codes {
                            tr {
                                th scope="row" { code { (code) } }
                                (count(*n))
                                td.num { (percent(*n, t.requests)) }
                            }
                        }
                    }))
                }
            }
            div {
                h4 { "Response time" }
                @match t.latency {
                    None => p.muted { "No response times measured in this range." },
                    Some(l) => (table_wrap("Response time percentiles", &["Percentile", "Time"], html! {
                        @for (label, v) in [("p50 (median)", l.p50), ("p95", l.p95), ("p99", l.p99)] {
                            tr { th scope="row" { (label) } td.num { (millis(v)) } }
                        }
                    })),
                }
            }
        }
    };
    part("analytics-responses", "Responses", body)
}

fn status(t: &AnalyticsTotals) -> Markup {
    let s = t.status;
    let parts = [
        Part {
            label: "2xx",
            key: "2xx",
            value: s.s2xx,
        },
        Part {
            label: "3xx",
            key: "3xx",
            value: s.s3xx,
        },
        Part {
            label: "4xx",
            key: "4xx",
            value: s.s4xx,
        },
        Part {
            label: "5xx",
            key: "5xx",
            value: s.s5xx,
        },
    ];
    shares(
        "chart-status",
        "Status classes",
        "Class",
        &parts,
        "No responses recorded.",
    )
}

fn encodings(t: &AnalyticsTotals) -> Markup {
    let e = t.encodings;
    let parts = [
        Part {
            label: "Brotli (precompressed)",
            key: "br",
            value: e.br,
        },
        Part {
            label: "Gzip (precompressed)",
            key: "gzip",
            value: e.gzip,
        },
        Part {
            label: "Uncompressed",
            key: "identity",
            value: e.identity,
        },
    ];
    shares(
        "chart-encodings",
        "Static files by encoding",
        "Encoding",
        &parts,
        "No static files served.",
    )
}

/// A share bar with its legend and table, or a sentence when there is
/// nothing to share out.
fn shares(id: &str, title: &str, head: &str, parts: &[Part], none: &str) -> Markup {
    let total = parts.iter().fold(0u64, |a, p| a.saturating_add(p.value));
    if total == 0 {
        return html! {
            figure.chart id=(id) {
                figcaption.chart-title { (title) }
                p.muted { (none) }
            }
        };
    }
    let legend: Vec<(&str, &str)> = parts.iter().map(|p| (p.key, p.label)).collect();
    let table = table_wrap(
        title,
        &[head, "Requests", "Share"],
        html! {
            @for p in parts {
                tr {
                    th scope="row" { (p.label) }
                    (count(p.value))
                    td.num { (percent(p.value, total)) }
                }
            }
        },
    );
    figure(id, title, &legend, share_bar(title, parts), table)
}
