//! Functions end to end: wasi:http components deployed through the real
//! coordinator to a real edge node.

use crate::support::*;
use serde_json::Value;

fn site_with(dir: &std::path::Path, functions: &[(&str, &str)]) {
    write_site(dir, "fn-site");
    std::fs::create_dir_all(dir.join("api")).unwrap();
    for (name, fixture) in functions {
        std::fs::copy(
            test_support::wasm_fixture(fixture),
            dir.join(format!("api/{name}.wasm")),
        )
        .unwrap();
    }
}

async fn call(edge: &Edge, host: &str, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
    edge.get(host, path).await
}

#[tokio::test]
async fn functions_run_with_their_own_env_secrets_stay_secret_and_logs_arrive() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));

    coord.cli_ok(&["projects", "create", "blog"]);
    coord.cli_ok(&["projects", "create", "other"]);
    coord.cli_ok(&[
        "env",
        "set",
        "blog",
        "MODE=prod-mode",
        "--env",
        "production",
    ]);
    coord.cli_ok(&[
        "env",
        "set",
        "blog",
        "MODE=preview-mode",
        "--env",
        "preview",
    ]);
    coord.cli_ok(&[
        "env",
        "set",
        "blog",
        "API_SECRET=s3cr3t-value-42",
        "--secret",
    ]);
    coord.cli_ok(&["env", "set", "other", "OTHER_ONLY=theirs"]);

    let site = tmp.path().join("site");
    site_with(
        &site,
        &[("hello", "hello"), ("env", "env"), ("logs", "logs")],
    );
    let d = coord.deploy(&site, "blog", true);
    let functions: Vec<String> = serde_json::from_value(d["functions"].clone()).unwrap();
    assert!(functions.contains(&"/api/hello".to_string()), "{d}");
    let other_site = tmp.path().join("other-site");
    site_with(&other_site, &[("env", "env")]);
    coord.deploy(&other_site, "other", true);

    eventually(30, "hello to answer", || async {
        let (s, body, _) = call(&edge, "blog.localhost", "/api/hello").await;
        (s == 200 && body.contains("hello from wasm")).then_some(())
    })
    .await;
    // Static files still work next to functions; components are not served.
    let (s, body, _) = call(&edge, "blog.localhost", "/").await;
    assert!(s == 200 && body.contains("fn-site"));
    let (s, _, _) = call(&edge, "blog.localhost", "/api/hello.wasm").await;
    assert_ne!(s, 200, "a component must not be downloadable");

    // Variables: its own project's, for the host's environment.
    let (s, body, _) = call(&edge, "blog.localhost", "/api/env?name=API_SECRET").await;
    assert_eq!((s, body.as_str()), (200, "s3cr3t-value-42"));
    let (_, body, _) = call(&edge, "blog.localhost", "/api/env?name=MODE").await;
    assert_eq!(body, "prod-mode");
    let (s, _, _) = call(&edge, "blog.localhost", "/api/env?name=OTHER_ONLY").await;
    assert_eq!(s, 404, "blog must not see other's variables");
    let (s, body, _) = call(&edge, "other.localhost", "/api/env?name=OTHER_ONLY").await;
    assert_eq!((s, body.as_str()), (200, "theirs"));
    let (s, _, _) = call(&edge, "other.localhost", "/api/env?name=API_SECRET").await;
    assert_eq!(s, 404, "other must not see blog's secret");
    let (_, all, _) = call(&edge, "blog.localhost", "/api/env").await;
    assert!(
        !all.contains("PATH=") && !all.contains("HOME="),
        "host environment leaked: {all}"
    );

    // A preview deployment gets preview variables.
    let preview = coord.deploy(&site, "blog", false);
    let preview_host = format!(
        "{}--blog.localhost",
        preview["deployment"].as_str().unwrap()
    );
    eventually(30, "preview env", || async {
        let (_, body, _) = call(&edge, &preview_host, "/api/env?name=MODE").await;
        (body == "preview-mode").then_some(())
    })
    .await;

    // Setting a variable reaches running edges without a redeploy.
    coord.cli_ok(&["env", "set", "blog", "MODE=changed", "--env", "production"]);
    eventually(30, "changed variable", || async {
        let (_, body, _) = call(&edge, "blog.localhost", "/api/env?name=MODE").await;
        (body == "changed").then_some(())
    })
    .await;

    // The secret is never returned by the API nor written to any log.
    let listed = coord.cli_ok(&["env", "ls", "blog", "--json"]);
    assert!(!listed.contains("s3cr3t"), "{listed}");
    let vars: Value = serde_json::from_str(&listed).unwrap();
    let secret = vars
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "API_SECRET")
        .unwrap();
    assert_eq!(secret["secret"], true);
    assert!(secret["value"].is_null());

    // Function logs reach the coordinator with their request id.
    let (s, body, headers) = call(&edge, "blog.localhost", "/api/logs?n=2").await;
    assert_eq!((s, body.as_str()), (200, "logged"));
    let request_id = headers["x-request-id"].to_str().unwrap().to_string();
    let lines: Vec<Value> = eventually(30, "function logs at the coordinator", || async {
        let out = coord.cli_ok(&["logs", "blog", "--json"]);
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mine: Vec<Value> = lines
            .into_iter()
            .filter(|l| l["request_id"] == request_id.as_str())
            .collect();
        (mine.len() >= 5).then_some(mine)
    })
    .await;
    assert!(lines.iter().any(|l| l["stream"] == "stderr"));
    assert!(lines.iter().all(|l| l["deployment"] == d["deployment"]));
    let stdout_only = coord.cli_ok(&["logs", "blog", "--json", "--stream", "stdout"]);
    assert!(stdout_only.lines().all(|l| l.contains("\"stdout\"")));
    let api = coord.api();
    let resp = api
        .req(reqwest::Method::GET, "/projects/blog/logs?stream=both")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    for log in [coord.proc.log_text(), edge.proc.log_text()] {
        assert!(!log.contains("s3cr3t-value-42"), "a secret reached a log");
    }
}

