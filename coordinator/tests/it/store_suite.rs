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

pub(crate) struct PgDb {
    admin_url: String,
    name: String,
}

impl PgDb {
    async fn create() -> (Store, PgDb) {
        let (url, db) = Self::new_database().await;
        (Store::connect(&url).await.unwrap(), db)
    }

    /// A fresh database of its own on the test server, and its URL.
    pub(crate) async fn new_database() -> (String, PgDb) {
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
        (url, PgDb { admin_url, name })
    }

    async fn drop_db(self, store: Store) {
        store.close().await;
        self.drop_unused().await;
    }

    /// Drops the database (connections still open are ended).
    pub(crate) async fn drop_unused(self) {
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
        cert_not_after: Some(1_000),
        memory_used: 0,
        memory_total: 0,
        disk_used: 0,
        disk_total: 0,
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
    let t = s.live_api_token("hash1").await.unwrap().unwrap();
    assert_eq!((t.id.as_str(), t.user_id), ("t1", None));
    assert_eq!(s.live_api_token("nope").await.unwrap(), None);

    // Projects: unique names, pagination by name.
    for n in ["charlie", "alpha", "bravo"] {
        s.create_project(&format!("id-{n}"), n, "team-a")
            .await
            .unwrap();
    }
    assert!(matches!(
        s.create_project("x", "alpha", "team-a").await,
        Err(StoreError::Conflict(_))
    ));
    let team_a = vec!["team-a".to_string()];
    let first = s.list_projects(&team_a, None, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["alpha", "bravo"]
    );
    let rest = s.list_projects(&team_a, Some("bravo"), 2).await.unwrap();
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
    let n1 = s.node("n1").await.unwrap().unwrap();
    assert_eq!((n1.id.as_str(), n1.region.as_str()), ("n1", "fra"));
    assert_eq!(n1.cert_not_after, Some(1_000));
    assert!(s.node("n2").await.unwrap().is_none());
    assert!(s.record_node_cert("n1", "fp1b", 2_000).await.unwrap());
    assert!(!s.record_node_cert("n2", "fp", 2_000).await.unwrap());
    assert_eq!(
        s.node("n1").await.unwrap().unwrap().cert_not_after,
        Some(2_000)
    );
    let contact = |v| NodeContact {
        software_version: "0.2.0".into(),
        config_version: v,
        bundles_present: 2,
        bundles_pending: 1,
        http_addr: Some("127.0.0.1:80".into()),
        https_addr: None,
        mesh_addr: Some("127.0.0.1:8702".into()),
        resources: Default::default(),
    };
    assert!(
        !s.record_node_contact("n2", &contact(1)).await.unwrap(),
        "no such node"
    );
    assert!(s
        .record_node_contact(
            "n1",
            &NodeContact {
                software_version: "0.2.0".into(),
                config_version: 7,
                bundles_present: 2,
                bundles_pending: 1,
                http_addr: Some("127.0.0.1:80".into()),
                https_addr: None,
                mesh_addr: Some("127.0.0.1:8702".into()),
                resources: protocol::errors::Resources {
                    memory_used: 3 << 30,
                    memory_total: 8 << 30,
                    disk_used: u64::MAX,
                    disk_total: 100 << 30,
                },
            },
        )
        .await
        .unwrap());
    let nodes = s.list_nodes().await.unwrap();
    let n1 = nodes.iter().find(|n| n.id == "n1").unwrap();
    assert_eq!(
        (n1.memory_used, n1.memory_total, n1.disk_used, n1.disk_total),
        (3 << 30, 8 << 30, i64::MAX, 100 << 30),
        "reported resources kept (a count past i64 clamped)"
    );
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].config_version, 7);
    assert_eq!(nodes[0].mesh_addr.as_deref(), Some("127.0.0.1:8702"));
    assert!(nodes[0].last_seen.is_some());

    // Removing a node: it goes, and only once.
    s.enroll_node("jh3", &node("n3", "fp3", "fra")).await.ok();
    assert_eq!(
        s.remove_node("n1").await.unwrap().map(|n| n.id).as_deref(),
        Some("n1")
    );
    assert!(s.remove_node("n1").await.unwrap().is_none());
    assert!(s.node("n1").await.unwrap().is_none());
    assert!(!s.record_node_contact("n1", &contact(8)).await.unwrap());

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
    let p = s.create_project("pb", "builds", "team-a").await.unwrap();
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
    let first = s.claim_build("coord-a", 60_000).await.unwrap().unwrap();
    assert_eq!(
        (first.id.as_str(), first.status, first.attempts),
        ("b1", BuildStatus::Building, 1)
    );
    // b2 waits: its project is building; another project's build goes on.
    assert!(s.claim_build("coord-a", 60_000).await.unwrap().is_none());
    let other = s.create_project("po", "other", "team-a").await.unwrap();
    s.enqueue_build(&queued("o1", &other.id, "main", 25))
        .await
        .unwrap();
    assert_eq!(
        s.claim_build("coord-a", 60_000).await.unwrap().unwrap().id,
        "o1"
    );
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
        commit_time: Some(100),
        promote,
        branch_alias: true,
    };
    s.finish_build_ready(&ready(&first, true)).await.unwrap();
    let second = s.claim_build("coord-a", 60_000).await.unwrap().unwrap();
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
    again = s.claim_build("coord-a", 60_000).await.unwrap().unwrap();
    s.finish_build_ready(&ReadyBuild {
        build: &again,
        bundle_id: "bundle-b",
        commit_sha: "1123456789abcdef0123456789abcdef01234567",
        commit_message: "m2",
        commit_author: "Ada",
        commit_time: None,
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

    // An older commit is never promoted over a newer one; a newer one is.
    assert_eq!(s.production_commit_time(&p.id).await.unwrap(), Some(100));
    for (id, at, want) in [("b4", 50, "b1"), ("b5", 200, "b5")] {
        s.enqueue_build(&queued(id, &p.id, "main", 35))
            .await
            .unwrap();
        let b = s.claim_build("coord-a", 60_000).await.unwrap().unwrap();
        s.finish_build_ready(&ReadyBuild {
            build: &b,
            bundle_id: "bundle-b",
            commit_sha: "2123456789abcdef0123456789abcdef01234567",
            commit_message: "m",
            commit_author: "Ada",
            commit_time: Some(at),
            promote: true,
            branch_alias: true,
        })
        .await
        .unwrap();
        let prod = s
            .project(&p.id)
            .await
            .unwrap()
            .unwrap()
            .production_deployment;
        assert_eq!(
            prod.as_deref(),
            Some(want),
            "after {id} (committed at {at})"
        );
    }

    // Delivery ids are remembered once, per project, until they expire.
    assert!(s.record_delivery(&p.id, "d-1").await.unwrap());
    assert!(!s.record_delivery(&p.id, "d-1").await.unwrap());
    assert_eq!(
        s.expire_deliveries(coordinator::store::now_ms() + 1)
            .await
            .unwrap(),
        1
    );
    assert!(s.record_delivery(&p.id, "d-1").await.unwrap());

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
    s.claim_build("coord-a", 60_000).await.unwrap().unwrap();
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
    // A build under a live lease is its coordinator's: another one (or the
    // periodic pass) leaves it; its own coordinator restarted takes it back
    // at once; another takes it once the lease lapsed.
    s.enqueue_build(&queued("r1", &p.id, "x", 60))
        .await
        .unwrap();
    s.claim_build("coord-a", 60_000).await.unwrap().unwrap();
    assert!(s
        .recover_interrupted_builds("coord-b", true)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .recover_interrupted_builds("coord-a", false)
        .await
        .unwrap()
        .is_empty());
    assert!(s.renew_build_lease("r1", "coord-a", 60_000).await.unwrap());
    assert!(!s.renew_build_lease("r1", "coord-b", 60_000).await.unwrap());
    let found = s.recover_interrupted_builds("coord-a", true).await.unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].1, "first interruption re-queues");
    assert_eq!(
        s.build("r1").await.unwrap().unwrap().status,
        BuildStatus::Queued
    );
    assert!(
        !s.renew_build_lease("r1", "coord-a", 60_000).await.unwrap(),
        "a re-queued build's lease is nobody's"
    );
    // A lease of 0 ms has lapsed by the time anyone looks.
    s.claim_build("coord-a", 0).await.unwrap().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let found = s
        .recover_interrupted_builds("coord-b", false)
        .await
        .unwrap();
    assert!(!found[0].1, "second interruption fails");
    let r1 = s.build("r1").await.unwrap().unwrap();
    assert_eq!(r1.status, BuildStatus::Error);
    assert!(r1.error.unwrap().contains("restarts"));
    let listed = s.list_builds(&p.id, None, 100).await.unwrap();
    assert_eq!(listed.len(), 8, "o1 belongs to another project");
    assert_eq!(listed[0].id, "r1", "newest first");

    s.set_git(&p.id, None, None).await.unwrap();
    assert!(s.git(&p.id).await.unwrap().is_none());
}

