//! Error tracking: the project's issues (failures grouped by where and
//! how they happened), and one issue with its newest sample, where it was
//! seen, and the forms that resolve, ignore or reopen it.

use maud::{html, Markup};

use crate::chart::sparkline;
use crate::components::{badge_toned, empty, post_form, table_wrap, time};
use crate::format::{grouped, seg};
use crate::model::{ErrorsTab, IssuePage, IssueRow, Page, ProjectHeader};

/// The `state=` filters, in the order the page offers them.
const FILTERS: [(&str, &str); 5] = [
    ("open", "Open"),
    ("regressed", "Regressed"),
    ("resolved", "Resolved"),
    ("ignored", "Ignored"),
    ("all", "All"),
];

const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

pub fn severity_tone(s: &str) -> &'static str {
    match s {
        "critical" => "bad",
        "high" => "warn",
        "medium" => "info",
        _ => "muted",
    }
}

pub fn state_tone(s: &str) -> &'static str {
    match s {
        "regressed" => "bad",
        "unresolved" => "warn",
        "resolved" => "ok",
        _ => "muted",
    }
}

fn trend_label(trend: &[u64]) -> String {
    let total = trend.iter().fold(0u64, |a, n| a.saturating_add(*n));
    let max = trend.iter().copied().max().unwrap_or(0);
    format!(
        "Events per hour over the last 24 hours: {} in all, at most {} in one hour",
        grouped(total),
        grouped(max)
    )
}

fn issue_url(base: &str, id: &str) -> String {
    format!("{base}/errors/{}", seg(id))
}

pub fn list(page: &Page, h: &ProjectHeader, base: &str, t: &ErrorsTab) -> Markup {
    html! {
        div.section-head {
            h2 { "Errors" }
            nav.filters aria-label="Issues by state" {
                ul {
                    @for (key, label) in FILTERS {
                        li {
                            a href={ (base) "/errors?state=" (key) }
                                aria-current=[(t.filter == key).then_some("page")] { (label) }
                        }
                    }
                }
            }
        }
        @if t.issues.is_empty() {
            @if t.filter == "open" {
                (empty("No open errors", html! {
                    p { "Failures of " (h.name) "'s functions (panics, traps, timeouts, memory limits, 5xx answers), "
                        "builds, deploys and certificates are grouped into issues here as they happen." }
                    p { a href={ (base) "/errors?state=all" } { "See every issue" } ", resolved and ignored ones included." }
                }))
            } @else {
                (empty(&format!("No {} issues", t.filter), html! {
                    p { a href={ (base) "/errors" } { "Back to the open ones" } }
                }))
            }
        } @else {
            (table_wrap("Error issues", &["Issue", "Severity", "State", "Events", "Last 24 hours", "Last seen"], html! {
                @for i in &t.issues { (row(page, base, i)) }
            }))
            @if t.truncated {
                p.hint { "Only the " (t.issues.len()) " most recently seen issues are listed." }
            }
        }
    }
}

fn row(page: &Page, base: &str, i: &IssueRow) -> Markup {
    html! {
        tr {
            th scope="row" {
                a.break href=(issue_url(base, &i.id)) { (i.title) }
                @if !i.culprit.is_empty() {
                    br; code.small.break { (i.culprit) }
                }
                br; span.muted.small { (i.source) " · " (i.kind) }
            }
            td { (badge_toned(&i.severity, severity_tone(&i.severity))) }
            td { (badge_toned(&i.state, state_tone(&i.state))) }
            td.num { (grouped(i.count)) }
            td.spark-cell { (sparkline(&trend_label(&i.trend), &i.trend)) }
            td.nowrap { (time(page.now_ms, i.last_seen)) }
        }
    }
}

