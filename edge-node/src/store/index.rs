//! The sled index: the edge config keyspace as the coordinator signed it,
//! the recent batches (to relay to peers), which bundle each eager host
//! serves, and which bundles are complete on disk.
//!
//! The keyspace and what the coordinator wants are one thing; the active
//! map is what this node can serve (only complete bundles). Both survive
//! a restart, which is what lets a node serve its last state while the
//! coordinator is unreachable.
//!
//! The keyspace, its head (version, state hash, signature) and the recent
//! batches share one tree, so a batch is applied with one atomic sled
//! batch: a node killed mid-apply restarts with the batch wholly applied
//! or not at all. Entries live under a generation prefix; a snapshot is
//! written into the next generation and switched to by one write of the
//! head, so a half-received snapshot is never seen either.

use std::collections::BTreeMap;
use std::path::Path;

use protocol::mesh::PeerInfo;
use protocol::signing::{BatchSignature, SignedBatch};
use protocol::{BundleId, HostTarget, Manifest, StateHash};

/// Batches kept to relay to peers that are a little behind.
pub const LOG_KEEP: u64 = 1000;

const MEMBERS_KEY: &[u8] = b"members";
/// Keys in the `config` tree: `m` + name for the head, `k` + generation +
/// key for entries, `l` + version for the recent batches.
const HEAD_KEY: &[u8] = b"mhead";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("edge index (sled): {0}")]
    Sled(#[from] sled::Error),
    #[error("edge index holds undecodable data under {key}: {message}")]
    Decode { key: String, message: String },
}

/// The keyspace's version, state hash and the signature of its version.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub version: u64,
    pub generation: u32,
    /// `StateHash` lanes.
    pub state: Vec<u8>,
    pub signature: Option<BatchSignature>,
}

impl Head {
    pub fn state(&self) -> StateHash {
        StateHash::from_bytes(&self.state).unwrap_or_default()
    }
}

/// What `batches_since` found.
pub enum Recent {
    Batches(Vec<SignedBatch>),
    /// The kept batches start after the asker's version.
    Gap {
        oldest: u64,
    },
}

pub struct Index {
    db: sled::Db,
    meta: sled::Tree,
    config: sled::Tree,
    active: sled::Tree,
    complete: sled::Tree,
    /// Bundle id → when a request (or a pinning host) last used it, Unix
    /// ms: the recency the cache budget evicts by.
    used: sled::Tree,
}

