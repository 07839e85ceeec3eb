//! The node's current config and the one door every new config comes
//! through, whether from the coordinator's stream or relayed by a peer:
//! verify the coordinator's signature, accept only newer versions, persist
//! before acting, then publish to the syncer and announce to the mesh.

use std::sync::{Arc, Mutex};

use protocol::signing::{ConfigVerifier, SignatureError};
use protocol::{ConfigDelta, ConfigSignature, EdgeConfig, SignedConfig};
use tokio::sync::watch;

use crate::store::Index;

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("rejected config version {version} from {source_name}: {error}")]
    Signature {
        version: u64,
        source_name: String,
        error: SignatureError,
    },
    #[error(transparent)]
    Config(#[from] protocol::config::ConfigError),
    #[error(transparent)]
    Index(#[from] crate::store::index::IndexError),
}

/// Where a config came from, for logs.
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

pub struct ConfigState {
    index: Arc<Index>,
    verifier: ConfigVerifier,
    desired: watch::Sender<Arc<EdgeConfig>>,
    signature: Mutex<Option<ConfigSignature>>,
    /// Serialises accepts: coordinator and peers may race.
    accept_lock: Mutex<()>,
}

impl ConfigState {
    pub fn new(index: Arc<Index>, verifier: ConfigVerifier) -> Result<Self, AcceptError> {
        let config = index.config()?;
        let signature = index.signature()?;
        let (desired, _) = watch::channel(Arc::new(config));
        Ok(ConfigState {
            index,
            verifier,
            desired,
            signature: Mutex::new(signature),
            accept_lock: Mutex::new(()),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<EdgeConfig>> {
        self.desired.subscribe()
    }

    pub fn version(&self) -> u64 {
        self.desired.borrow().version
    }

    pub fn current(&self) -> Arc<EdgeConfig> {
        self.desired.borrow().clone()
    }

    /// The current config with its signature, for relaying to a peer.
    pub fn signed(&self) -> Option<SignedConfig> {
        let signature = self.signature.lock().unwrap().clone()?;
        let config = EdgeConfig::clone(&self.desired.borrow());
        (signature.version == config.version).then_some(SignedConfig { config, signature })
    }

    /// Accepts `signed` if it verifies and is newer. `Ok(true)` when it
    /// became the current config.
    pub fn accept(&self, signed: SignedConfig, source: Source) -> Result<bool, AcceptError> {
        let _guard = self.accept_lock.lock().unwrap();
        if let Err(error) = self.verifier.verify(&signed.config, &signed.signature) {
            let e = AcceptError::Signature {
                version: signed.config.version,
                source_name: source.name(),
                error,
            };
            tracing::error!(error = %e, "config refused");
            return Err(e);
        }
        signed.config.check()?;
        let current = self.version();
        if signed.config.version <= current && current != 0 {
            return Ok(false);
        }
        // Persist before acting on it: a restart resumes from here.
        self.index.store_config(&signed.config, &signed.signature)?;
        tracing::info!(
            version = signed.config.version,
            hosts = signed.config.hosts.len(),
            from = %source.name(),
            "config received"
        );
        *self.signature.lock().unwrap() = Some(signed.signature);
        self.desired.send_replace(Arc::new(signed.config));
        Ok(true)
    }

    /// Applies a coordinator delta to the current config. A delta that a
    /// peer's relay already overtook is skipped.
    pub fn accept_delta(
        &self,
        delta: &ConfigDelta,
        signature: ConfigSignature,
    ) -> Result<bool, AcceptError> {
        let mut next = EdgeConfig::clone(&self.desired.borrow());
        if delta.to_version <= next.version {
            return Ok(false);
        }
        next.apply(delta)?;
        self.accept(
            SignedConfig {
                config: next,
                signature,
            },
            Source::Coordinator,
        )
    }
}
