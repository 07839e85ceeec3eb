//! Messages between edge nodes and the coordinator, and their framing.
//!
//! A frame is `[u32 BE length][u16 BE protocol version][bincode body]`, the
//! length counting version and body. Every frame is bounded; a frame from
//! another protocol version is refused with [`FrameError::UnsupportedVersion`]
//! before its body is looked at.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::hash::{BlobHash, BundleId};
use crate::mesh::{MemberView, PeerInfo};
use crate::signing::{BatchSignature, SignedBatch};

/// 2: signed configs, mesh addresses, seed peers and mesh views.
/// 3: manifests (inside edge configs) may be format 2, with routing rules.
/// 4: the config is a log of signed batches; manifests are fetched by id.
/// 5: variables and certificate keys are sealed to the cluster key.
/// 6: ACME entries (account thumbprint, TLS-ALPN-01 challenges, HTTPS
///    policies); an older edge could not decode them.
/// 7: analytics records (`EdgeRequest::Analytics`) and visitor salts in
///    the config.
/// 8: error reports, request logs, node resources.
/// 9: the list of coordinators in the config (`Key::Coordinators`): edges
///    fail over between them.
pub const PROTOCOL_VERSION: u16 = 9;
/// Largest frame either side accepts (a manifest of many files is the
/// largest; batches and snapshot pages are bounded far below it).
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;
/// Most batches in one message (catching up sends several messages).
pub const MAX_BATCHES_PER_MESSAGE: usize = 256;
/// Most entries in one snapshot page.
pub const MAX_SNAPSHOT_PAGE: usize = 2000;
/// Control messages (requests, reports) must be much smaller.
pub const MAX_CONTROL_FRAME_BYTES: usize = 64 * 1024;
/// The first frame of an edge's stream: a request, at most a log batch.
pub const MAX_REQUEST_FRAME_BYTES: usize = 1024 * 1024;
/// Most log records per batch; lines are cut at `MAX_LOG_LINE_BYTES`.
pub const MAX_LOG_BATCH: usize = 1000;
pub const MAX_LOG_LINE_BYTES: usize = 4096;
pub const HEADER_LEN: usize = 6;
/// The ALPN token of the edge ↔ coordinator QUIC protocol.
pub const ALPN: &[u8] = b"outpost/1";
/// The name the coordinator's QUIC certificate is issued for; edges verify it.
pub const COORDINATOR_NAME: &str = "coordinator.outpost.internal";
/// Node certificates are issued for `<node id>.` + this; peers dial it.
pub const NODE_NAME_SUFFIX: &str = "node.outpost.internal";

/// The QUIC application close code, and the reason, with which coordinators
/// and edges end the connections of a node removed from the cluster.
pub const REMOVED_NODE_CLOSE: (u32, &[u8]) = (2, b"this node was removed from the cluster");

/// The name node `node_id`'s certificate is issued for.
pub fn node_name(node_id: &str) -> String {
    format!("{node_id}.{NODE_NAME_SUFFIX}")
}

/// The bincode configuration every decoder uses: bounded, so a hostile
/// length prefix cannot make the decoder allocate more than a frame.
pub fn decode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
> {
    bincode::config::standard().with_limit::<MAX_FRAME_BYTES>()
}

/// The first frame on every stream an edge opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeRequest {
    /// Enrolment, on a connection without a client certificate.
    Join(JoinRequest),
    /// Open the config stream: the coordinator answers with a snapshot and
    /// then a delta per change; the edge reports on the same stream.
    Subscribe(Subscribe),
    /// Ask for one blob's bytes.
    GetBlob { hash: BlobHash },
    /// Ask for a bundle's manifest (its canonical bytes, which hash to the id).
    GetManifest { bundle: BundleId },
    /// Function stdout/stderr lines, shipped in batches; answered with `Ack`.
    Logs(Vec<LogRecord>),
    /// A new certificate for the node's new key (a PEM CSR), asked for over
    /// a connection made with the current one; answered with `Renewed`.
    Renew { csr_pem: String },
    /// The cluster key's generations (see [`crate::sealed`]); answered
    /// with `ClusterKeys`.
    ClusterKeys,
    /// One closed analytics record (the `analytics` crate's encoding, at
    /// most 512 KiB); answered with `Ack` once stored, also when the
    /// coordinator already had it (acknowledgements are idempotent by the
    /// node and the record's id).
    Analytics(Vec<u8>),
    /// Function failures folded per route and kind (at most
    /// [`crate::errors::MAX_REPORTS`]), for error tracking; answered with
    /// `Ack` once stored.
    Errors(Vec<crate::errors::ErrorReport>),
    /// Sampled request logs of projects with a request log drain (at most
    /// [`MAX_REQUEST_LOGS`] per message); answered with `Ack` once stored.
    RequestLogs(Vec<RequestLogRecord>),
}

