//! Which node of a region fetches a blob from the coordinator: rendezvous
//! (highest random weight) hashing of the blob over the region's live
//! members. Every node computes the same owner from the same membership,
//! so the coordinator sends each blob about once per region; when the
//! owner leaves, only its blobs move to other owners.

use protocol::BlobHash;

fn weight(blob: &BlobHash, node_id: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&blob.0);
    h.update(node_id.as_bytes());
    *h.finalize().as_bytes()
}

/// The owner of `blob` among `candidates` (node ids), if any.
pub fn owner<'a>(
    blob: &BlobHash,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|id| (weight(blob, id), id))
        .max()
        .map(|(_, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn owner_table() {
        let b = BlobHash::of(b"x");
        let cases: Vec<(Vec<&str>, bool)> = vec![
            (vec![], false),
            (vec!["a"], true),
            (vec!["a", "b", "c"], true),
        ];
        for (nodes, some) in cases {
            assert_eq!(
                owner(&b, nodes.iter().copied()).is_some(),
                some,
                "{nodes:?}"
            );
        }
        // Order of candidates does not matter.
        assert_eq!(owner(&b, ["a", "b", "c"]), owner(&b, ["c", "a", "b"]));
    }

    #[test]
    fn spreads_blobs_and_moves_only_the_leavers_share() {
        let nodes = ["n1", "n2", "n3", "n4", "n5"];
        let blobs: Vec<BlobHash> = (0..1000u32)
            .map(|i| BlobHash::of(&i.to_le_bytes()))
            .collect();
        let mut per: BTreeMap<&str, usize> = BTreeMap::new();
        for b in &blobs {
            *per.entry(owner(b, nodes).unwrap()).or_default() += 1;
        }
        assert_eq!(per.len(), 5);
        assert!(per.values().all(|&n| n > 120), "{per:?}");
        let without = ["n1", "n2", "n3", "n4"];
        for b in &blobs {
            let before = owner(b, nodes).unwrap();
            let after = owner(b, without).unwrap();
            if before != "n5" {
                assert_eq!(before, after);
            }
        }
    }
}
