//! Whole-page tests: every page, with data and without, must be a complete
//! document whose forms, labels and escaping are right.

mod alerts;
mod analytics;
mod errors;
mod fixtures;
mod html_scan;
mod pages;
mod safety;

use crate::model::*;
use fixtures as fx;

/// Every public page, rendered with full data (`full`) or empty lists.
pub fn all_pages(full: bool) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "login".to_string(),
            crate::login(
                &fx::anonymous(),
                &LoginForm {
                    email: fx::XSS.into(),
                    error: full.then(|| fx::XSS.into()),
                    next: "/projects/x".into(),
                    signup_open: full,
                },
            ),
        ),
        (
            "signup".into(),
            crate::signup(
                &fx::anonymous(),
                &SignupForm {
                    email: fx::XSS.into(),
                    name: fx::XSS.into(),
                    error: full.then(|| fx::XSS.into()),
                    closed: false,
                    first_account: full,
                    invite: full.then(fx::invite_summary),
                    setup_token: full.then(|| fx::XSS.into()),
                },
            ),
        ),
        (
            "signup-closed".into(),
            crate::signup(
                &fx::anonymous(),
                &SignupForm {
                    closed: true,
                    ..SignupForm::default()
                },
            ),
        ),
        (
            "invite".into(),
            crate::invite(
                &fx::page(Nav::None),
                &InvitePage {
                    invite: full.then(fx::invite_summary),
                    error: (!full).then(|| "This invitation has expired.".into()),
                },
            ),
        ),
        (
            "account".into(),
            crate::account(
                &fx::page(Nav::Account),
                &AccountPage {
                    email: fx::XSS.into(),
                    name: fx::XSS.into(),
                    created_at: fx::NOW - 86_400_000,
                    error: full.then(|| fx::XSS.into()),
                    teams: if full {
                        vec![fx::team_ref("t1")]
                    } else {
                        vec![]
                    },
                },
            ),
        ),
        (
            "overview".into(),
            crate::overview(&fx::page(Nav::Projects), &fx::overview(full)),
        ),
        (
            "deployment".into(),
            crate::deployment(&fx::page(Nav::Projects), &fx::deployment(full, "building")),
        ),
        (
            "nodes".into(),
            crate::nodes(&fx::page(Nav::Nodes), &fx::nodes(full)),
        ),
        (
            "tokens".into(),
            crate::tokens(&fx::page(Nav::Tokens), &fx::tokens(full)),
        ),
        (
            "team".into(),
            crate::team(&fx::page(Nav::Team), &fx::team(full, true)),
        ),
        (
            "team-viewer".into(),
            crate::team(&fx::page(Nav::Team), &fx::team(full, false)),
        ),
        (
            "audit".into(),
            crate::audit(&fx::page(Nav::Audit), &fx::audit(full)),
        ),
        (
            "error".into(),
            crate::error(
                &fx::page(Nav::None),
                &ErrorPage {
                    status: 404,
                    heading: fx::XSS.into(),
                    message: fx::XSS.into(),
                },
            ),
        ),
    ];
    out.push((
        "project-analytics".into(),
        crate::analytics(
            &fx::page(Nav::Projects),
            &fx::header(true),
            &fx::analytics(full),
        ),
    ));
    for can_write in [true, false] {
        let page = fx::page(Nav::Projects);
        let h = fx::header(can_write);
        out.push((
            format!("project-errors-write={can_write}"),
            crate::errors(&page, &h, &fx::errors_tab(full)),
        ));
        out.push((
            format!("project-issue-write={can_write}"),
            crate::issue(&page, &h, &fx::issue_page(full, "unresolved")),
        ));
        out.push((
            format!("project-alerts-write={can_write}"),
            crate::alerts(&page, &h, &fx::alerts_tab(full)),
        ));
        for body in fx::bodies(full) {
            let name = format!("project-{}-write={can_write}", tab_name(&body));
            out.push((
                name,
                crate::project(&fx::page(Nav::Projects), &fx::header(can_write), &body),
            ));
        }
    }
    out
}

fn tab_name(b: &ProjectBody) -> &'static str {
    match b {
        ProjectBody::Deployments(_) => "deployments",
        ProjectBody::Domains(_) => "domains",
        ProjectBody::Env(_) => "env",
        ProjectBody::Functions(_) => "functions",
        ProjectBody::Settings(_) => "settings",
    }
}

/// Both data shapes, for checks that must hold everywhere.
pub fn every_page() -> Vec<(String, String)> {
    let mut all = all_pages(true);
    all.extend(
        all_pages(false)
            .into_iter()
            .map(|(n, h)| (format!("{n} (empty)"), h)),
    );
    all
}

/// `DASHBOARD_DUMP=/tmp/pages cargo test -p outpost-dashboard dump -- --ignored`
/// writes every page to disk, for looking at them in a browser.
#[test]
#[ignore]
fn dump() {
    let dir = std::path::PathBuf::from(std::env::var("DASHBOARD_DUMP").expect("DASHBOARD_DUMP"));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    for file in ["style.css", "app.js", "favicon.svg"] {
        std::fs::write(dir.join("assets").join(file), crate::asset(file).unwrap().0).unwrap();
    }
    for (name, html) in every_page() {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::fs::write(dir.join(format!("{name}.html")), html).unwrap();
    }
}
