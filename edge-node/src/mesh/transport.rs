//! QUIC between edge nodes: one connection per peer (dialled lazily,
//! re-dialled when it drops), SWIM datagrams through a small per-peer
//! queue so the SWIM loop never waits on a handshake, and every
//! connection's incoming datagrams funnelled to the SWIM loop, each
//! tagged with the node id the connection's certificate was issued for.
//!
//! Architecture invariant: every mesh connection, dialled or accepted, is
//! to a node whose certificate names it and whose id is not revoked;
//! [`Transport::close_revoked`] ends the ones a new revocation hits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use protocol::mesh::MAX_SWIM_PACKET;
use tokio::sync::mpsc;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Datagrams queued per peer while its connection is being set up.
const OUTBOX_DEPTH: usize = 64;

/// A SWIM datagram and the node id of the connection it came on.
pub type Datagram = (String, Bytes);

/// Whether a node id was removed from the cluster.
pub type IsRevoked = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct Transport {
    endpoint: quinn::Endpoint,
    /// Replaced when the node renews its certificate.
    client: Mutex<quinn::ClientConfig>,
    conns: Mutex<HashMap<String, (SocketAddr, quinn::Connection)>>,
    /// Connections peers opened to us, by their node id.
    accepted: Mutex<Vec<(String, quinn::Connection)>>,
    outboxes: Mutex<HashMap<String, (SocketAddr, mpsc::Sender<Bytes>)>>,
    /// Every received SWIM datagram goes here.
    datagrams: mpsc::Sender<Datagram>,
    revoked: IsRevoked,
}

impl Transport {
    pub fn new(
        endpoint: quinn::Endpoint,
        client: quinn::ClientConfig,
        datagrams: mpsc::Sender<Datagram>,
        revoked: IsRevoked,
    ) -> Arc<Self> {
        Arc::new(Transport {
            endpoint,
            client: Mutex::new(client),
            conns: Mutex::default(),
            accepted: Mutex::default(),
            outboxes: Mutex::default(),
            datagrams,
            revoked,
        })
    }

    /// Dials with this client config from now on (a renewed certificate).
    pub fn set_client(&self, client: quinn::ClientConfig) {
        *self.client.lock().unwrap() = client;
    }

    pub fn is_revoked(&self, node_id: &str) -> bool {
        (self.revoked)(node_id)
    }

    /// Takes a connection a peer opened: `Some(node id)` if its certificate
    /// names a node that is not revoked (it is then tracked, and its
    /// datagrams flow to SWIM), else it is closed and `None`.
    pub fn admit(&self, conn: &quinn::Connection) -> Option<String> {
        let id = peer_node_id(conn);
        match id {
            Some(id) if !self.is_revoked(&id) => {
                let mut accepted = self.accepted.lock().unwrap();
                accepted.retain(|(_, c)| c.close_reason().is_none());
                accepted.push((id.clone(), conn.clone()));
                drop(accepted);
                tokio::spawn(read_datagrams(
                    conn.clone(),
                    id.clone(),
                    self.datagrams.clone(),
                ));
                Some(id)
            }
            Some(_) => {
                close_removed(conn);
                None
            }
            None => {
                conn.close(
                    protocol::wire::REMOVED_NODE_CLOSE.0.into(),
                    b"this certificate names no node",
                );
                None
            }
        }
    }

    /// Ends every connection, dialled or accepted, of a revoked node.
    /// Returns how many it closed.
    pub fn close_revoked(&self) -> usize {
        let mut closed = 0;
        let mut close_if_revoked = |id: &str, c: &quinn::Connection| {
            let revoked = self.is_revoked(id);
            if revoked {
                close_removed(c);
                closed += 1;
            }
            revoked
        };
        self.conns
            .lock()
            .unwrap()
            .retain(|id, (_, c)| !close_if_revoked(id, c));
        self.accepted
            .lock()
            .unwrap()
            .retain(|(id, c)| !close_if_revoked(id, c) && c.close_reason().is_none());
        closed
    }

