//! The node's edge config and the one door every change comes through,
//! whether from the coordinator's stream or relayed by a peer: a batch is
//! applied only if it is the next version, its signature verifies, and the
//! keyspace it produces has the state hash the coordinator signed; it is
//! persisted (atomically) before anything acts on it. Snapshots come in
//! through the same door, staged aside and switched to only once their
//! sum matches the signed state.
//!
//! What the rest of the node needs to hold in memory is kept here too,
//! and it is bounded by what the node serves eagerly, not by the history:
//! the production and branch hosts, the projects' runtimes, the
//! certificates. A deployment's own host is looked up per key
//! ([`ConfigState::host`]) when a request asks for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use protocol::acme::{HostChallenge, HttpsPolicy};
use protocol::config::{ConfigError, RequestLogPolicy};
use protocol::signing::{BatchSignature, ConfigVerifier, SignatureError, SignedBatch};
use protocol::{BundleId, CertEntry, Entry, HostTarget, Key, ProjectRuntime, StateHash};
use tokio::sync::{broadcast, watch};

use crate::store::index::{Head, Recent};
use crate::store::Index;

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("rejected config version {version} from {source_name}: {error}")]
    Signature {
        version: u64,
        source_name: String,
        error: SignatureError,
    },
    #[error("config batch {got} from {source_name} does not follow version {have}")]
    Gap {
        have: u64,
        got: u64,
        source_name: String,
    },
    #[error("snapshot from {source_name} is malformed: {message}")]
    Snapshot {
        source_name: String,
        message: String,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Index(#[from] crate::store::index::IndexError),
}

/// Where a change came from, for logs (and trust: only the coordinator
/// may move a node back to an older version).
#[derive(Debug, Clone)]
pub enum Source {
    Coordinator,
    Peer(String),
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::Coordinator => "the coordinator".into(),
            Source::Peer(id) => format!("peer {id}"),
        }
    }
}

/// What the node serves eagerly, as the coordinator wants it.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub version: u64,
    /// Production and branch hosts: their bundles are synced before they switch.
    pub eager: Arc<BTreeMap<String, HostTarget>>,
    pub projects: Arc<BTreeMap<String, Arc<ProjectRuntime>>>,
    pub certs: Arc<BTreeMap<String, CertEntry>>,
    /// Node ids removed from the cluster: refused on every mesh connection.
    pub revoked: Arc<BTreeSet<String>>,
    /// The ACME account's key thumbprint: HTTP-01 challenges are answered
    /// from it (see [`protocol::acme`]).
    pub acme: Option<Arc<str>>,
    /// Hosts with an ACME challenge under way.
    pub challenges: Arc<BTreeMap<String, HostChallenge>>,
    /// Hosts with a publicly trusted certificate: their HTTPS policy.
    pub https: Arc<BTreeMap<String, HttpsPolicy>>,
    /// Visitor salts by UTC day, for analytics.
    pub salts: Arc<BTreeMap<i64, [u8; 32]>>,
    /// Projects with a request log drain: how many of their requests are
    /// sent as request logs (only valid policies are kept).
    pub request_logs: Arc<BTreeMap<String, RequestLogPolicy>>,
    /// Every coordinator's QUIC address (`host:port`), in the order they
    /// registered: where the link fails over to. Empty when the config
    /// has no valid list (an older coordinator): the node then only knows
    /// the address it joined through.
    pub coordinators: Arc<Vec<String>>,
}

/// Keys a change touched; `None`: everything may have changed (a snapshot).
pub type Touched = Option<Arc<Vec<Key>>>;

pub struct ConfigState {
    index: Arc<Index>,
    verifier: ConfigVerifier,
    head: Mutex<Head>,
    desired: watch::Sender<Arc<Desired>>,
    touched: broadcast::Sender<Touched>,
    /// Serialises accepts: coordinator and peers may race.
    accept_lock: Mutex<()>,
}

fn decode_entry(key: &str, bytes: &[u8]) -> Result<Entry, AcceptError> {
    Entry::decode(bytes)
        .map_err(|e| AcceptError::Config(ConfigError::BadEntry(format!("{key}: {e}"))))
}

