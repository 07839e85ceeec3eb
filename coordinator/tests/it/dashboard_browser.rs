//! The dashboard in a real browser: headless Chromium, driven through
//! chromedriver, against a real coordinator, a real edge node and a real
//! git repository. Signs up, creates a project, connects the repository,
//! deploys twice, rolls back, manages an API token, looks at nodes,
//! resolves an error issue, adds an alert channel and rule, and checks a
//! second account sees none of it. Screenshots of every page go
//! to `$CARGO_TARGET_DIR/screenshots/` for people to look at.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`apt-get install chromium chromium-driver`); `OUTPOST_SKIP_BROWSER=1`
//! skips it.

use std::path::Path;
use std::time::Instant;

use crate::support::browser::{self, Browser};
use crate::support::webhooks::{commit, have};
use crate::support::{eventually, Coordinator, Edge};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery";

fn site(tag: &str) -> String {
    format!("<!doctype html><title>{tag}</title><h1 id=\"tag\">{tag}</h1>\n")
}

/// Signs up through the form on `/signup`, which must be open.
async fn sign_up(b: &Browser, email: &str, name: &str) {
    b.fill("#email", email).await;
    b.fill("#name", name).await;
    b.fill("#password", PASSWORD).await;
    b.click("main form[action=\"/signup\"] button[type=submit]")
        .await;
    b.wait_path("/").await;
}

/// Waits on the deployment page until the live log has finished with
/// `ready`; returns the log's text.
async fn wait_build_ready(b: &Browser) -> String {
    let (done, status, log) = b
        .until(
            120,
            "the build to finish on the deployment page",
            || async {
                let v = b
                    .client
                    .execute(
                        "var s = document.getElementById('deployment-status');
                     var l = document.getElementById('log');
                     return [document.body.dataset.buildDone || '',
                             s ? s.dataset.status : '',
                             s ? s.textContent : '',
                             l ? l.dataset.status : '',
                             l ? l.innerText : ''];",
                        vec![],
                    )
                    .await
                    .ok()?;
                let v: Vec<String> = serde_json::from_value(v).ok()?;
                let finished = ["ready", "failed", "cancelled"].contains(&v[1].as_str());
                // Either the live stream's final status arrived, or the page
                // was rendered after the build had already ended (then there
                // is no stream to follow).
                let settled = v[0] == "1" || v[3] != "queued" && v[3] != "building";
                (finished && settled)
                    .then(|| (v[0].clone(), v[1].clone() + "/" + &v[2], v[4].clone()))
            },
        )
        .await;
    assert_eq!(status, "ready/ready", "badge; log:\n{log}");
    assert!(!log.trim().is_empty(), "the log shows lines");
    if done != "1" {
        eprintln!("note: the build had finished before the deployment page loaded");
    }
    log
}

/// The deployment id in the project header ("Production: … · deployment X").
async fn header_production(b: &Browser) -> String {
    b.text(".page-head p.muted a[href^=\"/deployments/\"] code")
        .await
}

