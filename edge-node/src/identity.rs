//! The node's saved identity: who it is, which coordinator it belongs to,
//! its certificate and key (mode 0600), and its listen addresses.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use platform::fs::write_private;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: String,
    pub name: String,
    pub region: String,
    /// `host:port` of the coordinator's QUIC endpoint.
    pub coordinator: String,
    /// The name the coordinator's certificate is issued for.
    pub coordinator_name: String,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
    /// QUIC listen address for peers (edge mesh), saved at join.
    #[serde(default)]
    pub mesh_addr: Option<String>,
    /// Address peers are told to use, when the listen address is not it
    /// (`0.0.0.0`, NAT).
    #[serde(default)]
    pub advertise_addr: Option<String>,
    /// Hex ed25519 key the coordinator signs configs with.
    #[serde(default)]
    pub config_key: String,
}

pub struct Identity {
    pub info: NodeInfo,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a node identity: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("no node identity in {0}: run `edge-node join` first")]
    NotJoined(PathBuf),
}

const INFO: &str = "node.json";
const CA: &str = "ca.pem";
const CERT: &str = "node.pem";
const KEY: &str = "node-key.pem";

impl Identity {
    pub fn exists(dir: &Path) -> bool {
        dir.join(INFO).exists()
    }

    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        if !Self::exists(dir) {
            return Err(IdentityError::NotJoined(dir.to_path_buf()));
        }
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| IdentityError::Io { path, source })
        };
        let info_text = read(INFO)?;
        let info: NodeInfo =
            serde_json::from_str(&info_text).map_err(|e| IdentityError::Invalid {
                path: dir.join(INFO),
                message: e.to_string(),
            })?;
        Ok(Identity {
            info,
            ca_pem: read(CA)?,
            cert_pem: read(CERT)?,
            key_pem: read(KEY)?,
            dir: dir.to_path_buf(),
        })
    }

    pub fn save(&self) -> Result<(), IdentityError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| IdentityError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let write = |name: &str, bytes: &[u8]| {
            let path = self.dir.join(name);
            write_private(&path, bytes).map_err(|source| IdentityError::Io { path, source })
        };
        write(KEY, self.key_pem.as_bytes())?;
        write(CERT, self.cert_pem.as_bytes())?;
        write(CA, self.ca_pem.as_bytes())?;
        write(
            INFO,
            serde_json::to_string_pretty(&self.info).unwrap().as_bytes(),
        )
    }
}