    /// Queues a SWIM datagram; dropped if the peer's queue is full (SWIM
    /// tolerates loss, and a blocked loop would be worse).
    pub fn send_datagram(self: &Arc<Self>, node_id: &str, addr: SocketAddr, data: Bytes) {
        let mut outboxes = self.outboxes.lock().unwrap();
        let fresh = match outboxes.get(node_id) {
            Some((a, tx)) => *a != addr || tx.is_closed(),
            None => true,
        };
        if fresh {
            let (tx, rx) = mpsc::channel(OUTBOX_DEPTH);
            tokio::spawn(self.clone().drain_outbox(node_id.to_string(), addr, rx));
            outboxes.insert(node_id.to_string(), (addr, tx));
        }
        let _ = outboxes[node_id].1.try_send(data);
    }

    async fn drain_outbox(
        self: Arc<Self>,
        node_id: String,
        addr: SocketAddr,
        mut rx: mpsc::Receiver<Bytes>,
    ) {
        while let Some(data) = rx.recv().await {
            let conn = match self.connection(&node_id, addr).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(peer = %node_id, %addr, error = %format!("{e:#}"), "mesh peer unreachable");
                    // Drop what queued up meanwhile: it is stale by now.
                    while rx.try_recv().is_ok() {}
                    continue;
                }
            };
            if let Err(e) = conn.send_datagram(data) {
                tracing::debug!(peer = %node_id, error = %e, "SWIM datagram not sent");
                self.forget(&node_id, &conn);
            }
        }
    }

    /// The live connection to a peer, dialling it if needed. The peer must
    /// present the certificate issued for `node_id`, which must not be
    /// revoked.
    pub async fn connection(
        &self,
        node_id: &str,
        addr: SocketAddr,
    ) -> anyhow::Result<quinn::Connection> {
        if self.is_revoked(node_id) {
            anyhow::bail!("node {node_id} was removed from the cluster");
        }
        if let Some((a, c)) = self.conns.lock().unwrap().get(node_id) {
            if *a == addr && c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let client = self.client.lock().unwrap().clone();
        let connecting =
            self.endpoint
                .connect_with(client, addr, &protocol::wire::node_name(node_id))?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .context("mesh connect timed out")?
            .with_context(|| format!("connecting to peer {node_id} at {addr}"))?;
        self.conns
            .lock()
            .unwrap()
            .insert(node_id.to_string(), (addr, conn.clone()));
        tokio::spawn(read_datagrams(
            conn.clone(),
            node_id.to_string(),
            self.datagrams.clone(),
        ));
        Ok(conn)
    }

    pub fn forget(&self, node_id: &str, conn: &quinn::Connection) {
        let mut conns = self.conns.lock().unwrap();
        if conns.get(node_id).map(|(_, c)| c.stable_id()) == Some(conn.stable_id()) {
            conns.remove(node_id);
        }
    }
}

/// Ends `conn`: its node was removed from the cluster.
fn close_removed(conn: &quinn::Connection) {
    let (code, reason) = protocol::wire::REMOVED_NODE_CLOSE;
    conn.close(code.into(), reason);
}

/// The node id the peer's certificate names (its chain to the cluster CA
/// was verified in the handshake).
pub fn peer_node_id(conn: &quinn::Connection) -> Option<String> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    certs.first().and_then(|c| protocol::node_cert::node_id(c))
}

/// Feeds a connection's datagrams, tagged with its node id, to the SWIM
/// loop until it closes.
async fn read_datagrams(conn: quinn::Connection, node_id: String, sink: mpsc::Sender<Datagram>) {
    while let Ok(d) = conn.read_datagram().await {
        if d.len() <= MAX_SWIM_PACKET {
            // Full queue: drop, as the network would.
            let _ = sink.try_send((node_id.clone(), d));
        }
    }
}
