//! The cluster key's generations (see [`protocol::sealed`]): rows of
//! `cluster_keys`, each key sealed with the instance secret key, so every
//! coordinator on the database seals with the same key and none keeps it
//! on its own disk. Generation 1 is made by the first transaction that
//! seals; each node removal starts the next and seals every entry again.

use std::sync::Arc;

use protocol::sealed::{KeyMaterial, Keyring, SealKey, KEY_LEN, MAX_KEYS_PER_MESSAGE};
use sqlx::Row;

use super::{now_ms, Store, StoreError};
use crate::secrets::SecretBox;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// Generations kept after a rotation: the new one and the one before it
/// (what an edge still applying the batches before the re-seal needs).
const KEEP_GENERATIONS: i64 = 2;

fn corrupt(what: String) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(what.into()))
}

fn open(secrets: &SecretBox, generation: i64, sealed: &[u8]) -> Result<SealKey, StoreError> {
    let hex_key = secrets
        .open(sealed)
        .map_err(|e| corrupt(format!("cluster key generation {generation}: {e}")))?;
    let bytes = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok())
        .ok_or_else(|| corrupt(format!("cluster key generation {generation} is malformed")))?;
    let generation = u32::try_from(generation).map_err(|_| {
        corrupt(format!(
            "cluster key generation {generation} is out of range"
        ))
    })?;
    Ok(SealKey::new(KeyMaterial {
        generation,
        key: bytes,
    }))
}

async fn rows(conn: &mut sqlx::AnyConnection, secrets: &SecretBox) -> Result<Keyring, StoreError> {
    let mut ring = Keyring::default();
    for r in sqlx::query("SELECT generation, key_enc FROM cluster_keys ORDER BY generation")
        .fetch_all(&mut *conn)
        .await?
    {
        let generation: i64 = r.try_get("generation")?;
        let sealed: Vec<u8> = r.try_get("key_enc")?;
        ring.insert(open(secrets, generation, &sealed)?);
    }
    Ok(ring)
}

async fn insert(tx: &mut Tx<'_>, secrets: &SecretBox, generation: u32) -> Result<(), StoreError> {
    let key = SealKey::generate(generation);
    sqlx::query("INSERT INTO cluster_keys (generation, key_enc, created_at) VALUES ($1, $2, $3)")
        .bind(i64::from(generation))
        .bind(secrets.seal(&hex::encode(key.material().key)))
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every generation, as this transaction sees them; makes generation 1
/// when there is none. The caller holds the config version's lock (taken
/// first by every transaction that writes the edge config), so two
/// coordinators never make a generation at once.
pub(super) async fn keyring(tx: &mut Tx<'_>, secrets: &SecretBox) -> Result<Keyring, StoreError> {
    let ring = rows(tx, secrets).await?;
    if !ring.is_empty() {
        return Ok(ring);
    }
    insert(tx, secrets, 1).await?;
    rows(tx, secrets).await
}

/// The newest generation of `ring` (which [`keyring`] never leaves empty).
pub(super) fn newest(ring: &Keyring) -> Arc<SealKey> {
    ring.newest()
        .cloned()
        .expect("keyring() makes a generation when there is none")
}

/// Starts the next generation and forgets those before the one it
/// replaces. The caller seals every entry again in the same transaction.
pub(super) async fn rotate(tx: &mut Tx<'_>, secrets: &SecretBox) -> Result<(), StoreError> {
    let ring = keyring(tx, secrets).await?;
    let next = newest(&ring).generation() + 1;
    insert(tx, secrets, next).await?;
    sqlx::query("DELETE FROM cluster_keys WHERE generation <= $1")
        .bind(i64::from(next) - KEEP_GENERATIONS)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// What an edge is handed: every generation entries may use, newest
    /// last. Empty before anything was sealed.
    pub async fn cluster_keys(&self) -> Result<Vec<KeyMaterial>, StoreError> {
        let Some(log) = self.edge.clone() else {
            return Ok(Vec::new());
        };
        let mut conn = self.pool.acquire().await?;
        let mut keys = rows(&mut conn, &log.secrets).await?.materials();
        if keys.len() > MAX_KEYS_PER_MESSAGE {
            keys.drain(..keys.len() - MAX_KEYS_PER_MESSAGE);
        }
        Ok(keys)
    }

    /// Whether any generation exists (a store from before sealing has none).
    pub(super) async fn has_cluster_key(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query("SELECT 1 AS one FROM cluster_keys LIMIT 1")
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }
}
