//! What several coordinators on one database share beyond the tables of
//! their features: the cluster material the first one makes
//! (`cluster_material`, sealed), the registry of coordinators (where edges
//! link to), and named leases (`leases`): work
//! one coordinator of several does at a time (alert evaluation, retention
//! and GC, analytics upkeep), passed on when its holder stops renewing.

use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// One coordinator of the cluster as it registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorRow {
    pub id: String,
    pub quic_addr: String,
    pub api_url: String,
    pub role: String,
    pub started_at: i64,
    pub seen_at: i64,
}

impl Store {
    /// Takes or keeps the lease `name` for `ttl_ms`: true when `holder`
    /// has it now. A lease whose holder stopped renewing it passes to the
    /// next coordinator that asks once it expires.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3 \
             WHERE leases.holder = $2 OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The sealed material stored under `name`, if any coordinator made it.
    pub async fn cluster_material(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query("SELECT value_enc FROM cluster_material WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("value_enc"))
                .transpose()?,
        )
    }

    /// Stores `value` under `name` unless some coordinator already did:
    /// whether this call's value is the one kept.
    pub async fn insert_cluster_material(
        &self,
        name: &str,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO cluster_material (name, value_enc, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Registers this coordinator (or updates its addresses and role after
    /// a restart) and marks it seen now.
    pub async fn register_coordinator(
        &self,
        id: &str,
        quic_addr: &str,
        api_url: &str,
        role: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO coordinators (id, quic_addr, api_url, role, started_at, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (id) DO UPDATE SET quic_addr = $2, api_url = $3, role = $4, seen_at = $5",
        )
        .bind(id)
        .bind(quic_addr)
        .bind(api_url)
        .bind(role)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks this coordinator seen now; false when its row is gone
    /// (forgotten after a long silence: it registers again).
    pub async fn coordinator_seen(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("UPDATE coordinators SET seen_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Forgets coordinators not seen since `before` (Unix ms): how many.
    pub async fn forget_coordinators(&self, before: i64) -> Result<u64, StoreError> {
        let r = sqlx::query("DELETE FROM coordinators WHERE seen_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    /// Every registered coordinator, oldest registration first.
    pub async fn coordinators(&self) -> Result<Vec<CoordinatorRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, quic_addr, api_url, role, started_at, seen_at FROM coordinators \
             ORDER BY started_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CoordinatorRow {
                    id: r.try_get("id")?,
                    quic_addr: r.try_get("quic_addr")?,
                    api_url: r.try_get("api_url")?,
                    role: r.try_get("role")?,
                    started_at: r.try_get("started_at")?,
                    seen_at: r.try_get("seen_at")?,
                })
            })
            .collect()
    }
}
