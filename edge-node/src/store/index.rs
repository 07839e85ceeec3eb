//! The sled index: last config received, and which bundle each host serves.
//!
//! The config and the active host map are separate on purpose: the config
//! is what the coordinator wants, the active map is what this node can serve
//! (only complete bundles). Both survive a restart, which is what lets a node
//! serve its last state while the coordinator is unreachable.

use std::collections::BTreeMap;
use std::path::Path;

use protocol::mesh::PeerInfo;
use protocol::{BundleId, ConfigSignature, EdgeConfig, HostTarget, Manifest};

const CONFIG_KEY: &[u8] = b"config";
const SIGNATURE_KEY: &[u8] = b"config-signature";
const MEMBERS_KEY: &[u8] = b"members";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("edge index (sled): {0}")]
    Sled(#[from] sled::Error),
    #[error("edge index holds undecodable data under {key}: {message}")]
    Decode { key: String, message: String },
}

pub struct Index {
    db: sled::Db,
    meta: sled::Tree,
    active: sled::Tree,
    complete: sled::Tree,
}

impl Index {
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let db = sled::open(path)?;
        Ok(Index {
            meta: db.open_tree("meta")?,
            active: db.open_tree("active")?,
            complete: db.open_tree("complete")?,
            db,
        })
    }

    pub fn config(&self) -> Result<EdgeConfig, IndexError> {
        match self.meta.get(CONFIG_KEY)? {
            None => Ok(EdgeConfig::default()),
            Some(bytes) => decode(&bytes, "config"),
        }
    }

    /// Stores a config with the coordinator's signature of it (kept so the
    /// node can relay the config to peers), in one batch.
    pub fn store_config(
        &self,
        config: &EdgeConfig,
        signature: &ConfigSignature,
    ) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        batch.insert(CONFIG_KEY, encode(config));
        batch.insert(SIGNATURE_KEY, encode(signature));
        self.meta.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn signature(&self) -> Result<Option<ConfigSignature>, IndexError> {
        self.meta
            .get(SIGNATURE_KEY)?
            .map(|b| decode(&b, "config-signature"))
            .transpose()
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

    /// Replaces the whole active map in one batch: hosts switch together
    /// with what is persisted.
    pub fn store_active(&self, active: &BTreeMap<String, HostTarget>) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        for item in self.active.iter().keys() {
            let k = item?;
            if !active.contains_key(&*String::from_utf8_lossy(&k)) {
                batch.remove(k);
            }
        }
        for (host, t) in active {
            batch.insert(host.as_bytes(), encode(t));
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
        self.complete.insert(bundle.0, manifest.canonical_bytes())?;
        self.db.flush()?;
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
