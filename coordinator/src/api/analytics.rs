//! Traffic analytics: `GET /projects/{project}/analytics`.

use axum::extract::{Path, RawQuery, State};
use axum::Json;

use super::error::ApiResult;
use super::views::AnalyticsView;
use crate::accounts::Principal;
use crate::app::{self, App, AppError};

#[utoipa::path(
    get,
    path = "/projects/{project}/analytics",
    tag = "analytics",
    summary = "Traffic analytics (query: since | from & to, granularity, metric, group_by, filter, deployment, env, node, region, limit)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = AnalyticsView), super::openapi::Guarded)
)]
pub async fn get(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<AnalyticsView>> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
        .map_err(|e| AppError::invalid("invalid_query", format!("malformed query string: {e}")))?;
    let r = app::analytics::query(&app, &who, &project, params).await?;
    Ok(Json(AnalyticsView(r)))
}
