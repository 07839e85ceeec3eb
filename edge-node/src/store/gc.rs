//! Which bundles and blobs an edge keeps: a pure plan, no I/O.
//!
//! The edge's disk is a cache of what it serves, not a copy of history.
//! A pass (see `crate::gc`) gathers every complete bundle with its blobs
//! and when a request last used it, and asks [`plan`] what to keep:
//!
//! 1. **Pinned** bundles (what the production and branch hosts serve, or
//!    are about to) are always kept, even past the budget: they are the
//!    node's job.
//! 2. A bundle that **no host** of the config points at any more (its
//!    deployment was deleted) goes once it has not been used for the grace
//!    period, so a request that raced the delete still finishes.
//! 3. Every other bundle is served **on demand** (a deployment's own host)
//!    and is kept most recently used first while the blobs kept so far fit
//!    in the budget; from the first one that does not fit, the rest are
//!    evicted (least recently used go first). An evicted bundle is fetched
//!    again on its next request.
//!
//! Blobs are shared between bundles; a blob is counted once, for the first
//! kept bundle that holds it. [`sweep`] then picks the blob files that no
//! kept bundle holds and that are older than the grace period: a blob
//! written for a bundle still being fetched is younger than that.

use std::collections::{BTreeMap, HashSet};

use protocol::{BlobHash, BundleId};

/// A complete bundle as a pass sees it.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub id: BundleId,
    pub blobs: BTreeMap<BlobHash, u64>,
    /// When it was last served, loaded or pinned (Unix ms).
    pub last_used_ms: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub now_ms: i64,
    pub grace_ms: i64,
    /// Bytes of blobs kept at most (pinned bundles may exceed it alone).
    pub budget_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No host points at it, and it was not used within the grace period.
    Unreferenced,
    /// Served on demand, and did not fit in the budget.
    Evicted,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub drop: Vec<(BundleId, Reason)>,
    /// Every blob a kept bundle holds.
    pub keep: HashSet<BlobHash>,
    /// Their bytes.
    pub kept_bytes: u64,
    /// The pinned bundles alone need more than the budget.
    pub pinned_over_budget: bool,
}

/// What to keep of `bundles`; `referenced` tells whether any host of the
/// config points at a bundle.
pub fn plan(
    bundles: &[Bundle],
    pinned: &HashSet<BundleId>,
    referenced: impl Fn(&BundleId) -> bool,
    rules: Rules,
) -> Plan {
    let mut p = Plan::default();
    let keep = |p: &mut Plan, b: &Bundle| {
        for (h, size) in &b.blobs {
            if p.keep.insert(*h) {
                p.kept_bytes += size;
            }
        }
    };
    let new_bytes = |p: &Plan, b: &Bundle| -> u64 {
        b.blobs
            .iter()
            .filter(|(h, _)| !p.keep.contains(*h))
            .map(|(_, s)| s)
            .sum()
    };
    for b in bundles.iter().filter(|b| pinned.contains(&b.id)) {
        keep(&mut p, b);
    }
    p.pinned_over_budget = p.kept_bytes > rules.budget_bytes;
    let mut on_demand = Vec::new();
    for b in bundles.iter().filter(|b| !pinned.contains(&b.id)) {
        if referenced(&b.id) {
            on_demand.push(b);
        } else if rules.now_ms - b.last_used_ms >= rules.grace_ms {
            p.drop.push((b.id, Reason::Unreferenced));
        } else {
            // Within its grace period it is served like any other.
            on_demand.push(b);
        }
    }
    // Most recently used first; ties by id so that a plan is repeatable.
    on_demand.sort_by(|a, b| {
        b.last_used_ms
            .cmp(&a.last_used_ms)
            .then_with(|| a.id.0.cmp(&b.id.0))
    });
    let mut full = false;
    for b in on_demand {
        if !full && p.kept_bytes + new_bytes(&p, b) <= rules.budget_bytes {
            keep(&mut p, b);
        } else {
            full = true;
            p.drop.push((b.id, Reason::Evicted));
        }
    }
    p
}

/// A blob file on disk.
#[derive(Debug, Clone)]
pub struct BlobFile {
    pub hash: BlobHash,
    pub bytes: u64,
    pub modified_ms: i64,
}

