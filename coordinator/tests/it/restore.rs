//! A database restored from a backup under a running coordinator: its
//! config versions go back below what the edges hold. The edges must
//! follow the restored database (a new config epoch and a snapshot), and
//! changes made after the restore must reach them; nothing of the lost
//! history may come back.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use crate::support::*;

async fn db(path: &std::path::Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap()
}

/// Copies every table of `backup` over the live database, in one
/// transaction, as `pg_restore --clean` would into a running server.
async fn restore(live: &std::path::Path, backup: &std::path::Path) {
    let mut c = db(live).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ATTACH DATABASE '{}' AS b",
        backup.display()
    )))
    .execute(&mut c)
    .await
    .unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM b.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("name"))
    .collect();
    // A wholesale copy is consistent only once complete (and deletes must
    // not cascade into rows already copied).
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut c)
        .await
        .unwrap();
    let mut tx = c.begin().await.unwrap();
    for t in &tables {
        for q in [
            format!("DELETE FROM main.\"{t}\""),
            format!("INSERT INTO main.\"{t}\" SELECT * FROM b.\"{t}\""),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(q))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    tx.commit().await.unwrap();
}

async fn serves(edge: &Edge, want: &str) {
    eventually(30, &format!("the edge to serve {want:?}"), || async {
        let (status, body, _) = edge.get("blog.localhost", "/").await;
        (status == 200 && body.contains(want)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn edges_follow_a_database_restored_under_a_running_coordinator() {
    let tmp = tempfile::tempdir().unwrap();
    let coord = Coordinator::start(&tmp.path().join("coord"), None);
    let edge = Edge::join(&coord, "fra", &tmp.path().join("edge"));
    let site = tmp.path().join("site");
    write_site(&site, "before the backup");
    coord.deploy(&site, "blog", true);
    serves(&edge, "before the backup").await;

    let live = coord.dir.join("coordinator.db");
    let backup = tmp.path().join("backup.db");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        backup.display()
    )))
    .execute(&mut db(&live).await)
    .await
    .unwrap();

    // History the backup does not have: several versions ahead of it.
    for tag in ["lost one", "lost two", "lost three"] {
        write_site(&site, tag);
        coord.deploy(&site, "blog", true);
    }
    serves(&edge, "lost three").await;
    let ahead = node_status(&edge.dir).unwrap().config_version;

    restore(&live, &backup).await;
    // A change after the restore lands at a version the edge already
    // "has" (from the lost history): it must still reach it.
    write_site(&site, "after the restore");
    coord.deploy(&site, "blog", true);
    serves(&edge, "after the restore").await;
    let status = node_status(&edge.dir).unwrap();
    assert!(
        status.config_version < ahead,
        "the edge follows the restored database's versions ({} < {ahead})",
        status.config_version
    );
    let log = std::fs::read_to_string(coord.dir.join("coordinator.log")).unwrap();
    assert!(log.contains("new config epoch"), "{log}");
}
