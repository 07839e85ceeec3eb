//! The project's alert rules: what is firing, adding and removing rules.
//! The channels they notify belong to the team and are managed on its
//! page; this tab lists them and links there.

use maud::{html, Markup};

use crate::components::empty;
use crate::format::seg;
use crate::model::{AlertsTab, Page, ProjectHeader};
use crate::pages::rules;

pub fn render(page: &Page, h: &ProjectHeader, base: &str, t: &AlertsTab) -> Markup {
    let team_url = format!("/teams/{}", seg(&t.team.id));
    let firing = t.rules.iter().filter(|r| r.firing()).count();
    let action = format!("{base}/alerts");
    html! {
        div.section-head {
            h2 { "Alerts" }
            @if firing > 0 {
                p.alert-count role="status" {
                    (firing) " rule" @if firing != 1 { "s" } " firing"
                }
            }
        }
        p.muted { "Rules watch this project and notify channels of the team " strong { (t.team.name) } "." }
        @if t.rules.is_empty() {
            (empty("No alert rules", html! {
                p { "Be told when the error rate climbs, functions fail, a build or deploy fails, "
                    "a build is slow, or a custom domain's certificate is about to expire." }
                @if !h.can_write { p { "A team owner or member can add one." } }
            }))
        } @else {
            (rules::table(page, &t.rules, &t.kinds, h.can_write.then_some(action.as_str())))
        }
        @if h.can_write {
            section.card aria-labelledby="rule-add-h" {
                h3 #rule-add-h { "Add an alert" }
                @if t.channels.is_empty() {
                    p.note {
                        "Alerts notify the team's channels, and it has none yet. "
                        a href={ (team_url) "#channels-h" } { "Add a channel on the team page" }
                        " (a webhook, Slack or e-mail), then come back."
                    }
                } @else {
                    (rules::form(page, "rule", &action, &t.kinds, &t.channels))
                }
            }
        }
        section aria-labelledby="alert-channels-h" {
            h3 #alert-channels-h { "Channels" }
            @if t.channels.is_empty() {
                p.muted { "The team has no channels." }
            } @else {
                ul.plain { @for (_, label) in &t.channels { li { (label) } } }
            }
            p.hint {
                "Channels are shared by every project of " (t.team.name) ". "
                a href={ (team_url) "#channels-h" } { "Manage them, send a test and see their deliveries" }
                " on the team page."
            }
        }
        (rules::presets(&t.kinds))
    }
}
