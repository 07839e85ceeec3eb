//! Requests between peers on QUIC streams: serve our signed config and our
//! blobs; ask a peer for its config or a blob. A peer's answers are
//! checked like anything from the network: frames are bounded, configs
//! must verify (done by the caller), blobs must hash to what we asked for.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use protocol::frame_io::{read_frame, write_frame};
use protocol::mesh::{PeerInfo, PeerMessage, PeerRequest};
use protocol::wire::{ErrorCode, WireError, MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES};
use protocol::{BlobHash, SignedConfig};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use super::transport::{read_datagrams, Transport};
use crate::config_state::ConfigState;
use crate::fetch::Fetcher;
use crate::store::BlobBody;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts peer connections on the node's endpoint until shutdown.
pub async fn serve(
    endpoint: quinn::Endpoint,
    transport: Arc<Transport>,
    config: Arc<ConfigState>,
    fetcher: Arc<Fetcher>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => return },
            _ = shutdown.changed() => return,
        };
        let (transport, config, fetcher) = (transport.clone(), config.clone(), fetcher.clone());
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(%remote, error = %e, "mesh handshake failed");
                    return;
                }
            };
            tokio::spawn(read_datagrams(conn.clone(), transport.datagram_sink()));
            while let Ok((send, recv)) = conn.accept_bi().await {
                let (config, fetcher) = (config.clone(), fetcher.clone());
                tokio::spawn(async move {
                    if let Err(e) = handle(config, fetcher, send, recv).await {
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
    fetcher: Arc<Fetcher>,
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
        PeerRequest::GetConfig { have_version } => {
            // Periodic pulls mostly find the asker up to date: compare
            // versions before cloning the whole config.
            let newer = (config.version() > have_version)
                .then(|| config.signed())
                .flatten();
            let msg = match newer {
                Some(s) => PeerMessage::Config(Box::new(s)),
                None => PeerMessage::UpToDate {
                    version: config.version(),
                },
            };
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
                BlobBody::File { file, .. } => {
                    let mut file = tokio::fs::File::from_std(file);
                    let mut buf = vec![0u8; 256 * 1024];
                    loop {
                        let n = file.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        send.write_all(&buf[..n]).await?;
                    }
                }
            }
        }
    }
    send.finish()?;
    Ok(())
}

/// What a peer answered to a config request.
#[derive(Debug)]
pub enum PeerConfig {
    Newer(Box<SignedConfig>),
    /// It holds this version, not newer than ours.
    UpToDate(u64),
}

/// Asks `peer` for a config newer than `have`.
pub async fn get_config(
    transport: &Transport,
    peer: &PeerInfo,
    have: u64,
) -> anyhow::Result<PeerConfig> {
    let conn = transport
        .connection(&peer.node_id, peer.mesh_addr.parse()?)
        .await?;
    let ask = async {
        let (mut send, mut recv) = conn.open_bi().await?;
        write_frame(&mut send, &PeerRequest::GetConfig { have_version: have }).await?;
        send.finish()?;
        match read_frame::<PeerMessage, _>(&mut recv, MAX_FRAME_BYTES).await? {
            Some(PeerMessage::Config(c)) => Ok(PeerConfig::Newer(c)),
            Some(PeerMessage::UpToDate { version }) => Ok(PeerConfig::UpToDate(version)),
            Some(PeerMessage::Error(e)) => bail!("peer refused: {}", e.message),
            other => bail!("unexpected answer to a config request: {other:?}"),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, ask)
        .await
        .context("config request timed out")?
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
