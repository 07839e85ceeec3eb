//! The platform keeps deploying when history grows: no message, row or
//! structure carries every deployment. Before the config became a change
//! log, every deploy sent each edge every manifest ever made, and past a
//! few hundred deployments of a thousand-file site the config no longer
//! fit in a frame (64 MiB): nothing deployed any more.

use protocol::{BlobHash, FileEntry, Manifest};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

/// The manifest of deployment `n`: a thousand files sharing one blob,
/// plus an index page of its own.
fn manifest(shared: BlobHash, own: (BlobHash, u64), files: usize) -> Manifest {
    let mut m = std::collections::BTreeMap::new();
    for i in 0..files {
        m.insert(
            format!("assets/chunk-{i:04}-0123456789abcdef.js"),
            FileEntry {
                hash: shared,
                size: 6,
                content_type: "text/javascript".into(),
                variants: vec![],
            },
        );
    }
    m.insert(
        "index.html".into(),
        FileEntry {
            hash: own.0,
            size: own.1,
            content_type: "text/html".into(),
            variants: vec![],
        },
    );
    Manifest::new(m)
}

async fn put_blob(api: &Api, bytes: &[u8]) -> BlobHash {
    let h = BlobHash::of(bytes);
    let r = api
        .req(Method::PUT, &format!("/blobs/{h}"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    h
}

/// Creates a deployment of `project` with `m` and finalizes it; its id.
async fn deploy_manifest(api: &Api, project: &str, m: &Manifest, target: &str) -> String {
    let staged: Value = api
        .req(Method::POST, &format!("/projects/{project}/deployments"))
        .json(&json!({ "manifest": m, "target": target }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(staged["missing"], json!([]), "{staged}");
    let id = staged["deployment"]["id"].as_str().unwrap().to_string();
    let r = api
        .req(Method::POST, &format!("/deployments/{id}/finalize"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{id}: {}", r.text().await.unwrap());
    id
}

#[tokio::test]
async fn deploys_keep_going_far_past_what_one_config_frame_could_hold() {
    const FILES: usize = 1000;
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let api = coord.api();
    api.create_project("big").await;
    let shared = put_blob(&api, b"chunk\n").await;

    // Enough deployments that their manifests together are over 64 MiB.
    let one = manifest(shared, (BlobHash::of(b"x"), 1), FILES)
        .canonical_bytes()
        .len();
    let count = (64 << 20) / one + 50;
    let mut last = String::new();
    for n in 0..count {
        let page = format!("<h1>deployment {n}</h1>");
        let own = put_blob(&api, page.as_bytes()).await;
        let m = manifest(shared, (own, page.len() as u64), FILES);
        let target = if n + 1 == count {
            "production"
        } else {
            "preview"
        };
        last = deploy_manifest(&api, "big", &m, target).await;
    }
    assert!(count * one > 64 << 20);

    // The newest deployment is live everywhere: production, and its own
    // host served on demand; an old one still answers at its own host.
    let want = format!("deployment {}", count - 1);
    eventually(60, "production to serve the newest deployment", || async {
        let (s, body, _) = edge.get("big.localhost", "/").await;
        (s == 200 && body.contains(&want)).then_some(())
    })
    .await;
    let (s, body, _) = edge.get(&format!("{last}--big.localhost"), "/").await;
    assert_eq!(s, 200);
    assert!(body.contains(&want), "{body}");
    let list: Value = api.get_json("/projects/big/deployments?limit=200").await;
    let oldest = list["items"].as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, _) = edge.get(&format!("{oldest}--big.localhost"), "/").await;
    assert_eq!(s, 200);
    // The edge holds the manifests of what it served, not of every deployment.
    let status = edge.status().unwrap();
    assert!(status.bundles_present <= 3, "{status:?}");
}

/// A deployment's own host whose bundle this edge has never fetched, asked
/// for while neither the coordinator nor any peer can be reached: a clear
/// 503 page within the bounded wait, and the production host (synced
/// eagerly) is still served.
#[tokio::test]
async fn an_on_demand_host_with_nowhere_to_fetch_from_is_a_clear_503() {
    let tmp = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let site = tmp.path().join("site");
    write_site(&site, "v1");
    coord.deploy(&site, "blog", true);
    write_site(&site, "v2 preview");
    let preview = coord.deploy(&site, "blog", false);
    let host = format!(
        "{}--blog.localhost",
        preview["deployment"].as_str().unwrap()
    );
    eventually(20, "production served", || async {
        let (s, body, _) = edge.get("blog.localhost", "/").await;
        (s == 200 && body.contains("v1")).then_some(())
    })
    .await;
    // The preview host is in the edge's config, but nobody asked for it yet.
    eventually(20, "the preview's host entry to reach the edge", || async {
        let v: Value = coord.api().get_json("/health").await;
        let s = edge.status()?;
        (s.config_version == v["config_version"].as_u64()?).then_some(())
    })
    .await;
    coord.proc.kill9();
    let started = std::time::Instant::now();
    let (s, body, _) = edge.get(&host, "/").await;
    assert_eq!(s, 503, "{body}");
    assert!(body.contains("cannot be fetched right now"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the wait is bounded: {:?}",
        started.elapsed()
    );
    let (s, body, _) = edge.get("blog.localhost", "/").await;
    assert_eq!((s, body.contains("v1")), (200, true));
    let (s, _, _) = edge.get("nothing--blog.localhost", "/").await;
    assert_eq!(s, 404);
}

/// An edge killed (SIGKILL) again and again while batches of changes
/// stream in resumes each time from what it had wholly applied: its stored
/// keyspace always sums to its signed head (a torn batch would make it
/// start over from a snapshot, and it says so), and it ends at the
/// coordinator's version, serving the last deploy.
#[tokio::test]
async fn an_edge_killed_mid_apply_resumes_and_never_holds_a_torn_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let dir = tmp.path().join("edge");
    let mut edge = Edge::join(&coord, "fra", &dir);
    let api = coord.api();
    api.create_project("busy").await;
    let shared = put_blob(&api, b"chunk\n").await;
    let deploys = async {
        for n in 0..60 {
            let page = format!("<h1>deploy {n}</h1>");
            let own = put_blob(&api, page.as_bytes()).await;
            let m = manifest(shared, (own, page.len() as u64), 50);
            deploy_manifest(&api, "busy", &m, "production").await;
        }
    };
    let bins = Bins::of_tests();
    let kills = async {
        for _ in 0..4 {
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            edge.proc.kill9();
            edge = Edge::launch_run(&bins, &dir, &[]).unwrap();
        }
        edge
    };
    let ((), edge) = tokio::join!(deploys, kills);

    let want: Value = api.get_json("/health").await;
    let want = want["config_version"].as_u64().unwrap();
    eventually(
        30,
        "the restarted edge to reach the coordinator's version",
        || async { (edge.status()?.config_version >= want).then_some(()) },
    )
    .await;
    eventually(30, "production to serve the last deploy", || async {
        let (s, body, _) = edge.get("busy.localhost", "/").await;
        (s == 200 && body.contains("deploy 59")).then_some(())
    })
    .await;
    for log in std::fs::read_dir(tmp.path()).unwrap() {
        let p = log.unwrap().path();
        if p.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                !text.contains("does not match its signed state"),
                "{} found a torn store",
                p.display()
            );
        }
    }
}

/// Deploys made many at a time reach the edges as batches: an edge gets a
/// snapshot when it joins and never again while it keeps up (a snapshot
/// carries every deployment's host; one per deploy would cost what the
/// history costs).
#[tokio::test]
async fn concurrent_deploys_reach_edges_as_batches_not_snapshots() {
    use futures::StreamExt;
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let dirs = [tmp.path().join("e1"), tmp.path().join("e2")];
    let edges: Vec<Edge> = dirs.iter().map(|d| Edge::join(&coord, "fra", d)).collect();
    let api = coord.api();
    api.create_project("many").await;
    let shared = put_blob(&api, b"chunk\n").await;
    let api = &api;
    futures::stream::iter(0..120)
        .map(|n| async move {
            let page = format!("<h1>preview {n}</h1>");
            let own = put_blob(api, page.as_bytes()).await;
            let m = manifest(shared, (own, page.len() as u64), 20);
            deploy_manifest(api, "many", &m, "preview").await;
        })
        .buffer_unordered(12)
        .collect::<Vec<()>>()
        .await;
    let want: Value = api.get_json("/health").await;
    let want = want["config_version"].as_u64().unwrap();
    for e in &edges {
        eventually(30, "every edge at the coordinator's version", || async {
            (e.status()?.config_version >= want).then_some(())
        })
        .await;
    }
    for d in &dirs {
        let log = std::fs::read_to_string(d.with_extension("join.log")).unwrap();
        let snapshots = log.matches("receiving a config snapshot").count();
        assert!(snapshots <= 1, "{}: {snapshots} snapshots", d.display());
    }
}
