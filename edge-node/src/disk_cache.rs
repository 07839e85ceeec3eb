//! The edge's disk cache: a background pass that lets go of bundles no
//! host needs and keeps the on-demand ones under `--cache-size`, then
//! removes the blob files no kept bundle holds.
//!
//! What to keep is decided by the pure plan in [`crate::store::gc`]; this
//! module gathers its inputs (complete bundles and their recency, the
//! pinned set, which bundles the config still points at, the blob files)
//! and carries it out. Letting go of a bundle first makes it incomplete in
//! the index and drops its cached sites, then removes blobs: a request
//! that still finds a removed blob reports it missing, and the bundle is
//! fetched again (the same path as a corrupt blob).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::status::CacheStatus;
use protocol::BundleId;
use tokio::sync::watch;

use crate::config_state::ConfigState;
use crate::state::ServingState;
use crate::store::gc::{self, Reason, Rules};
use crate::store::{BlobStore, Index};

/// `--cache-size` when not given.
pub const DEFAULT_CACHE_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// How long a bundle nothing points at (or a blob nothing holds) stays.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10 * 60);
/// Between passes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct CacheOptions {
    pub budget_bytes: u64,
    pub grace: Duration,
    pub interval: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            budget_bytes: DEFAULT_CACHE_BYTES,
            grace: DEFAULT_GRACE,
            interval: DEFAULT_INTERVAL,
        }
    }
}

pub struct DiskCache {
    pub index: Arc<Index>,
    pub blobs: Arc<BlobStore>,
    pub config: Arc<ConfigState>,
    pub state: Arc<ServingState>,
    pub options: CacheOptions,
    /// The last pass's figures and the running totals, for status.json.
    pub status: Mutex<CacheStatus>,
}

impl DiskCache {
    pub fn new(
        index: Arc<Index>,
        blobs: Arc<BlobStore>,
        config: Arc<ConfigState>,
        state: Arc<ServingState>,
        options: CacheOptions,
    ) -> Self {
        DiskCache {
            index,
            blobs,
            config,
            state,
            options,
            status: Mutex::new(CacheStatus {
                budget_bytes: options.budget_bytes,
                ..Default::default()
            }),
        }
    }

    pub fn status(&self) -> CacheStatus {
        self.status.lock().unwrap().clone()
    }

    /// Passes every `interval` until `shutdown`; a pass blocks on disk, so
    /// it runs off the request workers.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.options.interval) => {}
                _ = shutdown.changed() => return,
            }
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.pass()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "disk cache pass failed"),
                Err(e) => tracing::warn!(error = %e, "disk cache pass panicked"),
            }
        }
    }

    /// One pass: plan, let go of bundles, sweep blobs.
    pub fn pass(&self) -> anyhow::Result<()> {
        let now = crate::status::now_ms();
        let rules = Rules {
            now_ms: now,
            grace_ms: self.options.grace.as_millis() as i64,
            budget_bytes: self.options.budget_bytes,
        };
        // What the eager hosts serve now and what they are syncing to.
        let mut pinned: HashSet<BundleId> =
            self.index.active()?.values().map(|t| t.bundle).collect();
        pinned.extend(self.config.current().eager.values().map(|t| t.bundle));
        // Pinned bundles are in use as of now; cached sites since their
        // last request.
        let mut used: Vec<(BundleId, i64)> = pinned.iter().map(|b| (*b, now)).collect();
        used.extend(self.state.cached_bundles());
        self.index.touch(&used)?;

        let mut bundles = Vec::new();
        let mut unrecorded = Vec::new();
        for item in self.index.complete_bundles() {
            let (id, m) = item?;
            let last_used_ms = match self.index.last_used(&id)? {
                Some(t) => t,
                None => {
                    // Completed before recency was kept: it counts from now.
                    unrecorded.push((id, now));
                    now
                }
            };
            bundles.push(gc::Bundle {
                id,
                blobs: m.blob_sizes(),
                last_used_ms,
            });
        }
        self.index.touch(&unrecorded)?;
        // Which bundles hosts still point at: one scan of the host entries,
        // only when some bundle is not pinned (otherwise nothing to ask).
        let referenced = if bundles.iter().any(|b| !pinned.contains(&b.id)) {
            self.config.host_bundles()?
        } else {
            HashSet::new()
        };
        let plan = gc::plan(&bundles, &pinned, |id| referenced.contains(id), rules);

        let (mut unreferenced, mut evicted) = (0u64, 0u64);
        let dropped: HashSet<BundleId> = plan.drop.iter().map(|(id, _)| *id).collect();
        for (id, why) in &plan.drop {
            self.index.drop_bundle(id)?;
            match why {
                Reason::Unreferenced => unreferenced += 1,
                Reason::Evicted => evicted += 1,
            }
            tracing::info!(bundle = %id.short(), reason = ?why, "disk cache let a bundle go");
        }
        if !dropped.is_empty() {
            self.state.forget_bundles(&dropped);
        }

        let files = self.blobs.list()?;
        let (mut removed, mut removed_bytes) = (0u64, 0u64);
        // A bundle an eager host is syncing to is not complete yet, so its
        // blobs are in no plan: while one is being fetched (a big one can
        // take longer than the grace period), no blob is swept.
        let complete: HashSet<BundleId> = bundles.iter().map(|b| b.id).collect();
        let syncing = pinned.iter().any(|b| !complete.contains(b));
        let sweepable: &[gc::BlobFile] = if syncing { &[] } else { &files };
        for f in gc::sweep(sweepable, &plan.keep, rules) {
            match self.blobs.remove(&f.hash) {
                Ok(()) => {
                    removed += 1;
                    removed_bytes += f.bytes;
                }
                Err(e) => tracing::warn!(blob = %f.hash.short(), error = %e, "removing a blob"),
            }
        }
        let on_disk: u64 = files.iter().map(|f| f.bytes).sum::<u64>() - removed_bytes;
        if plan.pinned_over_budget {
            tracing::warn!(
                budget = self.options.budget_bytes,
                pinned = plan.kept_bytes,
                "the eagerly served bundles alone exceed --cache-size; they are kept, nothing on demand is"
            );
        }
        if removed > 0 || !dropped.is_empty() {
            tracing::info!(
                bundles_unreferenced = unreferenced,
                bundles_evicted = evicted,
                blobs_removed = removed,
                bytes_removed = removed_bytes,
                bytes_on_disk = on_disk,
                "disk cache pass"
            );
        }
        let mut s = self.status.lock().unwrap();
        s.blob_bytes = on_disk;
        s.blobs = files.len() as u64 - removed;
        s.bundles = (bundles.len() - dropped.len()) as u64;
        s.last_pass_ms = now;
        s.bundles_unreferenced += unreferenced;
        s.bundles_evicted += evicted;
        s.blobs_removed += removed;
        s.blob_bytes_removed += removed_bytes;
        s.pinned_over_budget = plan.pinned_over_budget;
        Ok(())
    }
}
