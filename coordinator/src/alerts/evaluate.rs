//! The values a rule compares with its threshold, one per series: read
//! from the analytics rollups (requests and 5xx answers), the error
//! counts (function, build and deploy failures), the builds, the nodes'
//! reports (memory, disk), the coordinator's own disk and the
//! certificates.

use analytics::query::Filter;
use analytics::Granularity;

use super::rules::Kind;
use crate::errors::Source;
use crate::store::alerts::RuleRow;
use crate::store::analytics::{AnalyticsStore, Rows};
use crate::store::{Store, StoreError};

/// One watched series' value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// `project`, a node's name, `coordinator`, a certificate's name.
    pub series: String,
    pub value: f64,
}

impl Sample {
    fn one(series: &str, value: f64) -> Sample {
        Sample {
            series: series.into(),
            value,
        }
    }
}

/// What the evaluator reads besides the store.
pub struct Sources<'a> {
    pub store: &'a Store,
    /// The coordinator's data directory (its disk).
    pub data_dir: &'a std::path::Path,
    /// The cluster CA's certificate (DER).
    pub ca_der: &'a [u8],
}

/// Nodes not heard from for this long are not judged on memory or disk.
const STALE_MS: i64 = 120_000;

pub async fn values(
    src: &Sources<'_>,
    rule: &RuleRow,
    kind: Kind,
    now: i64,
) -> Result<Vec<Sample>, StoreError> {
    let from = now - rule.window_ms;
    let project = rule.project_id.as_deref();
    Ok(match (kind, project) {
        (Kind::ErrorRate, Some(p)) => vec![Sample::one(
            "project",
            error_rate(src.store, p, from, now).await?,
        )],
        (Kind::FunctionError, Some(p)) => vec![Sample::one(
            "project",
            src.store
                .error_count_since(p, Some(Source::Function), from)
                .await? as f64,
        )],
        (Kind::DeploymentFailure, Some(p)) => vec![Sample::one(
            "project",
            src.store
                .error_count_since(p, Some(Source::Deploy), from)
                .await? as f64,
        )],
        (Kind::BuildFailure, Some(p)) => vec![Sample::one(
            "project",
            src.store
                .error_count_since(p, Some(Source::Build), from)
                .await? as f64,
        )],
        (Kind::SlowDeployment, Some(p)) => {
            let builds = src.store.recent_builds(p, from).await?;
            let longest = builds
                .iter()
                .map(|(_, created, finished)| finished.unwrap_or(now) - created)
                .max()
                .unwrap_or(0);
            vec![Sample::one("project", longest as f64 / 60_000.0)]
        }
        (Kind::HighMemory, None) => {
            node_gauges(src.store, now, |n| (n.memory_used, n.memory_total)).await?
        }
        (Kind::DiskSpace, None) => {
            let mut v = node_gauges(src.store, now, |n| (n.disk_used, n.disk_total)).await?;
            if let Some((used, total)) = disk_of(src.data_dir) {
                v.push(Sample::one("coordinator", percent(used, total)));
            }
            v
        }
        (Kind::SslExpiry, Some(p)) => {
            let mut v = Vec::new();
            for d in src.store.project_domains(p).await? {
                if let Some(c) = src.store.domain_cert(&d.name).await? {
                    if let Some(until) = c.not_after {
                        v.push(days_left(&d.name, until, now));
                    }
                }
            }
            v
        }
        (Kind::SslExpiry, None) => {
            let mut v = Vec::new();
            if let Some((_, until)) = protocol::node_cert::validity(src.ca_der) {
                v.push(days_left("cluster CA", until, now));
            }
            for n in src.store.list_nodes().await? {
                if let Some(until) = n.cert_not_after {
                    v.push(days_left(&format!("node {}", n.name), until, now));
                }
            }
            v
        }
        // A rule of the wrong scope was refused when it was made.
        _ => Vec::new(),
    })
}

fn days_left(name: &str, until_s: i64, now_ms: i64) -> Sample {
    Sample::one(
        name,
        ((until_s * 1000 - now_ms) as f64 / 86_400_000.0).max(0.0),
    )
}

fn percent(used: i64, total: i64) -> f64 {
    if total <= 0 {
        return 0.0;
    }
    (used as f64 * 100.0 / total as f64).clamp(0.0, 100.0)
}

async fn node_gauges(
    store: &Store,
    now: i64,
    read: impl Fn(&crate::store::Node) -> (i64, i64),
) -> Result<Vec<Sample>, StoreError> {
    Ok(store
        .list_nodes()
        .await?
        .iter()
        .filter(|n| n.last_seen.is_some_and(|t| now - t < STALE_MS))
        .filter_map(|n| {
            let (used, total) = read(n);
            (total > 0).then(|| Sample::one(&n.name, percent(used, total)))
        })
        .collect())
}

/// 5xx answers as a percentage of requests in the minute rollups of
/// `[from, now]` (the open minute counts once an edge sends it).
async fn error_rate(store: &Store, project: &str, from: i64, now: i64) -> Result<f64, StoreError> {
    let from_s = from.div_euclid(60_000) * 60;
    let to_s = now.div_euclid(1000) + 60;
    let rows = match store
        .analytics_rows(
            project,
            Granularity::Minute,
            from_s,
            to_s,
            &Filter::default(),
        )
        .await?
    {
        Rows::Found(rows) => rows,
        Rows::TooMany => return Ok(0.0),
    };
    let (mut requests, mut errors) = (0u64, 0u64);
    for r in &rows {
        requests += r.agg.requests;
        errors += r.agg.status.range(500..).map(|(_, n)| n).sum::<u64>();
    }
    Ok(if requests == 0 {
        0.0
    } else {
        errors as f64 * 100.0 / requests as f64
    })
}

/// The data directory's file system: (used, total) bytes.
pub fn disk_of(dir: &std::path::Path) -> Option<(i64, i64)> {
    let (used, total) = platform::fs::disk_usage(dir)?;
    Some((i64::try_from(used).ok()?, i64::try_from(total).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_days() {
        assert_eq!(percent(50, 200), 25.0);
        assert_eq!(percent(1, 0), 0.0);
        assert_eq!(percent(300, 200), 100.0);
        let s = days_left("x", 10 * 86_400, 0);
        assert_eq!(s.value, 10.0);
        assert_eq!(days_left("x", 0, 5).value, 0.0);
    }

    #[test]
    fn this_disk_is_read() {
        let (used, total) = disk_of(std::path::Path::new("/")).unwrap();
        assert!(total > 0 && used >= 0 && used <= total);
        assert!(disk_of(std::path::Path::new("/no/such/dir")).is_none());
    }
}
