//! Static serving over real sockets: plain HTTP/1.1 (file bodies by
//! `sendfile`), HTTPS with h2 and http/1.1 by ALPN, HTTP/3 over QUIC on the
//! same port, certificates by SNI, a blob store in a temp dir.

use crate::support::*;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edge_node::http::{serve_http, serve_http3, serve_https, EdgeHttp, Limits};
use edge_node::state::{Routing, ServingState};
use edge_node::store::blobs::BlobStore;
use protocol::{BlobHash, Encoding, FileEntry, Manifest, Variant};
use reqwest::{StatusCode, Version};
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const INDEX: &[u8] = b"<h1>home</h1>";
const INDEX_BR: &[u8] = b"pretend-brotli(<h1>home</h1>)";
const INDEX_GZ: &[u8] = b"pretend-gzip(<h1>home</h1>)!";
const DATA: &[u8] = b"0123456789abcdefghij";
const BIG_LEN: usize = 3 * 1024 * 1024 + 123;
const LARGE_BROKEN_LEN: usize = 300 * 1024;

fn big_body() -> Vec<u8> {
    (0..BIG_LEN).map(|i| (i * 7 % 251) as u8).collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    blob_root: std::path::PathBuf,
    corrupt: mpsc::Receiver<BlobHash>,
    http: SocketAddr,
    https: SocketAddr,
    ca: CertificateDer<'static>,
    shutdown: watch::Sender<bool>,
    servers: Vec<JoinHandle<std::io::Result<()>>>,
    hashes: HashMap<&'static str, BlobHash>,
}

impl Fixture {
    async fn start() -> Fixture {
        Self::start_with(Limits::default()).await
    }

    async fn start_with(limits: Limits) -> Fixture {
        // reqwest (built without a bundled provider) needs a process default
        // even for plain-HTTP clients.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let blob_root = dir.path().join("blobs");
        let (store, corrupt) = BlobStore::open(&blob_root).unwrap();

        let mut hashes = HashMap::new();
        let mut files = BTreeMap::new();
        let mut add =
            |path: &'static str, body: &[u8], ct: &str, variants: Vec<Variant>, write: bool| {
                let hash = BlobHash::of(body);
                hashes.insert(path, hash);
                files.insert(
                    path.to_string(),
                    FileEntry {
                        hash,
                        size: body.len() as u64,
                        content_type: ct.into(),
                        variants,
                    },
                );
                write.then(|| (hash, body.to_vec()))
            };
        let variant = |encoding, body: &[u8]| Variant {
            encoding,
            hash: BlobHash::of(body),
            size: body.len() as u64,
        };
        let big = big_body();
        let large_broken: Vec<u8> = (0..LARGE_BROKEN_LEN).map(|i| (i % 13) as u8).collect();
        let mut to_write: Vec<(BlobHash, Vec<u8>)> = [
            add(
                "index.html",
                INDEX,
                "text/html; charset=utf-8",
                vec![
                    variant(Encoding::Br, INDEX_BR),
                    variant(Encoding::Gzip, INDEX_GZ),
                ],
                true,
            ),
            add(
                "about.html",
                b"about page",
                "text/html; charset=utf-8",
                vec![],
                true,
            ),
            add(
                "docs/index.html",
                b"docs index",
                "text/html; charset=utf-8",
                vec![],
                true,
            ),
            add(
                "404.html",
                b"custom not found",
                "text/html; charset=utf-8",
                vec![],
                true,
            ),
            add(
                "assets/app.3f2a9c1b.js",
                b"console.log(1)",
                "text/javascript",
                vec![],
                true,
            ),
            add("data.txt", DATA, "text/plain; charset=utf-8", vec![], true),
            add("big.bin", &big, "application/octet-stream", vec![], true),
            add(
                "broken.txt",
                b"will be corrupted",
                "text/plain",
                vec![],
                true,
            ),
            add(
                "large-broken.bin",
                &large_broken,
                "application/octet-stream",
                vec![],
                true,
            ),
            add("missing.txt", b"never stored", "text/plain", vec![], false),
        ]
        .into_iter()
        .flatten()
        .collect();
        to_write.push((BlobHash::of(INDEX_BR), INDEX_BR.to_vec()));
        to_write.push((BlobHash::of(INDEX_GZ), INDEX_GZ.to_vec()));
        for (hash, body) in to_write {
            let chunks = body.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
            store
                .write(&hash, body.len() as u64, Chunks(chunks))
                .await
                .unwrap();
        }
        let blog = Manifest::new(files);
        let docs = Manifest::new(
            [(
                "index.html".to_string(),
                FileEntry {
                    hash: BlobHash::of(b"docs home"),
                    size: 9,
                    content_type: "text/html".into(),
                    variants: vec![],
                },
            )]
            .into(),
        );
        store
            .write(
                &BlobHash::of(b"docs home"),
                9,
                Chunks(vec![Bytes::from_static(b"docs home")]),
            )
            .await
            .unwrap();

