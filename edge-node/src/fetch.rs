//! Getting a missing blob onto this node: from the region's designated
//! peer first, then the coordinator, then any live peer. Every byte is
//! verified by the blob store before it becomes visible, so where it came
//! from does not matter for correctness, only for the coordinator's load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::mesh::PeerInfo;
use protocol::wire::{CoordinatorMessage, EdgeRequest, MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES};
use protocol::{BlobHash, BundleId, Manifest};
use tokio::sync::watch;

use crate::mesh::peer::{request_blob, request_manifest, QuicChunks};
use crate::mesh::{owner::owner, Mesh};
use crate::store::BlobStore;

/// Peers tried after the coordinator failed or is unreachable.
const MAX_FALLBACK_PEERS: usize = 4;

/// Counts of where blob bytes came from (shown by `edge-node status`).
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct FetchStats {
    pub from_coordinator_bytes: u64,
    pub from_peers_bytes: u64,
    pub served_to_peers: u64,
    /// Blobs (not bytes) from each source, for the metrics.
    pub from_coordinator_blobs: u64,
    pub from_peers_blobs: u64,
}

pub struct Fetcher {
    pub blobs: Arc<BlobStore>,
    pub conn: watch::Receiver<Option<quinn::Connection>>,
    pub mesh: Option<Arc<Mesh>>,
    /// One coordinator fetch per blob at a time: a peer asking for a blob
    /// we are fetching waits for that fetch instead of starting another.
    inflight: Mutex<HashMap<BlobHash, Arc<tokio::sync::Mutex<()>>>>,
    stats: Mutex<FetchStats>,
}

/// Generous time for `size` bytes: a slow peer is abandoned for the next
/// source rather than waited on forever.
fn deadline_for(size: u64) -> Duration {
    Duration::from_secs(10) + Duration::from_millis(size / 1024)
}

impl Fetcher {
    pub fn new(
        blobs: Arc<BlobStore>,
        conn: watch::Receiver<Option<quinn::Connection>>,
        mesh: Option<Arc<Mesh>>,
    ) -> Self {
        Fetcher {
            blobs,
            conn,
            mesh,
            inflight: Mutex::default(),
            stats: Mutex::default(),
        }
    }

    pub fn stats(&self) -> FetchStats {
        *self.stats.lock().unwrap()
    }

