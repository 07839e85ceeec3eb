//! foca (SWIM) driven on tokio: datagrams in, timers in deadline order,
//! commands from the node; datagrams out through the transport and a
//! membership view published on a `watch`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use foca::{AccumulatingRuntime, BroadcastHandler, Foca, Invalidates, OwnedNotification, Timer};
use protocol::mesh::{ConfigAnnounce, MemberState, PeerInfo, MAX_SWIM_PACKET};
use rand010::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::transport::{Datagram, Transport};
use super::{MemberEntry, Members};

/// A node as SWIM knows it. `incarnation` is the process start time, so a
/// restarted node carries a newer identity than the one the cluster
/// remembers and wins the conflict on its node id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwimId {
    pub node_id: String,
    pub name: String,
    pub region: String,
    pub addr: SocketAddr,
    pub incarnation: u64,
}

impl foca::Identity for SwimId {
    type Addr = String;

    fn renew(&self) -> Option<Self> {
        Some(SwimId {
            incarnation: self.incarnation + 1,
            ..self.clone()
        })
    }

    fn addr(&self) -> String {
        self.node_id.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

impl SwimId {
    pub fn info(&self) -> PeerInfo {
        PeerInfo {
            node_id: self.node_id.clone(),
            name: self.name.clone(),
            region: self.region.clone(),
            mesh_addr: self.addr.to_string(),
        }
    }

    /// A seed we know only by address: incarnation 0 loses to the real
    /// identity as soon as the peer answers.
    pub fn seed(p: &PeerInfo) -> Option<SwimId> {
        Some(SwimId {
            node_id: p.node_id.clone(),
            name: p.name.clone(),
            region: p.region.clone(),
            addr: p.mesh_addr.parse().ok()?,
            incarnation: 0,
        })
    }

    fn is_valid(&self) -> bool {
        self.info().is_valid()
    }
}

/// Whether a SWIM packet's stated sender is `node_id`, the node whose
/// certificate the connection it came on was made with.
pub fn sent_by(packet: &[u8], node_id: &str) -> bool {
    let mut codec = foca::PostcardCodec;
    match foca::Codec::<SwimId>::decode_header(&mut codec, packet) {
        Ok(h) => h.src.node_id == node_id,
        Err(_) => false,
    }
}

/// "node X holds config version N", deduplicated: a newer announcement of
/// the same node replaces an older one in foca's backlog.
#[derive(Debug)]
pub struct AnnounceKey {
    node_id: String,
    version: u64,
}

impl Invalidates for AnnounceKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.node_id == other.node_id && self.version >= other.version
    }
}

#[derive(Debug, thiserror::Error)]
#[error("bad config announcement: {0}")]
pub struct AnnounceError(String);

/// Most node ids remembered for announcement dedup before starting over.
const MAX_TRACKED_ANNOUNCERS: usize = 10_000;

pub struct Announces {
    seen: HashMap<String, u64>,
    /// New announcements go to the config puller; dropped when it lags
    /// (its periodic pull catches up).
    tx: mpsc::Sender<ConfigAnnounce>,
}

impl BroadcastHandler<SwimId> for Announces {
    type Key = AnnounceKey;
    type Error = AnnounceError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&SwimId>,
    ) -> Result<Option<AnnounceKey>, AnnounceError> {
        let a = ConfigAnnounce::decode(data).map_err(AnnounceError)?;
        if self.seen.len() >= MAX_TRACKED_ANNOUNCERS && !self.seen.contains_key(&a.node_id) {
            self.seen.clear();
        }
        let last = self.seen.entry(a.node_id.clone()).or_insert(0);
        if a.version <= *last {
            return Ok(None);
        }
        *last = a.version;
        let _ = self.tx.try_send(a.clone());
        Ok(Some(AnnounceKey {
            node_id: a.node_id,
            version: a.version,
        }))
    }
}

pub enum Command {
    /// Announce ourselves to these peers (seeds from the coordinator or
    /// members persisted before a restart).
    Join(Vec<PeerInfo>),
    /// We now hold this config version.
    Announce(u64),
    /// Leave the cluster, flush, then stop.
    Leave(oneshot::Sender<()>),
}

type Swim = Foca<SwimId, foca::PostcardCodec, rand010::rngs::StdRng, Announces>;

