//! End-to-end: real coordinator and edge-node processes on loopback.

use std::time::Duration;

use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn served(edge: &Edge, host: &str, path: &str, want: &str) {
    eventually(20, &format!("{host}{path} to serve {want:?}"), || async {
        let (status, body, _) = edge.get(host, path).await;
        (status == 200 && body.contains(want)).then_some(())
    })
    .await
}

pub(crate) fn https_client(
    ca_pem: &[u8],
    host: &str,
    addr: std::net::SocketAddr,
) -> reqwest::Client {
    let tls =
        test_support::tls_client_config(test_support::pem_certs(ca_pem), &[b"h2", b"http/1.1"]);
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve(host, addr)
        .build()
        .unwrap()
}

#[tokio::test]
async fn deploy_redeploy_rollback_promote_and_https() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let site = tmp.path().join("site");

    write_site(&site, "v1");
    let d1 = coord.deploy(&site, "blog", true);
    assert_eq!(d1["production_url"], "http://blog.localhost/");
    let id1 = d1["deployment"].as_str().unwrap().to_string();
    assert_eq!(d1["url"], format!("http://{id1}--blog.localhost/"));
    assert_eq!(d1["uploaded_blobs"], d1["blobs"]);
    served(&edge, "blog.localhost", "/", "v1").await;
    served(
        &edge,
        &format!("{id1}--blog.localhost"),
        "/about",
        "about v1",
    )
    .await;
    let (status, body, _) = edge.get("blog.localhost", "/nope").await;
    assert_eq!((status, body.as_str()), (404, "custom not found"));
    let (status, body, _) = edge.get("unknown.localhost", "/").await;
    assert_eq!(status, 404);
    assert!(
        !body.contains("custom not found"),
        "an unknown host must get the platform's page"
    );

    // Redeploy: only the changed files travel.
    write_site(&site, "v2");
    let d2 = coord.deploy(&site, "blog", true);
    let id2 = d2["deployment"].as_str().unwrap().to_string();
    assert_eq!(
        d2["uploaded_blobs"], 2,
        "only index.html and about.html changed: {d2}"
    );
    served(&edge, "blog.localhost", "/", "v2").await;
    served(&edge, &format!("{id1}--blog.localhost"), "/", "v1").await;

    // Rollback and promote move the alias without uploads.
    let out = coord.cli_ok(&["rollback", "blog"]);
    assert!(out.contains(&id1), "{out}");
    served(&edge, "blog.localhost", "/", "v1").await;
    coord.cli_ok(&["promote", &id2]);
    served(&edge, "blog.localhost", "/", "v2").await;
    let deployments = coord.cli_ok(&["deployments", "blog"]);
    assert!(deployments.contains(&id1) && deployments.contains(&id2));

    // HTTPS with a certificate from the cluster CA, over HTTP/2.
    let ca = std::fs::read(coord.ca_path()).unwrap();
    let client = https_client(&ca, "blog.localhost", edge.https);
    let resp = client
        .get(format!("https://blog.localhost:{}/", edge.https.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(resp.text().await.unwrap().contains("v2"));

    // The node shows up with its region and the current config.
    let nodes: Value = eventually(20, "node to report the current config", || async {
        let nodes: Value = serde_json::from_str(&coord.cli_ok(&["nodes", "--json"])).unwrap();
        (nodes[0]["config_lag"] == 0 && nodes[0]["bundles_pending"] == 0).then_some(nodes)
    })
    .await;
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    assert_eq!(nodes[0]["region"], "fra");
    assert_eq!(nodes[0]["status"], "online");
    let table = coord.cli_ok(&["nodes"]);
    assert!(table.contains("fra") && table.contains("online"), "{table}");
    assert!(coord.cli_ok(&["projects"]).contains("blog"));
}

/// What a bad-input case sends.
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Option<&'static str>),
    Bytes(Vec<u8>),
}

