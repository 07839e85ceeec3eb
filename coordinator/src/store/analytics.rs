//! Traffic analytics rollups: what edges served, merged into minute, hour
//! and day buckets as records arrive. [`AnalyticsStore`] is the one
//! interface analytics are stored and read through; the SQL store (SQLite
//! or Postgres) implements it here, and a columnar engine for large fleets
//! would implement the same calls, with the same rows coming out.

use std::collections::BTreeMap;

use analytics::query::{Filter, Row as ReportRow};
use analytics::{Aggregate, Env, Granularity, Record};
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Most rows one query reads; past it the caller is told to narrow it.
pub const MAX_QUERY_ROWS: usize = 50_000;

fn encode(a: &Aggregate) -> Vec<u8> {
    bincode::serde::encode_to_vec(a, bincode::config::standard()).expect("aggregates encode")
}

fn decode(bytes: &[u8]) -> Result<Aggregate, StoreError> {
    bincode::serde::decode_from_slice(
        bytes,
        bincode::config::standard().with_limit::<{ 16 * 1024 * 1024 }>(),
    )
    .map(|(a, _)| a)
    .map_err(|e| corrupt(format!("an analytics rollup does not decode: {e}")))
}

fn corrupt(what: String) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(what.into()))
}

/// What [`Store::ingest_analytics`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Counted now.
    Counted { sites: usize, unknown: usize },
    /// Already counted (a resend after a lost acknowledgement).
    Duplicate,
}

/// Rows a query found, or too many of them.
pub enum Rows {
    Found(Vec<ReportRow>),
    TooMany,
}

/// Where analytics rollups live.
pub trait AnalyticsStore {
    /// Counts one record from `node_id` (in `region`) into its bucket and
    /// every coarser one, with its receipt: counted once however often it
    /// is sent.
    fn ingest_analytics(
        &self,
        node_id: &str,
        region: &str,
        record: &Record,
    ) -> impl std::future::Future<Output = Result<Ingested, StoreError>> + Send;

    /// A project's rollups of `granularity` with buckets in `[from, to)`,
    /// narrowed by `filter`.
    fn analytics_rows(
        &self,
        project_id: &str,
        granularity: Granularity,
        from: i64,
        to: i64,
        filter: &Filter,
    ) -> impl std::future::Future<Output = Result<Rows, StoreError>> + Send;

