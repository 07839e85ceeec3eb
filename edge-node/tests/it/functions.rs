//! WebAssembly functions over real sockets, with the real fixture
//! components (`fixtures/wasm`, built by `test-support`): dispatch, streaming
//! in both directions (h1 and h2), env isolation, traps, timeouts, memory,
//! limits, logs, outbound policy and the compiled-code cache.

use crate::support::*;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edge_node::functions::{FunctionLog, FunctionRuntime, LogStream, RuntimeConfig};
use edge_node::http::{serve_http, serve_https, EdgeHttp, Limits};
use edge_node::state::{Routing, ServingState};
use edge_node::store::blobs::BlobStore;
use protocol::config::RequestLogPolicy;
use protocol::errors::FailureKind;
use protocol::functions::FunctionEntry;
use protocol::wire::RequestLogRecord;
use protocol::{BlobHash, FileEntry, Manifest};
use reqwest::StatusCode;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

const BLOG: &str = "blog.localhost";
const DOCS: &str = "docs.localhost";
// Generous so the "others still answer" checks hold on a loaded CI machine.
const LOOP_TIMEOUT_MS: u32 = 3000;

/// Compiled artefacts shared by the tests of this binary (each test has its
/// own runtime; compiling every fixture for every test would dominate the
/// run). The cache test uses a directory of its own.
fn shared_cache_dir() -> std::path::PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
        .path()
        .to_path_buf()
}

