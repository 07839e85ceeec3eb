//! Custom domains end to end (issue 23, first part): a real coordinator
//! and edge, and a real DNS server (Pebble's challtestsrv) whose records
//! the test sets. A domain goes live once its DNS points at the fleet,
//! follows production, proves ownership where another team holds a
//! parent name, and is gone from the edge once removed.

use reqwest::Method;
use serde_json::{json, Value};
use test_support::dns::TestDns;

use crate::support::*;

const TARGET: &str = "edge.fleet.test";
const APEX_IP: &str = "192.0.2.10";

fn config(dns: &TestDns) -> String {
    format!(
        "[domains]\ncname_target = \"{TARGET}\"\napex_addresses = [\"{APEX_IP}\"]\n\
         resolver = \"{}\"\nrecheck_every = \"1s\"\n",
        dns.dns
    )
}

async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = api.req(method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A DNS server, a coordinator verifying with it and one edge; `None`
/// (said loudly) where the DNS server is not installed.
fn cluster(tmp: &std::path::Path) -> Option<(TestDns, Coordinator, Edge)> {
    if !test_support::dns::available() {
        eprintln!(
            "\n\n!!!!! SKIPPING custom domain tests: {} is not installed (Debian package pebble) !!!!!\n\n",
            test_support::dns::BINARY
        );
        return None;
    }
    let dns = TestDns::start(&tmp.join("dns")).unwrap();
    let coord = Coordinator::start(&tmp.join("coord"), Some(&config(&dns)));
    let edge = Edge::join(&coord, "fra", &tmp.join("edge"));
    Some((dns, coord, edge))
}

async fn serves(edge: &Edge, host: &str, want: &str) {
    eventually(30, &format!("{host} to serve {want:?}"), || async {
        let (s, body, _) = edge.get(host, "/").await;
        (s == 200 && body.contains(want)).then_some(())
    })
    .await;
}

async fn not_served(edge: &Edge, host: &str) {
    eventually(30, &format!("{host} to stop being served"), || async {
        let (s, _, _) = edge.get(host, "/").await;
        (s == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_domain_goes_live_when_its_dns_points_at_the_fleet() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dns, coord, edge)) = cluster(tmp.path()) else {
        return;
    };
    let api = coord.api();
    let site = tmp.path().join("site");
    write_site(&site, "shop v1");
    coord.deploy(&site, "shop", true);

    // Added before DNS: pending, with the record to create.
    let added = coord.cli_ok(&[
        "domains",
        "add",
        "WWW.Shop.test.",
        "--project",
        "shop",
        "--json",
    ]);
    let d: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(
        (d["name"].as_str(), d["state"].as_str()),
        (Some("www.shop.test"), Some("pending")),
        "{d}"
    );
    assert_eq!(
        d["records"],
        json!([{"type": "CNAME", "name": "www.shop.test", "value": TARGET}])
    );
    let (s, _, _) = edge.get("www.shop.test", "/").await;
    assert_eq!(s, 404, "not served before its DNS points here");

    // The record in place, a check on demand: every edge serves it.
    dns.set_cname("www.shop.test", TARGET).await;
    let v = coord.cli_ok(&["domains", "verify", "www.shop.test", "--json"]);
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["served"].as_bool()),
        (Some("active"), Some(true)),
        "{v}"
    );
    serves(&edge, "www.shop.test", "shop v1").await;
    // It follows production.
    write_site(&site, "shop v2");
    coord.deploy(&site, "shop", true);
    serves(&edge, "www.shop.test", "shop v2").await;

    // An apex pointing elsewhere: misconfigured, saying what was found;
    // fixed, the periodic check (every second here) turns it active.
    dns.set_a("shop.test", &["198.51.100.7"]).await;
    let (s, d) = call(
        &api,
        Method::POST,
        "/projects/shop/domains",
        Some(json!({"name": "shop.test"})),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(d["state"], "misconfigured", "{d}");
    assert!(
        d["found"]
            .as_str()
            .unwrap()
            .contains("198.51.100.7 (not ours)"),
        "{d}"
    );
    assert_eq!(
        d["records"],
        json!([{"type": "A", "name": "shop.test", "value": APEX_IP}])
    );
    dns.clear_a("shop.test").await;
    dns.set_a("shop.test", &[APEX_IP]).await;
    serves(&edge, "shop.test", "shop v2").await;
    let listed = coord.cli_ok(&["domains", "ls", "shop"]);
    assert!(
        listed.contains("www.shop.test") && listed.contains("shop.test"),
        "{listed}"
    );

    // A redirecting domain: every request to the same path on its target.
    dns.set_cname("go.shop.test", TARGET).await;
    let add_redirect = |name: &'static str, to: &'static str, status: u16| {
        let api = &api;
        async move {
            call(
                api,
                Method::POST,
                "/projects/shop/domains",
                Some(json!({"name": name, "redirect_to": to, "redirect_status": status})),
            )
            .await
        }
    };
    let (s, d) = add_redirect("go.shop.test", "www.shop.test", 301).await;
    assert_eq!(
        (s, d["state"].as_str(), d["target"].as_str()),
        (201, Some("active"), Some("redirect")),
        "{d}"
    );
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let location = eventually(30, "go.shop.test to redirect", || async {
        let r = no_follow
            .get(format!("http://{}/a/b?x=1", edge.http))
            .header("Host", "go.shop.test")
            .send()
            .await
            .ok()?;
        (r.status() == 301).then(|| r.headers()["location"].to_str().unwrap().to_string())
    })
    .await;
    assert_eq!(location, "http://www.shop.test/a/b?x=1");
    // No chains (so no loops), no self-redirects, nothing outside the project.
    for (name, to, status) in [
        ("chain.shop.test", "go.shop.test", 308),
        ("self.shop.test", "self.shop.test", 308),
        ("out.shop.test", "elsewhere.test", 308),
        ("odd.shop.test", "www.shop.test", 200),
    ] {
        let (s, e) = add_redirect(name, to, status).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("invalid_redirect")),
            "{name}: {e}"
        );
    }
    // The target cannot go while a domain redirects to it.
    let (s, e) = call(&api, Method::DELETE, "/domains/www.shop.test", None).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("domain_in_use")),
        "{e}"
    );
    coord.cli_ok(&["domains", "rm", "go.shop.test"]);
    not_served(&edge, "go.shop.test").await;

    // Records that move away take the domain off the edges again.
    dns.clear_cname("www.shop.test").await;
    dns.set_a("www.shop.test", &["198.51.100.8"]).await;
    not_served(&edge, "www.shop.test").await;
    let i = coord.cli_ok(&["domains", "inspect", "www.shop.test"]);
    assert!(
        i.contains("misconfigured") && i.contains("198.51.100.8"),
        "{i}"
    );

    // Removed: gone from every edge.
    coord.cli_ok(&["domains", "rm", "shop.test"]);
    not_served(&edge, "shop.test").await;
    let (s, _) = call(&api, Method::GET, "/domains/shop.test", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn names_are_checked_and_no_team_takes_another_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((dns, coord, edge)) = cluster(tmp.path()) else {
        return;
    };
    let api = coord.api();
    let site = tmp.path().join("site");
    write_site(&site, "team one");
    coord.deploy(&site, "one", true);

    // Every kind of bad name, refused with the reason; nothing kept.
    for (name, code) in [
        ("co.uk", "invalid_domain"),
        ("github.io", "invalid_domain"),
        ("192.0.2.1", "invalid_domain"),
        ("sh op.test", "invalid_domain"),
        (&*format!("{}.test", "a".repeat(64)), "invalid_domain"),
        ("www.one.localhost", "invalid_domain"),
        ("x.node.outpost.internal", "invalid_domain"),
        ("*.one.test", "wildcard_unsupported"),
        ("", "invalid_domain"),
    ] {
        let (s, e) = call(
            &api,
            Method::POST,
            "/projects/one/domains",
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some(code)),
            "{name:?}: {e}"
        );
    }
    let (s, e) = call(
        &api,
        Method::POST,
        "/projects/one/domains",
        Some(json!({"name": "x.test", "extra": 1})),
    )
    .await;
    assert_eq!(s, 400, "unknown fields are refused: {e}");
    let (_, list) = call(&api, Method::GET, "/projects/one/domains", None).await;
    assert_eq!(list, json!([]));

    // Team one holds one.test; another team's project wants a name under it.
    dns.set_a("one.test", &[APEX_IP]).await;
    let (s, _) = call(
        &api,
        Method::POST,
        "/projects/one/domains",
        Some(json!({"name": "one.test"})),
    )
    .await;
    assert_eq!(s, 201);
    // The first account adopts the admin token, which may then make teams.
    let http = crate::authz::Http {
        base: format!("{}/api/v1", coord.url()),
        http: http_client(),
        setup_token: coord.setup_token.clone(),
    };
    crate::authz::sign_up(&http, "owner@example.com", "Owner").await;
    let (s, team) = call(&api, Method::POST, "/teams", Some(json!({"name": "two"}))).await;
    assert_eq!(s, 201, "{team}");
    let team_two = team["id"].as_str().unwrap().to_string();
    let (s, p) = call(
        &api,
        Method::POST,
        "/projects",
        Some(json!({"name": "two", "team": team_two})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    write_site(&site, "team two");
    coord.deploy(&site, "two", true);

    // The exact name: never.
    let (s, e) = call(
        &api,
        Method::POST,
        "/projects/two/domains",
        Some(json!({"name": "one.test"})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("domain_taken")),
        "{e}"
    );
    // A name under it: only with the ownership TXT record, even once its
    // DNS points here.
    dns.set_cname("blog.one.test", TARGET).await;
    let (s, d) = call(
        &api,
        Method::POST,
        "/projects/two/domains",
        Some(json!({"name": "blog.one.test"})),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(
        (d["state"].as_str(), d["served"].as_bool()),
        (Some("ownership"), Some(false)),
        "{d}"
    );
    let proof = &d["ownership"];
    assert_eq!(proof["name"], "_outpost-challenge.blog.one.test", "{d}");
    let (s, _, _) = edge.get("blog.one.test", "/").await;
    assert_eq!(s, 404, "not served without the proof");
    dns.set_txt(
        "_outpost-challenge.blog.one.test",
        proof["value"].as_str().unwrap(),
    )
    .await;
    let (s, d) = call(&api, Method::POST, "/domains/blog.one.test/verify", None).await;
    assert_eq!((s, d["state"].as_str()), (200, Some("active")), "{d}");
    serves(&edge, "blog.one.test", "team two").await;
    serves(&edge, "one.test", "team one").await;
    // The same name twice on one team: a clear conflict, too.
    let (s, e) = call(
        &api,
        Method::POST,
        "/projects/two/domains",
        Some(json!({"name": "BLOG.one.test"})),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("domain_taken")),
        "{e}"
    );
}
