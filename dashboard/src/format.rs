//! Human-readable times, sizes and identifiers, plus URL path escaping.

const SECOND: i64 = 1_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const MONTH: i64 = 30 * DAY;
const YEAR: i64 = 365 * DAY;

/// "3 min ago" / "in 2 days": coarse on purpose, the exact time goes in a
/// tooltip (see `components::time`).
pub fn age(now_ms: i64, at_ms: i64) -> String {
    let diff = now_ms.saturating_sub(at_ms);
    // Small negative differences are clock skew between hosts, not the future.
    if diff > -45 * SECOND && diff < 45 * SECOND {
        return "just now".to_string();
    }
    let span = span(diff.unsigned_abs());
    if diff > 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

fn span(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (n, unit) = if ms < HOUR {
        ((ms + MINUTE / 2) / MINUTE, "min")
    } else if ms < DAY {
        (ms / HOUR, "hour")
    } else if ms < MONTH {
        (ms / DAY, "day")
    } else if ms < YEAR {
        (ms / MONTH, "month")
    } else {
        (ms / YEAR, "year")
    };
    let n = n.max(1);
    if n == 1 || unit == "min" {
        format!("{n} {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), so
/// no date crate is needed for a handful of timestamps.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64) {
    let secs = ms.div_euclid(SECOND);
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    (y, m, d, tod / 3600, tod / 60 % 60, tod % 60)
}

/// Machine-readable, for `<time datetime>`.
pub fn iso(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The exact time for tooltips; UTC because the server cannot know the
/// viewer's zone and a wrong local time is worse than an honest UTC one.
pub fn utc(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// Time of day for build-log prefixes (the page already says which day).
pub fn clock(ms: i64) -> String {
    let (_, _, _, h, mi, s) = parts(ms);
    format!("{h:02}:{mi:02}:{s:02}")
}

/// Decimal units, as file managers and browsers show them.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Seven characters, like `git log --oneline`.
pub fn short_sha(sha: &str) -> &str {
    match sha.char_indices().nth(7) {
        Some((i, _)) => &sha[..i],
        None => sha,
    }
}

/// Percent-encodes one path segment: names come from users and must not be
/// able to add segments (`/`) or a query (`?`) to the URLs we build.
pub fn seg(s: &str) -> String {
    // Browsers resolve `.` and `..` segments before sending the request.
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let now = 1_714_564_800_000;
        let cases = [
            (0, "just now"),
            (44 * SECOND, "just now"),
            (-30 * SECOND, "just now"),
            (45 * SECOND, "1 min ago"),
            (3 * MINUTE, "3 min ago"),
            (59 * MINUTE, "59 min ago"),
            (HOUR, "1 hour ago"),
            (5 * HOUR + 59 * MINUTE, "5 hours ago"),
            (DAY, "1 day ago"),
            (29 * DAY, "29 days ago"),
            (2 * MONTH, "2 months ago"),
            (YEAR, "1 year ago"),
            (3 * YEAR, "3 years ago"),
            (-5 * MINUTE, "in 5 min"),
            (-2 * DAY, "in 2 days"),
        ];
        for (ago, want) in cases {
            assert_eq!(age(now, now - ago), want, "{ago} ms ago");
        }
        assert_eq!(
            age(i64::MAX, i64::MIN),
            "292 years ago".replace("292", &(i64::MAX / YEAR).to_string())
        );
    }

    #[test]
    fn utc_times() {
        let cases = [
            (0, "1970-01-01T00:00:00Z", "00:00:00"),
            (1_714_564_800_000, "2024-05-01T12:00:00Z", "12:00:00"),
            (951_782_400_000, "2000-02-29T00:00:00Z", "00:00:00"),
            (1_709_251_199_999, "2024-02-29T23:59:59Z", "23:59:59"),
            (-1_000, "1969-12-31T23:59:59Z", "23:59:59"),
        ];
        for (ms, iso_want, clock_want) in cases {
            assert_eq!(iso(ms), iso_want);
            assert_eq!(clock(ms), clock_want);
        }
        assert_eq!(utc(1_714_564_800_000), "2024-05-01 12:00:00 UTC");
    }

    #[test]
    fn sizes() {
        let cases = [
            (0, "0 B"),
            (999, "999 B"),
            (1_000, "1.0 kB"),
            (1_234, "1.2 kB"),
            (99_949, "99.9 kB"),
            (123_456, "123 kB"),
            (999_999, "1.0 MB"),
            (1_234_567, "1.2 MB"),
            (5_000_000_000, "5.0 GB"),
            (u64::MAX, "18447 PB"),
        ];
        for (bytes, want) in cases {
            assert_eq!(size(bytes), want, "{bytes}");
        }
    }

    #[test]
    fn short_shas() {
        assert_eq!(short_sha("0123456789abcdef"), "0123456");
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(short_sha("ééééééééé"), "ééééééé");
    }

    #[test]
    fn segments() {
        let cases = [
            ("blog", "blog"),
            ("a/b", "a%2Fb"),
            ("x?y#z", "x%3Fy%23z"),
            ("..", "%2E%2E"),
            ("a.b_c~d-e", "a.b_c~d-e"),
            ("é", "%C3%A9"),
        ];
        for (input, want) in cases {
            assert_eq!(seg(input), want);
        }
    }
}
