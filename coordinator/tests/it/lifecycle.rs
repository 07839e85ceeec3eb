//! Things end: deployments and projects are deleted (by their owners, by
//! the retention rules), their hosts stop answering on every edge, the
//! blobs nobody references are swept, and a team's quotas refuse more
//! with a typed error that leaves nothing half made.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::webhooks::{commit, have, init, start, wait_status};
use crate::support::*;

async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = api.req(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn id(v: &Value) -> String {
    v["deployment"].as_str().unwrap().to_string()
}

/// How long until `host` on `edge` answers `want`, polled every 20 ms.
async fn until_status(edge: &Edge, host: &str, want: u16, bound: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let (s, _, _) = edge.get(host, "/").await;
        if s == want {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < bound,
            "{host} still answers {s} after {bound:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_deleted_deployment_is_gone_from_every_edge_within_two_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edges = [
        Edge::join(&coord, "fra", &tmp.path().join("e1")),
        Edge::join(&coord, "iad", &tmp.path().join("e2")),
    ];
    let site = tmp.path().join("site");
    write_site(&site, "v1");
    let prod = id(&coord.deploy(&site, "blog", true));
    write_site(&site, "preview");
    let preview = id(&coord.deploy(&site, "blog", false));
    let host = format!("{preview}--blog.localhost");
    for e in &edges {
        until_status(e, &host, 200, Duration::from_secs(20)).await;
    }
    let api = coord.api();

    // The production deployment cannot go: promote another first.
    let (s, e) = call(&api, Method::DELETE, &format!("/deployments/{prod}"), None).await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["code"], "is_production", "{e}");

    let (s, e) = call(
        &api,
        Method::DELETE,
        &format!("/deployments/{preview}"),
        None,
    )
    .await;
    assert_eq!(s, 204, "{e}");
    for e in &edges {
        let took = until_status(e, &host, 404, Duration::from_secs(2)).await;
        eprintln!("preview host gone after {took:?}");
    }
    let (s, _) = call(&api, Method::GET, &format!("/deployments/{preview}"), None).await;
    assert_eq!(s, 404);
    let (s, _) = call(
        &api,
        Method::DELETE,
        &format!("/deployments/{preview}"),
        None,
    )
    .await;
    assert_eq!(s, 404, "deleting twice");
    // Production is untouched.
    let (s, body, _) = edges[0].get("blog.localhost", "/").await;
    assert_eq!(s, 200);
    assert!(body.contains("v1"), "{body}");

    // The CLI does the same; a bad id is a clear error.
    write_site(&site, "second preview");
    let p2 = id(&coord.deploy(&site, "blog", false));
    let out = coord.cli_ok(&["deployments", "rm", &p2]);
    assert!(out.contains(&p2), "{out}");
    let out = coord.cli(&["deployments", "rm", "nope!"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn a_deleted_project_frees_its_name_hosts_and_running_build() {
    if !have("bwrap") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let coord = start(tmp.path());
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let api = coord.api();
    let site = tmp.path().join("site");
    write_site(&site, "old blog");
    let dep = id(&coord.deploy(&site, "blog", true));
    let (s, _) = call(
        &api,
        Method::PUT,
        "/projects/blog/env/API_KEY",
        Some(json!({"value": "k", "secret": true})),
    )
    .await;
    assert_eq!(s, 200);
    until_status(&edge, "blog.localhost", 200, Duration::from_secs(20)).await;

    // A build that would run for a long time, running when the project goes.
    let repo = tmp.path().join("repo");
    init(&repo);
    commit(&repo, &[("index.html", "x")], "page");
    let url = format!("file://{}", repo.display());
    let (s, e) = call(
        &api,
        Method::PUT,
        "/projects/blog/git",
        Some(json!({"url": url, "build_command": "echo started; sleep 1717", "output_dir": "."})),
    )
    .await;
    assert_eq!(s, 200, "{e}");
    let (_, b) = call(&api, Method::POST, "/projects/blog/builds", Some(json!({}))).await;
    let build = b["id"].as_str().unwrap().to_string();
    wait_status(&api, &build, "building", 60).await;

    // A deployment staged but not finalised when the project goes.
    let m = json!({"format": 1, "files": {"index.html": {"hash": protocol::BlobHash::of(b"late").to_hex(), "size": 4, "content_type": "text/html"}}});
    let (s, staged) = call(
        &api,
        Method::POST,
        "/projects/blog/deployments",
        Some(json!({"manifest": m, "target": "production"})),
    )
    .await;
    assert_eq!(s, 201, "{staged}");
    let late = staged["deployment"]["id"].as_str().unwrap().to_string();

    // The CLI asks for the name to be typed (or --yes).
    let out = coord.cli(&["projects", "rm", "blog"]);
    assert!(!out.status.success(), "deleting without --yes");
    let out = coord.cli_ok(&["projects", "rm", "blog", "--yes"]);
    assert!(out.contains("blog"), "{out}");

    until_status(&edge, "blog.localhost", 404, Duration::from_secs(2)).await;
    until_status(
        &edge,
        &format!("{dep}--blog.localhost"),
        404,
        Duration::from_secs(2),
    )
    .await;
    for path in [
        "/projects/blog".to_string(),
        format!("/deployments/{dep}"),
        format!("/builds/{build}"),
    ] {
        let (s, _) = call(&api, Method::GET, &path, None).await;
        assert_eq!(s, 404, "{path}");
    }
    // The racing upload finds nothing to finish.
    let (s, e) = call(
        &api,
        Method::POST,
        &format!("/deployments/{late}/finalize"),
        None,
    )
    .await;
    assert_eq!(s, 404, "{e}");
    // The build's sandbox is stopped.
    eventually(30, "the build's process to end", || async {
        let out = std::process::Command::new("pgrep")
            .args(["-f", "sleep 1717"])
            .output()
            .unwrap();
        (!out.status.success()).then_some(())
    })
    .await;

    // The name is free, and the new project starts empty.
    let (s, _) = call(
        &api,
        Method::POST,
        "/projects",
        Some(json!({"name": "blog"})),
    )
    .await;
    assert_eq!(s, 201);
    let (_, env) = call(&api, Method::GET, "/projects/blog/env", None).await;
    assert_eq!(env, json!([]), "{env}");
    let (_, list) = call(&api, Method::GET, "/projects/blog/deployments", None).await;
    assert_eq!(list["items"], json!([]), "{list}");
    write_site(&site, "new blog");
    coord.deploy(&site, "blog", true);
    eventually(20, "the new blog served", || async {
        let (s, body, _) = edge.get("blog.localhost", "/").await;
        (s == 200 && body.contains("new blog")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn quotas_refuse_with_a_typed_error_and_keep_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some("[quotas]\nprojects = 1\ndeployments = 2\nvariables = 1\n"),
    );
    let api = coord.api();
    let site = tmp.path().join("site");
    write_site(&site, "one");
    coord.deploy(&site, "blog", true);

    let quota = |v: &Value, what: &str| {
        assert_eq!(v["error"]["code"], "quota_exceeded", "{v}");
        assert_eq!(v["error"]["details"]["quota"], what, "{v}");
    };
    // A second project.
    let (s, e) = call(
        &api,
        Method::POST,
        "/projects",
        Some(json!({"name": "two"})),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    quota(&e, "projects");
    let (s, _) = call(&api, Method::GET, "/projects/two", None).await;
    assert_eq!(s, 404);

    // A third deployment: refused at staging, nothing kept.
    write_site(&site, "two");
    coord.deploy(&site, "blog", false);
    let m = json!({"format": 1, "files": {"index.html": {"hash": protocol::BlobHash::of(b"3").to_hex(), "size": 1, "content_type": "text/html"}}});
    let (s, e) = call(
        &api,
        Method::POST,
        "/projects/blog/deployments",
        Some(json!({"manifest": m, "target": "preview"})),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    quota(&e, "deployments");
    let (_, list) = call(&api, Method::GET, "/projects/blog/deployments", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    let out = coord.cli(&["deploy", site.to_str().unwrap(), "--project", "blog"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("quota"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A second variable.
    let (s, _) = call(
        &api,
        Method::PUT,
        "/projects/blog/env/A",
        Some(json!({"value": "1"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, e) = call(
        &api,
        Method::PUT,
        "/projects/blog/env/B",
        Some(json!({"value": "2"})),
    )
    .await;
    assert_eq!(s, 403, "{e}");
    quota(&e, "variables");
    let (_, env) = call(&api, Method::GET, "/projects/blog/env", None).await;
    let names: std::collections::BTreeSet<_> = env
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["A"], "{env}");
    // Changing the one that exists is fine.
    let (s, _) = call(
        &api,
        Method::PUT,
        "/projects/blog/env/A",
        Some(json!({"value": "changed"})),
    )
    .await;
    assert_eq!(s, 200);

    // The team sees its quotas and usage; only the instance owner raises them.
    let (_, me) = call(&api, Method::GET, "/me", None).await;
    let team = me["teams"][0]["id"].as_str().unwrap().to_string();
    let (s, q) = call(&api, Method::GET, &format!("/teams/{team}/quotas"), None).await;
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["quotas"]["deployments"], 2, "{q}");
    assert_eq!(q["usage"]["deployments"], 2, "{q}");
    assert_eq!(q["usage"]["projects"], 1, "{q}");
    let raised = json!({"projects": 1, "deployments": 3, "stored_bytes": 1u64 << 30, "variables": 1, "variable_bytes": 1024, "functions": 10});
    let (s, _) = call(
        &api,
        Method::PUT,
        &format!("/teams/{team}/quotas"),
        Some(raised.clone()),
    )
    .await;
    assert_eq!(s, 200);

    // Staged under the raised quota, then the quota is lowered before
    // the upload finishes: finalising removes the deployment.
    let (s, staged) = call(
        &api,
        Method::POST,
        "/projects/blog/deployments",
        Some(json!({"manifest": m, "target": "preview"})),
    )
    .await;
    assert_eq!(s, 201, "{staged}");
    let late = staged["deployment"]["id"].as_str().unwrap().to_string();
    let mut lowered = raised.clone();
    lowered["deployments"] = json!(2);
    call(
        &api,
        Method::PUT,
        &format!("/teams/{team}/quotas"),
        Some(lowered),
    )
    .await;
    let (s, e) = call(
        &api,
        Method::POST,
        &format!("/deployments/{late}/finalize"),
        None,
    )
    .await;
    assert_eq!(s, 403, "{e}");
    assert_eq!(e["error"]["code"], "quota_exceeded", "{e}");
    let (s, _) = call(&api, Method::GET, &format!("/deployments/{late}"), None).await;
    assert_eq!(s, 404, "a refused deployment is not kept");

    // Bad quota bodies are refused.
    let (s, e) = call(
        &api,
        Method::PUT,
        &format!("/teams/{team}/quotas"),
        Some(json!({"projects": -1})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = call(
        &api,
        Method::PUT,
        &format!("/teams/{team}/quotas"),
        Some(json!({"projects": 1, "bogus": 2})),
    )
    .await;
    assert_eq!(s, 400, "{e}");

    // Another account's owner may look at their own team's quotas but
    // not set them, and cannot run the garbage collection. (The first
    // account to sign up becomes the instance's owner; B is the second.)
    let http = http_client();
    let mut cookie = String::new();
    let mut csrf = String::new();
    for email in ["owner@example.com", "b@example.com"] {
        let r = http
            .post(format!("{}/api/v1/auth/signup", coord.url()))
            .json(&json!({"email": email, "name": "x", "password": "correct horse battery staple", "setup_token": coord.setup_token}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let b: Value = r.json().await.unwrap();
        csrf = b["csrf"].as_str().unwrap().to_string();
    }
    let me: Value = http
        .get(format!("{}/api/v1/me", coord.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bteam = me["teams"][0]["id"].as_str().unwrap().to_string();
    for (method, path, body) in [
        (
            Method::PUT,
            format!("/teams/{bteam}/quotas"),
            Some(raised.clone()),
        ),
        (Method::POST, "/admin/gc".to_string(), None),
    ] {
        let mut req = http
            .request(method, format!("{}/api/v1{path}", coord.url()))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = http
        .get(format!("{}/api/v1/teams/{bteam}/quotas", coord.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn retention_trims_history_and_the_sweep_keeps_what_is_served() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some("[retention]\nblob_grace = \"0s\"\nevery = \"1h\"\n"),
    );
    let api = coord.api();
    let site = tmp.path().join("site");
    let mut prods = Vec::new();
    for n in 0..4 {
        write_site(&site, &format!("release {n}"));
        prods.push(id(&coord.deploy(&site, "blog", true)));
    }
    write_site(&site, "a preview");
    let preview = id(&coord.deploy(&site, "blog", false));

    // Bad rules are refused; good ones are kept.
    let (s, e) = call(
        &api,
        Method::PUT,
        "/projects/blog/retention",
        Some(json!({"production_keep": 1_000_000})),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, r) = call(
        &api,
        Method::PUT,
        "/projects/blog/retention",
        Some(json!({"production_keep": 2})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["production_keep"], 2);
    assert_eq!(r["preview_days"], 30, "the instance default: {r}");

    let (s, report) = call(&api, Method::POST, "/admin/gc", None).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(report["deployments_deleted"], 2, "{report}");
    assert!(report["blobs_swept"].as_u64().unwrap() >= 2, "{report}");
    for (d, want) in [
        (&prods[0], 404),
        (&prods[1], 404),
        (&prods[2], 200),
        (&prods[3], 200),
        (&preview, 200),
    ] {
        let (s, _) = call(&api, Method::GET, &format!("/deployments/{d}"), None).await;
        assert_eq!(s, want, "{d}");
    }
    // A second pass finds nothing more.
    let (_, again) = call(&api, Method::POST, "/admin/gc", None).await;
    assert_eq!(again["deployments_deleted"], 0, "{again}");
    assert_eq!(again["blobs_swept"], 0, "{again}");

    // An edge joining now fetches every blob of what is kept.
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    eventually(20, "production served after the sweep", || async {
        let (s, body, _) = edge.get("blog.localhost", "/").await;
        (s == 200 && body.contains("release 3")).then_some(())
    })
    .await;
    let (s, body, _) = edge
        .get(&format!("{}--blog.localhost", prods[2]), "/")
        .await;
    assert_eq!(s, 200);
    assert!(body.contains("release 2"), "{body}");
    let out = coord.cli_ok(&["gc"]);
    assert!(out.contains("deleted"), "{out}");
}

/// A site of `index.html` (with `tag`) and `big.bin`: 400 KB of its own.
fn big_site(dir: &std::path::Path, tag: &str) -> Vec<u8> {
    write_site(dir, tag);
    let mut bytes = vec![0; 400_000];
    let mut h = blake3::Hasher::new();
    h.update(tag.as_bytes());
    h.finalize_xof().fill(&mut bytes);
    std::fs::write(dir.join("big.bin"), &bytes).unwrap();
    bytes
}

fn blob_file(edge: &Edge, content: &[u8]) -> std::path::PathBuf {
    let hex = blake3::hash(content).to_hex().to_string();
    edge.dir.join("blobs").join(&hex[..2]).join(hex)
}

/// The edge keeps what it serves on demand under `--cache-size`, least
/// recently used going first (and fetched again when asked for), and lets
/// a deleted deployment's bundle and blobs go after the grace period;
/// what production serves stays throughout.
#[tokio::test]
async fn an_edge_keeps_its_disk_under_the_cache_size_and_lets_deleted_bundles_go() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::launch_join(
        &coord,
        "fra",
        &tmp.path().join("e1"),
        &[
            "--cache-size",
            "1MiB",
            "--cache-grace",
            "1s",
            "--cache-interval",
            "200ms",
        ],
    )
    .unwrap();
    let site = tmp.path().join("site");
    let prod_big = big_site(&site, "production");
    coord.deploy(&site, "shop", true);
    let old_big = big_site(&site, "old preview");
    let old = id(&coord.deploy(&site, "shop", false));
    let new_big = big_site(&site, "new preview");
    let new = id(&coord.deploy(&site, "shop", false));
    let (old_host, new_host) = (
        format!("{old}--shop.localhost"),
        format!("{new}--shop.localhost"),
    );
    until_status(&edge, "shop.localhost", 200, Duration::from_secs(20)).await;

    // Three 400 KB bundles do not fit in 1 MiB: the one used least recently goes.
    let (s, body, _) = edge.get(&old_host, "/").await;
    assert_eq!((s, body.contains("old preview")), (200, true), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _, _) = edge.get(&new_host, "/").await;
    assert_eq!(s, 200);
    let status = eventually(10, "the old preview's bundle to be evicted", || async {
        edge.status()
            .filter(|s| s.cache.blobs_removed >= 1 && !blob_file(&edge, &old_big).exists())
    })
    .await;
    assert!(status.cache.bundles_evicted >= 1, "{:?}", status.cache);
    assert!(status.cache.blob_bytes <= 1 << 20, "{:?}", status.cache);
    assert!(
        blob_file(&edge, &prod_big).exists(),
        "production's blob went"
    );
    assert!(
        blob_file(&edge, &new_big).exists(),
        "the newest preview's blob went"
    );
    // Evicted is not gone: the next request fetches it again.
    let r = http_client()
        .get(format!("http://{}/big.bin", edge.http))
        .header("Host", &old_host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.unwrap() == old_big,
        "the evicted bundle came back wrong"
    );
    assert!(blob_file(&edge, &old_big).exists());

    // A deleted deployment's bundle and blob go once the grace period is over.
    let (s, e) = call(
        &coord.api(),
        Method::DELETE,
        &format!("/deployments/{old}"),
        None,
    )
    .await;
    assert_eq!(s, 204, "{e}");
    until_status(&edge, &old_host, 404, Duration::from_secs(5)).await;
    let before = status.cache.bundles_unreferenced;
    eventually(
        10,
        "the deleted deployment's bundle and blob to go",
        || async {
            edge.status().filter(|s| {
                s.cache.bundles_unreferenced > before && !blob_file(&edge, &old_big).exists()
            })
        },
    )
    .await;
    let (s, body, _) = edge.get("shop.localhost", "/").await;
    assert_eq!((s, body.contains("production")), (200, true), "{body}");
    assert!(blob_file(&edge, &prod_big).exists());
}
