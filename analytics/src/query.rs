//! The query model: a small fixed set (metric × group-by × filter over a
//! range and a granularity), like Vercel's, no query language. Parsing is
//! strict (an unknown metric or dimension is an error naming the known
//! ones) and [`report`] is pure: rows in, the answer out, whatever store
//! the rows came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Aggregate, Env};
use crate::record::Granularity;

/// Longest range one query may cover.
pub const MAX_RANGE_SECS: i64 = 400 * 86_400;
/// Most buckets a series may have (a week of minutes would be 10,080).
pub const MAX_BUCKETS: i64 = 2_000;
/// Longest top list an answer carries.
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Requests,
    PageViews,
    Visitors,
    Bots,
    Bytes,
    DurationP50,
    DurationP95,
    DurationP99,
}

impl Metric {
    pub const ALL: &[(&str, Metric)] = &[
        ("requests", Metric::Requests),
        ("page_views", Metric::PageViews),
        ("visitors", Metric::Visitors),
        ("bots", Metric::Bots),
        ("bytes", Metric::Bytes),
        ("duration_p50", Metric::DurationP50),
        ("duration_p95", Metric::DurationP95),
        ("duration_p99", Metric::DurationP99),
    ];

    fn of(self, a: &Aggregate) -> f64 {
        match self {
            Metric::Requests => a.requests as f64,
            Metric::PageViews => a.page_views as f64,
            Metric::Visitors => a.visitors.estimate() as f64,
            Metric::Bots => a.bots as f64,
            Metric::Bytes => a.bytes as f64,
            Metric::DurationP50 => a.duration.quantile_ms(0.5).unwrap_or(0.0),
            Metric::DurationP95 => a.duration.quantile_ms(0.95).unwrap_or(0.0),
            Metric::DurationP99 => a.duration.quantile_ms(0.99).unwrap_or(0.0),
        }
    }
}

/// What a metric can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Time,
    Status,
    Node,
    Region,
    Deployment,
    Environment,
}

impl Dimension {
    pub const ALL: &[(&str, Dimension)] = &[
        ("time", Dimension::Time),
        ("status", Dimension::Status),
        ("node", Dimension::Node),
        ("region", Dimension::Region),
        ("deployment", Dimension::Deployment),
        ("environment", Dimension::Environment),
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub deployment: Option<String>,
    pub env: Option<Env>,
    pub node: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: i64,
    pub to: i64,
    pub granularity: Granularity,
    pub metric: Option<Metric>,
    pub group_by: Option<Dimension>,
    pub filter: Filter,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct QueryError(pub String);

fn bad(s: impl Into<String>) -> QueryError {
    QueryError(s.into())
}

/// `1h`, `24h`, `7d`, `30m`: a span in seconds.
pub fn parse_span(s: &str) -> Result<i64, QueryError> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .ok()
        .filter(|n| *n > 0 && *n <= 100_000)
        .ok_or_else(|| bad(format!("{s:?} is not a span like 30m, 1h, 24h or 7d")))?;
    let unit = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad(format!("{s:?} is not a span like 30m, 1h, 24h or 7d"))),
    };
    Ok(n * unit)
}

/// A time: unix seconds, or RFC 3339 (`2026-12-07T10:00:00Z`).
fn parse_time(name: &str, s: &str) -> Result<i64, QueryError> {
    if let Ok(n) = s.parse::<i64>() {
        if (0..=253_402_300_799).contains(&n) {
            return Ok(n);
        }
    }
    humantime::parse_rfc3339(s)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .ok_or_else(|| {
            bad(format!(
                "{name}={s:?} is neither unix seconds nor an RFC 3339 time (2026-12-07T10:00:00Z)"
            ))
        })
}

