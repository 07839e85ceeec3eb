//! Secrets on the edges are sealed to the cluster key (issue 22, item 2):
//! an edge's data directory holds neither a tenant's secret nor a host
//! certificate's private key in the clear; the key lives in memory, comes
//! back after a restart from the coordinator or, while it is away, from a
//! peer; a removed node never gets the generation that replaces its key.

use std::path::Path;

use crate::support::*;

const SECRET: &str = "s3aled-s3cr3t-value-93";

/// Files of the node's own identity (its key is its own, not the config's).
const IDENTITY_FILES: &[&str] = &["node-key.pem", "node-renewed.pem"];

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every file of `dir` (but the identity's) that holds `needle`.
fn holding(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    files
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !IDENTITY_FILES.contains(&name.as_ref())
        })
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

fn site_with_env_function(dir: &Path) {
    write_site(dir, "sealed");
    std::fs::create_dir_all(dir.join("api")).unwrap();
    std::fs::copy(test_support::wasm_fixture("env"), dir.join("api/env.wasm")).unwrap();
}

async fn secret_served(edge: &Edge, what: &str) {
    eventually(30, what, || async {
        let (s, body, _) = edge.get("blog.localhost", "/api/env?name=API_SECRET").await;
        (s == 200 && body == SECRET).then_some(())
    })
    .await;
}

/// Project `blog` with the secret `API_SECRET`, deployed to production
/// with the `env` function.
fn deploy_blog_with_secret(coord: &Coordinator, tmp: &Path) {
    coord.cli_ok(&["projects", "create", "blog"]);
    coord.cli_ok(&[
        "env",
        "set",
        "blog",
        &format!("API_SECRET={SECRET}"),
        "--secret",
    ]);
    let site = tmp.join("site");
    site_with_env_function(&site);
    coord.deploy(&site, "blog", true);
}

async fn open_db(coord_dir: &Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(coord_dir.join("coordinator.db"))
        .connect()
        .await
        .unwrap()
}

fn keys_of(dir: &Path) -> Option<protocol::status::KeysStatus> {
    node_status(dir).ok().map(|s| s.cluster_keys)
}

