//! Nothing grows for ever: deleting deployments and projects (with every
//! row that belongs to them and the edge entries they made), what the
//! retention rules select, log expiry, what the blob store may sweep, and
//! what a team holds against its quotas.

use std::collections::HashSet;

use protocol::{BlobHash, Manifest};
use sqlx::Row;

use super::{now_ms, BuildStatus, DeploymentStatus, EdgeSync, Store, StoreError, Target};
use crate::config::Quotas;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Why a deployment cannot be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undeletable {
    /// It is the project's production deployment.
    Production,
    /// Its build has not finished.
    Building,
}

/// A project's retention rules, with the instance defaults filled in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Retention {
    /// Preview deployments older than this are deleted (0: never).
    pub preview_days: u32,
    /// Production deployments beyond the newest this many are deleted (0: keep all).
    pub production_keep: u32,
}

/// What a team holds, counted against its quotas.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct Usage {
    pub projects: u64,
    pub deployments: u64,
    pub stored_bytes: u64,
}

impl Store {
    /// Starts a transaction with a write, so that on SQLite it holds the
    /// write lock from the start (a transaction that reads first fails
    /// outright when another writer got in between).
    pub(super) async fn begin_write(&self) -> Result<Tx<'static>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE config_version SET version = version WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Deletes a deployment (and the build it came from, their logs, and
    /// the edge entries it made); a branch host that pointed at it moves
    /// to the branch's newest other ready deployment, or goes. `Ok(Err)`
    /// says why it may not be deleted; nothing changed then.
    pub async fn delete_deployment(
        &self,
        project_id: &str,
        id: &str,
    ) -> Result<Result<(), Undeletable>, StoreError> {
        let mut tx = self.begin_write().await?;
        let production: Option<String> =
            sqlx::query("SELECT production_deployment FROM projects WHERE id = $1")
                .bind(project_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("production_deployment"))
                .transpose()?
                .flatten();
        if production.as_deref() == Some(id) {
            return Ok(Err(Undeletable::Production));
        }
        let build_status: Option<String> = sqlx::query("SELECT status FROM builds WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("status"))
            .transpose()?;
        if build_status.is_some_and(|s| {
            s == BuildStatus::Queued.as_str() || s == BuildStatus::Building.as_str()
        }) {
            return Ok(Err(Undeletable::Building));
        }
        let mut syncs = vec![EdgeSync::DeploymentGone(id.to_string())];
        let branches: Vec<String> = sqlx::query(
            "SELECT branch FROM branch_aliases WHERE project_id = $1 AND deployment_id = $2",
        )
        .bind(project_id)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("branch"))
        .collect::<Result<_, _>>()?;
        for branch in branches {
            let newest: Option<String> = sqlx::query(
                "SELECT id FROM deployments WHERE project_id = $1 AND branch = $2 AND id <> $3 \
                 AND status = $4 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(project_id)
            .bind(&branch)
            .bind(id)
            .bind(DeploymentStatus::Ready.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("id"))
            .transpose()?;
            match newest {
                Some(other) => {
                    sqlx::query(
                        "UPDATE branch_aliases SET deployment_id = $1, updated_at = $2 \
                         WHERE project_id = $3 AND branch = $4",
                    )
                    .bind(&other)
                    .bind(now_ms())
                    .bind(project_id)
                    .bind(&branch)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM branch_aliases WHERE project_id = $1 AND branch = $2")
                        .bind(project_id)
                        .bind(&branch)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            syncs.push(EdgeSync::Branch(project_id.to_string(), branch));
        }
        for sql in [
            "DELETE FROM function_logs WHERE deployment_id = $1",
            "DELETE FROM build_logs WHERE build_id = $1",
            "DELETE FROM builds WHERE id = $1",
            "DELETE FROM deployments WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        self.sync_edges(&mut tx, &syncs).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Deletes a project with everything that belongs to it (deployments,
    /// builds, logs, variables, aliases, its git connection) and the edge
    /// entries it made; its name is free afterwards. Returns the number of
    /// deployments deleted.
    pub async fn delete_project(&self, project_id: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE projects SET production_deployment = NULL WHERE id = $1")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        let mut deployments = 0;
        for (sql, counts) in [
            ("DELETE FROM function_logs WHERE project_id = $1", false),
            ("DELETE FROM analytics_rollups WHERE project_id = $1", false),
            (
                "DELETE FROM build_logs WHERE build_id IN (SELECT id FROM builds WHERE project_id = $1)",
                false,
            ),
            ("DELETE FROM builds WHERE project_id = $1", false),
            ("DELETE FROM branch_aliases WHERE project_id = $1", false),
            ("DELETE FROM env_vars WHERE project_id = $1", false),
            (
                "DELETE FROM domain_certs WHERE name IN (SELECT name FROM domains WHERE project_id = $1)",
                false,
            ),
            ("DELETE FROM domains WHERE project_id = $1", false),
            ("DELETE FROM deployments WHERE project_id = $1", true),
        ] {
            let n = sqlx::query(sql)
                .bind(project_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if counts {
                deployments = n;
            }
        }
        self.sync_edges(&mut tx, &[EdgeSync::ProjectGone(project_id.to_string())])
            .await?;
        sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(project_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deployments)
    }

    /// The ids of a project's unfinished builds (to cancel before deleting it).
    pub async fn unfinished_builds(&self, project_id: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT id FROM builds WHERE project_id = $1 AND status IN ($2, $3)")
            .bind(project_id)
            .bind(BuildStatus::Queued.as_str())
            .bind(BuildStatus::Building.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("id")?))
            .collect()
    }

    pub async fn retention(
        &self,
        project_id: &str,
        defaults: Retention,
    ) -> Result<Retention, StoreError> {
        let row = sqlx::query(
            "SELECT retention_preview_days, retention_production_keep FROM projects WHERE id = $1",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(defaults) };
        let days: Option<i64> = r.try_get("retention_preview_days")?;
        let keep: Option<i64> = r.try_get("retention_production_keep")?;
        Ok(Retention {
            preview_days: days.map_or(defaults.preview_days, |d| d as u32),
            production_keep: keep.map_or(defaults.production_keep, |k| k as u32),
        })
    }

    /// A project's own rules; `None` fields go back to the defaults.
    pub async fn set_retention(
        &self,
        project_id: &str,
        preview_days: Option<u32>,
        production_keep: Option<u32>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE projects SET retention_preview_days = $1, retention_production_keep = $2 WHERE id = $3",
        )
        .bind(preview_days.map(i64::from))
        .bind(production_keep.map(i64::from))
        .bind(project_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deployments of a project the rules select for deletion, at most
    /// `limit`: previews older than the rule, production deployments
    /// beyond the newest ones kept. Never the current production one,
    /// nor one a branch host points at.
    pub async fn retention_candidates(
        &self,
        project_id: &str,
        rules: Retention,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        // Never the current production deployment, nor one a branch host
        // points at. (Placeholders are not reused: the Any driver binds
        // them in order.)
        let guard = |a: usize, b: usize| {
            format!(
                "AND id NOT IN (SELECT COALESCE(production_deployment, '') FROM projects WHERE id = ${a}) \
                 AND id NOT IN (SELECT deployment_id FROM branch_aliases WHERE project_id = ${b})"
            )
        };
        if rules.preview_days > 0 {
            let before = now_ms() - i64::from(rules.preview_days) * 86_400_000;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM deployments WHERE project_id = $1 AND target = $2 AND promoted_at IS NULL \
                 AND created_at < $3 {} ORDER BY created_at LIMIT $6",
                guard(4, 5)
            )))
            .bind(project_id)
            .bind(Target::Preview.as_str())
            .bind(before)
            .bind(project_id)
            .bind(project_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push(r.try_get("id")?);
            }
        }
        if rules.production_keep > 0 {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM deployments WHERE project_id = $1 AND promoted_at IS NOT NULL {} \
                 ORDER BY promoted_at DESC, id DESC LIMIT $4 OFFSET $5",
                guard(2, 3)
            )))
            .bind(project_id)
            .bind(project_id)
            .bind(project_id)
            .bind(limit)
            // The current one is excluded above, so keep one fewer others.
            .bind(i64::from(rules.production_keep.saturating_sub(1)))
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                out.push(r.try_get("id")?);
            }
        }
        out.truncate(limit as usize);
        Ok(out)
    }

    /// Failed and canceled builds finished before `before_ms`: (project, id).
    pub async fn old_failed_builds(
        &self,
        before_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        sqlx::query(
            "SELECT project_id, id FROM builds WHERE status IN ($1, $2) AND finished_at < $3 \
             ORDER BY finished_at LIMIT $4",
        )
        .bind(BuildStatus::Error.as_str())
        .bind(BuildStatus::Canceled.as_str())
        .bind(before_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("project_id")?, r.try_get("id")?)))
        .collect()
    }

    /// Every project id, `limit` after `after` (the retention pass pages
    /// through them).
    pub async fn project_ids_after(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT id FROM projects WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("id")?))
            .collect()
    }

    /// Deletes function log lines older than `function_before_ms` and the
    /// logs of builds finished before `build_before_ms`: (lines, lines).
    pub async fn expire_logs(
        &self,
        function_before_ms: i64,
        build_before_ms: i64,
    ) -> Result<(u64, u64), StoreError> {
        let f = sqlx::query("DELETE FROM function_logs WHERE ts < $1")
            .bind(function_before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let b = sqlx::query(
            "DELETE FROM build_logs WHERE build_id IN \
             (SELECT id FROM builds WHERE finished_at IS NOT NULL AND finished_at < $1)",
        )
        .bind(build_before_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((f, b))
    }

    /// Deletes bundles no deployment uses that were stored before
    /// `before_ms` (a bundle stored for a deployment being made is newer).
    pub async fn delete_orphan_bundles(&self, before_ms: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM bundles WHERE created_at < $1 AND id NOT IN (SELECT bundle_id FROM deployments)",
        )
        .bind(before_ms)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Every blob some stored bundle references (the mark of the blob
    /// store's mark and sweep), read a page of bundles at a time.
    pub async fn referenced_blobs(&self) -> Result<HashSet<BlobHash>, StoreError> {
        let mut out = HashSet::new();
        let mut after = String::new();
        loop {
            let rows =
                sqlx::query("SELECT id, manifest FROM bundles WHERE id > $1 ORDER BY id LIMIT 200")
                    .bind(&after)
                    .fetch_all(&self.pool)
                    .await?;
            if rows.is_empty() {
                return Ok(out);
            }
            for r in &rows {
                after = r.try_get("id")?;
                let bytes: Vec<u8> = r.try_get("manifest")?;
                let m = Manifest::from_canonical_bytes(&bytes, protocol::wire::MAX_FRAME_BYTES)
                    .map_err(|e| {
                        StoreError::Db(sqlx::Error::Decode(format!("bundle {after}: {e}").into()))
                    })?;
                out.extend(m.blobs());
            }
        }
    }

    /// What a team holds now.
    pub async fn usage(&self, team_id: &str) -> Result<Usage, StoreError> {
        let projects: i64 = sqlx::query("SELECT COUNT(*) AS n FROM projects WHERE team_id = $1")
            .bind(team_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        let row = sqlx::query(
            // Postgres sums BIGINTs as NUMERIC, which the Any driver cannot
            // decode: the cast keeps one type on both backends.
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(b.total_size), 0) AS BIGINT) AS bytes FROM deployments d \
             JOIN projects p ON p.id = d.project_id JOIN bundles b ON b.id = d.bundle_id \
             WHERE p.team_id = $1",
        )
        .bind(team_id)
        .fetch_one(&self.pool)
        .await?;
        let deployments: i64 = row.try_get("n")?;
        let bytes: i64 = row.try_get("bytes")?;
        Ok(Usage {
            projects: projects as u64,
            deployments: deployments as u64,
            stored_bytes: bytes as u64,
        })
    }

    /// The team's quotas: its own if the instance owner set them, else the defaults.
    pub async fn quotas(&self, team_id: &str, defaults: Quotas) -> Result<Quotas, StoreError> {
        let text: Option<String> = sqlx::query("SELECT quotas FROM teams WHERE id = $1")
            .bind(team_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("quotas"))
            .transpose()?
            .flatten();
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(defaults))
    }

    pub async fn set_quotas(
        &self,
        team_id: &str,
        quotas: Option<&Quotas>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE teams SET quotas = $1 WHERE id = $2")
            .bind(quotas.map(|q| serde_json::to_string(q).expect("plain numbers")))
            .bind(team_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
