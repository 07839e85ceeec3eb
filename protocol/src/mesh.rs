//! What edge nodes say to each other. SWIM itself (foca) travels as QUIC
//! datagrams in foca's own codec; this module holds the rest: the identity
//! a node gossips, the "config version N" announcement carried as a foca
//! custom broadcast, and the request/answer pairs on peer streams (config
//! relay and blob transfer), framed like every other message.

use serde::{Deserialize, Serialize};

use crate::hash::BlobHash;
use crate::hash::BundleId;
use crate::signing::SignedBatch;
use crate::wire::WireError;

/// ALPN of edge ↔ edge connections (distinct from the coordinator's).
pub const MESH_ALPN: &[u8] = b"outpost-mesh/1";
/// Largest SWIM datagram we build or accept: fits the 1200-byte minimum
/// QUIC MTU after QUIC's own overhead.
pub const MAX_SWIM_PACKET: usize = 1100;
/// Longest node id / name / region a mesh identity may carry.
pub const MAX_LABEL: usize = 63;
/// Peers the coordinator hands a node to start from.
pub const MAX_SEEDS: usize = 16;
/// Members a node reports to the coordinator (bounded control frame).
pub const MAX_REPORTED_MEMBERS: usize = 1000;

/// How a node is known in the mesh: the coordinator's enrolment record of
/// it plus the address peers reach it on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerInfo {
    pub node_id: String,
    pub name: String,
    pub region: String,
    /// `ip:port` of the node's QUIC endpoint.
    pub mesh_addr: String,
}

impl PeerInfo {
    /// Bounds every field; `mesh_addr` must be a socket address.
    pub fn is_valid(&self) -> bool {
        [&self.node_id, &self.name, &self.region]
            .iter()
            .all(|s| !s.is_empty() && s.len() <= MAX_LABEL)
            && self.mesh_addr.parse::<std::net::SocketAddr>().is_ok()
    }
}

/// A node's view of one member, as reported to the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Alive,
    Suspect,
    Down,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub node_id: String,
    pub state: MemberState,
}

/// The foca custom broadcast: "`node_id` holds signed config `version`".
/// A newer version replaces an older one in every node's backlog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigAnnounce {
    pub node_id: String,
    pub version: u64,
}

impl ConfigAnnounce {
    pub fn encode(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).expect("in-memory encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > 2 * MAX_LABEL {
            return Err(format!(
                "{} bytes is too long for an announcement",
                bytes.len()
            ));
        }
        let (a, used): (ConfigAnnounce, usize) =
            bincode::serde::decode_from_slice(bytes, crate::wire::decode_config())
                .map_err(|e| e.to_string())?;
        if used != bytes.len() {
            return Err("trailing bytes after an announcement".into());
        }
        if a.node_id.is_empty() || a.node_id.len() > MAX_LABEL {
            return Err("announcement carries an invalid node id".into());
        }
        Ok(a)
    }
}

/// The first frame on a stream one edge opens to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// "Send me the signed batches after `have_version`, if you have them."
    GetBatches { have_version: u64 },
    /// A bundle's manifest (checked against its id by the asker).
    GetManifest { bundle: BundleId },
    /// One blob; `size` from the asker's manifest. A peer that lacks it
    /// may fetch it from the coordinator first (it is the region's
    /// designated fetcher for this blob).
    GetBlob { hash: BlobHash, size: u64 },
    /// The cluster key's generations this peer holds (in memory): how a
    /// node that restarted while its coordinator is away opens its config.
    ClusterKeys,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// The batches after the asker's version, in order (at most
    /// `MAX_BATCHES_PER_MESSAGE`; ask again for more).
    Batches(Vec<SignedBatch>),
    /// The asker's version is not older than this peer's.
    UpToDate {
        version: u64,
    },
    /// This peer's log no longer reaches back to the asker's version.
    Gap {
        oldest: u64,
    },
    /// A manifest's canonical bytes.
    Manifest(Vec<u8>),
    /// `size` raw bytes follow.
    Blob {
        size: u64,
    },
    /// The cluster key's generations this peer holds.
    ClusterKeys(Vec<crate::sealed::KeyMaterial>),
    Error(WireError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_bad_ones_fail() {
        let a = ConfigAnnounce {
            node_id: "n1".into(),
            version: 42,
        };
        assert_eq!(ConfigAnnounce::decode(&a.encode()).unwrap(), a);
        let mut trailing = a.encode();
        trailing.push(0);
        let empty_id = ConfigAnnounce {
            node_id: String::new(),
            version: 1,
        }
        .encode();
        let long = ConfigAnnounce {
            node_id: "x".repeat(200),
            version: 1,
        }
        .encode();
        for bad in [vec![], vec![0xff; 3], trailing, empty_id, long] {
            assert!(ConfigAnnounce::decode(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn peer_info_validation_table() {
        let good = PeerInfo {
            node_id: "abc".into(),
            name: "edge-1".into(),
            region: "fra".into(),
            mesh_addr: "127.0.0.1:8702".into(),
        };
        assert!(good.is_valid());
        let cases: Vec<(&str, PeerInfo)> = vec![
            (
                "empty id",
                PeerInfo {
                    node_id: String::new(),
                    ..good.clone()
                },
            ),
            (
                "long name",
                PeerInfo {
                    name: "n".repeat(64),
                    ..good.clone()
                },
            ),
            (
                "no port",
                PeerInfo {
                    mesh_addr: "127.0.0.1".into(),
                    ..good.clone()
                },
            ),
            (
                "hostname",
                PeerInfo {
                    mesh_addr: "edge:8702".into(),
                    ..good.clone()
                },
            ),
        ];
        for (what, p) in cases {
            assert!(!p.is_valid(), "{what}");
        }
    }
}
