//! Requests and page views over time.

use maud::{html, Markup};

use super::{count, part};
use crate::chart::{figure, time_chart, Line, TimeChart};
use crate::components::{empty, table_wrap};
use crate::format::{datetime_local, iso, size};
use crate::model::{AnalyticsTab, Granularity};

pub fn section(a: &AnalyticsTab) -> Markup {
    let body = if a.series.is_empty() {
        empty(
            "No data points",
            html! {
                p { "The totals above cover the range; there are no per-"
                    (a.granularity.key()) " counts for it yet." }
            },
        )
    } else {
        chart(a)
    };
    part("analytics-traffic", "Traffic", body)
}

fn chart(a: &AnalyticsTab) -> Markup {
    let times: Vec<i64> = a.series.iter().map(|p| p.t_ms).collect();
    let lines = [
        Line {
            label: "Requests",
            key: "requests",
            values: a.series.iter().map(|p| p.requests).collect(),
        },
        Line {
            label: "Page views",
            key: "views",
            values: a.series.iter().map(|p| p.page_views).collect(),
        },
    ];
    let title = format!("Requests and page views per {} (UTC)", a.granularity.key());
    let svg = time_chart(&TimeChart {
        label: &title,
        times: &times,
        bucket_ms: a.granularity.step_ms(),
        lines: &lines,
    });
    // Long ranges have hundreds of rows: folded, but there for whoever
    // wants the exact numbers (or cannot see the chart).
    let table = html! {
        details {
            summary { "Show the numbers" }
            (table_wrap("Traffic over time", &["Time (UTC)", "Requests", "Page views", "Visitors", "Bandwidth"], html! {
                @for p in &a.series {
                    tr {
                        th scope="row" .nowrap { time datetime=(iso(p.t_ms)) { (bucket(p.t_ms, a.granularity)) } }
                        (count(p.requests))
                        (count(p.page_views))
                        (count(p.visitors))
                        td.num { (size(p.bytes)) }
                    }
                }
            }))
        }
    };
    figure(
        "chart-traffic",
        &title,
        &[("requests", "Requests"), ("views", "Page views")],
        svg,
        table,
    )
}

/// A bucket's start as precise as its width: a day, or a minute.
fn bucket(ms: i64, g: Granularity) -> String {
    let local = datetime_local(ms);
    match g {
        Granularity::Day => local.split('T').next().unwrap_or_default().to_string(),
        Granularity::Hour | Granularity::Minute => local.replace('T', " "),
    }
}
