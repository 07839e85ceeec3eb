//! Environment variables and the outbound host allow-list.

use maud::{html, Markup};

use crate::components::{action, badge, empty, post_form, table_wrap, time, Btn};
use crate::format::seg;
use crate::model::{EnvRow, EnvTab, Page, ProjectHeader};

pub fn render(page: &Page, h: &ProjectHeader, base: &str, t: &EnvTab) -> Markup {
    html! {
        h2 { "Environment variables" }
        @if t.vars.is_empty() {
            (empty("No environment variables", html! {
                p { "Functions read them at run time. "
                    @if h.can_write { "Add one below" } @else { "A team owner or member can add them" }
                    ", or use " code { "coordinator env set " (h.name) " NAME=value" } "." }
            }))
        } @else {
            (table_wrap("Environment variables", &["Name", "Environment", "Value", "Updated", ""], html! {
                @for v in &t.vars {
                    (row(page, h.can_write, base, v))
                }
            }))
        }
        @if h.can_write {
            (add_form(page, base))
        }
        (outbound(page, h.can_write, base, &t.outbound))
    }
}

fn row(page: &Page, can_write: bool, base: &str, v: &EnvRow) -> Markup {
    html! {
        tr {
            th scope="row" { code { (v.name) } }
            td { (badge(&v.env)) }
            td {
                // Secrets come without a value; the placeholder keeps the
                // column shape without hinting at the length.
                @match (&v.value, v.secret) {
                    (Some(val), false) => code.break { (val) },
                    _ => { span.secret-mask aria-label="hidden value" { "••••••" } " " span.badge.badge-muted { "secret" } }
                }
            }
            td.nowrap { (time(page.now_ms, v.updated_at)) }
            td {
                @if can_write {
                    (action(&page.csrf,
                        &format!("{base}/env/{}/{}/delete", seg(&v.env), seg(&v.name)),
                        "Delete", Btn::Danger,
                        Some(&format!("Delete {} from {}? Functions will no longer see it.", v.name, v.env))))
                }
            }
        }
    }
}

fn add_form(page: &Page, base: &str) -> Markup {
    html! {
        section.card aria-labelledby="env-add-h" {
            h3 #env-add-h { "Add a variable" }
            (post_form(&page.csrf, &format!("{base}/env"), "stack", html! {
                div.row {
                    div.field {
                        label for="env-name" { "Name" }
                        input #env-name type="text" name="name" required autocomplete="off"
                            pattern="[A-Za-z_][A-Za-z0-9_]*" maxlength="128"
                            spellcheck="false" placeholder="API_KEY";
                    }
                    div.field {
                        label for="env-env" { "Environment" }
                        select #env-env name="env" {
                            option value="production" { "production" }
                            option value="preview" { "preview" }
                        }
                    }
                }
                div.field {
                    label for="env-value" { "Value" }
                    textarea #env-value name="value" rows="2" autocomplete="off" spellcheck="false" {}
                }
                div.check {
                    input #env-secret type="checkbox" name="secret" value="on";
                    label for="env-secret" { "Secret: encrypted at rest and never shown again" }
                }
                button type="submit" class="btn primary" { "Save variable" }
            }))
            p.hint { "Saving a name that already exists replaces its value." }
        }
    }
}

fn outbound(page: &Page, can_write: bool, base: &str, hosts: &[String]) -> Markup {
    html! {
        section.card aria-labelledby="outbound-h" {
            h3 #outbound-h { "Outbound hosts" }
            p.muted { "Functions may only make HTTP requests to these hosts." }
            @if can_write {
                (post_form(&page.csrf, &format!("{base}/outbound"), "stack", html! {
                    div.field {
                        label for="outbound-hosts" { "Hosts, one per line" }
                        textarea #outbound-hosts name="hosts" rows="4" spellcheck="false"
                            placeholder="api.example.com" {
                            (hosts.join("\n"))
                        }
                    }
                    button type="submit" class="btn" { "Save hosts" }
                }))
            } @else if hosts.is_empty() {
                p.muted { "None: functions cannot reach other hosts." }
            } @else {
                ul.plain { @for host in hosts { li { code { (host) } } } }
            }
        }
    }
}
