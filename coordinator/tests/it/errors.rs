//! Error tracking end to end (issue 25): functions on a real edge that
//! panic, time out and answer 500 become grouped issues with counts, the
//! panic's backtrace function names and stderr, and the sample request's
//! id; a resolved issue comes back as regressed with the next event; the
//! CLI shows and resolves them.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const HOST: &str = "shop.localhost";

async fn hit(edge: &Edge, path: &str) -> u16 {
    test_support::cluster::no_redirect_client()
        .get(format!("http://{}{path}", edge.http))
        .header("Host", HOST)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn issues(api: &Api, query: &str) -> Vec<Value> {
    let v = api
        .get_json(&format!("/projects/shop/errors?{query}"))
        .await;
    v.as_array().cloned().unwrap_or_else(|| panic!("{v}"))
}

fn by_kind<'a>(list: &'a [Value], kind: &str) -> Option<&'a Value> {
    list.iter().find(|i| i["kind"] == kind)
}

#[tokio::test]
async fn function_failures_become_grouped_issues_that_regress() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let api = coord.api();
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));

    let site = tmp.path().join("site");
    write_site(&site, "shop");
    std::fs::create_dir_all(site.join("api")).unwrap();
    for f in ["panic", "loop", "headers"] {
        std::fs::copy(
            test_support::wasm_fixture(f),
            site.join(format!("api/{f}.wasm")),
        )
        .unwrap();
    }
    std::fs::write(
        site.join("outpost.toml"),
        "[[functions]]\nroute = \"/api/loop\"\ncomponent = \"api/loop.wasm\"\ntimeout = \"1s\"\n",
    )
    .unwrap();
    coord.deploy(&site, "shop", true);
    eventually(60, "the site to be served", || async {
        (hit(&edge, "/").await == 200).then_some(())
    })
    .await;

    for _ in 0..3 {
        assert_eq!(hit(&edge, "/api/panic").await, 500);
    }
    for _ in 0..2 {
        assert_eq!(hit(&edge, "/api/loop").await, 504);
        assert_eq!(hit(&edge, "/api/headers?status=503").await, 503);
    }
    // A 200 is no error.
    assert_eq!(hit(&edge, "/api/headers?status=200").await, 200);

    let list = eventually(60, "three issues with their counts", || async {
        let list = issues(&api, "").await;
        let counts =
            ["panic", "timeout", "http_5xx"].map(|k| by_kind(&list, k).map(|i| i["count"].clone()));
        (list.len() == 3 && counts == [Some(json!(3)), Some(json!(2)), Some(json!(2))])
            .then_some(list)
    })
    .await;
    let panic = by_kind(&list, "panic").unwrap();
    assert_eq!(panic["source"], "function");
    assert_eq!(panic["state"], "unresolved");
    assert_eq!(panic["severity"], "high");
    assert_eq!(panic["title"], "panic: boom from wasm", "{panic}");
    assert!(
        panic["culprit"].as_str().unwrap().contains("/api/panic"),
        "{panic}"
    );
    // The guest's own function, from the component's name section.
    let frames = panic["sample"]["frames"].to_string();
    assert!(frames.contains("checkout_total"), "{panic}");
    let detail = &panic["sample"]["detail"];
    assert_eq!(detail["path"], "/api/panic");
    assert_eq!(detail["method"], "GET");
    assert_eq!(detail["status"], 500);
    assert!(
        detail["stderr"].to_string().contains("panicked at"),
        "{detail}"
    );
    let request_id = detail["request_id"].as_str().unwrap().to_string();
    assert!(!request_id.is_empty());
    // The sample's request id is the one its function logs carry.
    let logs = eventually(30, "the panic's log lines under its request id", || async {
        let logs = api
            .get_json(&format!("/projects/shop/logs?request_id={request_id}"))
            .await;
        logs["items"].as_array().filter(|i| !i.is_empty()).cloned()
    })
    .await;
    assert!(logs.iter().all(|l| l["request_id"] == request_id.as_str()));
    assert!(
        logs.iter()
            .any(|l| l["line"].as_str().unwrap_or("").contains("panicked")),
        "{logs:?}"
    );
    let trend: i64 = panic["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(trend, 3, "this hour's bucket holds the three: {panic}");
    let timeout = by_kind(&list, "timeout").unwrap();
    assert_eq!(timeout["severity"], "medium");
    let http = by_kind(&list, "http_5xx").unwrap();
    assert_eq!(http["title"], "http_5xx: answered 503", "{http}");

    // Issue detail: deployments and events.
    let id = panic["id"].as_str().unwrap().to_string();
    let full = api.get_json(&format!("/errors/{id}")).await;
    assert_eq!(full["deployments"].as_array().unwrap().len(), 1, "{full}");
    assert!(!full["events"].as_array().unwrap().is_empty(), "{full}");

    // Resolve it through the CLI; it leaves the open list.
    let out = coord.cli_ok(&["errors", "resolve", &id]);
    assert!(out.contains("resolved"), "{out}");
    let open = issues(&api, "").await;
    assert!(by_kind(&open, "panic").is_none(), "{open:?}");
    assert_eq!(issues(&api, "state=resolved").await.len(), 1);
    // A new event reopens it as regressed, with the count going on.
    assert_eq!(hit(&edge, "/api/panic").await, 500);
    let regressed = eventually(60, "the panic issue to regress", || async {
        let list = issues(&api, "").await;
        by_kind(&list, "panic")
            .filter(|i| i["state"] == "regressed" && i["count"] == 4)
            .cloned()
    })
    .await;
    assert_eq!(regressed["id"], id.as_str());

    // Ignored stays ignored (counted, never reopened).
    let timeout_id = timeout["id"].as_str().unwrap();
    let r = api
        .req(Method::PATCH, &format!("/errors/{timeout_id}"))
        .json(&json!({"state": "ignored", "severity": "low"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hit(&edge, "/api/loop").await, 504);
    eventually(60, "the ignored issue to count the new timeout", || async {
        let v = api.get_json(&format!("/errors/{timeout_id}")).await;
        (v["count"] == 3).then_some(v)
    })
    .await;
    let v = api.get_json(&format!("/errors/{timeout_id}")).await;
    assert_eq!(
        (v["state"].as_str(), v["severity"].as_str()),
        (Some("ignored"), Some("low"))
    );

    // The CLI's list and its JSON.
    let listed = coord.cli_ok(&["errors", "shop", "--state", "all"]);
    assert!(listed.contains("boom from wasm"), "{listed}");
    let json: Value = serde_json::from_str(&coord.cli_ok(&["errors", "shop", "--json"])).unwrap();
    assert_eq!(
        json.as_array().unwrap().len(),
        2,
        "regressed panic and the 5xx: {json}"
    );

    // Bad input: a state or severity nobody knows, an empty change, a
    // limit out of range, an unknown parameter.
    for (method, path, body, code) in [
        (
            Method::PATCH,
            format!("/errors/{id}"),
            json!({"state": "closed"}),
            "invalid_state",
        ),
        (
            Method::PATCH,
            format!("/errors/{id}"),
            json!({"severity": "urgent"}),
            "invalid_severity",
        ),
        (
            Method::PATCH,
            format!("/errors/{id}"),
            json!({}),
            "empty_update",
        ),
        (
            Method::PATCH,
            format!("/errors/{id}"),
            json!({"state": "regressed"}),
            "invalid_state",
        ),
        (
            Method::GET,
            "/projects/shop/errors?limit=0".into(),
            Value::Null,
            "invalid_limit",
        ),
        (
            Method::GET,
            "/projects/shop/errors?state=done".into(),
            Value::Null,
            "invalid_state",
        ),
        (
            Method::GET,
            "/projects/shop/errors?sort=x".into(),
            Value::Null,
            "invalid_query",
        ),
    ] {
        let mut req = api.req(method.clone(), &path);
        if !body.is_null() {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 400, "{method} {path} {body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    let r = api
        .req(Method::GET, "/errors/nosuchissue")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// Every file under `dir` named `name`.
fn find_files(dir: &std::path::Path, name: &str, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            find_files(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn an_edge_that_cannot_load_a_bundle_files_an_edge_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let coord_dir = tmp.path().join("coord");
    let coord = Coordinator::start(&coord_dir, None);
    let api = coord.api();
    let site = tmp.path().join("site");
    write_site(&site, "broken");
    coord.deploy(&site, "shop", true);
    // The coordinator's copy of about.html goes bad before any edge has it.
    let about = std::fs::read(site.join("about.html")).unwrap();
    let hex = protocol::BlobHash::of(&about).to_hex();
    let mut files = Vec::new();
    find_files(&coord_dir, &hex, &mut files);
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::write(&files[0], b"not what the manifest says").unwrap();

    let _edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let issue = eventually(60, "an edge issue for the bundle", || async {
        issues(&api, "")
            .await
            .into_iter()
            .find(|i| i["kind"] == "sync_failed")
    })
    .await;
    assert_eq!(issue["source"], "edge", "{issue}");
    assert_eq!(issue["severity"], "high");
    assert!(
        issue["culprit"].as_str().unwrap().starts_with("bundle "),
        "{issue}"
    );
    assert!(issue["sample"]["detail"]["node"].is_string(), "{issue}");
    // Its retries fold into the same issue.
    eventually(30, "the retries counted", || async {
        let v = api
            .get_json(&format!("/errors/{}", issue["id"].as_str().unwrap()))
            .await;
        (v["count"].as_i64() > Some(1)).then_some(())
    })
    .await;
    let all = issues(&api, "").await;
    assert_eq!(all.len(), 1, "{all:#?}");
}
