//! Which coordinator the link tries next. A cluster may run several
//! coordinators on one database; every one presents a certificate for the
//! same name from the same CA, so any will do. The candidates are the
//! address the node joined through and the config's list; the link tries
//! them one after another, at once, and backs off only once a whole round
//! of them failed. Pure: the link (`crate::link`) does the connecting.

/// The candidates, in the order to try them, each once: the last
/// coordinator the link worked through (while it is still a candidate),
/// then the address the node joined through, then the config's list in
/// its order (the order the coordinators registered in).
pub fn order(joined: &str, listed: &[String], last_good: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(listed.len() + 1);
    for a in std::iter::once(joined).chain(listed.iter().map(String::as_str)) {
        if !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    // A coordinator dropped from the list is not preferred any more: it
    // was deregistered.
    if let Some(i) = last_good.and_then(|g| out.iter().position(|a| a == g)) {
        let good = out.remove(i);
        out.insert(0, good);
    }
    out
}

/// How one attempt at a coordinator ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No link: unreachable, refused, or the handshake failed.
    Failed,
    /// Linked, then lost before the link proved itself (a coordinator
    /// that drops every edge at once counts as a failure, or two of them
    /// would be tried in turn forever without a pause).
    Dropped,
    /// Linked for long enough to count as healthy: whatever ends it, the
    /// other coordinators get a new round at once.
    Lasted,
}

/// The rounds of attempts: every candidate once per round, the last one
/// that worked first.
#[derive(Debug, Clone)]
pub struct Failover {
    joined: String,
    last_good: Option<String>,
    /// Tried this round, without a lasting link.
    tried: Vec<String>,
}

impl Failover {
    pub fn new(joined: impl Into<String>) -> Self {
        Failover {
            joined: joined.into(),
            last_good: None,
            tried: Vec::new(),
        }
    }

    /// The next coordinator to try this round, given the config's list as
    /// it is now; `None`: every candidate failed this round (back off, then
    /// [`Self::new_round`]).
    pub fn next(&self, listed: &[String]) -> Option<String> {
        order(&self.joined, listed, self.last_good.as_deref())
            .into_iter()
            .find(|a| !self.tried.contains(a))
    }

    /// Records how the attempt at `addr` ended. The coordinator just left
    /// is never retried at once: the link moves on to the next one.
    pub fn record(&mut self, addr: &str, outcome: Outcome) {
        if outcome != Outcome::Failed {
            self.last_good = Some(addr.to_string());
        }
        if outcome == Outcome::Lasted {
            self.tried.clear();
        }
        if !self.tried.iter().any(|t| t == addr) {
            self.tried.push(addr.to_string());
        }
    }

    pub fn new_round(&mut self) {
        self.tried.clear();
    }

    /// The coordinator the link last worked through.
    pub fn last_good(&self) -> Option<&str> {
        self.last_good.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// What, the config's list, the last good one, the order wanted.
    type Case = (
        &'static str,
        &'static [&'static str],
        Option<&'static str>,
        &'static [&'static str],
    );

    /// The node joined through `a`.
    #[test]
    fn candidates_come_in_order_each_once() {
        let cases: [Case; 9] = [
            ("joined only", &[], None, &["a"]),
            ("an invalid or absent list", &[], Some("a"), &["a"]),
            ("joined first", &["b", "c"], None, &["a", "b", "c"]),
            (
                "joined listed too",
                &["b", "a", "c"],
                None,
                &["a", "b", "c"],
            ),
            ("duplicates", &["b", "b", "a"], None, &["a", "b"]),
            (
                "last good first",
                &["b", "a", "c"],
                Some("c"),
                &["c", "a", "b"],
            ),
            (
                "last good is joined",
                &["b", "c"],
                Some("a"),
                &["a", "b", "c"],
            ),
            (
                "last good deregistered",
                &["b", "c"],
                Some("x"),
                &["a", "b", "c"],
            ),
            ("joined not listed", &["b"], Some("b"), &["b", "a"]),
        ];
        for (what, listed, good, want) in cases {
            let got = order("a", &strings(listed), good);
            assert_eq!(got, strings(want), "{what}");
        }
    }

    /// A run of attempts from `a`, the joined address: each step is the
    /// outcome of the one tried and the one tried next (`None`: the round
    /// is over, and the next round begins).
    fn run(listed: &[&str], steps: &[(Outcome, Option<&str>)]) -> Failover {
        let listed = strings(listed);
        let mut f = Failover::new("a");
        let mut current = f.next(&listed).expect("a first candidate");
        assert_eq!(current, "a", "the joined address comes first");
        for (i, (outcome, want)) in steps.iter().enumerate() {
            f.record(&current, *outcome);
            let next = f.next(&listed);
            assert_eq!(next.as_deref(), *want, "step {i}");
            current = match next {
                Some(n) => n,
                None => {
                    f.new_round();
                    f.next(&listed).expect("a new round")
                }
            };
        }
        f
    }

    #[test]
    fn a_lost_coordinator_hands_over_to_the_next_at_once() {
        use Outcome::*;
        // a works for a while and dies; b takes over; when b dies, a (the
        // joined one) is next, then c; after a full round of failures the
        // link backs off, and starts over from b, the last that worked.
        let abc = strings(&["a", "b", "c"]);
        let mut f = run(
            &["a", "b", "c"],
            &[
                (Lasted, Some("b")),
                (Lasted, Some("a")),
                (Failed, Some("c")),
                (Failed, None),
            ],
        );
        assert_eq!(f.last_good(), Some("b"));
        assert_eq!(f.next(&abc).as_deref(), Some("b"));
        f.record("b", Failed);
        assert_eq!(f.next(&abc).as_deref(), Some("a"));
    }

    #[test]
    fn one_coordinator_backs_off_after_every_attempt() {
        use Outcome::*;
        run(&[], &[(Failed, None), (Dropped, None), (Lasted, None)]);
    }

    #[test]
    fn coordinators_that_drop_every_link_at_once_end_the_round() {
        use Outcome::*;
        let f = run(
            &["b"],
            &[(Dropped, Some("b")), (Dropped, None), (Dropped, Some("a"))],
        );
        assert_eq!(f.last_good(), Some("b"));
    }

    #[test]
    fn a_coordinator_added_to_the_list_joins_the_round() {
        let mut f = Failover::new("a");
        f.record("a", Outcome::Failed);
        assert_eq!(f.next(&[]), None);
        assert_eq!(f.next(&strings(&["a", "d"])).as_deref(), Some("d"));
    }
}