#[tokio::test]
async fn store_suite_sqlite() {
    let (s, _dir) = sqlite().await;
    suite(&s).await;
    builds_suite(&s).await;
    accounts_suite(&s).await;
    domains_suite(&s).await;
    acme_suite(&s).await;
    analytics_suite(&s).await;
    observability_suite(&s).await;
    coordinators_suite(&s).await;
    s.close().await;
}

#[tokio::test]
async fn store_suite_postgres() {
    let (s, db) = PgDb::create().await;
    suite(&s).await;
    builds_suite(&s).await;
    accounts_suite(&s).await;
    domains_suite(&s).await;
    acme_suite(&s).await;
    analytics_suite(&s).await;
    observability_suite(&s).await;
    coordinators_suite(&s).await;
    db.drop_db(s).await;
}

#[tokio::test]
async fn reopening_runs_no_migration_twice_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let s = Store::connect(&url).await.unwrap();
    s.create_project("p1", "kept", "team-a").await.unwrap();
    s.close().await;
    let s = Store::connect(&url).await.unwrap();
    assert!(s.project("kept").await.unwrap().is_some());
}

#[tokio::test]
async fn unsupported_database_url_is_a_clear_error() {
    let err = Store::connect("mysql://x").await.err().unwrap().to_string();
    assert!(err.contains("sqlite://"), "{err}");
}

