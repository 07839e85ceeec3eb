//! The authorisation matrix for the dashboard: the same two accounts as
//! `authz`, and every route of the dashboard's router tried by the one
//! with a session cookie against the other's projects, deployments,
//! builds, variables, git connection, tokens and team. Strangers get the
//! 404 page; viewers read pages but their forms change nothing (they are
//! sent back with the reason); without a session every page redirects to
//! the sign-in form; and afterwards B's data is exactly as it was.
//!
//! ADDING A ROUTE TO `src/web/mod.rs`? `every_dashboard_route_has_a_row`
//! reads the router and fails until the new (method, path) has a row in
//! `stranger_rows` or an entry in `NOT_TENANT_SCOPED` saying why it needs
//! none. If the route reads or changes project or team data, add a row
//! to `viewer_rows` as well.

use std::collections::BTreeSet;

use reqwest::Method;

use crate::authz::{
    check_b_intact, fill, invite_a_as_viewer, routes_in, snapshot, world, World, B_DOMAIN,
    PLAIN_VALUE, SECRET_VALUE,
};
use crate::support::http_client;

/// What a row must be answered with: the status of the 404 page, of a
/// page (200), of the 403 page, or 303 for a form sent back with the
/// reason in a flash message (one the caller may not submit).
mod expect {
    pub const NOT_FOUND: u16 = 404;
    pub const PAGE: u16 = 200;
    pub const FORBIDDEN: u16 = 403;
    pub const SENT_BACK: u16 = 303;
}
type Expect = u16;

