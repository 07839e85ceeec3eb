//! Requests between peers on QUIC streams: serve our recent signed config
//! batches, manifests and blobs; ask a peer for the same. A peer's answers
//! are checked like anything from the network: frames are bounded, batches
//! must verify (done by the caller), manifests and blobs must hash to what
//! we asked for.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use protocol::frame_io::{read_frame, write_frame};
use protocol::mesh::{PeerInfo, PeerMessage, PeerRequest};
use protocol::wire::{
    ErrorCode, WireError, MAX_BATCHES_PER_MESSAGE, MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES,
};
use protocol::{BlobHash, BundleId, SignedBatch};
use tokio::sync::watch;

use super::transport::Transport;
use crate::config_state::ConfigState;
use crate::fetch::Fetcher;
use crate::keys::ClusterKeys;
use crate::store::index::Recent;
use crate::store::{BlobBody, Index};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts peer connections on the node's endpoint until shutdown.
pub async fn serve(
    endpoint: quinn::Endpoint,
    transport: Arc<Transport>,
    config: Arc<ConfigState>,
    index: Arc<Index>,
    fetcher: Arc<Fetcher>,
    keys: Arc<ClusterKeys>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => return },
            _ = shutdown.changed() => return,
        };
        let (transport, config, fetcher) = (transport.clone(), config.clone(), fetcher.clone());
        let (index, keys) = (index.clone(), keys.clone());
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "mesh handshake failed");
                    return;
                }
            };
            // Only a node the cluster still has gets answers or a hearing.
            // A later revocation closes the connection (`Mesh::close_revoked`).
            if transport.admit(&conn).is_none() {
                tracing::info!(%remote, "refused a mesh connection from a removed or unnamed node");
                return;
            }
            while let Ok((send, recv)) = conn.accept_bi().await {
                let (config, fetcher, index) = (config.clone(), fetcher.clone(), index.clone());
                let keys = keys.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(config, index, fetcher, &keys, send, recv).await {
                        tracing::debug!(%remote, error = %format!("{e:#}"), "peer request failed");
                    }
                });
            }
        });
    }
}

fn error(code: ErrorCode, message: impl Into<String>) -> PeerMessage {
    PeerMessage::Error(WireError {
        code,
        message: message.into(),
    })
}

async fn handle(
    config: Arc<ConfigState>,
    index: Arc<Index>,
    fetcher: Arc<Fetcher>,
    keys: &ClusterKeys,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) -> anyhow::Result<()> {
    let req = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_frame::<PeerRequest, _>(&mut recv, MAX_CONTROL_FRAME_BYTES),
    )
    .await
    {
        Err(_) => bail!("no request within {REQUEST_TIMEOUT:?}"),
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(r))) => r,
        Ok(Err(e)) => {
            write_frame(&mut send, &error(ErrorCode::BadRequest, e.to_string())).await?;
            send.finish()?;
            return Ok(());
        }
    };
    match req {
        PeerRequest::GetBatches { have_version } => {
            let mine = config.version();
            let msg = if have_version >= mine {
                PeerMessage::UpToDate { version: mine }
            } else {
                match config.batches_since(have_version, MAX_BATCHES_PER_MESSAGE)? {
                    Recent::Batches(b) if !b.is_empty() => PeerMessage::Batches(b),
                    Recent::Batches(_) => PeerMessage::UpToDate { version: mine },
                    Recent::Gap { oldest } => PeerMessage::Gap { oldest },
                }
            };
            write_frame(&mut send, &msg).await?;
        }
        PeerRequest::GetManifest { bundle } => {
            let msg = match index.complete_manifest(&bundle)? {
                Some(m) => PeerMessage::Manifest(m.canonical_bytes()),
                None => error(
                    ErrorCode::NotFound,
                    format!("bundle {bundle} is not complete here"),
                ),
            };
            write_frame(&mut send, &msg).await?;
        }
        // The asker was admitted (a node the cluster still has).
        PeerRequest::ClusterKeys => {
            let msg = PeerMessage::ClusterKeys(keys.current().materials());
            write_frame(&mut send, &msg).await?;
        }
        PeerRequest::GetBlob { hash, size } => {
            if let Err(e) = fetcher.ensure_for_peer(hash, size).await {
                write_frame(&mut send, &error(ErrorCode::NotFound, format!("{e:#}"))).await?;
                send.finish()?;
                return Ok(());
            }
            let blobs = fetcher.blobs.clone();
            let body = tokio::task::spawn_blocking(move || blobs.open_verified(&hash)).await??;
            write_frame(&mut send, &PeerMessage::Blob { size: body.len() }).await?;
            match body {
                BlobBody::Memory(b) => send.write_all(&b).await?,
                BlobBody::File { file, len } => {
                    let mut offset = 0;
                    while offset < len {
                        let n = (len - offset).min(256 * 1024) as usize;
                        let chunk = crate::store::read_at(&file, offset, n).await?;
                        send.write_all(&chunk).await?;
                        offset += n as u64;
                    }
                }
            }
        }
    }
    send.finish()?;
    Ok(())
}

