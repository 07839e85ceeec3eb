//! When to try again and when to renew: pure, table-tested.

use std::time::Duration;

/// Failing orders are retried at growing intervals up to a day...
const BACKOFF: [u64; 9] = [
    60,
    2 * 60,
    5 * 60,
    10 * 60,
    30 * 60,
    3600,
    3 * 3600,
    6 * 3600,
    24 * 3600,
];
/// ...for up to 30 days, then left alone until someone asks again
/// (`domains verify`), as Caddy and certbot do.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);
/// A CA that says we are rate limited is not asked again before this.
pub const RATE_LIMITED_MIN: Duration = Duration::from_secs(3600);

/// The wait before the next attempt after `failures` failures in a row
/// (`failures` ≥ 1).
pub fn backoff(failures: i64, rate_limited: bool) -> Duration {
    let i = usize::try_from(failures.max(1) - 1)
        .unwrap_or(usize::MAX)
        .min(BACKOFF.len() - 1);
    let d = Duration::from_secs(BACKOFF[i]);
    if rate_limited {
        d.max(RATE_LIMITED_MIN)
    } else {
        d
    }
}

/// Whether to stop retrying: failing since `failing_since` (Unix ms) for
/// longer than [`GIVE_UP_AFTER`] at `now` (Unix ms).
pub fn give_up(failing_since: Option<i64>, now: i64) -> bool {
    failing_since.is_some_and(|s| now - s > GIVE_UP_AFTER.as_millis() as i64)
}

/// When to renew a certificate valid from `not_before` to `not_after` (all
/// Unix ms) without the CA's advice: with a third of its lifetime left.
pub fn renew_at(not_before: i64, not_after: i64) -> i64 {
    not_after - (not_after - not_before).max(0) / 3
}

/// A point in the CA's suggested window (RFC 9773 §4.2: chosen at random
/// in it, so that a fleet does not renew all at once); `unit` in [0, 1].
/// A window already past means now.
pub fn in_window(start: i64, end: i64, unit: f64, now: i64) -> i64 {
    let (start, end) = (start.min(end), start.max(end));
    let at = start + ((end - start) as f64 * unit.clamp(0.0, 1.0)) as i64;
    if end <= now {
        now
    } else {
        at
    }
}

/// When to ask for a certificate's renewal information again: as the CA's
/// `Retry-After` says, kept between an hour and a day (RFC 9773 §4.3).
pub fn ari_recheck(retry_after: Duration) -> Duration {
    retry_after.clamp(Duration::from_secs(3600), Duration::from_secs(24 * 3600))
}

/// Which of `preferred` challenge types the attempt after `failures`
/// failures uses: a failed attempt tries the next type.
pub fn challenge_for(preferred: &[String], failures: i64) -> &str {
    let i = usize::try_from(failures.max(0)).unwrap_or(0) % preferred.len().max(1);
    preferred.get(i).map_or("http-01", String::as_str)
}

/// Whether the attempt after `failures` failures goes to the fallback
/// directory: after three failures in a row at the primary, every other one.
pub fn use_fallback(failures: i64) -> bool {
    failures >= 3 && failures % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_day() {
        let cases = [
            (1, false, 60),
            (2, false, 120),
            (5, false, 1800),
            (9, false, 86400),
            (40, false, 86400),
            (0, false, 60),
            (1, true, 3600),
            (9, true, 86400),
        ];
        for (failures, limited, secs) in cases {
            assert_eq!(
                backoff(failures, limited),
                Duration::from_secs(secs),
                "{failures} {limited}"
            );
        }
    }

    #[test]
    fn giving_up_after_thirty_days() {
        let day = 86_400_000;
        assert!(!give_up(None, 100 * day));
        assert!(!give_up(Some(0), 30 * day));
        assert!(give_up(Some(0), 30 * day + 1));
    }

    #[test]
    fn renewal_with_a_third_left() {
        let day = 86_400_000;
        assert_eq!(renew_at(0, 90 * day), 60 * day);
        assert_eq!(renew_at(10, 10), 10);
        assert_eq!(
            renew_at(20, 10),
            10,
            "a backwards validity renews at its end"
        );
    }

    #[test]
    fn ari_windows() {
        assert_eq!(in_window(100, 200, 0.0, 0), 100);
        assert_eq!(in_window(100, 200, 0.5, 0), 150);
        assert_eq!(in_window(200, 100, 0.5, 0), 150, "reversed bounds");
        assert_eq!(in_window(100, 200, 2.0, 0), 200, "unit clamped");
        assert_eq!(in_window(100, 200, 0.5, 300), 300, "a past window: now");
    }

    #[test]
    fn ari_rechecks_within_an_hour_and_a_day() {
        let h = Duration::from_secs(3600);
        assert_eq!(ari_recheck(Duration::ZERO), h);
        assert_eq!(ari_recheck(6 * h), 6 * h);
        assert_eq!(ari_recheck(100 * h), 24 * h);
    }

    #[test]
    fn challenge_rotation_and_fallback() {
        let prefs = vec!["http-01".to_string(), "tls-alpn-01".to_string()];
        assert_eq!(challenge_for(&prefs, 0), "http-01");
        assert_eq!(challenge_for(&prefs, 1), "tls-alpn-01");
        assert_eq!(challenge_for(&prefs, 2), "http-01");
        assert_eq!(challenge_for(&[], 3), "http-01");
        let fallbacks: Vec<bool> = (0..7).map(use_fallback).collect();
        assert_eq!(fallbacks, [false, false, false, true, false, true, false]);
    }
}