fn entry_key(generation: u32, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + key.len());
    k.push(b'k');
    k.extend_from_slice(&generation.to_be_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

fn entry_prefix(generation: u32) -> Vec<u8> {
    entry_key(generation, "")
}

fn log_key(version: u64) -> Vec<u8> {
    let mut k = vec![b'l'];
    k.extend_from_slice(&version.to_be_bytes());
    k
}

impl Index {
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        // sled caches up to 1 GiB by default; the index is read per key.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        let index = Index {
            meta: db.open_tree("meta")?,
            config: db.open_tree("config")?,
            active: db.open_tree("active")?,
            complete: db.open_tree("complete")?,
            used: db.open_tree("used")?,
            db,
        };
        // A whole config from before the log: edges start over from a
        // snapshot (the active map still serves meanwhile).
        for old in [&b"config"[..], b"config-signature"] {
            index.meta.remove(old)?;
        }
        Ok(index)
    }

    pub fn head(&self) -> Result<Head, IndexError> {
        match self.config.get(HEAD_KEY)? {
            None => Ok(Head::default()),
            Some(b) => decode(&b, "head"),
        }
    }

    /// The entry under `key` (encoded), as stored.
    pub fn get(&self, generation: u32, key: &str) -> Result<Option<sled::IVec>, IndexError> {
        Ok(self.config.get(entry_key(generation, key))?)
    }

    /// Every entry whose key starts with `prefix` (`h/`, `p/`, `c/`).
    pub fn scan(
        &self,
        generation: u32,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, sled::IVec), IndexError>> + '_ {
        let skip = entry_prefix(generation).len();
        self.config
            .scan_prefix(entry_key(generation, prefix))
            .map(move |item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k[skip..]).into_owned(), v))
            })
    }

    /// Applies a verified batch: its entries, the new head and the batch
    /// itself (kept for peers), in one atomic write. `old` is the head it
    /// applies to.
    pub fn apply(
        &self,
        old: &Head,
        signed: &SignedBatch,
        state: &StateHash,
    ) -> Result<Head, IndexError> {
        let mut b = sled::Batch::default();
        for c in &signed.batch.changes {
            let k = entry_key(old.generation, &c.key.encode());
            match &c.value {
                Some(v) => b.insert(k, v.encode()),
                None => b.remove(k),
            }
        }
        let head = Head {
            version: signed.batch.version,
            generation: old.generation,
            state: state.to_bytes(),
            signature: Some(signed.signature.clone()),
        };
        b.insert(HEAD_KEY, encode(&head));
        b.insert(log_key(signed.batch.version), encode(signed));
        if let Some(v) = signed.batch.version.checked_sub(LOG_KEEP) {
            b.remove(log_key(v));
        }
        self.config.apply_batch(b)?;
        self.db.flush()?;
        Ok(head)
    }

    /// Writes one page of a snapshot into generation `generation` (not yet
    /// the one read).
    pub fn stage(&self, generation: u32, page: &[(String, Vec<u8>)]) -> Result<(), IndexError> {
        let mut b = sled::Batch::default();
        for (k, v) in page {
            b.insert(entry_key(generation, k), v.as_slice());
        }
        self.config.apply_batch(b)?;
        Ok(())
    }

    /// Drops a generation's entries (an abandoned snapshot, or the one a
    /// snapshot replaced).
    pub fn drop_generation(&self, generation: u32) -> Result<(), IndexError> {
        let mut b = sled::Batch::default();
        let mut n = 0;
        for k in self.config.scan_prefix(entry_prefix(generation)).keys() {
            b.remove(k?);
            n += 1;
            if n % 10_000 == 0 {
                self.config.apply_batch(std::mem::take(&mut b))?;
            }
        }
        self.config.apply_batch(b)?;
        Ok(())
    }

    /// Switches to a fully staged and verified snapshot: one write of the
    /// head. The recent batches are older than it and go.
    pub fn switch_to(&self, head: &Head) -> Result<(), IndexError> {
        let mut b = sled::Batch::default();
        b.insert(HEAD_KEY, encode(head));
        for k in self.config.scan_prefix(b"l").keys() {
            b.remove(k?);
        }
        self.config.apply_batch(b)?;
        self.db.flush()?;
        Ok(())
    }

    /// The kept batches after `have`, at most `max`.
    pub fn batches_since(&self, have: u64, max: usize) -> Result<Recent, IndexError> {
        let mut out = Vec::new();
        for item in self
            .config
            .range(log_key(have + 1)..log_key(u64::MAX))
            .take(max)
        {
            let (k, v) = item?;
            if k.first() != Some(&b'l') {
                break;
            }
            let b: SignedBatch = decode(&v, "log")?;
            if out.is_empty() && b.batch.version != have + 1 {
                return Ok(Recent::Gap {
                    oldest: b.batch.version,
                });
            }
            out.push(b);
        }
        Ok(Recent::Batches(out))
    }

    /// Recomputes the state hash of the current generation's entries:
    /// what the head says it is, unless the store was damaged.
    pub fn stored_state(&self, generation: u32) -> Result<StateHash, IndexError> {
        let mut s = StateHash::default();
        for item in self.scan(generation, "") {
            let (k, v) = item?;
            s.add(&k, &v);
        }
        Ok(s)
    }

    /// Peers last seen alive: a restarted node rejoins the mesh through
    /// them, without the coordinator.
    pub fn members(&self) -> Result<Vec<PeerInfo>, IndexError> {
        match self.meta.get(MEMBERS_KEY)? {
            None => Ok(Vec::new()),
            Some(b) => decode(&b, "members"),
        }
    }

    pub fn store_members(&self, members: &[PeerInfo]) -> Result<(), IndexError> {
        self.meta.insert(MEMBERS_KEY, encode(&members))?;
        // Flushed now: a node stopped right after (before sled's own
        // flush) must still find its peers when it starts without the
        // coordinator.
        self.db.flush()?;
        Ok(())
    }

    pub fn active(&self) -> Result<BTreeMap<String, HostTarget>, IndexError> {
        let mut out = BTreeMap::new();
        for item in self.active.iter() {
            let (k, v) = item?;
            let host = String::from_utf8_lossy(&k).into_owned();
            let target = decode(&v, &format!("active/{host}"))?;
            out.insert(host, target);
        }
        Ok(out)
    }

    /// Moves the active map from `previous` to `next` in one batch,
    /// writing only the hosts that changed: hosts switch together with
    /// what is persisted.
    pub fn store_active(
        &self,
        previous: &BTreeMap<String, HostTarget>,
        next: &BTreeMap<String, HostTarget>,
    ) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        for host in previous.keys().filter(|h| !next.contains_key(*h)) {
            batch.remove(host.as_bytes());
        }
        for (host, t) in next {
            if previous.get(host) != Some(t) {
                batch.insert(host.as_bytes(), encode(t));
            }
        }
        self.active.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn is_complete(&self, bundle: &BundleId) -> Result<bool, IndexError> {
        Ok(self.complete.contains_key(bundle.0)?)
    }

    /// Records that every blob of `bundle` is on disk, with its manifest:
    /// a host may keep serving a bundle after the config stops listing it.
    pub fn mark_complete(&self, bundle: &BundleId, manifest: &Manifest) -> Result<(), IndexError> {
        self.used.insert(bundle.0, &now_ms().to_be_bytes()[..])?;
        self.complete.insert(bundle.0, manifest.canonical_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Records when bundles were last used, (bundle, Unix ms) each (not
    /// flushed: recency lost in a crash only makes a bundle look older).
    pub fn touch(&self, used: &[(BundleId, i64)]) -> Result<(), IndexError> {
        let mut b = sled::Batch::default();
        for (id, at_ms) in used {
            b.insert(&id.0[..], &at_ms.to_be_bytes()[..]);
        }
        self.used.apply_batch(b)?;
        Ok(())
    }

    /// When `bundle` was last used; `None` if never recorded (a bundle
    /// completed by an older version of the node).
    pub fn last_used(&self, bundle: &BundleId) -> Result<Option<i64>, IndexError> {
        Ok(self
            .used
            .get(bundle.0)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    /// Forgets a bundle the cache let go: it is no longer complete (its
    /// blobs are about to be swept), and a request fetches it again.
    pub fn drop_bundle(&self, bundle: &BundleId) -> Result<(), IndexError> {
        self.complete.remove(bundle.0)?;
        self.used.remove(bundle.0)?;
        Ok(())
    }

    pub fn complete_manifest(&self, bundle: &BundleId) -> Result<Option<Manifest>, IndexError> {
        match self.complete.get(bundle.0)? {
            None => Ok(None),
            Some(bytes) => Manifest::from_canonical_bytes(&bytes, protocol::wire::MAX_FRAME_BYTES)
                .map(Some)
                .map_err(|e| IndexError::Decode {
                    key: format!("complete/{bundle}"),
                    message: e.to_string(),
                }),
        }
    }

    pub fn complete_count(&self) -> usize {
        self.complete.len()
    }

    pub fn unmark_complete(&self, bundle: &BundleId) -> Result<(), IndexError> {
        self.complete.remove(bundle.0)?;
        Ok(())
    }

    /// Every complete bundle with its manifest (for the blob that went bad).
    pub fn complete_bundles(
        &self,
    ) -> impl Iterator<Item = Result<(BundleId, Manifest), IndexError>> + '_ {
        self.complete.iter().map(|item| {
            let (k, v) = item?;
            let id = protocol::BlobHash(k.as_ref().try_into().map_err(|_| IndexError::Decode {
                key: "complete".into(),
                message: "a bundle id of the wrong length".into(),
            })?);
            let m = Manifest::from_canonical_bytes(&v, protocol::wire::MAX_FRAME_BYTES).map_err(
                |e| IndexError::Decode {
                    key: format!("complete/{id}"),
                    message: e.to_string(),
                },
            )?;
            Ok((id, m))
        })
    }

    /// Bytes the index takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("in-memory encode")
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], key: &str) -> Result<T, IndexError> {
    bincode::serde::decode_from_slice(bytes, protocol::wire::decode_config())
        .map(|(v, _)| v)
        .map_err(|e| IndexError::Decode {
            key: key.to_string(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = PeerInfo {
            node_id: "n1".into(),
            name: "a".into(),
            region: "fra".into(),
            mesh_addr: "127.0.0.1:1".into(),
        };
        {
            let i = Index::open(dir.path()).unwrap();
            i.store_members(std::slice::from_ref(&p)).unwrap();
        }
        let i = Index::open(dir.path()).unwrap();
        assert_eq!(i.members().unwrap(), vec![p]);
    }
}
