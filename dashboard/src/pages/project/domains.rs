//! The project's addresses: its platform hosts, and custom domains with
//! their state and the DNS records each still needs.

use maud::{html, Markup};

use crate::components::{action, badge, empty, post_form, table_wrap, time, Btn};
use crate::format::seg;
use crate::model::{CustomDomainRow, DomainsTab, Page, ProjectHeader};

pub fn render(page: &Page, h: &ProjectHeader, base: &str, t: &DomainsTab) -> Markup {
    html! {
        h2 { "Domains" }
        section.card {
            h3 { "Production" }
            p { code.copy-value { (t.production_host) } }
            p.hint { "Serves the production deployment." }
        }
        h3 { "Custom domains" }
        @if t.custom.is_empty() {
            (empty("No custom domains", html! {
                p { "Serve this project at your own name, such as www.example.com. "
                    @if h.can_write { "Add one below" } @else { "A team owner or member can add one" }
                    ", or use " code { "coordinator domains add www.example.com --project " (h.name) } "." }
            }))
        } @else {
            (table_wrap("Custom domains", &["Domain", "Points at", "State", "DNS records", "Certificate", "Checked", ""], html! {
                @for d in &t.custom {
                    (custom_row(page, h.can_write, base, d))
                }
            }))
        }
        @if h.can_write {
            (add_form(page, base))
        }
        h3 { "Aliases" }
        @if t.aliases.is_empty() {
            (empty("No aliases", html! {
                p { "Other addresses for this project's deployments, such as branch previews, appear here once they exist." }
            }))
        } @else {
            (table_wrap("Aliases", &["Host", "Points at"], html! {
                @for (host, target) in &t.aliases {
                    tr { td { code { (host) } } td { (target) } }
                }
            }))
        }
    }
}

fn state_text(d: &CustomDomainRow) -> String {
    match d.state.as_str() {
        "active" => "Active: served by every edge".into(),
        "pending" => "Pending DNS: create the records shown".into(),
        "ownership" => "Prove ownership: create the TXT record shown".into(),
        "misconfigured" => format!(
            "Misconfigured: found {}",
            d.found.as_deref().unwrap_or("other records")
        ),
        other => other.into(),
    }
}

fn custom_row(page: &Page, can_write: bool, base: &str, d: &CustomDomainRow) -> Markup {
    let path = format!("{base}/domains/{}", seg(&d.name));
    html! {
        tr {
            th scope="row" { code { (d.name) } }
            td { (d.target) }
            td { (badge(&d.state)) " " span.muted { (state_text(d)) } }
            td {
                @if d.state == "active" {
                    span.muted { "in place" }
                } @else {
                    ul.plain {
                        @for (kind, name, value) in &d.records {
                            li { code { (kind) } " " code.copy-value { (name) } " → " code.copy-value.break { (value) } }
                        }
                    }
                }
            }
            td { (cert_cell(page, d)) }
            td.nowrap {
                @match d.checked_at {
                    Some(t) => (time(page.now_ms, t)),
                    None => span.muted { "not yet" },
                }
            }
            td {
                @if can_write {
                    (https_form(page, &path, d))
                    (action(&page.csrf, &format!("{path}/verify"), "Check DNS now", Btn::Secondary, None))
                    (action(&page.csrf, &format!("{path}/delete"), "Remove", Btn::Danger,
                        Some(&format!("Remove {}? Every edge stops serving it.", d.name))))
                }
            }
        }
    }
}

fn cert_cell(page: &Page, d: &CustomDomainRow) -> Markup {
    html! {
        (badge(&d.cert_state)) " "
        span.muted {
            @match d.cert_state.as_str() {
                "none" => "Not issued by this coordinator",
                "waiting" => "Waits for DNS",
                "pending" => "Requested shortly",
                "issuing" => "Being issued",
                "renewing" => "Being renewed",
                "active" => {
                    "Publicly trusted"
                    @if let Some(t) = d.cert_not_after { ", until " (time(page.now_ms, t)) }
                }
                "failed" => {
                    "Failed"
                    @if let Some(t) = d.cert_next_retry { "; next try " (time(page.now_ms, t)) }
                }
                other => (other),
            }
        }
        @if let Some(e) = &d.cert_error {
            details { summary { "What the CA said" } pre.break { (e) } }
        }
        @if d.cert_state == "active" {
            p.hint {
                @if d.https_redirect { "HTTP redirects to HTTPS" } @else { "HTTP served as is" }
                @if let Some(m) = d.hsts_max_age { "; HSTS max-age " (m) }
            }
        }
    }
}

/// The domain's HTTPS settings: the redirect from plain HTTP, and HSTS.
fn https_form(page: &Page, path: &str, d: &CustomDomainRow) -> Markup {
    let id = |what: &str| format!("https-{what}-{}", seg(&d.name));
    html! {
        details {
            summary { "HTTPS settings" }
            (post_form(&page.csrf, &format!("{path}/https"), "stack", html! {
                div.field {
                    input id=(id("redirect")) type="checkbox" name="redirect" value="on" checked[d.https_redirect];
                    " "
                    label for=(id("redirect")) { "Redirect HTTP to HTTPS (once the certificate is active)" }
                }
                div.field {
                    label for=(id("max-age")) { "HSTS max-age in seconds (empty: no HSTS)" }
                    input id=(id("max-age")) type="number" name="hsts_max_age" min="0" max="63072000"
                        value=[d.hsts_max_age];
                }
                div.field {
                    input id=(id("sub")) type="checkbox" name="hsts_include_subdomains" value="on";
                    " " label for=(id("sub")) { "includeSubDomains" }
                    " "
                    input id=(id("preload")) type="checkbox" name="hsts_preload" value="on";
                    " " label for=(id("preload")) { "preload" }
                }
                button type="submit" class="btn secondary" { "Save" }
            }))
        }
    }
}

fn add_form(page: &Page, base: &str) -> Markup {
    html! {
        section.card aria-labelledby="domain-add-h" {
            h3 #domain-add-h { "Add a domain" }
            (post_form(&page.csrf, &format!("{base}/domains"), "stack", html! {
                div.row {
                    div.field {
                        label for="domain-name" { "Domain" }
                        input #domain-name type="text" name="name" required autocomplete="off"
                            maxlength="253" spellcheck="false" placeholder="www.example.com";
                    }
                    div.field {
                        label for="domain-branch" { "Branch (empty: production)" }
                        input #domain-branch type="text" name="branch" autocomplete="off"
                            maxlength="255" spellcheck="false" placeholder="staging";
                    }
                }
                div.row {
                    div.field {
                        label for="domain-redirect" { "Or redirect to (a domain of this project)" }
                        input #domain-redirect type="text" name="redirect_to" autocomplete="off"
                            maxlength="253" spellcheck="false" placeholder="www.example.com";
                    }
                    div.field {
                        label for="domain-status" { "Redirect status" }
                        select #domain-status name="redirect_status" {
                            option value="308" { "308 permanent" }
                            option value="301" { "301 permanent" }
                            option value="307" { "307 temporary" }
                            option value="302" { "302 temporary" }
                        }
                    }
                }
                button type="submit" class="btn primary" { "Add domain" }
            }))
            p.hint { "The domain goes live once its DNS records point here; they are checked every few minutes. A certificate follows on its own; HTTP then redirects to HTTPS." }
        }
    }
}
