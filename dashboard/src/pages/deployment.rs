//! One deployment: status, timeline, build log (followed live by
//! `app.js`), files and functions.

use maud::{html, Markup};

use crate::components::{empty, ext_link, functions_table, table_wrap, time, tone};
use crate::format::{clock, seg, size, utc};
use crate::layout::document;
use crate::model::{DeploymentPage, FileRow, LogLine, Page};
use crate::pages::project::deployments::{actions, source};

/// Statuses after which no more log lines or status changes arrive;
/// `app.js` has the same list.
const FINISHED: [&str; 3] = ["ready", "failed", "cancelled"];

pub fn deployment(page: &Page, d: &DeploymentPage) -> String {
    let r = &d.row;
    let project_url = format!("/projects/{}", seg(&d.project));
    let body = html! {
        p.crumbs { a href="/" { "Projects" } " / " a href=(project_url) { (d.project) } " / Deployment" }
        div.page-head {
            div {
                h1 { "Deployment " code { (r.id) } }
                p.status-line {
                    span #deployment-status class={ "badge badge-" (tone(&r.status)) }
                        data-status=(r.status) { (r.status) }
                    @if r.is_production {
                        " " span.badge.badge-accent { "Production" }
                    }
                }
            }
            // The handler clears the can_* flags for people who may not
            // change the project, so the flags alone decide here.
            div.actions { (actions(page, true, r)) }
        }
        div #deployment-error .alert role="alert" hidden {}
        section.card {
            dl.meta {
                dt { "URL" } dd { (ext_link(&r.url)) }
                dt { "Target" } dd { (r.target) }
                dt { "Source" } dd.source { (source(r)) }
                dt { "Created" } dd { (time(page.now_ms, r.created_at)) }
            }
        }
        div.grid-side {
            section.card aria-labelledby="timeline-h" {
                h2 #timeline-h { "Timeline" }
                @if d.timeline.is_empty() {
                    p.muted { "No events yet." }
                } @else {
                    ol.timeline {
                        @for (label, at) in &d.timeline {
                            li { span.timeline-label { (label) } " " (time(page.now_ms, *at)) }
                        }
                    }
                }
            }
            section.card.log-card aria-labelledby="log-h" {
                h2 #log-h { "Build log" }
                (log(d))
            }
        }
        section aria-labelledby="files-h" {
            h2 #files-h { "Files" }
            (files(&d.files, d.files_total))
        }
        section aria-labelledby="functions-h" {
            h2 #functions-h { "Functions" }
            @if d.functions.is_empty() {
                p.muted { "This deployment has no functions." }
            } @else {
                (functions_table(&d.functions))
            }
        }
    };
    document(page, false, body)
}

fn log(d: &DeploymentPage) -> Markup {
    let finished = FINISHED.contains(&d.row.status.as_str());
    // -1 so that a stream starting at sequence 0 is not mistaken for a replay.
    let after = d.log.last().map_or(-1, |l| l.seq);
    html! {
        @if !d.has_build {
            p.muted { "Uploaded with coordinator deploy \u{2014} no build log." }
        } @else {
            pre #log .log role="log" tabindex="0" aria-label="Build log" aria-live="polite"
                data-events=(d.events_url) data-after=(after) data-status=(d.row.status) {
                @for l in &d.log { (line(l)) }
                @if d.log.is_empty() {
                    span.line.placeholder {
                        @if finished { "The build produced no output." } @else { "Waiting for build output\u{2026}" }
                    }
                }
            }
        }
    }
}

fn line(l: &LogLine) -> Markup {
    let stream = if l.stream == "stderr" {
        "stderr"
    } else {
        "stdout"
    };
    html! {
        span class={ "line " (stream) } {
            span.ts title=(utc(l.ts)) { (clock(l.ts)) } " " (l.line) "\n"
        }
    }
}

fn files(files: &[FileRow], total: usize) -> Markup {
    html! {
        @if files.is_empty() {
            (empty("No files", html! { p { "This deployment serves no static files." } }))
        } @else {
            (table_wrap("Files", &["Path", "Size", "Type"], html! {
                @for f in files {
                    tr {
                        td { code.break { (f.path) } }
                        td.num.nowrap { (size(f.size)) }
                        td.muted { (f.content_type) }
                    }
                }
            }))
            @if total > files.len() {
                p.muted { "and " (total - files.len()) " more" }
            }
        }
    }
}
