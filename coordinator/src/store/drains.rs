//! Log drains and the lines waiting for them.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_ms, Store, StoreError};

#[derive(Debug, Clone)]
pub struct DrainRow {
    pub id: String,
    pub project_id: String,
    pub url: String,
    pub sources: Vec<String>,
    pub sample_ppm: i64,
    pub secret_enc: Vec<u8>,
    pub cursor: i64,
    pub delivered: i64,
    pub failures: i64,
    pub next_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_success_at: Option<i64>,
    pub created_at: i64,
}

/// A line for a project's drains.
#[derive(Debug, Clone)]
pub struct DrainLine {
    /// `function`, `request` or `build`.
    pub source: &'static str,
    pub at: i64,
    /// A request's sampling bucket; 0 otherwise.
    pub bucket: u32,
    /// The line's JSON (without its `id`, which is the row's).
    pub line: serde_json::Value,
}

/// A line as read for delivery.
#[derive(Debug, Clone)]
pub struct QueuedLine {
    pub id: i64,
    pub line: String,
}

const COLS: &str = "id, project_id, url, sources, sample_ppm, secret_enc, cursor, delivered, \
                    failures, next_at, last_status, last_error, last_success_at, created_at";

/// Drains a project may have.
pub const MAX_DRAINS_PER_PROJECT: i64 = 10;
/// Lines are kept this long for drains whose endpoint is down.
pub const LINES_KEPT_MS: i64 = 24 * 3600 * 1000;

