//! A record: what one node served in one closed bucket (a minute, or an
//! hour or day once the spool coarsened it), site by site. It is the unit
//! the edge spools, ships and deletes, and the coordinator acknowledges
//! idempotently by `(node, id)`.

use serde::{Deserialize, Serialize};

use crate::model::{Aggregate, SiteKey};

/// Largest encoded record: it travels in one request frame (1 MiB), so a
/// minute with more is split into several records when it closes.
pub const MAX_RECORD_BYTES: usize = 512 * 1024;
/// The format byte every encoded record starts with.
const FORMAT: u8 = 1;

/// A bucket's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3600,
            Granularity::Day => 86_400,
        }
    }

    /// The start of the bucket holding `t` (unix seconds).
    pub fn floor(self, t: i64) -> i64 {
        // Saturating: a decoded record's start may be anything (the
        // decoder then refuses it as misaligned or out of time).
        t.saturating_sub(t.rem_euclid(self.seconds()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Granularity> {
        match s {
            "minute" => Some(Granularity::Minute),
            "hour" => Some(Granularity::Hour),
            "day" => Some(Granularity::Day),
            _ => None,
        }
    }

    /// The next coarser bucket, if any.
    pub fn coarser(self) -> Option<Granularity> {
        match self {
            Granularity::Minute => Some(Granularity::Hour),
            Granularity::Hour => Some(Granularity::Day),
            Granularity::Day => None,
        }
    }
}

/// A record's identity on its node: its bucket's start and a sequence the
/// node never reuses (its start time in µs plus a counter), so records of
/// the same minute from before and after a restart stay apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecordId {
    pub start: i64,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: RecordId,
    pub granularity: Granularity,
    pub sites: Vec<(SiteKey, Aggregate)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("an analytics record of {0} bytes is over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("unknown analytics record format {0}")]
    Format(u8),
    #[error("malformed analytics record: {0}")]
    Decode(String),
    #[error("analytics record starts at {start}, not on a {granularity:?} boundary")]
    Misaligned {
        start: i64,
        granularity: Granularity,
    },
    #[error("analytics record starts at {start}, {what}")]
    OutOfTime { start: i64, what: &'static str },
}

/// How far back a record may start: a node's spool may hold old days, but
/// nothing older than the query model can ever ask for.
pub const MAX_RECORD_AGE_SECS: i64 = 400 * 86_400;
/// How far ahead of the coordinator's clock a record may start (a node's
/// clock a little fast).
pub const MAX_RECORD_SKEW_SECS: i64 = 86_400;

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ 4 * MAX_RECORD_BYTES }>,
> {
    bincode::config::standard().with_limit::<{ 4 * MAX_RECORD_BYTES }>()
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        out.extend(bincode::serde::encode_to_vec(self, config()).expect("records always encode"));
        out
    }

    /// Decodes and checks a record: bounded, known format, aligned bucket.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let (&format, body) = bytes
            .split_first()
            .ok_or_else(|| RecordError::Decode("empty".into()))?;
        if format != FORMAT {
            return Err(RecordError::Format(format));
        }
        let (r, used): (Record, usize) = bincode::serde::decode_from_slice(body, config())
            .map_err(|e| RecordError::Decode(e.to_string()))?;
        if used != body.len() {
            return Err(RecordError::Decode("trailing bytes".into()));
        }
        if r.granularity.floor(r.id.start) != r.id.start {
            return Err(RecordError::Misaligned {
                start: r.id.start,
                granularity: r.granularity,
            });
        }
        Ok(r)
    }

    /// Whether the record's bucket is a time its node could have served:
    /// at most 400 days old, at most a day ahead of `now` (unix seconds).
    pub fn check_time(&self, now: i64) -> Result<(), RecordError> {
        let start = self.id.start;
        if start < now - MAX_RECORD_AGE_SECS {
            return Err(RecordError::OutOfTime {
                start,
                what: "older than analytics are ever asked for",
            });
        }
        if start > now + MAX_RECORD_SKEW_SECS {
            return Err(RecordError::OutOfTime {
                start,
                what: "in the future (is the node's clock right?)",
            });
        }
        Ok(())
    }

    /// Records for `sites`, each under [`MAX_RECORD_BYTES`] encoded: sites
    /// are packed in order and a new record starts when one would overflow.
    /// A single site too large on its own (impossible within the per-minute
    /// key budget) is dropped with a log line rather than blocking the spool.
    pub fn split(
        start: i64,
        granularity: Granularity,
        mut next_seq: impl FnMut() -> u64,
        sites: Vec<(SiteKey, Aggregate)>,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        let mut current: Vec<(SiteKey, Aggregate)> = Vec::new();
        let mut size = 16;
        for site in sites {
            let n = bincode::serde::encode_to_vec(&site, config())
                .map(|b| b.len())
                .unwrap_or(usize::MAX);
            if n + 16 > MAX_RECORD_BYTES {
                tracing::warn!(project = %site.0.project, bytes = n, "an analytics site aggregate is too large to ship; dropped");
                continue;
            }
            if size + n > MAX_RECORD_BYTES && !current.is_empty() {
                out.push(Record {
                    id: RecordId {
                        start,
                        seq: next_seq(),
                    },
                    granularity,
                    sites: std::mem::take(&mut current),
                });
                size = 16;
            }
            size += n;
            current.push(site);
        }
        if !current.is_empty() {
            out.push(Record {
                id: RecordId {
                    start,
                    seq: next_seq(),
                },
                granularity,
                sites: current,
            });
        }
        out
    }

    /// Merges records of one coarser bucket into one: the spool's way of
    /// keeping everything when it is full (an hour of minutes becomes one
    /// hour). The records must all fall in that bucket.
    pub fn coarsen(records: &[Record], granularity: Granularity, seq: u64) -> Option<Record> {
        let start = granularity.floor(records.first()?.id.start);
        let mut sites: std::collections::BTreeMap<SiteKey, Aggregate> = Default::default();
        for r in records {
            debug_assert_eq!(granularity.floor(r.id.start), start);
            for (k, a) in &r.sites {
                sites.entry(k.clone()).or_default().merge(a);
            }
        }
        Some(Record {
            id: RecordId { start, seq },
            granularity,
            sites: sites.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Env;

    fn site(p: &str, requests: u64) -> (SiteKey, Aggregate) {
        (
            SiteKey {
                project: p.into(),
                deployment: "d1".into(),
                env: Env::Production,
            },
            Aggregate {
                requests,
                ..Default::default()
            },
        )
    }

    #[test]
    fn records_roundtrip_and_bad_bytes_are_refused() {
        let r = Record {
            id: RecordId {
                start: 1_800_000_000,
                seq: 7,
            },
            granularity: Granularity::Minute,
            sites: vec![site("a", 3)],
        };
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        let mut bad_format = bytes.clone();
        bad_format[0] = 9;
        let mut trailing = bytes.clone();
        trailing.push(0);
        let mut misaligned = r.clone();
        misaligned.id.start += 1;
        let table: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty"),
            (bad_format, "format"),
            (bytes[..bytes.len() - 3].to_vec(), "truncated"),
            (trailing, "trailing"),
            (misaligned.encode(), "boundary"),
            (vec![1; MAX_RECORD_BYTES + 1], "limit"),
            (vec![1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], "garbage"),
        ];
        for (b, what) in table {
            let e = Record::decode(&b).unwrap_err().to_string();
            assert!(!e.is_empty(), "{what}");
        }
    }

    #[test]
    fn records_from_impossible_times_are_refused() {
        let now = 1_800_000_000;
        let at = |start| Record {
            id: RecordId { start, seq: 1 },
            granularity: Granularity::Minute,
            sites: vec![],
        };
        assert!(at(now).check_time(now).is_ok());
        assert!(at(now - 399 * 86_400).check_time(now).is_ok());
        assert!(at(now + 3600).check_time(now).is_ok(), "a fast clock");
        let e = at(now - 401 * 86_400)
            .check_time(now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("older"), "{e}");
        let e = at(now + 2 * 86_400)
            .check_time(now)
            .unwrap_err()
            .to_string();
        assert!(e.contains("future"), "{e}");
    }

    #[test]
    fn a_large_minute_splits_into_records_under_the_limit() {
        let mut sites = Vec::new();
        for i in 0..3000 {
            let (k, mut a) = site(&format!("p{i}"), 1);
            for j in 0..20 {
                a.pages.add(&format!("/page/{i}/{j}/{}", "x".repeat(20)), 1);
            }
            sites.push((k, a));
        }
        let mut seq = 0;
        let records = Record::split(
            60,
            Granularity::Minute,
            || {
                seq += 1;
                seq
            },
            sites,
        );
        assert!(records.len() > 1);
        let total: usize = records.iter().map(|r| r.sites.len()).sum();
        assert_eq!(total, 3000);
        for r in &records {
            assert!(r.encode().len() <= MAX_RECORD_BYTES);
        }
        let seqs: std::collections::BTreeSet<u64> = records.iter().map(|r| r.id.seq).collect();
        assert_eq!(seqs.len(), records.len());
    }

    #[test]
    fn coarsening_keeps_every_count() {
        let minutes: Vec<Record> = (0..60)
            .map(|m| Record {
                id: RecordId {
                    start: 3600 * 5 + m * 60,
                    seq: m as u64,
                },
                granularity: Granularity::Minute,
                sites: vec![site("a", 2), site("b", 1)],
            })
            .collect();
        let hour = Record::coarsen(&minutes, Granularity::Hour, 99).unwrap();
        assert_eq!(
            hour.id,
            RecordId {
                start: 3600 * 5,
                seq: 99
            }
        );
        assert_eq!(hour.sites.len(), 2);
        assert_eq!(hour.sites[0].1.requests, 120);
        assert_eq!(hour.sites[1].1.requests, 60);
        assert!(Record::decode(&hour.encode()).is_ok());
    }
}
