//! `<data_dir>/status.json`: the running node's own view (config, link,
//! mesh members with their announced config versions, blob sources,
//! functions loaded), rewritten every second. `edge-node status` reads it:
//! the sled index is locked by the running process, and a file needs no
//! extra listener.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config_state::ConfigState;
use crate::fetch::Fetcher;
use crate::functions::FunctionRuntime;
use crate::mesh::Mesh;
use crate::sync::SyncStatus;

pub use protocol::status::{FunctionsStatus, MemberStatus, NodeStatus, FILE};

const EVERY: Duration = Duration::from_secs(1);

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub struct StatusWriter {
    pub data_dir: PathBuf,
    pub mesh: Arc<Mesh>,
    pub config: Arc<ConfigState>,
    pub fetcher: Arc<Fetcher>,
    pub sync: watch::Receiver<SyncStatus>,
    pub conn: watch::Receiver<Option<quinn::Connection>>,
    pub functions: Arc<FunctionRuntime>,
    pub cache: Arc<crate::disk_cache::DiskCache>,
    pub keys: Arc<crate::keys::ClusterKeys>,
    /// What the status loop copies the node's state into.
    pub metrics: Arc<crate::metrics::EdgeMetrics>,
    /// Where `--metrics` serves them, if it does.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl StatusWriter {
    pub fn snapshot(&self) -> NodeStatus {
        let m = self.mesh.snapshot();
        let s = *self.sync.borrow();
        let f = self.fetcher.stats();
        NodeStatus {
            node_id: self.mesh.me.node_id.clone(),
            name: self.mesh.me.name.clone(),
            region: self.mesh.me.region.clone(),
            mesh_addr: self.mesh.me.mesh_addr.clone(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
            config_version: self.config.version(),
            coordinator_link: self.conn.borrow().is_some(),
            coordinator_addr: self
                .conn
                .borrow()
                .as_ref()
                .map(|c| c.remote_address().to_string()),
            bundles_present: s.bundles_present,
            bundles_pending: s.bundles_pending,
            blob_bytes_from_coordinator: f.from_coordinator_bytes,
            blob_bytes_from_peers: f.from_peers_bytes,
            blobs_served_to_peers: f.served_to_peers,
            bytes_from_coordinator: self
                .conn
                .borrow()
                .as_ref()
                .map_or(0, |c| c.stats().udp_rx.bytes),
            index_bytes: self.config.index_bytes(),
            cache: self.cache.status(),
            members: m
                .values()
                .map(|e| MemberStatus {
                    node_id: e.info.node_id.clone(),
                    name: e.info.name.clone(),
                    region: e.info.region.clone(),
                    mesh_addr: e.info.mesh_addr.clone(),
                    state: e.state.as_str().to_string(),
                    config_version: self.mesh.version_of(&e.info.node_id),
                })
                .collect(),
            functions: {
                let f = self.functions.stats();
                FunctionsStatus {
                    loaded: f.cached_components as u64,
                    compiled: f.compiled,
                    loaded_from_cache: f.loaded_from_cache,
                    invocations: f.instantiations,
                }
            },
            cluster_keys: {
                let ring = self.keys.current();
                protocol::status::KeysStatus {
                    held: ring.materials().iter().map(|m| m.generation).collect(),
                    missing: crate::keys::missing(&self.config.current(), &ring)
                        .into_keys()
                        .collect(),
                }
            },
            metrics_addr: self.metrics_addr.map(|a| a.to_string()),
            updated_at_ms: now_ms(),
        }
    }

    /// Copies what the metrics report as state from `status` and the
    /// sources it summarises.
    fn observe(&self, status: &NodeStatus) {
        let f = self.fetcher.stats();
        let runtime = self.functions.stats();
        let mut s = crate::metrics::NodeSample {
            config_version: status.config_version,
            coordinator_link: status.coordinator_link,
            bundles_present: status.bundles_present.into(),
            bundles_pending: status.bundles_pending.into(),
            blobs_from_peers: f.from_peers_blobs,
            blobs_from_coordinator: f.from_coordinator_blobs,
            blob_bytes_from_peers: f.from_peers_bytes,
            blob_bytes_from_coordinator: f.from_coordinator_bytes,
            blobs_served_to_peers: f.served_to_peers,
            instances_in_use: runtime.in_flight as u64,
            instances_max: self.functions.max_instances() as u64,
            compiled: runtime.compiled,
            loaded_from_cache: runtime.loaded_from_cache,
            ..Default::default()
        };
        for m in &status.members {
            match m.state.as_str() {
                "alive" => {
                    s.members_alive += 1;
                    s.peers_head = s.peers_head.max(m.config_version);
                }
                "suspect" => s.members_suspect += 1,
                _ => s.members_down += 1,
            }
        }
        self.metrics.observe_node(&s);
    }

    pub fn write_now(&self) {
        if let Err(e) = write_atomic(&path(&self.data_dir), &self.snapshot()) {
            tracing::warn!(error = %e, "writing status.json");
        }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut members = self.mesh.members_changed();
        let mut config = self.config.subscribe();
        loop {
            let status = self.snapshot();
            self.observe(&status);
            let file = path(&self.data_dir);
            // Writing and renaming a file blocks: not on the workers that
            // serve requests.
            match tokio::task::spawn_blocking(move || write_atomic(&file, &status)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "writing status.json"),
                Err(e) => tracing::warn!(error = %e, "status.json writer task failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = members.changed() => {}
                _ = config.changed() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn write_atomic(path: &Path, status: &NodeStatus) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(status).expect("serialisable"),
    )?;
    std::fs::rename(tmp, path)
}

/// Reads what a running (or the last) node wrote.
pub fn read(data_dir: &Path) -> anyhow::Result<NodeStatus> {
    let p = path(data_dir);
    let bytes = std::fs::read(&p).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}. Is an edge node running with --data-dir {}?",
            p.display(),
            data_dir.display()
        )
    })?;
    protocol::status::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
}
