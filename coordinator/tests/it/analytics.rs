//! Traffic analytics end to end (issue 24): real edges count what they
//! serve, spool each closed minute and ship it over QUIC; the coordinator
//! answers exactly those counts, per edge and in total, also across a
//! coordinator outage and an edge restart with a full spool.

use reqwest::Method;
use serde_json::Value;

use crate::support::*;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const BOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
const HOST: &str = "shop.localhost";

async fn hit(edge: &Edge, path: &str, ua: &str, referer: Option<&str>) -> u16 {
    let mut r = test_support::cluster::no_redirect_client()
        .get(format!("http://{}{path}", edge.http))
        .header("Host", HOST)
        .header("User-Agent", ua);
    if let Some(f) = referer {
        r = r.header("Referer", f);
    }
    r.send().await.unwrap().status().as_u16()
}

async fn report(api: &Api, query: &str) -> (u16, Value) {
    let resp = api
        .req(Method::GET, &format!("/projects/shop/analytics?{query}"))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// Polls until the project's requests reach `n` (a minute must close first).
async fn counted(api: &Api, n: u64) -> Value {
    eventually(150, &format!("{n} requests counted"), || async {
        let (s, r) = report(api, "since=1h").await;
        (s == 200 && r["requests"] == n).then_some(r)
    })
    .await
}

/// Waits until `edge` serves the site, with one request (from a bot, so
/// it counts only in requests and bots) that reaches the site.
async fn warm(edge: &Edge) {
    eventually(60, "the site to be served", || async {
        (hit(edge, "/", BOT, None).await == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn analytics_count_exactly_what_the_edges_served_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let coord_dir = tmp.path().join("coord");
    let mut coord = Coordinator::start(&coord_dir, None);
    let api = coord.api();
    let a_dir = tmp.path().join("edge-a");
    let mut a = Edge::join(&coord, "fra", &a_dir);
    let b = Edge::join(&coord, "nyc", &tmp.path().join("edge-b"));

    let site = tmp.path().join("site");
    write_site(&site, "shop");
    std::fs::create_dir_all(site.join("api")).unwrap();
    for f in ["hello", "panic", "loop"] {
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
    warm(&a).await;
    warm(&b).await;

    // Known requests: two visitors on edge a, one of them again on edge b.
    let expect = [
        (hit(&a, "/", CHROME, None).await, 200),
        (
            hit(&a, "/about", CHROME, Some("https://news.example/x")).await,
            200,
        ),
        (hit(&a, "/assets/app.css", CHROME, None).await, 200),
        (hit(&a, "/", FIREFOX, None).await, 200),
        (hit(&a, "/missing", FIREFOX, None).await, 404),
        (hit(&a, "/", BOT, None).await, 200),
        (hit(&a, "/api/hello", CHROME, None).await, 200),
        (hit(&a, "/api/panic", CHROME, None).await, 500),
        (hit(&a, "/api/loop", CHROME, None).await, 504),
        (hit(&b, "/", CHROME, None).await, 200),
        (hit(&b, "/about", BOT, None).await, 200),
    ];
    for (i, (got, want)) in expect.iter().enumerate() {
        assert_eq!(got, want, "request {i}");
    }
    // 11 and the two warm-up hits.
    let r = counted(&api, 13).await;
    assert_eq!(r["page_views"], 4, "{r}");
    assert_eq!(r["bots"], 4, "{r}");
    assert_eq!(
        r["visitors"], 2,
        "one visitor through two edges counts once: {r}"
    );
    assert_eq!(r["status"]["200"], 10, "{r}");
    assert_eq!(r["status"]["404"], 1, "{r}");
    assert_eq!(r["status"]["500"], 1, "{r}");
    assert_eq!(r["status"]["504"], 1, "{r}");
    assert_eq!(r["status_classes"]["2xx"], 10, "{r}");
    let top = |list: &str| r["top"][list].clone();
    assert!(top("pages").to_string().contains("[\"/\",3]"), "{r}");
    assert_eq!(
        top("not_found"),
        serde_json::json!([["/missing", 1]]),
        "{r}"
    );
    assert_eq!(
        top("referrers"),
        serde_json::json!([["news.example", 1]]),
        "{r}"
    );
    assert!(
        top("browsers").to_string().contains("[\"Chrome\",3]"),
        "{r}"
    );
    let f = &r["functions"];
    assert_eq!(
        (
            f["/api/hello"]["invocations"].as_u64(),
            f["/api/hello"]["errors"].as_u64()
        ),
        (Some(1), Some(0)),
        "{r}"
    );
    assert_eq!(
        (
            f["/api/panic"]["invocations"].as_u64(),
            f["/api/panic"]["errors"].as_u64()
        ),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(f["/api/loop"]["timeouts"], 1, "{r}");
    assert!(f["/api/loop"]["p50_ms"].as_f64().unwrap() >= 900.0, "{r}");
    assert!(r["duration_ms"]["p99"].as_f64().unwrap() > 0.0, "{r}");
    // Per edge, per region.
    let (s, by_node) = report(&api, "since=1h&metric=requests&group_by=region").await;
    assert_eq!(s, 200);
    assert_eq!(
        by_node["result"],
        serde_json::json!([{"key": "fra", "value": 10.0}, {"key": "nyc", "value": 3.0}]),
        "{by_node}"
    );
    // The CLI's JSON carries the same numbers.
    let cli: Value =
        serde_json::from_str(&coord.cli_ok(&["analytics", "shop", "--since", "1h", "--json"]))
            .unwrap();
    for k in [
        "requests",
        "page_views",
        "visitors",
        "bots",
        "bytes",
        "status",
        "functions",
    ] {
        assert_eq!(cli[k], r[k], "{k}");
    }

    // Bad queries: typed 400s.
    for q in [
        "metric=revenue",
        "since=1h&metric=requests&group_by=shoe_size",
        "since=100000d",
        "from=10&to=5",
        "since=30d&granularity=minute",
        "since=1h&since=2h",
        "colour=red",
    ] {
        let (s, e) = report(&api, q).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("invalid_query")),
            "{q}: {e}"
        );
    }

    // The coordinator goes away; edge a serves, stops with records in its
    // spool (and a damaged file beside them), starts again and serves more.
    let quic = coord.quic.to_string();
    coord.proc.kill9();
    for _ in 0..3 {
        assert_eq!(hit(&a, "/", CHROME, None).await, 200);
    }
    assert!(a.proc.terminate().success(), "{}", a.proc.log_text());
    let spool = a_dir.join("analytics");
    let records = std::fs::read_dir(&spool).unwrap().count();
    assert!(records >= 1, "the stop wrote the open minute to the spool");
    std::fs::write(
        spool.join("000000000060-m-00000000000000000001.rec"),
        b"OPA1garbage",
    )
    .unwrap();
    let a = Edge::launch_run(&coord.bins, &a_dir, &[]).unwrap();
    warm(&a).await;
    for _ in 0..2 {
        assert_eq!(hit(&a, "/", CHROME, None).await, 200);
    }
    let coord = Coordinator::start_with(&coord_dir, None, &quic);
    let api = coord.api();
    // 13 before, 3 during the outage, the warm-up and 2 after the restart.
    let r = counted(&api, 19).await;
    assert_eq!(r["page_views"], 4 + 5, "{r}");
    // Nothing is counted twice once everything has shipped.
    eventually(30, "the spool to drain", || async {
        let left = std::fs::read_dir(&spool)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".rec")
            })
            .count();
        (left == 0).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, again) = report(&api, "since=1h").await;
    assert_eq!(again["requests"], 19, "{again}");
    assert!(
        a.proc.log_text().contains("damaged spool record"),
        "the damaged file is reported: {}",
        a.proc.log_text()
    );
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A flood of distinct paths stays within the key budget (overflow counted
/// as "(other)", memory flat), and countries come from the edge's GeoIP
/// database.
#[tokio::test]
async fn a_flood_of_distinct_paths_stays_bounded_and_countries_come_from_geoip() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let api = coord.api();
    let geoip = tmp.path().join("countries.mmdb");
    test_support::geoip::write_country_db(&geoip, &[("127.0.0.0/8", "DE")]).unwrap();
    let g = geoip.display().to_string();
    let edge = Edge::launch_join(
        &coord,
        "fra",
        &tmp.path().join("edge"),
        &[
            "--analytics-max-keys",
            "500",
            "--metrics",
            "127.0.0.1:0",
            "--geoip",
            &g,
        ],
    )
    .unwrap();
    let site = tmp.path().join("site");
    write_site(&site, "shop");
    coord.deploy(&site, "shop", true);
    warm(&edge).await;
    assert_eq!(hit(&edge, "/", CHROME, None).await, 200);

    let before = rss(edge.proc.child.id());
    const FLOOD: u64 = 5000;
    let client = test_support::cluster::no_redirect_client();
    let addr = edge.http;
    futures::future::join_all((0..16u64).map(|w| {
        let client = client.clone();
        async move {
            for i in (w..FLOOD).step_by(16) {
                let r = client
                    .get(format!("http://{addr}/flood/{i}/{}", "x".repeat(200)))
                    .header("Host", HOST)
                    .header("User-Agent", FIREFOX)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 404);
            }
        }
    }))
    .await;
    let grown = rss(edge.proc.child.id()).saturating_sub(before);
    assert!(grown < 32 << 20, "the edge grew by {grown} bytes");
    let metrics = reqwest::get(format!("http://{}/metrics", edge.metrics.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let keys: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("outpost_edge_analytics_keys "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0);
    assert!(
        (0.0..=500.0).contains(&keys),
        "keys in use: {keys}\n{metrics}"
    );

    // Everything counted, the overflow under "(other)"; the country from
    // the database.
    let r = counted(&api, FLOOD + 2).await;
    let not_found: Vec<(String, u64)> =
        serde_json::from_value(r["top"]["not_found"].clone()).unwrap();
    let other = not_found
        .iter()
        .find(|(k, _)| k == "(other)")
        .map_or(0, |(_, n)| *n);
    // A flood across a minute boundary has two budgets.
    assert!(other > FLOOD - 2 * 500, "{not_found:?}");
    assert_eq!(r["status"]["404"], FLOOD, "{r}");
    assert_eq!(r["top"]["countries"], serde_json::json!([["DE", 1]]), "{r}");
}
