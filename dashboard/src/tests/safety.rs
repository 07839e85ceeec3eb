//! Properties every page must have: CSRF on every POST, escaping, labels,
//! unique ids, confirmations, and no secret values.

use super::fixtures::{self as fx, CSRF, SECRET_VALUE, XSS};
use super::html_scan::{attr, forms, has_attr, tags};
use super::{all_pages, every_page};
use crate::model::*;

#[test]
fn every_post_form_carries_the_csrf_token() {
    let hidden = format!(r#"<input type="hidden" name="csrf" value="{CSRF}">"#);
    let mut posts = 0;
    for (name, html) in every_page() {
        for form in forms(&html) {
            let open = tags(form, "form")[0];
            let method = attr(open, "method").unwrap_or("get");
            if method.eq_ignore_ascii_case("post") {
                posts += 1;
                assert!(form.contains(&hidden), "{name}: form without csrf: {open}");
                let action = attr(open, "action").unwrap_or("");
                assert!(action.starts_with('/'), "{name}: odd action {action}");
            }
        }
    }
    assert!(posts > 30, "expected many POST forms, saw {posts}");
}

#[test]
fn user_controlled_text_is_escaped() {
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;";
    for (name, html) in every_page() {
        assert!(!html.contains(XSS), "{name}: raw markup from data");
        assert!(!html.contains("<script>"), "{name}: inline script");
    }
    // Where the hostile string is in the data, it shows up as text.
    for (name, html) in all_pages(true) {
        if name.starts_with("signup-closed") {
            continue;
        }
        assert!(
            html.contains(escaped),
            "{name}: hostile text not shown escaped"
        );
    }
}

#[test]
fn hostile_names_cannot_change_urls() {
    let html = crate::project(
        &fx::page(Nav::Projects),
        &fx::header(true),
        &fx::bodies(true).remove(0),
    );
    let encoded = "/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
    assert!(html.contains(&format!(r#"href="{encoded}/domains""#)));
    assert!(html.contains(&format!(r#"action="{encoded}/deploy""#)));
    for a in tags(&html, "a") {
        let href = attr(a, "href").unwrap_or("");
        assert!(!href.contains('<') && !href.contains(' '), "{href}");
    }
}

#[test]
fn secret_values_are_never_rendered() {
    // Even if a handler wrongly passes a secret's value, it stays hidden.
    let env = ProjectBody::Env(EnvTab {
        vars: vec![EnvRow {
            name: "API_KEY".into(),
            env: "production".into(),
            secret: true,
            value: Some(SECRET_VALUE.into()),
            updated_at: fx::NOW,
        }],
        outbound: vec![],
    });
    for can_write in [true, false] {
        let html = crate::project(&fx::page(Nav::Projects), &fx::header(can_write), &env);
        assert!(!html.contains(SECRET_VALUE));
        assert!(html.contains("••••••"));
        assert!(html.contains(">secret</span>"));
    }
}

#[test]
fn every_control_has_a_label() {
    for (name, html) in every_page() {
        for kind in ["input", "select", "textarea"] {
            for tag in tags(&html, kind) {
                if attr(tag, "type").is_some_and(|t| t == "hidden" || t == "submit") {
                    continue;
                }
                let id =
                    attr(tag, "id").unwrap_or_else(|| panic!("{name}: {kind} without id: {tag}"));
                assert!(
                    html.contains(&format!(r#"for="{id}""#)),
                    "{name}: no label for #{id}"
                );
            }
        }
    }
}

#[test]
fn ids_are_unique() {
    for (name, html) in every_page() {
        let mut seen = std::collections::HashSet::new();
        for kind in [
            "div", "input", "select", "textarea", "code", "pre", "h2", "h3", "h4", "span", "p",
            "main", "form", "section", "figure", "dd", "table",
        ] {
            for tag in tags(&html, kind) {
                if let Some(id) = attr(tag, "id") {
                    assert!(seen.insert(id.to_string()), "{name}: duplicate id {id}");
                }
            }
        }
    }
}

#[test]
fn destructive_actions_ask_first() {
    let mut seen = 0;
    for (name, html) in every_page() {
        for form in forms(&html) {
            let action = attr(tags(form, "form")[0], "action").unwrap_or("");
            let destructive = ["/revoke", "/delete", "/remove", "/rollback"]
                .iter()
                .any(|s| action.ends_with(s));
            if destructive {
                seen += 1;
                let button = tags(form, "button")[0];
                assert!(
                    has_attr(button, "data-confirm"),
                    "{name}: {action} without confirm"
                );
                assert!(
                    button.contains("btn danger"),
                    "{name}: {action} not styled as danger"
                );
            }
        }
    }
    assert!(seen >= 6, "saw {seen} destructive forms");
}

#[test]
fn anonymous_pages_show_only_the_brand() {
    for (name, html) in every_page() {
        if name.starts_with("login") || name.starts_with("signup") {
            assert!(!html.contains("/logout"), "{name}");
            assert!(!html.contains(r#"class="mainnav""#), "{name}");
            assert!(html.contains(r#"class="brand""#), "{name}");
        } else {
            assert!(html.contains(r#"action="/logout""#), "{name}");
            assert!(html.contains("ada@example.com"), "{name}");
        }
    }
}

#[test]
fn no_inline_styles_or_colours() {
    // The coordinator's CSP is `style-src 'self'`: a style attribute would
    // be dropped, and a colour in markup would ignore the dark scheme.
    for (name, html) in every_page() {
        assert!(!html.contains(" style=\""), "{name}: inline style");
        for attr in ["fill", "stroke", "color"] {
            assert!(
                !html.contains(&format!(" {attr}=\"")),
                "{name}: {attr} attribute"
            );
        }
    }
}
