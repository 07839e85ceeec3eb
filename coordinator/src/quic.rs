//! The coordinator's QUIC endpoint for edge nodes (quinn + rustls, mTLS
//! against the cluster CA). One bidirectional stream per request:
//! `Join` (the only thing a connection without a client certificate may
//! do), `Subscribe` (config snapshot, then deltas; status reports back) and
//! `GetBlob`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol::frame_io::{read_frame, write_frame};
use protocol::token::JoinToken;
use protocol::wire::{
    CoordinatorMessage, EdgeReport, EdgeRequest, ErrorCode, FrameError, JoinRequest, Joined,
    Subscribe, WireError, ALPN, MAX_BATCHES_PER_MESSAGE, MAX_CONTROL_FRAME_BYTES, MAX_LOG_BATCH,
    MAX_LOG_LINE_BYTES, MAX_REQUEST_FRAME_BYTES, MAX_SNAPSHOT_PAGE, PROTOCOL_VERSION,
};
use protocol::BlobHash;
use quinn::{RecvStream, SendStream};
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;

use crate::blobs::{BlobStore, BlobStoreError};
use crate::ca::{ClusterCa, COORDINATOR_NAME};
use crate::edge_config::ConfigHub;
use crate::ids;
use crate::store::analytics::AnalyticsStore;
use crate::store::{
    FunctionLogRow, JoinTokenError, KeyspaceItem, Node, NodeContact, Since, Store, StoreError,
};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct QuicContext {
    pub store: Store,
    pub blobs: BlobStore,
    pub hub: Arc<ConfigHub>,
    pub ca: Arc<ClusterCa>,
    /// Blob bytes sent to edges since start: what peer-assisted fetch saves.
    pub blob_bytes_sent: AtomicU64,
    /// What each edge last reported of the mesh.
    pub mesh: crate::mesh_view::MeshViews,
    /// How long the node certificates this coordinator signs last.
    pub node_cert_secs: i64,
    /// Open connections by node id, so that removing a node ends them.
    pub links: std::sync::Mutex<std::collections::HashMap<String, Vec<quinn::Connection>>>,
}

impl QuicContext {
    /// Closes every connection of `node_id` (it was removed).
    pub fn close_node(&self, node_id: &str) {
        let conns = self
            .links
            .lock()
            .unwrap()
            .remove(node_id)
            .unwrap_or_default();
        let (code, reason) = protocol::wire::REMOVED_NODE_CLOSE;
        for c in conns {
            c.close(code.into(), reason);
        }
    }

    fn register(&self, node_id: &str, conn: &quinn::Connection) {
        let mut links = self.links.lock().unwrap();
        let list = links.entry(node_id.to_string()).or_default();
        list.retain(|c| c.close_reason().is_none());
        list.push(conn.clone());
    }

    fn unregister(&self, node_id: &str, conn: &quinn::Connection) {
        let mut links = self.links.lock().unwrap();
        if let Some(list) = links.get_mut(node_id) {
            list.retain(|c| c.stable_id() != conn.stable_id());
            if list.is_empty() {
                links.remove(node_id);
            }
        }
    }
}

/// The QUIC endpoint, presenting a certificate from the cluster CA that
/// lasts `cert_secs` and is reissued before it ends.
pub fn endpoint(
    addr: SocketAddr,
    ca: &Arc<ClusterCa>,
    cert_secs: i64,
) -> anyhow::Result<quinn::Endpoint> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = crate::quic_cert::RotatingCert::new(ca.clone(), cert_secs)?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.cert_der().to_vec()))?;
    // Unauthenticated clients are let in for `Join` only; every other
    // request checks the certificate's fingerprint against enrolled nodes.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(tls)?,
    ));
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(64u32.into())
        .max_idle_timeout(Some(Duration::from_secs(30).try_into()?));
    server.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::server(server, addr)
        .map_err(|e| anyhow::anyhow!("binding the QUIC endpoint on {addr}: {e}"))?;
    Ok(endpoint)
}

pub async fn serve(
    endpoint: quinn::Endpoint,
    ctx: Arc<QuicContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            i = endpoint.accept() => match i { Some(i) => i, None => break },
            _ = shutdown.changed() => break,
        };
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            if let Err(e) = handle_connection(ctx, incoming, shutdown).await {
                tracing::debug!(%remote, error = %e, "edge connection ended");
            }
        });
    }
    endpoint.close(0u32.into(), b"coordinator shutting down");
}