pub fn issue(page: &Page, h: &ProjectHeader, base: &str, p: &IssuePage) -> Markup {
    let i = &p.issue;
    html! {
        p.crumbs { a href={ (base) "/errors" } { "Errors" } " / " code { (i.id) } }
        div.section-head {
            h2.break { (i.title) }
        }
        p.status-line {
            (badge_toned(&i.severity, severity_tone(&i.severity))) " "
            (badge_toned(&i.state, state_tone(&i.state))) " "
            span.muted { (i.source) " · " (i.kind) }
        }
        div.grid-2 {
            section.card aria-labelledby="issue-summary-h" {
                h3 #issue-summary-h { "Summary" }
                dl.meta {
                    dt { "Events" } dd.num { (grouped(i.count)) }
                    dt { "First seen" } dd { (time(page.now_ms, i.first_seen)) }
                    dt { "Last seen" } dd { (time(page.now_ms, i.last_seen)) }
                    @if let Some(r) = i.resolved_at {
                        dt { "Resolved" } dd { (time(page.now_ms, r)) }
                    }
                    @if !i.culprit.is_empty() {
                        dt { "Where" } dd { code.break { (i.culprit) } }
                    }
                    dt { "Last 24 hours" } dd.spark-cell { (sparkline(&trend_label(&i.trend), &i.trend)) }
                }
            }
            section.card aria-labelledby="issue-triage-h" {
                h3 #issue-triage-h { "Triage" }
                @if h.can_write {
                    (triage(page, base, i))
                } @else {
                    p.note { "You have view access: a team owner or member can resolve or ignore this issue." }
                }
            }
        }
        @if let Some(m) = &p.message {
            section aria-labelledby="issue-message-h" {
                h3 #issue-message-h { "Message" }
                pre.cmd.pre-wrap { (m) }
            }
        }
        @if !p.frames.is_empty() {
            section aria-labelledby="issue-frames-h" {
                h3 #issue-frames-h { "Backtrace" }
                p.hint { "Innermost first." }
                ol.frames { @for f in &p.frames { li { code.break { (f) } } } }
            }
        }
        @if let Some(r) = &p.request {
            section aria-labelledby="issue-request-h" {
                h3 #issue-request-h { "Sample request" }
                dl.meta {
                    @if r.method.is_some() || r.path.is_some() {
                        dt { "Request" }
                        dd { code.break { (r.method.as_deref().unwrap_or("")) " " (r.path.as_deref().unwrap_or("")) } }
                    }
                    @if let Some(s) = r.status { dt { "Status" } dd { (s) } }
                    @if let Some(id) = &r.request_id {
                        dt { "Request id" }
                        dd {
                            code #issue-request-id { (id) }
                            p.hint { "Its log lines carry this id: " code.break { "coordinator logs " (h.name) " | grep " (id) } }
                        }
                    }
                    @if let Some(n) = &r.node { dt { "Edge node" } dd { code { (n) } } }
                }
            }
        }
        @if !p.stderr.is_empty() {
            section aria-labelledby="issue-stderr-h" {
                h3 #issue-stderr-h { "Standard error" }
                p.hint { "The function's last lines before it failed." }
                pre.log { @for l in &p.stderr { span.line.stderr { (l) } "\n" } }
            }
        }
        @if !p.details.is_empty() {
            section aria-labelledby="issue-details-h" {
                h3 #issue-details-h { "Details" }
                dl.meta {
                    @for (k, v) in &p.details {
                        dt { (k) }
                        dd {
                            @if k == "build" || k == "deployment" {
                                a href={ "/deployments/" (seg(v)) } { code { (v) } }
                            } @else {
                                span.break { (v) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="issue-deployments-h" {
            h3 #issue-deployments-h { "Deployments" }
            @if p.deployments.is_empty() {
                p.muted { "Not tied to a deployment." }
            } @else {
                (table_wrap("Deployments it was seen in", &["Deployment", "Events", "Last seen"], html! {
                    @for d in &p.deployments {
                        tr {
                            th scope="row" { a href={ "/deployments/" (seg(&d.deployment)) } { code { (d.deployment) } } }
                            td.num { (grouped(d.count)) }
                            td.nowrap { (time(page.now_ms, d.last_seen)) }
                        }
                    }
                }))
            }
        }
        section aria-labelledby="issue-events-h" {
            h3 #issue-events-h { "Newest events" }
            @if p.events.is_empty() {
                p.muted { "No events kept." }
            } @else {
                (table_wrap("Newest events", &["When", "Failures", "Deployment", "What"], html! {
                    @for e in &p.events {
                        tr {
                            td.nowrap { (time(page.now_ms, e.at)) }
                            td.num { (grouped(e.count)) }
                            td {
                                @match &e.deployment {
                                    Some(d) => a href={ "/deployments/" (seg(d)) } { code { (d) } },
                                    None => span.muted { "—" },
                                }
                            }
                            td {
                                span.break { (e.summary) }
                                @if let Some(r) = &e.request_id {
                                    br; span.muted.small { "request " code { (r) } }
                                }
                            }
                        }
                    }
                }))
            }
        }
    }
}

/// Resolve, ignore or reopen, and the severity; each its own POST.
fn triage(page: &Page, base: &str, i: &IssueRow) -> Markup {
    let url = issue_url(base, &i.id);
    let open = matches!(i.state.as_str(), "unresolved" | "regressed");
    let moves: &[(&str, &str, &str)] = if open {
        &[
            ("resolved", "Resolve", "btn primary"),
            ("ignored", "Ignore", "btn"),
        ]
    } else if i.state == "ignored" {
        &[
            ("unresolved", "Stop ignoring", "btn"),
            ("resolved", "Resolve", "btn"),
        ]
    } else {
        &[
            ("unresolved", "Reopen", "btn"),
            ("ignored", "Ignore", "btn"),
        ]
    };
    html! {
        div.actions {
            @for (state, label, class) in moves {
                (post_form(&page.csrf, &format!("{url}/state"), "inline", html! {
                    input type="hidden" name="state" value=(state);
                    button type="submit" class=(class) { (label) }
                }))
            }
        }
        p.hint {
            @if open { "A resolved issue reopens as regressed when it happens again; an ignored one stays quiet." }
            @else if i.state == "ignored" { "Ignored: new events are counted but do not reopen it." }
            @else {
                "Resolved" @if let Some(r) = i.resolved_at { " " (time(page.now_ms, r)) }
                ". It reopens as regressed if it happens again."
            }
        }
        (post_form(&page.csrf, &format!("{url}/severity"), "row", html! {
            div.field {
                label for="issue-severity" { "Severity" }
                select #issue-severity name="severity" {
                    @for s in SEVERITIES { option value=(s) selected[s == i.severity] { (s) } }
                }
            }
            button type="submit" class="btn" { "Set severity" }
        }))
    }
}