fn entry(component: BlobHash, size: u64) -> FunctionEntry {
    FunctionEntry {
        component,
        size,
        timeout_ms: 10_000,
        memory_bytes: 64 * 1024 * 1024,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    http: SocketAddr,
    https: SocketAddr,
    ca: CertificateDer<'static>,
    runtime: Arc<FunctionRuntime>,
    logs: mpsc::Receiver<FunctionLog>,
    /// Request logs: every request of `docs` (its project has a drain).
    request_logs: mpsc::Receiver<RequestLogRecord>,
    components: HashMap<&'static str, BlobHash>,
    blobs: Arc<BlobStore>,
    _shutdown: watch::Sender<bool>,
}

impl Fixture {
    async fn start() -> Fixture {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut RuntimeConfig)) -> Fixture {
        let mut config = RuntimeConfig::new(std::path::Path::new("/nonexistent"));
        config.cache_dir = shared_cache_dir();
        tune(&mut config);
        Self::start_config(config).await
    }

    async fn start_config(config: RuntimeConfig) -> Fixture {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let fixtures = test_support::wasm_fixtures();
        let dir = tempfile::tempdir().unwrap();
        let (store, _corrupt) = BlobStore::open(&dir.path().join("blobs")).unwrap();

        let mut components = HashMap::new();
        let mut sizes = HashMap::new();
        for name in test_support::FIXTURES {
            let bytes = Bytes::from(std::fs::read(fixtures.join(format!("{name}.wasm"))).unwrap());
            let hash = BlobHash::of(&bytes);
            store
                .write(&hash, bytes.len() as u64, Chunks(vec![bytes.clone()]))
                .await
                .unwrap();
            components.insert(*name, hash);
            sizes.insert(*name, bytes.len() as u64);
        }
        let f = |name: &str| entry(components[name], sizes[name]);
        // Not a component at all: the edge must refuse it cleanly.
        let junk = Bytes::from_static(b"\0asm junk that will never compile");
        let junk_hash = BlobHash::of(&junk);
        store
            .write(&junk_hash, junk.len() as u64, Chunks(vec![junk.clone()]))
            .await
            .unwrap();

        let index = Bytes::from_static(b"<h1>static home</h1>");
        let index_hash = BlobHash::of(&index);
        store
            .write(&index_hash, index.len() as u64, Chunks(vec![index.clone()]))
            .await
            .unwrap();
        let mut blog = Manifest::new(
            [(
                "index.html".to_string(),
                FileEntry {
                    hash: index_hash,
                    size: index.len() as u64,
                    content_type: "text/html".into(),
                    variants: vec![],
                },
            )]
            .into(),
        );
        blog.functions = [
            ("/api/hello".to_string(), f("hello")),
            ("/api/echo".to_string(), f("echo")),
            ("/api/users/:id".to_string(), f("echo")),
            ("/api/headers".to_string(), f("headers")),
            ("/api/env".to_string(), f("env")),
            ("/api/panic".to_string(), f("panic")),
            (
                "/api/loop".to_string(),
                FunctionEntry {
                    timeout_ms: LOOP_TIMEOUT_MS,
                    ..f("loop")
                },
            ),
            (
                "/api/memhog".to_string(),
                FunctionEntry {
                    memory_bytes: 32 * 1024 * 1024,
                    ..f("memhog")
                },
            ),
            ("/api/slow".to_string(), f("slow")),
            ("/api/outbound".to_string(), f("outbound")),
            ("/api/logs".to_string(), f("logs")),
            ("/api/count".to_string(), f("count")),
            ("/api/residue".to_string(), f("residue")),
            (
                "/api/broken".to_string(),
                entry(junk_hash, junk.len() as u64),
            ),
        ]
        .into();
        let mut docs = Manifest::new(BTreeMap::new());
        docs.functions = [
            ("/api/env".to_string(), f("env")),
            ("/api/outbound".to_string(), f("outbound")),
        ]
        .into();
        // A rewrite to a function: its request log shows the client's path.
        docs.routing =
            protocol::routing::from_sources(None, None, Some("/alias  /api/env  200\n"), None)
                .unwrap();

        let (ca, key) = certificates();
        let state = Arc::new(ServingState::default());
        state.replace(Routing {
            config_version: 1,
            hosts: [
                (
                    BLOG.to_string(),
                    site(
                        "blog",
                        blog,
                        &[("GREETING", "hello from blog"), ("API_KEY", "blog-secret")],
                        &["localhost", "127.0.0.1"],
                    ),
                ),
                (
                    DOCS.to_string(),
                    site("docs", docs, &[("DOCS_ONLY", "docs-value")], &[]),
                ),
            ]
            .into(),
            certs: [(BLOG.to_string(), key)].into(),
            request_logs: Arc::new(
                [(
                    "docs".to_string(),
                    RequestLogPolicy {
                        sample_ppm: RequestLogPolicy::ALL,
                    },
                )]
                .into(),
            ),
            ..Default::default()
        });

        let (log_tx, logs) = mpsc::channel(1024);
        let runtime = Arc::new(FunctionRuntime::new(config, log_tx).unwrap());
        let app =
            EdgeHttp::with_functions(state, store.clone(), Limits::default(), runtime.clone());
        let (sink, request_logs) = edge_node::requestlog::channel(&Default::default());
        app.set_request_logs(sink);
        let (shutdown, rx) = watch::channel(false);
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let https = https_listener.local_addr().unwrap();
        tokio::spawn(serve_http(http_listener, app.clone(), rx.clone()));
        tokio::spawn(serve_https(https_listener, app, rx));
        Fixture {
            _dir: dir,
            http,
            https,
            ca,
            runtime,
            logs,
            request_logs,
            components,
            blobs: store,
            _shutdown: shutdown,
        }
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .resolve(BLOG, self.http)
            .resolve(DOCS, self.http)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn h2_client(&self) -> reqwest::Client {
        let config = test_support::tls_client_config([self.ca.clone()], &[b"h2"]);
        reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .resolve(BLOG, self.https)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{BLOG}:{}{path}", self.http.port())
    }

    fn docs_url(&self, path: &str) -> String {
        format!("http://{DOCS}:{}{path}", self.http.port())
    }

    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let r = self.client().get(self.url(path)).send().await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        (status, headers, r.text().await.unwrap())
    }

    /// Log lines of one request, waiting until `want` have arrived.
    async fn logs_of(&mut self, request_id: &str, want: usize) -> Vec<FunctionLog> {
        self.logs_until(request_id, |got| got.len() >= want).await
    }

    /// Log lines of one request, waiting (up to 10 s) until `done` says so.
    async fn logs_until(
        &mut self,
        request_id: &str,
        done: impl Fn(&[FunctionLog]) -> bool,
    ) -> Vec<FunctionLog> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(&got) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.logs.recv()).await {
                Ok(Some(l)) if l.request_id == request_id => got.push(l),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        got
    }
}