/// What the client presented: `None` without a certificate, else the node
/// id it was issued for (rustls has verified the chain to the cluster CA),
/// `Some(None)` for a CA certificate that names no node.
fn peer_node_id(conn: &quinn::Connection) -> Option<Option<String>> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    Some(certs.first().and_then(|c| protocol::node_cert::node_id(c)))
}

async fn handle_connection(
    ctx: Arc<QuicContext>,
    incoming: quinn::Incoming,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let conn = incoming.await?;
    // A node is whoever its certificate names, as long as it is enrolled:
    // renewed certificates keep the id, and a removed node has no row.
    let node = match peer_node_id(&conn) {
        None => None,
        Some(None) => {
            conn.close(1u32.into(), b"this certificate names no node");
            return Ok(());
        }
        Some(Some(id)) => match ctx.store.node(&id).await? {
            Some(n) => Some(Arc::new(n)),
            None => {
                conn.close(1u32.into(), b"this node is not enrolled here (removed?)");
                return Ok(());
            }
        },
    };
    if let Some(n) = &node {
        ctx.register(&n.id, &conn);
    }
    let served = serve_streams(&ctx, &conn, node.clone(), shutdown).await;
    if let Some(n) = &node {
        ctx.unregister(&n.id, &conn);
    }
    served
}

async fn serve_streams(
    ctx: &Arc<QuicContext>,
    conn: &quinn::Connection,
    node: Option<Arc<Node>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let (send, recv) = conn.accept_bi().await?;
        let ctx = ctx.clone();
        let node = node.clone();
        let shutdown = shutdown.clone();
        let remote = conn.remote_address();
        tokio::spawn(async move {
            if let Err(e) = handle_stream(ctx, node, remote, send, recv, shutdown).await {
                tracing::debug!(%remote, error = %e, "edge stream failed");
            }
        });
    }
}

fn wire_error(code: ErrorCode, message: impl Into<String>) -> CoordinatorMessage {
    CoordinatorMessage::Error(WireError {
        code,
        message: message.into(),
    })
}

async fn reply(send: &mut SendStream, msg: &CoordinatorMessage) -> anyhow::Result<()> {
    write_frame(send, msg).await?;
    send.finish()?;
    Ok(())
}