struct Row {
    method: Method,
    /// The route exactly as `src/web/mod.rs` declares it.
    route: &'static str,
    path: String,
    form: Vec<(&'static str, String)>,
    expect: Expect,
}

fn row(method: Method, route: &'static str, args: &[&str], expect: Expect) -> Row {
    Row {
        path: fill(route, args),
        method,
        route,
        form: Vec::new(),
        expect,
    }
}

impl Row {
    fn form(mut self, fields: &[(&'static str, &str)]) -> Row {
        self.form = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self
    }

    fn query(mut self, q: &str) -> Row {
        self.path = format!("{}?{q}", self.path);
        self
    }
}

/// The form fields a row sends (besides the CSRF token).
const SET_SECRET: &[(&str, &str)] = &[("name", "SECRET_KEY"), ("value", "pwned"), ("env", "all")];
const EVIL_HOSTS: &[(&str, &str)] = &[("hosts", "evil.example")];
const NEW_DOMAIN: &[(&str, &str)] = &[("name", "www.stolen.example")];
const HTTPS_OFF: &[(&str, &str)] = &[("hsts_max_age", "")];
const EVIL_GIT: &[(&str, &str)] = &[("url", "https://evil.example/x.git")];
const OWNER: &[(&str, &str)] = &[("role", "owner")];
const RESOLVE: &[(&str, &str)] = &[("state", "resolved")];
const LOW: &[(&str, &str)] = &[("severity", "low")];
const NEW_CHANNEL: &[(&str, &str)] = &[("kind", "email"), ("target", "evil@example.com")];

/// One row of a table: method, route, path arguments, form, answer.
type Entry<'a> = (
    Method,
    &'static str,
    Vec<&'a str>,
    &'a [(&'static str, &'a str)],
    Expect,
);

fn rows(table: &[Entry]) -> Vec<Row> {
    table
        .iter()
        .map(|(m, route, args, form, expect)| row(m.clone(), route, args, *expect).form(form))
        .collect()
}

/// What someone with no role in B's team tries on B's things, with valid
/// forms, so only authorisation can refuse them.
#[rustfmt::skip]
fn stranger_rows(w: &World) -> Vec<Row> {
    use expect::*;
    use Method as M;
    let ids = &w.ids;
    let (p, pid, team, user) = (&*ids.project, &*ids.project_id, &*ids.team, &*ids.user);
    let (dep, old, build) = (&*ids.dep_prod, &*ids.dep_old, &*ids.build);
    let (inv, stranger, token) = (&*ids.pending_inv, &*ids.stranger, &*ids.token_id);
    let scope = format!("project:{p}");
    let new_project: &[(&str, &str)] = &[("name", "sneaky"), ("team", team)];
    let token_form: &[(&str, &str)] = &[("name", "x"), ("scope", &scope)];
    let used = &*ids.revoked_inv_token;
    let (issue, rule, channel) = (&*ids.error_issue, &*ids.rule, &*ids.channel);
    // A's own project and team, to aim B's issue, rule and channel through.
    let (mine, my_team) = ("a-site", &*w.a.team);
    let rule_form: &[(&str, &str)] = &[("kind", "error_rate"), ("channels", channel)];
    let instance_rule: &[(&str, &str)] = &[("kind", "high_memory"), ("channels", channel)];
    let mut out = rows(&[
        (M::GET, "/projects/{p}", vec![p], &[], NOT_FOUND),
        (M::GET, "/projects/{p}", vec![pid], &[], NOT_FOUND),
        (M::GET, "/projects/{p}/domains", vec![p], &[], NOT_FOUND),
        (M::GET, "/projects/{p}/env", vec![p], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/env", vec![p], SET_SECRET, NOT_FOUND),
        (M::POST, "/projects/{p}/env/{env}/{name}/delete", vec![p, "production", "SECRET_KEY"], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/outbound", vec![p], EVIL_HOSTS, NOT_FOUND),
        (M::POST, "/projects/{p}/domains", vec![p], NEW_DOMAIN, NOT_FOUND),
        (M::POST, "/projects/{p}/domains/{d}/verify", vec![p, B_DOMAIN], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/domains/{d}/delete", vec![p, B_DOMAIN], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/domains/{d}/https", vec![p, B_DOMAIN], HTTPS_OFF, NOT_FOUND),
        (M::GET, "/projects/{p}/functions", vec![p], &[], NOT_FOUND),
        (M::GET, "/projects/{p}/analytics", vec![p], &[], NOT_FOUND),
        (M::GET, "/projects/{p}/errors", vec![p], &[], NOT_FOUND),
        (M::GET, "/projects/{p}/errors/{id}", vec![p, issue], &[], NOT_FOUND),
        (M::GET, "/projects/{p}/errors/{id}", vec![mine, issue], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/errors/{id}/state", vec![p, issue], RESOLVE, NOT_FOUND),
        (M::POST, "/projects/{p}/errors/{id}/state", vec![mine, issue], RESOLVE, NOT_FOUND),
        (M::POST, "/projects/{p}/errors/{id}/severity", vec![p, issue], LOW, NOT_FOUND),
        (M::POST, "/projects/{p}/errors/{id}/severity", vec![mine, issue], LOW, NOT_FOUND),
        (M::GET, "/projects/{p}/alerts", vec![p], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/alerts", vec![p], rule_form, NOT_FOUND),
        // B's channel in a rule of A's own project, or in an instance rule
        // of A's (A owns the instance): not A's to notify.
        (M::POST, "/projects/{p}/alerts", vec![mine], rule_form, NOT_FOUND),
        (M::POST, "/nodes/alerts", vec![], instance_rule, NOT_FOUND),
        (M::POST, "/projects/{p}/alerts/{id}/remove", vec![p, rule], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/alerts/{id}/remove", vec![mine, rule], &[], NOT_FOUND),
        (M::POST, "/nodes/alerts/{id}/remove", vec![rule], &[], NOT_FOUND),
        (M::POST, "/teams/{id}/channels", vec![team], NEW_CHANNEL, NOT_FOUND),
        (M::POST, "/teams/{id}/channels/{cid}/test", vec![team, channel], &[], NOT_FOUND),
        (M::POST, "/teams/{id}/channels/{cid}/test", vec![my_team, channel], &[], NOT_FOUND),
        (M::POST, "/teams/{id}/channels/{cid}/remove", vec![team, channel], &[], NOT_FOUND),
        (M::POST, "/teams/{id}/channels/{cid}/remove", vec![my_team, channel], &[], NOT_FOUND),
        (M::GET, "/projects/{p}/settings", vec![p], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/settings/git", vec![p], EVIL_GIT, NOT_FOUND),
        (M::POST, "/projects/{p}/settings/git/delete", vec![p], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/deploy", vec![p], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/rollback", vec![p], &[], NOT_FOUND),
        (M::POST, "/projects/{p}/delete", vec![p], &[("confirm", p)], NOT_FOUND),
        (M::POST, "/projects", vec![], new_project, NOT_FOUND),
        (M::GET, "/deployments/{id}", vec![dep], &[], NOT_FOUND),
        (M::GET, "/deployments/{id}", vec![build], &[], NOT_FOUND),
        (M::POST, "/deployments/{id}/promote", vec![old], &[], NOT_FOUND),
        (M::POST, "/deployments/{id}/cancel", vec![build], &[], NOT_FOUND),
        (M::POST, "/deployments/{id}/redeploy", vec![build], &[], NOT_FOUND),
        (M::POST, "/deployments/{id}/delete", vec![old], &[], NOT_FOUND),
        (M::POST, "/tokens", vec![], token_form, NOT_FOUND),
        (M::POST, "/tokens/{id}/revoke", vec![token], &[], NOT_FOUND),
        (M::GET, "/teams/{id}", vec![team], &[], NOT_FOUND),
        (M::POST, "/teams/{id}/invitations", vec![team], OWNER, NOT_FOUND),
        (M::POST, "/teams/{id}/invitations/{iid}/revoke", vec![team, inv], &[], NOT_FOUND),
        (M::POST, "/teams/{id}/members/{uid}/role", vec![team, stranger], OWNER, NOT_FOUND),
        (M::POST, "/teams/{id}/members/{uid}/remove", vec![team, user], &[], NOT_FOUND),
        // A used invitation link: a page that says so, and a refusal.
        (M::GET, "/invite/{token}", vec![used], &[], PAGE),
        (M::POST, "/invite/{token}", vec![used], &[], SENT_BACK),
        // The caller's own pages: answered, and without B in them.
        (M::GET, "/", vec![], &[], PAGE),
        (M::GET, "/account", vec![], &[], PAGE),
        (M::GET, "/tokens", vec![], &[], PAGE),
        (M::GET, "/audit", vec![], &[], PAGE),
    ]);
    out.push(row(M::GET, "/audit", &[], NOT_FOUND).query(&format!("team={team}")));
    out
}

/// What a viewer of B's team may and may not do there.
#[rustfmt::skip]
fn viewer_rows(w: &World) -> Vec<Row> {
    use expect::*;
    use Method as M;
    let ids = &w.ids;
    let (p, team, user, inv) = (&*ids.project, &*ids.team, &*ids.user, &*ids.pending_inv);
    let (dep, old, build) = (&*ids.dep_prod, &*ids.dep_old, &*ids.build);
    let (issue, rule, channel) = (&*ids.error_issue, &*ids.rule, &*ids.channel);
    let new_project: &[(&str, &str)] = &[("name", "sneaky"), ("team", team)];
    let rule_form: &[(&str, &str)] = &[("kind", "error_rate"), ("channels", channel)];
    let mut out = rows(&[
        (M::GET, "/projects/{p}", vec![p], &[], PAGE),
        (M::GET, "/projects/{p}/errors", vec![p], &[], PAGE),
        (M::GET, "/projects/{p}/errors/{id}", vec![p, issue], &[], PAGE),
        (M::GET, "/projects/{p}/alerts", vec![p], &[], PAGE),
        (M::POST, "/projects/{p}/errors/{id}/state", vec![p, issue], RESOLVE, SENT_BACK),
        (M::POST, "/projects/{p}/errors/{id}/severity", vec![p, issue], LOW, SENT_BACK),
        (M::POST, "/projects/{p}/alerts", vec![p], rule_form, SENT_BACK),
        (M::POST, "/projects/{p}/alerts/{id}/remove", vec![p, rule], &[], SENT_BACK),
        (M::POST, "/teams/{id}/channels", vec![team], NEW_CHANNEL, SENT_BACK),
        (M::POST, "/teams/{id}/channels/{cid}/test", vec![team, channel], &[], SENT_BACK),
        (M::POST, "/teams/{id}/channels/{cid}/remove", vec![team, channel], &[], SENT_BACK),
        (M::GET, "/projects/{p}/domains", vec![p], &[], PAGE),
        (M::GET, "/projects/{p}/env", vec![p], &[], PAGE),
        (M::GET, "/projects/{p}/functions", vec![p], &[], PAGE),
        (M::GET, "/projects/{p}/analytics", vec![p], &[], PAGE),
        (M::GET, "/projects/{p}/settings", vec![p], &[], PAGE),
        (M::GET, "/deployments/{id}", vec![dep], &[], PAGE),
        (M::GET, "/deployments/{id}", vec![build], &[], PAGE),
        (M::GET, "/teams/{id}", vec![team], &[], PAGE),
        (M::POST, "/projects/{p}/env", vec![p], SET_SECRET, SENT_BACK),
        (M::POST, "/projects/{p}/env/{env}/{name}/delete", vec![p, "production", "SECRET_KEY"], &[], SENT_BACK),
        (M::POST, "/projects/{p}/outbound", vec![p], EVIL_HOSTS, SENT_BACK),
        (M::POST, "/projects/{p}/domains", vec![p], NEW_DOMAIN, SENT_BACK),
        (M::POST, "/projects/{p}/domains/{d}/verify", vec![p, B_DOMAIN], &[], SENT_BACK),
        (M::POST, "/projects/{p}/domains/{d}/delete", vec![p, B_DOMAIN], &[], SENT_BACK),
        (M::POST, "/projects/{p}/domains/{d}/https", vec![p, B_DOMAIN], HTTPS_OFF, SENT_BACK),
        (M::POST, "/projects/{p}/settings/git", vec![p], EVIL_GIT, SENT_BACK),
        (M::POST, "/projects/{p}/settings/git/delete", vec![p], &[], SENT_BACK),
        (M::POST, "/projects/{p}/deploy", vec![p], &[], SENT_BACK),
        (M::POST, "/projects/{p}/rollback", vec![p], &[], SENT_BACK),
        (M::POST, "/projects/{p}/delete", vec![p], &[("confirm", p)], SENT_BACK),
        (M::POST, "/projects", vec![], new_project, SENT_BACK),
        (M::POST, "/deployments/{id}/promote", vec![old], &[], SENT_BACK),
        (M::POST, "/deployments/{id}/cancel", vec![build], &[], SENT_BACK),
        (M::POST, "/deployments/{id}/redeploy", vec![build], &[], SENT_BACK),
        (M::POST, "/deployments/{id}/delete", vec![old], &[], SENT_BACK),
        (M::POST, "/teams/{id}/invitations", vec![team], OWNER, SENT_BACK),
        (M::POST, "/teams/{id}/invitations/{iid}/revoke", vec![team, inv], &[], SENT_BACK),
        (M::POST, "/teams/{id}/members/{uid}/role", vec![team, user], &[("role", "viewer")], SENT_BACK),
        (M::POST, "/teams/{id}/members/{uid}/remove", vec![team, user], &[], SENT_BACK),
    ]);
    out.push(row(M::GET, "/audit", &[], FORBIDDEN).query(&format!("team={team}")));
    out.push(row(M::GET, "/projects/{p}/errors", &[p], PAGE).query("state=all"));
    out
}

/// Dashboard routes without a stranger row, and why none is needed.
const NOT_TENANT_SCOPED: &[(&str, &str, &str)] = &[
    (
        "GET",
        "/login",
        "no session yet; sign-in rules are in authz",
    ),
    (
        "POST",
        "/login",
        "no session yet; sign-in rules are in authz",
    ),
    ("GET", "/signup", "no session yet"),
    (
        "POST",
        "/signup",
        "no session yet; sign-up rules are in authz",
    ),
    ("POST", "/logout", "ends the caller's own session"),
    (
        "POST",
        "/account/password",
        "changes the caller's own password",
    ),
    (
        "GET",
        "/nodes",
        "instance owner only, as the API's nodes route (dashboard_strangers_see_404_and_viewers_only_read checks others get 403)",
    ),
    (
        "POST",
        "/nodes/join-tokens",
        "instance owner only, as the API's join-tokens route",
    ),
    (
        "POST",
        "/nodes/{id}/remove",
        "instance owner only, as the API's DELETE /nodes/{id} (checked in dashboard_strangers_see_404_and_viewers_only_read)",
    ),
    ("GET", "/teams", "redirects to the caller's own first team"),
    ("POST", "/teams", "creates a team of the caller's own"),
    (
        "GET",
        "/assets/{file}",
        "public stylesheet, script and icon",
    ),
];

fn declared() -> BTreeSet<(String, String)> {
    let router = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/mod.rs");
    routes_in([router])
}

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    let _ = http_client();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Sends `r` with session `cookie` (and its CSRF token in every form), or
/// with no cookie; (status, body).
async fn send(w: &World, r: &Row, session: Option<(&str, &str)>) -> (u16, String) {
    let mut req = client().request(r.method.clone(), format!("{}{}", w.coord.url(), r.path));
    let mut form = r.form.clone();
    if let Some((cookie, csrf)) = session {
        req = req.header("cookie", format!("outpost_session={cookie}"));
        form.push(("csrf", csrf.to_string()));
    }
    if r.method == Method::POST {
        req = req.form(&form);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[test]
fn every_dashboard_route_has_a_row() {
    let declared = declared();
    assert!(
        declared.len() >= 40,
        "the route scan found only {declared:?}"
    );
    let mut covered = BTreeSet::new();
    for (m, p) in ROUTES_WITH_ROWS {
        covered.insert((m.to_string(), p.to_string()));
    }
    for (m, p, _) in NOT_TENANT_SCOPED {
        assert!(
            covered.insert((m.to_string(), p.to_string())),
            "{m} {p} has a row and an exemption"
        );
    }
    let missing: Vec<_> = declared.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "dashboard routes without an authorisation row (add one to stranger_rows and \
         ROUTES_WITH_ROWS, or an exemption to NOT_TENANT_SCOPED): {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&declared).collect();
    assert!(
        stale.is_empty(),
        "rows for routes that do not exist: {stale:?}"
    );
}

/// The routes `stranger_rows` covers (checked against it in the matrix
/// run, so the two cannot drift).
const ROUTES_WITH_ROWS: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/account"),
    ("GET", "/audit"),
    ("GET", "/deployments/{id}"),
    ("GET", "/invite/{token}"),
    ("GET", "/projects/{p}"),
    ("GET", "/projects/{p}/domains"),
    ("GET", "/projects/{p}/env"),
    ("GET", "/projects/{p}/functions"),
    ("GET", "/projects/{p}/analytics"),
    ("GET", "/projects/{p}/errors"),
    ("GET", "/projects/{p}/errors/{id}"),
    ("GET", "/projects/{p}/alerts"),
    ("GET", "/projects/{p}/settings"),
    ("GET", "/teams/{id}"),
    ("GET", "/tokens"),
    ("POST", "/deployments/{id}/cancel"),
    ("POST", "/deployments/{id}/delete"),
    ("POST", "/deployments/{id}/promote"),
    ("POST", "/deployments/{id}/redeploy"),
    ("POST", "/invite/{token}"),
    ("POST", "/projects"),
    ("POST", "/projects/{p}/delete"),
    ("POST", "/projects/{p}/deploy"),
    ("POST", "/projects/{p}/env"),
    ("POST", "/projects/{p}/env/{env}/{name}/delete"),
    ("POST", "/projects/{p}/outbound"),
    ("POST", "/projects/{p}/domains"),
    ("POST", "/projects/{p}/domains/{d}/verify"),
    ("POST", "/projects/{p}/domains/{d}/delete"),
    ("POST", "/projects/{p}/domains/{d}/https"),
    ("POST", "/projects/{p}/rollback"),
    ("POST", "/projects/{p}/settings/git"),
    ("POST", "/projects/{p}/settings/git/delete"),
    ("POST", "/projects/{p}/errors/{id}/state"),
    ("POST", "/projects/{p}/errors/{id}/severity"),
    ("POST", "/projects/{p}/alerts"),
    ("POST", "/projects/{p}/alerts/{id}/remove"),
    ("POST", "/nodes/alerts"),
    ("POST", "/nodes/alerts/{id}/remove"),
    ("POST", "/teams/{id}/channels"),
    ("POST", "/teams/{id}/channels/{cid}/test"),
    ("POST", "/teams/{id}/channels/{cid}/remove"),
    ("POST", "/teams/{id}/invitations"),
    ("POST", "/teams/{id}/invitations/{iid}/revoke"),
    ("POST", "/teams/{id}/members/{uid}/remove"),
    ("POST", "/teams/{id}/members/{uid}/role"),
    ("POST", "/tokens"),
    ("POST", "/tokens/{id}/revoke"),
];

#[tokio::test]
async fn dashboard_strangers_see_404_and_viewers_only_read() {
    let w = world().await;
    let before = snapshot(&w).await;
    check_b_intact(&before, &w);

    let rows = stranger_rows(&w);
    let in_rows: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_string(), r.route.to_string()))
        .collect();
    let listed: BTreeSet<(String, String)> = ROUTES_WITH_ROWS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        in_rows, listed,
        "ROUTES_WITH_ROWS must list exactly the stranger rows"
    );

    // Nothing of B's may show in any page A gets.
    let canaries = [
        SECRET_VALUE,
        PLAIN_VALUE,
        w.webhook_secret.as_str(),
        w.b.token.as_str(),
        w.b.email.as_str(),
        "Bob's team",
    ];
    let mut failures = Vec::new();
    for r in &rows {
        let (status, body) = send(&w, r, Some((&w.a.session, &w.a.csrf))).await;
        if r.expect != status {
            failures.push(format!(
                "A: {} {} (route {}) -> {status} (want {})",
                r.method, r.path, r.route, r.expect
            ));
        }
        for c in canaries {
            // The instance owner's audit log records that B signed up.
            let signup_event = r.path == "/audit" && c == w.b.email;
            if body.contains(c) && !signup_event {
                failures.push(format!("A: {} {} leaked {c:?}", r.method, r.path));
            }
        }
        // Without a session, every page sends the browser to sign in.
        if r.route != "/invite/{token}" {
            let (status, _) = send(&w, r, None).await;
            if status != 303 {
                failures.push(format!(
                    "no session: {} {} -> {status} (want a redirect to /login)",
                    r.method, r.path
                ));
            }
        }
    }
    // A form with the wrong CSRF token changes nothing, whoever sends it.
    let forged = row(
        Method::POST,
        "/projects/{p}/env",
        &[&w.ids.project],
        expect::FORBIDDEN,
    )
    .form(&[("name", "SECRET_KEY"), ("value", "pwned"), ("env", "all")]);
    let (status, _) = send(&w, &forged, Some((&w.b.session, "f00"))).await;
    if status != 403 {
        failures.push(format!("B with a wrong CSRF token -> {status} (want 403)"));
    }
    // The nodes page is the instance owner's (A's), not every tenant's.
    let nodes = row(Method::GET, "/nodes", &[], expect::FORBIDDEN);
    for (who, session, csrf, want) in [
        ("B", &w.b.session, &w.b.csrf, expect::FORBIDDEN),
        (
            "A, the instance owner,",
            &w.a.session,
            &w.a.csrf,
            expect::PAGE,
        ),
    ] {
        let (status, _) = send(&w, &nodes, Some((session, csrf))).await;
        if status != want {
            failures.push(format!("{who} GET /nodes -> {status} (want {want})"));
        }
    }
    // A refused dashboard action is sent back with the reason (the API's
    // DELETE /nodes/{id} answers 403 to the same caller).
    let remove = row(
        Method::POST,
        "/nodes/{id}/remove",
        &["n0000000000"],
        expect::SENT_BACK,
    );
    let (status, _) = send(&w, &remove, Some((&w.b.session, &w.b.csrf))).await;
    if status != expect::SENT_BACK {
        failures.push(format!(
            "B POST /nodes/{{id}}/remove -> {status} (want 303)"
        ));
    }
    // Instance-wide alert rules are the instance owner's, even with B's
    // own channel.
    let instance_rule = row(Method::POST, "/nodes/alerts", &[], expect::SENT_BACK)
        .form(&[("kind", "disk_space"), ("channels", &w.ids.channel)]);
    let (status, _) = send(&w, &instance_rule, Some((&w.b.session, &w.b.csrf))).await;
    if status != expect::SENT_BACK {
        failures.push(format!("B POST /nodes/alerts -> {status} (want 303)"));
    }
    assert!(
        failures.is_empty(),
        "dashboard matrix failures:\n{}",
        failures.join("\n")
    );
    let after = snapshot(&w).await;
    assert_eq!(
        before, after,
        "B's data changed under A's dashboard attempts"
    );

    // ---- A as a viewer of B's team ------------------------------------------------
    let inv = invite_a_as_viewer(&w).await;
    w.http
        .ok(
            &w.a.bearer(),
            Method::POST,
            &format!("/invitations/{}/accept", inv["token"].as_str().unwrap()),
            None,
        )
        .await;
    let before = snapshot(&w).await;
    let viewer_canaries = [SECRET_VALUE, w.webhook_secret.as_str(), w.b.token.as_str()];
    let mut failures = Vec::new();
    for r in &viewer_rows(&w) {
        let (status, body) = send(&w, r, Some((&w.a.session, &w.a.csrf))).await;
        if r.expect != status {
            failures.push(format!(
                "viewer: {} {} (route {}) -> {status} (want {})",
                r.method, r.path, r.route, r.expect
            ));
        }
        for c in viewer_canaries {
            if body.contains(c) {
                failures.push(format!("viewer: {} {} leaked {c:?}", r.method, r.path));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "dashboard viewer failures:\n{}",
        failures.join("\n")
    );
    let after = snapshot(&w).await;
    assert_eq!(
        before, after,
        "B's data changed under a viewer's dashboard forms"
    );
    check_b_intact(&after, &w);
}
