//! QUIC between edge nodes: one connection per peer (dialled lazily,
//! re-dialled when it drops), SWIM datagrams through a small per-peer
//! queue so the SWIM loop never waits on a handshake, and every
//! connection's incoming datagrams funnelled to the SWIM loop.

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

pub struct Transport {
    endpoint: quinn::Endpoint,
    client: quinn::ClientConfig,
    conns: Mutex<HashMap<String, (SocketAddr, quinn::Connection)>>,
    outboxes: Mutex<HashMap<String, (SocketAddr, mpsc::Sender<Bytes>)>>,
    /// Every received SWIM datagram goes here.
    datagrams: mpsc::Sender<Bytes>,
}

impl Transport {
    pub fn new(
        endpoint: quinn::Endpoint,
        client: quinn::ClientConfig,
        datagrams: mpsc::Sender<Bytes>,
    ) -> Arc<Self> {
        Arc::new(Transport {
            endpoint,
            client,
            conns: Mutex::default(),
            outboxes: Mutex::default(),
            datagrams,
        })
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
    /// present the certificate issued for `node_id`.
    pub async fn connection(
        &self,
        node_id: &str,
        addr: SocketAddr,
    ) -> anyhow::Result<quinn::Connection> {
        if let Some((a, c)) = self.conns.lock().unwrap().get(node_id) {
            if *a == addr && c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let connecting = self.endpoint.connect_with(
            self.client.clone(),
            addr,
            &protocol::wire::node_name(node_id),
        )?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .context("mesh connect timed out")?
            .with_context(|| format!("connecting to peer {node_id} at {addr}"))?;
        self.conns
            .lock()
            .unwrap()
            .insert(node_id.to_string(), (addr, conn.clone()));
        tokio::spawn(read_datagrams(conn.clone(), self.datagrams.clone()));
        Ok(conn)
    }

    pub fn forget(&self, node_id: &str, conn: &quinn::Connection) {
        let mut conns = self.conns.lock().unwrap();
        if conns.get(node_id).map(|(_, c)| c.stable_id()) == Some(conn.stable_id()) {
            conns.remove(node_id);
        }
    }

    pub fn datagram_sink(&self) -> mpsc::Sender<Bytes> {
        self.datagrams.clone()
    }
}

/// Feeds a connection's datagrams to the SWIM loop until it closes.
pub async fn read_datagrams(conn: quinn::Connection, sink: mpsc::Sender<Bytes>) {
    while let Ok(d) = conn.read_datagram().await {
        if d.len() <= MAX_SWIM_PACKET {
            // Full queue: drop, as the network would.
            let _ = sink.try_send(d);
        }
    }
}
