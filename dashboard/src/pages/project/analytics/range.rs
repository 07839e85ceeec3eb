//! The range and filter in the query string (`range=1h|24h|7d|30d|custom`,
//! `from`, `to`, `env`, `deployment`), read and written in one place so
//! the form and the handler agree on them.

use crate::format::{datetime_local, parse_datetime_local};
use crate::model::{AnalyticsFilter, AnalyticsRange, Granularity};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// What the range select offers, in order; `Custom` comes from `from`/`to`.
pub(super) const PRESETS: [AnalyticsRange; 4] = [
    AnalyticsRange::Hour,
    AnalyticsRange::Day,
    AnalyticsRange::Week,
    AnalyticsRange::Month,
];

impl AnalyticsRange {
    /// The `range=` value.
    pub fn key(self) -> &'static str {
        match self {
            AnalyticsRange::Hour => "1h",
            AnalyticsRange::Day => "24h",
            AnalyticsRange::Week => "7d",
            AnalyticsRange::Month => "30d",
            AnalyticsRange::Custom { .. } => "custom",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            AnalyticsRange::Hour => "Last hour",
            AnalyticsRange::Day => "Last 24 hours",
            AnalyticsRange::Week => "Last 7 days",
            AnalyticsRange::Month => "Last 30 days",
            AnalyticsRange::Custom { .. } => "Custom",
        }
    }

    /// The range the form asked for. An absent or empty `range` is the
    /// default (24 hours); `None` for an unknown one, or a custom range
    /// whose `from`/`to` are not both `datetime-local` values (UTC) with
    /// `from` before `to`.
    pub fn from_query(range: Option<&str>, from: Option<&str>, to: Option<&str>) -> Option<Self> {
        match range.unwrap_or("") {
            "" => Some(Self::default()),
            "custom" => {
                let from_ms = parse_datetime_local(from?)?;
                let to_ms = parse_datetime_local(to?)?;
                (from_ms < to_ms).then_some(AnalyticsRange::Custom { from_ms, to_ms })
            }
            key => PRESETS.into_iter().find(|r| r.key() == key),
        }
    }

    /// `(from, to)` in Unix ms, `to` exclusive: presets end now.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let back = match self {
            AnalyticsRange::Hour => HOUR,
            AnalyticsRange::Day => DAY,
            AnalyticsRange::Week => 7 * DAY,
            AnalyticsRange::Month => 30 * DAY,
            AnalyticsRange::Custom { from_ms, to_ms } => return (from_ms, to_ms),
        };
        (now_ms.saturating_sub(back), now_ms)
    }

    /// Buckets that give the chart tens to a few hundred points: minutes
    /// up to 3 hours, hours up to 8 days, days beyond.
    pub fn granularity(self, now_ms: i64) -> Granularity {
        let (from, to) = self.bounds(now_ms);
        match to.saturating_sub(from) {
            span if span <= 3 * HOUR => Granularity::Minute,
            span if span <= 8 * DAY => Granularity::Hour,
            _ => Granularity::Day,
        }
    }

    /// How the page names the range: "Last 7 days", or the custom times.
    pub(super) fn describe(self) -> String {
        match self {
            AnalyticsRange::Custom { from_ms, to_ms } => format!(
                "{} to {} UTC",
                datetime_local(from_ms).replace('T', " "),
                datetime_local(to_ms).replace('T', " ")
            ),
            preset => preset.label().to_string(),
        }
    }
}

