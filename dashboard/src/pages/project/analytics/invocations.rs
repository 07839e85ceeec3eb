//! The project's functions: how often each route ran, how it failed, and
//! how long it took.

use maud::{html, Markup};

use super::{count, part};
use crate::components::table_wrap;
use crate::format::millis;
use crate::model::FunctionStats;

pub fn section(functions: &[FunctionStats]) -> Markup {
    let body = if functions.is_empty() {
        html! { p.muted { "No function invocations in this range." } }
    } else {
        table_wrap(
            "Function invocations",
            &[
                "Route",
                "Invocations",
                "Errors",
                "Timeouts",
                "Memory limit",
                "p50",
                "p95",
                "p99",
            ],
            html! {
                @for f in functions {
                    tr {
                        th scope="row" { code.break { (f.route) } }
                        (count(f.invocations))
                        (count(f.errors))
                        (count(f.timeouts))
                        (count(f.memory_limit))
                        @match f.latency {
                            Some(l) => {
                                td.num { (millis(l.p50)) }
                                td.num { (millis(l.p95)) }
                                td.num { (millis(l.p99)) }
                            }
                            None => { td.muted { "—" } td.muted { "—" } td.muted { "—" } }
                        }
                    }
                }
            },
        )
    };
    part("analytics-functions", "Functions", body)
}