async fn handle_stream(
    ctx: Arc<QuicContext>,
    node: Option<Arc<Node>>,
    remote: SocketAddr,
    mut send: SendStream,
    mut recv: RecvStream,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let req = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        read_frame::<EdgeRequest, _>(&mut recv, MAX_REQUEST_FRAME_BYTES),
    )
    .await
    {
        Err(_) => {
            return reply(
                &mut send,
                &wire_error(ErrorCode::BadRequest, "no request within 10 s"),
            )
            .await
        }
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(req))) => req,
        Ok(Err(FrameError::UnsupportedVersion { got })) => {
            tracing::warn!(%remote, got, "edge speaks an unsupported protocol version");
            let msg = format!(
                "protocol version {got} is not supported; this coordinator speaks version {PROTOCOL_VERSION}: upgrade the edge node or the coordinator"
            );
            return reply(&mut send, &wire_error(ErrorCode::UnsupportedVersion, msg)).await;
        }
        Ok(Err(e)) => {
            return reply(&mut send, &wire_error(ErrorCode::BadRequest, e.to_string())).await
        }
    };
    match (req, node) {
        (EdgeRequest::Join(j), None) => {
            let msg = match join(&ctx, j).await {
                Ok(joined) => CoordinatorMessage::Joined(joined),
                Err(e) => {
                    tracing::warn!(%remote, error = %e.message, "join refused");
                    CoordinatorMessage::Error(e)
                }
            };
            reply(&mut send, &msg).await
        }
        (EdgeRequest::Join(_), Some(n)) => {
            reply(
                &mut send,
                &wire_error(
                    ErrorCode::BadRequest,
                    format!("already enrolled as node {}", n.id),
                ),
            )
            .await
        }
        (_, None) => {
            reply(
                &mut send,
                &wire_error(
                    ErrorCode::Unauthorized,
                    "a node certificate is required: run `edge-node join` first",
                ),
            )
            .await
        }
        (EdgeRequest::Subscribe(s), Some(n)) => subscribe(ctx, n, s, send, recv, shutdown).await,
        (EdgeRequest::GetBlob { hash }, Some(_)) => send_blob(&ctx, hash, send).await,
        (EdgeRequest::GetManifest { bundle }, Some(_)) => {
            let msg = match ctx.store.bundle_manifest(&bundle.to_hex()).await {
                Ok(Some(bytes)) => CoordinatorMessage::Manifest(bytes),
                Ok(None) => wire_error(ErrorCode::NotFound, format!("bundle {bundle} not found")),
                Err(e) => {
                    tracing::error!(error = %e, "reading a manifest");
                    wire_error(ErrorCode::Internal, "reading the manifest failed")
                }
            };
            reply(&mut send, &msg).await
        }
        (EdgeRequest::Renew { csr_pem }, Some(n)) => {
            let msg = match renew(&ctx, &n, &csr_pem).await {
                Ok(cert_pem) => CoordinatorMessage::Renewed { cert_pem },
                Err(e) => {
                    tracing::warn!(node = %n.id, error = %e.message, "certificate renewal refused");
                    CoordinatorMessage::Error(e)
                }
            };
            reply(&mut send, &msg).await
        }
        // Only over a link authenticated as a node the database still has
        // (a removed node is `None` above): the keys never rest on disk.
        (EdgeRequest::ClusterKeys, Some(n)) => {
            let msg = match ctx.store.cluster_keys().await {
                Ok(keys) => CoordinatorMessage::ClusterKeys(keys),
                Err(e) => {
                    tracing::error!(node = %n.id, error = %e, "reading the cluster keys");
                    wire_error(ErrorCode::Internal, "reading the cluster keys failed")
                }
            };
            reply(&mut send, &msg).await
        }
        (EdgeRequest::Logs(records), Some(n)) => {
            let msg = match store_logs(&ctx, &n, records).await {
                Ok(()) => CoordinatorMessage::Ack,
                Err(e) => e,
            };
            reply(&mut send, &msg).await
        }
        (EdgeRequest::RequestLogs(records), Some(n)) => {
            let msg = match store_request_logs(&ctx, &n, records).await {
                Ok(()) => CoordinatorMessage::Ack,
                Err(e) => e,
            };
            reply(&mut send, &msg).await
        }
        (EdgeRequest::Errors(reports), Some(n)) => {
            let msg = match store_errors(&ctx, &n, reports).await {
                Ok(()) => CoordinatorMessage::Ack,
                Err(e) => e,
            };
            reply(&mut send, &msg).await
        }
        (EdgeRequest::Analytics(bytes), Some(n)) => {
            let msg = match store_analytics(&ctx, &n, &bytes).await {
                Ok(()) => CoordinatorMessage::Ack,
                Err(e) => e,
            };
            reply(&mut send, &msg).await
        }
    }
}

/// Counts one analytics record; acknowledged also when it was counted
/// before (the edge deletes it from its spool on the acknowledgement).
async fn store_analytics(
    ctx: &QuicContext,
    node: &Node,
    bytes: &[u8],
) -> Result<(), CoordinatorMessage> {
    let record = analytics::Record::decode(bytes)
        .and_then(|r| r.check_time(crate::store::now_ms() / 1000).map(|()| r))
        .map_err(|e| {
            tracing::warn!(node = %node.id, error = %e, "refused an analytics record");
            wire_error(ErrorCode::BadRequest, e.to_string())
        })?;
    match ctx
        .store
        .ingest_analytics(&node.id, &node.region, &record)
        .await
    {
        Ok(crate::store::analytics::Ingested::Duplicate) => {
            tracing::debug!(node = %node.id, start = record.id.start, "analytics record already counted");
            Ok(())
        }
        Ok(crate::store::analytics::Ingested::Counted { unknown, .. }) => {
            if unknown > 0 {
                tracing::debug!(node = %node.id, unknown, "analytics for projects that no longer exist skipped");
            }
            Ok(())
        }
        Err(e) => {
            tracing::warn!(node = %node.id, error = %e, "storing an analytics record");
            Err(wire_error(
                ErrorCode::Internal,
                "could not store the record; send it again".to_string(),
            ))
        }
    }
}