#[tokio::test]
async fn broken_components_are_refused_before_any_edge_sees_them() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let site = tmp.path().join("site");
    site_with(&site, &[("hello", "hello")]);
    coord.deploy(&site, "blog", true);

    for (name, bytes) in [
        ("garbage", b"this is not wasm".to_vec()),
        ("core", vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
    ] {
        let bad = tmp.path().join(format!("bad-{name}"));
        write_site(&bad, "bad");
        std::fs::create_dir_all(bad.join("api")).unwrap();
        std::fs::write(bad.join("api/broken.wasm"), bytes).unwrap();
        let out = coord.cli(&[
            "deploy",
            bad.to_str().unwrap(),
            "--project",
            "blog",
            "--prod",
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/api/broken") && err.contains("invalid_function"),
            "{err}"
        );
    }
    let p: Value = serde_json::from_str(&coord.cli_ok(&["projects", "--json"])).unwrap();
    let deployments = coord.cli_ok(&["deployments", "blog", "--json"]);
    let page: Value = serde_json::from_str(&deployments).unwrap();
    let ready = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "ready")
        .count();
    assert_eq!(ready, 1, "broken deployments must never become ready");
    assert_eq!(
        p[0]["production_deployment"],
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["status"] == "ready")
            .unwrap()["id"]
    );

    // A bad outpost.toml is refused by the CLI with a clear message.
    std::fs::write(
        site.join("outpost.toml"),
        "[[functions]]\nroute = \"nope\"\ncomponent = \"api/hello.wasm\"\n",
    )
    .unwrap();
    let out = coord.cli(&["deploy", site.to_str().unwrap(), "--project", "blog"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("outpost.toml"));
}

#[tokio::test]
async fn outbound_is_refused_unless_listed_and_never_to_private_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    // Something to (not) reach on loopback.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = upstream.local_addr().unwrap().port();

    let site = tmp.path().join("site");
    site_with(&site, &[("fetch", "outbound")]);
    coord.deploy(&site, "blog", true);
    let path = format!("/api/fetch?url=http%3A%2F%2Flocalhost%3A{port}%2F");
    let (s, body, _) = eventually(30, "the outbound function", || async {
        let r = call(&edge, "blog.localhost", &path).await;
        (r.0 != 404 && r.0 != 503).then_some(r)
    })
    .await;
    assert_eq!(s, 502, "not listed: refused ({body})");

    // Listed, but localhost is loopback: still refused by default.
    coord.cli_ok(&["outbound", "blog", "localhost"]);
    let listed = coord.cli_ok(&["outbound", "blog"]);
    assert!(listed.contains("localhost"));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let (s, body, _) = call(&edge, "blog.localhost", &path).await;
    assert_eq!(s, 502, "loopback must be refused ({body})");
    let out = coord.cli(&["outbound", "blog", "bad host!"]);
    assert!(!out.status.success());
}

