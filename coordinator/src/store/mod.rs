//! Coordinator metadata on sqlx: SQLite by default, Postgres for scale-out.
//!
//! One code path for both through sqlx's `Any` driver: queries use only
//! `$N` placeholders (in ascending order) and the types both backends share
//! (BIGINT, TEXT, BLOB/BYTEA). Each backend has its own migration folder.

mod accounts;
mod builds;
mod models;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

pub use accounts::AcceptOutcome;
pub use builds::{ReadyBuild, MAX_BUILD_ATTEMPTS};
pub use models::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("a team needs at least one owner")]
    LastOwner,
    #[error("join token rejected: {0}")]
    JoinToken(JoinTokenError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    #[error("unknown token")]
    Invalid,
    #[error("token was already used")]
    Used,
    #[error("token has expired")]
    Expired,
    #[error("token was created for another region")]
    RegionMismatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // One writer at a time is SQLite's rule; WAL lets readers go on
            // meanwhile and the busy timeout queues writers instead of failing.
            opts = opts.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(url).await?;
        let store = Store { pool, backend };
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&store.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&store.pool)
                    .await?
            }
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await
    }

    // ---- API tokens -------------------------------------------------------

    pub async fn count_api_tokens(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn create_api_token(
        &self,
        id: &str,
        name: &str,
        hash: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- projects ---------------------------------------------------------

    pub async fn create_project(
        &self,
        id: &str,
        name: &str,
        team_id: &str,
    ) -> Result<Project, StoreError> {
        let now = now_ms();
        sqlx::query("INSERT INTO projects (id, name, created_at, team_id) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(name)
            .bind(now)
            .bind(team_id)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("project {name:?}"))
                } else {
                    e.into()
                }
            })?;
        Ok(Project {
            id: id.into(),
            name: name.into(),
            created_at: now,
            production_deployment: None,
            team_id: team_id.into(),
        })
    }

    /// A project by the name or id a user typed. Names and ids never
    /// collide (creation refuses a name equal to an existing id), and an
    /// exact id wins if an old database has such a pair.
    pub async fn project(&self, name_or_id: &str) -> Result<Option<Project>, StoreError> {
        if let Some(p) = self.project_by_id(name_or_id).await? {
            return Ok(Some(p));
        }
        let row = sqlx::query(
            "SELECT id, name, created_at, production_deployment, team_id FROM projects WHERE name = $1",
        )
        .bind(name_or_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Project::from_row(&r)).transpose()
    }

    /// A project by id only: for ids read from other rows, where a name
    /// must never be taken for an id.
    pub async fn project_by_id(&self, id: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, created_at, production_deployment, team_id FROM projects WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Project::from_row(&r)).transpose()
    }

    /// Projects of the given teams by name, `limit` after the name `after`.
    pub async fn list_projects(
        &self,
        teams: &[String],
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Project>, StoreError> {
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        let params: Vec<String> = (0..teams.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT id, name, created_at, production_deployment, team_id FROM projects \
             WHERE name > $1 AND team_id IN ({}) ORDER BY name LIMIT $2",
            params.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(after.unwrap_or(""))
            .bind(limit);
        for t in teams {
            q = q.bind(t);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(Project::from_row).collect()
    }

    // ---- bundles ----------------------------------------------------------

    /// Stores a manifest once; storing the same bundle again is a no-op.
    pub async fn put_bundle(&self, b: &BundleRow) -> Result<(), StoreError> {
        let res = sqlx::query(
            "INSERT INTO bundles (id, manifest, file_count, total_size, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&b.id)
        .bind(&b.manifest)
        .bind(b.file_count)
        .bind(b.total_size)
        .bind(now_ms())
        .execute(&self.pool)
        .await;
        match res {
            Err(e) if is_unique_violation(&e) => Ok(()),
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub async fn bundle_manifest(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT manifest FROM bundles WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get("manifest")))
    }

    // ---- deployments ------------------------------------------------------

    pub async fn create_deployment(&self, d: &Deployment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deployments (id, project_id, bundle_id, status, target, created_at, \
             branch, commit_sha, commit_message, commit_author) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&d.id)
        .bind(&d.project_id)
        .bind(&d.bundle_id)
        .bind(d.status.as_str())
        .bind(d.target.as_str())
        .bind(d.created_at)
        .bind(d.git.as_ref().map(|g| g.branch.clone()))
        .bind(d.git.as_ref().and_then(|g| g.commit_sha.clone()))
        .bind(d.git.as_ref().and_then(|g| g.commit_message.clone()))
        .bind(d.git.as_ref().and_then(|g| g.commit_author.clone()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn deployment(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Deployment::from_row(&r)).transpose()
    }

    /// Newest first; `before` is the (created_at, id) of the last item seen.
    pub async fn list_deployments(
        &self,
        project_id: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Deployment>, StoreError> {
        let (ts, id) = before.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE project_id = $1 \
             AND (created_at < $2 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(project_id)
        .bind(ts)
        .bind(ts)
        .bind(if before.is_some() { id } else { "\u{10ffff}" })
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Deployment::from_row).collect()
    }

    pub async fn mark_ready(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE deployments SET status = $1, ready_at = $2 WHERE id = $3")
            .bind(DeploymentStatus::Ready.as_str())
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Points the project's production alias at `deployment_id` and bumps
    /// the config version, in one transaction.
    pub async fn promote(&self, project_id: &str, deployment_id: &str) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        sqlx::query("UPDATE projects SET production_deployment = $1 WHERE id = $2")
            .bind(deployment_id)
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE deployments SET promoted_at = $1 WHERE id = $2")
            .bind(now)
            .bind(deployment_id)
            .execute(&mut *tx)
            .await?;
        let v = bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// The production deployment that came before `current`: the newest
    /// deployment created before it that has ever been production.
    pub async fn previous_production(
        &self,
        project_id: &str,
        current: &Deployment,
    ) -> Result<Option<Deployment>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {DEPLOYMENT_COLS} FROM deployments WHERE project_id = $1 AND id <> $2 \
             AND promoted_at IS NOT NULL AND status = $3 AND created_at <= $4 \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        )))
        .bind(project_id)
        .bind(&current.id)
        .bind(DeploymentStatus::Ready.as_str())
        .bind(current.created_at)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Deployment::from_row(&r)).transpose()
    }

    /// Everything edges serve: every ready deployment, with its project and
    /// whether it is the project's production deployment.
    pub async fn live_deployments(&self) -> Result<Vec<LiveDeployment>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.id AS id, d.bundle_id AS bundle_id, d.target AS target, p.name AS project, \
             p.production_deployment AS production FROM deployments d \
             JOIN projects p ON p.id = d.project_id WHERE d.status = $1",
        )
        .bind(DeploymentStatus::Ready.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let production: Option<String> = r.try_get("production")?;
                let target: String = r.try_get("target")?;
                Ok(LiveDeployment {
                    target: Target::from_str(&target).map_err(|e| sqlx::Error::Decode(e.into()))?,
                    is_production: production.as_deref() == Some(id.as_str()),
                    id,
                    bundle_id: r.try_get("bundle_id")?,
                    project: r.try_get("project")?,
                })
            })
            .collect()
    }

    // ---- config version ---------------------------------------------------

    pub async fn config_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    pub async fn bump_config_version(&self) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let v = bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(v)
    }

    // ---- join tokens and nodes -------------------------------------------

    pub async fn create_join_token(
        &self,
        id: &str,
        hash: &str,
        region: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO join_tokens (id, token_hash, region, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(hash)
        .bind(region)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a one-time join token and records the node it enrolled, in
    /// one transaction: two nodes racing with one token cannot both win.
    pub async fn enroll_node(&self, token_hash: &str, node: &Node) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Write first: on SQLite a transaction that reads and then writes
        // fails outright (SQLITE_BUSY) when another writer got in between,
        // while one that starts by writing waits for the lock.
        let now = now_ms();
        let spent = sqlx::query(
            "UPDATE join_tokens SET used_at = $1, used_by = $2 \
             WHERE token_hash = $3 AND used_at IS NULL AND expires_at >= $4 AND region = $5",
        )
        .bind(now)
        .bind(&node.id)
        .bind(token_hash)
        .bind(now)
        .bind(&node.region)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            let row = sqlx::query(
                "SELECT region, expires_at, used_at FROM join_tokens WHERE token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::JoinToken(JoinTokenError::Invalid));
            };
            let used_at: Option<i64> = row.try_get("used_at")?;
            let expires_at: i64 = row.try_get("expires_at")?;
            let token_region: String = row.try_get("region")?;
            return Err(StoreError::JoinToken(if used_at.is_some() {
                JoinTokenError::Used
            } else if expires_at < now {
                JoinTokenError::Expired
            } else if token_region != node.region {
                JoinTokenError::RegionMismatch
            } else {
                JoinTokenError::Used
            }));
        }
        let token_region = &node.region;
        sqlx::query(
            "INSERT INTO nodes (id, name, region, cert_fingerprint, software_version, config_version, \
             bundles_present, bundles_pending, created_at) VALUES ($1, $2, $3, $4, $5, 0, 0, 0, $6)",
        )
        .bind(&node.id)
        .bind(&node.name)
        .bind(token_region)
        .bind(&node.cert_fingerprint)
        .bind(&node.software_version)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn node_by_fingerprint(&self, fp: &str) -> Result<Option<Node>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NODE_COLS} FROM nodes WHERE cert_fingerprint = $1"
        )))
        .bind(fp)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Node::from_row(&r)).transpose()
    }

    pub async fn record_node_contact(&self, id: &str, c: &NodeContact) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE nodes SET software_version = $1, config_version = $2, bundles_present = $3, \
             bundles_pending = $4, http_addr = $5, https_addr = $6, mesh_addr = $7, last_seen = $8 \
             WHERE id = $9",
        )
        .bind(&c.software_version)
        .bind(c.config_version)
        .bind(c.bundles_present)
        .bind(c.bundles_pending)
        .bind(&c.http_addr)
        .bind(&c.https_addr)
        .bind(&c.mesh_addr)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NODE_COLS} FROM nodes ORDER BY region, name, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Node::from_row).collect()
    }

    // ---- environment variables and function settings -------------------

    pub async fn env_vars(&self, project_id: &str) -> Result<Vec<EnvVarRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT env_kind, name, secret, value_plain, value_enc, updated_at FROM env_vars \
             WHERE project_id = $1 ORDER BY name, env_kind",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let secret: i64 = r.try_get("secret")?;
                Ok(EnvVarRow {
                    env_kind: r.try_get("env_kind")?,
                    name: r.try_get("name")?,
                    secret: secret != 0,
                    value_plain: r.try_get("value_plain")?,
                    value_enc: r.try_get("value_enc")?,
                    updated_at: r.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Sets one variable for one environment and bumps the config version.
    pub async fn set_env_var(&self, project_id: &str, v: &EnvVarRow) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM env_vars WHERE project_id = $1 AND env_kind = $2 AND name = $3")
            .bind(project_id)
            .bind(&v.env_kind)
            .bind(&v.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO env_vars (project_id, env_kind, name, secret, value_plain, value_enc, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(project_id)
        .bind(&v.env_kind)
        .bind(&v.name)
        .bind(v.secret as i64)
        .bind(&v.value_plain)
        .bind(&v.value_enc)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let version = bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Removes a variable (from one environment, or all); false if absent.
    pub async fn delete_env_var(
        &self,
        project_id: &str,
        env_kind: Option<&str>,
        name: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let res =
            match env_kind {
                Some(k) => sqlx::query(
                    "DELETE FROM env_vars WHERE project_id = $1 AND env_kind = $2 AND name = $3",
                )
                .bind(project_id)
                .bind(k)
                .bind(name)
                .execute(&mut *tx)
                .await?,
                None => {
                    sqlx::query("DELETE FROM env_vars WHERE project_id = $1 AND name = $2")
                        .bind(project_id)
                        .bind(name)
                        .execute(&mut *tx)
                        .await?
                }
            };
        if res.rows_affected() == 0 {
            return Ok(false);
        }
        bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn outbound(&self, project_id: &str) -> Result<Vec<String>, StoreError> {
        let row = sqlx::query("SELECT outbound FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        let text: String = match row {
            Some(r) => r.try_get("outbound")?,
            None => return Ok(vec![]),
        };
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    pub async fn set_outbound(
        &self,
        project_id: &str,
        hosts: &[String],
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE projects SET outbound = $1 WHERE id = $2")
            .bind(serde_json::to_string(hosts).expect("strings serialise"))
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        let version = bump_version(&mut tx).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Every project's id and name (for building the edge config).
    pub async fn project_ids(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, name FROM projects ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }

    // ---- function logs ----------------------------------------------------

    pub async fn insert_function_logs(
        &self,
        node_id: &str,
        rows: &[FunctionLogRow],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO function_logs (project_id, deployment_id, node_id, request_id, ts, stream, line) \
                 SELECT p.id, $1, $2, $3, $4, $5, $6 FROM projects p WHERE p.name = $7",
            )
            .bind(&r.deployment)
            .bind(node_id)
            .bind(&r.request_id)
            .bind(r.ts)
            .bind(&r.stream)
            .bind(&r.line)
            .bind(&r.project)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Oldest first, after `q.after_id`.
    pub async fn function_logs(
        &self,
        project: &Project,
        q: &LogQuery,
    ) -> Result<Vec<FunctionLogRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, deployment_id, node_id, request_id, ts, stream, line FROM function_logs \
             WHERE project_id = $1 AND id > $2 AND ts >= $3 AND ts <= $4 \
             AND ($5 = '' OR deployment_id = $6) AND ($7 = '' OR stream = $8) \
             ORDER BY id LIMIT $9",
        )
        .bind(&project.id)
        .bind(q.after_id)
        .bind(q.since_ms.unwrap_or(0))
        .bind(q.until_ms.unwrap_or(i64::MAX))
        .bind(q.deployment.clone().unwrap_or_default())
        .bind(q.deployment.clone().unwrap_or_default())
        .bind(q.stream.clone().unwrap_or_default())
        .bind(q.stream.clone().unwrap_or_default())
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FunctionLogRow {
                    id: r.try_get("id")?,
                    project: project.name.clone(),
                    deployment: r.try_get("deployment_id")?,
                    node: r.try_get("node_id")?,
                    request_id: r.try_get("request_id")?,
                    ts: r.try_get("ts")?,
                    stream: r.try_get("stream")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }

    // ---- host certificates ------------------------------------------------

    pub async fn host_cert(&self, host: &str) -> Result<Option<HostCert>, StoreError> {
        let row = sqlx::query(
            "SELECT host, chain_pem, key_pem, not_after FROM host_certs WHERE host = $1",
        )
        .bind(host)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(HostCert {
                host: r.try_get("host")?,
                chain_pem: r.try_get("chain_pem")?,
                key_pem: r.try_get("key_pem")?,
                not_after: r.try_get("not_after")?,
            })
        })
        .transpose()
    }

    pub async fn put_host_cert(&self, c: &HostCert) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM host_certs WHERE host = $1")
            .bind(&c.host)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO host_certs (host, chain_pem, key_pem, not_after) VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.host)
        .bind(&c.chain_pem)
        .bind(&c.key_pem)
        .bind(c.not_after)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

async fn bump_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<i64, StoreError> {
    sqlx::query("UPDATE config_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT version FROM config_version WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("version")?)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

const DEPLOYMENT_COLS: &str = "id, project_id, bundle_id, status, target, created_at, ready_at, \
     promoted_at, branch, commit_sha, commit_message, commit_author";
const NODE_COLS: &str = "id, name, region, cert_fingerprint, software_version, config_version, \
     bundles_present, bundles_pending, http_addr, https_addr, mesh_addr, created_at, last_seen";

trait FromRow: Sized {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError>;
}

impl FromRow for Project {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Project {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
            production_deployment: r.try_get("production_deployment")?,
            team_id: r
                .try_get::<Option<String>, _>("team_id")?
                .unwrap_or_default(),
        })
    }
}

impl FromRow for Deployment {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let status: String = r.try_get("status")?;
        let target: String = r.try_get("target")?;
        Ok(Deployment {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            bundle_id: r.try_get("bundle_id")?,
            status: DeploymentStatus::from_str(&status)
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            target: Target::from_str(&target).map_err(|e| sqlx::Error::Decode(e.into()))?,
            created_at: r.try_get("created_at")?,
            ready_at: r.try_get("ready_at")?,
            promoted_at: r.try_get("promoted_at")?,
            git: GitMeta::from_row_opt(r)?,
        })
    }
}

impl FromRow for Node {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(Node {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            region: r.try_get("region")?,
            cert_fingerprint: r.try_get("cert_fingerprint")?,
            software_version: r.try_get("software_version")?,
            config_version: r.try_get("config_version")?,
            bundles_present: r.try_get("bundles_present")?,
            bundles_pending: r.try_get("bundles_pending")?,
            http_addr: r.try_get("http_addr")?,
            https_addr: r.try_get("https_addr")?,
            mesh_addr: r.try_get("mesh_addr")?,
            created_at: r.try_get("created_at")?,
            last_seen: r.try_get("last_seen")?,
        })
    }
}