#[tokio::test]
async fn an_edge_keeps_secrets_and_private_keys_only_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge_dir = tmp.path().join("edge");
    let mut edge = Edge::join(&coord, "fra", &edge_dir);
    deploy_blog_with_secret(&coord, tmp.path());
    secret_served(&edge, "the function to see its secret").await;
    // The production host's certificate (its key sealed too) serves HTTPS.
    let ca = std::fs::read(coord.ca_path()).unwrap();
    let https = crate::e2e::https_client(&ca, "blog.localhost", edge.https);
    let url = format!("https://blog.localhost:{}/", edge.https.port());
    let r = https.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // … and advertises HTTP/3 on the same port, which serves the same
    // certificate, static files and functions (with their secrets).
    let alt = format!("h3=\":{}\"; ma=86400", edge.https.port());
    assert_eq!(
        r.headers().get("alt-svc").and_then(|v| v.to_str().ok()),
        Some(alt.as_str())
    );
    let ca_pem = String::from_utf8(ca.clone()).unwrap();
    let h3 = test_support::h3::H3Client::connect(edge.https, "blog.localhost", &[&ca_pem])
        .await
        .unwrap();
    let r = h3.get("/api/env?name=API_SECRET", &[]).await.unwrap();
    assert_eq!((r.status, r.text()), (200, SECRET.to_string()));
    assert!(r.header("x-request-id").is_some());
    assert_eq!(h3.get("/", &[]).await.unwrap().status, 200);
    h3.close().await;

    // Stopped, its data directory is what a thief would copy.
    assert!(edge.proc.terminate().success(), "{}", edge.proc.log_text());
    for needle in [SECRET.as_bytes(), b"PRIVATE KEY".as_slice()] {
        let found = holding(&edge_dir, needle);
        assert!(
            found.is_empty(),
            "{:?} in the clear in {found:?}",
            String::from_utf8_lossy(needle)
        );
    }

    // Started again, it gets the key back from its coordinator.
    let edge = Edge::run(&edge_dir);
    secret_served(&edge, "the secret after a restart").await;
    let https = crate::e2e::https_client(&ca, "blog.localhost", edge.https);
    let url = format!("https://blog.localhost:{}/", edge.https.port());
    eventually(30, "HTTPS after a restart", || async {
        let r = https.get(&url).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // (The status file is rewritten every second.)
    eventually(10, "the status to show the key", || async {
        let k = keys_of(&edge.dir)?;
        (k.missing.is_empty() && !k.held.is_empty()).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_removed_node_never_gets_the_new_key_and_peers_hand_it_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(&tmp.path().join("coord"), None);
    let a_dir = tmp.path().join("a");
    let mut a = Edge::join(&coord, "fra", &a_dir);
    let b = Edge::join(&coord, "fra", &tmp.path().join("b"));
    let gone = Edge::join(&coord, "fra", &tmp.path().join("gone"));
    deploy_blog_with_secret(&coord, tmp.path());
    for e in [&a, &b, &gone] {
        secret_served(e, "every edge to serve the secret").await;
    }
    let first = keys_of(&gone.dir).unwrap().held;
    assert_eq!(first.len(), 1, "{first:?}");

    // Removing a node seals everything to a new generation, which the
    // nodes that stay receive and the removed one never does.
    let gone_id = node_status(&gone.dir).unwrap().node_id;
    coord.cli_ok(&["nodes", "rm", &gone_id]);
    let newest = first[0] + 1;
    for e in [&a, &b] {
        eventually(30, "the staying nodes to take the new key", || async {
            let k = keys_of(&e.dir)?;
            (k.held.contains(&newest) && k.missing.is_empty()).then_some(())
        })
        .await;
        secret_served(e, "the secret, sealed to the new key").await;
    }
    assert!(
        !keys_of(&gone.dir).unwrap().held.contains(&newest),
        "the removed node got the new key"
    );

    // With the coordinator away, a restarted node gets the key from a peer.
    assert!(coord.proc.terminate().success());
    assert!(a.proc.terminate().success(), "{}", a.proc.log_text());
    let a = Edge::run(&a_dir);
    secret_served(&a, "the secret via a peer's key").await;
    eventually(10, "the status to show the peer's key", || async {
        let k = keys_of(&a.dir)?;
        (k.held == [newest] && k.missing.is_empty()).then_some(())
    })
    .await;
    drop(b);
}

/// A database from before sealing (a config log, no cluster key): the
/// coordinator rebuilds the log sealed to a new key, and an edge that
/// held the old config follows it (a snapshot; the key it held for that
/// generation number no longer opens anything and is replaced).
#[tokio::test]
async fn a_config_log_from_before_sealing_is_rebuilt_sealed() {
    use sqlx::Row;
    let tmp = tempfile::tempdir().unwrap();
    let coord_dir = tmp.path().join("coord");
    let mut coord = Coordinator::start(&coord_dir, None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    deploy_blog_with_secret(&coord, tmp.path());
    secret_served(&edge, "the secret before the upgrade").await;

    let quic = coord.quic.to_string();
    assert!(coord.proc.terminate().success());
    let mut db = open_db(&coord_dir).await;
    sqlx::query("DELETE FROM cluster_keys")
        .execute(&mut db)
        .await
        .unwrap();
    drop(db);

    let coord = Coordinator::start_with(&coord_dir, None, &quic);
    assert!(coord.proc.log_text().contains("rebuilding the config log"));
    coord.cli_ok(&[
        "env",
        "set",
        "blog",
        "API_SECRET=after-the-upgrade",
        "--secret",
    ]);
    eventually(30, "the edge to open the rebuilt config", || async {
        let (s, body, _) = edge.get("blog.localhost", "/api/env?name=API_SECRET").await;
        (s == 200 && body == "after-the-upgrade").then_some(())
    })
    .await;
    let mut db = open_db(&coord_dir).await;
    let keys: i64 = sqlx::query("SELECT COUNT(*) AS n FROM cluster_keys")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get("n");
    assert_eq!(keys, 1);
}

/// The same on Postgres: the cluster key's rows, sealing on every change
/// and the re-seal of a node's removal, through the real coordinator.
#[tokio::test]
async fn sealing_and_resealing_on_postgres() {
    let (url, db) = crate::store_suite::PgDb::new_database().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut coord = Coordinator::start(
        &tmp.path().join("coord"),
        Some(&format!("database_url = \"{url}\"\n")),
    );
    let keep = Edge::join(&coord, "fra", &tmp.path().join("keep"));
    let gone = Edge::join(&coord, "fra", &tmp.path().join("gone"));
    deploy_blog_with_secret(&coord, tmp.path());
    secret_served(&keep, "the secret on Postgres").await;
    let gone_id = node_status(&gone.dir).unwrap().node_id;
    coord.cli_ok(&["nodes", "rm", &gone_id]);
    eventually(30, "the new generation on the staying node", || async {
        let k = keys_of(&keep.dir)?;
        (k.held.contains(&2) && k.missing.is_empty()).then_some(())
    })
    .await;
    coord.cli_ok(&["env", "set", "blog", "API_SECRET=after-removal", "--secret"]);
    eventually(30, "the secret set after the removal", || async {
        let (s, body, _) = keep.get("blog.localhost", "/api/env?name=API_SECRET").await;
        (s == 200 && body == "after-removal").then_some(())
    })
    .await;
    assert!(coord.proc.terminate().success());
    db.drop_unused().await;
}
