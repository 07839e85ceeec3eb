//! Log drains: a project's function, request and build logs forwarded to
//! an HTTPS endpoint as signed NDJSON batches in Vercel's format
//! (`format.rs`).
//!
//! Lines are queued in `drain_lines` as they arrive (function logs and
//! request logs from the edges, build logs from the builder) for projects
//! that have a drain taking their source; each drain keeps a cursor, moved
//! only when its endpoint answered 2xx, so an endpoint that is down gets
//! every line once it is back (up to a day of them), each exactly once
//! unless an acknowledgement is lost (lines carry ids to tell). Delivery
//! runs apart from ingestion: a slow or failing endpoint delays only its
//! own drain, never serving nor the edges' shipping. A drain is claimed by
//! one coordinator at a time (a lease on its row).

pub mod format;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::alerts::send;
use crate::store::drains::DrainRow;
use crate::store::{now_ms, Store};

/// Lines and bytes per batch.
pub const BATCH_LINES: i64 = 500;
pub const BATCH_BYTES: usize = 1 << 20;

pub struct DrainService {
    pub store: Store,
    pub secrets: Arc<crate::secrets::SecretBox>,
    pub targets: send::Targets,
}

/// The wait after `failures` failed attempts: 1 s doubling, at most 5 min.
pub fn backoff(failures: i64) -> Duration {
    let secs = 1u64 << failures.clamp(0, 9) as u32;
    Duration::from_secs(secs.min(300))
}

impl DrainService {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last_expiry = 0;
        loop {
            match self.store.claim_drains(16, 30_000).await {
                Ok(drains) => {
                    for d in drains {
                        self.deliver(d).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming log drains"),
            }
            let now = now_ms();
            if now - last_expiry > 60_000 {
                last_expiry = now;
                if let Err(e) = self.store.expire_drain_lines().await {
                    tracing::warn!(error = %e, "expiring drain lines");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends a drain's next batch and moves its cursor, or schedules a retry.
    pub async fn deliver(&self, d: DrainRow) {
        let lines = match self.store.drain_batch(&d, BATCH_LINES).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(drain = %d.id, error = %e, "reading drain lines");
                return;
            }
        };
        if lines.is_empty() {
            return;
        }
        // Within the byte budget (always at least one line).
        let mut size = 0;
        let take = lines
            .iter()
            .take_while(|l| {
                size += l.line.len() + 32;
                size <= BATCH_BYTES
            })
            .count()
            .max(1);
        let batch = &lines[..take];
        let body = format::ndjson(batch);
        let secret = self.secrets.open(&d.secret_enc).unwrap_or_default();
        let headers: Vec<(&str, String)> = format::signatures(&secret, &body).into_iter().collect();
        let outcome = send::post(
            &d.url,
            &self.targets,
            "application/x-ndjson",
            &headers,
            &body,
        )
        .await;
        let last = batch.last().map(|l| l.id).unwrap_or(d.cursor);
        let result = if outcome.ok {
            self.store
                .advance_drain(&d.id, last, batch.len() as i64)
                .await
        } else {
            let retry = now_ms() + backoff(d.failures).as_millis() as i64;
            tracing::warn!(drain = %d.id, failures = d.failures + 1, error = outcome.error.as_deref().unwrap_or(""), "log drain delivery failed");
            self.store
                .drain_attempt(&d.id, outcome.status, outcome.error.as_deref(), retry)
                .await
        };
        if let Err(e) = result {
            tracing::warn!(drain = %d.id, error = %e, "recording a drain delivery");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_five_minutes() {
        let secs: Vec<u64> = (0..11).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
