//! `<data_dir>/status.json`: what a running edge node says of itself
//! (config, link, mesh members, blob sources, functions loaded). The node
//! writes it every second; `edge-node status`, the benchmarks and the
//! tests read it. The format lives here because its writer and its
//! readers are different programs.

use serde::{Deserialize, Serialize};

/// The file's name inside the node's data directory.
pub const FILE: &str = "status.json";
/// A status file is a few KB per mesh member; anything this large is not one.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeStatus {
    pub node_id: String,
    pub name: String,
    pub region: String,
    pub mesh_addr: String,
    pub software_version: String,
    pub config_version: u64,
    pub coordinator_link: bool,
    /// Which coordinator the link is to (absent before several
    /// coordinators, and while unlinked).
    #[serde(default)]
    pub coordinator_addr: Option<String>,
    pub bundles_present: u32,
    pub bundles_pending: u32,
    pub blob_bytes_from_coordinator: u64,
    pub blob_bytes_from_peers: u64,
    pub blobs_served_to_peers: u64,
    /// Every byte received on the current coordinator connection
    /// (config, manifests, blobs; QUIC's UDP payloads), since it opened.
    #[serde(default)]
    pub bytes_from_coordinator: u64,
    /// What the node's index (config keyspace, manifests, members) takes on disk.
    #[serde(default)]
    pub index_bytes: u64,
    /// What the node keeps on disk of bundles and blobs, after its last
    /// cache pass (absent in files written before the cache was managed).
    #[serde(default)]
    pub cache: CacheStatus,
    pub members: Vec<MemberStatus>,
    /// Absent in files written before functions were reported.
    #[serde(default)]
    pub functions: FunctionsStatus,
    /// The cluster key this node holds in memory (see `protocol::sealed`).
    #[serde(default)]
    pub cluster_keys: KeysStatus,
    /// Where the node serves Prometheus metrics (`--metrics`), if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
    pub updated_at_ms: i64,
}

/// Generations of the cluster key: those held, and those the node's config
/// uses that it has not received yet (what it cannot open meanwhile).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct KeysStatus {
    pub held: Vec<u32>,
    pub missing: Vec<u32>,
}

/// The node's disk cache of bundles and blobs: its size after the last
/// pass, and what passes removed since the node started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CacheStatus {
    /// `--cache-size`.
    pub budget_bytes: u64,
    /// Blob files on disk after the last pass.
    pub blob_bytes: u64,
    pub blobs: u64,
    /// Complete bundles kept (eager and on demand).
    pub bundles: u64,
    /// Unix ms of the last pass (0: none yet).
    pub last_pass_ms: i64,
    /// Bundles dropped because no host points at them any more.
    pub bundles_unreferenced: u64,
    /// On-demand bundles evicted to stay under the budget.
    pub bundles_evicted: u64,
    pub blobs_removed: u64,
    pub blob_bytes_removed: u64,
    /// The eagerly served bundles alone exceed the budget.
    pub pinned_over_budget: bool,
}

/// The node's function runtime: code loaded and where it came from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionsStatus {
    /// Components whose code is in memory, ready to instantiate.
    pub loaded: u64,
    /// Compilations on this node since it started.
    pub compiled: u64,
    /// Components loaded from the on-disk cache of compiled code.
    pub loaded_from_cache: u64,
    /// Instances started, one per request that reached its function
    /// (requests refused before instantiation are not counted).
    pub invocations: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MemberStatus {
    pub node_id: String,
    pub name: String,
    pub region: String,
    pub mesh_addr: String,
    pub state: String,
    /// Last config version the member announced (0: none heard yet).
    pub config_version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("{len} bytes is implausibly large for a node status")]
    TooLarge { len: usize },
    #[error("not a node status: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Decodes the bytes of a status file.
pub fn decode(bytes: &[u8]) -> Result<NodeStatus, StatusError> {
    if bytes.len() > MAX_BYTES {
        return Err(StatusError::TooLarge { len: bytes.len() });
    }
    Ok(serde_json::from_slice(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_written_before_functions_were_reported_still_decodes() {
        let old = br#"{"node_id":"n1","name":"a","region":"fra","mesh_addr":"127.0.0.1:1",
            "software_version":"0.1.0","config_version":3,"coordinator_link":true,
            "bundles_present":1,"bundles_pending":0,"blob_bytes_from_coordinator":10,
            "blob_bytes_from_peers":0,"blobs_served_to_peers":0,"members":[],
            "updated_at_ms":1}"#;
        let s = decode(old).unwrap();
        assert_eq!(
            (s.config_version, s.functions),
            (3, FunctionsStatus::default())
        );
        assert!(
            decode(br#"{"node_id":"n1"}"#).is_err(),
            "a truncated status is an error"
        );
        assert!(matches!(
            decode(&vec![b' '; MAX_BYTES + 1]),
            Err(StatusError::TooLarge { .. })
        ));
    }
}