impl ConfigState {
    /// Opens the stored keyspace. If its entries do not sum to the state
    /// its head was signed with (a damaged store), it is discarded: the
    /// next link asks for a snapshot, and the active map serves meanwhile.
    pub fn new(index: Arc<Index>, verifier: ConfigVerifier) -> Result<Self, AcceptError> {
        let mut head = index.head()?;
        let stored = index.stored_state(head.generation)?;
        if stored != head.state() {
            tracing::error!(
                version = head.version,
                "the stored edge config does not match its signed state; starting over from a snapshot"
            );
            head = Self::start_over(&index, &head)?;
        }
        let desired = match Self::load(&index, &head) {
            Ok(d) => d,
            // Entries an older build wrote in another format.
            Err(AcceptError::Config(e)) => {
                tracing::warn!(error = %e, "the stored edge config does not decode; starting over from a snapshot");
                head = Self::start_over(&index, &head)?;
                Self::load(&index, &head)?
            }
            Err(e) => return Err(e),
        };
        Ok(ConfigState {
            index,
            verifier,
            head: Mutex::new(head),
            desired: watch::channel(Arc::new(desired)).0,
            touched: broadcast::channel(64).0,
            accept_lock: Mutex::new(()),
        })
    }

    /// An empty keyspace of a new generation in place of `head`'s: the next
    /// link asks for a snapshot, and the active map serves meanwhile.
    fn start_over(index: &Index, head: &Head) -> Result<Head, AcceptError> {
        let fresh = Head {
            generation: head.generation + 1,
            ..Head::default()
        };
        index.switch_to(&fresh)?;
        index.drop_generation(head.generation)?;
        Ok(fresh)
    }

