//! The coordinator's side of traffic analytics, in the background: the
//! visitor salts every edge hashes visitors with (one per UTC day, in the
//! config; today's and tomorrow's present, dropped once two days old, as
//! Plausible does), and the rollups' retention. Records arrive over QUIC
//! (`quic.rs`) and are stored by `store::analytics`; queries are
//! `app::analytics`.

use std::time::Duration;

use tokio::sync::watch;

use crate::config::AnalyticsConfig;
use crate::store::analytics::AnalyticsStore;
use crate::store::{EdgeSync, Store};

const EVERY: Duration = Duration::from_secs(60);

fn today() -> i64 {
    crate::store::now_ms().div_euclid(86_400_000)
}

/// The salt changes the config needs: today's and tomorrow's made if
/// missing (tomorrow's ahead, so an edge has it at midnight even with its
/// link down), and salts older than yesterday dropped. Pure.
pub fn salt_changes(present: &[i64], today: i64) -> (Vec<i64>, Vec<i64>) {
    let add = [today, today + 1]
        .into_iter()
        .filter(|d| !present.contains(d))
        .collect();
    let drop = present.iter().copied().filter(|d| *d < today - 1).collect();
    (add, drop)
}

async fn pass(store: &Store, cfg: &AnalyticsConfig) -> anyhow::Result<()> {
    // Two coordinators may both add a day's salt; the later write wins and
    // edges move to it: a few visitors of that minute may count twice.
    let (add, drop) = salt_changes(&store.salt_days().await?, today());
    if !add.is_empty() || !drop.is_empty() {
        let mut syncs = Vec::new();
        for d in add {
            let mut salt = [0u8; 32];
            rand::Rng::fill(&mut rand::rng(), &mut salt[..]);
            syncs.push(EdgeSync::Salt(d, Some(salt)));
        }
        syncs.extend(drop.into_iter().map(|d| EdgeSync::Salt(d, None)));
        store.sync_edges_now(&syncs).await?;
    }
    let now = crate::store::now_ms() / 1000;
    let n = store.expire_analytics(now, &cfg.retention()).await?;
    if n > 0 {
        tracing::debug!(rows = n, "expired analytics rollups");
    }
    Ok(())
}

/// One coordinator of several keeps the salts (so a day has one) and
/// expires rollups.
const LEASE: &str = "analytics.upkeep";

pub async fn run(
    store: Store,
    cfg: AnalyticsConfig,
    holder: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(EVERY);
    let ttl = (EVERY.as_millis() as i64 * 3).max(30_000);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match store.try_lease(LEASE, &holder, ttl).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "taking the analytics lease");
                continue;
            }
        }
        if let Err(e) = pass(&store, &cfg).await {
            tracing::warn!(error = %format!("{e:#}"), "analytics pass");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_cover_today_and_tomorrow_and_last_two_days() {
        type Changes = (Vec<i64>, Vec<i64>);
        let table: &[(&[i64], Changes)] = &[
            (&[], (vec![100, 101], vec![])),
            (&[100], (vec![101], vec![])),
            (&[99, 100, 101], (vec![], vec![])),
            (&[97, 98, 99, 100], (vec![101], vec![97, 98])),
        ];
        for (present, want) in table {
            assert_eq!(salt_changes(present, 100), *want, "{present:?}");
        }
    }
}
