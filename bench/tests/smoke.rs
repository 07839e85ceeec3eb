//! A few seconds of each subcommand on tiny clusters, so the benchmarks
//! keep working. Figures are not checked: measuring is `bench`'s job.

use std::path::PathBuf;
use std::process::Command;

fn run(args: &[&str]) -> serde_json::Value {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    let bins = bench.parent().unwrap();
    assert!(
        bins.join("edge-node").exists() && bins.join("coordinator").exists(),
        "build every binary first: cargo build --workspace --bins"
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(&bench)
        .args(args)
        .arg("--out")
        .arg(out_dir.path())
        .arg("--timeout")
        .arg("60s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bench {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(out_dir.path().join("report.md")).unwrap();
    assert!(md.contains("|---|"), "a Markdown table: {md}");
    serde_json::from_slice(&std::fs::read(out_dir.path().join("report.json")).unwrap()).unwrap()
}

#[test]
fn membership_smoke() {
    let r = run(&["membership", "--nodes", "2", "--rounds", "1"]);
    assert_eq!(r["results"][0]["nodes"], 2);
}

#[test]
fn propagate_smoke() {
    let r = run(&[
        "propagate",
        "--nodes",
        "2",
        "--deploys",
        "1",
        "--changed-files",
        "2",
        "--file-size",
        "1000",
        "--stable-files",
        "2",
    ]);
    assert_eq!(r["results"].as_array().unwrap().len(), 2);
}

#[test]
fn static_smoke() {
    let r = run(&[
        "static",
        "--duration",
        "300ms",
        "--rounds",
        "2",
        "--protos",
        "h1,h2",
        "--concurrency",
        "2",
        "--sites",
        "3",
    ]);
    let rows = r["results"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "3 files x 2 protocols");
    for row in rows {
        assert!(row["edge"]["rps"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["nginx"]["rps"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["reference_proto"], row["proto"], "{row}");
    }
    let rss = &r["rss"];
    assert_eq!(rss["sites"], 3, "{rss}");
    assert!(rss["edge_idle_bytes"].as_u64().unwrap() > 0, "{rss}");
    assert!(rss["nginx_idle_bytes"].as_u64().unwrap() > 0, "{rss}");
    let load = rss["under_load"].as_array().unwrap();
    assert_eq!(load.len(), 2, "one 1 MB row per protocol: {rss}");
    assert!(load[0]["edge_peak_bytes"].as_u64().unwrap() > 0, "{rss}");
}

/// HTTP/3 at the edge against nginx's HTTP/2.
#[test]
fn static_h3_smoke() {
    let r = run(&[
        "static",
        "--duration",
        "300ms",
        "--rounds",
        "2",
        "--protos",
        "h3",
        "--concurrency",
        "2",
        "--sites",
        "1",
    ]);
    let rows = r["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "3 files over HTTP/3");
    for row in rows {
        assert_eq!(row["proto"], "h3", "{row}");
        assert_eq!(row["reference_proto"], "h2", "{row}");
        assert!(row["edge"]["rps"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["edge"]["errors"], 0, "{row}");
    }
}

#[test]
fn constant_rate_smoke() {
    let r = run(&[
        "static",
        "--duration",
        "300ms",
        "--rounds",
        "2",
        "--protos",
        "h1",
        "--rate",
        "200",
        "--concurrency",
        "2",
        "--sites",
        "1",
    ]);
    assert_eq!(r["results"][0]["mode"]["Rate"]["rate"], 200);
}

#[test]
fn tls_smoke() {
    if Command::new("pebble").arg("-h").output().is_err() {
        eprintln!("SKIPPING tls_smoke: pebble is not installed (Debian package pebble)");
        return;
    }
    let r = run(&["tls", "--duration", "1s", "--concurrency", "2"]);
    let t = &r["results"][0];
    assert!(t["edge"]["handshakes_per_s"].as_f64().unwrap() > 0.0, "{t}");
    assert!(
        t["nginx"]["handshakes_per_s"].as_f64().unwrap() > 0.0,
        "{t}"
    );
}

#[test]
fn function_smoke() {
    // `cargo test --workspace` builds edge-node's examples, bare_host among them.
    let r = run(&["function", "--duration", "300ms", "--concurrency", "2"]);
    let f = &r["results"][0];
    assert!(f["edge"]["rps"].as_f64().unwrap() > 0.0, "{f}");
    assert!(f["bare"]["rps"].as_f64().unwrap() > 0.0, "{f}");
    assert!(
        f["first_request_after_restart_ms"].as_f64().unwrap() > 0.0,
        "{f}"
    );
}

#[test]
fn build_smoke() {
    for tool in ["bwrap", "git"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            eprintln!("\n\n!!!!! SKIPPING build_smoke: `{tool}` is not installed !!!!!\n\n");
            return;
        }
    }
    let r = run(&["build", "--files", "20", "--rounds", "1"]);
    let b = &r["results"][0];
    assert_eq!(b["build_rounds"].as_array().unwrap().len(), 2, "{b}");
    assert_eq!(b["reference_rounds"].as_array().unwrap().len(), 2, "{b}");
    let warm = &b["build_rounds"][1];
    assert!(warm["new_blobs"].as_u64().unwrap() >= 1, "{warm}");
    assert!(
        warm["new_blobs"].as_u64().unwrap() < warm["blobs"].as_u64().unwrap(),
        "a one-file change stores only what changed: {warm}"
    );
}

/// A loopback HTTP server answering every connection with one response.
fn tiny_server() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    addr
}

#[test]
fn probe_smoke() {
    let addr = tiny_server();
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(&bench)
        .args(["probe", "--count", "3", "--interval", "10ms", "--connect"])
        .arg(addr.to_string())
        .arg("http://edge.localhost/")
        .arg(format!("http://{addr}/x?y=1"))
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("report.json")).unwrap())
            .unwrap();
    for target in r["results"].as_array().unwrap() {
        assert_eq!(target["samples"], 3, "{target}");
        assert!(target["first_byte"]["p50_ms"].as_f64().unwrap() > 0.0);
    }
}

/// A loopback HTTP/3 server (h3 over quinn) answering every request with
/// 200 and "ok", its certificate for `localhost` signed by the CA returned.
fn tiny_h3_server() -> (std::net::SocketAddr, String) {
    use std::sync::Arc;
    let (ca, cert, key) = test_support::tls::loopback_cert("probe CA");
    let key = rustls_pemfile::private_key(&mut key.as_bytes())
        .unwrap()
        .unwrap();
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(test_support::pem_certs(cert.as_bytes()), key)
    .unwrap();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let endpoint = quinn::Endpoint::server(
                quinn::ServerConfig::with_crypto(Arc::new(quic)),
                "127.0.0.1:0".parse().unwrap(),
            )
            .unwrap();
            tx.send(endpoint.local_addr().unwrap()).unwrap();
            while let Some(incoming) = endpoint.accept().await {
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    let Ok(mut h3conn) = h3::server::Connection::<_, bytes::Bytes>::new(
                        h3_quinn::Connection::new(conn),
                    )
                    .await
                    else {
                        return;
                    };
                    while let Ok(Some(resolver)) = h3conn.accept().await {
                        tokio::spawn(async move {
                            let Ok((_, mut stream)) = resolver.resolve_request().await else {
                                return;
                            };
                            let resp = http::Response::builder().status(200).body(()).unwrap();
                            let _ = stream.send_response(resp).await;
                            let _ = stream.send_data(bytes::Bytes::from_static(b"ok")).await;
                            let _ = stream.finish().await;
                        });
                    }
                });
            }
        });
    });
    (rx.recv().unwrap(), ca)
}

