//! Pieces shared by several pages, so the same thing always looks and
//! behaves the same way (badges, times, forms, empty states).

use maud::{html, Markup};

use crate::format;
use crate::model::{FunctionRow, Pager};

/// Every state-changing form carries the CSRF token; building POST forms
/// only through these helpers keeps that from being forgotten.
pub fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

pub fn post_form(token: &str, action: &str, class: &str, body: Markup) -> Markup {
    html! {
        form method="post" action=(action) class=(class) {
            (csrf(token))
            (body)
        }
    }
}

#[derive(Clone, Copy)]
pub enum Btn {
    Primary,
    Secondary,
    /// Destructive: red, and asks for confirmation (see `app.js`).
    Danger,
}

impl Btn {
    fn class(self) -> &'static str {
        match self {
            Btn::Primary => "btn primary",
            Btn::Secondary => "btn",
            Btn::Danger => "btn danger",
        }
    }
}

/// A form that is just one button, for per-row actions.
pub fn action(token: &str, action: &str, label: &str, kind: Btn, confirm: Option<&str>) -> Markup {
    post_form(
        token,
        action,
        "inline",
        html! { button type="submit" class=(kind.class()) data-confirm=[confirm] { (label) } },
    )
}

/// Colour family of a status word; `app.js` mirrors this for live updates.
pub fn tone(status: &str) -> &'static str {
    match status {
        "ready" | "alive" | "active" | "success" | "production" => "ok",
        "failed" | "error" | "down" | "revoked" => "bad",
        "queued" | "building" | "pending" | "deploying" | "uploading" | "suspect" => "warn",
        "cancelled" | "canceled" | "unknown" | "expired" => "muted",
        _ => "info",
    }
}

pub fn badge(status: &str) -> Markup {
    badge_toned(status, tone(status))
}

/// A badge whose colour family the caller picks (words whose meaning
/// depends on the page, such as an issue's severity).
pub fn badge_toned(text: &str, tone: &str) -> Markup {
    html! { span class={ "badge badge-" (tone) } { (text) } }
}

/// Relative age, with the exact UTC time for hover and assistive tech.
pub fn time(now_ms: i64, at_ms: i64) -> Markup {
    html! {
        time datetime=(format::iso(at_ms)) title=(format::utc(at_ms)) { (format::age(now_ms, at_ms)) }
    }
}

pub fn time_or(now_ms: i64, at_ms: Option<i64>, none: &str) -> Markup {
    match at_ms {
        Some(at) => time(now_ms, at),
        None => html! { span.muted { (none) } },
    }
}

/// A problem the person can act on, announced as soon as the page loads.
pub fn alert(message: Option<&str>) -> Markup {
    html! {
        @if let Some(m) = message {
            div.alert role="alert" { (m) }
        }
    }
}

/// What to do next when a list is empty, rather than an empty table.
pub fn empty(title: &str, body: Markup) -> Markup {
    html! {
        div.empty {
            p.empty-title { (title) }
            (body)
        }
    }
}

/// A secret shown exactly once, with a copy button (revealed by `app.js`;
/// without scripts the value can still be selected by hand).
pub fn reveal(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.reveal role="status" {
            p.reveal-label { strong { (label) } }
            div.copy-row {
                code.copy-value id=(id) { (value) }
                button type="button" class="btn" data-copy=(id) hidden { "Copy" }
            }
            p.warning { "Copy it now: it will not be shown again." }
        }
    }
}

pub fn pager(p: &Pager) -> Markup {
    html! {
        @if p.prev.is_some() || p.next.is_some() {
            nav.pager aria-label="Pagination" {
                @if let Some(prev) = &p.prev {
                    a.btn href=(prev) rel="prev" { "← Newer" }
                }
                @if let Some(next) = &p.next {
                    a.btn href=(next) rel="next" { "Older →" }
                }
            }
        }
    }
}

/// Wide tables scroll inside this box instead of widening the page.
pub fn table_wrap(caption: &str, head: &[&str], rows: Markup) -> Markup {
    html! {
        div.table-wrap tabindex="0" role="region" aria-label=(caption) {
            table {
                caption.sr-only { (caption) }
                thead { tr { @for h in head { th scope="col" { (h) } } } }
                tbody { (rows) }
            }
        }
    }
}

pub fn functions_table(functions: &[FunctionRow]) -> Markup {
    table_wrap(
        "Functions",
        &["Route", "Component", "Timeout", "Memory"],
        html! {
            @for f in functions {
                tr {
                    td { code { (f.route) } }
                    td { code { (f.component) } }
                    td { (f.timeout) }
                    td { (f.memory) }
                }
            }
        },
    )
}

/// External links open normally but never hand the opener to the target.
pub fn ext_link(href: &str) -> Markup {
    html! { a href=(href) rel="noopener noreferrer" { (href) } }
}