fn drain(r: &AnyRow) -> Result<DrainRow, StoreError> {
    let sources: String = r.try_get("sources")?;
    Ok(DrainRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        url: r.try_get("url")?,
        sources: serde_json::from_str(&sources).unwrap_or_default(),
        sample_ppm: r.try_get("sample_ppm")?,
        secret_enc: r.try_get("secret_enc")?,
        cursor: r.try_get("cursor")?,
        delivered: r.try_get("delivered")?,
        failures: r.try_get("failures")?,
        next_at: r.try_get("next_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        last_success_at: r.try_get("last_success_at")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// Adds a drain; it starts after the newest line queued so far (it
    /// gets what happens from now on).
    pub async fn insert_drain(&self, d: &DrainRow) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM log_drains WHERE project_id = $1")
            .bind(&d.project_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if n >= MAX_DRAINS_PER_PROJECT {
            return Err(StoreError::Conflict(format!(
                "the project's {MAX_DRAINS_PER_PROJECT}th drain"
            )));
        }
        let head: i64 =
            sqlx::query("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) AS head FROM drain_lines")
                .fetch_one(&mut *tx)
                .await?
                .try_get("head")?;
        sqlx::query(
            "INSERT INTO log_drains (id, project_id, url, sources, sample_ppm, secret_enc, cursor, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&d.id)
        .bind(&d.project_id)
        .bind(&d.url)
        .bind(serde_json::to_string(&d.sources).unwrap_or_else(|_| "[]".into()))
        .bind(d.sample_ppm)
        .bind(&d.secret_enc)
        .bind(head)
        .bind(d.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn drain(&self, id: &str) -> Result<Option<DrainRow>, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM log_drains WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(drain).transpose()
    }

    pub async fn project_drains(&self, project_id: &str) -> Result<Vec<DrainRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM log_drains WHERE project_id = $1 ORDER BY created_at, id"
        )))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(drain).collect()
    }

    pub async fn delete_drain(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM log_drains WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The request sample edges should send for a project: the largest
    /// rate of its drains that take request logs (None: no such drain).
    pub async fn request_log_rate(&self, project_id: &str) -> Result<Option<u32>, StoreError> {
        let drains = self.project_drains(project_id).await?;
        Ok(drains
            .iter()
            .filter(|d| d.sources.iter().any(|s| s == "request"))
            .map(|d| d.sample_ppm.clamp(1, 1_000_000) as u32)
            .max())
    }

    /// Queues lines for the project's drains: only those of sources some
    /// drain takes (and, for requests, in some drain's sample).
    pub async fn append_drain_lines(
        &self,
        project_id: &str,
        lines: &[DrainLine],
    ) -> Result<usize, StoreError> {
        if lines.is_empty() {
            return Ok(0);
        }
        let rows = sqlx::query("SELECT sources, sample_ppm FROM log_drains WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut wanted: Vec<(Vec<String>, i64)> = Vec::new();
        for r in rows {
            let s: String = r.try_get("sources")?;
            wanted.push((
                serde_json::from_str(&s).unwrap_or_default(),
                r.try_get("sample_ppm")?,
            ));
        }
        let keep = |l: &DrainLine| {
            wanted.iter().any(|(sources, ppm)| {
                sources.iter().any(|s| s == l.source)
                    && (l.source != "request" || i64::from(l.bucket) < *ppm)
            })
        };
        let mut tx = self.pool.begin().await?;
        let mut n = 0;
        for l in lines.iter().filter(|l| keep(l)) {
            sqlx::query(
                "INSERT INTO drain_lines (project_id, source, at, bucket, line) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(project_id)
            .bind(l.source)
            .bind(l.at)
            .bind(i64::from(l.bucket))
            .bind(l.line.to_string())
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Takes up to `limit` drains that are due for `lease_ms`.
    pub async fn claim_drains(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<DrainRow>, StoreError> {
        let now = now_ms();
        let due = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM log_drains d WHERE next_at <= $1 AND lease_until < $1 \
             AND EXISTS (SELECT 1 FROM drain_lines l WHERE l.project_id = d.project_id AND l.id > d.cursor) \
             ORDER BY next_at LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &due {
            let d = drain(r)?;
            let got = sqlx::query(
                "UPDATE log_drains SET lease_until = $1 WHERE id = $2 AND lease_until < $3",
            )
            .bind(now + lease_ms)
            .bind(&d.id)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if got == 1 {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The next lines for a drain after its cursor, of its sources and
    /// sample.
    pub async fn drain_batch(
        &self,
        d: &DrainRow,
        limit: i64,
    ) -> Result<Vec<QueuedLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, bucket, line FROM drain_lines WHERE project_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(&d.project_id)
        .bind(d.cursor)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        let mut last = d.cursor;
        for r in rows {
            let id: i64 = r.try_get("id")?;
            last = id;
            let source: String = r.try_get("source")?;
            let bucket: i64 = r.try_get("bucket")?;
            if !d.sources.contains(&source) || (source == "request" && bucket >= d.sample_ppm) {
                continue;
            }
            out.push(QueuedLine {
                id,
                line: r.try_get("line")?,
            });
        }
        // Lines of other sources only: nothing to send, move past them.
        if out.is_empty() && last > d.cursor {
            self.advance_drain(&d.id, last, 0).await?;
        }
        Ok(out)
    }

    /// The endpoint took everything up to `cursor`.
    pub async fn advance_drain(&self, id: &str, cursor: i64, sent: i64) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE log_drains SET cursor = $1, delivered = delivered + $2, failures = 0, \
             next_at = 0, lease_until = 0, last_error = NULL, \
             last_success_at = CASE WHEN $2 > 0 THEN $3 ELSE last_success_at END, \
             last_status = CASE WHEN $2 > 0 THEN 200 ELSE last_status END \
             WHERE id = $4 AND cursor < $1",
        )
        .bind(cursor)
        .bind(sent)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records a success's status, or a failure to retry at `retry_at`.
    pub async fn drain_attempt(
        &self,
        id: &str,
        status: Option<i64>,
        error: Option<&str>,
        retry_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE log_drains SET failures = failures + 1, next_at = $1, lease_until = 0, \
             last_status = $2, last_error = $3 WHERE id = $4",
        )
        .bind(retry_at)
        .bind(status)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Drops lines older than [`LINES_KEPT_MS`] and lines every drain of
    /// their project has delivered.
    pub async fn expire_drain_lines(&self) -> Result<u64, StoreError> {
        let old = sqlx::query("DELETE FROM drain_lines WHERE at < $1")
            .bind(now_ms() - LINES_KEPT_MS)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let done = sqlx::query(
            "DELETE FROM drain_lines WHERE id <= COALESCE((SELECT MIN(cursor) FROM log_drains d \
             WHERE d.project_id = drain_lines.project_id), id)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(old + done)
    }
}