/// The blob files to remove: held by no kept bundle, and older than the
/// grace period.
pub fn sweep<'a>(
    files: &'a [BlobFile],
    keep: &'a HashSet<BlobHash>,
    rules: Rules,
) -> impl Iterator<Item = &'a BlobFile> + 'a {
    files
        .iter()
        .filter(move |f| !keep.contains(&f.hash) && rules.now_ms - f.modified_ms >= rules.grace_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn blob(tag: &str) -> BlobHash {
        BlobHash::of(tag.as_bytes())
    }

    fn bundle(tag: &str, blobs: &[(&str, u64)], last_used_ms: i64) -> Bundle {
        Bundle {
            id: BlobHash::of(format!("bundle {tag}").as_bytes()),
            blobs: blobs.iter().map(|(b, s)| (blob(b), *s)).collect(),
            last_used_ms,
        }
    }

    fn rules(budget_bytes: u64) -> Rules {
        Rules {
            now_ms: 100 * MIN,
            grace_ms: 10 * MIN,
            budget_bytes,
        }
    }

    /// Each case: bundles (tag, blobs, minutes since last use, pinned,
    /// referenced), budget → the dropped tags with why, the kept bytes.
    #[test]
    fn plan_table() {
        type B<'a> = (&'a str, Vec<(&'a str, u64)>, i64, bool, bool);
        type Case<'a> = (&'a str, Vec<B<'a>>, u64, Vec<(&'a str, Reason)>, u64);
        let cases: Vec<Case> = vec![
            (
                "everything fits",
                vec![
                    ("prod", vec![("a", 10), ("b", 10)], 0, true, true),
                    ("old", vec![("a", 10), ("c", 5)], 50, false, true),
                ],
                100,
                vec![],
                25,
            ),
            (
                "a pinned bundle is kept past the budget, on-demand ones go",
                vec![
                    ("prod", vec![("a", 80)], 0, true, true),
                    ("old", vec![("c", 30)], 1, false, true),
                ],
                50,
                vec![("old", Reason::Evicted)],
                80,
            ),
            (
                "least recently used go first; after the first miss, all older go",
                vec![
                    ("new", vec![("n", 40)], 1, false, true),
                    ("mid", vec![("m", 40)], 5, false, true),
                    ("tiny-old", vec![("t", 1)], 9, false, true),
                ],
                50,
                vec![("mid", Reason::Evicted), ("tiny-old", Reason::Evicted)],
                40,
            ),
            (
                "shared blobs count once: a bundle that adds nothing new fits",
                vec![
                    ("prod", vec![("a", 40)], 0, true, true),
                    ("same", vec![("a", 40)], 30, false, true),
                ],
                40,
                vec![],
                40,
            ),
            (
                "unreferenced goes after the grace period, not before",
                vec![
                    ("deleted-long-ago", vec![("x", 1)], 11, false, false),
                    ("deleted-just-now", vec![("y", 1)], 2, false, false),
                ],
                100,
                vec![("deleted-long-ago", Reason::Unreferenced)],
                1,
            ),
            (
                "pinned wins over unreferenced (a host is about to serve it)",
                vec![("next", vec![("z", 3)], 60, true, false)],
                100,
                vec![],
                3,
            ),
        ];
        for (name, spec, budget, want_drop, want_bytes) in cases {
            let r = rules(budget);
            let bundles: Vec<Bundle> = spec
                .iter()
                .map(|(t, b, ago, _, _)| bundle(t, b, r.now_ms - ago * MIN))
                .collect();
            let tag_of = |id: &BundleId| spec[bundles.iter().position(|b| b.id == *id).unwrap()].0;
            let pinned: HashSet<BundleId> = spec
                .iter()
                .zip(&bundles)
                .filter(|(s, _)| s.3)
                .map(|(_, b)| b.id)
                .collect();
            let referenced: HashSet<BundleId> = spec
                .iter()
                .zip(&bundles)
                .filter(|(s, _)| s.4)
                .map(|(_, b)| b.id)
                .collect();
            let p = plan(&bundles, &pinned, |id| referenced.contains(id), r);
            let got: Vec<(&str, Reason)> = p.drop.iter().map(|(id, d)| (tag_of(id), *d)).collect();
            assert_eq!(got, want_drop, "{name}");
            assert_eq!(p.kept_bytes, want_bytes, "{name}");
        }
    }

    #[test]
    fn pinned_alone_over_budget_is_reported() {
        let b = bundle("prod", &[("a", 80)], 0);
        let p = plan(
            std::slice::from_ref(&b),
            &[b.id].into(),
            |_| true,
            rules(50),
        );
        assert!(p.pinned_over_budget);
        assert!(p.drop.is_empty());
    }

    #[test]
    fn sweep_spares_kept_and_young_blobs() {
        let r = rules(0);
        let file = |tag: &str, ago_min: i64| BlobFile {
            hash: blob(tag),
            bytes: 1,
            modified_ms: r.now_ms - ago_min * MIN,
        };
        let files = vec![file("kept", 60), file("old", 60), file("young", 1)];
        let keep: HashSet<BlobHash> = [blob("kept")].into();
        let gone: Vec<BlobHash> = sweep(&files, &keep, r).map(|f| f.hash).collect();
        assert_eq!(gone, vec![blob("old")]);
    }
}
