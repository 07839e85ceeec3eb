//! Signed config batches. The coordinator signs every batch with an
//! ed25519 key; `join` installs the public key on the node. A node applies
//! a batch — from the coordinator or relayed by a peer — only when the
//! signature verifies for the batch's version, its digest and the digest
//! of the whole keyspace after it ([`StateHash`](crate::state_hash)). So a
//! peer can relay batches and snapshots but can never forge or alter one,
//! and an edge knows its whole store is the coordinator's, not only the
//! changes it saw.

use std::fmt;

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use crate::config::ChangeBatch;

/// Domain separation: these bytes are never signed for anything else.
const CONTEXT: &[u8] = b"outpost edge config batch v2\0";

/// What the coordinator signed for one version.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSignature {
    pub version: u64,
    /// [`ChangeBatch::digest`] of the batch making this version.
    pub batch: [u8; 32],
    /// Checksum of the keyspace's state hash after the batch.
    pub state: [u8; 32],
    /// ed25519 signature (64 bytes) over context, version, batch and state.
    pub signature: Vec<u8>,
}

impl fmt::Debug for BatchSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchSignature")
            .field("version", &self.version)
            .field("state", &hex8(&self.state))
            .finish()
    }
}

fn hex8(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect()
}

/// A batch together with the coordinator's signature of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedBatch {
    pub batch: ChangeBatch,
    pub signature: BatchSignature,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("config signing key is malformed: {0}")]
    BadKey(String),
    #[error("signature is for version {signed}, the batch is version {actual}")]
    WrongVersion { signed: u64, actual: u64 },
    #[error("batch content does not match its signed digest (tampered or corrupted)")]
    DigestMismatch,
    #[error("the keyspace after this batch is not the one the coordinator signed")]
    StateMismatch,
    #[error("config signature does not verify with the cluster's config key")]
    BadSignature,
}

fn message(version: u64, batch: &[u8; 32], state: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 72);
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&version.to_be_bytes());
    m.extend_from_slice(batch);
    m.extend_from_slice(state);
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

    /// Signs `batch`, after which the keyspace's state checksum is `state`.
    pub fn sign(&self, batch: &ChangeBatch, state: [u8; 32]) -> BatchSignature {
        let digest = batch.digest();
        let sig = self.key.sign(&message(batch.version, &digest, &state));
        BatchSignature {
            version: batch.version,
            batch: digest,
            state,
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
        // Digits only: `from_str_radix` alone would also take a `+`.
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut public = [0u8; 32];
        for (i, b) in public.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(ConfigVerifier { public })
    }

    /// Checks that `sig` is the coordinator's, whatever it covers.
    pub fn verify_signature(&self, sig: &BatchSignature) -> Result<(), SignatureError> {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(
                &message(sig.version, &sig.batch, &sig.state),
                &sig.signature,
            )
            .map_err(|_| SignatureError::BadSignature)
    }

    /// Checks that `sig` is the coordinator's for exactly `batch`, and that
    /// `state_after` (the checksum of the keyspace with `batch` applied) is
    /// the state the coordinator had.
    pub fn verify(
        &self,
        batch: &ChangeBatch,
        sig: &BatchSignature,
        state_after: [u8; 32],
    ) -> Result<(), SignatureError> {
        if sig.version != batch.version {
            return Err(SignatureError::WrongVersion {
                signed: sig.version,
                actual: batch.version,
            });
        }
        if batch.digest() != sig.batch {
            return Err(SignatureError::DigestMismatch);
        }
        self.verify_signature(sig)?;
        if sig.state != state_after {
            return Err(SignatureError::StateMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Change, Key};

    fn batch(version: u64, host: &str) -> ChangeBatch {
        ChangeBatch {
            version,
            changes: vec![Change {
                key: Key::Host(host.into()),
                value: None,
            }],
        }
    }

    #[test]
    fn verification_table() {
        let signer = ConfigSigner::from_pkcs8(&ConfigSigner::generate_pkcs8()).unwrap();
        let other = ConfigSigner::from_pkcs8(&ConfigSigner::generate_pkcs8()).unwrap();
        let verifier = ConfigVerifier::from_hex(&signer.public_key_hex()).unwrap();
        let state = [7u8; 32];
        let good = batch(7, "a.localhost");
        let sig = signer.sign(&good, state);

        let mut flipped = sig.clone();
        flipped.signature[0] ^= 1;
        let mut bumped = sig.clone();
        bumped.version = 8;
        let mut redigested = sig.clone();
        redigested.batch = batch(7, "evil.localhost").digest();
        let mut restated = sig.clone();
        restated.state = [9; 32];

        type Case = (
            &'static str,
            ChangeBatch,
            BatchSignature,
            [u8; 32],
            Result<(), SignatureError>,
        );
        let cases: Vec<Case> = vec![
            ("genuine", good.clone(), sig.clone(), state, Ok(())),
            (
                "content swapped",
                batch(7, "evil.localhost"),
                sig.clone(),
                state,
                Err(SignatureError::DigestMismatch),
            ),
            (
                "replayed as another version",
                batch(8, "a.localhost"),
                sig.clone(),
                state,
                Err(SignatureError::WrongVersion {
                    signed: 7,
                    actual: 8,
                }),
            ),
            (
                "signature bits flipped",
                good.clone(),
                flipped,
                state,
                Err(SignatureError::BadSignature),
            ),
            (
                "version field edited",
                batch(8, "a.localhost"),
                bumped,
                state,
                Err(SignatureError::DigestMismatch),
            ),
            (
                "digest swapped to match evil content",
                batch(7, "evil.localhost"),
                redigested,
                state,
                Err(SignatureError::BadSignature),
            ),
            (
                "state field edited",
                good.clone(),
                restated,
                [9; 32],
                Err(SignatureError::BadSignature),
            ),
            (
                "applied onto another keyspace",
                good.clone(),
                sig.clone(),
                [8; 32],
                Err(SignatureError::StateMismatch),
            ),
            (
                "signed by another key",
                good.clone(),
                other.sign(&good, state),
                state,
                Err(SignatureError::BadSignature),
            ),
        ];
        for (name, b, s, after, want) in cases {
            assert_eq!(verifier.verify(&b, &s, after), want, "{name}");
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        let signed = format!("+f{}", "0".repeat(62));
        for bad in [
            "",
            "zz",
            &"0".repeat(63),
            &"g".repeat(64),
            &"é".repeat(32),
            &signed,
        ] {
            assert!(ConfigVerifier::from_hex(bad).is_err(), "{bad:?}");
        }
        assert!(ConfigSigner::from_pkcs8(b"not a key").is_err());
    }
}