/// Request log records in one `EdgeRequest::RequestLogs`.
pub const MAX_REQUEST_LOGS: usize = 1000;

/// One request an edge answered, for a project's request log drains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogRecord {
    pub ts_ms: i64,
    pub project: String,
    pub deployment: String,
    pub request_id: String,
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    pub host: String,
    /// Path and query, at most 1024 bytes.
    pub path: String,
    pub status: u16,
    pub duration_ms: u32,
    pub bytes: u64,
    /// At most 256 bytes each.
    pub user_agent: String,
    pub referer: String,
}

impl RequestLogRecord {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v, max) in [
            ("project", &self.project, 128),
            ("deployment", &self.deployment, 128),
            ("request_id", &self.request_id, 64),
            ("method", &self.method, 16),
            ("scheme", &self.scheme, 8),
            ("host", &self.host, 253),
            ("path", &self.path, 1024),
            ("user_agent", &self.user_agent, 256),
            ("referer", &self.referer, 256),
        ] {
            if v.len() > max {
                return Err(format!("{name} longer than {max} bytes"));
            }
        }
        if self.project.is_empty() || !(100..=599).contains(&self.status) {
            return Err("a request log needs a project and an HTTP status".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub ts_ms: i64,
    pub project: String,
    pub deployment: String,
    pub request_id: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub token: String,
    /// PEM certificate signing request for the node's own key.
    pub csr_pem: String,
    pub name: String,
    pub region: String,
    pub software_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscribe {
    /// The config version the edge already holds (0 for none): the
    /// coordinator sends the batches after it, or a snapshot when its log
    /// no longer reaches back that far.
    pub have_version: u64,
    pub software_version: String,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
    /// Where peers reach this node's QUIC endpoint (`ip:port`).
    pub mesh_addr: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub node_id: String,
    pub cert_pem: String,
    pub ca_pem: String,
    /// The name the coordinator's certificate is issued for.
    pub coordinator_name: String,
    /// Hex ed25519 public key every config is signed with.
    pub config_key: String,
}

/// Everything the coordinator sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordinatorMessage {
    Joined(Joined),
    /// The next batches after the edge's version, in order.
    Batches(Vec<SignedBatch>),
    /// A whole keyspace follows, because the log was compacted past the
    /// edge's version: pages of entries, then `SnapshotEnd`.
    SnapshotBegin {
        version: u64,
    },
    /// Entries as stored: encoded key, encoded entry.
    SnapshotPage(Vec<(String, Vec<u8>)>),
    /// The signature of the snapshot's version: its state checksum must be
    /// the sum of the pages.
    SnapshotEnd(BatchSignature),
    /// A manifest's canonical bytes.
    Manifest(Vec<u8>),
    /// Other nodes to join the mesh through (same region first).
    Peers(Vec<PeerInfo>),
    /// A blob follows as `size` raw bytes after this frame.
    Blob {
        size: u64,
    },
    /// The request was processed (log batches).
    Ack,
    Error(WireError),
    /// The node's new certificate (PEM), for the key of its `Renew`.
    Renewed {
        cert_pem: String,
    },
    /// Every generation of the cluster key entries may use, newest last
    /// (at most [`crate::sealed::MAX_KEYS_PER_MESSAGE`]).
    ClusterKeys(Vec<crate::sealed::KeyMaterial>),
}

/// What an edge tells the coordinator on its config stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EdgeReport {
    Status {
        /// Version received and stored.
        config_version: u64,
        /// Bundles fully present on disk / still being fetched.
        bundles_present: u32,
        bundles_pending: u32,
        /// This node's view of the mesh (bounded by `MAX_REPORTED_MEMBERS`).
        members: Vec<MemberView>,
        /// The host's memory and the data directory's disk.
        resources: crate::errors::Resources,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    UnsupportedVersion,
    BadRequest,
    Unauthorized,
    TokenInvalid,
    TokenUsed,
    TokenExpired,
    NotFound,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("peer speaks protocol version {got}; this build speaks version {PROTOCOL_VERSION}")]
    UnsupportedVersion { got: u16 },
    #[error("malformed frame: {0}")]
    Decode(String),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `msg` as one frame, refusing to build one the peer would reject.
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    encode_frame_with_version(msg, PROTOCOL_VERSION)
}

