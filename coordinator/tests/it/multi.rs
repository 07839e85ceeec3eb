//! Several coordinators on one Postgres and one S3 store (a real Garage):
//! they bootstrap one cluster, any of them takes any request, blobs live
//! in the object store, edges fail over when their coordinator dies, and
//! an object store that is down fails uploads clearly while edges serve on.

use std::time::Duration;

use futures::StreamExt;

use crate::store_suite::PgDb;
use crate::support::*;
use test_support::garage::{self, Garage};

/// Every coordinator of one cluster shares this instance secret key.
const SECRET_KEY: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";

async fn served(edge: &Edge, host: &str, want: &str) {
    eventually(45, &format!("{host} to serve {want:?}"), || async {
        let (status, body, _) = edge.get(host, "/").await;
        (status == 200 && body.contains(want)).then_some(())
    })
    .await
}

fn member(dir: &std::path::Path, toml: &str, extra: &[&str], token: Option<&str>) -> Coordinator {
    Coordinator::launch_member(
        &Bins::of_tests(),
        dir,
        Some(toml),
        "127.0.0.1:0",
        &[("OUTPOST_SECRET_KEY", SECRET_KEY)],
        extra,
        token,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The status of `GET /api/v1/projects` there, with the admin token.
async fn projects_status(c: &Coordinator) -> u16 {
    c.api()
        .req(reqwest::Method::GET, "/projects")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn coordinators_share_postgres_and_garage_and_edges_fail_over() {
    if !garage::available() {
        eprintln!("SKIPPING: garage is not installed (.ci/run installs it with cargo install)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = Garage::start(&tmp.path().join("garage")).unwrap();
    let (db_url, _db) = PgDb::new_database().await;
    let toml = format!(
        "database_url = \"{db_url}\"\n{}",
        store.blobs_toml("cluster-a")
    );

    // Two coordinators started at once on an empty database make one
    // cluster: one CA, one signing key, one admin token.
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let (ta, tb) = (toml.clone(), toml.clone());
    let ha = std::thread::spawn(move || member(&da, &ta, &[], Some("")));
    let hb = std::thread::spawn(move || member(&db, &tb, &[], Some("")));
    let (mut a, mut b) = (ha.join().unwrap(), hb.join().unwrap());
    for f in [
        "ca.pem",
        "ca-key.pem",
        "identity-ca-key.pem",
        "hosts-ca-key.pem",
        "config-key.pk8",
    ] {
        assert_eq!(
            std::fs::read(a.dir.join("ca").join(f)).unwrap(),
            std::fs::read(b.dir.join("ca").join(f)).unwrap(),
            "{f} is the cluster's, not each coordinator's"
        );
    }
    let tokens: Vec<String> = [&a, &b]
        .iter()
        .filter_map(|c| std::fs::read_to_string(c.dir.join("admin-token")).ok())
        .collect();
    assert_eq!(
        tokens.len(),
        1,
        "exactly one coordinator made the admin token"
    );
    let token = tokens[0].trim().to_string();
    a.token = token.clone();
    b.token = token.clone();
    for c in [&a, &b] {
        assert_eq!(
            projects_status(c).await,
            200,
            "the one admin token works on every coordinator"
        );
    }

    // A builder serves its health and nothing of the API.
    let builder = member(
        &tmp.path().join("c"),
        &toml,
        &["--role", "builder"],
        Some(&token),
    );
    let health = http_client()
        .get(format!("{}/healthz", builder.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok: builder\n");
    assert_eq!(projects_status(&builder).await, 404, "a builder has no API");

    // Edges join through either coordinator.
    let e1 = Edge::join(&a, "fra", &tmp.path().join("e1"));
    let e2 = Edge::join(&b, "fra", &tmp.path().join("e2"));

    // Deploy through A, promote through B: both edges serve it.
    let site = tmp.path().join("site");
    write_site(&site, "v1");
    a.deploy(&site, "shop", true);
    served(&e1, "shop.localhost", "v1").await;
    served(&e2, "shop.localhost", "v1").await;
    write_site(&site, "v2");
    let d2 = a.deploy(&site, "shop", false);
    b.cli_ok(&["promote", d2["deployment"].as_str().unwrap()]);
    served(&e1, "shop.localhost", "v2").await;
    served(&e2, "shop.localhost", "v2").await;
    assert!(
        !a.dir.join("blobs").join("blobs").exists() && !b.dir.join("blobs").join("blobs").exists(),
        "blobs live in the object store, not on a coordinator's disk"
    );

    // A blob of several parts (multipart upload into Garage), uploaded
    // through B and fetched by the edges through either coordinator.
    let big: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(site.join("big.bin"), &big).unwrap();
    write_site(&site, "v3");
    let d3 = b.deploy(&site, "shop", true);
    assert!(d3["uploaded_bytes"].as_u64().unwrap() > 20_000_000, "{d3}");
    served(&e1, "shop.localhost", "v3").await;
    served(&e2, "shop.localhost", "v3").await;
    for e in [&e1, &e2] {
        let body = http_client()
            .get(format!("http://{}/big.bin", e.http))
            .header("Host", "shop.localhost")
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert!(
            body == big,
            "the 20 MB blob arrives whole ({} bytes)",
            body.len()
        );
    }

    // A dies without a word in the middle of an upload and of a deploy's
    // propagation: nothing of the upload is visible and it goes through B;
    // the deploy A published reaches every edge (A's own through B).
    let blob: Vec<u8> = (0..40_000_000u32)
        .map(|i| (i.wrapping_mul(40_503) >> 9) as u8)
        .collect();
    let hash = protocol::BlobHash::of(&blob).to_hex();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        blob.chunks(1 << 20).map(|c| Ok(c.to_vec())).collect();
    let slow = futures::stream::iter(chunks).then(|c| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c
    });
    let upload = a
        .api()
        .req(reqwest::Method::PUT, &format!("/blobs/{hash}"))
        .body(reqwest::Body::wrap_stream(slow))
        .send();
    let upload = tokio::spawn(upload);
    write_site(&site, "v4");
    a.deploy(&site, "shop", true);
    a.proc.kill9();
    assert!(upload.await.unwrap().is_err(), "A died mid-upload");
    let missing = |c: &Coordinator| {
        let (api, hash) = (c.api(), hash.clone());
        async move {
            let m: serde_json::Value = api
                .req(reqwest::Method::POST, "/blobs/missing")
                .json(&serde_json::json!({ "hashes": [hash] }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            m["missing"].as_array().unwrap().len() == 1
        }
    };
    assert!(missing(&b).await, "half an upload is never a blob");
    let r = b
        .api()
        .req(reqwest::Method::PUT, &format!("/blobs/{hash}"))
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert!(!missing(&b).await);

    served(&e1, "shop.localhost", "v4").await;
    served(&e2, "shop.localhost", "v4").await;
    // With A gone its edge follows what B publishes.
    write_site(&site, "v4b");
    b.deploy(&site, "shop", true);
    served(&e1, "shop.localhost", "v4b").await;
    served(&e2, "shop.localhost", "v4b").await;

    // The object store down: an upload fails, clearly and soon; the edges
    // serve on; once it is back the same deploy goes through.
    store.stop();
    write_site(&site, "v5");
    let started = std::time::Instant::now();
    let failed = b.cli(&[
        "deploy",
        &site.display().to_string(),
        "--project",
        "shop",
        "--prod",
    ]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("blob storage is unavailable"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "a store that is down fails the upload soon, not after minutes"
    );
    served(&e1, "shop.localhost", "v4b").await;
    store.resume().unwrap();
    eventually(60, "a deploy once the store is back", || async {
        b.cli(&[
            "deploy",
            &site.display().to_string(),
            "--project",
            "shop",
            "--prod",
        ])
        .status
        .success()
        .then_some(())
    })
    .await;
    served(&e1, "shop.localhost", "v5").await;
    served(&e2, "shop.localhost", "v5").await;
    drop(builder);
}

/// Builds run on the builder, never on an API coordinator; an SSE reader on
/// the API coordinator follows a build running on the builder; a builder
/// killed mid-build leaves the build to another builder, which finishes it.
#[tokio::test]
async fn builds_run_on_builders_and_move_when_one_dies() {
    use crate::support::webhooks::{commit, have, init, queue_build, sse, wait_status};
    if !garage::available() || !have("bwrap") || !have("npm") {
        eprintln!("SKIPPING: needs garage, bubblewrap and npm (.ci/run installs them)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The unprivileged build user reaches the work directories through it.
    std::fs::set_permissions(
        tmp.path(),
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o711),
    )
    .unwrap();
    let store = Garage::start(&tmp.path().join("garage")).unwrap();
    let (db_url, _db) = PgDb::new_database().await;
    let shared = format!(
        "database_url = \"{db_url}\"\n{}",
        store.blobs_toml("builds")
    );
    let builds = |name: &str| {
        format!(
            "{shared}\n[builds]\nallow_local_git = true\ntimeout = \"5m\"\nconcurrency = 1\nwork_dir = \"{}\"\n",
            tmp.path().join(name).display()
        )
    };
    let api_coord = member(
        &tmp.path().join("api"),
        &builds("api-work"),
        &["--role", "api"],
        None,
    );
    let token = api_coord.token.clone();
    let edge = Edge::join(&api_coord, "fra", &tmp.path().join("edge"));
    let mut first = member(
        &tmp.path().join("b1"),
        &builds("b1-work"),
        &["--role", "builder"],
        Some(&token),
    );

    let repo = tmp.path().join("repo");
    init(&repo);
    commit(
        &repo,
        &[
            (
                "package.json",
                r#"{"name":"site","version":"1.0.0","private":true}"#,
            ),
            ("index.html", "<h1>built by a builder</h1>"),
        ],
        "First page",
    );
    let api = api_coord.api();
    let url = format!("file://{}", repo.display());
    let r = api
        .req(reqwest::Method::POST, "/projects")
        .json(&serde_json::json!({"name": "site", "git": {"url": url,
            "build_command": "echo started; sleep 4; mkdir -p dist && cp index.html dist/",
            "output_dir": "dist"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Built on the builder, followed live through the API coordinator.
    let id = queue_build(&api, "site").await;
    let events = sse(&api, &id).await;
    assert!(
        events.contains("started") && events.contains("ready"),
        "{events}"
    );
    served(&edge, "site.localhost", "built by a builder").await;
    assert!(
        !tmp.path().join("api-work").join("jobs").exists(),
        "an API coordinator never runs a build"
    );
    assert!(tmp.path().join("b1-work").join("jobs").exists());

    // The builder dies mid-build; another builder finishes it.
    let id2 = queue_build(&api, "site").await;
    eventually(60, "the build to start", || async {
        let logs = api
            .get_json(&format!("/deployments/{id2}/build-logs"))
            .await;
        logs["items"].to_string().contains("started").then_some(())
    })
    .await;
    first.proc.kill9();
    let _second = member(
        &tmp.path().join("b2"),
        &builds("b2-work"),
        &["--role", "builder"],
        Some(&token),
    );
    let b = wait_status(&api, &id2, "ready", 120).await;
    assert_eq!(b["attempts"], 2, "{b}");
    let logs = api
        .get_json(&format!("/deployments/{id2}/build-logs"))
        .await;
    assert!(logs["items"].to_string().contains("re-queued"), "{logs}");
}