        let (ca, blog_key) = certificates();
        let state = Arc::new(ServingState::default());
        state.replace(Routing {
            config_version: 1,
            hosts: [
                ("blog.localhost".to_string(), site("blog", blog, &[], &[])),
                ("docs.localhost".to_string(), site("docs", docs, &[], &[])),
            ]
            .into(),
            certs: [("blog.localhost".to_string(), blog_key)].into(),
            ..Default::default()
        });

        let app = EdgeHttp::with_limits(state, store, limits);
        let (shutdown, rx) = watch::channel(false);
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = http_listener.local_addr().unwrap();
        let https = https_listener.local_addr().unwrap();
        // HTTP/3 on the HTTPS port number, over UDP, as a node serves it.
        let udp = std::net::UdpSocket::bind(https).unwrap();
        app.advertise_http3(https.port());
        let servers = vec![
            tokio::spawn(serve_http(http_listener, app.clone(), rx.clone())),
            tokio::spawn(serve_http3(udp, app.clone(), rx.clone())),
            tokio::spawn(serve_https(https_listener, app, rx)),
        ];
        Fixture {
            _dir: dir,
            blob_root,
            corrupt,
            http,
            https,
            ca,
            shutdown,
            servers,
            hashes,
        }
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .resolve("blog.localhost", self.http)
            .resolve("docs.localhost", self.http)
            .resolve("unknown.localhost", self.http)
            .build()
            .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("http://blog.localhost:{}{path}", self.http.port())
    }

    fn tls_client(&self, alpn: &[&[u8]]) -> reqwest::Client {
        let config = test_support::tls_client_config([self.ca.clone()], alpn);
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            .resolve("blog.localhost", self.https)
            .resolve("other.example", self.https);
        if !alpn.contains(&&b"h2"[..]) {
            builder = builder.http1_only();
        }
        builder.build().unwrap()
    }

    fn blob_path(&self, file: &str) -> std::path::PathBuf {
        let hex = self.hashes[file].to_hex();
        self.blob_root.join(&hex[..2]).join(hex)
    }
}

/// One raw HTTP/1.1 exchange on a fresh connection that the server closes.
async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("server closes the connection")
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// Reads one response framed by Content-Length from a kept-alive connection.
async fn read_response(s: &mut TcpStream, head_request: bool) -> (u16, String, Vec<u8>) {
    let mut buf = Vec::new();
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed mid-header: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..header_end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .expect("content-length");
    let want = if head_request { 0 } else { len };
    let mut body = buf[header_end..].to_vec();
    while body.len() < want {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), want, "extra bytes after the response");
    (status, head, body)
}