    /// The sync path: makes `hash` present locally from wherever it can.
    pub async fn fetch(&self, hash: BlobHash, size: u64) -> anyhow::Result<()> {
        if self.blobs.contains(&hash) {
            return Ok(());
        }
        let mut last_err = None;
        if let Some(owner) = self.designated_peer(&hash) {
            match self.fetch_from_peer(&owner, hash, size).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::debug!(peer = %owner.node_id, blob = %hash.short(), error = %format!("{e:#}"), "designated peer failed; trying the coordinator");
                    last_err = Some(e);
                }
            }
        }
        if self.conn.borrow().is_some() {
            match self.fetch_from_coordinator(hash, size).await {
                Ok(()) => return Ok(()),
                Err(e) => last_err = Some(e),
            }
        }
        // No coordinator: any live peer may have it.
        if let Some(mesh) = &self.mesh {
            for peer in mesh.live_peers().into_iter().take(MAX_FALLBACK_PEERS) {
                match self.fetch_from_peer(&peer, hash, size).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last_err = Some(e),
                }
            }
        }
        Err(last_err.unwrap_or_else(|| {
            anyhow::anyhow!("no coordinator connection and no peer has blob {hash}")
        }))
    }

    /// A bundle's manifest, from the coordinator or (without it) a live
    /// peer that has the bundle. Whoever sends it, it is used only if its
    /// bytes hash to the id asked for.
    pub async fn manifest(&self, bundle: BundleId) -> anyhow::Result<Manifest> {
        let mut last_err = None;
        let conn = self.conn.borrow().clone();
        if let Some(conn) = conn {
            match tokio::time::timeout(Duration::from_secs(10), coordinator_manifest(&conn, bundle))
                .await
            {
                Ok(Ok(bytes)) => match checked_manifest(bundle, &bytes) {
                    Ok(m) => return Ok(m),
                    Err(e) => last_err = Some(e),
                },
                Ok(Err(e)) => last_err = Some(e),
                Err(_) => {
                    last_err = Some(anyhow::anyhow!(
                        "the coordinator did not send manifest {bundle} in time"
                    ))
                }
            }
        }
        if let Some(mesh) = &self.mesh {
            for peer in mesh.live_peers().into_iter().take(MAX_FALLBACK_PEERS) {
                match request_manifest(&mesh.transport, &peer, bundle).await {
                    Ok(bytes) => match checked_manifest(bundle, &bytes) {
                        Ok(m) => return Ok(m),
                        Err(e) => {
                            tracing::warn!(peer = %peer.node_id, bundle = %bundle.short(), error = %e, "manifest from peer rejected");
                            last_err = Some(e)
                        }
                    },
                    Err(e) => last_err = Some(e),
                }
            }
        }
        Err(last_err.unwrap_or_else(|| {
            anyhow::anyhow!("no coordinator connection and no peer to fetch manifest {bundle} from")
        }))
    }

    /// A peer asks us for `hash`: serve it from disk, or fetch it from
    /// the coordinator once (we are this blob's designated fetcher). Never
    /// asks other peers, so requests cannot loop.
    pub async fn ensure_for_peer(&self, hash: BlobHash, size: u64) -> anyhow::Result<()> {
        if self.blobs.contains(&hash) {
            self.stats.lock().unwrap().served_to_peers += 1;
            return Ok(());
        }
        if self.conn.borrow().is_none() {
            bail!("blob {hash} is not here and this node has no coordinator link");
        }
        self.fetch_from_coordinator(hash, size).await?;
        self.stats.lock().unwrap().served_to_peers += 1;
        Ok(())
    }

    /// The region's designated fetcher for `hash`, unless it is us (or
    /// peer assist is off, or we are alone in the region).
    fn designated_peer(&self, hash: &BlobHash) -> Option<PeerInfo> {
        let mesh = self.mesh.as_ref().filter(|m| m.peer_assist)?;
        let region: Vec<PeerInfo> = mesh
            .live_peers()
            .into_iter()
            .filter(|p| p.region == mesh.me.region)
            .collect();
        let ids = region
            .iter()
            .map(|p| p.node_id.as_str())
            .chain([mesh.me.node_id.as_str()]);
        let chosen = owner(hash, ids)?;
        region.iter().find(|p| p.node_id == chosen).cloned()
    }

    async fn fetch_from_peer(
        &self,
        peer: &PeerInfo,
        hash: BlobHash,
        size: u64,
    ) -> anyhow::Result<()> {
        let mesh = self.mesh.as_ref().context("no mesh")?;
        let work = async {
            let recv = request_blob(&mesh.transport, peer, hash, size).await?;
            self.blobs
                .write(&hash, size, QuicChunks(recv))
                .await
                .map_err(|e| {
                    tracing::warn!(peer = %peer.node_id, blob = %hash, error = %e, "blob from peer rejected");
                    anyhow::anyhow!("blob {hash} from peer {}: {e}", peer.node_id)
                })
        };
        tokio::time::timeout(deadline_for(size), work)
            .await
            .context("peer blob transfer timed out")??;
        {
            let mut s = self.stats.lock().unwrap();
            s.from_peers_bytes += size;
            s.from_peers_blobs += 1;
        }
        Ok(())
    }

    async fn fetch_from_coordinator(&self, hash: BlobHash, size: u64) -> anyhow::Result<()> {
        let gate = self
            .inflight
            .lock()
            .unwrap()
            .entry(hash)
            .or_default()
            .clone();
        let _held = gate.lock().await;
        // `Ok(true)`: downloaded now; `Ok(false)`: the fetch we waited on got it.
        let result = async {
            if self.blobs.contains(&hash) {
                return Ok(false);
            }
            let conn = self
                .conn
                .borrow()
                .clone()
                .context("no connection to the coordinator")?;
            tokio::time::timeout(deadline_for(size), self.coordinator_blob(&conn, hash, size))
                .await
                .context("blob transfer from the coordinator timed out")??;
            anyhow::Ok(true)
        }
        .await;
        self.inflight.lock().unwrap().remove(&hash);
        if let Ok(true) = result {
            let mut s = self.stats.lock().unwrap();
            s.from_coordinator_bytes += size;
            s.from_coordinator_blobs += 1;
        }
        result.map(|_| ())
    }

    async fn coordinator_blob(
        &self,
        conn: &quinn::Connection,
        hash: BlobHash,
        size: u64,
    ) -> anyhow::Result<()> {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, &EdgeRequest::GetBlob { hash }).await?;
        send.finish()?;
        match read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES).await? {
            Some(CoordinatorMessage::Blob { size: announced }) if announced == size => {}
            Some(CoordinatorMessage::Blob { size: announced }) => {
                bail!(
                    "blob {hash} is {announced} bytes at the coordinator, the manifest says {size}"
                )
            }
            Some(CoordinatorMessage::Error(e)) => bail!("fetching blob {hash}: {}", e.message),
            other => bail!("unexpected answer to a blob request: {other:?}"),
        }
        self.blobs
            .write(&hash, size, QuicChunks(recv))
            .await
            .with_context(|| format!("storing blob {hash}"))?;
        Ok(())
    }
}

async fn coordinator_manifest(
    conn: &quinn::Connection,
    bundle: BundleId,
) -> anyhow::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &EdgeRequest::GetManifest { bundle }).await?;
    send.finish()?;
    match read_frame::<CoordinatorMessage, _>(&mut recv, MAX_FRAME_BYTES).await? {
        Some(CoordinatorMessage::Manifest(bytes)) => Ok(bytes),
        Some(CoordinatorMessage::Error(e)) => bail!("fetching manifest {bundle}: {}", e.message),
        other => bail!("unexpected answer to a manifest request: {other:?}"),
    }
}

/// The manifest in `bytes` if they are the bundle's: their blake3 is its id.
pub fn checked_manifest(bundle: BundleId, bytes: &[u8]) -> anyhow::Result<Manifest> {
    if BlobHash::of(bytes) != bundle {
        bail!("the bytes sent as manifest {bundle} do not hash to it");
    }
    let m = Manifest::from_canonical_bytes(bytes, MAX_FRAME_BYTES)
        .map_err(|e| anyhow::anyhow!("manifest {bundle} does not decode: {e}"))?;
    m.validate(&Default::default())
        .map_err(|e| anyhow::anyhow!("manifest {bundle} is invalid: {e}"))?;
    Ok(m)
}