/// Signs a new certificate for `node` (same id, new key) and records it.
async fn renew(ctx: &QuicContext, node: &Node, csr_pem: &str) -> Result<String, WireError> {
    let bad = |code, m: String| WireError { code, message: m };
    let (cert_pem, not_after) = ctx
        .ca
        .sign_node_csr(csr_pem, &node.id, ctx.node_cert_secs)
        .map_err(|e| bad(ErrorCode::BadRequest, e.to_string()))?;
    let der = crate::ca::pem_to_der(&cert_pem).ok_or_else(|| {
        bad(
            ErrorCode::Internal,
            "issued certificate is unreadable".into(),
        )
    })?;
    let fingerprint = blake3::hash(&der).to_hex().to_string();
    match ctx
        .store
        .record_node_cert(&node.id, &fingerprint, not_after)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(bad(ErrorCode::Unauthorized, "this node was removed".into())),
        Err(e) => {
            tracing::error!(error = %e, "recording a renewed certificate");
            return Err(bad(
                ErrorCode::Internal,
                "renewal failed on the coordinator".into(),
            ));
        }
    }
    tracing::info!(node = %node.id, not_after, "node certificate renewed");
    Ok(cert_pem)
}

async fn join(ctx: &QuicContext, j: JoinRequest) -> Result<Joined, WireError> {
    let bad = |code, m: &str| WireError {
        code,
        message: m.to_string(),
    };
    if !protocol::host::is_valid_label(&j.name) {
        return Err(bad(
            ErrorCode::BadRequest,
            "node name must be a DNS label ([a-z0-9-], at most 63)",
        ));
    }
    if !protocol::host::is_valid_label(&j.region) {
        return Err(bad(
            ErrorCode::BadRequest,
            "region must be a DNS label ([a-z0-9-], at most 63)",
        ));
    }
    let token =
        JoinToken::parse(&j.token).map_err(|e| bad(ErrorCode::TokenInvalid, &e.to_string()))?;
    if token.ca_fingerprint != ctx.ca.fingerprint() {
        return Err(bad(
            ErrorCode::TokenInvalid,
            "this token was created by another cluster",
        ));
    }
    let node_id = ids::new_id(10);
    let (cert_pem, not_after) = ctx
        .ca
        .sign_node_csr(&j.csr_pem, &node_id, ctx.node_cert_secs)
        .map_err(|e| bad(ErrorCode::BadRequest, &e.to_string()))?;
    let der = crate::ca::pem_to_der(&cert_pem)
        .ok_or_else(|| bad(ErrorCode::Internal, "issued certificate is unreadable"))?;
    let node = Node {
        id: node_id.clone(),
        name: j.name,
        region: j.region,
        cert_fingerprint: blake3::hash(&der).to_hex().to_string(),
        software_version: j.software_version.chars().take(64).collect(),
        config_version: 0,
        bundles_present: 0,
        bundles_pending: 0,
        http_addr: None,
        https_addr: None,
        mesh_addr: None,
        created_at: 0,
        last_seen: None,
        cert_not_after: Some(not_after),
        memory_used: 0,
        memory_total: 0,
        disk_used: 0,
        disk_total: 0,
    };
    match ctx
        .store
        .enroll_node(&ids::token_hash(&token.secret), &node)
        .await
    {
        Ok(()) => {}
        Err(StoreError::JoinToken(e)) => {
            let code = match e {
                JoinTokenError::Invalid | JoinTokenError::RegionMismatch => ErrorCode::TokenInvalid,
                JoinTokenError::Used => ErrorCode::TokenUsed,
                JoinTokenError::Expired => ErrorCode::TokenExpired,
            };
            return Err(bad(code, &format!("join token rejected: {e}")));
        }
        Err(e) => {
            tracing::error!(error = %e, "enrolling a node failed");
            return Err(bad(
                ErrorCode::Internal,
                "enrolment failed on the coordinator",
            ));
        }
    }
    tracing::info!(node = %node_id, name = %node.name, region = %node.region, "node enrolled");
    Ok(Joined {
        node_id,
        cert_pem,
        ca_pem: ctx.ca.cert_pem().to_string(),
        coordinator_name: COORDINATOR_NAME.to_string(),
        config_key: ctx.hub.config_key(),
    })
}

fn bounded_addr(a: Option<String>) -> Option<String> {
    a.filter(|s| s.len() <= 100 && s.parse::<SocketAddr>().is_ok())
}

