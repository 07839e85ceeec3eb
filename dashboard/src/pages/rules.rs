//! Alert rules, as a project's Alerts tab and the nodes page (the
//! instance's rules) both show them: the table with each rule's state,
//! the form that adds one, and what each preset measures.

use maud::{html, Markup};

use crate::components::{action, badge_toned, post_form, table_wrap, time, Btn};
use crate::format::seg;
use crate::model::{AlertRow, Page, RuleKind, RuleRow};

/// A preset's name and what it measures, by its key.
pub fn kind_text(key: &str) -> (&'static str, &'static str) {
    match key {
        "error_rate" => (
            "Error rate",
            "5xx answers as a share of the project's requests over the window.",
        ),
        "function_error" => (
            "Function errors",
            "Function failures (traps, panics, timeouts, memory limits, 5xx answers) in the window.",
        ),
        "deployment_failure" => (
            "Failed deploys",
            "Deploys that failed to go live in the window.",
        ),
        "build_failure" => ("Failed builds", "Builds that failed in the window."),
        "slow_deployment" => (
            "Slow builds",
            "A build that took, or is taking, longer than the threshold.",
        ),
        "high_memory" => ("High memory", "An edge node's host memory in use."),
        "disk_space" => (
            "Disk space",
            "The data disk in use on an edge node or the coordinator.",
        ),
        "ssl_expiry" => (
            "Certificate expiry",
            "A certificate with fewer days left than the threshold: the project's custom domains, or the cluster's CA and node certificates.",
        ),
        _ => ("Alert", ""),
    }
}

/// A threshold or a measured value without a useless `.0`.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn alert_tone(state: &str) -> &'static str {
    match state {
        "firing" => "bad",
        "pending" => "warn",
        "resolved" => "ok",
        _ => "muted",
    }
}

fn windowed(kinds: &[RuleKind], key: &str) -> bool {
    kinds
        .iter()
        .find(|k| k.key == key)
        .is_none_or(|k| k.default_window.is_some())
}

/// The rules with their state; `remove` is where each rule's remove
/// form posts (`{remove}/{id}/remove`), `None` for read-only viewers.
pub fn table(page: &Page, rules: &[RuleRow], kinds: &[RuleKind], remove: Option<&str>) -> Markup {
    table_wrap(
        "Alert rules",
        &[
            "Alert",
            "Fires when",
            "Window",
            "For",
            "Notifies",
            "State",
            "",
        ],
        html! {
            @for r in rules {
                @let (name, _) = kind_text(&r.kind);
                tr.firing[r.firing()] {
                    th scope="row" { (name) br; code.small { (r.kind) } }
                    td.nowrap { (r.condition) " " (number(r.threshold)) " " (r.unit) }
                    td.nowrap {
                        @if windowed(kinds, &r.kind) { (r.window) } @else { span.muted { "newest value" } }
                    }
                    td.nowrap { (r.for_) }
                    td {
                        @if r.channels.is_empty() {
                            span.muted { "—" }
                        } @else {
                            ul.plain { @for c in &r.channels { li { (c) } } }
                        }
                    }
                    td {
                        @if !r.enabled { span.badge.badge-muted { "disabled" } " " }
                        @if r.alerts.is_empty() {
                            span.muted { "Nothing breached yet" }
                        } @else {
                            ul.plain { @for a in &r.alerts { li { (alert(page, r, a)) } } }
                        }
                    }
                    td {
                        @if let Some(base) = remove {
                            (action(&page.csrf, &format!("{base}/{}/remove", seg(&r.id)), "Remove", Btn::Danger,
                                Some(&format!("Remove the {} alert? It stops watching and notifying.", name.to_lowercase()))))
                        }
                    }
                }
            }
        },
    )
}

fn alert(page: &Page, r: &RuleRow, a: &AlertRow) -> Markup {
    html! {
        (badge_toned(&a.state, alert_tone(&a.state))) " "
        code.break { (a.series) } " "
        span.muted.small {
            (number(a.value)) " " (r.unit) " · "
            @match (a.state.as_str(), a.fired_at, a.resolved_at) {
                ("resolved", _, Some(t)) => { "resolved " (time(page.now_ms, t)) },
                ("firing", Some(t), _) => { "firing since " (time(page.now_ms, t)) },
                _ => { "since " (time(page.now_ms, a.since)) },
            }
        }
    }
}