/// Like [`encode_frame`] with an explicit version; tests use it to play a
/// peer from another release.
pub fn encode_frame_with_version<T: Serialize>(
    msg: &T,
    version: u16,
) -> Result<Vec<u8>, FrameError> {
    let mut out = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(msg, &mut out, bincode::config::standard())
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    let len = out.len() - 4;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_BYTES,
        });
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    out[4..6].copy_from_slice(&version.to_be_bytes());
    Ok(out)
}

/// Reads a frame header; returns the body length still to read.
pub fn decode_header(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
    let version = u16::from_be_bytes(header[4..].try_into().unwrap());
    if version != PROTOCOL_VERSION {
        return Err(FrameError::UnsupportedVersion { got: version });
    }
    if len > max.min(MAX_FRAME_BYTES) {
        return Err(FrameError::TooLarge {
            len,
            max: max.min(MAX_FRAME_BYTES),
        });
    }
    if len < 2 {
        return Err(FrameError::Decode("frame shorter than its header".into()));
    }
    Ok(len - 2)
}

pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (msg, used) = bincode::serde::decode_from_slice(body, decode_config())
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(FrameError::Decode(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// Decodes one whole frame held in memory.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8], max: usize) -> Result<T, FrameError> {
    let header: [u8; HEADER_LEN] = frame
        .get(..HEADER_LEN)
        .ok_or(FrameError::Truncated)?
        .try_into()
        .unwrap();
    let len = decode_header(header, max)?;
    let body = &frame[HEADER_LEN..];
    if body.len() != len {
        return Err(FrameError::Truncated);
    }
    decode_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EdgeRequest {
        EdgeRequest::Subscribe(Subscribe {
            have_version: 7,
            software_version: "0.1.0".into(),
            http_addr: Some("127.0.0.1:8080".into()),
            https_addr: None,
            mesh_addr: Some("127.0.0.1:8702".into()),
        })
    }

    #[test]
    fn round_trip() {
        let msgs = vec![
            sample(),
            EdgeRequest::GetBlob {
                hash: BlobHash::of(b"x"),
            },
            EdgeRequest::Join(JoinRequest {
                token: "t".into(),
                csr_pem: "csr".into(),
                name: "n".into(),
                region: "fra".into(),
                software_version: "1".into(),
            }),
        ];
        for m in msgs {
            let f = encode_frame(&m).unwrap();
            assert_eq!(
                decode_frame::<EdgeRequest>(&f, MAX_CONTROL_FRAME_BYTES).unwrap(),
                m
            );
        }
    }

    #[test]
    fn bad_frames_are_refused() {
        let good = encode_frame(&sample()).unwrap();

        let other_version = encode_frame_with_version(&sample(), 99).unwrap();
        let err = decode_frame::<EdgeRequest>(&other_version, MAX_FRAME_BYTES).unwrap_err();
        assert!(matches!(err, FrameError::UnsupportedVersion { got: 99 }));
        assert!(err.to_string().contains("version 99"));

        let mut huge = good.clone();
        huge[..4].copy_from_slice(&(u32::MAX).to_be_bytes());
        assert!(matches!(
            decode_frame::<EdgeRequest>(&huge, MAX_FRAME_BYTES),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            decode_frame::<EdgeRequest>(&good, 4),
            Err(FrameError::TooLarge { .. })
        ));

        let truncated = &good[..good.len() - 1];
        assert!(matches!(
            decode_frame::<EdgeRequest>(truncated, MAX_FRAME_BYTES),
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            decode_frame::<EdgeRequest>(&good[..3], MAX_FRAME_BYTES),
            Err(FrameError::Truncated)
        ));

        // A valid header around garbage: the decoder fails, it does not panic
        // or allocate what the garbage claims.
        let mut garbage = vec![0u8; HEADER_LEN];
        garbage.extend_from_slice(&[2, 0xfc, 0xff, 0xff, 0xff, 0xff]);
        let len = (garbage.len() - 4) as u32;
        garbage[..4].copy_from_slice(&len.to_be_bytes());
        garbage[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
        assert!(matches!(
            decode_frame::<EdgeRequest>(&garbage, MAX_FRAME_BYTES),
            Err(FrameError::Decode(_))
        ));

        // A message of one type is not accepted as another.
        let wrong = encode_frame(&CoordinatorMessage::Blob { size: 3 }).unwrap();
        assert!(decode_frame::<EdgeReport>(&wrong, MAX_FRAME_BYTES).is_err());
    }
}
