//! Log drains end to end (issue 25): a real edge's function logs and
//! sampled request logs reach an HTTPS receiver as signed NDJSON in Vercel's
//! format, every line exactly once across a receiver outage; an endpoint
//! answering 500 or hanging is retried (bounded) and visible, and
//! serving never waits for it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use test_support::receiver::{Received, Receiver};

use crate::support::*;

const HOST: &str = "shop.localhost";
const SECRET: &str = "drain-secret-0123456789";

async fn hit(edge: &Edge, path: &str) -> (u16, Duration) {
    let t = Instant::now();
    let s = test_support::cluster::no_redirect_client()
        .get(format!("http://{}{path}", edge.http))
        .header("Host", HOST)
        .header("User-Agent", "drain-test/1")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    (s, t.elapsed())
}

/// Every line every batch carried, with the batch's signature checked.
fn lines(got: &[Received]) -> Vec<Value> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, SECRET.as_bytes());
    let key256 = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut out = Vec::new();
    for r in got {
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        let sig = hex::decode(r.header("x-vercel-signature").unwrap()).unwrap();
        ring::hmac::verify(&key, &r.body, &sig).expect("x-vercel-signature");
        let sig = hex::decode(r.header("x-outpost-signature").unwrap()).unwrap();
        ring::hmac::verify(&key256, &r.body, &sig).expect("x-outpost-signature");
        for l in String::from_utf8_lossy(&r.body).lines() {
            out.push(serde_json::from_str(l).unwrap());
        }
    }
    out
}

fn count(lines: &[Value], source: &str) -> usize {
    lines.iter().filter(|l| l["source"] == source).count()
}

async fn drain_state(api: &Api, id: &str) -> Value {
    api.get_json(&format!("/drains/{id}")).await
}