/// Sends one request and checks the typed error: status, code, message.
async fn expect_error(
    api: &Api,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Body,
    status: u16,
    code: &str,
) -> Value {
    let mut req = http_client().request(method.clone(), format!("{}{path}", api.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req = match body {
        Body::None => req,
        Body::Json(v) => req.json(&v),
        Body::Raw(text, content_type) => {
            let r = req.body(text);
            match content_type {
                Some(ct) => r.header("content-type", ct),
                None => r,
            }
        }
        Body::Bytes(b) => req.body(b),
    };
    let resp = req.send().await.unwrap();
    let got = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    let got_code = body["error"]["code"].as_str().unwrap_or("");
    assert_eq!((got, got_code), (status, code), "{method} {path}: {body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    body
}

#[tokio::test]
async fn api_rejects_bad_input_with_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some("[limits]\nmax_blob_bytes = 1024\nmax_json_bytes = 8192\n"),
    );
    let api = coord.api();
    let token = Some(api.token.as_str());
    for n in ["alpha", "bravo", "charlie"] {
        api.create_project(n).await;
    }
    let h = protocol::BlobHash::of(b"hi").to_hex();
    let manifest = |path: &str, size: u64| json!({"manifest": {"format": 1, "files": {path: {"hash": h, "size": size, "content_type": "text/plain"}}}, "target": "production"});
    let big = vec![7u8; 2048];
    let big_hash = protocol::BlobHash::of(&big).to_hex();
    let deployments = "/projects/alpha/deployments";
    // (token, method, path, body, status, error code)
    type Case<'a> = (Option<&'a str>, Method, String, Body, u16, &'a str);
    let cases: Vec<Case> = vec![
        // Authentication.
        (
            None,
            Method::GET,
            "/projects".into(),
            Body::None,
            401,
            "unauthorized",
        ),
        (
            Some("opt_wrong"),
            Method::GET,
            "/projects".into(),
            Body::None,
            401,
            "unauthorized",
        ),
        // Unknown things.
        (
            token,
            Method::GET,
            "/projects/nope".into(),
            Body::None,
            404,
            "not_found",
        ),
        (
            token,
            Method::GET,
            "/no/such/route".into(),
            Body::None,
            404,
            "not_found",
        ),
        (
            token,
            Method::POST,
            "/deployments/nope/promote".into(),
            Body::None,
            404,
            "not_found",
        ),
        // Bodies.
        (
            token,
            Method::POST,
            "/projects".into(),
            Body::Raw("{nope", Some("application/json")),
            400,
            "bad_json",
        ),
        (
            token,
            Method::POST,
            "/projects".into(),
            Body::Raw("name=x", None),
            415,
            "unsupported_media_type",
        ),
        (
            token,
            Method::POST,
            "/projects".into(),
            Body::Json(json!({"name": "x".repeat(10_000)})),
            413,
            "payload_too_large",
        ),
        (
            token,
            Method::POST,
            "/projects".into(),
            Body::Json(json!({"name": "Bad_Name"})),
            400,
            "invalid_name",
        ),
        (
            token,
            Method::POST,
            "/projects".into(),
            Body::Json(json!({"name": "x", "extra": 1})),
            400,
            "bad_json",
        ),
        (
            token,
            Method::POST,
            "/projects".into(),
            Body::Json(json!({"name": "alpha"})),
            409,
            "conflict",
        ),
        (
            token,
            Method::GET,
            "/projects?limit=0".into(),
            Body::None,
            400,
            "bad_limit",
        ),
        // Manifests: traversal, backslashes, oversized and empty, bad hashes.
        (
            token,
            Method::POST,
            deployments.into(),
            Body::Json(manifest("../etc/passwd", 2)),
            400,
            "invalid_manifest",
        ),
        (
            token,
            Method::POST,
            deployments.into(),
            Body::Json(manifest("a\\b", 2)),
            400,
            "invalid_manifest",
        ),
        (
            token,
            Method::POST,
            deployments.into(),
            Body::Json(manifest("big.txt", 4096)),
            400,
            "invalid_manifest",
        ),
        (
            token,
            Method::POST,
            deployments.into(),
            Body::Json(json!({"manifest": {"format": 1, "files": {}}})),
            400,
            "invalid_manifest",
        ),
        (
            token,
            Method::POST,
            deployments.into(),
            Body::Json(
                json!({"manifest": {"format": 1, "files": {"a": {"hash": "zz", "size": 1, "content_type": "text/plain"}}}}),
            ),
            400,
            "bad_json",
        ),
        // Blobs: wrong bytes, bad name, too large.
        (
            token,
            Method::PUT,
            format!("/blobs/{h}"),
            Body::Raw("not hi", None),
            400,
            "hash_mismatch",
        ),
        (
            token,
            Method::PUT,
            "/blobs/xyz".into(),
            Body::Raw("hi", None),
            400,
            "bad_hash",
        ),
        (
            token,
            Method::PUT,
            format!("/blobs/{big_hash}"),
            Body::Bytes(big),
            413,
            "payload_too_large",
        ),
        // Pointer moves without a target.
        (
            token,
            Method::POST,
            "/projects/bravo/rollback".into(),
            Body::None,
            409,
            "no_production",
        ),
        // Join tokens.
        (
            token,
            Method::POST,
            "/join-tokens".into(),
            Body::Json(json!({"region": "Not A Label"})),
            400,
            "invalid_region",
        ),
        (
            token,
            Method::POST,
            "/join-tokens".into(),
            Body::Json(json!({"region": "fra", "ttl_seconds": 0})),
            400,
            "invalid_ttl",
        ),
    ];
    for (tok, method, path, body, status, code) in cases {
        expect_error(&api, tok, method, &path, body, status, code).await;
    }

    // Pagination follows the cursor to the end.
    let p1: Value = api.get_json("/projects?limit=2").await;
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let p2: Value = api
        .req(Method::GET, &format!("/projects?limit=2&cursor={cursor}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p2["items"][0]["name"], "charlie");
    assert!(p2["next_cursor"].is_null());

    // Upload protocol: missing blobs block finalize, then it goes through.
    let created: Value = api
        .req(Method::POST, deployments)
        .json(&manifest("hi.txt", 2))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["missing"], json!([h]));
    let id = created["deployment"]["id"].as_str().unwrap();
    let finalize = format!("/deployments/{id}/finalize");
    let body = expect_error(
        &api,
        token,
        Method::POST,
        &finalize,
        Body::None,
        409,
        "blobs_missing",
    )
    .await;
    assert_eq!(body["error"]["details"]["missing"], json!([h]));
    let put = api
        .req(Method::PUT, &format!("/blobs/{h}"))
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let done: Value = api
        .req(Method::POST, &finalize)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "ready");
    assert_eq!(done["is_production"], true);
    expect_error(
        &api,
        token,
        Method::POST,
        "/projects/alpha/rollback",
        Body::None,
        409,
        "no_previous",
    )
    .await;

    // The CLI turns typed errors into a readable message and a failure.
    let out = coord.cli(&["rollback", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

fn join_no_run(
    coord: &Coordinator,
    token: &str,
    region: &str,
    dir: &std::path::Path,
) -> (bool, String) {
    let out = std::process::Command::new(edge_bin())
        .args([
            "join",
            &coord.quic.to_string(),
            "--token",
            token,
            "--region",
            region,
            "--no-run",
            "--data-dir",
        ])
        .arg(dir)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn join_refuses_bad_reused_expired_and_foreign_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let other = Coordinator::start(&tmp.path().join("other"), None);
    let dir = |n: &str| tmp.path().join(n);

    let (ok, out) = join_no_run(&coord, "not-a-token", "fra", &dir("a"));
    assert!(!ok && out.contains("malformed join token"), "{out}");

    let good = coord.join_token("fra");
    let fingerprint = good.rsplit('_').next().unwrap();
    let forged = format!("opj_{}_{fingerprint}", "a".repeat(64));
    let (ok, out) = join_no_run(&coord, &forged, "fra", &dir("b"));
    assert!(!ok && out.contains("unknown token"), "{out}");

    // A token from another cluster pins another CA: the TLS handshake fails.
    let foreign = other.join_token("fra");
    let (ok, out) = join_no_run(&coord, &foreign, "fra", &dir("c"));
    assert!(
        !ok && out.contains("connecting to the coordinator"),
        "{out}"
    );

    let (ok, out) = join_no_run(&coord, &good, "ams", &dir("d"));
    assert!(!ok && out.contains("another region"), "{out}");

    let (ok, out) = join_no_run(&coord, &good, "fra", &dir("e"));
    assert!(ok, "{out}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir("e").join("node-key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (ok, out) = join_no_run(&coord, &good, "fra", &dir("f"));
    assert!(!ok && out.contains("already used"), "{out}");
    let (ok, out) = join_no_run(&coord, &coord.join_token("fra"), "fra", &dir("e"));
    assert!(
        !ok && out.contains("already holds a node identity"),
        "{out}"
    );

    let short: Value = serde_json::from_str(&coord.cli_ok(&[
        "token",
        "create-join",
        "--region",
        "fra",
        "--ttl",
        "1",
        "--json",
    ]))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, out) = join_no_run(&coord, short["token"].as_str().unwrap(), "fra", &dir("g"));
    assert!(!ok && out.contains("expired"), "{out}");
}

#[tokio::test]
async fn unknown_protocol_version_is_refused_clearly() {
    use protocol::wire::{
        decode_frame, encode_frame_with_version, CoordinatorMessage, EdgeRequest, ErrorCode,
        MAX_FRAME_BYTES,
    };
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let ca = std::fs::read(coord.ca_path()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in test_support::pem_certs(&ca) {
        roots.add(c).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![protocol::wire::ALPN.to_vec()];
    let cfg = quinn::ClientConfig::new(std::sync::Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap(),
    ));
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let conn = endpoint
        .connect_with(cfg, coord.quic, protocol::wire::COORDINATOR_NAME)
        .unwrap()
        .await
        .unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let frame = encode_frame_with_version(
        &EdgeRequest::GetBlob {
            hash: protocol::BlobHash::of(b"x"),
        },
        99,
    )
    .unwrap();
    send.write_all(&frame).await.unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    match decode_frame::<CoordinatorMessage>(&reply, MAX_FRAME_BYTES).unwrap() {
        CoordinatorMessage::Error(e) => {
            assert_eq!(e.code, ErrorCode::UnsupportedVersion);
            assert!(
                e.message.contains("99")
                    && e.message
                        .contains(&format!("version {}", protocol::wire::PROTOCOL_VERSION)),
                "{}",
                e.message
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }

    // Without a node certificate only `join` is allowed.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(
        &protocol::wire::encode_frame(&EdgeRequest::GetBlob {
            hash: protocol::BlobHash::of(b"x"),
        })
        .unwrap(),
    )
    .await
    .unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    assert!(matches!(
        decode_frame::<CoordinatorMessage>(&reply, MAX_FRAME_BYTES).unwrap(),
        CoordinatorMessage::Error(e) if e.code == ErrorCode::Unauthorized
    ));
}

#[tokio::test]
async fn edge_keeps_serving_without_the_coordinator_also_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let coord_dir = tmp.path().join("coord");
    let mut coord = Coordinator::start(&coord_dir, None);
    let edge_dir = tmp.path().join("edge");
    // A one-node cluster: with no peer to hand it the cluster key after a
    // restart, it keeps the key in a cache outside its data directory.
    let key_cache = tmp.path().join("run/edge.keys");
    std::fs::create_dir_all(key_cache.parent().unwrap()).unwrap();
    let cache_arg = key_cache.display().to_string();
    let mut edge =
        Edge::launch_join(&coord, "fra", &edge_dir, &["--key-cache", &cache_arg]).unwrap();
    let site = tmp.path().join("site");
    write_site(&site, "v1");
    coord.deploy(&site, "blog", true);
    served(&edge, "blog.localhost", "/", "v1").await;

    let quic = coord.quic.to_string();
    coord.proc.kill9();
    for _ in 0..5 {
        served(&edge, "blog.localhost", "/about", "about v1").await;
    }

    // Graceful stop, then a restart while the coordinator is still down.
    assert!(edge.proc.terminate().success(), "{}", edge.proc.log_text());
    let edge = Edge::launch_run(&coord.bins, &edge_dir, &["--key-cache", &cache_arg]).unwrap();
    served(&edge, "blog.localhost", "/", "v1").await;
    let https_ok = https_client(
        &std::fs::read(coord_dir.join("ca/ca.pem")).unwrap(),
        "blog.localhost",
        edge.https,
    )
    .get(format!("https://blog.localhost:{}/", edge.https.port()))
    .send()
    .await
    .unwrap();
    assert_eq!(https_ok.status(), 200);

    // The coordinator comes back on the same address: the edge relinks and
    // picks up new deployments.
    let coord = Coordinator::start_with(&coord_dir, None, &quic);
    write_site(&site, "v2");
    coord.deploy(&site, "blog", true);
    served(&edge, "blog.localhost", "/", "v2").await;
}

fn blob_path(edge_dir: &std::path::Path, content: &[u8]) -> std::path::PathBuf {
    let h = protocol::BlobHash::of(content).to_hex();
    edge_dir.join("blobs").join(&h[..2]).join(h)
}

#[tokio::test]
async fn corrupt_blob_on_edge_disk_is_never_served_and_is_refetched() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge_dir = tmp.path().join("edge");
    let edge = Edge::join(&coord, "fra", &edge_dir);
    let site = tmp.path().join("site");
    write_site(&site, "v1");
    coord.deploy(&site, "blog", true);
    served(&edge, "blog.localhost", "/", "v1").await;

    let path = blob_path(&edge_dir, b"about v1");
    std::fs::write(&path, b"ABOUT V1").unwrap();
    let (status, body, _) = edge.get("blog.localhost", "/about").await;
    assert_eq!(
        status, 503,
        "a corrupt blob must not be served (got {body:?})"
    );
    assert!(!body.contains("ABOUT"));
    served(&edge, "blog.localhost", "/about", "about v1").await;
    assert_eq!(std::fs::read(&path).unwrap(), b"about v1");
    assert!(edge.proc.log_text().contains("does not match its hash"));
}

#[tokio::test]
async fn edge_killed_mid_sync_serves_the_previous_bundle_then_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge_dir = tmp.path().join("edge");
    let mut edge = Edge::join(&coord, "fra", &edge_dir);
    let site = tmp.path().join("site");
    write_site(&site, "v1");
    coord.deploy(&site, "blog", true);
    served(&edge, "blog.localhost", "/", "v1").await;

    // v2 is large enough that the sync takes a while.
    write_site(&site, "v2");
    std::fs::create_dir_all(site.join("data")).unwrap();
    for i in 0..400u32 {
        let chunk: Vec<u8> = (0..64 * 1024u32)
            .map(|j| (j.wrapping_mul(31).wrapping_add(i * 7919) % 251) as u8)
            .collect();
        std::fs::write(site.join(format!("data/{i}.bin")), chunk).unwrap();
    }
    let before = count_blobs(&edge_dir);
    coord.deploy(&site, "blog", true);
    eventually(30, "the edge to start fetching v2", || async {
        (count_blobs(&edge_dir) > before).then_some(())
    })
    .await;
    edge.proc.kill9();
    let partial = count_blobs(&edge_dir);

    let edge = Edge::run(&edge_dir);
    // Whatever it serves right after the restart is one whole version.
    let (_, index, _) = edge.get("blog.localhost", "/").await;
    let (_, about, _) = edge.get("blog.localhost", "/about").await;
    let version = if index.contains("v2") { "v2" } else { "v1" };
    assert!(
        index.contains(version) && about == format!("about {version}"),
        "mixed: {index:?} / {about:?}"
    );
    if version == "v1" {
        assert!(partial < 400, "the kill landed mid-sync ({partial} blobs)");
    }
    served(&edge, "blog.localhost", "/", "v2").await;
    served(&edge, "blog.localhost", "/data/399.bin", "").await;
}

fn count_blobs(edge_dir: &std::path::Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(edge_dir.join("blobs")) else {
        return 0;
    };
    dirs.filter_map(Result::ok)
        .filter(|d| d.file_name() != "tmp")
        .map(|d| std::fs::read_dir(d.path()).map(|r| r.count()).unwrap_or(0))
        .sum()
}

/// Host names are owned by their project: a project named like another
/// project's deployment or branch host is refused, and a name that took
/// another project's host under the old `<project>-<deployment>` scheme
/// now gets only its own production host.
#[tokio::test]
async fn no_project_can_take_another_projects_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let site = tmp.path().join("site");
    write_site(&site, "the real shop");
    let d = coord.deploy(&site, "shop", true);
    let id = d["deployment"].as_str().unwrap().to_string();
    let victim_host = format!("{id}--shop.localhost");
    assert_eq!(d["url"], format!("http://{victim_host}/"));
    served(&edge, &victim_host, "/", "the real shop").await;

    let api = coord.api();
    for stolen in [format!("{id}--shop"), "git-main--shop".to_string()] {
        let r = api
            .req(Method::POST, "/projects")
            .json(&json!({ "name": stolen }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{stolen} must be refused");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_name", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("--"),
            "{body}"
        );
    }

    // The old attack: a project whose production host was the victim's
    // per-deployment host.
    let evil = tmp.path().join("evil");
    write_site(&evil, "pwned");
    let e = coord.deploy(&evil, &format!("shop-{id}"), true);
    assert_eq!(e["production_url"], format!("http://shop-{id}.localhost/"));
    served(&edge, &format!("shop-{id}.localhost"), "/", "pwned").await;
    let (status, body, headers) = edge.get(&victim_host, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("the real shop"), "{body}");
    assert_eq!(headers["x-outpost-deployment"], id.as_str());
}
