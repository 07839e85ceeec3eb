//! Who did what, newest first, optionally for one team.

use maud::html;

use crate::components::{empty, pager, table_wrap, time};
use crate::layout::document;
use crate::model::{AuditPage, Page};

pub fn audit(page: &Page, a: &AuditPage) -> String {
    let body = html! {
        div.page-head { h1 { "Audit log" } }
        // GET, not POST: filtering changes nothing, and the URL can be shared.
        form.row method="get" action="/audit" {
            div.field {
                label for="audit-team" { "Team" }
                select #audit-team name="team" {
                    option value="" selected[a.team.is_none()] { "All your teams" }
                    @for t in &a.teams {
                        option value=(t.id) selected[a.team.as_deref() == Some(t.id.as_str())] { (t.name) }
                    }
                }
            }
            button type="submit" class="btn" { "Show" }
        }
        @if a.events.is_empty() {
            (empty("No events", html! {
                p { "Sign-ins, deployments and changes to projects, tokens and teams are recorded here as they happen." }
            }))
        } @else {
            (table_wrap("Audit events", &["When", "Actor", "Action", "Target", "Team", "IP"], html! {
                @for e in &a.events {
                    tr {
                        td.nowrap { (time(page.now_ms, e.at)) }
                        td { (e.actor) }
                        td { code { (e.action) } }
                        td { code.break { (e.target) } }
                        td { (e.team) }
                        td.nowrap { code { (e.ip) } }
                    }
                }
            }))
            (pager(&a.pager))
        }
    };
    document(page, false, body)
}