impl Granularity {
    /// The name the model and the query use: `minute`, `hour`, `day`.
    pub fn key(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn step_ms(self) -> i64 {
        match self {
            Granularity::Minute => MINUTE,
            Granularity::Hour => HOUR,
            Granularity::Day => DAY,
        }
    }
}

impl AnalyticsFilter {
    /// `deployment=` wins over `env=` (a deployment has one environment);
    /// empty values are no filter.
    pub fn from_query(env: Option<&str>, deployment: Option<&str>) -> Option<Self> {
        let given = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
        given(deployment)
            .map(AnalyticsFilter::Deployment)
            .or_else(|| given(env).map(AnalyticsFilter::Environment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i64 = 1_714_564_800_000; // 2024-05-01 12:00 UTC

    #[test]
    fn ranges_from_the_query() {
        let custom = AnalyticsRange::Custom {
            from_ms: NOON,
            to_ms: NOON + HOUR,
        };
        let cases = [
            (None, None, None, Some(AnalyticsRange::Day)),
            (Some(""), None, None, Some(AnalyticsRange::Day)),
            (Some("1h"), None, None, Some(AnalyticsRange::Hour)),
            (Some("24h"), Some("junk"), None, Some(AnalyticsRange::Day)),
            (Some("7d"), None, None, Some(AnalyticsRange::Week)),
            (Some("30d"), None, None, Some(AnalyticsRange::Month)),
            (Some("1y"), None, None, None),
            (Some("1H"), None, None, None),
            (
                Some("custom"),
                Some("2024-05-01T12:00"),
                Some("2024-05-01T13:00"),
                Some(custom),
            ),
            (
                Some("custom"),
                Some("2024-05-01T13:00"),
                Some("2024-05-01T12:00"),
                None,
            ),
            (
                Some("custom"),
                Some("2024-05-01T12:00"),
                Some("2024-05-01T12:00"),
                None,
            ),
            (Some("custom"), Some("2024-05-01T12:00"), None, None),
            (Some("custom"), Some(""), Some("2024-05-01T12:00"), None),
            (
                Some("custom"),
                Some("yesterday"),
                Some("2024-05-01T12:00"),
                None,
            ),
        ];
        for (range, from, to, want) in cases {
            assert_eq!(
                AnalyticsRange::from_query(range, from, to),
                want,
                "{range:?} {from:?} {to:?}"
            );
        }
        for r in PRESETS {
            assert_eq!(
                AnalyticsRange::from_query(Some(r.key()), None, None),
                Some(r)
            );
        }
    }

    #[test]
    fn bounds_and_granularity() {
        let cases = [
            (
                AnalyticsRange::Hour,
                (NOON - HOUR, NOON),
                Granularity::Minute,
            ),
            (AnalyticsRange::Day, (NOON - DAY, NOON), Granularity::Hour),
            (
                AnalyticsRange::Week,
                (NOON - 7 * DAY, NOON),
                Granularity::Hour,
            ),
            (
                AnalyticsRange::Month,
                (NOON - 30 * DAY, NOON),
                Granularity::Day,
            ),
            (
                AnalyticsRange::Custom {
                    from_ms: 0,
                    to_ms: 3 * HOUR,
                },
                (0, 3 * HOUR),
                Granularity::Minute,
            ),
            (
                AnalyticsRange::Custom {
                    from_ms: 0,
                    to_ms: 3 * HOUR + 1,
                },
                (0, 3 * HOUR + 1),
                Granularity::Hour,
            ),
            (
                AnalyticsRange::Custom {
                    from_ms: 0,
                    to_ms: 9 * DAY,
                },
                (0, 9 * DAY),
                Granularity::Day,
            ),
            (
                AnalyticsRange::Custom {
                    from_ms: i64::MIN,
                    to_ms: i64::MAX,
                },
                (i64::MIN, i64::MAX),
                Granularity::Day,
            ),
        ];
        for (range, bounds, granularity) in cases {
            assert_eq!(range.bounds(NOON), bounds, "{range:?}");
            assert_eq!(range.granularity(NOON), granularity, "{range:?}");
        }
        assert_eq!(AnalyticsRange::Hour.bounds(i64::MIN).0, i64::MIN);
        assert_eq!(Granularity::Day.step_ms(), DAY);
        assert_eq!(
            AnalyticsRange::Custom {
                from_ms: NOON,
                to_ms: NOON + DAY
            }
            .describe(),
            "2024-05-01 12:00 to 2024-05-02 12:00 UTC"
        );
    }

    #[test]
    fn filters_from_the_query() {
        let env = |e: &str| Some(AnalyticsFilter::Environment(e.into()));
        let dep = |d: &str| Some(AnalyticsFilter::Deployment(d.into()));
        let cases = [
            (None, None, None),
            (Some(""), Some(""), None),
            (Some("production"), None, env("production")),
            (Some("preview"), Some(""), env("preview")),
            (Some("production"), Some("dep1"), dep("dep1")),
            (None, Some("dep1"), dep("dep1")),
        ];
        for (e, d, want) in cases {
            assert_eq!(AnalyticsFilter::from_query(e, d), want, "{e:?} {d:?}");
        }
    }
}