#[test]
fn probe_http3_smoke() {
    let (addr, ca) = tiny_h3_server();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    let out = Command::new(&bench)
        .args(["probe", "--http3", "--count", "3", "--interval", "10ms"])
        .arg("--connect")
        .arg(addr.to_string())
        .arg("--cacert")
        .arg(dir.path().join("ca.pem"))
        .arg(format!("https://localhost:{}/x?y=1", addr.port()))
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out").join("report.json")).unwrap())
            .unwrap();
    let target = &r["results"][0];
    assert_eq!(target["protocol"], "HTTP/3", "{target}");
    assert_eq!(target["samples"], 3, "{target}");
    assert!(
        target["connect"]["p50_ms"].as_f64().unwrap() > 0.0,
        "{target}"
    );
    assert!(
        target["first_byte"]["p50_ms"].as_f64().unwrap() > 0.0,
        "{target}"
    );

    // Nothing serving HTTP/3 there: every probe fails, within its timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = Command::new(&bench)
        .args(["probe", "--http3", "--count", "1", "--timeout", "1s"])
        .arg("--connect")
        .arg(silent.local_addr().unwrap().to_string())
        .arg("https://localhost/")
        .arg("--out")
        .arg(dir.path().join("out2"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("every probe failed"),
        "{err}"
    );
}

/// Mixed traffic through one edge, two windows: every kind answered as
/// expected (200s and 404s), resources read.
#[test]
fn soak_smoke() {
    let r = run(&[
        "soak",
        "--duration",
        "2s",
        "--window",
        "1s",
        "--rate",
        "60",
        "--connections",
        "1",
    ]);
    let report = &r["results"][0];
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["windows"].as_array().unwrap().len(), 2);
    assert_eq!(report["kinds"].as_array().unwrap().len(), 6);
    assert!(report["end"]["fds"].as_u64().unwrap() > 0);
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_bench"));
    for (args, needle) in [
        (vec!["membership", "--nodes", "1"], "--nodes must be"),
        (vec!["propagate", "--deploys", "0"], "--deploys must be"),
        (vec!["build", "--rounds", "0"], "--rounds must be"),
        (vec!["static", "--sites", "0"], "--sites must be"),
        (vec!["static", "--rounds", "0"], "--rounds must be"),
        (vec!["static", "--duration", "300ms"], "--rounds must be"),
        (vec!["soak", "--rate", "0"], "--rate must be"),
        (vec!["soak", "--window", "0s"], "--window must be"),
        (
            vec!["soak", "--duration", "1m", "--window", "2m"],
            "--window must be",
        ),
        (
            vec!["membership", "--bin-dir", "/nonexistent"],
            "is missing",
        ),
    ] {
        let out = Command::new(&bench).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
}