/// Probe period of our LAN profile: half of memberlist's LAN default, so
/// a dead node is declared down in about 3 s (suspicion lasts four probe
/// periods per order of magnitude of the cluster size). One ping per node
/// per period is a negligible load.
const PROBE_PERIOD: Duration = Duration::from_millis(500);
const PROBE_RTT: Duration = Duration::from_millis(250);

/// foca's LAN profile, faster probes, sized for `cluster_size`.
pub fn foca_config(cluster_size: usize) -> foca::Config {
    let n = NonZeroU32::new(cluster_size.clamp(1, u32::MAX as usize) as u32).unwrap();
    let mut c = foca::Config::new_lan(n);
    c.probe_period = PROBE_PERIOD;
    c.probe_rtt = PROBE_RTT;
    c.suspect_to_down_after = PROBE_PERIOD.mul_f64(4.0 * f64::max(1.0, f64::from(n.get()).log10()));
    c.max_packet_size = std::num::NonZeroUsize::new(MAX_SWIM_PACKET).unwrap();
    c
}

pub struct SwimLoop {
    pub me: SwimId,
    pub transport: Arc<Transport>,
    pub datagrams: mpsc::Receiver<Datagram>,
    pub commands: mpsc::Receiver<Command>,
    pub announces: mpsc::Sender<ConfigAnnounce>,
    pub members: watch::Sender<Members>,
    /// Called with the members worth persisting (alive or suspect).
    pub persist: super::PersistMembers,
}

impl SwimLoop {
    pub async fn run(mut self) {
        let rng = rand010::rngs::StdRng::seed_from_u64(rand::random());
        let handler = Announces {
            seen: HashMap::new(),
            tx: self.announces.clone(),
        };
        let mut foca: Swim = Foca::with_custom_broadcast(
            self.me.clone(),
            foca_config(1),
            rng,
            foca::PostcardCodec,
            handler,
        );
        let mut rt = AccumulatingRuntime::new();
        // Deadline, then submission order: timers fire in the order foca
        // asked for them, never two at once out of order.
        let mut timers: BTreeMap<(Instant, u64), Timer<SwimId>> = BTreeMap::new();
        let mut seq = 0u64;
        let mut cluster_size = 1usize;
        let mut refresh = tokio::time::interval(Duration::from_millis(500));
        // Everyone we were ever told about (bounded): foca forgets down
        // members, so healing a partition relies on re-announcing to them.
        let mut known: HashMap<String, SwimId> = HashMap::new();
        let mut rejoin = tokio::time::interval(REJOIN_EVERY);
        loop {
            let next = timers.keys().next().map(|k| k.0);
            // Suspect states come without a notification: the tick
            // republishes; other events publish only when foca notified.
            let mut ticked = false;
            tokio::select! {
                d = self.datagrams.recv() => {
                    let Some((from, d)) = d else { return };
                    // A member speaks only for itself: the packet's sender
                    // must be the node its connection's certificate names.
                    if !sent_by(&d, &from) {
                        tracing::debug!(peer = %from, "SWIM datagram claiming another sender refused");
                    } else if let Err(e) = foca.handle_data(&d, &mut rt) {
                        tracing::debug!(error = %e, "SWIM datagram refused");
                    }
                }
                _ = sleep_until(next), if next.is_some() => {
                    let now = Instant::now();
                    let due: Vec<(Instant, u64)> = timers.range(..=(now, u64::MAX)).map(|(k, _)| *k).collect();
                    for k in due {
                        if let Some(t) = timers.remove(&k) {
                            if let Err(e) = foca.handle_timer(t, &mut rt) {
                                tracing::debug!(error = %e, "SWIM timer");
                            }
                        }
                    }
                }
                c = self.commands.recv() => match c {
                    None => return,
                    Some(Command::Join(peers)) => {
                        for p in peers.iter().filter(|p| p.node_id != self.me.node_id) {
                            if let Some(id) = SwimId::seed(p).filter(SwimId::is_valid) {
                                let _ = foca.announce(id.clone(), &mut rt);
                                remember(&mut known, id);
                            }
                        }
                    }
                    Some(Command::Announce(version)) => {
                        let a = ConfigAnnounce { node_id: self.me.node_id.clone(), version };
                        if let Err(e) = foca.add_broadcast(&a.encode()) {
                            tracing::debug!(error = %e, "config announcement");
                        }
                    }
                    Some(Command::Leave(done)) => {
                        if let Err(e) = foca.leave_cluster(&mut rt) {
                            tracing::debug!(error = %e, "leaving the mesh");
                        }
                        self.flush(&mut rt, &mut timers, &mut seq);
                        // Let the goodbye datagrams leave before the endpoint closes.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        tracing::info!("left the mesh");
                        let _ = done.send(());
                        return;
                    }
                },
                _ = refresh.tick() => ticked = true,
                _ = rejoin.tick() => {
                    for m in foca.iter_members() {
                        remember(&mut known, m.id().clone());
                    }
                    let active: std::collections::HashSet<&str> =
                        foca.iter_members().map(|m| m.id().node_id.as_str()).collect();
                    let absent: Vec<SwimId> = known
                        .values()
                        .filter(|k| !active.contains(k.node_id.as_str()))
                        .filter(|k| !self.transport.is_revoked(&k.node_id))
                        .cloned()
                        .collect();
                    for id in absent {
                        let _ = foca.announce(id, &mut rt);
                    }
                }
            }
            let notified = self.flush(&mut rt, &mut timers, &mut seq);
            let active = foca.num_members() + 1;
            if active != cluster_size {
                cluster_size = active;
                // Suspicion timeouts and retransmissions scale with the cluster.
                if let Err(e) = foca.set_config(foca_config(cluster_size)) {
                    tracing::warn!(error = %e, "resizing SWIM config");
                }
            }
            if notified || ticked {
                self.publish(&foca, notified);
            }
        }
    }

