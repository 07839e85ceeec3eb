//! Error tracking: a project's issues, one issue, and changing its state
//! or severity (`app::errors` holds the rules).

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::Deserialize;

use super::error::ApiResult;
use super::extract::ApiJson;
use crate::accounts::Principal;
use crate::app::errors::{IssueUpdate, IssueView};
use crate::app::{self, App, AppError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/projects/{project}/errors",
    tag = "errors",
    summary = "A project's error issues, the most recently seen first (query: state = open | all | unresolved | resolved | ignored | regressed, limit ≤ 200)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<IssueView>), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Vec<IssueView>>> {
    let q: ListQuery = serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
        .map_err(|e| AppError::invalid("invalid_query", format!("query string: {e}")))?;
    let issues = app::errors::list(&app, &who, &project, q.state.as_deref(), q.limit).await?;
    Ok(Json(issues))
}

#[utoipa::path(
    get,
    path = "/errors/{id}",
    tag = "errors",
    summary = "One error issue with its deployments and newest events",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = IssueView), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<IssueView>> {
    Ok(Json(app::errors::show(&app, &who, &id).await?))
}

#[utoipa::path(
    patch,
    path = "/errors/{id}",
    tag = "errors",
    summary = "Resolve, ignore or reopen an error issue, or set its severity",
    params(("id" = String, Path)),
    request_body = IssueUpdate,
    responses((status = 200, description = "Changed", body = IssueView), super::openapi::Guarded)
)]
pub async fn update(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<IssueUpdate>,
) -> ApiResult<Json<IssueView>> {
    Ok(Json(app::errors::update(&app, &who, &id, body).await?))
}
