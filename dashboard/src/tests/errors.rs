//! The Errors tab and the issue page.

use super::fixtures::{self as fx, CSRF, XSS};
use super::html_scan::{attr, forms, tags};
use crate::model::*;

const BASE: &str = "/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

fn list(can_write: bool, t: &ErrorsTab) -> String {
    crate::errors(&fx::page(Nav::Projects), &fx::header(can_write), t)
}

fn issue(can_write: bool, p: &IssuePage) -> String {
    crate::issue(&fx::page(Nav::Projects), &fx::header(can_write), p)
}

#[test]
fn the_list_shows_each_issue_with_its_badges_count_and_trend() {
    let html = list(true, &fx::errors_tab(true));
    for needle in [
        format!(r#"href="{BASE}/errors/iss1""#),
        format!(r#"href="{BASE}/errors/iss2""#),
        format!("panic: {ESCAPED}"),
        format!("/api/{ESCAPED} in checkout::total"),
        r#"<span class="badge badge-warn">high</span>"#.into(),
        r#"<span class="badge badge-warn">unresolved</span>"#.into(),
        r#"<span class="badge badge-bad">regressed</span>"#.into(),
        "12,345".into(),
        r#"<svg class="spark""#.into(),
        "Events per hour over the last 24 hours: 50 in all, at most 20 in one hour".into(),
        r#">2 min ago</time>"#.into(),
        "Only the 2 most recently seen issues are listed.".into(),
        r#"<a href="/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/errors" aria-current="page">Errors</a>"#.into(),
    ] {
        assert!(html.contains(&needle), "{needle}");
    }
    assert_eq!(html.matches(r#"<svg class="spark""#).count(), 2);
    // The filter is a set of links, the current one marked.
    for key in ["open", "regressed", "resolved", "ignored", "all"] {
        assert!(
            html.contains(&format!(r#"href="{BASE}/errors?state={key}""#)),
            "{key}"
        );
    }
    assert!(html.contains(&format!(
        r#"href="{BASE}/errors?state=open" aria-current="page">Open</a>"#
    )));
    // The list itself has no forms (the header's and the top bar's only).
    for f in forms(&html) {
        let action = attr(tags(f, "form")[0], "action").unwrap();
        assert!(
            action == "/logout" || action.ends_with("/deploy"),
            "{action}"
        );
    }
}

#[test]
fn an_empty_list_says_what_lands_here() {
    let html = list(true, &fx::errors_tab(false));
    assert!(html.contains("No open errors"));
    assert!(html.contains("panics, traps, timeouts"));
    assert!(!html.contains("<table"));
    let ignored = list(
        true,
        &ErrorsTab {
            filter: "ignored".into(),
            ..fx::errors_tab(false)
        },
    );
    assert!(ignored.contains("No ignored issues"));
    assert!(ignored.contains(&format!(
        r#"href="{BASE}/errors?state=ignored" aria-current="page""#
    )));
    assert!(ignored.contains(&format!(
        r#"<a href="{BASE}/errors">Back to the open ones</a>"#
    )));
}

/// The `state` each triage form posts, in order.
fn state_moves(html: &str) -> Vec<String> {
    forms(html)
        .into_iter()
        .filter(|f| attr(tags(f, "form")[0], "action").is_some_and(|a| a.ends_with("/state")))
        .map(|f| {
            let input = tags(f, "input")
                .into_iter()
                .find(|t| attr(t, "name") == Some("state"))
                .unwrap();
            attr(input, "value").unwrap().to_string()
        })
        .collect()
}

#[test]
fn triage_offers_the_moves_that_fit_the_state() {
    let cases: [(&str, &[&str], &str); 4] = [
        ("unresolved", &["resolved", "ignored"], ">Resolve</button>"),
        ("regressed", &["resolved", "ignored"], ">Ignore</button>"),
        ("resolved", &["unresolved", "ignored"], ">Reopen</button>"),
        (
            "ignored",
            &["unresolved", "resolved"],
            ">Stop ignoring</button>",
        ),
    ];
    for (state, want, label) in cases {
        let html = issue(true, &fx::issue_page(true, state));
        assert_eq!(state_moves(&html), want, "{state}");
        assert!(html.contains(label), "{state}");
        assert!(html.contains(&format!(r#"action="{BASE}/errors/iss1/state""#)));
        assert!(html.contains(&format!(r#"action="{BASE}/errors/iss1/severity""#)));
        assert!(html.contains(r#"<option value="high" selected>high</option>"#));
        assert!(html.contains(&format!(
            r#"<input type="hidden" name="csrf" value="{CSRF}">"#
        )));
    }
    let resolved = issue(true, &fx::issue_page(true, "resolved"));
    assert!(resolved.contains(r#"<span class="badge badge-ok">resolved</span>"#));
    assert!(resolved.contains("Resolved <time"));
}

#[test]
fn the_issue_page_shows_the_sample() {
    let html = issue(true, &fx::issue_page(true, "unresolved"));
    for needle in [
        format!("boom {ESCAPED}\nsecond line</pre>"),
        format!("<li><code class=\"break\">checkout::{ESCAPED}</code></li><li><code class=\"break\">main</code></li>"),
        format!("POST /api/{ESCAPED}"),
        "<dt>Status</dt><dd>500</dd>".into(),
        r#"<code id="issue-request-id">req-7f3a</code>"#.into(),
        format!("coordinator logs {ESCAPED} | grep req-7f3a"),
        format!(r#"<span class="line stderr">{ESCAPED}</span>"#),
        r#"<a href="/deployments/bld123"><code>bld123</code></a>"#.into(),
        format!("<dt>branch</dt><dd><span class=\"break\">{ESCAPED}</span></dd>"),
        r#"<a href="/deployments/dep1234567"><code>dep1234567</code></a>"#.into(),
        format!("POST /api/{ESCAPED} → 500"),
        "12,345".into(),
        r#"<dd class="spark-cell"><svg class="spark""#.into(),
        format!(r#"<a href="{BASE}/errors">Errors</a>"#),
    ] {
        assert!(html.contains(&needle), "{needle}\n{html}");
    }
    assert!(!html.contains(XSS));
}

#[test]
fn a_bare_issue_page_leaves_out_what_it_lacks() {
    let html = issue(true, &fx::issue_page(false, "unresolved"));
    for absent in [
        "Sample request",
        "Backtrace",
        "Standard error",
        "Details",
        "Message</h3>",
    ] {
        assert!(!html.contains(absent), "{absent}");
    }
    assert!(html.contains("Not tied to a deployment."));
    assert!(html.contains("No events kept."));
}

#[test]
fn viewers_read_issues_but_cannot_triage() {
    let html = issue(false, &fx::issue_page(true, "unresolved"));
    assert!(state_moves(&html).is_empty());
    assert!(!html.contains("/severity\""));
    assert!(html.contains("You have view access"));
    assert!(html.contains("req-7f3a"));
}

#[test]
fn issue_ids_cannot_change_urls() {
    let mut p = fx::issue_page(true, "unresolved");
    p.issue.id = "../x?y".into();
    let html = issue(true, &p);
    assert!(html.contains(&format!(r#"action="{BASE}/errors/..%2Fx%3Fy/state""#)));
    let mut t = fx::errors_tab(true);
    t.issues[0].id = "a/b".into();
    assert!(list(true, &t).contains(&format!(r#"href="{BASE}/errors/a%2Fb""#)));
}
