//! The project's Analytics tab: the range and filter from the query
//! string, the same query the API answers, and the report turned into
//! the page's model.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use dashboard::model::{
    AnalyticsFilter, AnalyticsRange, AnalyticsTab, AnalyticsTotals, Encodings, FunctionStats, Nav,
    NodeTraffic, Percentiles, SeriesPoint, StatusClasses, TopLists,
};
use serde::Deserialize;

use super::{render, SignedIn, WebResult};
use crate::app::{self, App, AppError};

#[derive(Deserialize)]
pub struct AnalyticsQuery {
    range: Option<String>,
    from: Option<String>,
    to: Option<String>,
    env: Option<String>,
    deployment: Option<String>,
}

/// Deployments the filter offers.
const FILTER_DEPLOYMENTS: i64 = 20;

pub async fn tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
    Query(q): Query<AnalyticsQuery>,
) -> WebResult<Response> {
    let (p, h) = super::project::header(&state, &signed, &name).await?;
    let range = AnalyticsRange::from_query(q.range.as_deref(), q.from.as_deref(), q.to.as_deref())
        .ok_or_else(|| {
            AppError::invalid("invalid_query", "that range is not one the form offers")
        })?;
    let now = crate::store::now_ms();
    let granularity = range.granularity(now);
    let (from_ms, to_ms) = range.bounds(now);
    let filter = AnalyticsFilter::from_query(q.env.as_deref(), q.deployment.as_deref());
    let mut params = vec![
        ("from".to_string(), (from_ms / 1000).to_string()),
        ("to".to_string(), ((to_ms + 999) / 1000).to_string()),
        ("granularity".to_string(), granularity.key().to_string()),
        ("limit".to_string(), "10".to_string()),
    ];
    match &filter {
        Some(AnalyticsFilter::Environment(e)) => params.push(("env".into(), e.clone())),
        Some(AnalyticsFilter::Deployment(d)) => params.push(("deployment".into(), d.clone())),
        None => {}
    }
    let r = app::analytics::query(&state, &signed.who, &name, params).await?;
    let (_, ds) =
        app::deployments::list(&state, &signed.who, &p.id, None, FILTER_DEPLOYMENTS).await?;
    let deployments = ds
        .iter()
        .map(|d| {
            let label = match d.git.as_ref() {
                Some(g) => format!("{} ({})", d.id, g.branch),
                None => d.id.clone(),
            };
            (d.id.clone(), label)
        })
        .collect();
    let class = |c: &str| r.status_classes.get(c).copied().unwrap_or(0);
    let mut status_codes: Vec<(u16, u64)> = r
        .status
        .iter()
        .filter_map(|(c, n)| Some((c.parse().ok()?, *n)))
        .collect();
    status_codes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let tab = AnalyticsTab {
        range,
        granularity,
        filter,
        deployments,
        environments: vec!["production".into(), "preview".into()],
        totals: AnalyticsTotals {
            requests: r.requests,
            page_views: r.page_views,
            visitors: r.visitors,
            bots: r.bots,
            bytes: r.bytes,
            status: StatusClasses {
                s2xx: class("2xx"),
                s3xx: class("3xx"),
                s4xx: class("4xx"),
                s5xx: class("5xx"),
            },
            status_codes,
            latency: r.duration_ms.as_ref().map(|d| Percentiles {
                p50: d.p50,
                p95: d.p95,
                p99: d.p99,
            }),
            encodings: Encodings {
                br: r.precompressed.get("br").copied().unwrap_or(0),
                gzip: r.precompressed.get("gzip").copied().unwrap_or(0),
                identity: r.precompressed.get("identity").copied().unwrap_or(0),
            },
        },
        series: r
            .series
            .iter()
            .map(|p| SeriesPoint {
                t_ms: p.t * 1000,
                requests: p.requests,
                page_views: p.page_views,
                visitors: p.visitors,
                bytes: p.bytes,
            })
            .collect(),
        // Countries appear only when an edge has a GeoIP database.
        geoip: !r.top.countries.is_empty(),
        top: TopLists {
            pages: r.top.pages,
            not_found: r.top.not_found,
            referrers: r.top.referrers,
            countries: r.top.countries,
            browsers: r.top.browsers,
            os: r.top.os,
            devices: r.top.devices,
        },
        nodes: r
            .nodes
            .into_iter()
            .map(|n| NodeTraffic {
                node: n.node,
                region: n.region,
                requests: n.requests,
                bytes: n.bytes,
            })
            .collect(),
        functions: r
            .functions
            .into_iter()
            .map(|(route, f)| FunctionStats {
                route,
                invocations: f.invocations,
                errors: f.errors,
                timeouts: f.timeouts,
                memory_limit: f.memory_limit,
                latency: match (f.p50_ms, f.p95_ms, f.p99_ms) {
                    (Some(p50), Some(p95), Some(p99)) => Some(Percentiles { p50, p95, p99 }),
                    _ => None,
                },
            })
            .collect(),
    };
    let page = signed.page(h.name.clone(), Nav::Projects);
    Ok(render(&signed, dashboard::analytics(&page, &h, &tab)))
}