    /// The in-memory view, from the stored keyspace: one scan of the
    /// entries, at start and after a snapshot.
    fn load(index: &Index, head: &Head) -> Result<Desired, AcceptError> {
        let mut d = Desired {
            version: head.version,
            ..Default::default()
        };
        let (mut eager, mut projects, mut certs, mut revoked) = (
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeMap::new(),
            BTreeSet::new(),
        );
        let (mut challenges, mut https) = (BTreeMap::new(), BTreeMap::new());
        for item in index.scan(head.generation, "") {
            let (key, bytes) = item?;
            match (Key::decode(&key)?, decode_entry(&key, &bytes)?) {
                (Key::Host(h), Entry::Host(t)) if t.kind.is_eager() => {
                    eager.insert(h, t);
                }
                (Key::Project(p), Entry::Project(rt)) => {
                    projects.insert(p, Arc::new(rt));
                }
                (Key::Cert(c), Entry::Cert(e)) => {
                    certs.insert(c, e);
                }
                (Key::Revoked(n), Entry::Revoked(_)) => {
                    revoked.insert(n);
                }
                (Key::Acme, Entry::Acme(a)) if a.is_valid() => {
                    d.acme = Some(a.thumbprint.into());
                }
                (Key::Challenge(h), Entry::Challenge(c)) => {
                    challenges.insert(h, c);
                }
                (Key::Https(h), Entry::Https(p)) => {
                    https.insert(h, p);
                }
                (Key::Salt(day), Entry::Salt(salt)) => {
                    Arc::make_mut(&mut d.salts).insert(day, salt.0);
                }
                (Key::RequestLog(p), Entry::RequestLog(policy)) if policy.is_valid() => {
                    Arc::make_mut(&mut d.request_logs).insert(p, policy);
                }
                (Key::Coordinators, Entry::Coordinators(list)) if list.is_valid() => {
                    d.coordinators = Arc::new(list.addrs);
                }
                _ => {}
            }
        }
        d.eager = Arc::new(eager);
        d.projects = Arc::new(projects);
        d.certs = Arc::new(certs);
        d.revoked = Arc::new(revoked);
        d.challenges = Arc::new(challenges);
        d.https = Arc::new(https);
        Ok(d)
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Desired>> {
        self.desired.subscribe()
    }

    /// The keys each accepted change touched (for caches of lazily served
    /// hosts).
    pub fn touched(&self) -> broadcast::Receiver<Touched> {
        self.touched.subscribe()
    }

    /// Bytes the stored index takes on disk.
    pub fn index_bytes(&self) -> u64 {
        self.index.size_on_disk()
    }

    pub fn version(&self) -> u64 {
        self.head.lock().unwrap().version
    }

    pub fn current(&self) -> Arc<Desired> {
        self.desired.borrow().clone()
    }

    /// The coordinators' QUIC addresses the config lists (empty if it
    /// lists none, or an invalid list): the link's failover candidates.
    pub fn coordinators(&self) -> Vec<String> {
        self.desired.borrow().coordinators.to_vec()
    }

    /// Whether `node_id` was removed from the cluster.
    pub fn is_revoked(&self, node_id: &str) -> bool {
        self.desired.borrow().revoked.contains(node_id)
    }

    /// The entry under `host`, read from the stored keyspace.
    fn host_entry(&self, host: &str) -> Result<Option<Entry>, AcceptError> {
        let generation = self.head.lock().unwrap().generation;
        let key = Key::Host(host.to_string()).encode();
        self.index
            .get(generation, &key)?
            .map(|bytes| decode_entry(&key, &bytes))
            .transpose()
    }

    /// What `host` serves, read from the stored keyspace.
    pub fn host(&self, host: &str) -> Result<Option<HostTarget>, AcceptError> {
        Ok(match self.host_entry(host)? {
            Some(Entry::Host(t)) => Some(t),
            _ => None,
        })
    }

    /// Where `host` redirects, if it is a redirecting host (a custom
    /// domain such as `shop.com` → `www.shop.com`).
    pub fn redirect(&self, host: &str) -> Result<Option<protocol::HostRedirect>, AcceptError> {
        Ok(match self.host_entry(host)? {
            Some(Entry::Redirect(r)) => Some(r),
            _ => None,
        })
    }

    /// The bundle of every host in the stored config (eager and on
    /// demand): one scan of the host entries, for the cache's pass.
    pub fn host_bundles(&self) -> Result<std::collections::HashSet<BundleId>, AcceptError> {
        let generation = self.head.lock().unwrap().generation;
        let mut out = std::collections::HashSet::new();
        for item in self.index.scan(generation, "h/") {
            let (key, bytes) = item?;
            if let Entry::Host(t) = decode_entry(&key, &bytes)? {
                out.insert(t.bundle);
            }
        }
        Ok(out)
    }

    /// The batches after `have` this node still keeps, to relay to a peer.
    pub fn batches_since(&self, have: u64, max: usize) -> Result<Recent, AcceptError> {
        Ok(self.index.batches_since(have, max)?)
    }

    /// Applies `batches` in order, each only if it verifies; returns how
    /// many were new. Batches the node already has are skipped; one that
    /// does not follow the node's version, or fails verification, stops
    /// the run with an error (nothing of it is applied).
    pub fn accept(&self, batches: Vec<SignedBatch>, source: Source) -> Result<usize, AcceptError> {
        let _guard = self.accept_lock.lock().unwrap();
        let mut applied = 0;
        let mut touched = Vec::new();
        let mut desired = Desired::clone(&self.desired.borrow());
        for signed in batches {
            let head = self.head.lock().unwrap().clone();
            let v = signed.batch.version;
            if v <= head.version {
                continue;
            }
            if v != head.version + 1 {
                return Err(AcceptError::Gap {
                    have: head.version,
                    got: v,
                    source_name: source.name(),
                });
            }
            let state = match self.verify(&head, &signed) {
                Ok(s) => s,
                Err(e) => {
                    let e = match e {
                        AcceptError::Signature { error, .. } => AcceptError::Signature {
                            version: v,
                            source_name: source.name(),
                            error,
                        },
                        other => other,
                    };
                    tracing::error!(error = %e, "config refused");
                    return Err(e);
                }
            };
            let new_head = self.index.apply(&head, &signed, &state)?;
            *self.head.lock().unwrap() = new_head;
            for c in &signed.batch.changes {
                note(&mut desired, c.key.clone(), c.value.clone());
                touched.push(c.key.clone());
            }
            desired.version = v;
            applied += 1;
        }
        if applied > 0 {
            tracing::info!(
                version = desired.version,
                batches = applied,
                changes = touched.len(),
                from = %source.name(),
                "config applied"
            );
            self.desired.send_replace(Arc::new(desired));
            let _ = self.touched.send(Some(Arc::new(touched)));
        }
        Ok(applied)
    }

    /// The state after `signed` applied to `head`, once its signature and
    /// resulting state check out.
    fn verify(&self, head: &Head, signed: &SignedBatch) -> Result<StateHash, AcceptError> {
        signed.batch.validate()?;
        let mut state = head.state();
        // A key changed twice in one batch: the second change sees the first.
        let mut overlay: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        for c in &signed.batch.changes {
            let key = c.key.encode();
            let old = match overlay.get(&key) {
                Some(v) => v.clone(),
                None => self.index.get(head.generation, &key)?.map(|v| v.to_vec()),
            };
            if let Some(o) = &old {
                state.remove(&key, o);
            }
            let new = c.value.as_ref().map(Entry::encode);
            if let Some(n) = &new {
                state.add(&key, n);
            }
            overlay.insert(key, new);
        }
        self.verifier
            .verify(&signed.batch, &signed.signature, state.checksum())
            .map_err(|error| AcceptError::Signature {
                version: signed.batch.version,
                source_name: String::new(),
                error,
            })?;
        Ok(state)
    }

    /// Starts receiving a snapshot of `version`.
    pub fn begin_snapshot(self: &Arc<Self>, version: u64, source: Source) -> Snapshot {
        let next = self.head.lock().unwrap().generation + 1;
        // Leftovers of an abandoned snapshot would spoil the sum.
        let _ = self.index.drop_generation(next);
        Snapshot {
            config: self.clone(),
            version,
            generation: next,
            state: StateHash::default(),
            last_key: String::new(),
            entries: 0,
            source,
        }
    }

    fn finish_snapshot(&self, s: &Snapshot, sig: &BatchSignature) -> Result<bool, AcceptError> {
        let _guard = self.accept_lock.lock().unwrap();
        let fail = |message: String| AcceptError::Snapshot {
            source_name: s.source.name(),
            message,
        };
        if sig.version != s.version {
            return Err(fail(format!(
                "it ends with the signature of version {}, it began as {}",
                sig.version, s.version
            )));
        }
        let signature_error = |error| AcceptError::Signature {
            version: s.version,
            source_name: s.source.name(),
            error,
        };
        self.verifier
            .verify_signature(sig)
            .map_err(signature_error)?;
        if sig.state != s.state.checksum() {
            let e = signature_error(SignatureError::StateMismatch);
            tracing::error!(error = %e, "snapshot refused");
            return Err(e);
        }
        let old = self.head.lock().unwrap().clone();
        // Only the coordinator may move a node back (its database was
        // restored); a peer's older snapshot is no news.
        if s.version <= old.version && !matches!(s.source, Source::Coordinator) {
            return Ok(false);
        }
        let head = Head {
            version: s.version,
            generation: s.generation,
            state: s.state.to_bytes(),
            signature: Some(sig.clone()),
        };
        self.index.switch_to(&head)?;
        let desired = Self::load(&self.index, &head)?;
        *self.head.lock().unwrap() = head;
        if let Err(e) = self.index.drop_generation(old.generation) {
            tracing::warn!(error = %e, "dropping the replaced config generation");
        }
        tracing::info!(
            version = s.version,
            entries = s.entries,
            from = %s.source.name(),
            "config snapshot applied"
        );
        self.desired.send_replace(Arc::new(desired));
        let _ = self.touched.send(None);
        Ok(true)
    }
}

/// Records one change in the in-memory view.
fn note(d: &mut Desired, key: Key, value: Option<Entry>) {
    match (key, value) {
        (Key::Host(h), Some(Entry::Host(t))) if t.kind.is_eager() => {
            Arc::make_mut(&mut d.eager).insert(h, t);
        }
        (Key::Host(h), _) => {
            if d.eager.contains_key(&h) {
                Arc::make_mut(&mut d.eager).remove(&h);
            }
        }
        (Key::Project(p), Some(Entry::Project(rt))) => {
            Arc::make_mut(&mut d.projects).insert(p, Arc::new(rt));
        }
        (Key::Project(p), _) => {
            Arc::make_mut(&mut d.projects).remove(&p);
        }
        (Key::Cert(c), Some(Entry::Cert(e))) => {
            Arc::make_mut(&mut d.certs).insert(c, e);
        }
        (Key::Cert(c), _) => {
            Arc::make_mut(&mut d.certs).remove(&c);
        }
        (Key::Revoked(n), Some(Entry::Revoked(_))) => {
            Arc::make_mut(&mut d.revoked).insert(n);
        }
        (Key::Revoked(n), _) => {
            Arc::make_mut(&mut d.revoked).remove(&n);
        }
        (Key::Acme, Some(Entry::Acme(a))) if a.is_valid() => d.acme = Some(a.thumbprint.into()),
        (Key::Acme, _) => d.acme = None,
        (Key::Challenge(h), Some(Entry::Challenge(c))) => {
            Arc::make_mut(&mut d.challenges).insert(h, c);
        }
        (Key::Challenge(h), _) => {
            if d.challenges.contains_key(&h) {
                Arc::make_mut(&mut d.challenges).remove(&h);
            }
        }
        (Key::Https(h), Some(Entry::Https(p))) => {
            Arc::make_mut(&mut d.https).insert(h, p);
        }
        (Key::Https(h), _) => {
            if d.https.contains_key(&h) {
                Arc::make_mut(&mut d.https).remove(&h);
            }
        }
        (Key::Salt(day), Some(Entry::Salt(salt))) => {
            Arc::make_mut(&mut d.salts).insert(day, salt.0);
        }
        (Key::Salt(day), _) => {
            Arc::make_mut(&mut d.salts).remove(&day);
        }
        (Key::RequestLog(p), Some(Entry::RequestLog(policy))) if policy.is_valid() => {
            Arc::make_mut(&mut d.request_logs).insert(p, policy);
        }
        // Removed, or a policy this node cannot honour: no request logs.
        (Key::RequestLog(p), _) => {
            if d.request_logs.contains_key(&p) {
                Arc::make_mut(&mut d.request_logs).remove(&p);
            }
        }
        (Key::Coordinators, Some(Entry::Coordinators(list))) if list.is_valid() => {
            d.coordinators = Arc::new(list.addrs);
        }
        // Removed, or a list this node cannot trust: it keeps to the
        // address it joined through.
        (Key::Coordinators, value) => {
            if value.is_some() {
                tracing::warn!("the config's list of coordinators is invalid; ignoring it");
            }
            d.coordinators = Arc::default();
        }
        (Key::Epoch, value) => {
            tracing::warn!(
                epoch = ?value,
                "the cluster's config began a new epoch (its database was restored); this node follows it"
            );
        }
    }
}

/// A snapshot being received: pages are staged into a generation nobody
/// reads, summed, and switched to only by [`Snapshot::finish`].
pub struct Snapshot {
    config: Arc<ConfigState>,
    version: u64,
    generation: u32,
    state: StateHash,
    last_key: String,
    entries: u64,
    source: Source,
}

impl Snapshot {
    /// Stages one page; keys must come in strictly ascending order (so no
    /// key is counted twice) and every entry must decode for its key.
    pub fn page(&mut self, page: &[(String, Vec<u8>)]) -> Result<(), AcceptError> {
        for (k, v) in page {
            if k.as_str() <= self.last_key.as_str() {
                return Err(AcceptError::Snapshot {
                    source_name: self.source.name(),
                    message: format!("key {k:?} is out of order"),
                });
            }
            let key = Key::decode(k)?;
            let entry = decode_entry(k, v)?;
            if entry.encode() != *v {
                return Err(AcceptError::Snapshot {
                    source_name: self.source.name(),
                    message: format!("the entry under {k:?} is not in canonical form"),
                });
            }
            if !entry.fits(&key) {
                return Err(ConfigError::WrongKind(k.clone()).into());
            }
            self.state.add(k, v);
            self.last_key = k.clone();
            self.entries += 1;
        }
        self.config.index.stage(self.generation, page)?;
        Ok(())
    }