    /// Drains foca's runtime: datagrams out, timers in, notifications logged.
    /// Returns whether membership changed.
    fn flush(
        &self,
        rt: &mut AccumulatingRuntime<SwimId>,
        timers: &mut BTreeMap<(Instant, u64), Timer<SwimId>>,
        seq: &mut u64,
    ) -> bool {
        while let Some((dst, data)) = rt.to_send() {
            self.transport.send_datagram(&dst.node_id, dst.addr, data);
        }
        let now = Instant::now();
        while let Some((after, timer)) = rt.to_schedule() {
            *seq += 1;
            timers.insert((now + after, *seq), timer);
        }
        let mut changed = false;
        while let Some(n) = rt.to_notify() {
            changed = true;
            match n {
                OwnedNotification::MemberUp(id) => {
                    tracing::info!(node = %id.node_id, name = %id.name, region = %id.region, addr = %id.addr, "mesh: member up")
                }
                OwnedNotification::MemberDown(id) => {
                    tracing::warn!(node = %id.node_id, name = %id.name, region = %id.region, "mesh: member down")
                }
                OwnedNotification::Rename(old, new) => {
                    tracing::info!(node = %new.node_id, old = old.incarnation, new = new.incarnation, "mesh: member restarted")
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::warn!(
                        incarnation = id.incarnation,
                        "mesh: we were declared down; rejoined"
                    )
                }
                OwnedNotification::Active => tracing::info!("mesh: joined"),
                OwnedNotification::Idle => tracing::warn!("mesh: no live peers"),
                OwnedNotification::Defunct => tracing::warn!("mesh: declared down"),
            }
        }
        changed
    }

    fn publish(&self, foca: &Swim, notified: bool) {
        let mut next: BTreeMap<String, MemberEntry> = BTreeMap::new();
        for m in foca.iter_membership_state() {
            let id = m.id();
            // A removed node is no member, whatever foca still believes.
            if id.node_id == self.me.node_id || self.transport.is_revoked(&id.node_id) {
                continue;
            }
            let state = match m.state() {
                foca::State::Alive => MemberState::Alive,
                foca::State::Suspect => MemberState::Suspect,
                foca::State::Down => MemberState::Down,
            };
            next.insert(
                id.node_id.clone(),
                MemberEntry {
                    info: id.info(),
                    state,
                },
            );
        }
        let changed = self.members.send_if_modified(|cur| {
            if *cur == next {
                false
            } else {
                *cur = next;
                true
            }
        });
        if changed || notified {
            let keep: Vec<PeerInfo> = self
                .members
                .borrow()
                .values()
                .filter(|m| m.state != MemberState::Down)
                .map(|m| m.info.clone())
                .collect();
            // With nobody left alive (or while leaving), the last peers
            // known stay the seeds a restart rejoins through.
            if !keep.is_empty() {
                (self.persist)(&keep);
            }
        }
    }
}

