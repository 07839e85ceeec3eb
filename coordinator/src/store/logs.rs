//! Function log lines shipped by edges.

use sqlx::Row;

use super::{FunctionLogRow, LogQuery, Project, Store, StoreError};

impl Store {
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
             AND ($10 = '' OR request_id = $11) \
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
        .bind(q.request_id.clone().unwrap_or_default())
        .bind(q.request_id.clone().unwrap_or_default())
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
}