#[tokio::test]
async fn misbehaving_functions_fail_alone_and_the_node_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let site = tmp.path().join("site");
    site_with(
        &site,
        &[
            ("hello", "hello"),
            ("panic", "panic"),
            ("loop", "loop"),
            ("memhog", "memhog"),
            ("echo", "echo"),
        ],
    );
    std::fs::write(
        site.join("outpost.toml"),
        "[[functions]]\nroute = \"/api/loop\"\ncomponent = \"api/loop.wasm\"\ntimeout = \"1s\"\n\n\
         [[functions]]\nroute = \"/api/memhog\"\ncomponent = \"api/memhog.wasm\"\nmemory = \"32MiB\"\n",
    )
    .unwrap();
    coord.deploy(&site, "blog", true);
    eventually(30, "hello to answer", || async {
        let (s, _, _) = call(&edge, "blog.localhost", "/api/hello").await;
        (s == 200).then_some(())
    })
    .await;

    // The infinite loop is cut off at its timeout while hello keeps answering.
    let looping = {
        let url = format!("http://{}/api/loop", edge.http);
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = http_client()
                .get(url)
                .header("Host", "blog.localhost")
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers().get("x-request-id").is_some(),
                started.elapsed(),
            )
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for _ in 0..5 {
        let (s, body, _) = call(&edge, "blog.localhost", "/api/hello").await;
        assert_eq!((s, body.contains("hello")), (200, true));
    }
    let (status, has_id, took) = looping.await.unwrap();
    assert_eq!(status, 504);
    assert!(has_id, "errors carry a request id");
    assert!(
        took < std::time::Duration::from_secs(10),
        "the 1 s timeout applied ({took:?})"
    );

    let (s, _, h) = call(&edge, "blog.localhost", "/api/panic").await;
    assert_eq!(s, 500);
    assert!(h.contains_key("x-request-id"));
    let (s, _, _) = call(&edge, "blog.localhost", "/api/memhog").await;
    assert!((500..600).contains(&s), "memory blow-up answered {s}");

    // Streaming body in and out through the edge.
    let body = vec![b'x'; 3 * 1024 * 1024];
    let r = http_client()
        .post(format!("http://{}/api/echo?q=1", edge.http))
        .header("Host", "blog.localhost")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), body.len());

    let (s, body, _) = call(&edge, "blog.localhost", "/api/hello").await;
    assert_eq!((s, body.contains("hello")), (200, true));
}

/// After a restart the node loads the code of the functions it serves on
/// its own (from its disk cache), so no function's first request waits for
/// it; `status.json` says so before any request was made.
#[tokio::test]
async fn a_restarted_edge_loads_its_functions_before_any_request() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge_dir = tmp.path().join("edge");
    let mut edge = Edge::join(&coord, "fra", &edge_dir);
    let site = tmp.path().join("site");
    site_with(&site, &[("hello", "hello"), ("echo", "echo")]);
    coord.deploy(&site, "warm", true);
    eventually(30, "hello to answer", || async {
        let (s, _, _) = call(&edge, "warm.localhost", "/api/hello").await;
        (s == 200).then_some(())
    })
    .await;

    assert!(edge.proc.terminate().success(), "{}", edge.proc.log_text());
    let edge = Edge::run(&edge_dir);
    // Loading is a compile when the cache misses; under a full parallel
    // test run on two cores that can take a while.
    let functions = eventually(90, "both components loaded", || async {
        let f = crate::support::node_status(&edge.dir).ok()?.functions;
        (f.loaded == 2).then_some(f)
    })
    .await;
    assert_eq!(
        (
            functions.loaded_from_cache,
            functions.compiled,
            functions.invocations
        ),
        (2, 0, 0),
        "loaded from the disk cache, before any request"
    );
    let (s, body, _) = call(&edge, "warm.localhost", "/api/hello").await;
    assert_eq!((s, body.as_str()), (200, "hello from wasm"));
}