#[tokio::test]
async fn files_clean_urls_and_directory_indexes() {
    let f = Fixture::start().await;
    let c = f.client();
    let cases = [
        ("/", &b"<h1>home</h1>"[..], "text/html; charset=utf-8"),
        ("/index.html", b"<h1>home</h1>", "text/html; charset=utf-8"),
        ("/?utm=1", b"<h1>home</h1>", "text/html; charset=utf-8"),
        ("/about", b"about page", "text/html; charset=utf-8"),
        ("/about/", b"about page", "text/html; charset=utf-8"),
        ("/docs", b"docs index", "text/html; charset=utf-8"),
        ("/docs/", b"docs index", "text/html; charset=utf-8"),
        (
            "//docs//index.html",
            b"docs index",
            "text/html; charset=utf-8",
        ),
        ("/data.txt", DATA, "text/plain; charset=utf-8"),
    ];
    for (path, body, ct) in cases {
        let r = c.get(f.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers().clone();
        assert_eq!(hdr(&h, "content-type"), Some(ct), "{path}");
        assert_eq!(
            hdr(&h, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(hdr(&h, "x-content-type-options"), Some("nosniff"));
        assert_eq!(hdr(&h, "server"), Some("outpost"));
        assert_eq!(hdr(&h, "x-outpost-deployment"), Some("dpl-blog"));
        assert_eq!(
            hdr(&h, "cache-control"),
            Some("public, max-age=0, must-revalidate")
        );
        assert_eq!(hdr(&h, "accept-ranges"), Some("bytes"));
        assert_eq!(r.bytes().await.unwrap(), body, "{path}");
    }
    // Hosts are case-insensitive and may carry the port.
    let (status, text) = raw(
        f.http,
        "GET /about HTTP/1.1\r\nHost: BLOG.localhost.:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("about page"));
    let r = c
        .get(format!("http://docs.localhost:{}/", f.http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(hdr(r.headers(), "x-outpost-deployment"), Some("dpl-docs"));
    assert_eq!(r.text().await.unwrap(), "docs home");
}

#[tokio::test]
async fn not_found_pages_are_the_tenants_or_the_platforms() {
    let f = Fixture::start().await;
    let c = f.client();
    let r = c.get(f.url("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(hdr(r.headers(), "x-outpost-deployment"), Some("dpl-blog"));
    assert_eq!(
        hdr(r.headers(), "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(r.text().await.unwrap(), "custom not found");

    // A site without 404.html, and an unknown host, get the platform page.
    for url in [
        format!("http://docs.localhost:{}/nope", f.http.port()),
        format!("http://unknown.localhost:{}/", f.http.port()),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{url}");
        assert_eq!(hdr(r.headers(), "cache-control"), Some("no-store"));
        assert_eq!(hdr(r.headers(), "x-content-type-options"), Some("nosniff"));
        let body = r.text().await.unwrap();
        assert!(body.contains("404") && body.contains("outpost"), "{body}");
        assert!(!body.contains("custom not found"));
    }
    let r = c
        .get(format!("http://unknown.localhost:{}/", f.http.port()))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-outpost-deployment").is_none());
}

#[tokio::test]
async fn bad_hosts_paths_and_methods_are_refused() {
    let f = Fixture::start().await;
    let traversal = [
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/%2E%2E/404.html",
        "/..%2fetc%2fpasswd",
        "/docs/..%2f404.html",
        "/docs%2findex.html",
        "/a%5c..%5cb",
        "/a%00b",
        "/a%zz",
        "/caf%C3",
        "*",
    ];
    for path in traversal {
        let (status, text) = raw(
            f.http,
            &format!("GET {path} HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains("outpost"), "platform page for {path}");
    }
    for host in ["a_b.localhost", "blog.localhost:x", "[::1]", "..", ""] {
        let (status, text) = raw(
            f.http,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "host {host:?}: {text}");
    }
    let (status, _) = raw(f.http, "GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, 400, "no Host at all");

    let c = f.client();
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
        reqwest::Method::OPTIONS,
    ] {
        let r = c
            .request(method.clone(), f.url("/"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(hdr(r.headers(), "allow"), Some("GET, HEAD"));
    }
    // Garbage that is not HTTP gets a 400 before the close.
    let (status, _) = raw(f.http, "GET / HTTP/1.1\r\nHost blog.localhost\r\n\r\n").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn head_etag_and_ranges() {
    let f = Fixture::start().await;
    let c = f.client();
    let etag = format!("\"{}\"", f.hashes["data.txt"].to_hex());

    let r = c.head(f.url("/data.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(hdr(r.headers(), "content-length"), Some("20"));
    assert_eq!(hdr(r.headers(), "etag"), Some(etag.as_str()));
    assert!(r.bytes().await.unwrap().is_empty());

    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"nope\", {etag}"),
        "*".into(),
    ] {
        let r = c
            .get(f.url("/data.txt"))
            .header("if-none-match", &inm)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{inm}");
        assert_eq!(hdr(r.headers(), "etag"), Some(etag.as_str()));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = c
        .get(f.url("/data.txt"))
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let ranges = [
        ("bytes=0-3", "bytes 0-3/20", &b"0123"[..]),
        ("bytes=18-", "bytes 18-19/20", b"ij"),
        ("bytes=-5", "bytes 15-19/20", b"fghij"),
        ("bytes=10-1000", "bytes 10-19/20", b"abcdefghij"),
    ];
    for (range, content_range, body) in ranges {
        let r = c
            .get(f.url("/data.txt"))
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(hdr(r.headers(), "content-range"), Some(content_range));
        assert_eq!(
            hdr(r.headers(), "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(r.bytes().await.unwrap(), body);
    }
    let r = c
        .get(f.url("/data.txt"))
        .header("range", "bytes=20-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(hdr(r.headers(), "content-range"), Some("bytes */20"));
    assert!(r.bytes().await.unwrap().is_empty());
    // Several ranges: ignored, the whole file.
    let r = c
        .get(f.url("/data.txt"))
        .header("range", "bytes=0-1,4-5")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), DATA);
    // If-Range with a stale tag: the whole file.
    let r = c
        .get(f.url("/data.txt"))
        .header("range", "bytes=0-1")
        .header("if-range", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(f.url("/data.txt"))
        .header("range", "bytes=0-1")
        .header("if-range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
}

#[tokio::test]
async fn precompressed_variants_are_negotiated() {
    let f = Fixture::start().await;
    let c = f.client();
    let tag = |b: &[u8]| format!("\"{}\"", BlobHash::of(b).to_hex());
    let cases: [(Option<&str>, Option<&str>, &[u8]); 7] = [
        (None, None, INDEX),
        (Some("gzip, deflate, br, zstd"), Some("br"), INDEX_BR),
        (Some("gzip"), Some("gzip"), INDEX_GZ),
        (Some("br;q=0.5, gzip;q=0.9"), Some("gzip"), INDEX_GZ),
        (Some("br;q=0, gzip;q=0"), None, INDEX),
        (Some("identity"), None, INDEX),
        (Some("*"), Some("br"), INDEX_BR),
    ];
    for (ae, ce, body) in cases {
        let mut req = c.get(f.url("/"));
        if let Some(ae) = ae {
            req = req.header("accept-encoding", ae);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{ae:?}");
        assert_eq!(hdr(r.headers(), "content-encoding"), ce, "{ae:?}");
        assert_eq!(hdr(r.headers(), "vary"), Some("Accept-Encoding"), "{ae:?}");
        assert_eq!(
            hdr(r.headers(), "content-type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(hdr(r.headers(), "etag"), Some(tag(body).as_str()), "{ae:?}");
        assert_eq!(r.bytes().await.unwrap(), body, "{ae:?}");
    }
    // Validators are per encoding.
    let r = c
        .get(f.url("/"))
        .header("accept-encoding", "br")
        .header("if-none-match", tag(INDEX_BR))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(hdr(r.headers(), "vary"), Some("Accept-Encoding"));
    let r = c
        .get(f.url("/"))
        .header("accept-encoding", "gzip")
        .header("if-none-match", tag(INDEX_BR))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Ranges address the identity bytes.
    let r = c
        .get(f.url("/"))
        .header("accept-encoding", "br")
        .header("range", "bytes=1-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(hdr(r.headers(), "content-range"), Some("bytes 1-2/13"));
    assert_eq!(r.bytes().await.unwrap(), &b"h1"[..]);
    // Files without variants do not vary.
    let r = c
        .get(f.url("/data.txt"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("vary").is_none());
    assert!(r.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn fingerprinted_assets_are_immutable() {
    let f = Fixture::start().await;
    let c = f.client();
    let r = c
        .get(f.url("/assets/app.3f2a9c1b.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        hdr(r.headers(), "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(hdr(r.headers(), "content-type"), Some("text/javascript"));
    assert_eq!(hdr(r.headers(), "x-content-type-options"), Some("nosniff"));
    let r = c.get(f.url("/")).send().await.unwrap();
    assert_eq!(
        hdr(r.headers(), "cache-control"),
        Some("public, max-age=0, must-revalidate")
    );
}

#[tokio::test]
async fn large_files_stream_whole_and_in_ranges() {
    let f = Fixture::start().await;
    let c = f.client();
    let big = big_body();
    let r = c.get(f.url("/big.bin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        hdr(r.headers(), "content-length"),
        Some(BIG_LEN.to_string().as_str())
    );
    let body = r.bytes().await.unwrap();
    assert!(body == big, "3 MiB body differs");

    // Across chunk boundaries, and the tail.
    for (start, end) in [
        (65_530usize, 200_000usize),
        (BIG_LEN - 10, BIG_LEN - 1),
        (1, 1),
    ] {
        let r = c
            .get(f.url("/big.bin"))
            .header("range", format!("bytes={start}-{end}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            hdr(r.headers(), "content-range"),
            Some(format!("bytes {start}-{end}/{BIG_LEN}").as_str())
        );
        assert!(
            r.bytes().await.unwrap() == big[start..=end],
            "{start}-{end}"
        );
    }
    let r = c.head(f.url("/big.bin")).send().await.unwrap();
    assert_eq!(
        hdr(r.headers(), "content-length"),
        Some(BIG_LEN.to_string().as_str())
    );
    assert!(r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn corrupt_or_missing_blobs_are_503_and_reported() {
    let mut f = Fixture::start().await;
    let c = f.client();
    for file in ["broken.txt", "large-broken.bin"] {
        let path = f.blob_path(file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let r = c.get(f.url(&format!("/{file}"))).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "{file}");
        assert_eq!(hdr(r.headers(), "retry-after"), Some("1"));
        assert_eq!(hdr(r.headers(), "cache-control"), Some("no-store"));
        assert!(r.text().await.unwrap().contains("503"));
        let reported = tokio::time::timeout(Duration::from_secs(5), f.corrupt.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reported, f.hashes[file]);
    }
    let r = c.get(f.url("/missing.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = c.head(f.url("/missing.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Conditional requests need no blob bytes.
    let etag = format!("\"{}\"", f.hashes["missing.txt"].to_hex());
    let r = c
        .get(f.url("/missing.txt"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    // Everything else is still served.
    let r = c.get(f.url("/data.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A large file is served from a kept, verified descriptor (by `sendfile`
/// over plain HTTP). Rewritten in place after that, it is hashed again
/// before its next byte goes out: a 503 and a re-fetch, never the changed
/// bytes.
#[tokio::test]
async fn a_file_changed_after_it_was_verified_is_not_served() {
    let mut f = Fixture::start().await;
    let c = f.client();
    let big = big_body();
    for _ in 0..2 {
        let r = c.get(f.url("/big.bin")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.bytes().await.unwrap() == big);
    }
    let path = f.blob_path("big.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[BIG_LEN / 2] ^= 0xff;
    // The same inode, rewritten; its mtime moves on with the write.
    std::fs::write(&path, bytes).unwrap();
    let r = c.get(f.url("/big.bin")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let reported = tokio::time::timeout(Duration::from_secs(5), f.corrupt.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reported, f.hashes["big.bin"]);
}

/// HTTP/3 answers exactly what HTTP/2 does, on the same port over UDP,
/// several requests on one connection; TCP answers over TLS advertise it.
#[tokio::test]
async fn http3_serves_what_https_serves() {
    let f = Fixture::start().await;
    let tls = test_support::tls_client_config([f.ca.clone()], &[b"h3"]);
    let h3 = test_support::h3::H3Client::connect_with(
        f.https,
        "blog.localhost",
        &tls,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let id = h3.stable_id();

    let r = h3.get("/about", &[]).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("10"));
    assert_eq!(r.header("x-outpost-deployment"), Some("dpl-blog"));
    assert_eq!(r.header("alt-svc"), None, "HTTP/3 need not point at itself");
    assert!(r.header("connection").is_none());
    assert_eq!(r.text(), "about page");
    let r = h3.request("HEAD", "/data.txt", &[], b"").await.unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("20")));
    assert!(r.body.is_empty());
    let etag = format!("\"{}\"", f.hashes["data.txt"].to_hex());
    let r = h3
        .get("/data.txt", &[("if-none-match", &etag)])
        .await
        .unwrap();
    assert_eq!(r.status, 304);
    let r = h3
        .get("/data.txt", &[("range", "bytes=2-4")])
        .await
        .unwrap();
    assert_eq!((r.status, r.body.as_slice()), (206, &b"234"[..]));
    let r = h3.get("/", &[("accept-encoding", "br")]).await.unwrap();
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.body, INDEX_BR);
    let r = h3.get("/nope", &[]).await.unwrap();
    assert_eq!((r.status, r.text().as_str()), (404, "custom not found"));
    let r = h3.request("POST", "/", &[], b"x").await.unwrap();
    assert_eq!(r.status, 405);
    let big = big_body();
    let gets: Vec<_> = (0..3).map(|_| h3.get("/big.bin", &[])).collect();
    for r in futures::future::join_all(gets).await {
        let r = r.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body == big, "3 MiB body over HTTP/3");
    }
    // A missing blob is a clean 503 over HTTP/3 too.
    let r = h3.get("/missing.txt", &[]).await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(h3.stable_id(), id, "one connection for all of them");
    assert!(h3.is_open());

    // TCP answers over TLS advertise HTTP/3 on the same port; plain HTTP
    // ones do not (an https origin's alternative is only learnt over TLS).
    let alt = format!("h3=\":{}\"; ma=86400", f.https.port());
    let h2 = f.tls_client(&[b"h2"]);
    let url = format!("https://blog.localhost:{}/about", f.https.port());
    let r = h2.get(&url).send().await.unwrap();
    assert_eq!(hdr(r.headers(), "alt-svc"), Some(alt.as_str()));
    let r = f.client().get(f.url("/about")).send().await.unwrap();
    assert_eq!(hdr(r.headers(), "alt-svc"), None);

    // No certificate for the name: the QUIC handshake fails, and the
    // listener serves on.
    let other = test_support::h3::H3Client::connect_with(
        f.https,
        "other.example",
        &tls,
        Duration::from_secs(5),
    )
    .await;
    assert!(other.is_err());
    let r = h3.get("/about", &[]).await.unwrap();
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let f = Fixture::start().await;
    let mut s = TcpStream::connect(f.http).await.unwrap();
    // A body sent with `sendfile` (large) between ordinary ones: the
    // connection stays in step.
    let big = big_body();
    let requests = [
        ("GET", "/data.txt", 200, DATA),
        ("HEAD", "/big.bin", 200, &b""[..]),
        ("GET", "/big.bin", 200, &big[..]),
        ("GET", "/nope", 404, b"custom not found"),
        ("GET", "/big.bin", 200, &big[..]),
        ("GET", "/data.txt", 200, DATA),
    ];
    for (method, path, want, body) in requests {
        s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: blog.localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, head, got) = read_response(&mut s, method == "HEAD").await;
        assert_eq!(status, want, "{method} {path}");
        assert!(
            head.to_ascii_lowercase().contains("connection: keep-alive"),
            "{head}"
        );
        assert_eq!(got, body);
    }
    // `Connection: close` is honoured.
    s.write_all(b"GET /data.txt HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut s, false).await;
    assert_eq!(status, 200);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn https_by_sni_with_h2_and_http1() {
    let f = Fixture::start().await;
    let url = |p: &str| format!("https://blog.localhost:{}{p}", f.https.port());
    let h2 = f.tls_client(&[b"h2", b"http/1.1"]);
    let r = h2.get(url("/about")).send().await.unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("connection").is_none());
    assert_eq!(hdr(r.headers(), "content-length"), Some("10"));
    assert_eq!(r.text().await.unwrap(), "about page");

    // The interesting paths over h2 too: HEAD, 304, ranges, 404s, 405, a
    // body larger than the flow-control window, several streams at once.
    let r = h2.head(url("/data.txt")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(hdr(r.headers(), "content-length"), Some("20"));
    assert!(r.bytes().await.unwrap().is_empty());
    let etag = format!("\"{}\"", f.hashes["data.txt"].to_hex());
    let r = h2
        .get(url("/data.txt"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = h2
        .get(url("/data.txt"))
        .header("range", "bytes=2-4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), &b"234"[..]);
    let r = h2.get(url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.text().await.unwrap(), "custom not found");
    let r = h2.post(url("/")).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let big = big_body();
    let gets: Vec<_> = (0..3).map(|_| h2.get(url("/big.bin")).send()).collect();
    for r in futures::future::join_all(gets).await {
        let r = r.unwrap();
        assert_eq!(r.version(), Version::HTTP_2);
        assert!(r.bytes().await.unwrap() == big);
    }

    let h1 = f.tls_client(&[b"http/1.1"]);
    let r = h1.get(url("/")).send().await.unwrap();
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.text().await.unwrap(), "<h1>home</h1>");

    // No certificate for the name: the handshake fails.
    let other = format!("https://other.example:{}/", f.https.port());
    let err = h2.get(&other).send().await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // No SNI at all (an IP literal): the handshake fails too.
    let ip = format!("https://127.0.0.1:{}/", f.https.port());
    assert!(h2.get(&ip).send().await.is_err());
    // And the listener is still fine afterwards.
    let r = h2.get(url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn slow_request_headers_are_cut_off() {
    let f = Fixture::start_with(Limits {
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut s = TcpStream::connect(f.http).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: blog").await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "connection still open after the header deadline"
    );
}

#[tokio::test]
async fn keep_alive_deadline_moves_with_each_request() {
    // One idle window: 300 ms of idle keep-alive plus 300 ms for the header.
    let f = Fixture::start_with(Limits {
        idle_timeout: Duration::from_millis(300),
        header_read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut s = TcpStream::connect(f.http).await.unwrap();
    // Requests 250 ms apart for well over one window: each wait gets a
    // whole window of its own, counted from the previous response.
    for _ in 0..5 {
        s.write_all(b"GET /data.txt HTTP/1.1\r\nHost: blog.localhost\r\n\r\n")
            .await
            .unwrap();
        let (status, _, _) = read_response(&mut s, false).await;
        assert_eq!(status, 200);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // A request header started but never finished is cut off at the end
    // of the window, as a first request's is.
    s.write_all(b"GET /data.txt HTTP/1.1\r\nHost: blog")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "connection still open after its window");
    assert!(rest.is_empty(), "no response to a header never finished");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_closes_idle_connections() {
    let f = Fixture::start_with(Limits {
        shutdown_grace: Duration::from_secs(2),
        ..Limits::default()
    })
    .await;
    // An idle keep-alive connection.
    let mut idle = TcpStream::connect(f.http).await.unwrap();
    idle.write_all(b"GET /data.txt HTTP/1.1\r\nHost: blog.localhost\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut idle, false).await;
    assert_eq!(status, 200);
    // An idle h2 connection (kept in the client's pool).
    let h2 = f.tls_client(&[b"h2"]);
    let r = h2
        .get(format!("https://blog.localhost:{}/", f.https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), Version::HTTP_2);
    r.bytes().await.unwrap();
    // A download in flight: the response header is out, most of the body
    // is still to come (the socket buffers are far smaller than 3 MiB).
    let mut busy = TcpStream::connect(f.http).await.unwrap();
    busy.write_all(b"GET /big.bin HTTP/1.1\r\nHost: blog.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = busy.read(&mut first).await.unwrap();
    assert!(n > 0);

    f.shutdown.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut rest = first[..n].to_vec();
    busy.read_to_end(&mut rest).await.unwrap();
    let body_start = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        rest[body_start..] == big_body()[..],
        "in-flight download completes"
    );

    for server in f.servers {
        tokio::time::timeout(Duration::from_secs(1), server)
            .await
            .expect("servers return promptly when nothing is in flight")
            .unwrap()
            .unwrap();
    }
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(1), idle.read_to_end(&mut rest))
        .await
        .expect("idle connection closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(TcpStream::connect(f.http).await.is_err(), "listener closed");
}

#[tokio::test]
async fn stalled_handshakes_are_cut_off() {
    let f = Fixture::start_with(Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    // TCP connected, no ClientHello.
    let mut s = TcpStream::connect(f.https).await.unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "TLS handshake deadline not enforced");

    // TLS done with ALPN h2, but no h2 preface: rustls' blocking client is
    // enough to get there.
    let config = test_support::tls_client_config([f.ca.clone()], &[b"h2"]);
    let addr = f.https;
    let outcome = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut sock = std::net::TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut conn =
            rustls::ClientConnection::new(Arc::new(config), "blog.localhost".try_into().unwrap())
                .unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        assert_eq!(conn.alpn_protocol(), Some(&b"h2"[..]));
        let started = std::time::Instant::now();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        let mut byte = [0u8; 1];
        // The server's SETTINGS may arrive first; then the close.
        let end = loop {
            match tls.read(&mut byte) {
                Ok(0) => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        (end, started.elapsed())
    })
    .await
    .unwrap();
    let (end, elapsed) = outcome;
    if let Err(e) = end {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "h2 preface deadline not enforced: {e}"
        );
    }
    assert!(
        elapsed >= Duration::from_millis(200),
        "closed by the deadline, not at once: {elapsed:?}"
    );
}
