//! Custom domains: names (`name`), whether their DNS points at the fleet
//! (`dns`), and the background pass that checks every domain again now
//! and then (`[domains] recheck_every`), so a domain goes live once its
//! records are in place and stops being served when they move away.
//!
//! A domain is served (its host entry in the edge config) once its DNS
//! points at the fleet and, if another team uses one of its parent names,
//! its ownership TXT record was found. Two teams never hold one name.

pub mod dns;
pub mod name;

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::DomainsConfig;
use crate::store::{DomainRow, Store, StoreError};

/// Domains checked per pass (the oldest checks first).
const CHECKS_PER_PASS: i64 = 50;

/// Checks domains' DNS with the operator's resolver.
pub struct DomainChecker {
    lookup: dns::Lookup,
    config: DomainsConfig,
}

impl DomainChecker {
    pub fn new(config: &DomainsConfig) -> anyhow::Result<Arc<DomainChecker>> {
        Ok(Arc::new(DomainChecker {
            lookup: dns::Lookup::new(config.resolver)?,
            config: config.clone(),
        }))
    }

    pub fn fleet(&self) -> dns::Fleet {
        self.config.fleet()
    }

    /// Looks `d` up, records what was found, and returns the row as stored
    /// (`None`: removed meanwhile).
    pub async fn check(
        &self,
        store: &Store,
        d: &DomainRow,
    ) -> Result<Option<DomainRow>, StoreError> {
        let base = d.name.strip_prefix("*.").unwrap_or(&d.name);
        let found = self.lookup.find(&d.name, base).await;
        let proven = found
            .challenge_txt
            .iter()
            .any(|t| t.trim() == d.verification);
        let (state, detail) = match dns::evaluate(&self.fleet(), &found) {
            dns::Verdict::Active => ("active", None),
            dns::Verdict::Pending => ("pending", None),
            dns::Verdict::Misconfigured(seen) => ("misconfigured", Some(seen)),
        };
        let row = store
            .record_domain_check(&d.name, state, detail.as_deref(), proven)
            .await?;
        if let Some(r) = &row {
            if r.dns_state != d.dns_state || r.proven_at != d.proven_at {
                tracing::info!(domain = %r.name, dns = %r.dns_state, served = r.serves(), "domain checked");
            }
        }
        Ok(row)
    }

    /// Until shutdown: every few seconds, the domains whose last check is
    /// older than `recheck_every` (one coordinator or several: a check is
    /// idempotent, two at once only cost a lookup).
    pub async fn run(self: Arc<Self>, store: Store, mut shutdown: watch::Receiver<bool>) {
        let tick = self
            .config
            .recheck_every
            .min(std::time::Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => return,
            }
            let due = crate::store::now_ms() - self.config.recheck_every.as_millis() as i64;
            let batch = match store.domains_to_check(CHECKS_PER_PASS).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "listing domains to check");
                    continue;
                }
            };
            for d in batch.iter().filter(|d| d.checked_at.unwrap_or(0) <= due) {
                if let Err(e) = self.check(&store, d).await {
                    tracing::warn!(domain = %d.name, error = %e, "checking a domain");
                }
            }
        }
    }
}
