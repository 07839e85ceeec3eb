//! What the mesh thinks of each node, assembled from the member lists
//! edges report. The coordinator is not a SWIM member: it only reads what
//! the members see, so a node the coordinator cannot reach may still be
//! alive for its peers (and the other way round).

use std::collections::HashMap;
use std::sync::Mutex;

use protocol::mesh::{MemberState, MemberView};

/// Views older than this are ignored (a reporter that stopped reporting
/// is itself probably gone).
const FRESH_MS: i64 = 30_000;

#[derive(Default)]
pub struct MeshViews {
    /// reporter node id → (when, what it saw).
    views: Mutex<HashMap<String, (i64, Vec<MemberView>)>>,
}

/// The mesh's verdict on one node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MeshVerdict {
    pub state: MemberState,
    /// How many fresh reporters know the node at all.
    pub seen_by: usize,
}

impl MeshViews {
    pub fn record(&self, reporter: &str, now_ms: i64, members: Vec<MemberView>) {
        self.views
            .lock()
            .unwrap()
            .insert(reporter.to_string(), (now_ms, members));
    }

    pub fn verdicts(&self, now_ms: i64) -> HashMap<String, MeshVerdict> {
        let views = self.views.lock().unwrap();
        let fresh: Vec<(&str, &[MemberView])> = views
            .iter()
            .filter(|(_, (at, _))| now_ms - at <= FRESH_MS)
            .map(|(k, (_, v))| (k.as_str(), v.as_slice()))
            .collect();
        verdicts(&fresh)
    }
}

/// Pure: combines reporters' views. A node is `down` when most reporters
/// that know it say so, `suspect` when any says suspect or down without a
/// majority, else `alive`. A node never judges itself.
pub fn verdicts(views: &[(&str, &[MemberView])]) -> HashMap<String, MeshVerdict> {
    let mut tally: HashMap<&str, (usize, usize, usize)> = HashMap::new();
    for (reporter, members) in views {
        for m in members.iter() {
            if m.node_id == *reporter {
                continue;
            }
            let t = tally.entry(m.node_id.as_str()).or_default();
            match m.state {
                MemberState::Alive => t.0 += 1,
                MemberState::Suspect => t.1 += 1,
                MemberState::Down => t.2 += 1,
            }
        }
    }
    tally
        .into_iter()
        .map(|(id, (alive, suspect, down))| {
            let seen_by = alive + suspect + down;
            let state = if down * 2 > seen_by {
                MemberState::Down
            } else if suspect + down > 0 {
                MemberState::Suspect
            } else {
                MemberState::Alive
            };
            (id.to_string(), MeshVerdict { state, seen_by })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberState::*;

    fn v(id: &str, s: MemberState) -> MemberView {
        MemberView {
            node_id: id.into(),
            state: s,
        }
    }

    #[test]
    fn verdict_table() {
        // (reporters' views, node, expected state, seen_by)
        type Case = (
            Vec<(&'static str, Vec<MemberView>)>,
            &'static str,
            Option<(MemberState, usize)>,
        );
        let cases: Vec<Case> = vec![
            (vec![("a", vec![v("b", Alive)])], "b", Some((Alive, 1))),
            (
                vec![("a", vec![v("c", Down)]), ("b", vec![v("c", Down)])],
                "c",
                Some((Down, 2)),
            ),
            // One partitioned reporter alone cannot declare a node down.
            (
                vec![
                    ("a", vec![v("c", Down)]),
                    ("b", vec![v("c", Alive)]),
                    ("d", vec![v("c", Alive)]),
                ],
                "c",
                Some((Suspect, 3)),
            ),
            (
                vec![("a", vec![v("c", Suspect)]), ("b", vec![v("c", Alive)])],
                "c",
                Some((Suspect, 2)),
            ),
            // Self-reports are ignored.
            (vec![("a", vec![v("a", Alive)])], "a", None),
            (vec![], "a", None),
        ];
        for (views, node, want) in cases {
            let refs: Vec<(&str, &[MemberView])> =
                views.iter().map(|(r, m)| (*r, m.as_slice())).collect();
            let got = verdicts(&refs).get(node).map(|v| (v.state, v.seen_by));
            assert_eq!(got, want, "{views:?}");
        }
    }

    #[test]
    fn stale_views_are_ignored() {
        let views = MeshViews::default();
        views.record("a", 0, vec![v("b", Down)]);
        views.record("c", 50_000, vec![v("b", Alive)]);
        assert_eq!(views.verdicts(50_000)["b"].state, Alive);
    }
}
