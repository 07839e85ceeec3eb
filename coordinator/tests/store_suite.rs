//! One store test suite, run against SQLite and against Postgres
//! (127.0.0.1:5432, or `OUTPOST_TEST_POSTGRES`), each in a fresh database.

use coordinator::store::{
    Build, BuildLogLine, BuildStatus, BuildTrigger, BundleRow, Deployment, DeploymentStatus,
    GitMeta, GitSettings, HostCert, JoinTokenError, Node, NodeContact, ReadyBuild, Store,
    StoreError, Target,
};
use sqlx::Connection;

async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    (Store::connect(&url).await.unwrap(), dir)
}

struct PgDb {
    admin_url: String,
    name: String,
}

impl PgDb {
    async fn create() -> (Store, PgDb) {
        let admin_url = std::env::var("OUTPOST_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("outpost_test_{}", coordinator::ids::new_id(12));
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("Postgres must be reachable (set OUTPOST_TEST_POSTGRES)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("bad postgres url"),
        };
        (
            Store::connect(&url).await.unwrap(),
            PgDb { admin_url, name },
        )
    }

    async fn drop_db(self, store: Store) {
        store.close().await;
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await;
    }
}

fn node(id: &str, fp: &str, region: &str) -> Node {
    Node {
        id: id.into(),
        name: format!("name-{id}"),
        region: region.into(),
        cert_fingerprint: fp.into(),
        software_version: "0.1.0".into(),
        config_version: 0,
        bundles_present: 0,
        bundles_pending: 0,
        http_addr: None,
        https_addr: None,
        mesh_addr: None,
        created_at: 0,
        last_seen: None,
    }
}

fn deployment(id: &str, project: &str, bundle: &str, at: i64, target: Target) -> Deployment {
    Deployment {
        id: id.into(),
        project_id: project.into(),
        bundle_id: bundle.into(),
        status: DeploymentStatus::Uploading,
        target,
        created_at: at,
        ready_at: None,
        promoted_at: None,
        git: None,
    }
}

async fn suite(s: &Store) {
    // Tokens.
    assert_eq!(s.count_api_tokens().await.unwrap(), 0);
    s.create_api_token("t1", "admin", "hash1").await.unwrap();
    assert_eq!(
        s.api_token_by_hash("hash1").await.unwrap().as_deref(),
        Some("t1")
    );
    assert_eq!(s.api_token_by_hash("nope").await.unwrap(), None);

    // Projects: unique names, pagination by name.
    for n in ["charlie", "alpha", "bravo"] {
        s.create_project(&format!("id-{n}"), n).await.unwrap();
    }
    assert!(matches!(
        s.create_project("x", "alpha").await,
        Err(StoreError::Conflict(_))
    ));
    let first = s.list_projects(None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["alpha", "bravo"]
    );
    let rest = s.list_projects(Some("bravo"), 2).await.unwrap();
    assert_eq!(
        rest.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["charlie"]
    );
    assert_eq!(s.project("alpha").await.unwrap().unwrap().id, "id-alpha");
    assert_eq!(s.project("id-alpha").await.unwrap().unwrap().name, "alpha");
    assert!(s.project("zulu").await.unwrap().is_none());

    // Bundles are stored once.
    let b = BundleRow {
        id: "b1".into(),
        manifest: vec![1, 2, 3],
        file_count: 1,
        total_size: 3,
    };
    s.put_bundle(&b).await.unwrap();
    s.put_bundle(&b).await.unwrap();
    assert_eq!(s.bundle_manifest("b1").await.unwrap(), Some(vec![1, 2, 3]));
    s.put_bundle(&BundleRow {
        id: "b2".into(),
        manifest: vec![9],
        file_count: 1,
        total_size: 1,
    })
    .await
    .unwrap();

    // Deployments: list newest first with a cursor; promote and roll back.
    let v0 = s.config_version().await.unwrap();
    for (i, id) in ["d1", "d2", "d3"].iter().enumerate() {
        s.create_deployment(&deployment(
            id,
            "id-alpha",
            if i == 1 { "b2" } else { "b1" },
            1000 + i as i64,
            Target::Production,
        ))
        .await
        .unwrap();
    }
    let page = s.list_deployments("id-alpha", None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d3", "d2"]
    );
    let last = page.last().unwrap();
    let page2 = s
        .list_deployments("id-alpha", Some((last.created_at, &last.id)), 2)
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["d1"]
    );
    assert!(s.live_deployments().await.unwrap().is_empty());
    for id in ["d1", "d2", "d3"] {
        s.mark_ready(id).await.unwrap();
        let v = s.promote("id-alpha", id).await.unwrap();
        assert!(v > v0);
    }
    let d3 = s.deployment("d3").await.unwrap().unwrap();
    assert_eq!(d3.status, DeploymentStatus::Ready);
    assert_eq!(
        s.project("alpha")
            .await
            .unwrap()
            .unwrap()
            .production_deployment
            .as_deref(),
        Some("d3")
    );
    let prev = s
        .previous_production("id-alpha", &d3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(prev.id, "d2");
    let d1 = s.deployment("d1").await.unwrap().unwrap();
    assert!(s
        .previous_production("id-alpha", &d1)
        .await
        .unwrap()
        .is_none());
    let live = s.live_deployments().await.unwrap();
    assert_eq!(live.len(), 3);
    assert_eq!(
        live.iter()
            .filter(|l| l.is_production)
            .map(|l| l.id.as_str())
            .collect::<Vec<_>>(),
        ["d3"]
    );
    assert_eq!(s.config_version().await.unwrap(), v0 + 3);
    assert_eq!(s.bump_config_version().await.unwrap(), v0 + 4);

    // Join tokens: one use, expiry, region; nodes by fingerprint.
    let future = coordinator::store::now_ms() + 60_000;
    s.create_join_token("j1", "jh1", "fra", future)
        .await
        .unwrap();
    s.create_join_token("j2", "jh2", "fra", coordinator::store::now_ms() - 1)
        .await
        .unwrap();
    let err = |r: Result<(), StoreError>| match r {
        Err(StoreError::JoinToken(e)) => e,
        other => panic!("expected a join token error, got {other:?}"),
    };
    assert_eq!(
        err(s.enroll_node("nope", &node("n0", "fp0", "fra")).await),
        JoinTokenError::Invalid
    );
    assert_eq!(
        err(s.enroll_node("jh2", &node("n0", "fp0", "fra")).await),
        JoinTokenError::Expired
    );
    assert_eq!(
        err(s.enroll_node("jh1", &node("n0", "fp0", "ams")).await),
        JoinTokenError::RegionMismatch
    );
    s.enroll_node("jh1", &node("n1", "fp1", "fra"))
        .await
        .unwrap();
    assert_eq!(
        err(s.enroll_node("jh1", &node("n2", "fp2", "fra")).await),
        JoinTokenError::Used
    );
    let n1 = s.node_by_fingerprint("fp1").await.unwrap().unwrap();
    assert_eq!((n1.id.as_str(), n1.region.as_str()), ("n1", "fra"));
    assert!(s.node_by_fingerprint("fp2").await.unwrap().is_none());
    s.record_node_contact(
        "n1",
        &NodeContact {
            software_version: "0.2.0".into(),
            config_version: 7,
            bundles_present: 2,
            bundles_pending: 1,
            http_addr: Some("127.0.0.1:80".into()),
            https_addr: None,
            mesh_addr: Some("127.0.0.1:8702".into()),
        },
    )
    .await
    .unwrap();
    let nodes = s.list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].config_version, 7);
    assert_eq!(nodes[0].mesh_addr.as_deref(), Some("127.0.0.1:8702"));
    assert!(nodes[0].last_seen.is_some());

    // Host certificates are replaced, not duplicated.
    for n in [1, 2] {
        s.put_host_cert(&HostCert {
            host: "a.localhost".into(),
            chain_pem: format!("c{n}"),
            key_pem: "k".into(),
            not_after: n,
        })
        .await
        .unwrap();
    }
    assert_eq!(
        s.host_cert("a.localhost").await.unwrap().unwrap().chain_pem,
        "c2"
    );
    assert!(s.host_cert("b.localhost").await.unwrap().is_none());
}