async fn subscribe(
    ctx: Arc<QuicContext>,
    node: Arc<Node>,
    s: Subscribe,
    mut send: SendStream,
    mut recv: RecvStream,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut contact = NodeContact {
        software_version: s.software_version.chars().take(64).collect(),
        config_version: s.have_version as i64,
        bundles_present: 0,
        bundles_pending: 0,
        http_addr: bounded_addr(s.http_addr),
        https_addr: bounded_addr(s.https_addr),
        mesh_addr: bounded_addr(s.mesh_addr),
        resources: Default::default(),
    };
    if !ctx.store.record_node_contact(&node.id, &contact).await? {
        ctx.close_node(&node.id);
        return Ok(());
    }
    tracing::info!(node = %node.id, name = %node.name, have = s.have_version, "edge subscribed");

    let mut rx = ctx.hub.subscribe();
    rx.borrow_and_update();
    let mut resets = ctx.hub.resets();
    let peers = seed_peers(&ctx.store.list_nodes().await?, &node);
    write_frame(&mut send, &CoordinatorMessage::Peers(peers)).await?;
    let mut sent = catch_up(&ctx, &mut send, s.have_version, true).await?;

    // Reports are read on their own task: reading a frame is not
    // cancellation-safe, so it must not sit in the select below.
    let (report_tx, mut reports) = tokio::sync::mpsc::channel::<EdgeReport>(4);
    tokio::spawn(async move {
        while let Ok(Some(r)) =
            read_frame::<EdgeReport, _>(&mut recv, MAX_CONTROL_FRAME_BYTES).await
        {
            if report_tx.send(r).await.is_err() {
                break;
            }
        }
    });

    loop {
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() { break; }
                rx.borrow_and_update();
                if ctx.hub.resets() != resets {
                    // The database was restored: what this edge holds is
                    // of another history, whatever its version.
                    resets = ctx.hub.resets();
                    sent = send_snapshot(&ctx, &mut send).await?;
                }
                sent = catch_up(&ctx, &mut send, sent, false).await?;
            }
            report = reports.recv() => {
                let Some(EdgeReport::Status { config_version, bundles_present, bundles_pending, mut members, resources }) = report else { break };
                contact.config_version = config_version as i64;
                contact.resources = resources;
                contact.bundles_present = bundles_present as i64;
                contact.bundles_pending = bundles_pending as i64;
                if !ctx.store.record_node_contact(&node.id, &contact).await? {
                    // Removed through another coordinator: end the link
                    // here too (within a report interval).
                    tracing::info!(node = %node.id, "node removed; closing its link");
                    ctx.close_node(&node.id);
                    break;
                }
                members.truncate(protocol::mesh::MAX_REPORTED_MEMBERS);
                ctx.mesh.record(&node.id, crate::store::now_ms(), members);
            }
            _ = shutdown.changed() => break,
        }
    }
    let _ = send.finish();
    Ok(())
}

/// An edge this far behind gets a snapshot rather than every batch.
const SNAPSHOT_WHEN_BEHIND: u64 = 1000;

/// Sends what an edge at `have` lacks up to the head: the batches after
/// it, or a snapshot when it is far behind, when the log no longer reaches
/// back to it, or when it is ahead of this database (restored from a
/// backup: the database is the truth). Returns the version it reached.
///
/// `claimed`: `have` is what the edge said it holds. Otherwise it is what
/// this stream sent, which may be past the hub's head (the log is read
/// from the database, where batches committed a moment before the hub
/// heard of them already are): that is caught up, not "ahead".
async fn catch_up(
    ctx: &QuicContext,
    send: &mut SendStream,
    mut have: u64,
    mut claimed: bool,
) -> anyhow::Result<u64> {
    loop {
        let head = ctx.hub.version();
        if have == head || (have > head && !claimed) {
            return Ok(have);
        }
        // Ahead of the hub is not ahead of the database (a batch relayed by
        // a peer before the hub heard of it); only ahead of the database is.
        if have > head && have <= ctx.store.config_version().await?.max(0) as u64 {
            return Ok(have);
        }
        if have > head && claimed {
            // Ahead of the database: it was restored from a backup. The
            // edge gets a snapshot of a new epoch, so that nothing of the
            // history it holds can come back through a peer.
            ctx.store.supersede(have).await?;
            ctx.hub.refresh().await?;
        }
        let far = have == 0 || have > head || head - have > SNAPSHOT_WHEN_BEHIND;
        claimed = false;
        let since = if far {
            Since::Compacted
        } else {
            ctx.hub.since(have, MAX_BATCHES_PER_MESSAGE).await?
        };
        match since {
            Since::Batches(bs) if bs.is_empty() => return Ok(have),
            Since::Batches(bs) => {
                have = bs.last().map(|b| b.batch.version).unwrap_or(have);
                write_frame(send, &CoordinatorMessage::Batches(bs)).await?;
            }
            Since::Compacted => have = send_snapshot(ctx, send).await?,
        }
    }
}

