//! The project list, and creating a project.

use maud::html;

use crate::components::{alert, badge, empty, ext_link, pager, post_form, table_wrap, time};
use crate::format::seg;
use crate::layout::document;
use crate::model::{Overview, Page};

pub fn overview(page: &Page, o: &Overview) -> String {
    let body = html! {
        div.page-head {
            h1 { "Projects" }
        }
        (alert(o.error.as_deref()))
        @if o.projects.is_empty() {
            (empty("No projects yet", html! {
                p { "Create a project below, or deploy a folder from your machine with "
                    code { "coordinator deploy ./dist --project NAME" } "." }
            }))
        } @else {
            (table_wrap("Projects", &["Project", "Team", "Production", "Last deployment", "Repository"], html! {
                @for p in &o.projects {
                    tr {
                        th scope="row" { a href={ "/projects/" (seg(&p.name)) } { (p.name) } }
                        td { (p.team) }
                        td {
                            @match &p.production_url {
                                Some(u) => (ext_link(u)),
                                None => span.muted { "Not deployed" },
                            }
                        }
                        td {
                            @match &p.last_deployment {
                                Some(d) => {
                                    a.nowrap href={ "/deployments/" (seg(&d.id)) } {
                                        (badge(&d.status))
                                    }
                                    " " (time(page.now_ms, d.created_at))
                                }
                                None => span.muted { "None" },
                            }
                        }
                        td {
                            @match &p.git_repo {
                                Some(r) => code.break { (r) },
                                None => span.muted { "—" },
                            }
                        }
                    }
                }
            }))
            (pager(&o.pager))
        }
        section.card aria-labelledby="new-project-h" {
            h2 #new-project-h { "New project" }
            @if o.teams.is_empty() {
                p.muted { "You need the owner or member role in a team to create projects. "
                    a href="/teams" { "Create a team" } " or ask an owner to invite you." }
            } @else {
                (post_form(&page.csrf, "/projects", "row", html! {
                    div.field {
                        label for="project-name" { "Name" }
                        input #project-name type="text" name="name" required
                            pattern="[a-z0-9]([a-z0-9-]*[a-z0-9])?" maxlength="40"
                            autocomplete="off" aria-describedby="project-name-hint";
                    }
                    div.field {
                        label for="project-team" { "Team" }
                        select #project-team name="team" {
                            @for t in &o.teams {
                                option value=(t.id) { (t.name) }
                            }
                        }
                    }
                    button type="submit" class="btn primary" { "Create project" }
                }))
                p.hint #project-name-hint { "Up to 40 lower-case letters, digits and hyphens, not starting or ending with a hyphen. It becomes part of the site address." }
            }
        }
    };
    document(page, false, body)
}
