//! Bundles (manifests stored once by id) and deployments: their status,
//! promotion and what edges serve.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{
    is_unique_violation, now_ms, BundleRow, Deployment, DeploymentStatus, EdgeSync, FromRow,
    GitMeta, LiveDeployment, Store, StoreError, Target,
};

pub(super) const DEPLOYMENT_COLS: &str =
    "id, project_id, bundle_id, status, target, created_at, ready_at, \
     promoted_at, branch, commit_sha, commit_message, commit_author";

impl Store {
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
        self.by_id("deployments", DEPLOYMENT_COLS, id).await
    }

    /// Newest first; `before` is the (created_at, id) of the last item seen.
    pub async fn list_deployments(
        &self,
        project_id: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Deployment>, StoreError> {
        self.newest_first("deployments", DEPLOYMENT_COLS, project_id, before, limit)
            .await
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

    /// Points the project's production alias at `deployment_id` and tells
    /// the edges, in one transaction. A deployment deleted (or not ready)
    /// meanwhile is not promoted: `StoreError::Gone`.
    pub async fn promote(&self, project_id: &str, deployment_id: &str) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let v = self.promote_in(&mut tx, project_id, deployment_id).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn promote_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        project_id: &str,
        deployment_id: &str,
    ) -> Result<i64, StoreError> {
        let n = sqlx::query(
            "UPDATE projects SET production_deployment = $1 WHERE id = $2 AND EXISTS \
             (SELECT 1 FROM deployments WHERE id = $3 AND project_id = $4 AND status = $5)",
        )
        .bind(deployment_id)
        .bind(project_id)
        .bind(deployment_id)
        .bind(project_id)
        .bind(DeploymentStatus::Ready.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Gone(format!("deployment {deployment_id}")));
        }
        sqlx::query("UPDATE deployments SET promoted_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(deployment_id)
            .execute(&mut **tx)
            .await?;
        self.sync_edges(tx, &[EdgeSync::Production(project_id.to_string())])
            .await
    }

    /// An uploaded deployment whose blobs are present becomes ready (and,
    /// if `promote`, production), with the edges told, in one transaction.
    pub async fn finalize_upload(
        &self,
        project_id: &str,
        deployment_id: &str,
        promote: bool,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE deployments SET status = $1, ready_at = $2 WHERE id = $3 AND status = $4",
        )
        .bind(DeploymentStatus::Ready.as_str())
        .bind(now_ms())
        .bind(deployment_id)
        .bind(DeploymentStatus::Uploading.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Gone(format!("deployment {deployment_id}")));
        }
        let mut v = self
            .sync_edges(&mut tx, &[EdgeSync::Deployment(deployment_id.to_string())])
            .await?;
        if promote {
            v = self.promote_in(&mut tx, project_id, deployment_id).await?;
        }
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
