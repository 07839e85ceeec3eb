//! A digest of the whole edge keyspace that is updated per entry, not
//! recomputed: LtHash (Bellare and Micciancio's lattice hash, as Facebook
//! and Solana use it). Each `(key, value)` maps to 1,024 16-bit lanes
//! (blake3 in XOF mode); the state is their lane-wise sum modulo 2^16, so
//! adding an entry adds its lanes and removing it subtracts them, and the
//! order of changes does not matter. Finding two different keyspaces with
//! the same sum is a lattice problem believed hard at this size.
//!
//! Every batch signature covers the state after the batch, so an edge
//! that applied a batch can check that its whole store is what the
//! coordinator has, and a snapshot (from the coordinator or relayed by a
//! peer) is verified by summing its entries. Written here (about 40 lines)
//! rather than taken from a crate: the crates that have it carry the rest
//! of their blockchain with them.

use std::fmt;

pub const LANES: usize = 1024;
/// The state's size as stored.
pub const STATE_BYTES: usize = LANES * 2;

#[derive(Clone, PartialEq, Eq)]
pub struct StateHash {
    lanes: Box<[u16; LANES]>,
}

impl Default for StateHash {
    fn default() -> Self {
        StateHash {
            lanes: Box::new([0; LANES]),
        }
    }
}

impl fmt::Debug for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.checksum();
        write!(
            f,
            "StateHash({})",
            c.iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }
}

fn element(key: &str, value: &[u8]) -> [u16; LANES] {
    let mut h = blake3::Hasher::new_derive_key("outpost edge keyspace element v1");
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(key.as_bytes());
    h.update(value);
    let mut bytes = [0u8; STATE_BYTES];
    h.finalize_xof().fill(&mut bytes);
    let mut lanes = [0u16; LANES];
    for (l, b) in lanes.iter_mut().zip(bytes.chunks_exact(2)) {
        *l = u16::from_le_bytes([b[0], b[1]]);
    }
    lanes
}

impl StateHash {
    /// Adds the entry `key = value` to the set.
    pub fn add(&mut self, key: &str, value: &[u8]) {
        for (s, e) in self.lanes.iter_mut().zip(element(key, value)) {
            *s = s.wrapping_add(e);
        }
    }

    /// Removes the entry `key = value`, which must be in the set.
    pub fn remove(&mut self, key: &str, value: &[u8]) {
        for (s, e) in self.lanes.iter_mut().zip(element(key, value)) {
            *s = s.wrapping_sub(e);
        }
    }

    /// What signatures cover: blake3 of the lanes.
    pub fn checksum(&self) -> [u8; 32] {
        *blake3::hash(&self.to_bytes()).as_bytes()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.lanes.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    /// The state from stored bytes; `None` unless exactly [`STATE_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Option<StateHash> {
        if bytes.len() != STATE_BYTES {
            return None;
        }
        let mut s = StateHash::default();
        for (l, b) in s.lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *l = u16::from_le_bytes([b[0], b[1]]);
        }
        Some(s)
    }

    /// The state of a whole keyspace.
    pub fn of<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> StateHash {
        let mut s = StateHash::default();
        for (k, v) in entries {
            s.add(k, v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_free_and_removal_undoes_addition() {
        let mut a = StateHash::default();
        a.add("h/x", b"1");
        a.add("h/y", b"2");
        let mut b = StateHash::default();
        b.add("h/y", b"2");
        b.add("h/x", b"1");
        assert_eq!(a, b);
        a.add("h/z", b"3");
        a.remove("h/z", b"3");
        assert_eq!(a, b);
        // Replacing a value is remove + add.
        a.remove("h/x", b"1");
        a.add("h/x", b"9");
        assert_ne!(a.checksum(), b.checksum());
        // The key and the value are framed: ("h/x", "1") is not ("h/x1", "").
        assert_ne!(
            StateHash::of([("h/x", &b"1"[..])]),
            StateHash::of([("h/x1", &b""[..])])
        );
        assert_eq!(StateHash::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(StateHash::from_bytes(&[0; 3]), None);
        assert_eq!(StateHash::default().to_bytes().len(), STATE_BYTES);
    }
}
