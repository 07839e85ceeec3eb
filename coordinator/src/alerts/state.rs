//! One series' alert state, as Prometheus keeps it: a breach makes it
//! pending, a breach that lasts the rule's `for` makes it firing, the end
//! of the breach resolves it (a pending one just goes back to inactive).
//! Pure: the evaluator passes the clock in.

/// Where a series stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Inactive,
    Pending,
    Firing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Inactive => "resolved",
            Phase::Pending => "pending",
            Phase::Firing => "firing",
        }
    }

    pub fn parse(s: &str) -> Phase {
        match s {
            "pending" => Phase::Pending,
            "firing" => Phase::Firing,
            _ => Phase::Inactive,
        }
    }
}

/// A series' state between evaluations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Series {
    pub phase: Phase,
    pub value: f64,
    /// When the current breach began (pending or firing).
    pub active_since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    /// When a notification about it was last queued.
    pub notified_at: Option<i64>,
}

impl Series {
    pub fn inactive() -> Series {
        Series {
            phase: Phase::Inactive,
            value: 0.0,
            active_since: 0,
            fired_at: None,
            resolved_at: None,
            notified_at: None,
        }
    }
}

/// What an evaluation changed that someone should hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Fired,
    Resolved,
    /// Still firing, and the repeat interval has passed since the last
    /// notification.
    Repeat,
}

/// The next state of a series, and what to tell.
pub fn step(
    prev: Series,
    breached: bool,
    value: f64,
    now: i64,
    for_ms: i64,
    repeat_ms: i64,
) -> (Series, Option<Transition>) {
    let mut s = Series { value, ..prev };
    match (prev.phase, breached) {
        (Phase::Inactive, true) => {
            s.active_since = now;
            s.phase = Phase::Pending;
            if for_ms <= 0 {
                return fire(s, now);
            }
            (s, None)
        }
        (Phase::Pending, true) if now - prev.active_since >= for_ms => fire(s, now),
        (Phase::Pending, true) => (s, None),
        (Phase::Firing, true) => {
            if prev.notified_at.is_some_and(|at| now - at >= repeat_ms) {
                s.notified_at = Some(now);
                return (s, Some(Transition::Repeat));
            }
            (s, None)
        }
        (Phase::Firing, false) => {
            s.phase = Phase::Inactive;
            s.resolved_at = Some(now);
            s.notified_at = Some(now);
            (s, Some(Transition::Resolved))
        }
        (Phase::Pending, false) => {
            s.phase = Phase::Inactive;
            (s, None)
        }
        (Phase::Inactive, false) => (s, None),
    }
}

fn fire(mut s: Series, now: i64) -> (Series, Option<Transition>) {
    s.phase = Phase::Firing;
    s.fired_at = Some(now);
    s.resolved_at = None;
    s.notified_at = Some(now);
    (s, Some(Transition::Fired))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOR: i64 = 60_000;
    const REPEAT: i64 = 4 * 3_600_000;

    /// Runs a sequence of (time, breached) and collects the transitions.
    fn run(for_ms: i64, steps: &[(i64, bool)]) -> Vec<(i64, Phase, Option<Transition>)> {
        let mut s = Series::inactive();
        steps
            .iter()
            .map(|&(t, b)| {
                let (next, tr) = step(s, b, if b { 10.0 } else { 0.0 }, t, for_ms, REPEAT);
                s = next;
                (t, s.phase, tr)
            })
            .collect()
    }

    #[test]
    fn breach_pending_firing_resolved() {
        use Phase::*;
        use Transition::*;
        let got = run(
            FOR,
            &[
                (0, true),
                (30_000, true),
                (60_000, true),
                (90_000, true),
                (120_000, false),
                (130_000, false),
            ],
        );
        assert_eq!(
            got,
            [
                (0, Pending, None),
                (30_000, Pending, None),
                (60_000, Firing, Some(Fired)),
                (90_000, Firing, None),
                (120_000, Inactive, Some(Resolved)),
                (130_000, Inactive, None),
            ]
        );
    }

    #[test]
    fn a_breach_shorter_than_for_never_fires() {
        use Phase::*;
        let got = run(
            FOR,
            &[(0, true), (30_000, false), (40_000, true), (90_000, true)],
        );
        assert_eq!(
            got,
            [
                (0, Pending, None),
                (30_000, Inactive, None),
                (40_000, Pending, None),
                (90_000, Pending, None)
            ]
        );
    }

    #[test]
    fn for_zero_fires_at_once_and_repeats_after_the_interval() {
        use Phase::*;
        use Transition::*;
        let got = run(
            0,
            &[
                (0, true),
                (REPEAT - 1, true),
                (REPEAT, true),
                (REPEAT + 1, true),
            ],
        );
        assert_eq!(
            got,
            [
                (0, Firing, Some(Fired)),
                (REPEAT - 1, Firing, None),
                (REPEAT, Firing, Some(Repeat)),
                (REPEAT + 1, Firing, None),
            ]
        );
    }

    #[test]
    fn phases_round_trip() {
        for p in [Phase::Inactive, Phase::Pending, Phase::Firing] {
            assert_eq!(Phase::parse(p.as_str()), p);
        }
    }
}