    /// Switches to the snapshot if `sig` is the coordinator's for exactly
    /// what was staged. `Ok(false)`: it was no newer (from a peer).
    pub fn finish(self, sig: &BatchSignature) -> Result<bool, AcceptError> {
        let r = self.config.finish_snapshot(&self, sig);
        if !matches!(r, Ok(true)) {
            let _ = self.config.index.drop_generation(self.generation);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    //! The door under faults: a torn store, a refused batch, a gap, a
    //! node far behind that takes a snapshot.
    use std::collections::BTreeMap;

    use protocol::config::{Change, ChangeBatch};
    use protocol::signing::ConfigSigner;
    use protocol::{BlobHash, EnvKind, HostKind};

    use super::*;

    /// What the coordinator holds: the keyspace and its signer.
    struct Coordinator {
        signer: ConfigSigner,
        keyspace: BTreeMap<String, Vec<u8>>,
        version: u64,
        /// The last batch's signature: what a snapshot of now ends with.
        last: Option<BatchSignature>,
    }

    impl Coordinator {
        fn new() -> Self {
            let pkcs8 = ConfigSigner::generate_pkcs8();
            Coordinator {
                signer: ConfigSigner::from_pkcs8(&pkcs8).unwrap(),
                keyspace: BTreeMap::new(),
                version: 0,
                last: None,
            }
        }

        fn verifier(&self) -> ConfigVerifier {
            ConfigVerifier::from_hex(&self.signer.public_key_hex()).unwrap()
        }

        fn state(&self) -> StateHash {
            StateHash::of(
                self.keyspace
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice())),
            )
        }

        /// The next batch: `host` → a deployment `tag` (or removed).
        fn change(&mut self, hosts: &[(&str, Option<&str>)]) -> SignedBatch {
            self.version += 1;
            let changes: Vec<Change> = hosts
                .iter()
                .map(|(h, tag)| {
                    let key = Key::Host(h.to_string());
                    let value = tag.map(host_entry);
                    match &value {
                        Some(v) => self.keyspace.insert(key.encode(), v.encode()),
                        None => self.keyspace.remove(&key.encode()),
                    };
                    Change { key, value }
                })
                .collect();
            let batch = ChangeBatch {
                version: self.version,
                changes,
            };
            let signature = self.signer.sign(&batch, self.state().checksum());
            self.last = Some(signature.clone());
            SignedBatch { batch, signature }
        }

        /// The next batch, of any keys.
        fn set(&mut self, changes: Vec<(Key, Option<Entry>)>) -> SignedBatch {
            self.version += 1;
            let changes: Vec<Change> = changes
                .into_iter()
                .map(|(key, value)| {
                    match &value {
                        Some(v) => self.keyspace.insert(key.encode(), v.encode()),
                        None => self.keyspace.remove(&key.encode()),
                    };
                    Change { key, value }
                })
                .collect();
            let batch = ChangeBatch {
                version: self.version,
                changes,
            };
            let signature = self.signer.sign(&batch, self.state().checksum());
            self.last = Some(signature.clone());
            SignedBatch { batch, signature }
        }

        fn snapshot_signature(&self) -> BatchSignature {
            self.last.clone().expect("a batch was made")
        }
    }