#[tokio::test]
async fn dashboard_end_to_end_in_chromium() {
    if !browser::available() || !have("bwrap") || !have("git") {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let coord: Coordinator = crate::support::webhooks::start(tmp.path());
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let api = coord.api();
    let url = coord.url();
    let repo = tmp.path().join("repo");
    crate::support::webhooks::init(&repo);
    let sha1 = commit(&repo, &[("index.html", &site("version one"))], "First page");

    let b = Browser::start().await;
    println!("screenshots: {}", b.shots.display());

    // 1. The first visit goes to sign-up; the first account owns the
    //    instance and lands on an empty overview.
    b.goto(&format!("{url}/")).await;
    b.wait_path("/signup").await;
    assert!(
        b.body_text()
            .await
            .contains("You are the first person here"),
        "first-account note"
    );
    b.shot("01-signup").await;
    // The first account takes the setup token the coordinator printed.
    b.fill("#setup", coord.setup_token.as_deref().unwrap())
        .await;
    sign_up(&b, "ada@example.com", "Ada Lovelace").await;
    assert!(b
        .text(".empty .empty-title")
        .await
        .contains("No projects yet"));
    assert!(b
        .text(".topbar .user-email")
        .await
        .contains("ada@example.com"));
    b.shot("02-overview-empty").await;

    // 2. Create a project, connect the repository, deploy.
    b.fill("#project-name", "blog").await;
    b.click("form[action=\"/projects\"] button[type=submit]")
        .await;
    b.wait_path("/projects/blog").await;
    assert!(b
        .text(".flash-success")
        .await
        .contains("Project blog created"));
    assert!(b.body_text().await.contains("No deployments yet"));
    assert!(
        !b.exists("form[action=\"/projects/blog/deploy\"]").await,
        "no Deploy now before a repository is connected"
    );
    b.click("nav.tabs a[href=\"/projects/blog/settings\"]")
        .await;
    b.wait_path("/projects/blog/settings").await;
    b.fill("#git-url", &format!("file://{}", repo.display()))
        .await;
    // Branch "main" and auto-promote are the form's defaults; no install
    // or build command: the repository is a static site.
    assert_eq!(
        b.find("#git-branch").await.prop("value").await.unwrap(),
        Some("main".into())
    );
    assert!(b
        .find("#git-auto-promote")
        .await
        .is_selected()
        .await
        .unwrap());
    b.click("form[action=\"/projects/blog/settings/git\"] button[type=submit]")
        .await;
    b.wait_path("/projects/blog/settings").await;
    assert!(
        b.text(".flash-success")
            .await
            .contains("Repository connected"),
        "{}",
        b.body_text().await
    );
    assert!(b
        .text("#webhook-url")
        .await
        .ends_with("/api/v1/hooks/git/blog"));
    b.shot("05-settings").await;

    b.click("form[action=\"/projects/blog/deploy\"] button[type=submit]")
        .await;
    let path = b.wait_path_prefix("/deployments/").await;
    let first = path.trim_start_matches("/deployments/").to_string();
    let log = wait_build_ready(&b).await;
    assert!(
        log.contains(&format!("Checked out {}", &sha1[..7])),
        "{log}"
    );
    assert!(log.contains("Nothing to install or build"), "{log}");
    assert!(log.contains("Build finished"), "{log}");
    b.shot("04-deployment-log").await;
    // Reloaded, the page shows the finished deployment: its files, the
    // whole timeline, and no Cancel button.
    b.client.refresh().await.unwrap();
    b.wait_path(&path).await;
    assert!(b.text("ol.timeline").await.contains("Ready"));
    assert!(b
        .text("section[aria-labelledby=files-h]")
        .await
        .contains("index.html"));
    assert!(
        !b.exists(&format!("form[action=\"/deployments/{first}/cancel\"]"))
            .await
    );
    assert!(b.text("#log").await.contains("Nothing to install or build"));
    b.shot("04b-deployment-reloaded").await;

    // 3. The deployment is served by the edge, at the production host and
    //    at its own host; the browser opens both.
    let edge_port = edge.http.port();
    eventually(30, "production served by the edge", || async {
        let (s, body, _) = edge.get("blog.localhost", "/").await;
        (s == 200 && body.contains("version one")).then_some(())
    })
    .await;
    b.goto(&format!("http://blog.localhost:{edge_port}/")).await;
    assert_eq!(b.text("#tag").await, "version one");
    assert_eq!(b.client.title().await.unwrap(), "version one");
    b.goto(&format!("http://{first}--blog.localhost:{edge_port}/"))
        .await;
    assert_eq!(b.text("#tag").await, "version one");

    // 4. A second commit, deployed the same way, becomes production;
    //    "Roll back production" brings the first one back.
    commit(
        &repo,
        &[("index.html", &site("version two"))],
        "Second page",
    );
    b.goto(&format!("{url}/projects/blog")).await;
    assert_eq!(header_production(&b).await, first);
    b.click("form[action=\"/projects/blog/deploy\"] button[type=submit]")
        .await;
    let path = b.wait_path_prefix("/deployments/").await;
    let second = path.trim_start_matches("/deployments/").to_string();
    assert_ne!(second, first);
    let log = wait_build_ready(&b).await;
    assert!(log.contains("Second page"), "{log}");
    eventually(30, "the second version served", || async {
        let (_, body, _) = edge.get("blog.localhost", "/").await;
        body.contains("version two").then_some(())
    })
    .await;
    b.click(".crumbs a[href=\"/projects/blog\"]").await;
    b.wait_path("/projects/blog").await;
    assert_eq!(header_production(&b).await, second);
    let rows = b
        .client
        .find_all(fantoccini::Locator::Css(".table-wrap tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 2, "two deployments listed");
    assert!(rows[0].text().await.unwrap().contains("Production"));
    b.shot("03-project-deployments").await;
    b.click_confirm(
        "form[action=\"/projects/blog/rollback\"] button",
        "Roll production back",
    )
    .await;
    b.wait_flash("Rolled back").await;
    b.wait_path("/projects/blog").await;
    assert_eq!(
        header_production(&b).await,
        first,
        "production alias moved back"
    );
    let p: Value = api.get_json("/projects/blog").await;
    assert_eq!(p["production_deployment"], first.as_str(), "{p}");
    eventually(30, "the first version served again", || async {
        let (_, body, _) = edge.get("blog.localhost", "/").await;
        body.contains("version one").then_some(())
    })
    .await;
    b.shot("03b-project-after-rollback").await;
    // The deployment rolled away from is deleted from its row; its own
    // host stops answering on the edge.
    let own_host = format!("{second}--blog.localhost");
    let (s, _, _) = edge.get(&own_host, "/").await;
    assert_eq!(s, 200);
    b.click_confirm(
        &format!("form[action=\"/deployments/{second}/delete\"] button"),
        "Delete this deployment",
    )
    .await;
    b.wait_flash("Deleted deployment").await;
    b.wait_path("/projects/blog").await;
    assert!(
        !b.exists(&format!("a[href=\"/deployments/{second}\"]"))
            .await
    );
    assert!(
        !b.exists(&format!("form[action=\"/deployments/{first}/delete\"]"))
            .await,
        "production offers no delete button"
    );
    eventually(10, "the deleted deployment's host gone", || async {
        let (s, _, _) = edge.get(&own_host, "/").await;
        (s == 404).then_some(())
    })
    .await;
    b.click(".mainnav a[href=\"/\"]").await;
    b.wait_path("/").await;
    assert!(b.text(".table-wrap tbody").await.contains("blog"));
    b.shot("02b-overview-with-project").await;
    b.goto(&format!("{url}/projects/blog")).await;

    // The environment tab, with one plain and one secret variable.
    b.click("nav.tabs a[href=\"/projects/blog/env\"]").await;
    b.wait_path("/projects/blog/env").await;
    for (name, value, secret) in [
        ("GREETING", "hello", false),
        ("API_KEY", "s3cr3t-value", true),
    ] {
        b.fill("#env-name", name).await;
        b.fill("#env-value", value).await;
        b.select("#env-env", "production").await;
        if secret {
            b.click("#env-secret").await;
        }
        b.click("form[action=\"/projects/blog/env\"] button[type=submit]")
            .await;
        b.wait_path("/projects/blog/env").await;
        assert!(
            b.text(".flash-success").await.contains(name),
            "{}",
            b.body_text().await
        );
    }
    let text = b.body_text().await;
    assert!(
        text.contains("GREETING") && text.contains("hello"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t-value"), "secret shown: {text}");
    b.shot("06-env").await;

    // 5. An API token scoped to the project: shown once, works, and stops
    //    working once revoked.
    b.click(".mainnav a[href=\"/tokens\"]").await;
    b.wait_path("/tokens").await;
    b.fill("#token-name", "ci deploys").await;
    b.select("#token-scope", "project:blog").await;
    b.click("form[action=\"/tokens\"] button[type=submit]")
        .await;
    let token = b.text("#new-token").await.trim().to_string();
    assert!(token.len() >= 20, "{token:?}");
    b.shot("08-tokens-new").await;
    let http = crate::support::http_client();
    let get_project = || {
        http.get(format!("{url}/api/v1/projects/blog"))
            .bearer_auth(&token)
            .send()
    };
    let r = get_project().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // Reloading does not show the token again.
    b.goto(&format!("{url}/tokens")).await;
    assert!(!b.exists("#new-token").await);
    assert!(!b.body_text().await.contains(&token));
    b.click_confirm(
        "form[action^=\"/tokens/\"][action$=\"/revoke\"] button",
        "ci deploys",
    )
    .await;
    b.wait_flash("Token revoked").await;
    assert!(b.text(".table-wrap tbody").await.contains("revoked"));
    let r = get_project().await.unwrap();
    assert_eq!(r.status(), 401);

    // 6. The nodes page lists the edge node in its region, alive.
    let nodes: Value = api.get_json("/nodes").await;
    let node_name = nodes[0]["name"].as_str().unwrap().to_string();
    b.click(".mainnav a[href=\"/nodes\"]").await;
    b.wait_path("/nodes").await;
    assert!(b.text("#region-fra").await.contains("fra"));
    let row = b.text("section.region tbody tr").await;
    assert!(row.contains(&node_name), "{row}");
    assert!(row.contains("alive"), "{row}");
    b.shot("07-nodes").await;

    // The team and audit pages.
    b.click(".mainnav a[href=\"/teams\"]").await;
    b.wait_path_prefix("/teams/").await;
    assert!(b.body_text().await.contains("ada@example.com"));
    b.shot("09-team").await;
    b.click(".mainnav a[href=\"/audit\"]").await;
    b.wait_path("/audit").await;
    let audit = b.text(".table-wrap").await;
    assert!(
        audit.contains("ada@example.com") || audit.contains("Ada"),
        "{audit}"
    );
    b.shot("10-audit").await;

    // 6b. The Analytics tab shows the traffic the browser made above
    //     once its minute has closed and reached the coordinator; the
    //     range form is a plain GET. Then the same page in the dark theme,
    //     in a browser that prefers it, with the same session.
    let analytics = format!("{url}/projects/blog/analytics?range=1h");
    eventually(
        150,
        "the browser's traffic on the Analytics tab",
        || async {
            b.goto(&analytics).await;
            let n = b.try_text("#analytics-requests").await.unwrap_or_default();
            (!n.trim().is_empty() && n.trim() != "0").then_some(())
        },
    )
    .await;
    assert!(b.exists("#chart-traffic svg[role=img]").await);
    b.shot("14-analytics").await;
    let dark = Browser::start_with(&["--blink-settings=preferredColorScheme=0"]).await;
    dark.goto(&format!("{url}/login")).await;
    for c in b.client.get_all_cookies().await.unwrap() {
        dark.client.add_cookie(c).await.unwrap();
    }
    dark.goto(&analytics).await;
    assert!(dark.exists("#chart-traffic svg[role=img]").await);
    let prefers_dark = dark
        .client
        .execute(
            "return window.matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(prefers_dark, serde_json::json!(true));
    dark.shot("15-analytics-dark").await;
    dark.close().await;

    // 6c. The Errors tab: empty at first; a deployment whose file never
    //     arrives fails to finalize, that failure is filed as an issue,
    //     and its page resolves it.
    let errors = format!("{url}/projects/blog/errors");
    b.goto(&errors).await;
    assert!(b.body_text().await.contains("No open errors"));
    let missing = protocol::BlobHash::of(b"never uploaded").to_hex();
    let staged: Value = api
        .req(reqwest::Method::POST, "/projects/blog/deployments")
        .json(&serde_json::json!({
            "manifest": {"format": 1, "files": {"index.html": {"hash": missing, "size": 14, "content_type": "text/html"}}},
            "target": "preview",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let staged = staged["deployment"]["id"]
        .as_str()
        .or_else(|| staged["id"].as_str())
        .unwrap_or_else(|| panic!("{staged}"))
        .to_string();
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/deployments/{staged}/finalize"),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().as_u16() >= 400, "finalized without its file");
    b.goto(&errors).await;
    assert!(b.exists("table svg.spark").await);
    assert!(b
        .text(".table-wrap tbody")
        .await
        .contains("finalize_failed"));
    b.shot("16-errors").await;
    b.click(".table-wrap tbody a[href^=\"/projects/blog/errors/\"]")
        .await;
    b.wait_path_prefix("/projects/blog/errors/").await;
    assert!(b.body_text().await.contains(&staged), "its deployment");
    b.shot("17-error-issue").await;
    b.click("form[action$=\"/state\"] button.primary").await;
    b.wait_flash("Resolved").await;
    assert!(b.text(".status-line").await.contains("resolved"));
    b.goto(&errors).await;
    assert!(b.body_text().await.contains("No open errors"));

    // 6d. Alerts: a channel on the team page (e-mail, so nothing has to
    //     answer), then a rule on the project's Alerts tab notifying it.
    b.goto(&format!("{url}/teams")).await;
    b.wait_path_prefix("/teams/").await;
    b.select("#channel-kind", "email").await;
    b.fill("#channel-target", "ops@example.com").await;
    b.fill("#channel-name", "ops mail").await;
    b.click("form[action$=\"/channels\"] button[type=submit]")
        .await;
    b.wait_flash("Channel ops mail added").await;
    assert!(b.body_text().await.contains("ops@example.com"));
    b.shot("18-team-channels").await;
    b.goto(&format!("{url}/projects/blog/alerts")).await;
    b.select("#rule-kind", "function_error").await;
    b.fill("#rule-threshold", "3").await;
    b.click("form[action=\"/projects/blog/alerts\"] input[name=channels]")
        .await;
    b.click("form[action=\"/projects/blog/alerts\"] button[type=submit]")
        .await;
    b.wait_flash("Alert added").await;
    b.wait_path("/projects/blog/alerts").await;
    let rules = b.text(".table-wrap tbody").await;
    assert!(
        rules.contains("Function errors") && rules.contains("ops mail"),
        "{rules}"
    );
    b.shot("19-alerts").await;
    // Both tabs in the dark theme (the resolved issue under "All").
    let dark = Browser::start_with(&["--blink-settings=preferredColorScheme=0"]).await;
    dark.goto(&format!("{url}/login")).await;
    for c in b.client.get_all_cookies().await.unwrap() {
        dark.client.add_cookie(c).await.unwrap();
    }
    dark.goto(&format!("{errors}?state=all")).await;
    assert!(dark.exists("table svg.spark").await);
    dark.shot("16b-errors-dark").await;
    dark.goto(&format!("{url}/projects/blog/alerts")).await;
    assert!(dark.body_text().await.contains("Function errors"));
    dark.shot("19b-alerts-dark").await;
    dark.close().await;

    // A project is deleted from its settings, once its name is typed.
    b.goto(&format!("{url}/projects/blog/settings")).await;
    b.shot("13-settings-delete").await;
    // By keyboard: Enter in the field submits, and asks first.
    b.fill("#delete-confirm", "blg").await;
    b.enter_confirm("#delete-confirm", "Delete this project")
        .await;
    // Same page, so wait for the message rather than the path.
    b.until(20, "the refusal", || async {
        let t = b.try_text(".flash-error").await?;
        t.contains("nothing was deleted").then_some(())
    })
    .await;
    b.wait_path("/projects/blog/settings").await;
    b.fill("#delete-confirm", "blog").await;
    b.enter_confirm("#delete-confirm", "Delete this project")
        .await;
    b.wait_flash("Deleted blog").await;
    b.wait_path("/").await;
    assert!(!b.exists("a[href=\"/projects/blog\"]").await);
    eventually(10, "the deleted project's host gone", || async {
        let (s, _, _) = edge.get("blog.localhost", "/").await;
        (s == 404).then_some(())
    })
    .await;

    // 7. Sign out; a second account sees nothing of the first one's.
    b.click(".topbar form[action=\"/logout\"] button").await;
    b.wait_path("/login").await;
    b.goto(&format!("{url}/signup")).await;
    b.wait_path("/signup").await;
    assert!(!b
        .body_text()
        .await
        .contains("You are the first person here"));
    sign_up(&b, "bob@example.com", "Bob Builder").await;
    assert!(b
        .text(".topbar .user-email")
        .await
        .contains("bob@example.com"));
    assert!(b
        .text(".empty .empty-title")
        .await
        .contains("No projects yet"));
    assert!(!b.exists("a[href=\"/projects/blog\"]").await);
    b.shot("11-second-user-overview").await;
    b.goto(&format!("{url}/projects/blog")).await;
    assert_eq!(b.text(".error-code").await, "404");
    assert!(!b.body_text().await.contains("version one"));
    b.shot("12-second-user-404").await;
    b.goto(&format!("{url}/deployments/{first}")).await;
    assert_eq!(b.text(".error-code").await, "404");

    let shots = b.shots.clone();
    b.close().await;
    drop(edge);
    drop(coord);
    println!(
        "dashboard browser test took {:.1}s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    assert!(Path::new(&shots).join("12-second-user-404.png").is_file());
}
