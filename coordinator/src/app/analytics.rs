//! Traffic analytics of a project: the query model (`analytics::query`)
//! over the rollups the store keeps. Anyone who may see the project may
//! read its analytics.

use std::collections::BTreeMap;

use analytics::query::{report, Query, Report};

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::store::analytics::AnalyticsStore;
use crate::store::analytics::Rows;
use crate::store::Role;

/// Most parameters a query may carry (each is named once).
const MAX_PARAMS: usize = 16;

/// Answers a query given as the API's parameters (`since`, `from`, `to`,
/// `granularity`, `metric`, `group_by`, `filter`, …; see
/// [`analytics::query::Query::parse`]).
pub async fn query(
    app: &App,
    who: &Principal,
    project: &str,
    params: Vec<(String, String)>,
) -> AppResult<Report> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    if params.len() > MAX_PARAMS {
        return Err(AppError::invalid("invalid_query", "too many parameters"));
    }
    let mut map = BTreeMap::new();
    for (k, v) in params {
        if k.len() > 32 || v.len() > 512 {
            return Err(AppError::invalid(
                "invalid_query",
                "a parameter is too long",
            ));
        }
        if map.insert(k.clone(), v).is_some() {
            return Err(AppError::invalid(
                "invalid_query",
                format!("parameter {k:?} is given twice"),
            ));
        }
    }
    let now = crate::store::now_ms() / 1000;
    let q = Query::parse(&map, now).map_err(|e| AppError::invalid("invalid_query", e.0))?;
    match app
        .store
        .analytics_rows(&p.id, q.granularity, q.from, q.to, &q.filter)
        .await?
    {
        Rows::Found(rows) => Ok(report(&q, &rows)),
        Rows::TooMany => Err(AppError::invalid(
            "query_too_large",
            "this range holds too much data to answer at once: choose a coarser granularity, a shorter range or a filter",
        )),
    }
}