/// Accounts on both backends: the first sign-up's adoption rules, roles
/// with the last-owner guard, one-shot invitations, sessions, token scopes
/// and the audit log's team filter and paging.
async fn accounts_suite(s: &Store) {
    use coordinator::store::{
        AcceptOutcome, ApiToken, AuditEvent, Invitation, Role, Session, Team, User,
    };
    let now = coordinator::store::now_ms();
    let team = |id: &str| Team {
        id: id.into(),
        name: format!("{id} team"),
        created_at: now,
    };
    let user = |id: &str| User {
        id: id.into(),
        email: format!("{id}@example.com"),
        name: id.into(),
        instance_owner: false,
        created_at: now,
    };
    // Projects made before anyone signed up land in the default team.
    let default = s.ensure_default_team(&team("dflt")).await.unwrap();
    assert_eq!(
        s.ensure_default_team(&team("other")).await.unwrap(),
        default
    );
    s.create_api_token("boot", "admin", "boot-hash")
        .await
        .unwrap();

    let ada = s
        .create_user(&user("ada"), "$argon2id$x", &team("t-ada"))
        .await
        .unwrap();
    assert!(ada.instance_owner, "the first account owns the instance");
    let ms = s.memberships("ada").await.unwrap();
    assert_eq!(ms.len(), 1);
    assert_eq!(
        (ms[0].team.id.as_str(), ms[0].role),
        (default.as_str(), Role::Owner)
    );
    assert_eq!(
        s.live_api_token("boot-hash")
            .await
            .unwrap()
            .unwrap()
            .user_id
            .as_deref(),
        Some("ada"),
        "the admin token becomes the owner's first token"
    );
    let bob = s
        .create_user(&user("bob"), "$argon2id$y", &team("t-bob"))
        .await
        .unwrap();
    assert!(!bob.instance_owner);
    assert_eq!(s.memberships("bob").await.unwrap()[0].team.id, "t-bob");
    assert!(matches!(
        s.create_user(&user("bob"), "h", &team("t-bob2")).await,
        Err(StoreError::Conflict(_))
    ));
    let (found, hash) = s.user_by_email("bob@example.com").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), hash.as_str()), ("bob", "$argon2id$y"));

    // Roles: the last owner cannot step down or leave.
    assert!(matches!(
        s.set_member_role("t-bob", "bob", Some(Role::Member)).await,
        Err(StoreError::LastOwner)
    ));
    assert!(!s
        .set_member_role("t-bob", "ada", Some(Role::Viewer))
        .await
        .unwrap());

    // Invitations are used once.
    let inv = Invitation {
        id: "inv1".into(),
        team_id: "t-bob".into(),
        role: Role::Viewer,
        token_hash: "inv-hash".into(),
        created_by: "bob".into(),
        created_at: now,
        expires_at: now + 60_000,
        accepted_at: None,
        accepted_by: None,
        revoked_at: None,
    };
    s.create_invitation(&inv).await.unwrap();
    assert_eq!(s.pending_invitations("t-bob").await.unwrap().len(), 1);
    assert_eq!(
        s.accept_invitation("inv1", "ada").await.unwrap(),
        AcceptOutcome::Joined
    );
    assert_eq!(
        s.accept_invitation("inv1", "ada").await.unwrap(),
        AcceptOutcome::Gone
    );
    assert!(s.pending_invitations("t-bob").await.unwrap().is_empty());
    let roles: Vec<_> = s
        .members("t-bob")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("bob".to_string(), Role::Owner),
            ("ada".to_string(), Role::Viewer)
        ]
    );
    assert!(s
        .set_member_role("t-bob", "ada", Some(Role::Owner))
        .await
        .unwrap());
    assert!(
        s.set_member_role("t-bob", "bob", None).await.unwrap(),
        "another owner exists now"
    );
    assert!(s.memberships("bob").await.unwrap().is_empty());
    let expired = Invitation {
        id: "inv2".into(),
        token_hash: "inv-hash2".into(),
        expires_at: now - 1,
        ..inv.clone()
    };
    s.create_invitation(&expired).await.unwrap();
    assert_eq!(
        s.accept_invitation("inv2", "bob").await.unwrap(),
        AcceptOutcome::Gone
    );
    let revoked = Invitation {
        id: "inv3".into(),
        token_hash: "inv-hash3".into(),
        ..inv.clone()
    };
    s.create_invitation(&revoked).await.unwrap();
    assert!(s.revoke_invitation("t-bob", "inv3").await.unwrap());
    assert!(!s.revoke_invitation("t-bob", "inv3").await.unwrap());
    assert_eq!(
        s.accept_invitation("inv3", "bob").await.unwrap(),
        AcceptOutcome::Gone
    );

    // Sessions: found while live, gone after logout or a password change.
    let sess = |id: &str, user: &str, expires_at: i64| Session {
        id_hash: id.into(),
        user_id: user.into(),
        csrf: "c".into(),
        created_at: now,
        expires_at,
        ip: "127.0.0.1".into(),
        user_agent: "test".into(),
    };
    s.create_session(&sess("s1", "ada", now + 60_000))
        .await
        .unwrap();
    s.create_session(&sess("s2", "ada", now + 60_000))
        .await
        .unwrap();
    s.create_session(&sess("s3", "ada", now - 1)).await.unwrap();
    assert_eq!(s.session("s1").await.unwrap().unwrap().1.id, "ada");
    assert!(s.session("s3").await.unwrap().is_none(), "expired");
    s.set_password("ada", "$argon2id$new", Some("s1"))
        .await
        .unwrap();
    assert!(
        s.session("s1").await.unwrap().is_some(),
        "the current session stays"
    );
    assert!(
        s.session("s2").await.unwrap().is_none(),
        "other sessions end"
    );
    s.delete_session("s1").await.unwrap();
    assert!(s.session("s1").await.unwrap().is_none());

    // Tokens: scoped, expiring, revocable only by their owner.
    let tok = |id: &str, user: &str, expires_at: Option<i64>| ApiToken {
        id: id.into(),
        name: id.into(),
        token_hash: format!("{id}-hash"),
        user_id: Some(user.into()),
        team_id: Some("t-bob".into()),
        project_id: None,
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    s.insert_api_token(&tok("k1", "ada", None)).await.unwrap();
    s.insert_api_token(&tok("k2", "ada", Some(now - 1)))
        .await
        .unwrap();
    assert_eq!(
        s.live_api_token("k1-hash")
            .await
            .unwrap()
            .unwrap()
            .team_id
            .as_deref(),
        Some("t-bob")
    );
    assert!(
        s.live_api_token("k2-hash").await.unwrap().is_none(),
        "expired"
    );
    s.touch_api_token("k1").await.unwrap();
    assert!(s
        .live_api_token("k1-hash")
        .await
        .unwrap()
        .unwrap()
        .last_used_at
        .is_some());
    assert!(
        !s.revoke_api_token(Some("bob"), "k1").await.unwrap(),
        "not bob's"
    );
    assert!(s.revoke_api_token(Some("ada"), "k1").await.unwrap());
    assert!(s.live_api_token("k1-hash").await.unwrap().is_none());
    let ids: Vec<_> = s
        .api_tokens_of(Some("ada"))
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert!(
        ids.contains(&"k1".to_string()) && ids.contains(&"boot".to_string()),
        "{ids:?}"
    );

    // Audit: filtered by team, instance events apart, paged newest first.
    for (i, team) in [Some("t-bob"), None, Some("t-bob"), Some("t-ada")]
        .into_iter()
        .enumerate()
    {
        s.insert_audit(&AuditEvent {
            id: format!("e{i}"),
            at: now + i as i64,
            actor_id: Some("ada".into()),
            actor: "ada@example.com".into(),
            team_id: team.map(str::to_string),
            action: "test".into(),
            target: format!("t{i}"),
            ip: "127.0.0.1".into(),
            detail: "{}".into(),
        })
        .await
        .unwrap();
    }
    let bobs = s
        .audit_events(&["t-bob".into()], false, None, 10)
        .await
        .unwrap();
    assert_eq!(
        bobs.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e2", "e0"]
    );
    let with_instance = s
        .audit_events(&["t-bob".into()], true, None, 2)
        .await
        .unwrap();
    assert_eq!(
        with_instance
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["e2", "e1"]
    );
    let last = with_instance.last().unwrap();
    let rest = s
        .audit_events(&["t-bob".into()], true, Some((last.at, &last.id)), 2)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e0"]
    );
    assert!(s
        .audit_events(&[], false, None, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Custom domains on both backends: one name per project of one team,
/// checks recorded (a proof once found stays), deleted with the project.
async fn domains_suite(s: &Store) {
    use coordinator::store::AddOutcome;
    s.create_project("dom-p1", "dom-one", "team-d1")
        .await
        .unwrap();
    s.create_project("dom-p2", "dom-two", "team-d2")
        .await
        .unwrap();
    let row = domain_row;
    let one = row("shop.test", "dom-p1", "team-d1");
    assert_eq!(s.add_domain(&one).await.unwrap(), AddOutcome::Added);
    assert_eq!(
        s.add_domain(&row("shop.test", "dom-p2", "team-d2"))
            .await
            .unwrap(),
        AddOutcome::Taken { same_team: false }
    );
    assert_eq!(
        s.add_domain(&one).await.unwrap(),
        AddOutcome::Taken { same_team: true }
    );
    assert!(s
        .claimed_by_others(&["shop.test"], "team-d2")
        .await
        .unwrap());
    assert!(!s
        .claimed_by_others(&["shop.test"], "team-d1")
        .await
        .unwrap());
    assert!(!s
        .claimed_by_others(&["other.test"], "team-d2")
        .await
        .unwrap());

    let mut blog = row("blog.shop.test", "dom-p2", "team-d2");
    blog.needs_proof = true;
    assert_eq!(s.add_domain(&blog).await.unwrap(), AddOutcome::Added);
    let checked = s
        .record_domain_check("blog.shop.test", "active", None, true)
        .await
        .unwrap()
        .unwrap();
    assert!(checked.serves() && checked.proven_at.is_some() && checked.checked_at.is_some());
    // A later check without the TXT record keeps the proof.
    let again = s
        .record_domain_check(
            "blog.shop.test",
            "misconfigured",
            Some("A 198.51.100.7"),
            false,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.proven_at, checked.proven_at);
    assert_eq!(again.dns_detail.as_deref(), Some("A 198.51.100.7"));
    assert!(!again.serves());
    assert!(s
        .record_domain_check("nope.test", "active", None, false)
        .await
        .unwrap()
        .is_none());
    // The never-checked first.
    let due = s.domains_to_check(10).await.unwrap();
    assert_eq!(due[0].name, "shop.test");
    assert_eq!(s.project_domains("dom-p2").await.unwrap().len(), 1);

    assert!(s.remove_domain("blog.shop.test").await.unwrap().is_some());
    assert!(s.domain("blog.shop.test").await.unwrap().is_none());
    s.delete_project("dom-p1").await.unwrap();
    assert!(s.domain("shop.test").await.unwrap().is_none());
}

/// Certificates of custom domains: leases (one owner; its own taken back),
/// what is due, an order recorded then issued, failures and retries, ARI,
/// expiry, and accounts (the first stored wins), on both databases.
/// Analytics rollups: a record counts into its minute, hour and day once
/// however often it is sent; filters narrow; retention trims by granularity.
async fn analytics_suite(s: &Store) {
    use analytics::query::Filter;
    use analytics::{Aggregate, Env, Granularity, Record, RecordId, SiteKey};
    use coordinator::store::analytics::{AnalyticsStore, Ingested, Rows};
    s.create_project("an-p", "traffic", "team-a").await.unwrap();
    let minute = 1_800_000_000 + 120; // 1_800_000_000 is on an hour
    let record = |seq: u64, requests: u64, project: &str| Record {
        id: RecordId { start: minute, seq },
        granularity: Granularity::Minute,
        sites: vec![(
            SiteKey {
                project: project.into(),
                deployment: "d1".into(),
                env: Env::Production,
            },
            Aggregate {
                requests,
                ..Default::default()
            },
        )],
    };
    assert_eq!(
        s.ingest_analytics("n1", "fra", &record(1, 5, "traffic"))
            .await
            .unwrap(),
        Ingested::Counted {
            sites: 1,
            unknown: 0
        }
    );
    // The same record again (a lost acknowledgement): not counted twice.
    assert_eq!(
        s.ingest_analytics("n1", "fra", &record(1, 5, "traffic"))
            .await
            .unwrap(),
        Ingested::Duplicate
    );
    // Another record of the same minute merges; a gone project is skipped.
    s.ingest_analytics("n1", "fra", &record(2, 2, "traffic"))
        .await
        .unwrap();
    assert_eq!(
        s.ingest_analytics("n2", "nyc", &record(1, 4, "nobody"))
            .await
            .unwrap(),
        Ingested::Counted {
            sites: 0,
            unknown: 1
        }
    );
    s.ingest_analytics("n2", "nyc", &record(3, 1, "traffic"))
        .await
        .unwrap();
    let rows = |g, f: Filter| async move {
        match s.analytics_rows("an-p", g, 0, i64::MAX, &f).await.unwrap() {
            Rows::Found(r) => r,
            Rows::TooMany => panic!("too many"),
        }
    };
    for g in [Granularity::Minute, Granularity::Hour, Granularity::Day] {
        let r = rows(g, Filter::default()).await;
        assert_eq!(r.iter().map(|r| r.agg.requests).sum::<u64>(), 8, "{g:?}");
        assert_eq!(r.len(), 2, "one row per node: {g:?}");
        assert!(r.iter().all(|r| r.bucket == g.floor(minute)));
    }
    let fra = rows(
        Granularity::Hour,
        Filter {
            region: Some("fra".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        (fra.len(), fra[0].agg.requests, fra[0].node.as_str()),
        (1, 7, "n1")
    );
    // The nodes page's rate: every project's minutes, per node.
    let per_node = s.node_requests(minute, minute + 60).await.unwrap();
    assert_eq!(
        per_node.into_iter().collect::<Vec<_>>(),
        vec![("n1".to_string(), 7), ("n2".to_string(), 1)]
    );
    assert!(s
        .node_requests(minute + 60, minute + 120)
        .await
        .unwrap()
        .is_empty());
    // Retention: minutes go first, days stay.
    let now = minute + 3 * 86_400;
    s.expire_analytics(
        now,
        &[
            (Granularity::Minute, Some(86_400)),
            (Granularity::Hour, Some(30 * 86_400)),
            (Granularity::Day, None),
        ],
    )
    .await
    .unwrap();
    assert!(rows(Granularity::Minute, Filter::default())
        .await
        .is_empty());
    assert_eq!(rows(Granularity::Hour, Filter::default()).await.len(), 2);
    // The project's deletion takes its analytics.
    s.delete_project("an-p").await.unwrap();
    assert!(rows(Granularity::Day, Filter::default()).await.is_empty());
}

async fn acme_suite(s: &Store) {
    use coordinator::store::{AddOutcome, DomainRow, Issued, OrderStarted};
    s.create_project("acme-p", "acme-one", "team-a")
        .await
        .unwrap();
    let row = |name: &str| DomainRow {
        hsts_max_age: Some(300),
        ..domain_row(name, "acme-p", "team-a")
    };
    assert_eq!(
        s.add_domain(&row("tls.test")).await.unwrap(),
        AddOutcome::Added
    );
    let now = coordinator::store::now_ms();
    // Not served yet: nothing due; the base wildcard (no domain row, no
    // certificate yet) is.
    assert!(s.certs_due(now, "a", None, 10).await.unwrap().is_empty());
    assert_eq!(
        s.certs_due(now, "a", Some("*.base.test"), 10)
            .await
            .unwrap(),
        vec!["*.base.test"]
    );
    s.record_domain_check("tls.test", "active", None, false)
        .await
        .unwrap();
    assert_eq!(
        s.certs_due(now, "a", None, 10).await.unwrap(),
        vec!["tls.test"]
    );

    // One owner at a time; the owner renews, another cannot.
    let until = now + 60_000;
    assert!(s.lease_cert("tls.test", "a", until).await.unwrap());
    assert!(!s.lease_cert("tls.test", "b", until).await.unwrap());
    assert!(s
        .renew_cert_lease("tls.test", "a", until + 1)
        .await
        .unwrap());
    assert!(!s.renew_cert_lease("tls.test", "b", until).await.unwrap());
    assert!(
        !s.renew_cert_lease("gone.test", "a", until).await.unwrap(),
        "no row made"
    );
    assert!(s.domain_cert("gone.test").await.unwrap().is_none());

    // An order recorded: not due for others, due for its owner (restarted).
    s.record_order(
        "tls.test",
        &OrderStarted {
            url: "https://ca.test/order/1",
            directory: "https://ca.test/dir",
            key_enc: b"sealed",
            challenge: "http-01",
            renewing: false,
            busy_for_ms: 480_000,
        },
    )
    .await
    .unwrap();
    let c = s.domain_cert("tls.test").await.unwrap().unwrap();
    assert_eq!(
        (c.state.as_str(), c.order_url.as_deref()),
        ("issuing", Some("https://ca.test/order/1"))
    );
    assert!(s.certs_due(now, "b", None, 10).await.unwrap().is_empty());
    assert_eq!(
        s.certs_due(now, "a", None, 10).await.unwrap(),
        vec!["tls.test"]
    );
    // The same through the base-wildcard door (a name is listed once).
    let due = |owner: &'static str| s.certs_due(now, owner, Some("tls.test"), 10);
    assert_eq!(due("a").await.unwrap(), vec!["tls.test"]);
    assert!(due("b").await.unwrap().is_empty());

    // A failure: the CA's words, a retry later; a verify within the
    // minute does not pull it in, nor for a rate limit.
    s.record_cert_failure("tls.test", "{\"type\":\"x\"}", now + 60_000, false)
        .await
        .unwrap();
    let c = s.domain_cert("tls.test").await.unwrap().unwrap();
    assert_eq!((c.state.as_str(), c.failures), ("failed", 1));
    assert!(c.failing_since.is_some());
    s.retry_cert_now("tls.test").await.unwrap();
    assert_eq!(
        s.domain_cert("tls.test")
            .await
            .unwrap()
            .unwrap()
            .next_try_at,
        now + 60_000
    );
    // Given up: stays until asked.
    s.record_cert_failure("tls.test", "gone", 0, true)
        .await
        .unwrap();
    assert_eq!(
        s.domain_cert("tls.test")
            .await
            .unwrap()
            .unwrap()
            .next_try_at,
        i64::MAX
    );

    // Issued: active, order closed, failures forgotten, renewal scheduled.
    s.release_cert("tls.test", "a").await.unwrap();
    let issued = Issued {
        chain_pem: "CHAIN".into(),
        key_enc: b"sealed-key".to_vec(),
        not_before: now / 1000 - 10,
        not_after: now / 1000 + 90 * 86_400,
        issuer: "https://ca.test/dir".into(),
        cert_id: Some("aki.serial".into()),
        renew_at: now + 60 * 86_400_000,
        ari_next_at: Some(now - 1),
    };
    assert!(s.record_issued("tls.test", &issued).await.unwrap());
    let c = s.domain_cert("tls.test").await.unwrap().unwrap();
    assert_eq!(
        (c.state.as_str(), c.failures, c.order_url.clone()),
        ("active", 0, None)
    );
    assert!(c.failing_since.is_none() && c.valid_at(now / 1000));
    assert!(s.certs_due(now, "a", None, 10).await.unwrap().is_empty());
    // ARI: due, an earlier window moves the renewal, a later one does not.
    let ari = s.ari_due(now, 10).await.unwrap();
    assert_eq!(
        ari,
        vec![(
            "tls.test".to_string(),
            "https://ca.test/dir".to_string(),
            "aki.serial".to_string()
        )]
    );
    s.record_ari("tls.test", Some(now + 86_400_000), now + 3_600_000)
        .await
        .unwrap();
    s.record_ari("tls.test", Some(now + 99 * 86_400_000), now + 3_600_000)
        .await
        .unwrap();
    s.record_ari("tls.test", None, now + 3_600_000)
        .await
        .unwrap();
    let c = s.domain_cert("tls.test").await.unwrap().unwrap();
    assert_eq!(c.renew_at, Some(now + 86_400_000));
    assert!(s.ari_due(now, 10).await.unwrap().is_empty());

    // Expired: withdrawn and forgotten.
    assert!(s.expire_certs(now / 1000).await.unwrap().is_empty());
    let gone = s.expire_certs(now / 1000 + 91 * 86_400).await.unwrap();
    assert_eq!(gone, vec!["tls.test"]);
    let c = s.domain_cert("tls.test").await.unwrap().unwrap();
    assert!(c.chain_pem.is_none() && c.key_enc.is_none() && c.state == "pending");

    // Accounts: the first stored wins.
    assert!(s
        .acme_account("https://ca.test/dir")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.put_acme_account("https://ca.test/dir", b"first")
            .await
            .unwrap(),
        b"first"
    );
    assert_eq!(
        s.put_acme_account("https://ca.test/dir", b"second")
            .await
            .unwrap(),
        b"first"
    );

    // A removed domain takes its certificate row with it.
    s.remove_domain("tls.test").await.unwrap();
    assert!(s.domain_cert("tls.test").await.unwrap().is_none());
}

/// A pending production domain of project `pid` (team `team`).
fn domain_row(name: &str, pid: &str, team: &str) -> coordinator::store::DomainRow {
    coordinator::store::DomainRow {
        name: name.into(),
        project_id: pid.into(),
        team_id: team.into(),
        target: "production".into(),
        branch: None,
        redirect_to: None,
        redirect_status: None,
        verification: "outpost-verify=x".into(),
        needs_proof: false,
        proven_at: None,
        dns_state: "pending".into(),
        dns_detail: None,
        checked_at: None,
        created_at: 0,
        https_redirect: true,
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
    }
}

/// Error issues, alert rules, channels, deliveries, leases and drains, the
/// same on both databases.
async fn observability_suite(s: &Store) {
    use coordinator::errors::{Event, Severity, Source, State};
    use coordinator::store::alerts::{ChannelRow, RuleRow};
    use coordinator::store::drains::{DrainLine, DrainRow};
    use coordinator::store::errors::StateFilter;
    let now = coordinator::store::now_ms();
    // Channels belong to a real team.
    s.create_user(
        &coordinator::store::User {
            id: "obs".into(),
            email: "obs@example.com".into(),
            name: "obs".into(),
            instance_owner: false,
            created_at: now,
        },
        "h",
        &coordinator::store::Team {
            id: "t-obs".into(),
            name: "obs".into(),
            created_at: now,
        },
    )
    .await
    .unwrap();
    let p = s.create_project("ob-p", "observed", "t-obs").await.unwrap();
    let event = |msg: &str, at: i64, n: u32| Event {
        project_id: p.id.clone(),
        deployment_id: Some("d1".into()),
        source: Source::Function,
        kind: "panic".into(),
        message: msg.into(),
        place: "/api/x".into(),
        frames: vec!["app::f".into()],
        at,
        first_at: at,
        count: n,
        detail: serde_json::json!({"request_id": "00ff"}),
    };
    // Two events of one bug (other numbers), one of another.
    let a = s
        .record_error("iss1", &event("order 1 failed", now, 2))
        .await
        .unwrap();
    assert!(a.new && !a.regressed);
    let b = s
        .record_error("iss2", &event("order 2 failed", now + 1, 3))
        .await
        .unwrap();
    assert_eq!(b.issue_id, "iss1", "grouped by fingerprint");
    assert!(!b.new);
    s.record_error("iss3", &event("payment failed", now, 1))
        .await
        .unwrap();
    let open = s.error_issues(&p.id, StateFilter::Open, 10).await.unwrap();
    assert_eq!(open.len(), 2);
    let one = s.error_issue("iss1").await.unwrap().unwrap();
    assert_eq!(
        (one.count, one.state, one.severity),
        (5, State::Unresolved, Severity::High)
    );
    assert_eq!(
        s.error_count_since(&p.id, Some(Source::Function), now - 60_000)
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        s.error_count_since(&p.id, Some(Source::Build), now - 60_000)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.error_count_since(&p.id, None, now + 120_000)
            .await
            .unwrap(),
        0
    );
    let trends = s.error_trends(&p.id, now - 3_600_000).await.unwrap();
    assert_eq!(trends["iss1"].values().sum::<i64>(), 5);
    assert_eq!(s.error_deployments("iss1").await.unwrap()[0].1, 5);
    // Resolve, then a new event regresses it; ignore keeps ignoring.
    assert!(s
        .update_error_issue("iss1", Some(State::Resolved), None)
        .await
        .unwrap());
    assert!(s
        .error_issue("iss1")
        .await
        .unwrap()
        .unwrap()
        .resolved_at
        .is_some());
    assert_eq!(
        s.error_issues(&p.id, StateFilter::Open, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let r = s
        .record_error("iss4", &event("order 3 failed", now + 2, 1))
        .await
        .unwrap();
    assert!(r.regressed);
    assert_eq!(
        s.error_issue("iss1").await.unwrap().unwrap().state,
        State::Regressed
    );
    assert!(s
        .update_error_issue("iss3", Some(State::Ignored), Some(Severity::Low))
        .await
        .unwrap());
    s.record_error("iss5", &event("payment failed", now + 3, 1))
        .await
        .unwrap();
    let ignored = s.error_issue("iss3").await.unwrap().unwrap();
    assert_eq!(
        (ignored.state, ignored.severity, ignored.count),
        (State::Ignored, Severity::Low, 2)
    );
    assert_eq!(
        s.error_issues(&p.id, StateFilter::All, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    // Only the newest events are kept.
    for i in 0..30 {
        s.record_error("x", &event("order 9 failed", now + 10 + i, 1))
            .await
            .unwrap();
    }
    assert_eq!(
        s.error_events("iss1").await.unwrap().len() as i64,
        coordinator::store::errors::EVENTS_KEPT
    );

    // Channels, rules, states.
    let channel = ChannelRow {
        id: "ch1".into(),
        team_id: "t-obs".into(),
        kind: "webhook".into(),
        name: "ops".into(),
        target: "https://hooks.example.com/x".into(),
        secret_enc: Some(vec![1, 2, 3]),
        created_at: now,
    };
    s.insert_channel(&channel).await.unwrap();
    assert_eq!(
        s.team_channels("t-obs").await.unwrap()[0].secret_enc,
        Some(vec![1, 2, 3])
    );
    let rule = RuleRow {
        id: "ru1".into(),
        team_id: Some("t-obs".into()),
        project_id: Some(p.id.clone()),
        kind: "error_rate".into(),
        threshold: 2.5,
        window_ms: 60_000,
        for_ms: 0,
        channels: vec!["ch1".into()],
        enabled: true,
        created_at: now,
    };
    s.insert_rule(&rule).await.unwrap();
    let instance = RuleRow {
        id: "ru2".into(),
        team_id: None,
        project_id: None,
        kind: "disk_space".into(),
        ..rule.clone()
    };
    s.insert_rule(&instance).await.unwrap();
    assert_eq!(s.alert_rules(Some(&p.id)).await.unwrap()[0].threshold, 2.5);
    assert_eq!(s.alert_rules(None).await.unwrap()[0].id, "ru2");
    assert_eq!(s.enabled_alert_rules().await.unwrap().len(), 2);
    // Deliveries: one waiting per rule and channel; claimed once.
    assert!(s
        .queue_delivery("dl1", "ch1", Some("ru1"), "{}", now - 1)
        .await
        .unwrap());
    assert!(!s
        .queue_delivery("dl2", "ch1", Some("ru1"), "{}", now)
        .await
        .unwrap());
    assert!(s
        .queue_delivery("dl3", "ch1", None, "{\"at\":1}", now - 1)
        .await
        .unwrap());
    let claimed = s.claim_deliveries(10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        s.claim_deliveries(10, 60_000).await.unwrap().is_empty(),
        "leased"
    );
    s.finish_delivery("dl1", true, None, "{\"sent\":1}", Some(200), None)
        .await
        .unwrap();
    s.finish_delivery(
        "dl3",
        false,
        Some(now + 10_000),
        "{}",
        None,
        Some("refused"),
    )
    .await
    .unwrap();
    let history = s.deliveries("ch1", 10).await.unwrap();
    let dl1 = history.iter().find(|d| d.id == "dl1").unwrap();
    assert_eq!(
        (dl1.status.as_str(), dl1.last_status, dl1.attempts),
        ("sent", Some(200), 1)
    );
    let dl3 = history.iter().find(|d| d.id == "dl3").unwrap();
    assert_eq!(
        (dl3.status.as_str(), dl3.last_error.as_deref()),
        ("pending", Some("refused"))
    );
    assert!(s.last_delivery("ch1", "ru1").await.unwrap().is_some());
    // Leases: one holder at a time, renewable by it.
    assert!(s.try_lease("job", "c1", 60_000).await.unwrap());
    assert!(!s.try_lease("job", "c2", 60_000).await.unwrap());
    assert!(s.try_lease("job", "c1", 60_000).await.unwrap());
    assert!(s.try_lease("expiring", "c1", -1).await.unwrap());
    assert!(
        s.try_lease("expiring", "c2", 60_000).await.unwrap(),
        "taken over once lapsed"
    );
    // Removing the channel takes its deliveries; the rule its states.
    assert!(s.delete_alert_rule("ru1").await.unwrap());
    assert!(s.delete_channel("ch1").await.unwrap());
    assert!(s.deliveries("ch1", 10).await.unwrap().is_empty());

    // Drains: lines only for sources a drain takes; cursor per drain.
    let line = |source: &'static str, bucket: u32| DrainLine {
        source,
        at: now,
        bucket,
        line: serde_json::json!({"message": source}),
    };
    assert_eq!(
        s.append_drain_lines(&p.id, &[line("function", 0)])
            .await
            .unwrap(),
        0,
        "no drain yet"
    );
    let drain = DrainRow {
        id: "dr1".into(),
        project_id: p.id.clone(),
        url: "https://logs.example.com/".into(),
        sources: vec!["function".into(), "request".into()],
        sample_ppm: 500_000,
        secret_enc: vec![9],
        cursor: 0,
        delivered: 0,
        failures: 0,
        next_at: 0,
        last_status: None,
        last_error: None,
        last_success_at: None,
        created_at: now,
    };
    s.insert_drain(&drain).await.unwrap();
    assert_eq!(s.request_log_rate(&p.id).await.unwrap(), Some(500_000));
    let n = s
        .append_drain_lines(
            &p.id,
            &[
                line("function", 0),
                line("build", 0),
                line("request", 10),
                line("request", 900_000),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        n, 2,
        "the build line and the request out of sample are not kept"
    );
    let d = s.claim_drains(10, 30_000).await.unwrap();
    assert_eq!(d.len(), 1);
    let batch = s.drain_batch(&d[0], 100).await.unwrap();
    assert_eq!(batch.len(), 2);
    s.drain_attempt("dr1", Some(500), Some("answered 500"), now - 1)
        .await
        .unwrap();
    let failing = s.drain("dr1").await.unwrap().unwrap();
    assert_eq!((failing.failures, failing.last_status), (1, Some(500)));
    s.advance_drain("dr1", batch[1].id, 2).await.unwrap();
    let ok = s.drain("dr1").await.unwrap().unwrap();
    assert_eq!((ok.failures, ok.delivered, ok.cursor), (0, 2, batch[1].id));
    assert!(ok.last_success_at.is_some());
    assert!(
        s.claim_drains(10, 30_000).await.unwrap().is_empty(),
        "nothing after the cursor"
    );
    assert!(
        s.expire_drain_lines().await.unwrap() >= 2,
        "delivered lines go"
    );
    assert!(s.delete_drain("dr1").await.unwrap());
    assert_eq!(s.request_log_rate(&p.id).await.unwrap(), None);
}

/// What several coordinators share: the first material stored wins, one
/// admin token under its fixed id, the registry, named leases.
async fn coordinators_suite(s: &Store) {
    assert_eq!(s.cluster_material("cluster-ca").await.unwrap(), None);
    assert!(s
        .insert_cluster_material("cluster-ca", b"first")
        .await
        .unwrap());
    assert!(!s
        .insert_cluster_material("cluster-ca", b"second")
        .await
        .unwrap());
    assert_eq!(
        s.cluster_material("cluster-ca").await.unwrap().as_deref(),
        Some(&b"first"[..])
    );

    assert!(s
        .create_api_token_once("admin", "admin", "hash-a")
        .await
        .unwrap());
    assert!(!s
        .create_api_token_once("admin", "admin", "hash-b")
        .await
        .unwrap());

    s.register_coordinator("c-a", "10.0.0.1:8701", "http://a", "all")
        .await
        .unwrap();
    s.register_coordinator("c-b", "", "http://b", "builder")
        .await
        .unwrap();
    // A restart updates the row in place.
    s.register_coordinator("c-a", "10.0.0.9:8701", "http://a2", "api")
        .await
        .unwrap();
    let list = s.coordinators().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        (
            list[0].id.as_str(),
            list[0].quic_addr.as_str(),
            list[0].role.as_str()
        ),
        ("c-a", "10.0.0.9:8701", "api")
    );
    assert!(s.coordinator_seen("c-b").await.unwrap());
    assert!(!s.coordinator_seen("nobody").await.unwrap());
    assert_eq!(s.forget_coordinators(0).await.unwrap(), 0);
    let later = coordinator::store::now_ms() + 1;
    assert_eq!(s.forget_coordinators(later).await.unwrap(), 2);
    assert!(s.coordinators().await.unwrap().is_empty());
    assert!(
        !s.coordinator_seen("c-a").await.unwrap(),
        "forgotten: registers again"
    );

    // A lease is its holder's until it lapses.
    assert!(s.try_lease("retention.pass", "c-a", 60_000).await.unwrap());
    assert!(
        s.try_lease("retention.pass", "c-a", 60_000).await.unwrap(),
        "kept"
    );
    assert!(!s.try_lease("retention.pass", "c-b", 60_000).await.unwrap());
    assert!(s.try_lease("analytics.upkeep", "c-b", 0).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(
        s.try_lease("analytics.upkeep", "c-a", 60_000)
            .await
            .unwrap(),
        "a lapsed lease passes on"
    );
}
