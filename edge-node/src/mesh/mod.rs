//! The edge mesh: SWIM membership (foca) over QUIC datagrams between edge
//! nodes, signed config relayed peer to peer, and blobs fetched from peers
//! (one designated fetcher per blob per region) before the coordinator.
//!
//! Everything here talks only to nodes holding a cluster-CA certificate;
//! nothing a peer says is trusted beyond that: configs must carry the
//! coordinator's signature and blobs must hash to what the manifest says.

pub mod owner;
pub mod peer;
pub mod swim;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::mesh::{ConfigAnnounce, MemberState, MemberView, PeerInfo, MAX_REPORTED_MEMBERS};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config_state::{ConfigState, Source};
use swim::{Command, SwimId, SwimLoop};
use transport::Transport;

/// How often a node asks a random peer for a newer config, in case it
/// missed an announcement (partition, restart).
const PULL_EVERY: Duration = Duration::from_secs(5);

/// Saves the members worth rejoining through after a restart.
pub type PersistMembers = Box<dyn Fn(&[PeerInfo]) + Send>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberEntry {
    #[serde(flatten)]
    pub info: PeerInfo,
    pub state: MemberState,
}

/// The membership as this node sees it (itself excluded), by node id.
pub type Members = BTreeMap<String, MemberEntry>;

pub struct Mesh {
    pub me: PeerInfo,
    commands: mpsc::Sender<Command>,
    /// Published by the SWIM loop; its subscribers (the coordinator link's
    /// reports, status.json) wake only on membership changes.
    members: watch::Sender<Members>,
    /// The config version each member last announced or answered with:
    /// shown by `edge-node status`, not worth waking anyone for.
    versions: std::sync::Mutex<BTreeMap<String, u64>>,
    pub transport: Arc<Transport>,
    /// Fetch blobs from peers first (off: coordinator only, for
    /// comparison benchmarks).
    pub peer_assist: bool,
}

pub struct MeshOptions {
    pub me: PeerInfo,
    pub incarnation: u64,
    pub endpoint: quinn::Endpoint,
    pub client: quinn::ClientConfig,
    pub peer_assist: bool,
    /// Called with members worth remembering across restarts.
    pub persist: PersistMembers,
}

impl Mesh {
    /// Starts the SWIM loop and the config puller.
    pub fn start(opts: MeshOptions, config: Arc<ConfigState>) -> anyhow::Result<Arc<Mesh>> {
        let addr = opts.me.mesh_addr.parse()?;
        let me_id = SwimId {
            node_id: opts.me.node_id.clone(),
            name: opts.me.name.clone(),
            region: opts.me.region.clone(),
            addr,
            incarnation: opts.incarnation,
        };
        let (dg_tx, dg_rx) = mpsc::channel(1024);
        let revoked = config.clone();
        let transport = Transport::new(
            opts.endpoint,
            opts.client,
            dg_tx,
            Arc::new(move |id: &str| revoked.is_revoked(id)),
        );
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (ann_tx, ann_rx) = mpsc::channel(256);
        let (members_tx, _) = watch::channel(Members::default());
        let swim = SwimLoop {
            me: me_id,
            transport: transport.clone(),
            datagrams: dg_rx,
            commands: cmd_rx,
            announces: ann_tx,
            members: members_tx.clone(),
            persist: opts.persist,
        };
        tokio::spawn(swim.run());
        let mesh = Arc::new(Mesh {
            me: opts.me,
            commands: cmd_tx,
            members: members_tx,
            versions: Default::default(),
            transport,
            peer_assist: opts.peer_assist,
        });
        tokio::spawn(mesh.clone().close_revoked(config.clone()));
        tokio::spawn(mesh.clone().pull_configs(config, ann_rx));
        Ok(mesh)
    }

    /// Ends the connections of every node a new revocation names, as soon
    /// as the config carrying it is applied.
    async fn close_revoked(self: Arc<Self>, config: Arc<ConfigState>) {
        let mut rx = config.subscribe();
        let mut last = rx.borrow().revoked.clone();
        while rx.changed().await.is_ok() {
            let now = rx.borrow_and_update().revoked.clone();
            if Arc::ptr_eq(&now, &last) {
                continue;
            }
            last = now;
            let closed = self.transport.close_revoked();
            if closed > 0 {
                tracing::warn!(
                    connections = closed,
                    "closed the mesh connections of removed nodes"
                );
            }
        }
    }