    /// A production host's entry serving deployment `tag`.
    fn host_entry(tag: &str) -> Entry {
        Entry::Host(HostTarget {
            project: "p".into(),
            deployment: tag.into(),
            bundle: BlobHash::of(tag.as_bytes()),
            env: EnvKind::Production,
            kind: HostKind::Production,
        })
    }

    /// The index at `dir`, once the last one opened there let go of it
    /// (sled's flusher thread holds the file lock a moment after a drop).
    fn open_index(dir: &std::path::Path) -> Index {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match Index::open(dir) {
                Ok(i) => return i,
                Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }

    fn open(dir: &std::path::Path, c: &Coordinator) -> Arc<ConfigState> {
        let index = Arc::new(open_index(dir));
        Arc::new(ConfigState::new(index, c.verifier()).unwrap())
    }

    /// A node at version 1: `a.localhost` serves `d1`.
    fn serving_d1(dir: &std::path::Path) -> (Coordinator, Arc<ConfigState>) {
        let mut c = Coordinator::new();
        let s = open(dir, &c);
        let b1 = c.change(&[("a.localhost", Some("d1"))]);
        s.accept(vec![b1], Source::Coordinator).unwrap();
        (c, s)
    }

    fn served(s: &ConfigState, host: &str) -> Option<String> {
        s.host(host).unwrap().map(|t| t.deployment)
    }

    #[test]
    fn batches_apply_in_order_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new();
        let b1 = c.change(&[("a.localhost", Some("d1")), ("b.localhost", Some("d2"))]);
        let b2 = c.change(&[("a.localhost", Some("d3")), ("b.localhost", None)]);
        {
            let s = open(dir.path(), &c);
            assert_eq!(
                s.accept(vec![b1.clone(), b2], Source::Coordinator).unwrap(),
                2
            );
            // Old news is skipped, not an error.
            assert_eq!(s.accept(vec![b1], Source::Coordinator).unwrap(), 0);
        }
        let s = open(dir.path(), &c);
        assert_eq!(s.version(), 2);
        assert_eq!(served(&s, "a.localhost").as_deref(), Some("d3"));
        assert_eq!(served(&s, "b.localhost"), None);
        assert_eq!(s.current().eager.len(), 1);
    }

