//! One project: a header with its production address and actions, tabs,
//! and the selected tab's content.

mod alerts;
mod analytics;
pub(crate) mod deployments;
mod domains;
mod env;
mod errors;
mod functions;
mod settings;

use maud::{html, Markup};

use crate::components::{action, ext_link, Btn};
use crate::format::seg;
use crate::layout::document;
use crate::model::{
    AlertsTab, AnalyticsTab, ErrorsTab, IssuePage, Page, ProjectBody, ProjectHeader, ProjectTab,
};

const TABS: [(ProjectTab, &str, &str); 8] = [
    (ProjectTab::Deployments, "Deployments", ""),
    (ProjectTab::Domains, "Domains", "/domains"),
    (ProjectTab::Env, "Environment", "/env"),
    (ProjectTab::Functions, "Functions", "/functions"),
    (ProjectTab::Analytics, "Analytics", "/analytics"),
    (ProjectTab::Errors, "Errors", "/errors"),
    (ProjectTab::Alerts, "Alerts", "/alerts"),
    (ProjectTab::Settings, "Settings", "/settings"),
];

pub fn project(page: &Page, header: &ProjectHeader, body: &ProjectBody) -> String {
    let base = format!("/projects/{}", seg(&header.name));
    let content = match body {
        ProjectBody::Deployments(t) => deployments::render(page, header, &base, t),
        ProjectBody::Domains(t) => domains::render(page, header, &base, t),
        ProjectBody::Env(t) => env::render(page, header, &base, t),
        ProjectBody::Functions(t) => functions::render(t),
        ProjectBody::Settings(t) => settings::render(page, header, &base, t),
    };
    frame(page, header, &base, tab_of(body), content)
}

/// `GET /projects/{name}/analytics`. A page function of its own rather
/// than a `ProjectBody` variant: its model is many times the size of the
/// other tabs' (clippy's `large_enum_variant`), and nothing else needs it
/// in that enum.
pub fn analytics(page: &Page, header: &ProjectHeader, tab: &AnalyticsTab) -> String {
    let base = format!("/projects/{}", seg(&header.name));
    let content = analytics::render(&base, tab);
    frame(page, header, &base, ProjectTab::Analytics, content)
}

/// `GET /projects/{name}/errors`: the project's error issues. Like
/// analytics, a page function of its own, so `ProjectBody` stays small.
pub fn errors(page: &Page, header: &ProjectHeader, tab: &ErrorsTab) -> String {
    let base = format!("/projects/{}", seg(&header.name));
    let content = errors::list(page, header, &base, tab);
    frame(page, header, &base, ProjectTab::Errors, content)
}

/// `GET /projects/{name}/errors/{id}`: one issue, under the Errors tab.
pub fn issue(page: &Page, header: &ProjectHeader, issue: &IssuePage) -> String {
    let base = format!("/projects/{}", seg(&header.name));
    let content = errors::issue(page, header, &base, issue);
    frame(page, header, &base, ProjectTab::Errors, content)
}

/// `GET /projects/{name}/alerts`: the project's alert rules.
pub fn alerts(page: &Page, header: &ProjectHeader, tab: &AlertsTab) -> String {
    let base = format!("/projects/{}", seg(&header.name));
    let content = alerts::render(page, header, &base, tab);
    frame(page, header, &base, ProjectTab::Alerts, content)
}

fn frame(
    page: &Page,
    header: &ProjectHeader,
    base: &str,
    tab: ProjectTab,
    content: Markup,
) -> String {
    let html = html! {
        (head(page, header, base))
        (tabs(base, tab))
        div.tab-panel { (content) }
    };
    document(page, false, html)
}

fn tab_of(body: &ProjectBody) -> ProjectTab {
    match body {
        ProjectBody::Deployments(_) => ProjectTab::Deployments,
        ProjectBody::Domains(_) => ProjectTab::Domains,
        ProjectBody::Env(_) => ProjectTab::Env,
        ProjectBody::Functions(_) => ProjectTab::Functions,
        ProjectBody::Settings(_) => ProjectTab::Settings,
    }
}

fn head(page: &Page, h: &ProjectHeader, base: &str) -> Markup {
    html! {
        div.page-head {
            div {
                p.crumbs { a href="/" { "Projects" } " / " (h.team) }
                h1 { (h.name) }
                p.muted {
                    @match &h.production_url {
                        Some(u) => { "Production: " (ext_link(u)) }
                        None => "No production deployment yet.",
                    }
                    @if let Some(id) = &h.production_deployment {
                        " · " a href={ "/deployments/" (seg(id)) } { "deployment " code { (id) } }
                    }
                }
            }
            @if h.has_git && h.can_write {
                div.actions {
                    (action(&page.csrf, &format!("{base}/deploy"), "Deploy now", Btn::Primary, None))
                }
            }
        }
    }
}

fn tabs(base: &str, current: ProjectTab) -> Markup {
    html! {
        nav.tabs aria-label="Project sections" {
            ul {
                @for (tab, label, suffix) in TABS {
                    li {
                        a href={ (base) (suffix) } aria-current=[(tab == current).then_some("page")] { (label) }
                    }
                }
            }
        }
    }
}
