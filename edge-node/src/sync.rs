//! Bundle sync: fetch what the desired config needs, then switch hosts.
//!
//! A host switches to a bundle only once every blob of it is on disk and
//! verified; until then it keeps serving its previous complete bundle. The
//! active map is persisted with the switch, so a restart (even a `kill -9`
//! mid-sync) resumes serving exactly what was being served.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};
use protocol::functions::RouteTable;
use protocol::{BlobHash, BundleId, EdgeConfig, HostTarget, Manifest};
use rustls::sign::CertifiedKey;
use tokio::sync::{mpsc, watch};

use crate::fetch::Fetcher;
use crate::state::{Routing, ServingState, Site};
use crate::store::{BlobStore, Index};

/// Blobs fetched at once per node.
const FETCH_CONCURRENCY: usize = 8;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub config_version: u64,
    pub bundles_present: u32,
    pub bundles_pending: u32,
}

pub struct Syncer {
    pub index: Arc<Index>,
    pub blobs: Arc<BlobStore>,
    pub state: Arc<ServingState>,
    /// The live coordinator connection, when there is one.
    pub conn: watch::Receiver<Option<quinn::Connection>>,
    /// Gets missing blobs from peers or the coordinator.
    pub fetcher: Arc<Fetcher>,
    pub status: watch::Sender<SyncStatus>,
    /// Compiles a bundle's functions before its hosts switch, so the first
    /// request after a deploy does not pay for compilation.
    pub functions: Option<Arc<crate::functions::FunctionRuntime>>,
}

/// Which bundle each host serves next: the desired one when it is
/// complete, else whatever the host served before (if anything). Hosts the
/// config no longer lists stop being served.
pub fn next_active(
    config: &EdgeConfig,
    previous: &BTreeMap<String, HostTarget>,
    is_complete: impl Fn(&BundleId) -> bool,
) -> BTreeMap<String, HostTarget> {
    config
        .hosts
        .iter()
        .filter_map(|(host, want)| {
            if is_complete(&want.bundle) {
                Some((host.clone(), want.clone()))
            } else {
                previous.get(host).map(|old| (host.clone(), old.clone()))
            }
        })
        .collect()
}

impl Syncer {
    /// Serves the persisted active map right away (before any network).
    pub fn restore(&self) -> anyhow::Result<()> {
        let config = self.index.config()?;
        let active = self.index.active()?;
        self.publish(&config, &active)
    }