fn queued(id: &str, project: &str, branch: &str, at: i64) -> Build {
    Build {
        id: id.into(),
        project_id: project.into(),
        status: BuildStatus::Queued,
        target: Target::Preview,
        git: GitMeta {
            branch: branch.into(),
            ..Default::default()
        },
        trigger: BuildTrigger::Push,
        attempts: 0,
        error: None,
        created_at: at,
        started_at: None,
        finished_at: None,
    }
}

/// The build queue, logs, git settings and branch aliases.
async fn builds_suite(s: &Store) {
    let p = s.create_project("pb", "builds").await.unwrap();
    assert!(s.git(&p.id).await.unwrap().is_none());
    let settings = GitSettings {
        url: "https://example.com/a.git".into(),
        branch: "main".into(),
        root_dir: Some("web".into()),
        install_command: None,
        build_command: Some("".into()),
        output_dir: None,
        auto_promote: false,
    };
    s.set_git(&p.id, Some(&settings), Some(b"sealed"))
        .await
        .unwrap();
    let (got, secret) = s.git(&p.id).await.unwrap().unwrap();
    assert_eq!(got, settings);
    assert_eq!(secret.as_deref(), Some(&b"sealed"[..]));

    // Oldest first; each build is claimed once.
    s.enqueue_build(&queued("b2", &p.id, "dev", 20))
        .await
        .unwrap();
    s.enqueue_build(&queued("b1", &p.id, "main", 10))
        .await
        .unwrap();
    let first = s.claim_build().await.unwrap().unwrap();
    assert_eq!(
        (first.id.as_str(), first.status, first.attempts),
        ("b1", BuildStatus::Building, 1)
    );
    // b2 waits: its project is building; another project's build goes on.
    assert!(s.claim_build().await.unwrap().is_none());
    let other = s.create_project("po", "other").await.unwrap();
    s.enqueue_build(&queued("o1", &other.id, "main", 25))
        .await
        .unwrap();
    assert_eq!(s.claim_build().await.unwrap().unwrap().id, "o1");
    s.finish_build("o1", BuildStatus::Error, Some("x"))
        .await
        .unwrap();

    // Logs continue their sequence.
    assert_eq!(s.next_build_log_seq("b1").await.unwrap(), 1);
    let line = |seq: i64, text: &str| BuildLogLine {
        seq,
        ts: seq,
        stream: "stdout".into(),
        line: text.into(),
    };
    s.append_build_logs("b1", &[line(1, "a"), line(2, "b")])
        .await
        .unwrap();
    assert_eq!(s.next_build_log_seq("b1").await.unwrap(), 3);
    let after1 = s.build_logs("b1", 1, 10).await.unwrap();
    assert_eq!(after1, vec![line(2, "b")]);

    // A ready build becomes its deployment; the branch alias is upserted.
    s.put_bundle(&BundleRow {
        id: "bundle-b".into(),
        manifest: vec![1],
        file_count: 1,
        total_size: 1,
    })
    .await
    .unwrap();
    let v0 = s.config_version().await.unwrap();
    let ready = |b, promote| ReadyBuild {
        build: b,
        bundle_id: "bundle-b",
        commit_sha: "0123456789abcdef0123456789abcdef01234567",
        commit_message: "msg",
        commit_author: "Ada <a@example.com>",
        promote,
        branch_alias: true,
    };
    s.finish_build_ready(&ready(&first, true)).await.unwrap();
    let second = s.claim_build().await.unwrap().unwrap();
    assert_eq!(second.id, "b2", "claimed once b1 is done");
    s.finish_build_ready(&ready(&second, false)).await.unwrap();
    assert_eq!(s.config_version().await.unwrap(), v0 + 2);
    let d = s.deployment("b1").await.unwrap().unwrap();
    assert_eq!(d.status, DeploymentStatus::Ready);
    assert_eq!(
        d.git.as_ref().unwrap().commit_message.as_deref(),
        Some("msg")
    );
    assert_eq!(
        s.project(&p.id)
            .await
            .unwrap()
            .unwrap()
            .production_deployment
            .as_deref(),
        Some("b1")
    );
    assert_eq!(
        s.build("b2").await.unwrap().unwrap().status,
        BuildStatus::Ready
    );
    let mut again = queued("b3", &p.id, "dev", 30);
    s.enqueue_build(&again).await.unwrap();
    again = s.claim_build().await.unwrap().unwrap();
    s.finish_build_ready(&ReadyBuild {
        build: &again,
        bundle_id: "bundle-b",
        commit_sha: "1123456789abcdef0123456789abcdef01234567",
        commit_message: "m2",
        commit_author: "Ada",
        promote: false,
        branch_alias: true,
    })
    .await
    .unwrap();
    let aliases = s.branch_aliases().await.unwrap();
    assert_eq!(
        aliases,
        vec![
            ("builds".to_string(), "dev".to_string(), "b3".to_string()),
            ("builds".to_string(), "main".to_string(), "b1".to_string()),
        ]
    );
    assert!(s.delete_branch_alias(&p.id, "dev").await.unwrap());
    assert!(!s.delete_branch_alias(&p.id, "dev").await.unwrap());
    assert_eq!(s.branch_aliases().await.unwrap().len(), 1);

    // Cancel: queued at once, running by request.
    s.enqueue_build(&queued("c1", &p.id, "x", 40))
        .await
        .unwrap();
    assert_eq!(
        s.request_cancel("c1").await.unwrap().unwrap().status,
        BuildStatus::Canceled
    );
    s.enqueue_build(&queued("c2", &p.id, "x", 50))
        .await
        .unwrap();
    s.claim_build().await.unwrap().unwrap();
    assert!(!s.cancel_requested("c2").await.unwrap());
    assert_eq!(
        s.request_cancel("c2").await.unwrap().unwrap().status,
        BuildStatus::Building
    );
    assert!(s.cancel_requested("c2").await.unwrap());
    s.finish_build("c2", BuildStatus::Canceled, Some("canceled"))
        .await
        .unwrap();

    // Interrupted builds: re-queued while attempts remain, then failed.
    s.enqueue_build(&queued("r1", &p.id, "x", 60))
        .await
        .unwrap();
    s.claim_build().await.unwrap().unwrap();
    let found = s.recover_interrupted_builds().await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].1, "first interruption re-queues");
    assert_eq!(
        s.build("r1").await.unwrap().unwrap().status,
        BuildStatus::Queued
    );
    s.claim_build().await.unwrap().unwrap();
    let found = s.recover_interrupted_builds().await.unwrap();
    assert!(!found[0].1, "second interruption fails");
    let r1 = s.build("r1").await.unwrap().unwrap();
    assert_eq!(r1.status, BuildStatus::Error);
    assert!(r1.error.unwrap().contains("restarts"));
    let listed = s.list_builds(&p.id, None, 100).await.unwrap();
    assert_eq!(listed.len(), 6, "o1 belongs to another project");
    assert_eq!(listed[0].id, "r1", "newest first");

    s.set_git(&p.id, None, None).await.unwrap();
    assert!(s.git(&p.id).await.unwrap().is_none());
}

#[tokio::test]
async fn store_suite_sqlite() {
    let (s, _dir) = sqlite().await;
    suite(&s).await;
    builds_suite(&s).await;
    s.close().await;
}

#[tokio::test]
async fn store_suite_postgres() {
    let (s, db) = PgDb::create().await;
    suite(&s).await;
    builds_suite(&s).await;
    db.drop_db(s).await;
}

#[tokio::test]
async fn reopening_runs_no_migration_twice_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let s = Store::connect(&url).await.unwrap();
    s.create_project("p1", "kept").await.unwrap();
    s.close().await;
    let s = Store::connect(&url).await.unwrap();
    assert!(s.project("kept").await.unwrap().is_some());
}

#[tokio::test]
async fn unsupported_database_url_is_a_clear_error() {
    let err = Store::connect("mysql://x").await.err().unwrap().to_string();
    assert!(err.contains("sqlite://"), "{err}");
}
