//! Function logs: stdout/stderr lines shipped by edges, filtered and
//! paginated by a cursor that also serves `--follow` polling.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;

use super::error::ApiResult;
use super::views::FunctionLogPage;
use crate::accounts::Principal;
use crate::app::{self, App};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    pub deployment: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: Option<String>,
    /// Unix milliseconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/projects/{project}/logs",
    tag = "logs",
    summary = "Function logs (query: deployment, stream, since, until, after, limit)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = FunctionLogPage), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    Query(q): Query<LogParams>,
) -> ApiResult<Json<FunctionLogPage>> {
    let (items, next_cursor) = app::logs::function_logs(
        &app,
        &who,
        &project,
        app::logs::LogFilter {
            deployment: q.deployment,
            stream: q.stream,
            since: q.since,
            until: q.until,
            limit: q.limit,
            cursor: q.cursor,
        },
    )
    .await?;
    Ok(Json(FunctionLogPage { items, next_cursor }))
}