/// How often a node re-announces itself to known peers it does not see
/// as members (after a partition both sides have declared the other down
/// and foca has forgotten them).
const REJOIN_EVERY: Duration = Duration::from_secs(5);
/// Most peers remembered for rejoining.
const MAX_KNOWN: usize = 1024;

fn remember(known: &mut HashMap<String, SwimId>, id: SwimId) {
    if known.len() >= MAX_KNOWN && !known.contains_key(&id.node_id) {
        return;
    }
    match known.get(&id.node_id) {
        Some(k) if k.incarnation > id.incarnation => {}
        _ => {
            known.insert(id.node_id.clone(), id);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(inc: u64) -> SwimId {
        SwimId {
            node_id: "n1".into(),
            name: "edge".into(),
            region: "fra".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            incarnation: inc,
        }
    }

    #[test]
    fn a_packet_counts_only_from_the_node_it_names_as_sender() {
        use foca::Codec;
        let header = foca::Header {
            src: id(7),
            src_incarnation: 0,
            dst: SwimId {
                node_id: "n2".into(),
                ..id(1)
            },
            message: foca::Message::Ping(1),
        };
        let mut packet = Vec::new();
        foca::PostcardCodec
            .encode_header(&header, &mut packet)
            .unwrap();
        // (connection's node id, accepted)
        for (conn, ok) in [("n1", true), ("n2", false), ("n11", false), ("", false)] {
            assert_eq!(sent_by(&packet, conn), ok, "{conn}");
        }
        assert!(!sent_by(b"", "n1"));
        assert!(!sent_by(&[0xff; 40], "n1"));
    }

    #[test]
    fn config_scales_with_the_cluster_and_can_be_replaced() {
        // (cluster size, suspicion)
        let cases = [(1, 2000), (5, 2000), (10, 2000), (100, 4000)];
        for (n, ms) in cases {
            let c = foca_config(n);
            assert_eq!(
                c.suspect_to_down_after,
                Duration::from_millis(ms),
                "n = {n}"
            );
            assert_eq!(c.probe_period, PROBE_PERIOD);
        }
        let mut f: Swim = Foca::with_custom_broadcast(
            id(1),
            foca_config(1),
            rand010::rngs::StdRng::seed_from_u64(1),
            foca::PostcardCodec,
            Announces {
                seen: HashMap::new(),
                tx: mpsc::channel(1).0,
            },
        );
        // set_config refuses a different probe period: resizing must not change it.
        assert!(f.set_config(foca_config(50)).is_ok());
    }

    #[test]
    fn restarted_identity_wins_and_renew_wins() {
        let old = id(5);
        let new = id(9);
        assert_eq!(old.addr(), new.addr());
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        let renewed = old.renew().unwrap();
        assert!(renewed.win_addr_conflict(&old));
        assert!(SwimId::seed(&old.info()).unwrap().incarnation < old.incarnation);
    }

    #[test]
    fn announcements_dedupe_and_newer_invalidates_older() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut h = Announces {
            seen: HashMap::new(),
            tx,
        };
        let a = |v| ConfigAnnounce {
            node_id: "n2".into(),
            version: v,
        };
        assert!(h.receive_item(&a(3).encode(), None).unwrap().is_some());
        assert!(h.receive_item(&a(3).encode(), None).unwrap().is_none());
        assert!(h.receive_item(&a(2).encode(), None).unwrap().is_none());
        let k4 = h.receive_item(&a(4).encode(), None).unwrap().unwrap();
        assert!(h.receive_item(b"\xff\xff", None).is_err());
        assert_eq!(rx.try_recv().unwrap().version, 3);
        assert_eq!(rx.try_recv().unwrap().version, 4);
        let k3 = AnnounceKey {
            node_id: "n2".into(),
            version: 3,
        };
        assert!(k4.invalidates(&k3));
        assert!(!k3.invalidates(&k4));
    }
}
