//! Traffic of one project over a range (issue 24): totals, requests over
//! time, responses, what was asked for and from where, edges, functions.
//! The handler has aggregated everything; this only draws it, every chart
//! next to a table of the same numbers.

mod edges;
mod filter;
mod invocations;
mod range;
mod responses;
mod summary;
mod top;
mod traffic;

use maud::{html, Markup};

use crate::components::empty;
use crate::format::grouped;
use crate::model::{AnalyticsFilter, AnalyticsTab};

pub fn render(base: &str, a: &AnalyticsTab) -> Markup {
    let quiet = a.totals.requests == 0 && a.series.iter().all(|p| p.requests == 0);
    html! {
        div #analytics {
            div.section-head {
                h2 { "Analytics" }
                p.muted { (describe(a)) }
            }
            (filter::form(base, a))
            (summary::cards(&a.totals))
            @if quiet {
                (empty("No traffic in this range", html! {
                    p { "Every edge node counts the requests it serves for this project. "
                        "Pick a longer range, or look again once the project has visitors." }
                }))
            } @else {
                (traffic::section(a))
                (responses::section(&a.totals))
                (top::section(a))
                (edges::section(&a.nodes))
                (invocations::section(&a.functions))
            }
        }
    }
}

/// "Last 7 days · per hour · production": what the numbers below cover.
fn describe(a: &AnalyticsTab) -> String {
    let mut out = format!("{} · per {}", a.range.describe(), a.granularity.key());
    match &a.filter {
        Some(AnalyticsFilter::Environment(e)) => out.push_str(&format!(" · {e} only")),
        Some(AnalyticsFilter::Deployment(d)) => out.push_str(&format!(" · deployment {d}")),
        None => {}
    }
    out
}

/// A part of the page under its own heading, with a stable id.
fn part(id: &str, title: &str, body: Markup) -> Markup {
    let heading = format!("{id}-h");
    html! {
        section.analytics-section id=(id) aria-labelledby=(heading) {
            h3 id=(heading) { (title) }
            (body)
        }
    }
}

/// An exact count in a table cell.
fn count(n: u64) -> Markup {
    html! { td.num { (grouped(n)) } }
}
