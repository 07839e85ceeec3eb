//! Which bundles the sync loads next, fairly between projects: one
//! tenant's huge bundle or slow-compiling functions take one of a few
//! slots, never the whole sync. Pure; the sync runs what this picks.

use std::collections::{BTreeMap, BTreeSet};

use protocol::BundleId;

/// Bundles loading at once on a node.
pub const MAX_LOADS: usize = 4;
/// Bundles of one project loading at once (while others wait).
pub const MAX_LOADS_PER_PROJECT: usize = 2;

/// From `wanted` (bundle → its project) not yet complete, the ones to
/// start now beside `loading`: projects take turns (fewest in flight
/// first, then by name), each bundle once, within both limits.
pub fn pick(
    wanted: &BTreeMap<BundleId, String>,
    loading: &BTreeMap<BundleId, String>,
    max_total: usize,
    max_per_project: usize,
) -> Vec<BundleId> {
    let mut queues: BTreeMap<&str, Vec<BundleId>> = BTreeMap::new();
    for (b, p) in wanted {
        if !loading.contains_key(b) {
            queues.entry(p.as_str()).or_default().push(*b);
        }
    }
    let mut in_flight: BTreeMap<&str, usize> = BTreeMap::new();
    for p in loading.values() {
        *in_flight.entry(p.as_str()).or_default() += 1;
    }
    let mut free = max_total.saturating_sub(loading.len());
    let mut out = Vec::new();
    let mut exhausted = BTreeSet::new();
    while free > 0 && exhausted.len() < queues.len() {
        // The project with the fewest loads in flight goes next.
        let next = queues
            .iter()
            .filter(|(p, _)| !exhausted.contains(*p))
            .map(|(p, _)| (*in_flight.get(p).unwrap_or(&0), *p))
            .min();
        let Some((n, p)) = next else { break };
        let q = queues.get_mut(p).expect("listed");
        if n >= max_per_project || q.is_empty() {
            exhausted.insert(p);
            continue;
        }
        out.push(q.remove(0));
        *in_flight.entry(p).or_default() += 1;
        free -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::BlobHash;

    fn b(tag: &str) -> BundleId {
        BlobHash::of(tag.as_bytes())
    }

    fn map(items: &[(&str, &str)]) -> BTreeMap<BundleId, String> {
        items
            .iter()
            .map(|(bundle, p)| (b(bundle), p.to_string()))
            .collect()
    }

    /// (bundle tag, project) pairs.
    type Bundles<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn projects_take_turns_within_the_limits() {
        // (wanted, loading, how many start)
        let cases: &[(Bundles, Bundles, usize)] = &[
            // Nothing wanted.
            (&[], &[], 0),
            // One project with many bundles gets its share, not all slots.
            (
                &[("a1", "a"), ("a2", "a"), ("a3", "a"), ("a4", "a")],
                &[],
                2,
            ),
            // Four projects: one each.
            (
                &[
                    ("a1", "a"),
                    ("b1", "b"),
                    ("c1", "c"),
                    ("d1", "d"),
                    ("a2", "a"),
                ],
                &[],
                4,
            ),
            // A full node starts nothing.
            (
                &[("e1", "e")],
                &[("a1", "a"), ("b1", "b"), ("c1", "c"), ("d1", "d")],
                0,
            ),
            // A project already at its share waits while another starts.
            (&[("a3", "a"), ("b1", "b")], &[("a1", "a"), ("a2", "a")], 1),
        ];
        for (wanted, loading, n) in cases {
            let got = pick(
                &map(wanted),
                &map(loading),
                MAX_LOADS,
                MAX_LOADS_PER_PROJECT,
            );
            assert_eq!(got.len(), *n, "{wanted:?} beside {loading:?}: {got:?}");
            for g in &got {
                assert!(
                    !map(loading).contains_key(g),
                    "picked a bundle already loading"
                );
            }
        }
        // With a big project and a small one, the small one is among the
        // first picks whatever the names.
        let wanted = map(&[
            ("z1", "zz-small"),
            ("a1", "aa-big"),
            ("a2", "aa-big"),
            ("a3", "aa-big"),
        ]);
        let got = pick(&wanted, &BTreeMap::new(), 2, MAX_LOADS_PER_PROJECT);
        assert!(got.contains(&b("z1")), "{got:?}");
        let loading = map(&[("a1", "aa-big")]);
        let got = pick(&wanted, &loading, MAX_LOADS, MAX_LOADS_PER_PROJECT);
        assert_eq!(got[0], b("z1"), "the project with none in flight first");
    }
}