/// What a peer answered to a request for batches.
#[derive(Debug)]
pub enum PeerBatches {
    Newer(Vec<SignedBatch>),
    /// It holds this version, not newer than ours.
    UpToDate(u64),
    /// Its kept batches begin after our version.
    Gap(u64),
}

/// Asks `peer` for the batches after `have`.
pub async fn get_batches(
    transport: &Transport,
    peer: &PeerInfo,
    have: u64,
) -> anyhow::Result<PeerBatches> {
    let conn = transport
        .connection(&peer.node_id, peer.mesh_addr.parse()?)
        .await?;
    let ask = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, &PeerRequest::GetBatches { have_version: have }).await?;
        send.finish()?;
        match read_frame::<PeerMessage, _>(&mut recv, MAX_FRAME_BYTES).await? {
            Some(PeerMessage::Batches(b)) if b.len() <= MAX_BATCHES_PER_MESSAGE => {
                Ok(PeerBatches::Newer(b))
            }
            Some(PeerMessage::UpToDate { version }) => Ok(PeerBatches::UpToDate(version)),
            Some(PeerMessage::Gap { oldest }) => Ok(PeerBatches::Gap(oldest)),
            Some(PeerMessage::Error(e)) => bail!("peer refused: {}", e.message),
            other => bail!("unexpected answer to a batches request: {other:?}"),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, ask)
        .await
        .context("batches request timed out")?
}

/// Asks `peer` for a manifest's bytes (the caller checks them).
pub async fn request_manifest(
    transport: &Transport,
    peer: &PeerInfo,
    bundle: BundleId,
) -> anyhow::Result<Vec<u8>> {
    let conn = transport
        .connection(&peer.node_id, peer.mesh_addr.parse()?)
        .await?;
    let ask = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, &PeerRequest::GetManifest { bundle }).await?;
        send.finish()?;
        match read_frame::<PeerMessage, _>(&mut recv, MAX_FRAME_BYTES).await? {
            Some(PeerMessage::Manifest(bytes)) => Ok(bytes),
            Some(PeerMessage::Error(e)) => bail!("peer {}: {}", peer.node_id, e.message),
            other => bail!("unexpected answer to a manifest request: {other:?}"),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, ask)
        .await
        .context("manifest request timed out")?
}

/// Asks `peer` for the cluster key generations it holds (checked by the
/// caller against the config before any is used).
pub async fn request_keys(
    transport: &Transport,
    peer: &PeerInfo,
) -> anyhow::Result<Vec<protocol::sealed::KeyMaterial>> {
    let conn = transport
        .connection(&peer.node_id, peer.mesh_addr.parse()?)
        .await?;
    let ask = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, &PeerRequest::ClusterKeys).await?;
        send.finish()?;
        match read_frame::<PeerMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES).await? {
            Some(PeerMessage::ClusterKeys(k)) => Ok(k),
            Some(PeerMessage::Error(e)) => bail!("peer {}: {}", peer.node_id, e.message),
            other => bail!("unexpected answer to a cluster key request: {other:?}"),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, ask)
        .await
        .context("cluster key request timed out")?
}

/// Opens a blob request to `peer`; returns the stream positioned at the
/// blob's bytes once the peer confirmed the size.
pub async fn request_blob(
    transport: &Transport,
    peer: &PeerInfo,
    hash: BlobHash,
    size: u64,
) -> anyhow::Result<quinn::RecvStream> {
    let conn = transport
        .connection(&peer.node_id, peer.mesh_addr.parse()?)
        .await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &PeerRequest::GetBlob { hash, size }).await?;
    send.finish()?;
    match read_frame::<PeerMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES).await? {
        Some(PeerMessage::Blob { size: s }) if s == size => Ok(recv),
        Some(PeerMessage::Blob { size: s }) => {
            bail!(
                "peer {} has blob {hash} as {s} bytes, the manifest says {size}",
                peer.node_id
            )
        }
        Some(PeerMessage::Error(e)) => bail!("peer {}: {}", peer.node_id, e.message),
        other => bail!("unexpected answer to a blob request: {other:?}"),
    }
}

/// Raw chunks of a blob body (for the blob store's verifying writer).
pub struct QuicChunks(pub quinn::RecvStream);

impl crate::store::blobs::AsyncChunkSource<quinn::ReadError> for QuicChunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, quinn::ReadError> {
        Ok(self.0.read_chunk(256 * 1024, true).await?.map(|c| c.bytes))
    }
}