    #[test]
    fn a_batch_that_fails_verification_is_refused_and_nothing_of_it_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, s) = serving_d1(dir.path());
        let good = c.change(&[("a.localhost", Some("d2")), ("x.localhost", Some("d2"))]);

        // Each a different lie: another target, a dropped change, a forged
        // signature, another signer.
        let mut retargeted = good.clone();
        if let Some(Entry::Host(t)) = &mut retargeted.batch.changes[0].value {
            t.deployment = "evil".into();
        }
        let mut dropped = good.clone();
        dropped.batch.changes.pop();
        let mut forged = good.clone();
        forged.signature.signature[0] ^= 1;
        let other = Coordinator::new();
        let foreign = SignedBatch {
            batch: good.batch.clone(),
            signature: other.signer.sign(&good.batch, c.state().checksum()),
        };
        for (what, bad) in [
            ("retargeted", retargeted),
            ("dropped", dropped),
            ("forged", forged),
            ("foreign", foreign),
        ] {
            let e = s
                .accept(vec![bad], Source::Peer("n9".into()))
                .expect_err(what);
            assert!(
                matches!(e, AcceptError::Signature { version: 2, .. }),
                "{what}: {e}"
            );
            assert_eq!(s.version(), 1, "{what}");
            assert_eq!(served(&s, "a.localhost").as_deref(), Some("d1"), "{what}");
            assert_eq!(served(&s, "x.localhost"), None, "{what}");
        }
        // The genuine one still applies afterwards.
        assert_eq!(s.accept(vec![good], Source::Coordinator).unwrap(), 1);
        assert_eq!(served(&s, "x.localhost").as_deref(), Some("d2"));
    }

    #[test]
    fn a_batch_past_a_gap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new();
        let s = open(dir.path(), &c);
        let _missed = c.change(&[("a.localhost", Some("d1"))]);
        let b2 = c.change(&[("b.localhost", Some("d2"))]);
        let e = s.accept(vec![b2], Source::Coordinator).unwrap_err();
        assert!(
            matches!(
                e,
                AcceptError::Gap {
                    have: 0,
                    got: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(s.version(), 0);
    }

    /// A store whose entries do not sum to its signed head (what a torn
    /// write would leave) is never served from: the node starts over and
    /// takes a snapshot, which brings it to the coordinator's state.
    #[test]
    fn a_torn_store_is_discarded_at_start_and_a_snapshot_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new();
        {
            let s = open(dir.path(), &c);
            for i in 0..5 {
                let tag = format!("d{i}");
                s.accept(
                    vec![c.change(&[("a.localhost", Some(&tag))])],
                    Source::Coordinator,
                )
                .unwrap();
            }
        }
        {
            // Half of a batch: one entry written without its head.
            let index = open_index(dir.path());
            let head = index.head().unwrap();
            let stray = host_entry("torn");
            index
                .stage(
                    head.generation,
                    &[(Key::Host("b.localhost".into()).encode(), stray.encode())],
                )
                .unwrap();
        }
        let s = open(dir.path(), &c);
        assert_eq!(s.version(), 0, "a torn store must not be trusted");
        assert_eq!(served(&s, "b.localhost"), None);

        // Far behind (and the log compacted): a snapshot, in pages.
        for i in 0..40 {
            let host = format!("h{i}.localhost");
            c.change(&[(&host, Some("x"))]);
        }
        let mut snap = s.begin_snapshot(c.version, Source::Coordinator);
        let entries: Vec<(String, Vec<u8>)> = c
            .keyspace
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for page in entries.chunks(7) {
            snap.page(page).unwrap();
        }
        assert!(snap.finish(&c.snapshot_signature()).unwrap());
        assert_eq!(s.version(), 45);
        assert_eq!(served(&s, "a.localhost").as_deref(), Some("d4"));
        assert_eq!(served(&s, "h39.localhost").as_deref(), Some("x"));
        // And it goes on from there with ordinary batches.
        let next = c.change(&[("a.localhost", Some("d5"))]);
        assert_eq!(s.accept(vec![next], Source::Coordinator).unwrap(), 1);
    }

    /// Entries written by an older build (another format) that still sum
    /// to the head's state: the node starts, empty, and takes a snapshot.
    #[test]
    fn entries_in_an_older_format_are_discarded_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let c = {
            let (c, _s) = serving_d1(dir.path());
            c
        };
        {
            let index = open_index(dir.path());
            let mut head = index.head().unwrap();
            let (key, old) = ("p/shop".to_string(), vec![0xff, 0x07, 0x01]);
            index
                .stage(head.generation, &[(key.clone(), old.clone())])
                .unwrap();
            let mut state = head.state();
            state.add(&key, &old);
            head.state = state.to_bytes();
            index.switch_to(&head).unwrap();
        }
        let s = open(dir.path(), &c);
        assert_eq!(s.version(), 0, "an undecodable store is not used");
        assert_eq!(served(&s, "a.localhost"), None);
    }

    #[test]
    fn a_snapshot_that_does_not_sum_to_the_signed_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut c, s) = serving_d1(dir.path());
        for i in 0..3 {
            c.change(&[(&format!("h{i}.localhost"), Some("x"))]);
        }
        let mut snap = s.begin_snapshot(c.version, Source::Peer("n2".into()));
        let mut entries: Vec<(String, Vec<u8>)> = c
            .keyspace
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        entries.pop();
        snap.page(&entries).unwrap();
        let e = snap.finish(&c.snapshot_signature()).unwrap_err();
        assert!(matches!(e, AcceptError::Signature { .. }), "{e}");
        assert_eq!(s.version(), 1);
        assert_eq!(served(&s, "h0.localhost"), None);
        assert_eq!(served(&s, "a.localhost").as_deref(), Some("d1"));
    }

    fn request_log(project: &str, sample_ppm: u32) -> (Key, Option<Entry>) {
        (
            Key::RequestLog(project.into()),
            Some(Entry::RequestLog(RequestLogPolicy { sample_ppm })),
        )
    }

    fn request_logs(s: &ConfigState) -> Vec<(String, u32)> {
        s.current()
            .request_logs
            .iter()
            .map(|(p, policy)| (p.clone(), policy.sample_ppm))
            .collect()
    }

    /// Request log policies are kept per change and by the full rebuild
    /// (a restart, a snapshot) alike; an invalid one is not kept.
    #[test]
    fn request_log_policies_follow_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new();
        let s = open(dir.path(), &c);
        assert!(s.current().request_logs.is_empty());
        let b1 = c.set(vec![
            request_log("shop", 10_000),
            request_log("blog", RequestLogPolicy::ALL),
            request_log("zero", 0),
            request_log("over", RequestLogPolicy::ALL + 1),
        ]);
        s.accept(vec![b1], Source::Coordinator).unwrap();
        let both = vec![
            ("blog".to_string(), RequestLogPolicy::ALL),
            ("shop".to_string(), 10_000),
        ];
        assert_eq!(request_logs(&s), both);

        // A rate changed, a policy removed, one turned invalid.
        let b2 = c.set(vec![
            request_log("shop", 500_000),
            (Key::RequestLog("blog".into()), None),
            request_log("gone", 0),
        ]);
        s.accept(vec![b2], Source::Coordinator).unwrap();
        assert_eq!(request_logs(&s), vec![("shop".to_string(), 500_000)]);
        let b3 = c.set(vec![request_log("blog", 1), request_log("shop", 0)]);
        s.accept(vec![b3], Source::Coordinator).unwrap();
        assert_eq!(request_logs(&s), vec![("blog".to_string(), 1)]);
        drop(s);

        // The same after a restart (the stored keyspace, scanned) …
        let s = open(dir.path(), &c);
        assert_eq!(request_logs(&s), vec![("blog".to_string(), 1)]);

        // … and after a snapshot into a fresh node.
        let fresh = tempfile::tempdir().unwrap();
        let t = open(fresh.path(), &c);
        let mut snap = t.begin_snapshot(c.version, Source::Coordinator);
        let entries: Vec<(String, Vec<u8>)> = c
            .keyspace
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        snap.page(&entries).unwrap();
        assert!(snap.finish(&c.snapshot_signature()).unwrap());
        assert_eq!(request_logs(&t), vec![("blog".to_string(), 1)]);
    }

    fn coordinators(addrs: &[&str]) -> (Key, Option<Entry>) {
        (
            Key::Coordinators,
            Some(Entry::Coordinators(protocol::config::CoordinatorList {
                addrs: addrs.iter().map(|a| a.to_string()).collect(),
            })),
        )
    }

    /// The list of coordinators is kept per change and by the full
    /// rebuild alike, in the config's order; an invalid one, or none, is
    /// an empty list (the link then keeps to the address it joined
    /// through).
    #[test]
    fn the_coordinator_list_follows_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Coordinator::new();
        let s = open(dir.path(), &c);
        assert!(s.coordinators().is_empty());
        let two = ["c2.example:8701", "c1.example:8701"];
        // What, the change, the list kept.
        let cases: [(&str, _, &[&str]); 6] = [
            ("two", coordinators(&two), &two),
            ("a duplicate", coordinators(&["a:1", "a:1"]), &[]),
            ("back again", coordinators(&two), &two),
            ("no port", coordinators(&["c1.example"]), &[]),
            ("one", coordinators(&["[::1]:8701"]), &["[::1]:8701"]),
            ("removed", (Key::Coordinators, None), &[]),
        ];
        for (what, change, want) in cases {
            s.accept(vec![c.set(vec![change])], Source::Coordinator)
                .unwrap();
            assert_eq!(s.coordinators(), want, "{what}");
        }
        s.accept(vec![c.set(vec![coordinators(&two)])], Source::Coordinator)
            .unwrap();
        drop(s);

        // The same after a restart (the stored keyspace, scanned) …
        let s = open(dir.path(), &c);
        assert_eq!(s.coordinators(), two);
        s.accept(
            vec![c.set(vec![coordinators(&["a:1", "a:1"])])],
            Source::Coordinator,
        )
        .unwrap();
        drop(s);
        let s = open(dir.path(), &c);
        assert!(s.coordinators().is_empty(), "an invalid stored list");
        s.accept(vec![c.set(vec![coordinators(&two)])], Source::Coordinator)
            .unwrap();

        // … and after a snapshot into a fresh node.
        let fresh = tempfile::tempdir().unwrap();
        let t = open(fresh.path(), &c);
        let mut snap = t.begin_snapshot(c.version, Source::Coordinator);
        let entries: Vec<(String, Vec<u8>)> = c
            .keyspace
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        snap.page(&entries).unwrap();
        assert!(snap.finish(&c.snapshot_signature()).unwrap());
        assert_eq!(t.coordinators(), two);
    }
}