/// The whole keyspace, read in one transaction and streamed in pages
/// (memory bounded by a page), then the signature of its version.
async fn send_snapshot(ctx: &QuicContext, send: &mut SendStream) -> anyhow::Result<u64> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let store = ctx.store.clone();
    let reader = tokio::spawn(async move { store.stream_keyspace(MAX_SNAPSHOT_PAGE, tx).await });
    let mut version = 0;
    while let Some(item) = rx.recv().await {
        let msg = match item {
            KeyspaceItem::Begin(v) => {
                version = v;
                CoordinatorMessage::SnapshotBegin { version: v }
            }
            KeyspaceItem::Page(p) => CoordinatorMessage::SnapshotPage(p),
            KeyspaceItem::End(sig) => CoordinatorMessage::SnapshotEnd(sig),
        };
        write_frame(send, &msg).await?;
    }
    reader.await??;
    tracing::debug!(version, "snapshot sent");
    Ok(version)
}

/// Nodes a subscriber can join the mesh through: those with a mesh
/// address, same region first, most recently seen first.
pub fn seed_peers(nodes: &[Node], me: &Node) -> Vec<protocol::mesh::PeerInfo> {
    let mut candidates: Vec<&Node> = nodes
        .iter()
        .filter(|n| n.id != me.id && n.mesh_addr.is_some())
        .collect();
    candidates.sort_by_key(|n| (n.region != me.region, std::cmp::Reverse(n.last_seen)));
    candidates
        .into_iter()
        .map(|n| protocol::mesh::PeerInfo {
            node_id: n.id.clone(),
            name: n.name.clone(),
            region: n.region.clone(),
            mesh_addr: n.mesh_addr.clone().unwrap_or_default(),
        })
        .filter(|p| p.is_valid())
        .take(protocol::mesh::MAX_SEEDS)
        .collect()
}

/// Files an edge's function failures as error events. A message with a
/// report out of bounds is refused whole; reports of projects this
/// database does not know (deleted meanwhile) are dropped.
async fn store_errors(
    ctx: &QuicContext,
    node: &Node,
    reports: Vec<protocol::errors::ErrorReport>,
) -> Result<(), CoordinatorMessage> {
    if reports.len() > protocol::errors::MAX_REPORTS {
        return Err(wire_error(
            ErrorCode::BadRequest,
            format!(
                "at most {} error reports per message",
                protocol::errors::MAX_REPORTS
            ),
        ));
    }
    if let Some(e) = reports.iter().find_map(|r| r.validate().err()) {
        return Err(wire_error(
            ErrorCode::BadRequest,
            format!("error report: {e}"),
        ));
    }
    let internal = |e: crate::store::StoreError| {
        tracing::error!(node = %node.id, error = %e, "storing error reports");
        wire_error(ErrorCode::Internal, "storing error reports failed")
    };
    let mut projects: std::collections::HashMap<String, Option<String>> = Default::default();
    for r in &reports {
        let id = match projects.get(&r.project) {
            Some(id) => id.clone(),
            None => {
                let id = ctx
                    .store
                    .project_id_named(&r.project)
                    .await
                    .map_err(internal)?;
                projects.insert(r.project.clone(), id.clone());
                id
            }
        };
        let Some(project_id) = id else { continue };
        let event = crate::errors::from_report(project_id, &node.id, r);
        ctx.store
            .record_error(&crate::ids::new_id(16), &event)
            .await
            .map_err(internal)?;
    }
    Ok(())
}

