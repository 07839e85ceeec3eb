//! Random identifiers and secrets, and how secrets are stored.

use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A lowercase alphanumeric id: safe in URLs and as a DNS label.
pub fn new_id(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// 256 bits of randomness as hex.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// Tokens are high-entropy random strings, so a fast hash is enough to
/// store them (no password stretching needed); only the hash is kept.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

pub const API_TOKEN_PREFIX: &str = "opt_";
