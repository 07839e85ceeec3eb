//! Signed edge configs. The coordinator signs every config version with an
//! ed25519 key; `join` installs the public key on the node. A node applies
//! a config — from the coordinator or relayed by a peer — only when the
//! signature over its digest verifies, so a peer can relay configs but can
//! never forge or alter one.
//!
//! The signature covers `(version, blake3(canonical bytes))`, not a delta:
//! an edge applies a delta, hashes the result and checks it, which makes
//! snapshots and deltas verifiable the same way.

use std::fmt;

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use crate::config::EdgeConfig;

/// Domain separation: these bytes are never signed for anything else.
const CONTEXT: &[u8] = b"outpost edge config v1\0";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigSignature {
    pub version: u64,
    /// blake3 of the config's canonical bytes.
    pub digest: [u8; 32],
    /// ed25519 signature (64 bytes) over context, version and digest.
    pub signature: Vec<u8>,
}

impl fmt::Debug for ConfigSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSignature")
            .field("version", &self.version)
            .field("digest", &hex8(&self.digest))
            .finish()
    }
}

fn hex8(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// A config together with the coordinator's signature of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedConfig {
    pub config: EdgeConfig,
    pub signature: ConfigSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("config signing key is malformed: {0}")]
    BadKey(String),
    #[error("signature is for config version {signed}, the config is version {actual}")]
    WrongVersion { signed: u64, actual: u64 },
    #[error("config content does not match its signed digest (tampered or corrupted)")]
    DigestMismatch,
    #[error("config signature does not verify with the cluster's config key")]
    BadSignature,
}

/// The bytes a config is identified by: bincode of ordered maps, so both
/// sides compute the same bytes for the same config.
pub fn config_digest(config: &EdgeConfig) -> [u8; 32] {
    let bytes = bincode::serde::encode_to_vec(config, bincode::config::standard())
        .expect("in-memory encode");
    *blake3::hash(&bytes).as_bytes()
}

fn message(version: u64, digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 40);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(digest);
    m
}

/// The coordinator's signing key.
pub struct ConfigSigner {
    key: Ed25519KeyPair,
}

impl fmt::Debug for ConfigSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigSigner")
            .field("public_key", &self.public_key_hex())
            .finish()
    }
}

impl ConfigSigner {
    /// A fresh key as PKCS#8 bytes, to be stored (mode 0600) and loaded
    /// with [`from_pkcs8`](Self::from_pkcs8).
    pub fn generate_pkcs8() -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("system randomness")
            .as_ref()
            .to_vec()
    }

    pub fn from_pkcs8(bytes: &[u8]) -> Result<Self, SignatureError> {
        Ed25519KeyPair::from_pkcs8(bytes)
            .map(|key| ConfigSigner { key })
            .map_err(|e| SignatureError::BadKey(e.to_string()))
    }

    pub fn public_key_hex(&self) -> String {
        self.key
            .public_key()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn sign(&self, config: &EdgeConfig) -> ConfigSignature {
        let digest = config_digest(config);
        let sig = self.key.sign(&message(config.version, &digest));
        ConfigSignature {
            version: config.version,
            digest,
            signature: sig.as_ref().to_vec(),
        }
    }
}

/// What a node holds: the coordinator's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVerifier {
    public: [u8; 32],
}

impl ConfigVerifier {
    pub fn from_hex(hex: &str) -> Result<Self, SignatureError> {
        let bad = || SignatureError::BadKey("expected 64 hex digits".into());
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut public = [0u8; 32];
        for (i, b) in public.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ConfigVerifier { public })
    }

    /// Checks that `signature` is the coordinator's for exactly `config`.
    pub fn verify(
        &self,
        config: &EdgeConfig,
        signature: &ConfigSignature,
    ) -> Result<(), SignatureError> {
        if signature.version != config.version {
            return Err(SignatureError::WrongVersion {
                signed: signature.version,
                actual: config.version,
            });
        }
        if config_digest(config) != signature.digest {
            return Err(SignatureError::DigestMismatch);
        }
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(
                &message(signature.version, &signature.digest),
                &signature.signature,
            )
            .map_err(|_| SignatureError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EnvKind, HostTarget};
    use crate::hash::BlobHash;

    fn config(version: u64, deployment: &str) -> EdgeConfig {
        let mut c = EdgeConfig {
            version,
            ..Default::default()
        };
        let m = crate::Manifest::new(
            [(
                "index.html".to_string(),
                crate::FileEntry {
                    hash: BlobHash::of(deployment.as_bytes()),
                    size: 1,
                    content_type: "text/html".into(),
                    variants: vec![],
                },
            )]
            .into(),
        );
        let id = m.bundle_id();
        c.bundles.insert(id, m);
        c.hosts.insert(
            "blog.localhost".into(),
            HostTarget {
                project: "blog".into(),
                deployment: deployment.into(),
                bundle: id,
                env: EnvKind::Production,
            },
        );
        c
    }

    #[test]
    fn verification_table() {
        let signer = ConfigSigner::from_pkcs8(&ConfigSigner::generate_pkcs8()).unwrap();
        let other = ConfigSigner::from_pkcs8(&ConfigSigner::generate_pkcs8()).unwrap();
        let verifier = ConfigVerifier::from_hex(&signer.public_key_hex()).unwrap();
        let good = config(7, "d1");
        let sig = signer.sign(&good);

        let mut tampered_sig = sig.clone();
        tampered_sig.signature[0] ^= 1;
        let mut bumped = sig.clone();
        bumped.version = 8;
        let mut redigested = sig.clone();
        redigested.digest = config_digest(&config(7, "evil"));

        type Case = (
            &'static str,
            EdgeConfig,
            ConfigSignature,
            Result<(), SignatureError>,
        );
        let cases: Vec<Case> = vec![
            ("genuine", good.clone(), sig.clone(), Ok(())),
            (
                "content swapped",
                config(7, "evil"),
                sig.clone(),
                Err(SignatureError::DigestMismatch),
            ),
            (
                "version replayed onto a newer config",
                config(8, "d1"),
                sig.clone(),
                Err(SignatureError::WrongVersion {
                    signed: 7,
                    actual: 8,
                }),
            ),
            (
                "signature bits flipped",
                good.clone(),
                tampered_sig,
                Err(SignatureError::BadSignature),
            ),
            (
                "version field edited",
                config(8, "d1"),
                bumped,
                Err(SignatureError::DigestMismatch),
            ),
            (
                "digest swapped to match evil content",
                config(7, "evil"),
                redigested,
                Err(SignatureError::BadSignature),
            ),
            (
                "signed by another key",
                good.clone(),
                other.sign(&good),
                Err(SignatureError::BadSignature),
            ),
        ];
        for (name, cfg, sig, want) in cases {
            assert_eq!(verifier.verify(&cfg, &sig), want, "{name}");
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        for bad in ["", "zz", &"0".repeat(63), &"g".repeat(64), &"é".repeat(32)] {
            assert!(ConfigVerifier::from_hex(bad).is_err(), "{bad:?}");
        }
        assert!(ConfigSigner::from_pkcs8(b"not a key").is_err());
    }

    #[test]
    fn digest_is_stable_across_a_round_trip() {
        let c = config(3, "d");
        let bytes = bincode::serde::encode_to_vec(&c, bincode::config::standard()).unwrap();
        let (back, _): (EdgeConfig, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(config_digest(&c), config_digest(&back));
    }
}