async fn store_logs(
    ctx: &QuicContext,
    node: &Node,
    records: Vec<protocol::wire::LogRecord>,
) -> Result<(), CoordinatorMessage> {
    if records.len() > MAX_LOG_BATCH {
        return Err(wire_error(
            ErrorCode::BadRequest,
            format!("at most {MAX_LOG_BATCH} log records per batch"),
        ));
    }
    let cut = |s: String, max: usize| -> String {
        if s.len() <= max {
            return s;
        }
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_string()
    };
    let rows: Vec<FunctionLogRow> = records
        .into_iter()
        .map(|r| FunctionLogRow {
            id: 0,
            project: cut(r.project, 64),
            deployment: cut(r.deployment, 64),
            node: node.id.clone(),
            request_id: cut(r.request_id, 64),
            ts: r.ts_ms,
            stream: if r.stream == "stderr" {
                "stderr".into()
            } else {
                "stdout".into()
            },
            line: cut(r.line, MAX_LOG_LINE_BYTES),
        })
        .collect();
    let internal = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "storing function logs failed");
        wire_error(ErrorCode::Internal, "storing logs failed")
    };
    ctx.store
        .insert_function_logs(&node.id, &rows)
        .await
        .map_err(internal)?;
    // And for the project's drains, if it has any taking function logs.
    let mut by_project: std::collections::BTreeMap<&str, Vec<&FunctionLogRow>> = Default::default();
    for r in &rows {
        by_project.entry(r.project.as_str()).or_default().push(r);
    }
    for (name, rows) in by_project {
        let Some(pid) = ctx.store.project_id_named(name).await.map_err(internal)? else {
            continue;
        };
        let lines: Vec<_> = rows
            .iter()
            .map(|r| {
                crate::drains::format::function_line(
                    &pid,
                    &r.deployment,
                    &r.request_id,
                    r.ts,
                    &r.stream,
                    &r.line,
                )
            })
            .collect();
        ctx.store
            .append_drain_lines(&pid, &lines)
            .await
            .map_err(internal)?;
    }
    Ok(())
}

/// Sampled request logs, for the projects' request log drains.
async fn store_request_logs(
    ctx: &QuicContext,
    node: &Node,
    records: Vec<protocol::wire::RequestLogRecord>,
) -> Result<(), CoordinatorMessage> {
    if records.len() > protocol::wire::MAX_REQUEST_LOGS {
        return Err(wire_error(
            ErrorCode::BadRequest,
            format!(
                "at most {} request logs per message",
                protocol::wire::MAX_REQUEST_LOGS
            ),
        ));
    }
    if let Some(e) = records.iter().find_map(|r| r.validate().err()) {
        return Err(wire_error(
            ErrorCode::BadRequest,
            format!("request log: {e}"),
        ));
    }
    let internal = |e: crate::store::StoreError| {
        tracing::error!(node = %node.id, error = %e, "storing request logs");
        wire_error(ErrorCode::Internal, "storing request logs failed")
    };
    let mut by_project: std::collections::BTreeMap<&str, Vec<&protocol::wire::RequestLogRecord>> =
        Default::default();
    for r in &records {
        by_project.entry(r.project.as_str()).or_default().push(r);
    }
    for (name, recs) in by_project {
        let Some(pid) = ctx.store.project_id_named(name).await.map_err(internal)? else {
            continue;
        };
        let lines: Vec<_> = recs
            .iter()
            .map(|r| crate::drains::format::request_line(&pid, &node.region, r))
            .collect();
        ctx.store
            .append_drain_lines(&pid, &lines)
            .await
            .map_err(internal)?;
    }
    Ok(())
}

async fn send_blob(ctx: &QuicContext, hash: BlobHash, mut send: SendStream) -> anyhow::Result<()> {
    use futures::StreamExt;
    match ctx.blobs.get(&hash).await {
        Ok((size, mut stream)) => {
            write_frame(&mut send, &CoordinatorMessage::Blob { size }).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        // Dropping the stream would finish it: the edge
                        // must see it cut off instead.
                        let _ = send.reset(quinn::VarInt::from_u32(1));
                        return Err(e.into());
                    }
                };
                send.write_all(&chunk).await?;
                ctx.blob_bytes_sent
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            send.finish()?;
            Ok(())
        }
        Err(BlobStoreError::NotFound(_)) => {
            reply(
                &mut send,
                &wire_error(ErrorCode::NotFound, format!("blob {hash} not found")),
            )
            .await
        }
        Err(e) => reply(&mut send, &wire_error(ErrorCode::Internal, e.to_string())).await,
    }
}