    /// Runs until `shutdown`: every change of `desired` (or a nudge after a
    /// corrupt blob) triggers a sync pass; failures retry after a second.
    pub async fn run(
        self: Arc<Self>,
        mut desired: watch::Receiver<Arc<EdgeConfig>>,
        mut corrupt: mpsc::Receiver<BlobHash>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let config = desired.borrow_and_update().clone();
            let retry = match self.sync_once(&config).await {
                Ok(()) => false,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "bundle sync incomplete; will retry");
                    true
                }
            };
            tokio::select! {
                _ = desired.changed() => {}
                Some(hash) = corrupt.recv() => self.forget_blob(&config, hash),
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)), if retry => {}
                _ = self.conn_changed(), if retry => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn conn_changed(&self) {
        let mut c = self.conn.clone();
        let _ = c.changed().await;
    }

    /// A blob went bad or missing: every bundle holding it is incomplete again.
    fn forget_blob(&self, config: &EdgeConfig, hash: BlobHash) {
        for (id, m) in &config.bundles {
            if m.blobs().contains(&hash) {
                tracing::warn!(bundle = %id.short(), blob = %hash.short(), "bundle lost a blob; fetching it again");
                let _ = self.index.unmark_complete(id);
            }
        }
    }

    async fn sync_once(&self, config: &EdgeConfig) -> anyhow::Result<()> {
        let wanted: BTreeSet<BundleId> = config.hosts.values().map(|t| t.bundle).collect();
        let mut result = Ok(());
        for bundle in &wanted {
            if self.index.is_complete(bundle)? {
                continue;
            }
            let manifest = config
                .bundles
                .get(bundle)
                .with_context(|| format!("config lacks bundle {bundle}"))?;
            match self.fetch_bundle(manifest).await {
                Ok(()) => {
                    self.prepare_functions(manifest).await;
                    self.index.mark_complete(bundle, manifest)?;
                    tracing::info!(bundle = %bundle.short(), files = manifest.files.len(), "bundle complete");
                    // Switch what is ready now rather than after every bundle.
                    self.activate(config)?;
                }
                Err(e) => result = Err(e),
            }
        }
        self.activate(config)?;
        result
    }

    /// Loads the code of every function the restored state serves (from
    /// the disk cache, or compiled if the engine changed), so that after a
    /// restart no function's first request waits for it. Runs beside
    /// serving: a request that comes first waits for the same load, not
    /// for a second one.
    pub async fn warm_functions(&self) {
        let Some(rt) = &self.functions else { return };
        let started = std::time::Instant::now();
        let routing = self.state.current();
        let components: BTreeSet<BlobHash> = routing
            .hosts
            .values()
            .flat_map(|site| site.manifest.functions.values().map(|f| f.component))
            .collect();
        if components.is_empty() {
            return;
        }
        // More than fit would only evict each other; the rest load on
        // their first request, as before.
        let count = components.len().min(rt.capacity());
        self.prepare_components(components.into_iter().take(count))
            .await;
        tracing::info!(
            components = count,
            ms = started.elapsed().as_millis() as u64,
            "functions of the restored deployments loaded"
        );
    }

    async fn prepare_functions(&self, manifest: &Manifest) {
        let components: BTreeSet<BlobHash> =
            manifest.functions.values().map(|f| f.component).collect();
        self.prepare_components(components).await
    }

    async fn prepare_components(&self, components: impl IntoIterator<Item = BlobHash>) {
        let Some(rt) = &self.functions else { return };
        for c in components {
            if let Err(e) = rt.prepare(&self.blobs, c).await {
                // The request path reports it again; the switch goes on.
                tracing::warn!(component = %c.short(), error = %format!("{e:#}"), "function failed to compile");
            }
        }
    }

    async fn fetch_bundle(&self, manifest: &Manifest) -> anyhow::Result<()> {
        let missing: Vec<(BlobHash, u64)> = manifest
            .blob_sizes()
            .into_iter()
            .filter(|(h, _)| !self.blobs.contains(h))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        stream::iter(missing)
            .map(|(hash, size)| self.fetcher.fetch(hash, size))
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Switches every host whose desired bundle is complete, persisting the
    /// new active map before serving from it.
    fn activate(&self, config: &EdgeConfig) -> anyhow::Result<()> {
        let previous = self.index.active()?;
        let next = next_active(config, &previous, |b| {
            self.index.is_complete(b).unwrap_or(false)
        });
        if next != previous {
            self.index.store_active(&next)?;
            for (host, t) in &next {
                if previous.get(host) != Some(t) {
                    tracing::info!(%host, deployment = %t.deployment, bundle = %t.bundle.short(), "host switched");
                }
            }
        }
        self.publish(config, &next)?;
        let present = config
            .bundles
            .keys()
            .filter(|b| self.index.is_complete(b).unwrap_or(false))
            .count() as u32;
        self.status.send_replace(SyncStatus {
            config_version: config.version,
            bundles_present: present,
            bundles_pending: config.bundles.len() as u32 - present,
        });
        Ok(())
    }

    fn publish(
        &self,
        config: &EdgeConfig,
        active: &BTreeMap<String, HostTarget>,
    ) -> anyhow::Result<()> {
        let current = self.state.current();
        let mut manifests: BTreeMap<BundleId, (Arc<Manifest>, Arc<RouteTable>)> = current
            .hosts
            .values()
            .map(|s| (s.bundle, (s.manifest.clone(), s.functions.clone())))
            .collect();
        let mut hosts = std::collections::HashMap::new();
        for (host, t) in active {
            let (manifest, functions) = match manifests.get(&t.bundle) {
                Some(m) => m.clone(),
                None => {
                    let Some(m) = self.index.complete_manifest(&t.bundle)? else {
                        continue;
                    };
                    let functions = Arc::new(RouteTable::new(&m.functions));
                    let m = (Arc::new(m), functions);
                    manifests.insert(t.bundle, m.clone());
                    m
                }
            };
            let runtime = config.projects.get(&t.project);
            hosts.insert(
                host.clone(),
                Arc::new(Site {
                    project: t.project.as_str().into(),
                    deployment: t.deployment.as_str().into(),
                    deployment_header: http::HeaderValue::from_str(&t.deployment).ok(),
                    bundle: t.bundle,
                    manifest,
                    functions,
                    env: Arc::new(runtime.map(|r| r.env(t.env).clone()).unwrap_or_default()),
                    outbound: Arc::new(runtime.map(|r| r.outbound.clone()).unwrap_or_default()),
                }),
            );
        }
        let mut certs = BTreeMap::new();
        for (name, c) in &config.certificates {
            match certified_key(&c.chain_pem, &c.key_pem) {
                Ok(k) => {
                    certs.insert(name.clone(), k);
                }
                Err(e) => tracing::warn!(%name, error = %e, "unusable certificate in config"),
            }
        }
        self.state.replace(Routing {
            config_version: config.version,
            hosts,
            certs,
        });
        Ok(())
    }
}

fn certified_key(chain_pem: &str, key_pem: &str) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = crate::tls::parse_certs(chain_pem)?;
    let key = crate::tls::parse_key(key_pem)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::manifest::FileEntry;

    fn bundle(tag: &str) -> BundleId {
        Manifest::new(
            [(
                "index.html".to_string(),
                FileEntry {
                    hash: BlobHash::of(tag.as_bytes()),
                    size: 1,
                    content_type: "text/html".into(),
                    variants: vec![],
                },
            )]
            .into(),
        )
        .bundle_id()
    }

    fn target(tag: &str) -> HostTarget {
        HostTarget {
            project: "p".into(),
            deployment: tag.into(),
            bundle: bundle(tag),
            env: protocol::EnvKind::Production,
        }
    }

    #[test]
    fn next_active_table() {
        let mut config = EdgeConfig::default();
        config.hosts.insert("a".into(), target("new"));
        config.hosts.insert("b".into(), target("new"));
        config.hosts.insert("c".into(), target("other"));
        let previous: BTreeMap<String, HostTarget> = [
            ("a".to_string(), target("old")),
            ("gone".to_string(), target("old")),
        ]
        .into();
        // (complete bundles, expected host → deployment)
        type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![("a", "old")]),
            (vec!["new"], vec![("a", "new"), ("b", "new")]),
            (vec!["other"], vec![("a", "old"), ("c", "other")]),
            (
                vec!["new", "other"],
                vec![("a", "new"), ("b", "new"), ("c", "other")],
            ),
        ];
        for (complete, want) in cases {
            let done: BTreeSet<BundleId> = complete.iter().map(|t| bundle(t)).collect();
            let got = next_active(&config, &previous, |b| done.contains(b));
            let got: Vec<(&str, &str)> = got
                .iter()
                .map(|(h, t)| (h.as_str(), t.deployment.as_str()))
                .collect();
            assert_eq!(got, want, "complete = {complete:?}");
        }
    }
}
