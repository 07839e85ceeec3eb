//! The edge mesh end to end: real coordinator and edge-node processes on
//! loopback gossiping over QUIC (SWIM), relaying signed configs and blobs.

use std::path::Path;

use crate::support::*;
use protocol::status::NodeStatus;

fn status(edge: &Edge) -> Option<NodeStatus> {
    crate::support::node_status(&edge.dir).ok()
}

fn node_id(edge: &Edge) -> String {
    crate::support::node_status(&edge.dir)
        .expect("status.json")
        .node_id
}

/// How `viewer` sees `node` in the mesh.
fn state_of(viewer: &Edge, node: &str) -> Option<String> {
    status(viewer)?
        .members
        .into_iter()
        .find(|m| m.node_id == node)
        .map(|m| m.state)
}

async fn all_see(edges: &[&Edge], node: &str, state: &str, secs: u64) {
    for e in edges {
        eventually(
            secs,
            &format!("{} to see {node} {state}", e.dir.display()),
            || async { (state_of(e, node).as_deref() == Some(state)).then_some(()) },
        )
        .await;
    }
}

async fn served(edge: &Edge, host: &str, want: &str) {
    eventually(
        30,
        &format!("{} to serve {want:?}", edge.dir.display()),
        || async {
            let (status, body, _) = edge.get(host, "/").await;
            (status == 200 && body.contains(want)).then_some(())
        },
    )
    .await
}

async fn mesh_formed(edges: &[&Edge]) {
    let ids: Vec<String> = edges.iter().map(|e| node_id(e)).collect();
    for e in edges {
        let me = node_id(e);
        for id in ids.iter().filter(|id| **id != me) {
            all_see(&[e], id, "alive", 30).await;
        }
    }
}

fn start_mesh(coord: &Coordinator, root: &Path, regions: &[&str]) -> Vec<Edge> {
    regions
        .iter()
        .enumerate()
        .map(|(i, r)| Edge::join(coord, r, &root.join(format!("edge{i}"))))
        .collect()
}

#[tokio::test]
async fn killed_node_is_marked_down_everywhere_then_rejoins_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let mut edges = start_mesh(&coord, tmp.path(), &["fra", "fra", "fra", "iad", "iad"]);
    let refs: Vec<&Edge> = edges.iter().collect();
    mesh_formed(&refs).await;

    let site = tmp.path().join("site");
    write_site(&site, "v1");
    coord.deploy(&site, "blog", true);
    for e in &edges {
        served(e, "blog.localhost", "v1").await;
    }

    let victim = node_id(&edges[4]);
    edges[4].proc.kill9();
    let survivors: Vec<&Edge> = edges[..4].iter().collect();
    all_see(&survivors, &victim, "down", 30).await;
    // The coordinator hears it from the survivors' reports.
    eventually(30, "coordinator to report the node down", || async {
        let nodes: serde_json::Value = coord
            .api()
            .req(reqwest::Method::GET, "/nodes")
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        nodes
            .as_array()?
            .iter()
            .any(|n| n["id"] == victim.as_str() && n["mesh_state"] == "down")
            .then_some(())
    })
    .await;

    // A deploy while it is away, then it comes back under a new incarnation.
    write_site(&site, "v2");
    coord.deploy(&site, "blog", true);
    for e in &survivors {
        served(e, "blog.localhost", "v2").await;
    }
    let dir = edges[4].dir.clone();
    edges[4] = Edge::run(&dir);
    let survivors: Vec<&Edge> = edges[..4].iter().collect();
    all_see(&survivors, &victim, "alive", 30).await;
    served(&edges[4], "blog.localhost", "v2").await;
    let text = coord.cli_ok(&["nodes"]);
    assert!(text.contains("MESH") && text.contains("alive"), "{text}");
}

