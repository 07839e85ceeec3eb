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

/// Counts in at most four characters and a suffix ("1.2k", "34M"), for
/// cards and axes; tables show the exact number next to it.
pub fn compact(n: u64) -> String {
    // SI prefixes, like `size`: "B" would read as bytes.
    const UNITS: [&str; 6] = ["k", "M", "G", "T", "P", "E"];
    if n < 1000 {
        return n.to_string();
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    // Scale up while the rounded figure would still show four digits.
    while v >= 999.5 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if v >= 99.95 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    let digits = digits.strip_suffix(".0").unwrap_or(&digits);
    format!("{digits}{}", UNITS[unit])
}

/// Exact counts for tables, grouped by thousands ("12,345").
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration measured in milliseconds, with as many digits as matter.
pub fn millis(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        "—".to_string()
    } else if ms < 9.95 {
        format!("{ms:.1} ms")
    } else if ms < 999.5 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// `part` of `total` as a share; "—" when there is no total to share.
pub fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return "—".to_string();
    }
    let p = part as f64 * 100.0 / total as f64;
    if part == 0 {
        "0%".to_string()
    } else if p < 0.1 {
        "<0.1%".to_string()
    } else if p < 9.95 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// "May 1", for axis labels (UTC, like every time we print).
pub fn day_label(ms: i64) -> String {
    let (_, mo, d, ..) = parts(ms);
    format!("{} {d}", MONTHS[mo as usize - 1])
}

/// "14:05", for axis labels.
pub fn hour_minute(ms: i64) -> String {
    let (_, _, _, h, mi, _) = parts(ms);
    format!("{h:02}:{mi:02}")
}

/// The value of an `<input type="datetime-local">`: minutes, no zone (the
/// form says the times are UTC).
pub fn datetime_local(ms: i64) -> String {
    let (y, mo, d, h, mi, _) = parts(ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}")
}

/// Reads what a `datetime-local` input sends (`YYYY-MM-DDTHH:MM`, seconds
/// optional) as a UTC time in Unix ms; `None` for anything else.
pub fn parse_datetime_local(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if !matches!(b.len(), 16 | 19) {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits
            .iter()
            .try_fold(0i64, |acc, d| Some(acc * 10 + i64::from(d - b'0')))
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) || (b.len() == 19 && b[16] != b':') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi) = (num(11, 13)?, num(14, 16)?);
    let sec = if b.len() == 19 { num(17, 19)? } else { 0 };
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + sec) * SECOND)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The inverse of `civil` (same source).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

    #[test]
    fn compact_numbers() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1k"),
            (1_234, "1.2k"),
            (9_999, "10k"),
            (12_345, "12.3k"),
            (99_949, "99.9k"),
            (99_950, "100k"),
            (123_456, "123k"),
            (999_499, "999k"),
            (999_500, "1M"),
            (3_400_000, "3.4M"),
            (5_000_000_000, "5G"),
            (u64::MAX, "18.4E"),
        ];
        for (n, want) in cases {
            assert_eq!(compact(n), want, "{n}");
        }
        let exact = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ];
        for (n, want) in exact {
            assert_eq!(grouped(n), want, "{n}");
        }
    }

    #[test]
    fn durations_and_shares() {
        let ms = [
            (0.0, "0.0 ms"),
            (0.42, "0.4 ms"),
            (9.94, "9.9 ms"),
            (9.96, "10 ms"),
            (12.4, "12 ms"),
            (999.4, "999 ms"),
            (999.5, "1.00 s"),
            (1234.0, "1.23 s"),
            (f64::NAN, "—"),
            (f64::INFINITY, "—"),
            (-1.0, "—"),
        ];
        for (v, want) in ms {
            assert_eq!(millis(v), want, "{v}");
        }
        let shares = [
            (0, 0, "—"),
            (5, 0, "—"),
            (0, 10, "0%"),
            (1, 10_000, "<0.1%"),
            (1, 1_000, "0.1%"),
            (42, 1_000, "4.2%"),
            (1, 3, "33%"),
            (10, 10, "100%"),
            (u64::MAX, u64::MAX, "100%"),
        ];
        for (part, total, want) in shares {
            assert_eq!(percent(part, total), want, "{part}/{total}");
        }
    }

    #[test]
    fn axis_labels() {
        assert_eq!(day_label(1_714_564_800_000), "May 1");
        assert_eq!(day_label(0), "Jan 1");
        assert_eq!(hour_minute(1_714_564_800_000 + 5 * MINUTE), "12:05");
    }

    #[test]
    fn datetime_local_round_trips() {
        let cases = [
            ("2024-05-01T12:00", Some(1_714_564_800_000)),
            ("2024-05-01T12:00:30", Some(1_714_564_830_000)),
            ("2000-02-29T00:00", Some(951_782_400_000)),
            ("1970-01-01T00:00", Some(0)),
            ("1969-12-31T23:59", Some(-MINUTE)),
            ("2023-02-29T00:00", None),
            ("2024-13-01T00:00", None),
            ("2024-04-31T00:00", None),
            ("2024-05-01T24:00", None),
            ("2024-05-01T12:60", None),
            ("2024-05-01 12:00", None),
            ("2024-05-01T12:00Z", None),
            ("2024-05-01T12:00:00.000", None),
            ("+024-05-01T12:00", None),
            ("2024-05-01", None),
            ("", None),
            ("２０２４-05-01T12:00", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_datetime_local(input), want, "{input}");
        }
        for ms in [0, 1_714_564_800_000, 951_782_400_000, -MINUTE] {
            assert_eq!(parse_datetime_local(&datetime_local(ms)), Some(ms));
        }
    }
}
