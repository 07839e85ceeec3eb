//! API rate limits (issue 25): `X-RateLimit-*` on every answer, a 429
//! with a correct `Retry-After` past the limit, budgets per credential
//! and per route class, per address for sign-in, and a 10,000-file deploy
//! under the default limits without a single 429.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

fn header(r: &reqwest::Response, name: &str) -> Option<u64> {
    r.headers().get(name)?.to_str().ok()?.parse().ok()
}

#[tokio::test]
async fn limits_answer_headers_then_429_with_retry_after() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some("[rate_limits]\napi = \"5/1m\"\nauth = \"3/1m\"\n"),
    );
    let api = coord.api();
    for left in (0..5).rev() {
        let r = api.req(Method::GET, "/projects").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit"), Some(5));
        assert_eq!(header(&r, "x-ratelimit-remaining"), Some(left));
        assert!(header(&r, "x-ratelimit-reset").is_some());
    }
    let r = api.req(Method::GET, "/projects").send().await.unwrap();
    assert_eq!(r.status(), 429);
    // One request comes back every 12 s (5 a minute).
    let retry = header(&r, "retry-after").unwrap();
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some(0));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited", "{v}");
    // Health is not counted (load balancers poll it).
    let health = api
        .http
        .get(format!("{}/health", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().get("x-ratelimit-limit").is_none());

    // Another credential has its own budget.
    let token: Value = api
        .req(Method::POST, "/tokens")
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // (That POST was refused too: the first token's budget is spent.)
    assert_eq!(token["error"]["code"], "rate_limited", "{token}");

    // Requests without a credential are counted per address: sign-in is
    // its own class.
    for i in 0..4 {
        let r = api
            .http
            .post(format!("{}/auth/login", api.base))
            .json(&json!({"email": "nobody@example.test", "password": "wrong password"}))
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        if i < 3 {
            assert_eq!(s, 401, "attempt {i}");
        } else {
            assert_eq!(s, 429, "attempt {i}");
            assert!(header(&r, "retry-after").is_some());
        }
    }
    // A bad token is counted by address, under the api limit.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = api
            .http
            .get(format!("{}/projects", api.base))
            .bearer_auth("opt_not_a_real_token")
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429]);
}

#[tokio::test]
async fn a_ten_thousand_file_deploy_is_not_throttled_by_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    // The defaults, spelled out (the harness raises them otherwise).
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some("[rate_limits]\napi = \"100/1m\"\nuploads = \"20000/1m\"\n"),
    );
    let site = tmp.path().join("site");
    std::fs::create_dir_all(site.join("docs")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>docs</h1>").unwrap();
    for i in 0..9_999 {
        std::fs::write(
            site.join(format!("docs/page-{i:05}.html")),
            format!("<p>page {i}</p>"),
        )
        .unwrap();
    }
    let out = coord.deploy(&site, "docs", true);
    // Any 429 would have failed the CLI (`cli_ok` panics).
    assert_eq!(out["files"], 10_000, "{out}");
    assert!(out["uploaded_blobs"].as_u64().unwrap() >= 10_000, "{out}");
    // The ordinary budget was barely touched.
    let r = coord
        .api()
        .req(Method::GET, "/projects")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-ratelimit-remaining").unwrap() >= 90);
}
