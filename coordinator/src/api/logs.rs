//! Function logs: stdout/stderr lines shipped by edges, filtered and
//! paginated by a cursor that also serves `--follow` polling.

use axum::extract::{Path, Query, State};
use axum::Json;

use super::error::ApiResult;
use super::views::FunctionLogPage;
use crate::accounts::Principal;
use crate::app::{self, App};

#[utoipa::path(
    get,
    path = "/projects/{project}/logs",
    tag = "logs",
    summary = "Function logs (query: deployment, request_id, stream, since, until, after, limit)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = FunctionLogPage), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    Query(q): Query<app::logs::LogFilter>,
) -> ApiResult<Json<FunctionLogPage>> {
    let (items, next_cursor) = app::logs::function_logs(&app, &who, &project, q).await?;
    Ok(Json(FunctionLogPage { items, next_cursor }))
}
