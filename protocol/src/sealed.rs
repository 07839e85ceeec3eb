//! Values sealed to the cluster key: tenants' variables and the private
//! keys of host certificates travel and rest inside config entries only in
//! this form, so that a copied edge data directory, a relayed config or a
//! removed node's later view of the config yields nothing usable.
//!
//! The cluster key is a 32-byte secret with a generation number. The
//! coordinators keep every generation in their database (sealed with the
//! instance key); an edge holds the keys in memory only, got over its
//! authenticated link or from a peer the cluster still has, and never
//! writes them down. A node's removal starts a new generation and every
//! sealed entry is sealed again with it.
//!
//! Sealing is deterministic (a synthetic nonce, as AES-SIV does: the nonce
//! is a keyed hash of the context and the plaintext), so the coordinator
//! can keep comparing encoded entries to find what changed: the same value
//! under the same key gives the same bytes, and a changed value changes
//! the nonce. All it reveals is that two sealings of one context hold the
//! same value, which the unchanged entry reveals anyway. The context (the
//! entry's key, `p/shop`) is authenticated with the value, so a sealed
//! value cannot be moved to another project's entry.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use serde::{Deserialize, Serialize};

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
/// Most key generations one message carries (the coordinator keeps the
/// current one and those entries may still use).
pub const MAX_KEYS_PER_MESSAGE: usize = 16;

/// A value sealed to generation `key` of the cluster key.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sealed {
    pub key: u32,
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key", &self.key)
            .field("bytes", &self.ciphertext.len())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed to cluster key generation {0}, which this node does not hold")]
    UnknownKey(u32),
    #[error("a sealed value does not open with its key (damaged, or moved from another entry)")]
    Corrupt,
}

/// One generation's key material, as handed to edges. `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMaterial {
    pub generation: u32,
    pub key: [u8; KEY_LEN],
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("generation", &self.generation)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// One generation of the cluster key, ready to seal and open.
pub struct SealKey {
    material: KeyMaterial,
    aead: LessSafeKey,
    nonce_key: [u8; 32],
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.material.fmt(f)
    }
}

impl SealKey {
    pub fn new(material: KeyMaterial) -> SealKey {
        // Separate keys for the cipher and for the nonce, from one secret.
        let enc = blake3::derive_key("outpost cluster seal v1 cipher", &material.key);
        let nonce_key = blake3::derive_key("outpost cluster seal v1 nonce", &material.key);
        let aead = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, &enc).expect("a 32-byte ChaCha20 key"),
        );
        SealKey {
            material,
            aead,
            nonce_key,
        }
    }

    /// A new random key of `generation`.
    pub fn generate(generation: u32) -> SealKey {
        let mut key = [0u8; KEY_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .expect("the system's random source");
        SealKey::new(KeyMaterial { generation, key })
    }

    pub fn generation(&self) -> u32 {
        self.material.generation
    }

    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Sealed {
        let mut h = blake3::Hasher::new_keyed(&self.nonce_key);
        h.update(&(context.len() as u64).to_le_bytes());
        h.update(context.as_bytes());
        h.update(plaintext);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&h.finalize().as_bytes()[..NONCE_LEN]);
        let mut ciphertext = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut ciphertext,
            )
            .expect("sealing into memory cannot fail");
        Sealed {
            key: self.generation(),
            nonce,
            ciphertext,
        }
    }

    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        if sealed.key != self.generation() {
            return Err(SealError::UnknownKey(sealed.key));
        }
        let mut buf = sealed.ciphertext.clone();
        let n = self
            .aead
            .open_in_place(
                Nonce::assume_unique_for_key(sealed.nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Corrupt)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

/// The generations a node holds.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<u32, Arc<SealKey>>,
}

impl Keyring {
    pub fn get(&self, generation: u32) -> Option<&Arc<SealKey>> {
        self.keys.get(&generation)
    }

    pub fn contains(&self, generation: u32) -> bool {
        self.keys.contains_key(&generation)
    }

    pub fn insert(&mut self, key: SealKey) {
        self.keys.insert(key.generation(), Arc::new(key));
    }

    /// The highest generation: what new values are sealed with.
    pub fn newest(&self) -> Option<&Arc<SealKey>> {
        self.keys.values().next_back()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every generation's material (what a peer hands to another).
    pub fn materials(&self) -> Vec<KeyMaterial> {
        self.keys.values().map(|k| k.material().clone()).collect()
    }

    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Vec<u8>, SealError> {
        self.keys
            .get(&sealed.key)
            .ok_or(SealError::UnknownKey(sealed.key))?
            .open(context, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_deterministically() {
        let k = SealKey::generate(3);
        let s = k.seal("p/shop", b"hunter2");
        assert_eq!(s.key, 3);
        assert_eq!(k.open("p/shop", &s).unwrap(), b"hunter2");
        // Same value, same context: the same bytes (diffs stay exact).
        assert_eq!(k.seal("p/shop", b"hunter2"), s);
        // Another value or another context: another nonce.
        assert_ne!(k.seal("p/shop", b"hunter3").nonce, s.nonce);
        assert_ne!(k.seal("p/blog", b"hunter2").nonce, s.nonce);
        assert!(!s.ciphertext.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(k.open("p/shop", &k.seal("p/shop", b"")).unwrap(), b"");
    }

    #[test]
    fn what_does_not_open_is_refused() {
        let k = SealKey::generate(1);
        let other = SealKey::generate(1);
        let s = k.seal("c/shop.example.com", b"private key");
        let mut flipped = s.clone();
        flipped.ciphertext[0] ^= 1;
        let mut short = s.clone();
        short.ciphertext.truncate(3);
        let mut nonce = s.clone();
        nonce.nonce[0] ^= 1;
        let cases: Vec<(&str, &SealKey, &str, &Sealed, SealError)> = vec![
            (
                "another entry's context",
                &k,
                "c/evil.example.com",
                &s,
                SealError::Corrupt,
            ),
            (
                "another key of the same generation",
                &other,
                "c/shop.example.com",
                &s,
                SealError::Corrupt,
            ),
            (
                "a flipped bit",
                &k,
                "c/shop.example.com",
                &flipped,
                SealError::Corrupt,
            ),
            (
                "shorter than a tag",
                &k,
                "c/shop.example.com",
                &short,
                SealError::Corrupt,
            ),
            (
                "another nonce",
                &k,
                "c/shop.example.com",
                &nonce,
                SealError::Corrupt,
            ),
        ];
        for (what, key, ctx, sealed, want) in cases {
            assert_eq!(key.open(ctx, sealed), Err(want), "{what}");
        }
        let mut ring = Keyring::default();
        assert_eq!(
            ring.open("c/shop.example.com", &s),
            Err(SealError::UnknownKey(1))
        );
        ring.insert(SealKey::new(k.material().clone()));
        assert_eq!(ring.open("c/shop.example.com", &s).unwrap(), b"private key");
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = SealKey::generate(7);
        let hex: String = k
            .material()
            .key
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for shown in [format!("{k:?}"), format!("{:?}", k.material())] {
            assert!(
                shown.contains("redacted") && !shown.contains(&hex),
                "{shown}"
            );
        }
    }
}
