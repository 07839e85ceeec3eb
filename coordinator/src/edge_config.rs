//! Publishing the edge config log to the edges this coordinator serves.
//!
//! The log itself is written by the store, inside the transactions that
//! change what edges serve (`store/config_log.rs`). The hub only follows
//! it: it keeps the newest batches in memory for subscribers, publishes
//! the head version through a `watch` channel (a slow edge skips straight
//! to the newest), polls the database for versions another coordinator
//! wrote, compacts the log and renews host certificates.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::SignedBatch;
use tokio::sync::watch;

use crate::store::{Since, Store, StoreError, CERT_RENEW_BEFORE_SECS};

/// Batches kept in memory: an edge a few deploys behind is served without
/// a query.
const RECENT: usize = 512;
/// Batches kept in the database; an edge further behind gets a snapshot.
pub const LOG_KEEP: u64 = 10_000;
/// How often the log is compacted and certificates are checked.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum EdgeConfigError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct ConfigHub {
    store: Store,
    config_key: String,
    head: watch::Sender<u64>,
    /// Consecutive batches ending at the head.
    recent: Mutex<VecDeque<Arc<SignedBatch>>>,
    /// Serialises refreshes so batches enter `recent` in order.
    refreshing: tokio::sync::Mutex<()>,
    /// How long node certificates last (revocations are kept as long).
    node_cert_secs: i64,
    /// How many times the database's version was found behind ours (it
    /// was restored): subscribers then send their edges a snapshot.
    resets: std::sync::atomic::AtomicU64,
}

impl ConfigHub {
    /// `config_key`: the hex public key edges verify batches with.
    pub async fn new(
        store: Store,
        config_key: String,
        node_cert_secs: i64,
    ) -> Result<Arc<Self>, EdgeConfigError> {
        let head = store.config_version().await? as u64;
        let hub = Arc::new(ConfigHub {
            store,
            config_key,
            head: watch::channel(head).0,
            recent: Mutex::new(VecDeque::new()),
            refreshing: tokio::sync::Mutex::new(()),
            node_cert_secs,
            resets: Default::default(),
        });
        Ok(hub)
    }

    /// The head version, as it changes.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    pub fn version(&self) -> u64 {
        *self.head.borrow()
    }

    /// How many times the database was found restored under this hub.
    pub fn resets(&self) -> u64 {
        self.resets.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Hex public key edges verify batches with.
    pub fn config_key(&self) -> String {
        self.config_key.clone()
    }

    /// Picks up batches written since the last look (by this coordinator's
    /// requests, or another coordinator on the same database).
    pub async fn refresh(&self) -> Result<(), EdgeConfigError> {
        let _guard = self.refreshing.lock().await;
        let db_head = self.store.config_version().await? as u64;
        let have = self.version();
        if db_head < have {
            // The database was restored under us: what we published past
            // its head is another history. A new epoch makes the two
            // impossible to mix, and every subscriber resends a snapshot.
            self.store.supersede(have).await?;
            let db_head = self.store.config_version().await? as u64;
            self.recent.lock().unwrap().clear();
            self.resets
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.head.send_replace(db_head);
            return Ok(());
        }
        if db_head == have {
            return Ok(());
        }
        let mut from = self.recent.lock().unwrap().back().map(|b| b.batch.version);
        let mut fetched = Vec::new();
        if from.is_some_and(|v| db_head - v <= RECENT as u64) {
            while from.is_some_and(|v| v < db_head) {
                match self.store.batches_since(from.unwrap(), 256).await? {
                    Since::Batches(bs) if !bs.is_empty() => {
                        from = bs.last().map(|b| b.batch.version);
                        fetched.extend(bs.into_iter().map(Arc::new));
                    }
                    _ => break,
                }
            }
        }
        {
            let mut recent = self.recent.lock().unwrap();
            let contiguous = fetched.first().is_some_and(|b| {
                recent
                    .back()
                    .is_some_and(|last| last.batch.version + 1 == b.batch.version)
            });
            if !contiguous {
                // Too far behind to stitch: the next subscriber reads the
                // database, and the cache starts again from here.
                recent.clear();
            }
            if contiguous {
                recent.extend(fetched);
            }
            while recent.len() > RECENT {
                recent.pop_front();
            }
        }
        self.head.send_replace(db_head);
        Ok(())
    }

    /// The batches after `have` (at most `max`), from memory when they are
    /// there, else from the database; or `Compacted`.
    pub async fn since(&self, have: u64, max: usize) -> Result<Since, EdgeConfigError> {
        {
            let recent = self.recent.lock().unwrap();
            if let Some(first) = recent.front() {
                if have + 1 >= first.batch.version {
                    let skip = (have + 1 - first.batch.version) as usize;
                    let out: Vec<SignedBatch> = recent
                        .iter()
                        .skip(skip)
                        .take(max)
                        .map(|b| (**b).clone())
                        .collect();
                    if !out.is_empty() || have >= self.version() {
                        return Ok(Since::Batches(out));
                    }
                }
            }
        }
        let since = self.store.batches_since(have, max).await?;
        if let Since::Batches(bs) = &since {
            // Seed the cache so the next subscriber at this point is served
            // from memory.
            let mut recent = self.recent.lock().unwrap();
            if recent.is_empty() && bs.last().map(|b| b.batch.version) == Some(self.version()) {
                recent.extend(bs.iter().cloned().map(Arc::new));
            }
        }
        Ok(since)
    }

    /// Another coordinator on the same database may change the config; a
    /// cheap version poll picks that up. Now and then the log is compacted
    /// and host certificates near their end are renewed.
    pub async fn poll(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut last_housekeeping = None::<std::time::Instant>;
        loop {
            if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY) {
                last_housekeeping = Some(std::time::Instant::now());
                if let Err(e) = self.housekeeping().await {
                    tracing::warn!(error = %e, "edge config housekeeping failed");
                }
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "refreshing the edge config failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn housekeeping(&self) -> Result<(), EdgeConfigError> {
        let removed = self.store.compact_log(LOG_KEEP).await?;
        if removed > 0 {
            tracing::info!(removed, "compacted the edge config log");
        }
        for name in self.store.expiring_certs(CERT_RENEW_BEFORE_SECS).await? {
            self.store.renew_cert(&name).await?;
            tracing::info!(%name, "host certificate renewed");
        }
        // A removed node's certificates have all expired a lifetime (and a
        // day's slack for clocks) after its removal: its entry may go.
        let horizon = crate::store::now_ms() - (self.node_cert_secs + 24 * 3600) * 1000;
        let stale = self.store.stale_revocations(horizon).await?;
        if !stale.is_empty() {
            let syncs: Vec<_> = stale
                .iter()
                .map(|id| crate::store::EdgeSync::RevocationExpired(id.clone()))
                .collect();
            self.store.sync_edges_now(&syncs).await?;
            tracing::info!(nodes = stale.len(), "expired revocations dropped");
        }
        self.refresh().await
    }
}