#[tokio::test]
async fn a_drain_gets_every_line_exactly_once_across_an_outage() {
    let tmp = tempfile::tempdir().unwrap();
    // An HTTPS receiver with a CA of its own, which the coordinator is
    // told to trust for delivery targets.
    let recv = Receiver::start_tls().await;
    let ca = tmp.path().join("receiver-ca.pem");
    std::fs::write(&ca, recv.ca_pem.as_ref().unwrap()).unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some(&format!(
            "[alerts]\nallow_private_targets = true\nca_file = \"{}\"\n",
            ca.display()
        )),
    );
    let api = coord.api();
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let site = tmp.path().join("site");
    write_site(&site, "shop");
    std::fs::create_dir_all(site.join("api")).unwrap();
    std::fs::copy(
        test_support::wasm_fixture("logs"),
        site.join("api/logs.wasm"),
    )
    .unwrap();
    coord.deploy(&site, "shop", true);
    eventually(60, "the site to be served", || async {
        (hit(&edge, "/").await.0 == 200).then_some(())
    })
    .await;

    let drain: Value = serde_json::from_str(&coord.cli_ok(&[
        "drains",
        "add",
        "shop",
        &recv.url("/drain"),
        "--source",
        "function",
        "--source",
        "request",
        "--secret",
        SECRET,
        "--json",
    ]))
    .unwrap();
    let id = drain["id"].as_str().unwrap().to_string();
    assert_eq!(drain["sources"], serde_json::json!(["function", "request"]));
    // The edge learns the project's request sample through its config.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Phase 1: five requests, seven function lines each.
    for _ in 0..5 {
        assert_eq!(hit(&edge, "/api/logs?n=3").await.0, 200);
    }
    eventually(60, "phase 1's lines", || async {
        let l = lines(&recv.received());
        (count(&l, "lambda") >= 35 && count(&l, "edge") >= 5).then_some(())
    })
    .await;

    // The receiver goes down; five more requests meanwhile, served as
    // fast as ever.
    recv.down(true);
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (s, t) = hit(&edge, "/api/logs?n=3").await;
        assert_eq!(s, 200);
        slowest = slowest.max(t);
    }
    assert!(
        slowest < Duration::from_secs(2),
        "serving waited: {slowest:?}"
    );
    let failing = eventually(60, "the drain to show its failure", || async {
        let d = drain_state(&api, &id).await;
        (d["status"] == "failing" && d["failures"].as_i64() >= Some(1)).then_some(d)
    })
    .await;
    assert!(failing["last_error"].as_str().is_some(), "{failing}");
    assert!(failing["next_attempt_at"].as_i64().is_some(), "{failing}");
    let listed = coord.cli_ok(&["drains", "ls", "shop"]);
    assert!(listed.contains("failing"), "{listed}");

    // Back up: everything arrives, each line once.
    recv.down(false);
    let all = eventually(90, "every line after the outage", || async {
        let l = lines(&recv.received());
        (count(&l, "lambda") >= 70 && count(&l, "edge") >= 10).then_some(l)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = {
        let again = lines(&recv.received());
        assert_eq!(again.len(), all.len(), "nothing more came");
        again
    };
    let mut ids = BTreeMap::new();
    for l in &all {
        *ids.entry(l["id"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(ids.values().all(|&n| n == 1), "a line came twice");
    let functions: Vec<&Value> = all.iter().filter(|l| l["source"] == "lambda").collect();
    assert_eq!(functions.len(), 70, "ten requests, seven lines each");
    // Ten distinct requests, each with its seven lines.
    let mut per_request: BTreeMap<String, usize> = BTreeMap::new();
    for l in &functions {
        *per_request
            .entry(l["requestId"].as_str().unwrap().into())
            .or_default() += 1;
        assert!(l["projectId"].as_str().is_some_and(|p| !p.is_empty()));
        assert!(l["deploymentId"].as_str().is_some());
        assert!(l["timestamp"].as_i64().is_some());
    }
    assert_eq!(per_request.len(), 10);
    assert!(per_request.values().all(|&n| n == 7), "{per_request:?}");
    let stderr = functions.iter().filter(|l| l["level"] == "error").count();
    assert_eq!(stderr, 30);
    // Request logs: Vercel's proxy object, the function requests among them.
    let requests: Vec<&Value> = all.iter().filter(|l| l["source"] == "edge").collect();
    let logs_requests: Vec<&&Value> = requests
        .iter()
        .filter(|l| l["proxy"]["path"] == "/api/logs?n=3")
        .collect();
    assert_eq!(logs_requests.len(), 10, "{requests:?}");
    let r = logs_requests[0];
    assert_eq!(r["statusCode"], 200);
    assert_eq!(r["proxy"]["method"], "GET");
    assert_eq!(r["proxy"]["host"], HOST);
    assert_eq!(r["proxy"]["userAgent"][0], "drain-test/1");
    assert_eq!(r["proxy"]["region"], "fra");
    // The same request id in the request's log and its function's lines.
    let rid = r["requestId"].as_str().unwrap();
    assert!(
        per_request.contains_key(rid),
        "{rid} not among {:?}",
        per_request.keys()
    );
    let d = drain_state(&api, &id).await;
    assert_eq!(d["status"], "ok", "{d}");
    assert_eq!(d["delivered"].as_u64(), Some(all.len() as u64), "{d}");

    // An endpoint answering 500: retried, visible, then delivered once.
    recv.answer(500);
    let before = recv.received().len();
    assert_eq!(hit(&edge, "/api/logs?n=1").await.0, 200);
    let d = eventually(60, "a 500 to show", || async {
        let d = drain_state(&api, &id).await;
        (d["last_status"] == 500).then_some(d)
    })
    .await;
    assert_eq!(d["status"], "failing");
    recv.answer(200);
    eventually(60, "delivery after the 500s", || async {
        let d = drain_state(&api, &id).await;
        (d["status"] == "ok").then_some(())
    })
    .await;
    // The refused batches came (answered 500) and were sent again.
    assert!(recv.received()[before..].iter().any(|r| r.status == 500));
    let accepted = lines(&recv.accepted());
    assert_eq!(count(&accepted, "lambda"), 73, "the three new lines once");

    // A hanging endpoint: each attempt is bounded, then delivered.
    recv.hang(true);
    let started = Instant::now();
    assert_eq!(hit(&edge, "/api/logs?n=1").await.0, 200);
    let d = eventually(60, "a hanging endpoint to show", || async {
        let d = drain_state(&api, &id).await;
        (d["status"] == "failing").then_some(d)
    })
    .await;
    assert!(d["last_error"].as_str().unwrap().contains("10 s"), "{d}");
    assert!(started.elapsed() < Duration::from_secs(40));
    recv.hang(false);
    eventually(60, "delivery after the hang", || async {
        let d = drain_state(&api, &id).await;
        (d["status"] == "ok").then_some(())
    })
    .await;

    // Over everything the endpoint accepted: each line exactly once, and
    // the drain counted what it delivered.
    let accepted = lines(&recv.accepted());
    let mut seen = std::collections::BTreeSet::new();
    for l in &accepted {
        assert!(
            seen.insert(l["id"].as_str().unwrap().to_string()),
            "twice: {l}"
        );
    }
    assert_eq!(count(&accepted, "lambda"), 76);
    let d = drain_state(&api, &id).await;
    assert_eq!(d["delivered"].as_u64(), Some(accepted.len() as u64), "{d}");

    // Removing the drain stops it.
    let r = api
        .req(Method::DELETE, &format!("/drains/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        api.get_json("/projects/shop/drains").await,
        serde_json::json!([])
    );
}
