//! Edge nodes: one-time join tokens, enrolment and what each node last
//! reported.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{now_ms, FromRow, JoinTokenError, Node, NodeContact, Store, StoreError};

const NODE_COLS: &str = "id, name, region, cert_fingerprint, software_version, config_version, \
     bundles_present, bundles_pending, http_addr, https_addr, mesh_addr, created_at, last_seen, \
     cert_not_after, memory_used, memory_total, disk_used, disk_total";

impl Store {
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
             bundles_present, bundles_pending, created_at, cert_not_after) \
             VALUES ($1, $2, $3, $4, $5, 0, 0, 0, $6, $7)",
        )
        .bind(&node.id)
        .bind(&node.name)
        .bind(token_region)
        .bind(&node.cert_fingerprint)
        .bind(&node.software_version)
        .bind(now_ms())
        .bind(node.cert_not_after)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn node(&self, id: &str) -> Result<Option<Node>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NODE_COLS} FROM nodes WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Node::from_row(&r)).transpose()
    }

    /// Records a node's renewed certificate. `false`: the node is gone.
    pub async fn record_node_cert(
        &self,
        id: &str,
        fingerprint: &str,
        not_after: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE nodes SET cert_fingerprint = $1, cert_not_after = $2 WHERE id = $3",
        )
        .bind(fingerprint)
        .bind(not_after)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes a node from the cluster: its row goes (so no coordinator
    /// accepts its certificate again) and, in the same transaction, its id
    /// enters the revocation list of the edge config (so no edge does).
    /// Returns the node as it was; `None`: there is no such node.
    pub async fn remove_node(&self, id: &str) -> Result<Option<Node>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM nodes WHERE id = $1 RETURNING {NODE_COLS}"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = gone else {
            return Ok(None);
        };
        let node = Node::from_row(&row)?;
        // The removed node held the cluster key: everything sealed to it
        // is sealed again to a new one it never gets.
        self.sync_edges(
            &mut tx,
            &[
                super::EdgeSync::NodeRevoked(id.to_string()),
                super::EdgeSync::Reseal,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(node))
    }

    /// Records what a node reported. `false`: the node was removed (by
    /// this coordinator or another), and its link must end.
    pub async fn record_node_contact(&self, id: &str, c: &NodeContact) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE nodes SET software_version = $1, config_version = $2, bundles_present = $3, \
             bundles_pending = $4, http_addr = $5, https_addr = $6, mesh_addr = $7, last_seen = $8, \
             memory_used = $10, memory_total = $11, disk_used = $12, disk_total = $13 \
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
        .bind(clamp(c.resources.memory_used))
        .bind(clamp(c.resources.memory_total))
        .bind(clamp(c.resources.disk_used))
        .bind(clamp(c.resources.disk_total))
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn list_nodes(&self) -> Result<Vec<Node>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {NODE_COLS} FROM nodes ORDER BY region, name, id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Node::from_row).collect()
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
            cert_not_after: r.try_get("cert_not_after")?,
            memory_used: r.try_get("memory_used")?,
            memory_total: r.try_get("memory_total")?,
            disk_used: r.try_get("disk_used")?,
            disk_total: r.try_get("disk_total")?,
        })
    }
}

/// Byte counts as the database's signed 64-bit integers.
fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
