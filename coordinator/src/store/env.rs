//! A project's environment variables (secret values sealed by the caller)
//! and its functions' outbound allow-list. Every change bumps the config
//! version: edges carry both.

use sqlx::Row;

use super::{now_ms, EdgeSync, EnvVarRow, Store, StoreError};

impl Store {
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
        let version = self
            .sync_edges(&mut tx, &[EdgeSync::Runtime(project_id.to_string())])
            .await?;
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
        self.sync_edges(&mut tx, &[EdgeSync::Runtime(project_id.to_string())])
            .await?;
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
        let version = self
            .sync_edges(&mut tx, &[EdgeSync::Runtime(project_id.to_string())])
            .await?;
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
}