fn request_id(h: &reqwest::header::HeaderMap) -> String {
    let id = hdr(h, "x-request-id").expect("every function response has a request id");
    assert_eq!(id.len(), 16, "{id}");
    id.to_string()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_and_static_side_by_side() {
    let fx = Fixture::start().await;
    let (status, h, body) = fx.get("/api/hello").await;
    assert_eq!(status, 200);
    assert_eq!(body, "hello from wasm");
    assert_eq!(hdr(&h, "content-type"), Some("text/plain"));
    // A body that completes right after the header usually goes out with a
    // Content-Length; if the guest was slower (scheduling) it streams.
    // Either way the length, when given, is right.
    if let Some(len) = hdr(&h, "content-length") {
        assert_eq!(len, "15");
    } else {
        assert_eq!(hdr(&h, "transfer-encoding"), Some("chunked"));
    }
    assert_eq!(hdr(&h, "x-outpost-deployment"), Some("dpl-blog"));
    request_id(&h);
    // Requests get fresh instances and distinct ids.
    let (_, h2, body2) = fx.get("/api/hello").await;
    assert_eq!(body2, "hello from wasm");
    assert_ne!(request_id(&h), request_id(&h2));
    // Static files of the same bundle still serve, GET/HEAD only.
    let (status, h, body) = fx.get("/").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "<h1>static home</h1>")
    );
    assert!(hdr(&h, "x-request-id").is_none());
    let r = fx.client().post(fx.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Functions take every method.
    let r = fx
        .client()
        .delete(fx.url("/api/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = fx.client().head(fx.url("/api/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 0);

    // A component that does not load: a clean 503, and no recompiling on
    // every request.
    for _ in 0..3 {
        let (status, h, body) = fx.get("/api/broken").await;
        assert_eq!(status, 503);
        assert!(body.contains(&request_id(&h)));
    }
    assert_eq!(fx.runtime.stats().load_failures, 1);

    let stats = fx.runtime.stats();
    assert!(stats.instantiations >= 4, "{stats:?}");
    let m = fx.runtime.snapshot();
    let hello = m.iter().find(|m| m.route == "/api/hello").unwrap();
    assert_eq!((hello.invocations, hello.errors), (4, 0));
    assert_eq!(hello.component, fx.components["hello"]);
    assert_eq!(hello.latency.count, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_sees_method_path_query_and_streams_large_bodies() {
    let fx = Fixture::start().await;
    let r = fx
        .client()
        .put(fx.url("/api/users/42?x=1&y=%20z"))
        .header("content-type", "application/x-test")
        .header("x-custom", "1")
        // Hop-by-hop: about this connection, not for the function.
        .header("te", "trailers")
        .header("keep-alive", "timeout=5")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(hdr(&h, "x-echo-method"), Some("PUT"));
    assert_eq!(hdr(&h, "x-echo-path"), Some("/api/users/42"));
    assert_eq!(hdr(&h, "x-echo-query"), Some("x=1&y=%20z"));
    assert_eq!(
        hdr(&h, "x-echo-authority"),
        Some(format!("{BLOG}:{}", fx.http.port()).as_str())
    );
    assert_eq!(hdr(&h, "content-type"), Some("application/x-test"));
    // `te` is ours to drop (hop-by-hop); wasi:http itself hides `host`
    // and `keep-alive` from guests.
    assert_eq!(
        hdr(&h, "x-echo-header-names"),
        Some("accept,content-length,content-type,x-custom")
    );
    assert_eq!(r.text().await.unwrap(), "hi");

    // 5 MiB, streamed in from the client as chunks (no content-length) and
    // back out chunked.
    let big = pattern(5 * 1024 * 1024 + 17);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(100_000).map(|c| Ok(c.to_vec())).collect();
    let r = fx
        .client()
        .post(fx.url("/api/echo"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-length").is_none());
    let got = r.bytes().await.unwrap();
    assert!(got == big, "echoed {} bytes, sent {}", got.len(), big.len());

    // The same over HTTP/2 with TLS, with a content-length this time.
    let r = fx
        .h2_client()
        .post(format!("https://{BLOG}:{}/api/echo", fx.https.port()))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert!(got == big, "h2 echoed {} bytes", got.len());

    // Keep-alive still works after a streamed exchange.
    let c = fx.client();
    for _ in 0..3 {
        let r = c
            .post(fx.url("/api/echo"))
            .body("again")
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_response_streams_chunk_by_chunk() {
    let fx = Fixture::start().await;
    let started = Instant::now();
    let mut r = fx
        .client()
        .get(fx.url("/api/slow?ms=200"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"chunk 0\n");
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    let total = started.elapsed();
    assert_eq!(
        String::from_utf8(rest).unwrap(),
        "chunk 1\nchunk 2\nchunk 3\nchunk 4\n"
    );
    assert!(total >= Duration::from_millis(800), "{total:?}");
    assert!(
        first_at + Duration::from_millis(500) < total,
        "first chunk at {first_at:?} of {total:?}: not streamed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_headers_from_the_function() {
    let fx = Fixture::start().await;
    let (status, h, body) = fx
        .get("/api/headers?status=418&h=x-one:1&h=cache-control:max-age=60")
        .await;
    assert_eq!(status, 418);
    assert_eq!(body, "status 418");
    assert_eq!(hdr(&h, "x-one"), Some("1"));
    assert_eq!(hdr(&h, "cache-control"), Some("max-age=60"));
    request_id(&h);
    let (status, _, _) = fx.get("/api/headers?status=201").await;
    assert_eq!(status, 201);
    // A function may not forge our request id.
    let (_, h, _) = fx.get("/api/headers?h=x-request-id:forged").await;
    assert_ne!(hdr(&h, "x-request-id"), Some("forged"));
}

/// An instance that returns while still holding its outparam or an
/// unfinished body is answered at once (its store goes, and with it what
/// it held), not left waiting for its deadline or forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_returning_with_handles_open_is_answered() {
    let fx = Fixture::start().await;
    // Answered inside the function's 10 s deadline, with our id. The
    // first call also compiles the component (slow in a debug build on a
    // loaded machine: 5 s was missed there), so the bound sits just under
    // the deadline: what it tells apart is "answered" from "held until
    // the deadline".
    let answered = |leak: &'static str| {
        let fx = &fx;
        async move {
            let (status, h, body) = tokio::time::timeout(
                Duration::from_secs(9),
                fx.get(&format!("/api/headers?leak={leak}")),
            )
            .await
            .expect("answered before the deadline");
            request_id(&h);
            (status, body)
        }
    };
    let (status, body) = answered("outparam").await;
    assert_eq!(status, 500);
    assert!(body.contains("without sending a response"), "{body}");
    // Dropped unanswered while the instance goes on (it waits on a clock,
    // so it has left the connection's task by the time it returns).
    let (status, body) = answered("late").await;
    assert_eq!(status, 500);
    assert!(body.contains("without sending a response"), "{body}");
    // A body left unfinished ends, as written, when its store goes.
    let (status, body) = answered("body").await;
    assert_eq!(status, 200);
    assert_eq!(body, "status 200");
    // The node goes on.
    let (status, _, body) = fx.get("/api/headers").await;
    assert_eq!(status, 200);
    assert_eq!(body, "status 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_is_the_sites_own_and_nothing_else() {
    let fx = Fixture::start().await;
    let (status, _, body) = fx.get("/api/env?name=GREETING").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from blog"));
    let (_, _, all) = fx.get("/api/env").await;
    let mut keys: Vec<&str> = all.lines().filter_map(|l| l.split('=').next()).collect();
    keys.sort();
    assert_eq!(keys, vec!["API_KEY", "GREETING"], "{all}");
    for host_var in ["PATH", "HOME", "CARGO_MANIFEST_DIR"] {
        let (status, _, _) = fx.get(&format!("/api/env?name={host_var}")).await;
        assert_eq!(status, 404, "{host_var} leaked into the function");
    }
    // Another project's function sees its own variables only.
    let c = fx.client();
    let r = c.get(fx.docs_url("/api/env")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "DOCS_ONLY=docs-value\n");
    let r = c
        .get(fx.docs_url("/api/env?name=API_KEY"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_a_500_with_request_id_and_the_node_goes_on() {
    let mut fx = Fixture::start().await;
    let (status, h, body) = fx.get("/api/panic").await;
    assert_eq!(status, 500);
    let id = request_id(&h);
    assert!(body.contains(&id), "{body}");
    assert_eq!(hdr(&h, "cache-control"), Some("no-store"));
    let (status, _, body) = fx.get("/api/hello").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from wasm"));
    // The panic message reached the function's logs, then our note.
    let lines = fx
        .logs_until(&id, |l| l.iter().any(|l| l.line.starts_with("[outpost]")))
        .await;
    assert!(
        lines
            .iter()
            .any(|l| l.stream == LogStream::Stderr && l.line.contains("boom from wasm")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.line.starts_with("[outpost]")),
        "{lines:?}"
    );
    let stats = fx.runtime.stats();
    assert_eq!(stats.traps, 1, "{stats:?}");
    let m = fx.runtime.snapshot();
    let panic = m.iter().find(|m| m.route == "/api/panic").unwrap();
    assert_eq!((panic.invocations, panic.errors), (1, 1));

    // Error tracking: the panic as such, with its message and the guest's
    // own function first; a function's own 5xx folded per route.
    for _ in 0..2 {
        let (status, _, _) = fx.get("/api/headers?status=503&secret=1").await;
        assert_eq!(status, 503);
    }
    let taken = fx.runtime.errors().take();
    assert_eq!(taken.dropped, 0);
    let panic = taken
        .reports
        .iter()
        .find(|r| r.route == "/api/panic")
        .unwrap_or_else(|| panic!("{taken:?}"));
    assert_eq!(panic.kind, FailureKind::Panic, "{panic:?}");
    assert_eq!(panic.message, "boom from wasm", "{panic:?}");
    assert_eq!(
        panic.frames.first().map(String::as_str),
        Some("fixture_panic::checkout_total"),
        "{panic:?}"
    );
    assert!(
        panic.stderr.iter().any(|l| l.contains("panicked at")),
        "{panic:?}"
    );
    assert_eq!(
        (
            panic.request_id.as_str(),
            panic.method.as_str(),
            panic.path.as_str()
        ),
        (id.as_str(), "GET", "/api/panic")
    );
    assert_eq!(
        (panic.status, panic.count, panic.project.as_str()),
        (500, 1, "blog")
    );
    assert!(panic.validate().is_ok(), "{panic:?}");
    let server = taken
        .reports
        .iter()
        .find(|r| r.route == "/api/headers")
        .unwrap_or_else(|| panic!("{taken:?}"));
    assert_eq!(server.kind, FailureKind::ServerError);
    assert_eq!(
        (server.message.as_str(), server.status, server.count),
        ("answered 503", 503, 2)
    );
    assert_eq!(server.path, "/api/headers", "the query stays out");
    assert!(server.frames.is_empty(), "{server:?}");
    assert_eq!(taken.reports.len(), 2, "{taken:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_times_out_while_others_answer() {
    let fx = Fixture::start().await;
    let c = fx.client();
    // Compiled first: the bound below is about answering next to spinning
    // instances, not about compiling, which takes seconds in a debug build
    // on a slow machine.
    let r = c.get(fx.url("/api/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    let looping = tokio::spawn({
        let c = c.clone();
        let url = fx.url("/api/loop");
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status(), r.headers().clone(), started.elapsed())
        }
    });
    let looping2 = tokio::spawn({
        let c = c.clone();
        let url = fx.url("/api/loop");
        async move { c.get(url).send().await.unwrap().status() }
    });
    // While two instances spin (on a 2-thread runtime), hello and static
    // files still answer promptly, many times.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let t = Instant::now();
        let r = c.get(fx.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "static took {:?}",
            t.elapsed()
        );
    }
    for _ in 0..10 {
        let t = Instant::now();
        let r = c.get(fx.url("/api/hello")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "hello took {:?} next to a spinning instance",
            t.elapsed()
        );
    }
    let (status, h, elapsed) = looping.await.unwrap();
    assert_eq!(status, 504);
    request_id(&h);
    let limit = Duration::from_millis(LOOP_TIMEOUT_MS as u64);
    assert!(elapsed >= limit, "{elapsed:?}");
    // The guest loops forever: any bounded answer proves the timeout
    // fired. The bound is loose because a loaded CI machine (other test
    // binaries start whole clusters) delays the 504 by seconds.
    assert!(elapsed < limit + Duration::from_secs(15), "{elapsed:?}");
    assert_eq!(looping2.await.unwrap(), 504);
    assert_eq!(fx.runtime.stats().timeouts, 2);
    // Their pool slots and permits come back.
    let t = Instant::now();
    while fx.runtime.stats().in_flight > 0 {
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "instances still running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_instance_sees_what_an_earlier_one_left() {
    // Pool slots are reused (the same component lands in the same slot) and
    // reset in place; whatever the reset strategy, every instance must start
    // from the component's own initial memory.
    let fx = Fixture::start().await;
    for _ in 0..20 {
        let (status, _, body) = fx.get("/api/residue").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "mark=7 bss=clean grown=clean")
        );
    }
    let mut at_once = Vec::new();
    for _ in 0..8 {
        let c = fx.client();
        let url = fx.url("/api/residue");
        at_once.push(tokio::spawn(async move {
            c.get(url).send().await.unwrap().text().await.unwrap()
        }));
    }
    for t in at_once {
        assert_eq!(t.await.unwrap(), "mark=7 bss=clean grown=clean");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_hog_dies_alone() {
    let fx = Fixture::start().await;
    let hog = tokio::spawn({
        let c = fx.client();
        let url = fx.url("/api/memhog");
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status(), r.headers().clone(), r.text().await.unwrap())
        }
    });
    let (status, _, body) = fx.get("/api/hello").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from wasm"));
    let (status, h, body) = hog.await.unwrap();
    assert_eq!(status, 500);
    let id = request_id(&h);
    assert!(body.contains("memory limit"), "{body}");
    assert!(body.contains(&id));
    assert_eq!(fx.runtime.stats().memory_exceeded, 1);
    let (status, _, _) = fx.get("/api/hello").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_over_the_limit_is_413() {
    let fx = Fixture::start_with(|c| c.max_request_body_bytes = 1024 * 1024).await;
    let c = fx.client();
    // Declared too large: refused before any instance runs.
    let r = c
        .post(fx.url("/api/echo"))
        .body(vec![b'x'; 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    request_id(r.headers());
    // Streamed (no length) past the limit to a function that answers
    // before it reads: its response has started, so the exchange is cut
    // off instead; it never completes as if the body were whole.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'y'; 64 * 1024])).collect();
    let r = c
        .post(fx.url("/api/echo"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    if let Ok(r) = r {
        if r.status() == 200 {
            let body = r.bytes().await;
            assert!(
                body.is_err(),
                "a cut-off echo must not look complete: {:?}",
                body.map(|b| b.len())
            );
        } else {
            assert_eq!(r.status(), 413);
        }
    }
    // A function that reads the body before answering: the limit is
    // crossed before its response starts, so the client gets the 413 page.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..40).map(|_| Ok(vec![b'w'; 64 * 1024])).collect();
    let r = c
        .post(fx.url("/api/count"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    match r {
        Ok(r) => {
            assert_eq!(r.status(), 413);
            request_id(r.headers());
        }
        // The server may close before the client finished sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    let r = c
        .post(fx.url("/api/count"))
        .body(vec![b'v'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "1000 bytes");
    // Exactly at the limit is fine.
    let r = c
        .post(fx.url("/api/echo"))
        .body(vec![b'z'; 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 1024 * 1024);
    assert!(fx.runtime.stats().rejected_too_large >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_is_a_clear_503() {
    let fx = Fixture::start_with(|c| {
        c.max_concurrent = 4;
        c.max_concurrent_per_function = 1;
    })
    .await;
    let c = fx.client();
    // One slow instance holds the function's only slot.
    let slow = tokio::spawn({
        let c = c.clone();
        let url = fx.url("/api/slow?ms=300");
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let r = c.get(fx.url("/api/slow?ms=1")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(hdr(r.headers(), "retry-after"), Some("1"));
    request_id(r.headers());
    assert!(
        t.elapsed() < Duration::from_millis(1000),
        "not queued: {:?}",
        t.elapsed()
    );
    // Other functions still have node capacity.
    let r = c.get(fx.url("/api/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(slow.await.unwrap().starts_with("chunk 0"));
    assert_eq!(fx.runtime.stats().rejected_busy, 1);

    // Node-wide: 4 looping instances fill the node.
    let fx = Fixture::start_with(|c| {
        c.max_concurrent = 2;
        c.max_concurrent_per_function = 2;
    })
    .await;
    let c = fx.client();
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            let url = fx.url("/api/loop");
            tokio::spawn(async move { c.get(url).send().await.unwrap().status() })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = c.get(fx.url("/api/hello")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    for l in loops {
        assert_eq!(l.await.unwrap(), 504);
    }
    let r = c.get(fx.url("/api/hello")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_stderr_lines_arrive_with_the_request_id() {
    let mut fx = Fixture::start().await;
    let (status, h, body) = fx.get("/api/logs?n=2").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "logged"));
    let id = request_id(&h);
    let mut lines = fx.logs_of(&id, 5).await;
    lines.sort_by(|a, b| (a.stream as u8, &a.line).cmp(&(b.stream as u8, &b.line)));
    let got: Vec<(LogStream, &str)> = lines.iter().map(|l| (l.stream, l.line.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (LogStream::Stdout, "no newline at the end"),
            (LogStream::Stdout, "stdout line 0"),
            (LogStream::Stdout, "stdout line 1"),
            (LogStream::Stderr, "stderr line 0"),
            (LogStream::Stderr, "stderr line 1"),
        ]
    );
    for l in &lines {
        assert_eq!(
            (l.project.as_str(), l.deployment.as_str()),
            ("blog", "dpl-blog")
        );
        assert!(l.ts_ms > 1_600_000_000_000);
    }

    // Over the per-request budget: bounded, with one note.
    let fx2 = Fixture::start_with(|c| c.max_log_lines_per_request = 3).await;
    let mut fx2 = fx2;
    let (_, h, _) = fx2.get("/api/logs?n=50").await;
    let id = request_id(&h);
    let lines = fx2.logs_of(&id, 4).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[3].line.contains("98 more log lines"), "{lines:?}");
}

/// A tiny HTTP/1.1 server answering every request with `pong`.
async fn pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_needs_the_list_and_a_public_address() {
    let upstream = pong_server().await;
    let port = upstream.port();

    // Default: listed hosts, but loopback is refused.
    let fx = Fixture::start().await;
    let (status, _, body) = fx
        .get(&format!("/api/outbound?url=http://127.0.0.1:{port}/ping"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("DestinationIpProhibited"), "{body}");
    let (status, _, body) = fx
        .get(&format!("/api/outbound?url=http://localhost:{port}/ping"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("DestinationIpProhibited"), "{body}");
    // Not on the list at all.
    let (status, _, body) = fx
        .get(&format!("/api/outbound?url=http://127.0.0.2:{port}/ping"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    // A project with no list cannot call out at all.
    let r = fx
        .client()
        .get(fx.docs_url(&format!("/api/outbound?url=http://127.0.0.1:{port}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("HttpRequestDenied"));

    // The operator allows private addresses: listed hosts now work.
    let fx = Fixture::start_with(|c| c.allow_private_outbound = true).await;
    for host in ["127.0.0.1", "localhost"] {
        let (status, _, body) = fx
            .get(&format!("/api/outbound?url=http://{host}:{port}/ping"))
            .await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "upstream 200\npong"),
            "{host}"
        );
    }
    // Still only listed ones.
    let (status, _, body) = fx
        .get(&format!("/api/outbound?url=http://127.0.0.2:{port}/ping"))
        .await;
    assert_eq!(status, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_code_is_cached_on_disk_and_reused() {
    let cache = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = RuntimeConfig::new(std::path::Path::new("/nonexistent"));
        c.cache_dir = cache.path().to_path_buf();
        c
    };
    let fx = Fixture::start_config(config()).await;
    let hello = fx.components["hello"];
    let artefact = fx.runtime.artefact_path(&hello);
    assert!(!artefact.exists());
    let (status, _, _) = fx.get("/api/hello").await;
    assert_eq!(status, 200);
    let stats = fx.runtime.stats();
    assert_eq!(
        (stats.compiled, stats.loaded_from_cache),
        (1, 0),
        "{stats:?}"
    );
    assert!(artefact.is_file(), "{}", artefact.display());
    assert!(artefact
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with(&hello.to_hex()));
    // The same runtime keeps its ProxyPre in memory.
    fx.get("/api/hello").await;
    assert_eq!(fx.runtime.stats().compiled, 1);

    // A "restart": a new runtime on the same directory loads, not compiles.
    let fx2 = Fixture::start_config(config()).await;
    assert_eq!(fx2.runtime.artefact_path(&hello), artefact);
    let started = Instant::now();
    let (status, _, body) = fx2.get("/api/hello").await;
    let first = started.elapsed();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello from wasm"));
    let stats = fx2.runtime.stats();
    assert_eq!(
        (stats.compiled, stats.loaded_from_cache),
        (0, 1),
        "{stats:?}"
    );
    eprintln!("first request with a cached artefact: {first:?}");

    // prepare() warms a component ahead of its first request.
    let echo = fx2.components["echo"];
    fx2.runtime.prepare(&fx2.blobs, echo).await.unwrap();
    assert_eq!(fx2.runtime.stats().compiled, 1);
    assert!(fx2.runtime.artefact_path(&echo).is_file());

    // A damaged artefact is replaced, not trusted. (Written aside and
    // renamed: the running runtimes above have the old file mapped.)
    let tmp = cache.path().join("garbage");
    std::fs::write(&tmp, b"garbage").unwrap();
    std::fs::rename(&tmp, &artefact).unwrap();
    let fx3 = Fixture::start_config(config()).await;
    let (status, _, _) = fx3.get("/api/hello").await;
    assert_eq!(status, 200);
    assert_eq!(fx3.runtime.stats().compiled, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_http10_and_expect_continue() {
    let fx = Fixture::start().await;
    // HTTP/1.0: the streamed body is delimited by the close.
    let mut s = TcpStream::connect(fx.http).await.unwrap();
    s.write_all(format!("GET /api/slow?ms=1 HTTP/1.0\r\nHost: {BLOG}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("chunk 3\nchunk 4\n"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );

    // Expect: 100-continue gets its interim response before the body.
    let mut s = TcpStream::connect(fx.http).await.unwrap();
    s.write_all(
        format!(
            "POST /api/echo HTTP/1.1\r\nHost: {BLOG}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"hello").await.unwrap();
    // The final response's head may come with the interim one: the
    // function can answer before it reads the body it echoes.
    let mut out = buf[..n].to_vec();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let all = String::from_utf8_lossy(&out);
    let text = all.split_once("\r\n\r\n").map_or("", |(_, rest)| rest);
    assert!(text.starts_with("HTTP/1.1 200"), "{all}");
    // Framed by length or chunked, depending on how fast the echo was.
    assert!(
        text.ends_with("\r\n\r\nhello") || text.ends_with("\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        "{text}"
    );
}

/// Not a test: numbers for the report. Run in release with wrk installed:
/// `cargo test --release -p outpost-edge-node --test it functions::measure -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_hello() {
    let cache = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = RuntimeConfig::new(std::path::Path::new("/nonexistent"));
        c.cache_dir = cache.path().to_path_buf();
        c
    };
    let fx = Fixture::start_config(config()).await;
    let t = Instant::now();
    fx.get("/api/hello").await;
    eprintln!("first request, compiling: {:?}", t.elapsed());
    let t = Instant::now();
    fx.get("/api/hello").await;
    eprintln!("second request: {:?}", t.elapsed());
    let fx2 = Fixture::start_config(config()).await;
    let t = Instant::now();
    fx2.get("/api/hello").await;
    eprintln!("first request, cached artefact: {:?}", t.elapsed());

    let c = fx.client();
    let t = Instant::now();
    for _ in 0..2000 {
        c.get(fx.url("/api/hello"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    eprintln!(
        "sequential hello (reqwest, keep-alive): {:?}/req",
        t.elapsed() / 2000
    );

    for (path, connections) in [
        ("/api/hello", "16"),
        ("/api/hello", "1"),
        ("/", "1"),
        ("/", "16"),
    ] {
        let url = fx.url(path).replace(BLOG, "127.0.0.1");
        let out = tokio::process::Command::new("wrk")
            .args(["-t1", "-c", connections, "-d4s", "--latency", "-H"])
            .arg(format!("Host: {BLOG}"))
            .arg(&url)
            .output()
            .await;
        match out {
            Ok(o) => eprintln!(
                "wrk {path} c={connections}:\n{}",
                String::from_utf8_lossy(&o.stdout)
            ),
            Err(e) => eprintln!("wrk not available: {e}"),
        }
    }
    let s = fx.runtime.stats();
    eprintln!(
        "instantiations {} instantiate p50 {} ns, p99 {} us; {:?}",
        s.instantiations,
        fx.runtime.instantiate_p50_ns(),
        s.instantiate.p99_us,
        fx.runtime
            .snapshot()
            .iter()
            .find(|m| m.route == "/api/hello")
            .map(|m| m.latency)
    );
}

/// One tenant cannot take the node: its functions together hold at most
/// its share of instances and of outbound connections, while another
/// project is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_holds_at_most_its_share_of_instances_and_connections() {
    let fx = Fixture::start_with(|c| {
        c.max_concurrent = 4;
        c.max_concurrent_per_function = 4;
        c.max_concurrent_per_project = 1;
        c.max_outbound_per_project = 1;
        c.allow_private_outbound = true;
    })
    .await;
    let c = fx.client();
    let slow = tokio::spawn({
        let c = c.clone();
        let url = fx.url("/api/slow?ms=400");
        async move { c.get(url).send().await.unwrap().status() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another function of the same project: the project's share is used.
    let r = c.get(fx.url("/api/hello")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    // Another project has the rest of the node.
    let r = c.get(fx.docs_url("/api/env")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(slow.await.unwrap(), 200);

    // Outbound: an upstream that never answers holds the one connection.
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hang.local_addr().unwrap().port();
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            held.push(s);
            let _ = accepted_tx.try_send(());
        }
    });
    let fx = Fixture::start_with(|c| {
        c.max_outbound_per_project = 1;
        c.allow_private_outbound = true;
    })
    .await;
    let c = fx.client();
    let _first = tokio::spawn({
        let c = c.clone();
        let url = fx.url(&format!("/api/outbound?url=http://127.0.0.1:{port}/"));
        async move { c.get(url).send().await.map(|r| r.status()) }
    });
    // Once the first call holds its connection (however long its
    // function took to load), a second one is refused at once.
    tokio::time::timeout(Duration::from_secs(30), accepted.recv())
        .await
        .expect("the first call connects");
    let (status, _, body) = fx
        .get(&format!("/api/outbound?url=http://127.0.0.1:{port}/"))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("ConnectionLimitReached"), "{body}");
}

/// A component slow to load fails its own requests once its wait is up,
/// instead of holding them (and the sync) for as long as the compile
/// takes; the compile finishes in the background and its code is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_compile_is_bounded_and_finishes_in_the_background() {
    let cache = tempfile::tempdir().unwrap();
    let fx = Fixture::start_with(|c| {
        c.cache_dir = cache.path().to_path_buf();
        c.compile_wait = Duration::from_millis(1);
    })
    .await;
    let t = Instant::now();
    let (status, _, _) = fx.get("/api/hello").await;
    assert_eq!(status, 503);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let artefact = fx.runtime.artefact_path(&fx.components["hello"]);
    eventually_true(60, || artefact.is_file()).await;
}

async fn eventually_true(secs: u64, check: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < until, "not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A function request of a project with a request log drain is logged
/// under the id its response carries, with the path the client asked for
/// (also through a rewrite); a project without one is not logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_requests_are_logged_under_their_response_id() {
    let mut fx = Fixture::start().await;
    let c = fx.client();
    for (path, want) in [
        ("/api/env?name=DOCS_ONLY", "/api/env?name=DOCS_ONLY"),
        ("/alias?name=DOCS_ONLY", "/alias?name=DOCS_ONLY"),
    ] {
        let r = c.get(fx.docs_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let id = request_id(r.headers());
        assert_eq!(r.text().await.unwrap(), "docs-value", "{path}");
        let rec = tokio::time::timeout(Duration::from_secs(10), fx.request_logs.recv())
            .await
            .expect("a request log within 10 s")
            .unwrap();
        rec.validate().unwrap();
        assert_eq!(rec.request_id, id, "{path}");
        assert_eq!(
            (rec.path.as_str(), rec.status, rec.method.as_str()),
            (want, 200, "GET")
        );
        assert_eq!(
            (rec.project.as_str(), rec.deployment.as_str()),
            ("docs", "dpl-docs")
        );
        assert_eq!(rec.bytes, "docs-value".len() as u64);
    }
    // The blog has no drain: its functions are not logged.
    let (status, _, _) = fx.get("/api/hello").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(fx.request_logs.try_recv().is_err());
}
