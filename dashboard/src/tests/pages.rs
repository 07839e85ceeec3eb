//! What individual pages show, and when.

use super::fixtures::{self as fx, CSRF};
use super::html_scan::{attr, tags};
use super::{all_pages, every_page};
use crate::model::*;

fn project(can_write: bool, body: ProjectBody) -> String {
    crate::project(&fx::page(Nav::Projects), &fx::header(can_write), &body)
}

fn tab(full: bool, i: usize) -> ProjectBody {
    fx::bodies(full).remove(i)
}

#[test]
fn every_page_is_a_complete_document() {
    for (name, html) in every_page() {
        assert!(
            html.starts_with("<!doctype html><html lang=\"en\">"),
            "{name}"
        );
        assert!(html.ends_with("</html>"), "{name}");
        assert!(html.contains("<title>"), "{name}");
        assert!(html.contains(r#"href="/assets/style.css?v="#), "{name}");
        assert!(html.contains(r#"src="/assets/app.js?v="#), "{name}");
        assert!(html.contains(r#"id="main" tabindex="-1">"#), "{name}");
    }
}

#[test]
fn nav_highlights_the_current_section() {
    let cases = [
        (
            "overview",
            r#"<a href="/" aria-current="page">Projects</a>"#,
        ),
        ("nodes", r#"<a href="/nodes" aria-current="page">Nodes</a>"#),
        (
            "tokens",
            r#"<a href="/tokens" aria-current="page">Tokens</a>"#,
        ),
        ("team", r#"<a href="/teams" aria-current="page">Team</a>"#),
        ("audit", r#"<a href="/audit" aria-current="page">Audit</a>"#),
        (
            "account",
            r#"<a href="/account" aria-current="page">Account</a>"#,
        ),
    ];
    let pages = all_pages(true);
    for (page, expected) in cases {
        let html = &pages.iter().find(|(n, _)| n == page).unwrap().1;
        assert!(html.contains(expected), "{page}");
        assert_eq!(
            html.matches(r#"aria-current="page""#).count(),
            1 + usize::from(page == "team"),
            "{page}"
        );
    }
}

#[test]
fn flash_is_announced() {
    let html = crate::tokens(&fx::page(Nav::Tokens), &fx::tokens(false));
    assert!(html.contains(r#"class="flash flash-success" role="status" aria-live="polite""#));
    let mut page = fx::page(Nav::Tokens);
    page.flash = Some(Flash {
        kind: FlashKind::Error,
        message: "nope".into(),
    });
    let html = crate::tokens(&page, &fx::tokens(false));
    assert!(html.contains(r#"class="flash flash-error" role="alert">nope</div>"#));
}

#[test]
fn errors_are_visible_alerts() {
    let html = crate::login(
        &fx::anonymous(),
        &LoginForm {
            error: Some("Wrong email or password.".into()),
            ..LoginForm::default()
        },
    );
    assert!(html.contains(r#"<div class="alert" role="alert">Wrong email or password.</div>"#));
}

#[test]
fn login_form_fields() {
    let html = crate::login(
        &fx::anonymous(),
        &LoginForm {
            next: "/nodes".into(),
            signup_open: false,
            ..LoginForm::default()
        },
    );
    for needle in [
        r#"action="/login""#,
        r#"name="email""#,
        r#"name="password""#,
        r#"<input type="hidden" name="next" value="/nodes">"#,
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(!html.contains(r#"href="/signup""#));
}

#[test]
fn signup_carries_the_invitation() {
    let form = SignupForm {
        invite: Some(fx::invite_summary()),
        closed: true,
        ..SignupForm::default()
    };
    let html = crate::signup(&fx::anonymous(), &form);
    assert!(html.contains(r#"<input type="hidden" name="invite" value="inv-token-1">"#));
    for field in ["email", "name", "password"] {
        assert!(html.contains(&format!(r#"name="{field}""#)), "{field}");
    }
    let closed = crate::signup(
        &fx::anonymous(),
        &SignupForm {
            closed: true,
            ..SignupForm::default()
        },
    );
    assert!(!closed.contains(r#"action="/signup""#));
    assert!(closed.contains("invitation"));
}

#[test]
fn invite_accept_posts_to_the_token() {
    let html = crate::invite(
        &fx::page(Nav::None),
        &InvitePage {
            invite: Some(fx::invite_summary()),
            error: None,
        },
    );
    assert!(html.contains(r#"action="/invite/inv-token-1""#));
}

#[test]
fn overview_lists_projects_or_says_how_to_start() {
    let html = crate::overview(&fx::page(Nav::Projects), &fx::overview(true));
    assert!(html.contains(r#"<select id="project-team" name="team"><option value="t1">"#));
    assert!(html.contains(r#"href="/deployments/dep1""#));
    assert!(html.contains(">← Newer</a>") && html.contains(">Older →</a>"));
    let empty = crate::overview(&fx::page(Nav::Projects), &fx::overview(false));
    assert!(empty.contains("No projects yet"));
    assert!(empty.contains("coordinator deploy ./dist --project NAME"));
    assert!(
        !empty.contains(r#"action="/projects""#),
        "no team to create in"
    );
    assert!(!empty.contains("Newer"));
}

#[test]
fn project_tabs_link_every_section() {
    let html = project(true, tab(true, 0));
    let base = "/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
    for (suffix, label) in [
        ("", "Deployments"),
        ("/domains", "Domains"),
        ("/env", "Environment"),
        ("/functions", "Functions"),
        ("/analytics", "Analytics"),
        ("/errors", "Errors"),
        ("/alerts", "Alerts"),
        ("/settings", "Settings"),
    ] {
        assert!(
            html.contains(&format!(r#"href="{base}{suffix}""#)),
            "{label}"
        );
    }
    for (i, label) in [
        "Deployments",
        "Domains",
        "Environment",
        "Functions",
        "Settings",
    ]
    .iter()
    .enumerate()
    {
        let html = project(true, tab(true, i));
        assert!(
            html.contains(&format!(r#"aria-current="page">{label}</a>"#)),
            "{label}"
        );
    }
}

#[test]
fn write_buttons_follow_permissions() {
    // (can_write, has_git, can_rollback) → (deploy now, rollback, row actions)
    let cases = [
        (true, true, true, true, true, true),
        (true, false, false, false, false, true),
        (false, true, true, false, false, false),
    ];
    for (can_write, has_git, can_rollback, deploy, rollback, rows) in cases {
        let mut h = fx::header(can_write);
        h.has_git = has_git;
        let mut body = tab(true, 0);
        if let ProjectBody::Deployments(t) = &mut body {
            t.can_rollback = can_rollback;
        }
        let html = crate::project(&fx::page(Nav::Projects), &h, &body);
        assert_eq!(html.contains("/deploy\""), deploy, "{can_write} {has_git}");
        assert_eq!(
            html.contains("/rollback\""),
            rollback,
            "{can_write} {can_rollback}"
        );
        assert_eq!(html.contains("/deployments/dep0/promote"), rows);
        assert_eq!(html.contains("/deployments/dep0/cancel"), rows);
        assert_eq!(html.contains("/deployments/dep0/redeploy"), rows);
    }
}

#[test]
fn deployments_tab_empty_state_says_how_to_deploy() {
    let html = project(true, tab(false, 0));
    assert!(html.contains("coordinator deploy ./dist --project &lt;script&gt;"));
    assert!(html.contains(">Settings</a>"));
}

#[test]
fn status_badges_are_coloured_by_status() {
    for (status, class) in [
        ("ready", "badge-ok"),
        ("failed", "badge-bad"),
        ("building", "badge-warn"),
        ("queued", "badge-warn"),
        ("cancelled", "badge-muted"),
        ("alive", "badge-ok"),
        ("down", "badge-bad"),
        ("suspect", "badge-warn"),
        ("something", "badge-info"),
    ] {
        let html = crate::components::badge(status).into_string();
        assert_eq!(
            html,
            format!(r#"<span class="badge {class}">{status}</span>"#)
        );
    }
}

#[test]
fn times_are_relative_with_absolute_title() {
    let html = project(true, tab(true, 0));
    assert!(html.contains(
        r#"<time datetime="2024-05-01T11:57:00Z" title="2024-05-01 11:57:00 UTC">3 min ago</time>"#
    ));
}

#[test]
fn env_tab_forms() {
    let html = project(true, tab(true, 2));
    let base = "/projects/%3Cscript%3Ealert%281%29%3C%2Fscript%3E";
    assert!(html.contains(&format!(r#"action="{base}/env""#)));
    assert!(html.contains(&format!(
        r#"action="{base}/env/production/%3Cscript%3Ealert%281%29%3C%2Fscript%3E/delete""#
    )));
    assert!(html.contains(&format!(r#"action="{base}/outbound""#)));
    assert!(html.contains(r#"<input id="env-secret" type="checkbox" name="secret" value="on">"#));
    assert!(html.contains("api0.example.com\napi1.example.com</textarea>"));
    for field in ["name", "value", "env", "hosts"] {
        assert!(html.contains(&format!(r#"name="{field}""#)), "{field}");
    }
    let ro = project(false, tab(true, 2));
    assert!(!ro.contains("/delete\"") && !ro.contains("/outbound\""));
    assert!(ro.contains("api0.example.com"));
    assert!(project(true, tab(false, 2)).contains("No environment variables"));
}

#[test]
fn settings_tab_forms() {
    let html = project(true, tab(true, 4));
    for field in [
        "url",
        "branch",
        "root_dir",
        "install_command",
        "build_command",
        "output_dir",
        "auto_promote",
    ] {
        assert!(html.contains(&format!(r#"name="{field}""#)), "{field}");
    }
    assert!(html.contains(r#"value="on" checked>"#));
    assert!(html.contains("/settings/git/delete\""));
    assert!(html.contains("hooks/git/blog"));
    let fresh = project(true, tab(false, 4));
    assert!(!fresh.contains("/settings/git/delete\""));
    assert!(fresh.contains(r#"name="branch" value="main""#));
    let ro = project(false, tab(true, 4));
    assert!(!ro.contains("/settings/git\""));
    assert!(ro.contains("<fieldset class=\"plain\" disabled>"));
}

#[test]
fn functions_and_domains_tabs() {
    assert!(project(true, tab(true, 3)).contains("functions/users.wasm"));
    assert!(project(true, tab(false, 3)).contains("[[functions]]"));
    assert!(project(true, tab(true, 1)).contains("blog.example.com"));
    assert!(project(true, tab(false, 1)).contains("No aliases"));
}

#[test]
fn deployment_log_is_ready_to_follow() {
    let html = crate::deployment(&fx::page(Nav::Projects), &fx::deployment(true, "building"));
    let pre = tags(&html, "pre")
        .into_iter()
        .find(|t| t.contains(r#"id="log""#))
        .unwrap();
    assert_eq!(
        attr(pre, "data-events"),
        Some("/deployments/dep1234567/events")
    );
    assert_eq!(attr(pre, "data-after"), Some("2"));
    assert_eq!(attr(pre, "data-status"), Some("building"));
    assert_eq!(attr(pre, "aria-live"), Some("polite"));
    assert!(html.contains(r#"<span class="line stdout"><span class="ts" title="2024-05-01 11:58:00 UTC">11:58:00</span> npm ci"#));
    assert!(html.contains(r#"<span class="line stderr"><span class="ts""#));
    assert!(html.contains(r#"<span id="deployment-status" class="badge badge-warn" data-status="building">building</span>"#));
    assert!(html.contains(r#"<div class="alert" id="deployment-error" role="alert" hidden></div>"#));
    assert!(html.contains("and 11 more"));
    assert!(html.contains("1.2 MB"));
    assert!(html.contains(r#"href="https://dep1234567.example.com""#));
    assert!(html.contains("functions/users.wasm"));
}

#[test]
fn deployment_without_build_or_output() {
    let mut d = fx::deployment(false, "ready");
    let html = crate::deployment(&fx::page(Nav::Projects), &d);
    assert!(html.contains(r#"data-after="-1""#));
    assert!(html.contains("The build produced no output."));
    assert!(html.contains("No files"));
    d.has_build = false;
    let html = crate::deployment(&fx::page(Nav::Projects), &d);
    assert!(html.contains("Uploaded with coordinator deploy — no build log."));
    assert!(!html.contains(r#"id="log""#));
    let waiting = crate::deployment(&fx::page(Nav::Projects), &fx::deployment(false, "queued"));
    assert!(waiting.contains("Waiting for build output"));
}

#[test]
fn nodes_page() {
    let html = crate::nodes(&fx::page(Nav::Nodes), &fx::nodes(true));
    assert!(html.contains("up to date"));
    assert!(html.contains("2 behind"));
    assert!(html.contains(">never</span>"));
    assert!(html.contains(">just now</time>"));
    assert!(html.contains(r#"<code class="copy-value" id="join-token">join-token-secret</code>"#));
    assert!(html.contains(r#"data-copy="join-token" hidden>Copy</button>"#));
    assert!(html.contains("will not be shown again"));
    assert!(html.contains(r#"action="/nodes/join-tokens""#) && html.contains(r#"name="region""#));

    let empty = crate::nodes(&fx::page(Nav::Nodes), &fx::nodes(false));
    assert!(empty.contains("No edge nodes yet") && empty.contains("edge-node join"));
    let mut viewer = fx::page(Nav::Nodes);
    viewer.user.as_mut().unwrap().instance_owner = false;
    let html = crate::nodes(&viewer, &fx::nodes(false));
    assert!(!html.contains("/nodes/join-tokens"));
    assert!(html.contains("instance owner"));
}

#[test]
fn tokens_page() {
    let html = crate::tokens(&fx::page(Nav::Tokens), &fx::tokens(true));
    assert!(html.contains(r#"<code class="copy-value" id="new-token">opt_newtoken</code>"#));
    assert!(html.contains(r#"action="/tokens/tok1/revoke""#));
    assert!(
        !html.contains(r#"action="/tokens/tok2/revoke""#),
        "already revoked"
    );
    assert!(html.contains(r#"<option value="all">All my teams</option>"#));
    assert!(html.contains(r#"type="number" name="expires_days""#));
    assert!(html.contains("in 1 day"));
    let empty = crate::tokens(&fx::page(Nav::Tokens), &fx::tokens(false));
    assert!(empty.contains("No API tokens"));
    assert!(!empty.contains("new-token\""));
}

#[test]
fn team_owner_controls() {
    let owner = crate::team(&fx::page(Nav::Team), &fx::team(true, true));
    for needle in [
        "/teams/t1/invitations\"",
        "/teams/t1/invitations/inv1/revoke\"",
        "/teams/t1/members/u2/role\"",
        "/teams/t1/members/u2/remove\"",
        r#"action="/teams""#,
        r#"<option value="member" selected>member</option>"#,
        "https://outpost.example.com/invite/abc",
    ] {
        assert!(owner.contains(needle), "{needle}");
    }
    let viewer = crate::team(&fx::page(Nav::Team), &fx::team(true, false));
    for needle in ["/invitations\"", "/revoke\"", "/role\"", "/remove\""] {
        assert!(!viewer.contains(needle), "{needle}");
    }
    assert!(viewer.contains(r#"href="/teams/t2""#));
    let empty = crate::team(&fx::page(Nav::Team), &fx::team(false, true));
    assert!(empty.contains("No pending invitations"));
}

#[test]
fn audit_filter_is_a_get_form() {
    let html = crate::audit(&fx::page(Nav::Audit), &fx::audit(true));
    assert!(html.contains(r#"<form class="row" method="get" action="/audit">"#));
    assert!(html.contains(r#"<option value="t1" selected>"#));
    assert!(html.contains(r#"href="/audit?cursor=x" rel="next""#));
    let empty = crate::audit(&fx::page(Nav::Audit), &fx::audit(false));
    assert!(empty.contains("No events"));
    assert!(empty.contains(r#"<option value="" selected>"#));
}

#[test]
fn error_page_shows_status_and_message() {
    let html = crate::error(
        &fx::anonymous(),
        &ErrorPage {
            status: 404,
            heading: "Not found".into(),
            message: "No such project.".into(),
        },
    );
    assert!(
        html.contains(">404</p>")
            && html.contains("No such project.")
            && html.contains("Back to the dashboard")
    );
    assert!(!html.contains(CSRF), "no forms on an anonymous error page");
}

#[test]
fn only_the_instance_owner_is_shown_the_nodes_link() {
    let owner = crate::overview(&fx::page(Nav::Projects), &fx::overview(true));
    assert!(owner.contains(r#"<a href="/nodes""#));
    let mut p = fx::page(Nav::Projects);
    p.user.as_mut().unwrap().instance_owner = false;
    let tenant = crate::overview(&p, &fx::overview(true));
    assert!(!tenant.contains(r#"href="/nodes""#), "{tenant}");
    assert!(tenant.contains(r#"<a href="/tokens""#));
}