    pub fn add_seeds(&self, peers: Vec<PeerInfo>) {
        let peers: Vec<PeerInfo> = peers.into_iter().filter(|p| p.is_valid()).collect();
        if !peers.is_empty() {
            let _ = self.commands.try_send(Command::Join(peers));
        }
    }

    pub fn announce(&self, version: u64) {
        let _ = self.commands.try_send(Command::Announce(version));
    }

    pub fn members_changed(&self) -> watch::Receiver<Members> {
        self.members.subscribe()
    }

    pub fn snapshot(&self) -> Members {
        self.members.borrow().clone()
    }

    /// Last config version `node_id` was heard to hold (0: none yet).
    pub fn version_of(&self, node_id: &str) -> u64 {
        self.versions
            .lock()
            .unwrap()
            .get(node_id)
            .copied()
            .unwrap_or(0)
    }

    pub fn member_views(&self) -> Vec<MemberView> {
        self.members
            .borrow()
            .values()
            .take(MAX_REPORTED_MEMBERS)
            .map(|m| MemberView {
                node_id: m.info.node_id.clone(),
                state: m.state,
            })
            .collect()
    }

    /// Live peers, same region first.
    pub fn live_peers(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .members
            .borrow()
            .values()
            .filter(|m| m.state != MemberState::Down)
            .filter(|m| !self.transport.is_revoked(&m.info.node_id))
            .map(|m| m.info.clone())
            .collect();
        peers.sort_by_key(|p| p.region != self.me.region);
        peers
    }

    /// Leaves the cluster so peers mark this node down at once rather
    /// than after the suspicion timeout.
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
    }

    /// Records the config version a member holds (from its announcement
    /// or its answer to a pull).
    fn note_version(&self, node_id: &str, version: u64) {
        let mut versions = self.versions.lock().unwrap();
        let v = versions.entry(node_id.to_string()).or_insert(0);
        *v = (*v).max(version);
    }

    /// Pulls newer signed configs from peers: right after an announcement
    /// of a newer version, and every `PULL_EVERY` from a random peer.
    async fn pull_configs(
        self: Arc<Self>,
        config: Arc<ConfigState>,
        mut announces: mpsc::Receiver<ConfigAnnounce>,
    ) {
        let mut tick = tokio::time::interval(PULL_EVERY);
        let mut rx_config = config.subscribe();
        self.announce(config.version());
        loop {
            let target = tokio::select! {
                a = announces.recv() => {
                    let Some(a) = a else { return };
                    self.note_version(&a.node_id, a.version);
                    if a.node_id == self.me.node_id || a.version <= config.version() {
                        continue;
                    }
                    self.live_peers().into_iter().find(|p| p.node_id == a.node_id)
                }
                _ = tick.tick() => {
                    let peers = self.live_peers();
                    if peers.is_empty() { continue; }
                    let i = rand::random_range(0..peers.len());
                    Some(peers[i].clone())
                }
                changed = rx_config.changed() => {
                    if changed.is_err() { return; }
                    let v = rx_config.borrow_and_update().version;
                    self.announce(v);
                    continue;
                }
            };
            let Some(peer) = target else { continue };
            match peer::get_batches(&self.transport, &peer, config.version()).await {
                Ok(peer::PeerBatches::Newer(batches)) => {
                    let version = batches.last().map(|b| b.batch.version).unwrap_or(0);
                    // Refusals are logged by `accept` with the peer's id.
                    if config
                        .accept(batches, Source::Peer(peer.node_id.clone()))
                        .is_ok()
                    {
                        self.note_version(&peer.node_id, version);
                    }
                }
                Ok(peer::PeerBatches::UpToDate(v)) => self.note_version(&peer.node_id, v),
                Ok(peer::PeerBatches::Gap(oldest)) => {
                    // Too far behind for this peer's log: the coordinator
                    // sends a snapshot when the link is up.
                    tracing::debug!(peer = %peer.node_id, oldest, have = config.version(), "peer's log does not reach back to our version");
                }
                Err(e) => {
                    tracing::debug!(peer = %peer.node_id, error = %format!("{e:#}"), "config pull failed")
                }
            }
        }
    }
}