    /// Requests per node in the minute rollups with buckets in `[from, to)`.
    fn node_requests(
        &self,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<Output = Result<BTreeMap<String, u64>, StoreError>> + Send;

    /// Deletes rollups past their granularity's retention and old receipts.
    fn expire_analytics(
        &self,
        now_secs: i64,
        retention: &[(Granularity, Option<i64>)],
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send;
}

impl AnalyticsStore for Store {
    /// Counts one record from `node_id` (in `region`) into its bucket and
    /// every coarser one, in one transaction with its receipt: counted
    /// once however often it is sent. Sites of projects that no longer
    /// exist are skipped.
    async fn ingest_analytics(
        &self,
        node_id: &str,
        region: &str,
        record: &Record,
    ) -> Result<Ingested, StoreError> {
        let mut tx = self.pool.begin().await?;
        let new = sqlx::query(
            "INSERT INTO analytics_receipts (node_id, start, seq, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(node_id)
        .bind(record.id.start)
        .bind(record.id.seq as i64)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if new == 0 {
            return Ok(Ingested::Duplicate);
        }
        let mut projects: BTreeMap<&str, Option<String>> = BTreeMap::new();
        let (mut sites, mut unknown) = (0, 0);
        for (key, agg) in &record.sites {
            let pid = match projects.get(key.project.as_str()) {
                Some(p) => p.clone(),
                None => {
                    let p: Option<String> = sqlx::query("SELECT id FROM projects WHERE name = $1")
                        .bind(&key.project)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get("id"))
                        .transpose()?;
                    projects.insert(&key.project, p.clone());
                    p
                }
            };
            let Some(pid) = pid else {
                unknown += 1;
                continue;
            };
            sites += 1;
            let mut g = Some(record.granularity);
            while let Some(gran) = g {
                let bucket = gran.floor(record.id.start);
                let existing = sqlx::query(
                    "SELECT data FROM analytics_rollups WHERE project_id = $1 AND granularity = $2 \
                     AND bucket = $3 AND deployment_id = $4 AND env = $5 AND node_id = $6",
                )
                .bind(&pid)
                .bind(gran.as_str())
                .bind(bucket)
                .bind(&key.deployment)
                .bind(key.env.as_str())
                .bind(node_id)
                .fetch_optional(&mut *tx)
                .await?;
                let merged = match existing {
                    Some(r) => {
                        let mut a = decode(&r.try_get::<Vec<u8>, _>("data")?)?;
                        a.merge(agg);
                        a
                    }
                    None => agg.clone(),
                };
                sqlx::query(
                    "INSERT INTO analytics_rollups \
                     (project_id, granularity, bucket, deployment_id, env, node_id, region, data) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (project_id, granularity, bucket, deployment_id, env, node_id) \
                     DO UPDATE SET data = excluded.data, region = excluded.region",
                )
                .bind(&pid)
                .bind(gran.as_str())
                .bind(bucket)
                .bind(&key.deployment)
                .bind(key.env.as_str())
                .bind(node_id)
                .bind(region)
                .bind(encode(&merged))
                .execute(&mut *tx)
                .await?;
                g = gran.coarser();
            }
        }
        tx.commit().await?;
        Ok(Ingested::Counted { sites, unknown })
    }

    /// A project's rollups of `granularity` with buckets in `[from, to)`,
    /// narrowed by `filter`.
    async fn analytics_rows(
        &self,
        project_id: &str,
        granularity: Granularity,
        from: i64,
        to: i64,
        filter: &Filter,
    ) -> Result<Rows, StoreError> {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        let env = filter
            .env
            .map(|e| e.as_str().to_string())
            .unwrap_or_default();
        let rows = sqlx::query(
            "SELECT bucket, deployment_id, env, node_id, region, data FROM analytics_rollups \
             WHERE project_id = $1 AND granularity = $2 AND bucket >= $3 AND bucket < $4 \
             AND ($5 = '' OR deployment_id = $6) AND ($7 = '' OR env = $8) \
             AND ($9 = '' OR node_id = $10) AND ($11 = '' OR region = $12) \
             ORDER BY bucket LIMIT $13",
        )
        .bind(project_id)
        .bind(granularity.as_str())
        .bind(from)
        .bind(to)
        .bind(opt(&filter.deployment))
        .bind(opt(&filter.deployment))
        .bind(&env)
        .bind(&env)
        .bind(opt(&filter.node))
        .bind(opt(&filter.node))
        .bind(opt(&filter.region))
        .bind(opt(&filter.region))
        .bind(MAX_QUERY_ROWS as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        if rows.len() > MAX_QUERY_ROWS {
            return Ok(Rows::TooMany);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let env: String = r.try_get("env")?;
            out.push(ReportRow {
                bucket: r.try_get("bucket")?,
                deployment: r.try_get("deployment_id")?,
                env: Env::parse(&env)
                    .ok_or_else(|| corrupt(format!("an analytics rollup's environment {env:?}")))?,
                node: r.try_get("node_id")?,
                region: r.try_get("region")?,
                agg: decode(&r.try_get::<Vec<u8>, _>("data")?)?,
            });
        }
        Ok(Rows::Found(out))
    }

    /// Requests each node served in the minute rollups with buckets in
    /// `[from, to)`, over every project (the nodes page's request rate).
    async fn node_requests(&self, from: i64, to: i64) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT node_id, data FROM analytics_rollups \
             WHERE granularity = 'minute' AND bucket >= $1 AND bucket < $2 LIMIT $3",
        )
        .bind(from)
        .bind(to)
        .bind(MAX_QUERY_ROWS as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let node: String = r.try_get("node_id")?;
            let a = decode(&r.try_get::<Vec<u8>, _>("data")?)?;
            *out.entry(node).or_default() += a.requests;
        }
        Ok(out)
    }

    /// Deletes rollups past their granularity's retention (`None`: kept
    /// for ever) and receipts older than a week (a resend comes within
    /// seconds of its lost acknowledgement). Returns the rows deleted.
    async fn expire_analytics(
        &self,
        now_secs: i64,
        retention: &[(Granularity, Option<i64>)],
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for (g, keep) in retention {
            if let Some(keep) = keep {
                n += sqlx::query(
                    "DELETE FROM analytics_rollups WHERE granularity = $1 AND bucket < $2",
                )
                .bind(g.as_str())
                .bind(now_secs - keep)
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
        }
        n += sqlx::query("DELETE FROM analytics_receipts WHERE received_at < $1")
            .bind(now_ms() - 7 * 86_400_000)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }
}
