//! Host certificates issued by the cluster CA.

use sqlx::Row;

use super::{HostCert, Store, StoreError};

impl Store {
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
