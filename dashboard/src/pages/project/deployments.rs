use maud::{html, Markup};

use crate::components::{action, badge, empty, ext_link, pager, table_wrap, time, Btn};
use crate::format::{seg, short_sha};
use crate::model::{DeploymentRow, DeploymentsTab, Page, ProjectHeader};

pub fn render(page: &Page, h: &ProjectHeader, base: &str, t: &DeploymentsTab) -> Markup {
    html! {
        div.section-head {
            h2 { "Deployments" }
            @if t.can_rollback && h.can_write {
                (action(&page.csrf, &format!("{base}/rollback"), "Roll back production", Btn::Danger,
                    Some("Roll production back to the previous deployment?")))
            }
        }
        @if t.rows.is_empty() {
            (empty("No deployments yet", html! {
                p { "Deploy with " code { "coordinator deploy ./dist --project " (h.name) }
                    " or connect a repository in " a href={ (base) "/settings" } { "Settings" } "." }
            }))
        } @else {
            (table_wrap("Deployments", &["Status", "Deployment", "Source", "Created", ""], html! {
                @for r in &t.rows {
                    (row(page, h.can_write, r))
                }
            }))
            (pager(&t.pager))
        }
    }
}

/// Also used on the deployment page, so both offer the same actions.
pub fn actions(page: &Page, can_write: bool, r: &DeploymentRow) -> Markup {
    let base = format!("/deployments/{}", seg(&r.id));
    html! {
        @if can_write {
            div.row-actions {
                @if r.can_promote {
                    (action(&page.csrf, &format!("{base}/promote"), "Promote", Btn::Secondary,
                        Some("Make this deployment the production version?")))
                }
                @if r.can_redeploy {
                    (action(&page.csrf, &format!("{base}/redeploy"), "Redeploy", Btn::Secondary, None))
                }
                @if r.can_cancel {
                    (action(&page.csrf, &format!("{base}/cancel"), "Cancel", Btn::Danger,
                        Some("Cancel this build?")))
                }
                @if r.can_delete {
                    (action(&page.csrf, &format!("{base}/delete"), "Delete", Btn::Danger,
                        Some("Delete this deployment? Its URL stops answering, and this cannot be undone.")))
                }
            }
        }
    }
}

/// Branch, commit and message, whatever of them is known.
pub fn source(r: &DeploymentRow) -> Markup {
    html! {
        @if r.branch.is_none() && r.commit.is_none() {
            span.muted { "Uploaded" }
        }
        @if let Some(b) = &r.branch {
            span.branch { (b) }
        }
        @if let Some(c) = &r.commit {
            " " code title=(c) { (short_sha(c)) }
        }
        @if let Some(m) = &r.commit_message {
            span.commit-msg title=(m) { (m) }
        }
        @if let Some(a) = &r.author {
            span.muted.small { "by " (a) }
        }
    }
}

fn row(page: &Page, can_write: bool, r: &DeploymentRow) -> Markup {
    html! {
        tr {
            td {
                (badge(&r.status))
                @if r.is_production {
                    " " span.badge.badge-accent { "Production" }
                }
            }
            td {
                a href={ "/deployments/" (seg(&r.id)) } { code { (r.id) } }
                br;
                span.small { (ext_link(&r.url)) }
            }
            td.source { span.muted.small { (r.target) } " " (source(r)) }
            td.nowrap { (time(page.now_ms, r.created_at)) }
            td { (actions(page, can_write, r)) }
        }
    }
}
