//! Cluster trust with real processes: a removed node's certificate opens
//! nothing (coordinator or peers, new connections or open ones), and
//! short-lived node and coordinator certificates renew themselves before
//! they end.

use std::path::Path;
use std::sync::Arc;

use crate::support::*;
use protocol::frame_io::{read_frame, write_frame};
use protocol::mesh::PeerInfo;
use protocol::wire::{CoordinatorMessage, EdgeRequest, Subscribe, MAX_FRAME_BYTES};

fn node_id(dir: &Path) -> String {
    node_status(dir).expect("status.json").node_id
}

fn members_of(dir: &Path) -> Vec<(String, String)> {
    node_status(dir)
        .map(|s| {
            s.members
                .into_iter()
                .map(|m| (m.node_id, m.state))
                .collect()
        })
        .unwrap_or_default()
}

/// What a holder of `dir`'s node key and certificate gets from the
/// coordinator: `Ok` when it is sent a config, else why not.
async fn subscribe_as(dir: &Path, coordinator: std::net::SocketAddr) -> Result<(), String> {
    let identity = edge_node::identity::Identity::load(dir).map_err(|e| e.to_string())?;
    let cfg =
        edge_node::tls::node_client_config(&identity.ca_pem, &identity.cert_pem, &identity.key_pem)
            .map_err(|e| e.to_string())?;
    let ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let ask = async {
        let conn = ep
            .connect_with(cfg, coordinator, protocol::wire::COORDINATOR_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        write_frame(
            &mut send,
            &EdgeRequest::Subscribe(Subscribe {
                have_version: 0,
                software_version: "thief".into(),
                http_addr: None,
                https_addr: None,
                mesh_addr: None,
            }),
        )
        .await
        .map_err(|e| e.to_string())?;
        match read_frame::<CoordinatorMessage, _>(&mut recv, MAX_FRAME_BYTES).await {
            Ok(Some(CoordinatorMessage::Peers(_))) => Ok(()),
            Ok(other) => Err(format!("answered {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), ask)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// What a holder of `dir`'s node key and certificate gets from the peer
/// `peer`: `Ok` when it answers a config request.
async fn ask_peer_as(dir: &Path, peer: &PeerInfo) -> Result<(), String> {
    let identity = edge_node::identity::Identity::load(dir).map_err(|e| e.to_string())?;
    let (ca, cert, key) = (&identity.ca_pem, &identity.cert_pem, &identity.key_pem);
    let server = edge_node::tls::mesh_server_config(ca, cert, key).map_err(|e| e.to_string())?;
    let client = edge_node::tls::mesh_client_config(ca, cert, key).map_err(|e| e.to_string())?;
    let ep = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    let (sink, _datagrams) = tokio::sync::mpsc::channel(8);
    let t = edge_node::mesh::transport::Transport::new(ep, client, sink, Arc::new(|_: &str| false));
    edge_node::mesh::peer::get_batches(&t, peer, 0)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

fn peer_info(dir: &Path) -> PeerInfo {
    let s = node_status(dir).expect("status.json");
    PeerInfo {
        node_id: s.node_id,
        name: s.name,
        region: s.region,
        mesh_addr: s.mesh_addr,
    }
}

#[tokio::test]
async fn a_removed_node_is_refused_by_the_coordinator_and_every_peer() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let keep = Edge::join(&coord, "fra", &tmp.path().join("keep"));
    let gone = Edge::join(&coord, "fra", &tmp.path().join("gone"));
    let (keep_id, gone_id) = (node_id(&keep.dir), node_id(&gone.dir));
    eventually(30, "the two edges to see each other alive", || async {
        members_of(&keep.dir)
            .contains(&(gone_id.clone(), "alive".into()))
            .then_some(())
    })
    .await;
    // Before: the node's key opens the coordinator's config and its peer's.
    let keeper = peer_info(&keep.dir);
    subscribe_as(&gone.dir, coord.quic).await.unwrap();
    ask_peer_as(&gone.dir, &keeper).await.unwrap();

    // Only the instance owner removes nodes; an unknown one is a 404.
    let out = coord.cli(&["nodes", "rm", "nosuchnode"]);
    assert!(!out.status.success());
    coord.cli_ok(&["nodes", "rm", &gone_id]);
    let listed = coord.cli_ok(&["nodes", "--json"]);
    assert!(
        !listed.contains(&gone_id) && listed.contains(&keep_id),
        "{listed}"
    );

    // Its open link closes at once, and it cannot link again.
    eventually(15, "the removed node's link to close", || async {
        (!node_status(&gone.dir).ok()?.coordinator_link).then_some(())
    })
    .await;
    // (The connection is closed before any stream is answered.)
    assert!(subscribe_as(&gone.dir, coord.quic).await.is_err());
    // Its peer drops it from the mesh and answers nothing to its key.
    eventually(30, "the peer to drop the removed node", || async {
        (!members_of(&keep.dir).iter().any(|(id, _)| *id == gone_id)).then_some(())
    })
    .await;
    assert!(ask_peer_as(&gone.dir, &keeper).await.is_err());
    // The node that stays is served as before.
    let site = tmp.path().join("site");
    write_site(&site, "after removal");
    coord.deploy(&site, "blog", true);
    eventually(30, "the remaining edge to serve the new deploy", || async {
        let (status, body, _) = keep.get("blog.localhost", "/").await;
        (status == 200 && body.contains("after removal")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn node_and_coordinator_certificates_renew_before_they_end() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some("[nodes]\ncert_lifetime = \"30s\"\n"),
    );
    let dir = tmp.path().join("edge");
    let edge = Edge::join(&coord, "fra", &dir);
    let first = std::fs::read_to_string(dir.join("node.pem")).unwrap();
    let first_end = {
        let der = rustls_pemfile::certs(&mut first.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        protocol::node_cert::validity(&der).unwrap().1
    };
    let renewed = eventually(40, "the node to renew its certificate", || async {
        let now = std::fs::read_to_string(dir.join("node.pem")).ok()?;
        (now != first).then_some(now)
    })
    .await;
    let der = rustls_pemfile::certs(&mut renewed.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert!(protocol::node_cert::validity(&der).unwrap().1 > first_end);
    assert_eq!(
        protocol::node_cert::node_id(&der),
        Some(node_id(&dir)),
        "the same node"
    );
    let nodes = coord.api().get_json("/nodes").await;
    assert!(
        nodes[0]["cert_not_after"].as_i64().unwrap() > first_end,
        "{nodes}"
    );
    // Past the first certificate's end (and the coordinator's first one's),
    // a restarted node links with the renewed pair and gets new deploys.
    while protocol::node_cert::validity(&der).is_some()
        && (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64)
            <= first_end + 1
    {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    drop(edge);
    let edge = Edge::run(&dir);
    let site = tmp.path().join("site");
    write_site(&site, "renewed");
    coord.deploy(&site, "blog", true);
    eventually(30, "the restarted edge to serve the new deploy", || async {
        let (status, body, _) = edge.get("blog.localhost", "/").await;
        (status == 200 && body.contains("renewed")).then_some(())
    })
    .await;
    assert!(node_status(&dir).unwrap().coordinator_link);
}
