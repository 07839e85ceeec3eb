//! Routing rules over real HTTP: a bundle whose manifest carries redirects,
//! rewrites, header rules, clean URLs, a trailing-slash policy and a proxy
//! rewrite to an upstream started here, served by the real edge server.

use crate::support::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edge_node::http::{serve_http, EdgeHttp, Limits, ProxyLimits};
use edge_node::state::{Routing, ServingState};
use edge_node::store::blobs::BlobStore;
use protocol::config::RequestLogPolicy;
use protocol::routing::{from_sources, OutpostRouting};
use protocol::wire::RequestLogRecord;
use protocol::{BlobHash, FileEntry, Manifest, RoutingConfig};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

const FILES: &[(&str, &str)] = &[
    ("index.html", "home"),
    ("about.html", "about"),
    ("app.js", "console.log(1)"),
    ("404.html", "site not found"),
    ("en/404.html", "en not found"),
    ("pagethatexists.html", "i exist"),
    ("forced.html", "forced but present"),
    ("manual/intro.html", "manual intro"),
];

const HEADERS: &str = "\
/*
  X-Frame-Options: DENY
/app.js
  Cache-Control: public, max-age=60
";

const VERCEL: &str = r#"{ "cleanUrls": true, "trailingSlash": false }"#;

fn redirects(upstream: SocketAddr) -> String {
    format!(
        "\
/old            /new                 301
/blog/*         /news/:splat         302
/store id=:id   /items/:id           301
/pagethatexists /elsewhere           301
/forced         /elsewhere           301!
/docs/*         /manual/:splat       200
/en/*           /en/404.html         404
/up/*           http://{upstream}/:splat   200
/*              /index.html          200
"
    )
}

struct Edge {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
}

async fn start_edge(sites: Vec<(&str, RoutingConfig)>, proxy: ProxyLimits) -> Edge {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start_edge_on(listener, sites, proxy).await
}

async fn start_edge_on(
    listener: TcpListener,
    sites: Vec<(&str, RoutingConfig)>,
    proxy: ProxyLimits,
) -> Edge {
    start_logged_edge(listener, sites, proxy, BTreeMap::new())
        .await
        .0
}

/// An edge whose projects in `request_logs` have a request log drain, and
/// the records it ships.
async fn start_logged_edge(
    listener: TcpListener,
    sites: Vec<(&str, RoutingConfig)>,
    proxy: ProxyLimits,
    request_logs: BTreeMap<String, RequestLogPolicy>,
) -> (Edge, mpsc::Receiver<RequestLogRecord>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (store, _corrupt) = BlobStore::open(&dir.path().join("blobs")).unwrap();
    let mut files = BTreeMap::new();
    for (path, body) in FILES {
        let hash = BlobHash::of(body.as_bytes());
        store
            .write(
                &hash,
                body.len() as u64,
                Chunks(vec![Bytes::from_static(body.as_bytes())]),
            )
            .await
            .unwrap();
        let ct = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "text/html; charset=utf-8"
        };
        files.insert(
            path.to_string(),
            FileEntry {
                hash,
                size: body.len() as u64,
                content_type: ct.into(),
                variants: vec![],
            },
        );
    }
    let mut hosts = std::collections::HashMap::new();
    for (host, routing) in sites {
        let mut manifest = Manifest::new(files.clone());
        manifest.routing = routing;
        manifest.validate(&Default::default()).unwrap();
        hosts.insert(host.to_string(), site(host, manifest, &[], &[]));
    }
    let state = Arc::new(ServingState::default());
    state.replace(Routing {
        config_version: 1,
        hosts,
        certs: BTreeMap::new(),
        request_logs: Arc::new(request_logs),
        ..Default::default()
    });
    let limits = Limits {
        proxy,
        ..Limits::default()
    };
    let app = EdgeHttp::with_limits(state, store, limits);
    let (sink, records) = edge_node::requestlog::channel(&Default::default());
    app.set_request_logs(sink);
    let (shutdown, rx) = watch::channel(false);
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_http(listener, app, rx));
    let edge = Edge {
        addr,
        _dir: dir,
        _shutdown: shutdown,
    };
    (edge, records)
}

/// A tiny HTTP/1.1 upstream that describes the request it received.
async fn start_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = format!(
                    "{}\n--body--\n{}",
                    String::from_utf8_lossy(&buf[..head_end]),
                    String::from_utf8_lossy(&buf[head_end..])
                );
                let resp = format!(
                    "HTTP/1.1 201 Created\r\nContent-Length: {}\r\nX-Upstream: yes\r\nKeep-Alive: timeout=5\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn client(edge: &Edge) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20));
    for host in ["rules.localhost", "slash.localhost"] {
        b = b.resolve(host, edge.addr);
    }
    b.build().unwrap()
}

fn url(edge: &Edge, host: &str, path: &str) -> String {
    format!("http://{host}:{}{path}", edge.addr.port())
}

async fn get(c: &reqwest::Client, u: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = c.get(u).send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn rules_config(upstream: SocketAddr) -> RoutingConfig {
    from_sources(
        None,
        Some(VERCEL),
        Some(&redirects(upstream)),
        Some(HEADERS),
    )
    .unwrap()
}

fn slash_config() -> RoutingConfig {
    let outpost = OutpostRouting {
        trailing_slash: Some(true),
        ..OutpostRouting::default()
    };
    from_sources(Some(outpost), None, None, None).unwrap()
}

#[tokio::test]
async fn redirects_rewrites_and_headers() {
    let upstream = start_upstream().await;
    let edge = start_edge(
        vec![
            ("rules.localhost", rules_config(upstream)),
            ("slash.localhost", slash_config()),
        ],
        ProxyLimits {
            allow_private: true,
            ..ProxyLimits::default()
        },
    )
    .await;
    let c = client(&edge);
    let rules = |p: &str| url(&edge, "rules.localhost", p);

    // (path, status, Location or body, expected)
    let redirects: &[(&str, u16, &str)] = &[
        ("/old", 301, "/new"),
        ("/old?a=1&b=two", 301, "/new?a=1&b=two"),
        ("/blog/2024/hello", 302, "/news/2024/hello"),
        ("/store?id=42&utm=x", 301, "/items/42"),
        ("/forced", 301, "/elsewhere"),
        ("/about.html", 308, "/about"),
        ("/about.html?x=1", 308, "/about?x=1"),
        ("/about/", 308, "/about"),
    ];
    for (path, status, location) in redirects {
        let (s, h, body) = get(&c, &rules(path)).await;
        assert_eq!(s.as_u16(), *status, "{path}");
        assert_eq!(header(&h, "location"), Some(*location), "{path}");
        assert_eq!(
            header(&h, "x-outpost-deployment"),
            Some("dpl-rules.localhost")
        );
        assert!(body.is_empty(), "{path}: {body:?}");
    }

    let served: &[(&str, u16, &str)] = &[
        ("/", 200, "home"),
        ("/about", 200, "about"),
        ("/app.js", 200, "console.log(1)"),
        // Not forced: the existing page shadows the redirect.
        ("/pagethatexists", 200, "i exist"),
        // Splat rewrite to another bundle path.
        ("/docs/intro", 200, "manual intro"),
        // Custom 404 rewrite: the page, with 404.
        ("/en/missing", 404, "en not found"),
        // SPA fallback for paths that exist nowhere.
        ("/dashboard/settings?tab=2", 200, "home"),
        ("/store", 200, "home"),
    ];
    for (path, status, body) in served {
        let (s, h, got) = get(&c, &rules(path)).await;
        assert_eq!((s.as_u16(), got.as_str()), (*status, *body), "{path}");
        assert_eq!(header(&h, "x-frame-options"), Some("DENY"), "{path}");
    }

    let (_, h, _) = get(&c, &rules("/app.js")).await;
    assert_eq!(header(&h, "cache-control"), Some("public, max-age=60"));
    let (_, h, _) = get(&c, &rules("/about")).await;
    assert_ne!(header(&h, "cache-control"), Some("public, max-age=60"));

    // trailing_slash = true on another site.
    let slash = |p: &str| url(&edge, "slash.localhost", p);
    let (s, h, _) = get(&c, &slash("/about?q=1")).await;
    assert_eq!(s.as_u16(), 308);
    assert_eq!(header(&h, "location"), Some("/about/?q=1"));
    for (path, body) in [
        ("/about/", "about"),
        ("/app.js", "console.log(1)"),
        ("/", "home"),
    ] {
        let (s, _, got) = get(&c, &slash(path)).await;
        assert_eq!((s.as_u16(), got.as_str()), (200, body), "{path}");
    }
    // No rule matched and nothing exists: the bundle's own 404 page.
    let (s, h, got) = get(&c, &slash("/nope/")).await;
    assert_eq!((s.as_u16(), got.as_str()), (404, "site not found"));
    assert!(header(&h, "x-frame-options").is_none());
}

#[tokio::test]
async fn proxy_rewrites_reach_the_upstream() {
    let upstream = start_upstream().await;
    let edge = start_edge(
        vec![("rules.localhost", rules_config(upstream))],
        ProxyLimits {
            allow_private: true,
            max_request_body: 1024,
            ..ProxyLimits::default()
        },
    )
    .await;
    let c = client(&edge);
    let u = url(&edge, "rules.localhost", "/up/hello/wörld?x=1");
    let r = c
        .get(&u)
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Forwarded-Host", "spoofed.example")
        .header("X-Private", "secret")
        .header("Connection", "X-Private")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(header(r.headers(), "x-upstream"), Some("yes"));
    assert!(header(r.headers(), "keep-alive").is_none());
    let seen = r.text().await.unwrap().to_lowercase();
    let want = [
        "get /hello/w%c3%b6rld?x=1 http/1.1".to_string(),
        format!("host: {upstream}"),
        "x-forwarded-for: 203.0.113.9, 127.0.0.1".to_string(),
        "x-forwarded-proto: http".to_string(),
        format!("x-forwarded-host: rules.localhost:{}", edge.addr.port()),
    ];
    for w in &want {
        assert!(
            seen.contains(w.as_str()),
            "upstream saw:\n{seen}\nmissing {w:?}"
        );
    }
    assert!(!seen.contains("spoofed.example"), "{seen}");
    assert!(!seen.contains("x-private"), "{seen}");

    let r = c
        .post(url(&edge, "rules.localhost", "/up/echo"))
        .body("the payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let seen = r.text().await.unwrap();
    assert!(
        seen.to_lowercase().starts_with("post /echo http/1.1"),
        "{seen}"
    );
    assert!(seen.ends_with("--body--\nthe payload"), "{seen}");

    let r = c
        .post(url(&edge, "rules.localhost", "/up/big"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
}

#[tokio::test]
async fn proxy_refuses_private_upstreams_unless_allowed() {
    let upstream = start_upstream().await;
    let edge = start_edge(
        vec![("rules.localhost", rules_config(upstream))],
        ProxyLimits::default(),
    )
    .await;
    let c = client(&edge);
    let (s, _, body) = get(&c, &url(&edge, "rules.localhost", "/up/anything")).await;
    assert_eq!(s.as_u16(), 502);
    assert!(!body.contains("--body--"), "{body}");
}

/// A rewrite that proxies to the site's own host (here the edge itself, by
/// address) is forwarded once; the second time round it is a 508, not a
/// loop that ties up the edge.
#[tokio::test]
async fn a_proxy_rewrite_to_itself_ends_after_one_hop() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let me = listener.local_addr().unwrap();
    let redirects = format!("/*  http://{me}/:splat  200\n");
    let config = from_sources(None, None, Some(&redirects), None).unwrap();
    let edge = start_edge_on(
        listener,
        vec![("127.0.0.1", config)],
        ProxyLimits {
            allow_private: true,
            ..ProxyLimits::default()
        },
    )
    .await;
    let c = reqwest::Client::new();
    let started = std::time::Instant::now();
    let r = c
        .get(format!("http://{}/x", edge.addr))
        .send()
        .await
        .unwrap();
    // The first hop is proxied; the request it makes arrives with a hop
    // counted and gets the 508, which the first hop relays.
    assert_eq!(r.status().as_u16(), 508);
    assert!(r.text().await.unwrap().contains("Loop detected"));
    assert!(started.elapsed() < Duration::from_secs(5));
    // A request that says it was proxied already is not proxied again.
    let r = c
        .get(format!("http://{}/x", edge.addr))
        .header("x-outpost-proxy-hops", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 508);
}

/// Requests of a project with a request log drain carry an id, and the
/// sampled ones are logged under it, whatever answered them (a file, a
/// redirect, a page, the proxy); a project without one is left alone.
#[tokio::test]
async fn request_logs_sample_a_projects_requests_under_their_ids() {
    let upstream = start_upstream().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let policies = [
        ("rules.localhost", RequestLogPolicy::ALL),
        ("slash.localhost", RequestLogPolicy::ALL / 2),
    ]
    .into_iter()
    .map(|(p, sample_ppm)| (p.to_string(), RequestLogPolicy { sample_ppm }))
    .collect();
    let (edge, mut records) = start_logged_edge(
        listener,
        vec![
            ("rules.localhost", rules_config(upstream)),
            ("slash.localhost", slash_config()),
            ("plain.localhost", slash_config()),
        ],
        ProxyLimits {
            allow_private: true,
            ..ProxyLimits::default()
        },
        policies,
    )
    .await;
    let c = {
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        for host in ["rules.localhost", "slash.localhost", "plain.localhost"] {
            b = b.resolve(host, edge.addr);
        }
        b.build().unwrap()
    };
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(10), records.recv())
            .await
            .expect("a request log within 10 s")
            .expect("the channel is open")
    };

    // Everything of a project sampled at 100%.
    for (method, path, status) in [
        ("GET", "/", 200),
        ("GET", "/old?a=1&b=two", 301),
        ("GET", "/en/missing", 404),
        ("HEAD", "/app.js", 200),
        ("POST", "/about", 405),
        ("GET", "/up/hello?x=1", 201),
    ] {
        let r = c
            .request(method.parse().unwrap(), url(&edge, "rules.localhost", path))
            .header("user-agent", "drain-test/1")
            .header("referer", "https://ref.example/")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let id = header(r.headers(), "x-request-id")
            .unwrap_or_else(|| panic!("{method} {path}: no x-request-id"))
            .to_string();
        let bytes = r.bytes().await.unwrap().len() as u64;
        let rec = next().await;
        rec.validate().unwrap();
        assert_eq!(rec.request_id, id, "{method} {path}");
        assert_eq!(
            (rec.method.as_str(), rec.path.as_str(), rec.status),
            (method, path, status)
        );
        assert_eq!(
            (rec.project.as_str(), rec.deployment.as_str()),
            ("rules.localhost", "dpl-rules.localhost")
        );
        assert_eq!(
            (rec.scheme.as_str(), rec.host.as_str()),
            ("http", "rules.localhost")
        );
        assert_eq!(
            (rec.user_agent.as_str(), rec.referer.as_str()),
            ("drain-test/1", "https://ref.example/")
        );
        if method != "HEAD" {
            assert_eq!(rec.bytes, bytes, "{method} {path}");
        }
        let u64_id = u64::from_str_radix(&id, 16).unwrap();
        assert!(RequestLogPolicy::samples(RequestLogPolicy::ALL, u64_id));
    }

    // Half of another: the responses with an id are exactly the logged
    // ones, and the id is in the sample.
    let mut ids = Vec::new();
    for i in 0..40 {
        let r = c
            .get(url(&edge, "slash.localhost", &format!("/about/?n={i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        if let Some(id) = header(r.headers(), "x-request-id") {
            let n = u64::from_str_radix(id, 16).unwrap();
            assert!(RequestLogPolicy::samples(RequestLogPolicy::ALL / 2, n));
            ids.push((id.to_string(), format!("/about/?n={i}")));
        }
    }
    assert!(!ids.is_empty() && ids.len() < 40, "{} of 40", ids.len());
    for (id, path) in &ids {
        let rec = next().await;
        assert_eq!((&rec.request_id, &rec.path), (id, path));
        assert_eq!(rec.project, "slash.localhost");
    }

    // A project without a drain: no id, no log.
    let r = c
        .get(url(&edge, "plain.localhost", "/about/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(header(r.headers(), "x-request-id").is_none());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(records.try_recv().is_err(), "nothing else was logged");
}
