//! Encryption at rest for secret variables: XChaCha20-Poly1305 with a
//! 256-bit key kept outside the database (a 0600 file in the data dir, or
//! `OUTPOST_SECRET_KEY`), so a copy of the database alone reveals nothing.

use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key: {0}")]
    Key(String),
    #[error("a stored secret could not be decrypted (wrong key or corrupted row)")]
    Decrypt,
    #[error("secret key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl SecretBox {
    /// From 64 hex characters.
    pub fn from_hex(hex_key: &str) -> Result<Self, SecretError> {
        let bytes =
            hex::decode(hex_key.trim()).map_err(|e| SecretError::Key(format!("not hex: {e}")))?;
        if bytes.len() != 32 {
            return Err(SecretError::Key(
                "must be 32 bytes (64 hex characters)".into(),
            ));
        }
        Ok(SecretBox {
            cipher: XChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key"),
        })
    }

    /// Loads `path`, creating a random key there (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        if path.exists() {
            return Self::from_hex(&std::fs::read_to_string(path).map_err(io)?);
        }
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        platform::fs::write_private(path, hex::encode(key).as_bytes()).map_err(io)?;
        Ok(SecretBox {
            cipher: XChaCha20Poly1305::new(&key),
        })
    }

    /// nonce || ciphertext+tag
    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plaintext.as_bytes())
                .expect("encryption into memory cannot fail"),
        );
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<String, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at NONCE_LEN");
        let plain = self
            .cipher
            .decrypt(&XNonce::from(nonce), ct)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let a = SecretBox::load_or_create(&path).unwrap();
        let sealed = a.seal("hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_ne!(a.seal("x"), a.seal("x"), "nonces must differ");
        let b = SecretBox::load_or_create(&path).unwrap();
        assert_eq!(b.open(&sealed).unwrap(), "hunter2");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.open(&bad).is_err());
        assert!(b.open(&sealed[..10]).is_err());
        let other = SecretBox::from_hex(&"11".repeat(32)).unwrap();
        assert!(other.open(&sealed).is_err());
        for bad_key in ["", "zz", &"11".repeat(31)] {
            assert!(SecretBox::from_hex(bad_key).is_err());
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }
}