impl Query {
    /// Reads a query from the API's parameters; `now` in unix seconds.
    /// `since` (a span back from now) or `from`/`to`; the granularity by
    /// default the finest that keeps the series under [`MAX_BUCKETS`].
    pub fn parse(params: &BTreeMap<String, String>, now: i64) -> Result<Query, QueryError> {
        const KNOWN: &[&str] = &[
            "from",
            "to",
            "since",
            "granularity",
            "metric",
            "group_by",
            "filter",
            "deployment",
            "env",
            "node",
            "region",
            "limit",
        ];
        if let Some(k) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(bad(format!(
                "unknown parameter {k:?}; known: {}",
                KNOWN.join(", ")
            )));
        }
        let to = match params.get("to") {
            Some(t) => parse_time("to", t)?,
            None => now,
        };
        let from = match (params.get("from"), params.get("since")) {
            (Some(_), Some(_)) => return Err(bad("give from or since, not both")),
            (Some(f), None) => parse_time("from", f)?,
            (None, Some(s)) => to - parse_span(s)?,
            (None, None) => to - 86_400,
        };
        if from >= to {
            return Err(bad("from must be before to"));
        }
        if to - from > MAX_RANGE_SECS {
            return Err(bad(format!(
                "a range may cover at most {} days",
                MAX_RANGE_SECS / 86_400
            )));
        }
        let granularity = match params.get("granularity") {
            Some(g) => Granularity::parse(g).ok_or_else(|| {
                bad(format!(
                    "unknown granularity {g:?}; known: minute, hour, day"
                ))
            })?,
            None => [Granularity::Minute, Granularity::Hour, Granularity::Day]
                .into_iter()
                .find(|g| (to - from) / g.seconds() <= MAX_BUCKETS)
                .unwrap_or(Granularity::Day),
        };
        if (to - from) / granularity.seconds() > MAX_BUCKETS {
            return Err(bad(format!(
                "{} buckets of a {} is more than the {MAX_BUCKETS} a query may have; choose a coarser granularity",
                (to - from) / granularity.seconds(),
                granularity.as_str()
            )));
        }
        let metric = params
            .get("metric")
            .map(|m| {
                Metric::ALL
                    .iter()
                    .find(|(n, _)| n == m)
                    .map(|(_, m)| *m)
                    .ok_or_else(|| {
                        bad(format!(
                            "unknown metric {m:?}; known: {}",
                            Metric::ALL
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .transpose()?;
        let group_by = params
            .get("group_by")
            .map(|g| {
                Dimension::ALL
                    .iter()
                    .find(|(n, _)| n == g)
                    .map(|(_, d)| *d)
                    .ok_or_else(|| {
                        bad(format!(
                            "unknown dimension {g:?}; known: {}",
                            Dimension::ALL
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .transpose()?;
        if group_by.is_some() && metric.is_none() {
            return Err(bad("group_by needs a metric"));
        }
        // Only requests are kept per status code.
        if group_by == Some(Dimension::Status) && metric != Some(Metric::Requests) {
            return Err(bad(
                "group_by=status counts requests only: use metric=requests",
            ));
        }
        let mut filter = Filter::default();
        let mut set = |k: &str, v: &str| -> Result<(), QueryError> {
            if v.is_empty() || v.len() > 128 {
                return Err(bad(format!(
                    "filter {k} needs a value of 1 to 128 characters"
                )));
            }
            match k {
                "deployment" => filter.deployment = Some(v.to_string()),
                "env" | "environment" => {
                    filter.env = Some(Env::parse(v).ok_or_else(|| {
                        bad(format!(
                            "unknown environment {v:?}; known: production, preview"
                        ))
                    })?)
                }
                "node" => filter.node = Some(v.to_string()),
                "region" => filter.region = Some(v.to_string()),
                _ => {
                    return Err(bad(format!(
                        "unknown filter {k:?}; known: deployment, env, node, region"
                    )))
                }
            }
            Ok(())
        };
        for k in ["deployment", "env", "node", "region"] {
            if let Some(v) = params.get(k) {
                set(k, v)?;
            }
        }
        if let Some(f) = params.get("filter") {
            for part in f.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = part
                    .split_once(':')
                    .ok_or_else(|| bad(format!("filter {part:?} is not key:value")))?;
                set(k, v)?;
            }
        }
        let limit = match params.get("limit") {
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| bad(format!("limit must be 1 to {MAX_LIMIT}")))?,
            None => 10,
        };
        Ok(Query {
            from: granularity.floor(from),
            to,
            granularity,
            metric,
            group_by,
            filter,
            limit,
        })
    }
}

/// One stored rollup: a site's bucket on one node.
#[derive(Debug, Clone)]
pub struct Row {
    pub bucket: i64,
    pub deployment: String,
    pub env: Env,
    pub node: String,
    pub region: String,
    pub agg: Aggregate,
}

impl Filter {
    pub fn admits(&self, r: &Row) -> bool {
        self.deployment.as_ref().is_none_or(|d| *d == r.deployment)
            && self.env.is_none_or(|e| e == r.env)
            && self.node.as_ref().is_none_or(|n| *n == r.node)
            && self.region.as_ref().is_none_or(|g| *g == r.region)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    fn of(l: &crate::sketch::Latency) -> Option<Percentiles> {
        Some(Percentiles {
            p50: l.quantile_ms(0.5)?,
            p95: l.quantile_ms(0.95)?,
            p99: l.quantile_ms(0.99)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The bucket's start, unix seconds.
    pub t: i64,
    pub requests: u64,
    pub page_views: u64,
    pub visitors: u64,
    pub bots: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed {
    pub key: String,
    pub value: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tops {
    pub pages: Vec<(String, u64)>,
    pub not_found: Vec<(String, u64)>,
    pub referrers: Vec<(String, u64)>,
    pub countries: Vec<(String, u64)>,
    pub browsers: Vec<(String, u64)>,
    pub os: Vec<(String, u64)>,
    pub devices: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTraffic {
    pub node: String,
    pub region: String,
    pub requests: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionReport {
    pub invocations: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub memory_limit: u64,
    /// Duration percentiles in milliseconds (`None` without invocations).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The answer to a query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub from: i64,
    pub to: i64,
    pub granularity: String,
    pub requests: u64,
    pub page_views: u64,
    pub visitors: u64,
    pub bots: u64,
    pub bytes: u64,
    /// Status code → requests.
    pub status: BTreeMap<String, u64>,
    /// `2xx` … `5xx` → requests.
    pub status_classes: BTreeMap<String, u64>,
    pub duration_ms: Option<Percentiles>,
    /// Responses by how their body left: `br`, `gzip`, `identity`.
    pub precompressed: BTreeMap<String, u64>,
    pub series: Vec<Point>,
    pub top: Tops,
    pub nodes: Vec<NodeTraffic>,
    pub regions: Vec<NodeTraffic>,
    /// Function route → its numbers.
    pub functions: BTreeMap<String, FunctionReport>,
    /// `metric` grouped by `group_by` (or by time when only a metric is
    /// asked for), when the query names one.
    pub result: Option<Vec<Keyed>>,
}

/// Answers `q` from `rows` (already limited to the project and range).
pub fn report(q: &Query, rows: &[Row]) -> Report {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.bucket >= q.from && r.bucket < q.to && q.filter.admits(r))
        .collect();
    let mut total = Aggregate::default();
    let mut buckets: BTreeMap<i64, Aggregate> = BTreeMap::new();
    let mut nodes: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut regions: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for r in &rows {
        total.merge(&r.agg);
        buckets
            .entry(q.granularity.floor(r.bucket))
            .or_default()
            .merge(&r.agg);
        let n = nodes.entry((r.node.clone(), r.region.clone())).or_default();
        n.0 += r.agg.requests;
        n.1 += r.agg.bytes;
        let g = regions.entry(r.region.clone()).or_default();
        g.0 += r.agg.requests;
        g.1 += r.agg.bytes;
    }
    // Every bucket of the range, empty ones too, so charts have no gaps.
    let mut series = Vec::new();
    let mut t = q.from;
    while t < q.to {
        let a = buckets.get(&t);
        series.push(Point {
            t,
            requests: a.map_or(0, |a| a.requests),
            page_views: a.map_or(0, |a| a.page_views),
            visitors: a.map_or(0, |a| a.visitors.estimate()),
            bots: a.map_or(0, |a| a.bots),
            bytes: a.map_or(0, |a| a.bytes),
        });
        t += q.granularity.seconds();
    }
    let result = q
        .metric
        .map(|m| match q.group_by.unwrap_or(Dimension::Time) {
            Dimension::Time => series
                .iter()
                .map(|p| Keyed {
                    key: p.t.to_string(),
                    value: buckets.get(&p.t).map_or(0.0, |a| m.of(a)),
                })
                .collect(),
            d => {
                let mut groups: BTreeMap<String, Aggregate> = BTreeMap::new();
                for r in &rows {
                    let key = match d {
                        Dimension::Status => {
                            // A status group holds only that status's requests.
                            for (code, n) in &r.agg.status {
                                let g = groups.entry(code.to_string()).or_default();
                                g.requests += n;
                            }
                            continue;
                        }
                        Dimension::Node => r.node.clone(),
                        Dimension::Region => r.region.clone(),
                        Dimension::Deployment => r.deployment.clone(),
                        Dimension::Environment => r.env.as_str().to_string(),
                        Dimension::Time => unreachable!("handled above"),
                    };
                    groups.entry(key).or_default().merge(&r.agg);
                }
                let mut v: Vec<Keyed> = groups
                    .iter()
                    .map(|(k, a)| Keyed {
                        key: k.clone(),
                        value: m.of(a),
                    })
                    .collect();
                v.sort_by(|a, b| b.value.total_cmp(&a.value).then_with(|| a.key.cmp(&b.key)));
                v.truncate(q.limit);
                v
            }
        });
    let n = q.limit;
    Report {
        from: q.from,
        to: q.to,
        granularity: q.granularity.as_str().to_string(),
        requests: total.requests,
        page_views: total.page_views,
        visitors: total.visitors.estimate(),
        bots: total.bots,
        bytes: total.bytes,
        status: total
            .status
            .iter()
            .map(|(c, n)| (c.to_string(), *n))
            .collect(),
        status_classes: total
            .status_classes()
            .into_iter()
            .map(|(c, n)| (c.to_string(), n))
            .collect(),
        duration_ms: Percentiles::of(&total.duration),
        precompressed: BTreeMap::from([
            ("br".to_string(), total.encodings.br),
            ("gzip".to_string(), total.encodings.gzip),
            ("identity".to_string(), total.encodings.identity),
        ]),
        series,
        top: Tops {
            pages: total.pages.largest(n),
            not_found: total.not_found.largest(n),
            referrers: total.referrers.largest(n),
            countries: total.countries.largest(n),
            browsers: total.browsers.largest(n),
            os: total.os.largest(n),
            devices: total.devices.largest(n),
        },
        nodes: nodes
            .into_iter()
            .map(|((node, region), (requests, bytes))| NodeTraffic {
                node,
                region,
                requests,
                bytes,
            })
            .collect(),
        regions: regions
            .into_iter()
            .map(|(region, (requests, bytes))| NodeTraffic {
                node: String::new(),
                region,
                requests,
                bytes,
            })
            .collect(),
        functions: total
            .functions
            .iter()
            .map(|(route, f)| {
                (
                    route.clone(),
                    FunctionReport {
                        invocations: f.invocations,
                        errors: f.errors,
                        timeouts: f.timeouts,
                        memory_limit: f.memory_limit,
                        p50_ms: f.duration.quantile_ms(0.5),
                        p95_ms: f.duration.quantile_ms(0.95),
                        p99_ms: f.duration.quantile_ms(0.99),
                    },
                )
            })
            .collect(),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn queries_parse_or_say_why_not() {
        let q = Query::parse(&params(&[("since", "1h")]), NOW).unwrap();
        assert_eq!((q.to - 3600 - q.from) / 60, 0);
        assert_eq!(q.granularity, Granularity::Minute);
        let q = Query::parse(&params(&[("since", "30d")]), NOW).unwrap();
        assert_eq!(q.granularity, Granularity::Hour);
        let q = Query::parse(
            &params(&[
                ("from", "2026-12-01T00:00:00Z"),
                ("to", "2026-12-02T00:00:00Z"),
                ("metric", "visitors"),
                ("group_by", "region"),
                ("filter", "env:production,region:fra"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(q.to - q.from, 86_400);
        assert_eq!(q.from, 1_796_083_200);
        assert_eq!(q.filter.env, Some(Env::Production));
        assert_eq!(q.filter.region.as_deref(), Some("fra"));
        let table: &[(&[(&str, &str)], &str)] = &[
            (&[("metric", "revenue")], "unknown metric"),
            (
                &[("metric", "requests"), ("group_by", "shoe_size")],
                "unknown dimension",
            ),
            (&[("group_by", "node")], "needs a metric"),
            (
                &[("metric", "bytes"), ("group_by", "status")],
                "requests only",
            ),
            (&[("since", "1y")], "not a span"),
            (&[("since", "0h")], "not a span"),
            (&[("since", "9999999d")], "not a span"),
            (&[("since", "1000d")], "at most"),
            (&[("from", "2026-13-01T00:00:00Z")], "neither"),
            (&[("from", "2026-02-31T00:00:00Z")], "neither"),
            (&[("from", "yesterday")], "neither"),
            (&[("from", "100"), ("to", "50")], "before"),
            (&[("from", "100"), ("since", "1h")], "not both"),
            (&[("since", "30d"), ("granularity", "minute")], "coarser"),
            (&[("granularity", "week")], "unknown granularity"),
            (&[("filter", "planet:mars")], "unknown filter"),
            (&[("filter", "env")], "key:value"),
            (&[("env", "staging")], "unknown environment"),
            (&[("limit", "0")], "limit"),
            (&[("limit", "1000")], "limit"),
            (&[("colour", "red")], "unknown parameter"),
        ];
        for (p, want) in table {
            let e = Query::parse(&params(p), NOW).unwrap_err().0;
            assert!(e.contains(want), "{p:?}: {e}");
        }
    }

    fn row(bucket: i64, node: &str, region: &str, requests: u64, status: u16) -> Row {
        let mut agg = Aggregate {
            requests,
            bytes: requests * 10,
            ..Default::default()
        };
        agg.status.insert(status, requests);
        Row {
            bucket,
            deployment: "d1".into(),
            env: Env::Production,
            node: node.into(),
            region: region.into(),
            agg,
        }
    }

    #[test]
    fn reports_sum_filter_and_group() {
        let q = Query::parse(
            &params(&[("from", "0"), ("to", "180"), ("granularity", "minute")]),
            NOW,
        )
        .unwrap();
        let rows = vec![
            row(0, "n1", "fra", 2, 200),
            row(60, "n2", "fra", 3, 404),
            row(60, "n3", "nyc", 5, 200),
            row(600, "n3", "nyc", 100, 200), // outside the range
        ];
        let r = report(&q, &rows);
        assert_eq!(r.requests, 10);
        assert_eq!(r.series.len(), 3);
        assert_eq!(
            r.series.iter().map(|p| p.requests).collect::<Vec<_>>(),
            vec![2, 8, 0]
        );
        assert_eq!(r.status_classes["4xx"], 3);
        assert_eq!(
            r.regions
                .iter()
                .find(|g| g.region == "fra")
                .unwrap()
                .requests,
            5
        );
        assert_eq!(r.nodes.len(), 3);
        assert!(r.result.is_none());
        let q = Query::parse(
            &params(&[
                ("from", "0"),
                ("to", "180"),
                ("metric", "requests"),
                ("group_by", "region"),
            ]),
            NOW,
        )
        .unwrap();
        let r = report(&q, &rows);
        assert_eq!(
            r.result.unwrap(),
            vec![
                Keyed {
                    key: "fra".into(),
                    value: 5.0
                },
                Keyed {
                    key: "nyc".into(),
                    value: 5.0
                }
            ]
        );
        let q = Query::parse(
            &params(&[("from", "0"), ("to", "180"), ("region", "nyc")]),
            NOW,
        )
        .unwrap();
        assert_eq!(report(&q, &rows).requests, 5);
        // No rows: zeros and no percentiles, never a panic.
        let r = report(&q, &[]);
        assert_eq!((r.requests, r.duration_ms.clone()), (0, None));
    }
}
