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
/// A renewed certificate and its key in one file, written before the two
/// files they replace: a crash between those writes can never pair a key
/// with another key's certificate, because this file wins until both are
/// written.
const RENEWED: &str = "node-renewed.pem";

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
        let mut identity = Identity {
            info,
            ca_pem: read(CA)?,
            cert_pem: read(CERT)?,
            key_pem: read(KEY)?,
            dir: dir.to_path_buf(),
        };
        if dir.join(RENEWED).exists() {
            let both = read(RENEWED)?;
            let (cert_pem, key_pem) =
                split_renewed(&both).ok_or_else(|| IdentityError::Invalid {
                    path: dir.join(RENEWED),
                    message: "expected a certificate and a private key".into(),
                })?;
            identity.cert_pem = cert_pem;
            identity.key_pem = key_pem;
            identity.finish_renewal()?;
        }
        Ok(identity)
    }

    /// Replaces the certificate and key with a renewed pair, atomically as
    /// a pair (see [`RENEWED`]).
    pub fn save_renewed(&mut self, cert_pem: String, key_pem: String) -> Result<(), IdentityError> {
        let path = self.dir.join(RENEWED);
        write_private(&path, format!("{cert_pem}{key_pem}").as_bytes())
            .map_err(|source| IdentityError::Io { path, source })?;
        self.cert_pem = cert_pem;
        self.key_pem = key_pem;
        self.finish_renewal()
    }

    fn finish_renewal(&self) -> Result<(), IdentityError> {
        let write = |name: &str, bytes: &[u8]| {
            let path = self.dir.join(name);
            write_private(&path, bytes).map_err(|source| IdentityError::Io { path, source })
        };
        write(KEY, self.key_pem.as_bytes())?;
        write(CERT, self.cert_pem.as_bytes())?;
        let path = self.dir.join(RENEWED);
        std::fs::remove_file(&path).map_err(|source| IdentityError::Io { path, source })
    }

    /// (not before, not after) of the node certificate, Unix seconds.
    pub fn cert_validity(&self) -> Option<(i64, i64)> {
        let der = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .next()?
            .ok()?;
        protocol::node_cert::validity(&der)
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

/// The PEM certificate blocks and the private key block of a renewed file.
fn split_renewed(both: &str) -> Option<(String, String)> {
    let at = both.find("-----BEGIN PRIVATE KEY-----")?;
    let (cert, key) = both.split_at(at);
    (cert.contains("BEGIN CERTIFICATE") && key.contains("END PRIVATE KEY"))
        .then(|| (cert.to_string(), key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(dir: &Path) -> Identity {
        Identity {
            info: NodeInfo {
                node_id: "n1".into(),
                name: "edge".into(),
                region: "fra".into(),
                coordinator: "127.0.0.1:1".into(),
                coordinator_name: "c".into(),
                http_addr: None,
                https_addr: None,
                mesh_addr: None,
                advertise_addr: None,
                config_key: String::new(),
            },
            ca_pem: "ca".into(),
            cert_pem: "-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n".into(),
            key_pem: "-----BEGIN PRIVATE KEY-----\nold\n-----END PRIVATE KEY-----\n".into(),
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn a_renewal_cut_short_is_finished_at_the_next_load() {
        let tmp = tempfile::tempdir().unwrap();
        let mut id = identity(tmp.path());
        id.save().unwrap();
        let cert = "-----BEGIN CERTIFICATE-----\nnew\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nnew\n-----END PRIVATE KEY-----\n";
        id.save_renewed(cert.into(), key.into()).unwrap();
        let loaded = Identity::load(tmp.path()).unwrap();
        assert_eq!(
            (loaded.cert_pem.as_str(), loaded.key_pem.as_str()),
            (cert, key)
        );
        assert!(!tmp.path().join(RENEWED).exists());

        // A crash after the pair file but before the key and certificate
        // files: the pair wins, and the files are completed.
        let cert2 = cert.replace("new", "newer");
        let key2 = key.replace("new", "newer");
        write_private(
            &tmp.path().join(RENEWED),
            format!("{cert2}{key2}").as_bytes(),
        )
        .unwrap();
        write_private(&tmp.path().join(KEY), key2.as_bytes()).unwrap();
        let loaded = Identity::load(tmp.path()).unwrap();
        assert_eq!(
            (loaded.cert_pem, loaded.key_pem),
            (cert2.clone(), key2.clone())
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join(CERT)).unwrap(),
            cert2
        );
        assert!(!tmp.path().join(RENEWED).exists());

        // A damaged pair file is an error, not a silent mismatch.
        write_private(&tmp.path().join(RENEWED), b"garbage").unwrap();
        assert!(matches!(
            Identity::load(tmp.path()),
            Err(IdentityError::Invalid { .. })
        ));
    }
}
