//! Prometheus metrics end to end: a real coordinator (`GET /metrics` on its
//! API, behind `[metrics] token`) and a real edge (`--metrics
//! 127.0.0.1:0`) serve traffic; both expositions pass `promtool check
//! metrics` and carry the key series with sane values; then a real
//! Prometheus scrapes both every second until its query API has them.

use std::collections::BTreeMap;

use crate::support::*;
use test_support::prometheus::{self, Target, TestPrometheus};

const TOKEN: &str = "metrics-0123456789abcdef";

/// Whether `promtool` and `prometheus` are here; says so loudly when not.
fn tools() -> bool {
    let here = prometheus::available();
    if !here {
        eprintln!(
            "\n\n!!!!! SKIPPING promtool and Prometheus checks: prometheus / promtool are not installed (Debian package prometheus) !!!!!\n\n"
        );
    }
    here
}

/// `series → value` of an exposition (comments skipped).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

async fn get_metrics(url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut req = http_client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ctype, r.text().await.unwrap())
}

#[tokio::test]
async fn coordinator_and_edge_metrics_lint_and_reach_prometheus() {
    let have_tools = tools();
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some(&format!("[metrics]\ntoken = \"{TOKEN}\"\n")),
    );
    let edge = Edge::launch_join(
        &coord,
        "fra",
        &tmp.path().join("edge"),
        &["--metrics", "127.0.0.1:0"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let edge_metrics = edge.metrics.expect("the edge says where its metrics are");
    assert!(
        node_status(&edge.dir)
            .unwrap()
            .metrics_addr
            .is_some_and(|a| a == edge_metrics.to_string()),
        "status.json names the metrics address"
    );

    let site = tmp.path().join("site");
    write_site(&site, "metrics");
    coord.deploy(&site, "shop", true);
    eventually(20, "the site to be served", || async {
        (edge.get("shop.localhost", "/").await.0 == 200).then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(edge.get("shop.localhost", "/about").await.0, 200);
    }
    assert_eq!(edge.get("shop.localhost", "/nope").await.0, 404);

    // The edge: every request counted, state copied in by the status loop.
    let edge_url = format!("http://{edge_metrics}/metrics");
    let edge_text = eventually(
        20,
        "the edge's metrics to show the link and the site",
        || async {
            let (status, ctype, text) = get_metrics(&edge_url, None).await;
            assert_eq!(status, 200, "{text}");
            assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
            let s = samples(&text);
            (s.get("outpost_edge_coordinator_connected") == Some(&1.0)
                && s.get("outpost_edge_blobs_fetched_total{source=\"coordinator\"}")
                    .is_some_and(|v| *v >= 1.0))
            .then_some(text)
        },
    )
    .await;
    let s = samples(&edge_text);
    let h1 = |class: &str| {
        value(
            &s,
            &format!(
                "outpost_edge_http_requests_total{{class=\"{class}\",proto=\"h1\",tls=\"false\"}}"
            ),
        )
    };
    assert!(h1("2xx") >= 6.0, "{edge_text}");
    assert!(h1("4xx") >= 1.0, "{edge_text}");
    assert!(value(&s, "outpost_edge_http_response_body_bytes_total") > 0.0);
    assert_eq!(
        value(&s, "outpost_edge_http_request_duration_seconds_count"),
        s.iter()
            .filter(|(k, _)| k.starts_with("outpost_edge_http_requests_total{"))
            .map(|(_, v)| v)
            .sum::<f64>(),
        "every counted request has its duration"
    );
    assert!(value(&s, "outpost_edge_config_version") >= 1.0);
    assert_eq!(value(&s, "outpost_edge_config_lag_versions"), 0.0);
    assert!(value(&s, "outpost_edge_config_applied_timestamp_seconds") > 1.6e9);
    assert!(value(&s, "outpost_edge_function_instances_max") >= 1.0);
    assert_eq!(value(&s, "outpost_edge_mesh_members{state=\"down\"}"), 0.0);
    for absent in ["shop", "localhost", "/about"] {
        assert!(
            !s.keys().any(|k| k.contains(absent)),
            "no label may carry a host or a path ({absent}):\n{edge_text}"
        );
    }
    let (status, _, _) = get_metrics(&format!("http://{edge_metrics}/other"), None).await;
    assert_eq!(status, 404);

    // The coordinator: guarded by its token, counted by route template.
    let coord_url = format!("{}/metrics", coord.url());
    let (status, _, body) = get_metrics(&coord_url, None).await;
    assert_eq!(status, 401, "no token, even from loopback: {body}");
    let (status, _, _) = get_metrics(&coord_url, Some("metrics-0123456789abcdeX")).await;
    assert_eq!(status, 401, "a wrong token");
    let coord_text = eventually(20, "the coordinator to count the edge", || async {
        let (status, ctype, text) = get_metrics(&coord_url, Some(TOKEN)).await;
        assert_eq!(status, 200, "{text}");
        assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
        (samples(&text).get("outpost_coordinator_edges_connected") == Some(&1.0)).then_some(text)
    })
    .await;
    let c = samples(&coord_text);
    assert!(value(&c, "outpost_coordinator_config_version") >= 1.0);
    assert!(value(&c, "outpost_coordinator_db_pool_connections") >= 1.0);
    assert_eq!(
        value(&c, "outpost_coordinator_builds{state=\"queued\"}"),
        0.0
    );
    assert!(value(&c, "outpost_coordinator_blob_sent_bytes_total") > 0.0);
    let templated = |k: &&String| {
        k.starts_with("outpost_coordinator_http_requests_total{")
            && k.contains("route=\"/api/v1/projects/{project}")
            && k.contains("class=\"2xx\"")
    };
    assert!(
        c.keys().any(|k| templated(&k)),
        "the deploy's requests by route template:\n{coord_text}"
    );
    assert!(
        !c.keys().any(|k| k.contains("shop")),
        "no route label carries a project's name:\n{coord_text}"
    );
    assert!(
        c.contains_key(
            "outpost_coordinator_http_requests_total{method=\"GET\",route=\"/metrics\",class=\"4xx\"}"
        ),
        "the refused scrapes are counted:\n{coord_text}"
    );

    if !have_tools {
        return;
    }
    for (who, text) in [("edge", &edge_text), ("coordinator", &coord_text)] {
        prometheus::check_metrics(text).unwrap_or_else(|e| panic!("{who}: {e}\n{text}"));
    }

    // A real Prometheus scrapes both, the coordinator with its token.
    let prom = TestPrometheus::start(
        &tmp.path().join("prometheus"),
        &[
            Target {
                job: "edge".into(),
                addr: edge_metrics,
                bearer_token: None,
            },
            Target {
                job: "coordinator".into(),
                addr: coord.api,
                bearer_token: Some(TOKEN.into()),
            },
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let found = poll(60, || async {
        let edge = prom
            .query("outpost_edge_http_requests_total{class=\"2xx\",job=\"edge\"}")
            .await
            .ok()?;
        let coordinator = prom
            .query("outpost_coordinator_http_requests_total{job=\"coordinator\"}")
            .await
            .ok()?;
        let up = prom.query("up == 1").await.ok()?;
        (!edge.is_empty() && !coordinator.is_empty() && up.len() == 2).then_some(edge)
    })
    .await;
    let Some(edge_series) = found else {
        panic!(
            "Prometheus never had both targets' series; targets: {:?}\nlog:\n{}",
            prom.targets().await,
            prom.log_text()
        );
    };
    let scraped: f64 = edge_series
        .iter()
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .sum();
    assert!(scraped >= 6.0, "{edge_series:?}");
}

#[tokio::test]
async fn without_a_token_metrics_answer_loopback_only() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let url = format!("{}/metrics", coord.url());
    let (status, ctype, text) = get_metrics(&url, None).await;
    assert_eq!(status, 200, "{text}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert!(
        text.contains("# TYPE outpost_coordinator_edges_connected gauge"),
        "{text}"
    );
    // Through a proxy on this host the peer is loopback, but the client is
    // not: refused.
    let r = http_client()
        .get(&url)
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Every answer carries the security headers, this one too.
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    if tools() {
        prometheus::check_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}