/// The form that adds a rule; `prefix` keeps its ids apart from other
/// forms on the page.
pub fn form(
    page: &Page,
    prefix: &str,
    action: &str,
    kinds: &[RuleKind],
    channels: &[(String, String)],
) -> Markup {
    let id = |what: &str| format!("{prefix}-{what}");
    html! {
        (post_form(&page.csrf, action, "stack", html! {
            div.row {
                div.field {
                    label for=(id("kind")) { "Alert" }
                    select id=(id("kind")) name="kind" required {
                        @for k in kinds {
                            option value=(k.key) {
                                (kind_text(&k.key).0) " (" (k.condition) " " (number(k.default_threshold)) " " (k.unit) ")"
                            }
                        }
                    }
                }
                div.field {
                    label for=(id("threshold")) { "Threshold" }
                    input id=(id("threshold")) type="number" name="threshold" step="any" min="0"
                        placeholder="the alert's default" aria-describedby=(id("threshold-hint"));
                    p.hint id=(id("threshold-hint")) { "In the unit shown next to the alert; empty: its default." }
                }
                div.field {
                    label for=(id("window")) { "Window" }
                    input id=(id("window")) type="text" name="window" maxlength="32" spellcheck="false"
                        autocomplete="off" placeholder="5m" aria-describedby=(id("window-hint"));
                    p.hint id=(id("window-hint")) { "How far counts look back, 1m to 7d; empty: the alert's default." }
                }
                div.field {
                    label for=(id("for")) { "For" }
                    input id=(id("for")) type="text" name="for" maxlength="32" spellcheck="false"
                        autocomplete="off" placeholder="0s" aria-describedby=(id("for-hint"));
                    p.hint id=(id("for-hint")) { "How long it must hold before it fires, up to 24h." }
                }
            }
            fieldset.plain {
                legend.label { "Notify" }
                @for (cid, label) in channels {
                    div.check {
                        input id=(id(&format!("channel-{}", seg(cid)))) type="checkbox" name="channels" value=(cid);
                        label for=(id(&format!("channel-{}", seg(cid)))) { (label) }
                    }
                }
            }
            button type="submit" class="btn primary" { "Add alert" }
        }))
    }
}

/// What each preset measures, its unit and defaults.
pub fn presets(kinds: &[RuleKind]) -> Markup {
    html! {
        details.presets {
            summary { "What each alert measures" }
            (table_wrap("Alert presets", &["Alert", "Measures", "Fires when (default)", "Default window"], html! {
                @for k in kinds {
                    @let (name, what) = kind_text(&k.key);
                    tr {
                        th scope="row" { (name) br; code.small { (k.key) } }
                        td { (what) }
                        td.nowrap { (k.condition) " " (number(k.default_threshold)) " " (k.unit) }
                        td.nowrap {
                            @match &k.default_window { Some(w) => (w), None => span.muted { "newest value" } }
                        }
                    }
                }
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_drop_useless_decimals() {
        let cases = [
            (5.0, "5"),
            (0.0, "0"),
            (-0.0, "0"),
            (2.5, "2.5"),
            (90.25, "90.25"),
            (1.0 / 3.0, "0.33"),
            (1e9, "1000000000"),
            (f64::NAN, "—"),
            (f64::INFINITY, "—"),
        ];
        for (v, want) in cases {
            assert_eq!(number(v), want, "{v}");
        }
    }

    #[test]
    fn every_preset_has_words() {
        for k in [
            "error_rate",
            "function_error",
            "deployment_failure",
            "build_failure",
            "slow_deployment",
            "high_memory",
            "disk_space",
            "ssl_expiry",
        ] {
            let (name, what) = kind_text(k);
            assert!(name != "Alert" && !what.is_empty(), "{k}");
        }
    }
}
