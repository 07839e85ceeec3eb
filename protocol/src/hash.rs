//! Content addresses: blake3 digests shown as lowercase hex.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The blake3 digest of a blob's bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobHash(pub [u8; 32]);

/// A bundle id is the blake3 of the canonical manifest bytes.
pub type BundleId = BlobHash;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid hash {0:?}: expected 64 lowercase hex characters")]
pub struct HashParseError(pub String);

impl BlobHash {
    pub fn of(bytes: &[u8]) -> Self {
        BlobHash(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_blake3(h: blake3::Hash) -> Self {
        BlobHash(*h.as_bytes())
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap());
            s.push(char::from_digit((b & 0xf) as u32, 16).unwrap());
        }
        s
    }

    /// A short prefix for humans (deployment URLs, logs).
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl FromStr for BlobHash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || HashParseError(s.chars().take(80).collect());
        if s.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = hex_val(chunk[0]).ok_or_else(err)?;
            let lo = hex_val(chunk[1]).ok_or_else(err)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(BlobHash(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({})", self.short())
    }
}

// JSON (human readable) carries hex; bincode carries the raw 32 bytes.
impl Serialize for BlobHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for BlobHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            struct HexVisitor;
            impl Visitor<'_> for HexVisitor {
                type Value = BlobHash;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a 64-character lowercase hex blake3 hash")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<BlobHash, E> {
                    v.parse().map_err(E::custom)
                }
            }
            d.deserialize_str(HexVisitor)
        } else {
            <[u8; 32]>::deserialize(d).map(BlobHash)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejections() {
        let h = BlobHash::of(b"hello");
        assert_eq!(h.to_hex().parse::<BlobHash>().unwrap(), h);
        assert_eq!(h.to_hex(), blake3::hash(b"hello").to_hex().as_str());
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"0".repeat(65)] {
            assert!(bad.parse::<BlobHash>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn json_is_hex() {
        let h = BlobHash::of(b"x");
        let j = serde_json::to_string(&h).unwrap();
        assert_eq!(j, format!("\"{}\"", h.to_hex()));
        assert_eq!(serde_json::from_str::<BlobHash>(&j).unwrap(), h);
        assert!(serde_json::from_str::<BlobHash>("\"zz\"").is_err());
    }
}
