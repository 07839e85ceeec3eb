//! The totals as cards. Each value is shortened for reading ("1.2k") and
//! exact in its `<data value>`, for tests and anyone copying it.

use maud::{html, Markup};

use crate::format::{compact, millis, percent, size};
use crate::model::AnalyticsTotals;

pub fn cards(t: &AnalyticsTotals) -> Markup {
    html! {
        dl.stats {
            (stat("analytics-requests", "Requests", t.requests, &compact(t.requests)))
            (stat("analytics-page-views", "Page views", t.page_views, &compact(t.page_views)))
            (stat("analytics-visitors", "Visitors", t.visitors, &compact(t.visitors)))
            (stat("analytics-bytes", "Bandwidth", t.bytes, &size(t.bytes)))
            (stat("analytics-bots", "Bot requests", t.bots, &compact(t.bots)))
            div.stat {
                dt { "Server errors" }
                dd #analytics-errors { (percent(t.status.s5xx, t.requests)) }
            }
            div.stat {
                dt { "p95 response" }
                dd #analytics-p95 {
                    @match t.latency {
                        Some(l) => (millis(l.p95)),
                        None => span.muted { "—" },
                    }
                }
            }
        }
    }
}

fn stat(id: &str, label: &str, exact: u64, shown: &str) -> Markup {
    html! {
        div.stat {
            dt { (label) }
            dd id=(id) { data value=(exact) { (shown) } }
        }
    }
}
