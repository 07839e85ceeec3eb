//! Where gridlines go: round values on the count axis, round times on the
//! time axis, so labels read as "500, 1000" and "12:00, 18:00".

use crate::format::{day_label, hour_minute};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Gridline values from 0 up to at least `max`, in at most `intervals`
/// steps of 1, 2 or 5 × 10ⁿ. Never fewer than two values, so the axis has
/// a top to scale against even when every value is 0.
pub fn nice_ticks(max: u64, intervals: u64) -> Vec<u64> {
    if max == 0 {
        return vec![0, 1];
    }
    let step = nice_step(max.div_ceil(intervals.max(1)));
    let n = max.div_ceil(step);
    // Saturating: near u64::MAX the last step would overflow; a top that
    // is not round is better than a panic.
    (0..=n).map(|i| i.saturating_mul(step)).collect()
}

/// The smallest 1, 2 or 5 × 10ⁿ that is at least `raw` (≥ 1).
fn nice_step(raw: u64) -> u64 {
    let mut mag = 1u64;
    while mag <= raw / 10 {
        mag *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| mag.saturating_mul(m))
        .find(|&s| s >= raw)
        .unwrap_or(u64::MAX)
}

/// Round spacings for the time axis; the first at least one bucket wide
/// wins if it gives at most `max_ticks` ticks.
const TIME_STEPS: [i64; 16] = [
    MINUTE,
    2 * MINUTE,
    5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
];

/// Tick spacing for `span` ms with buckets `bucket` ms wide: never finer
/// than a bucket, at most `max_ticks` ticks.
pub fn time_step(span: i64, bucket: i64, max_ticks: i64) -> i64 {
    let span = span.max(0);
    let max_ticks = max_ticks.max(1);
    TIME_STEPS
        .into_iter()
        .find(|&s| s >= bucket && span / s < max_ticks)
        // Longer than the table: whole days.
        .unwrap_or_else(|| (span / max_ticks / DAY + 1).saturating_mul(DAY).max(bucket))
}

/// Multiples of `step` (counted from the Unix epoch, so whole hours and
/// UTC midnights) within `from..=to`.
pub fn time_ticks(from: i64, to: i64, step: i64) -> Vec<i64> {
    let step = step.max(1);
    let mut t = from.div_euclid(step).saturating_mul(step);
    if t < from {
        t = t.saturating_add(step);
    }
    let mut out = Vec::new();
    while t <= to {
        out.push(t);
        match t.checked_add(step) {
            Some(next) => t = next,
            None => break,
        }
    }
    out
}

/// A tick's label: the time of day, or the date where a day starts (and
/// for day-wide steps), so a week of hours reads "May 2, 06:00, 12:00 …".
pub fn time_label(ms: i64, step: i64) -> String {
    if step >= DAY || ms.rem_euclid(DAY) == 0 {
        day_label(ms)
    } else {
        hour_minute(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_ticks_are_round() {
        let cases: [(u64, u64, &[u64]); 13] = [
            (0, 4, &[0, 1]),
            (1, 4, &[0, 1]),
            (3, 4, &[0, 1, 2, 3]),
            (4, 4, &[0, 1, 2, 3, 4]),
            (5, 4, &[0, 2, 4, 6]),
            (10, 4, &[0, 5, 10]),
            (97, 4, &[0, 50, 100]),
            (100, 4, &[0, 50, 100]),
            (101, 4, &[0, 50, 100, 150]),
            (1_234, 4, &[0, 500, 1_000, 1_500]),
            (2_000_000, 4, &[0, 500_000, 1_000_000, 1_500_000, 2_000_000]),
            (7, 0, &[0, 10]),
            (19, 1, &[0, 20]),
        ];
        for (max, intervals, want) in cases {
            assert_eq!(nice_ticks(max, intervals), want, "{max}/{intervals}");
        }
    }

    #[test]
    fn count_ticks_cover_the_maximum_in_few_steps() {
        for max in (0..2_000).chain([u64::MAX / 4, u64::MAX - 1, u64::MAX]) {
            let ticks = nice_ticks(max, 4);
            assert!(ticks.len() >= 2 && ticks.len() <= 5, "{max}: {ticks:?}");
            assert!(*ticks.last().unwrap() >= max, "{max}: {ticks:?}");
            assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{max}: {ticks:?}");
        }
    }

    #[test]
    fn time_steps_fit_the_span() {
        let cases = [
            (HOUR, MINUTE, 6, 15 * MINUTE),
            (HOUR, 5 * MINUTE, 6, 15 * MINUTE),
            (DAY, HOUR, 6, 6 * HOUR),
            (7 * DAY, HOUR, 6, 2 * DAY),
            (7 * DAY, DAY, 6, 2 * DAY),
            (30 * DAY, DAY, 6, 7 * DAY),
            (0, HOUR, 6, HOUR),
            (10 * MINUTE, DAY, 6, DAY),
            (3 * 365 * DAY, DAY, 6, 183 * DAY),
        ];
        for (span, bucket, max, want) in cases {
            assert_eq!(time_step(span, bucket, max), want, "{span} {bucket}");
        }
    }

    #[test]
    fn time_ticks_land_on_round_times() {
        let noon = 1_714_564_800_000; // 2024-05-01 12:00 UTC
        let cases: [(i64, i64, i64, Vec<i64>); 5] = [
            (
                noon,
                noon + HOUR,
                15 * MINUTE,
                (0..=4).map(|i| noon + i * 15 * MINUTE).collect(),
            ),
            (
                noon + 1,
                noon + HOUR,
                30 * MINUTE,
                vec![noon + 30 * MINUTE, noon + HOUR],
            ),
            (noon + 1, noon + 2, HOUR, vec![]),
            (noon, noon, HOUR, vec![noon]),
            (i64::MAX - 10, i64::MAX, 7, vec![i64::MAX - 7, i64::MAX]),
        ];
        for (from, to, step, want) in cases {
            assert_eq!(time_ticks(from, to, step), want, "{from}..{to} by {step}");
        }
    }

    #[test]
    fn time_labels_show_the_day_where_it_starts() {
        let midnight = 1_714_521_600_000; // 2024-05-01 00:00 UTC
        let cases = [
            (midnight, HOUR, "May 1"),
            (midnight + 6 * HOUR, 6 * HOUR, "06:00"),
            (midnight + 90 * MINUTE, 15 * MINUTE, "01:30"),
            (midnight + DAY, MINUTE, "May 2"),
            (midnight + 2 * DAY, 2 * DAY, "May 3"),
        ];
        for (ms, step, want) in cases {
            assert_eq!(time_label(ms, step), want, "{ms}");
        }
    }
}