#[tokio::test]
async fn a_node_cut_off_from_the_coordinator_gets_signed_configs_and_blobs_from_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let mut edges = start_mesh(&coord, tmp.path(), &["fra", "fra", "fra"]);
    let refs: Vec<&Edge> = edges.iter().collect();
    mesh_formed(&refs).await;

    // Point edge 2 at a coordinator address where nothing listens: it can
    // only learn from its peers (persisted members, no seeds).
    assert!(edges[2].proc.terminate().success());
    let info_path = edges[2].dir.join("node.json");
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&info_path).unwrap()).unwrap();
    info["coordinator"] = "127.0.0.1:9".into();
    std::fs::write(&info_path, serde_json::to_vec(&info).unwrap()).unwrap();
    let dir = edges[2].dir.clone();
    edges[2] = Edge::run(&dir);
    let refs: Vec<&Edge> = edges.iter().collect();
    mesh_formed(&refs).await;

    let site = tmp.path().join("site");
    write_site(&site, "relayed");
    std::fs::write(site.join("big.bin"), vec![7u8; 300_000]).unwrap();
    coord.deploy(&site, "blog", true);
    for e in &edges {
        served(e, "blog.localhost", "relayed").await;
    }
    // status.json is rewritten every second.
    let s = eventually(10, "edge 2 to report its blobs", || async {
        status(&edges[2]).filter(|s| s.bundles_present > 0)
    })
    .await;
    assert!(!s.coordinator_link, "{s:?}");
    assert!(s.blob_bytes_from_peers > 300_000, "{s:?}");
    assert_eq!(s.blob_bytes_from_coordinator, 0, "{s:?}");
    let log = edges[2].proc.log_text();
    assert!(
        log.contains("config applied") && log.contains("from=peer"),
        "{log}"
    );
}

#[tokio::test]
async fn peers_keep_serving_and_rejoin_without_the_coordinator() {
    let tmp = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(&tmp.path().join("coord"), None);
    let mut edges = start_mesh(&coord, tmp.path(), &["fra", "fra", "iad"]);
    let site = tmp.path().join("site");
    write_site(&site, "steady");
    coord.deploy(&site, "blog", true);
    let refs: Vec<&Edge> = edges.iter().collect();
    mesh_formed(&refs).await;
    for e in &edges {
        served(e, "blog.localhost", "steady").await;
    }

    coord.proc.kill9();
    // A node restarted while the coordinator is down serves its last state
    // and finds its peers again from the members it persisted.
    assert!(edges[1].proc.terminate().success());
    let log = edges[1].proc.log_text();
    assert!(
        log.contains("left the mesh"),
        "a stopped node says goodbye:\n{log}"
    );
    let dir = edges[1].dir.clone();
    edges[1] = Edge::run(&dir);
    served(&edges[1], "blog.localhost", "steady").await;
    let refs: Vec<&Edge> = edges.iter().collect();
    mesh_formed(&refs).await;
    for e in &edges {
        served(e, "blog.localhost", "steady").await;
    }
}

#[tokio::test]
async fn peer_assist_sends_each_blob_about_once_per_region() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edges = start_mesh(&coord, tmp.path(), &["fra"; 5]);
    let refs: Vec<&Edge> = edges.iter().collect();
    mesh_formed(&refs).await;

    let site = tmp.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "<h1>egress</h1>").unwrap();
    // Incompressible files, so the bundle is about what we wrote.
    let mut total = 0u64;
    for i in 0..40u32 {
        let bytes: Vec<u8> = (0..25_000u32)
            .map(|j| blake3::hash(&[i.to_le_bytes(), j.to_le_bytes()].concat()).as_bytes()[0])
            .collect();
        total += bytes.len() as u64;
        std::fs::write(site.join(format!("f{i}.bin")), bytes).unwrap();
    }
    let before = sent_bytes(&coord).await;
    coord.deploy(&site, "blog", true);
    for e in &edges {
        served(e, "blog.localhost", "egress").await;
    }
    let sent = sent_bytes(&coord).await - before;
    eventually(10, "every node to report its bundle", || async {
        edges
            .iter()
            .all(|e| status(e).is_some_and(|s| s.bundles_present > 0))
            .then_some(())
    })
    .await;
    // Without peer assist this is 5 × total.
    assert!(
        sent < total * 3 / 2,
        "coordinator sent {sent} bytes for a {total}-byte bundle to 5 nodes"
    );
    let from_peers: u64 = edges
        .iter()
        .map(|e| status(e).unwrap().blob_bytes_from_peers)
        .sum();
    assert!(from_peers > total * 3, "{from_peers}");
}

async fn sent_bytes(coord: &Coordinator) -> u64 {
    let h: serde_json::Value = http_client()
        .get(format!("{}/api/v1/health", coord.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    h["blob_bytes_sent_to_edges"].as_u64().unwrap()
}
