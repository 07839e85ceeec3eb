//! Function logs: stdout/stderr lines shipped by edges, filtered and
//! paginated by a cursor that also serves `--follow` polling.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::MAX_PAGE;
use super::projects;
use super::AppState;
use crate::accounts::Principal;
use crate::store::Role;
use crate::store::{FunctionLogRow, LogQuery};

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

#[derive(Serialize)]
pub struct LogPage {
    pub items: Vec<FunctionLogRow>,
    /// Pass back to get what came after; present even at the end, so a
    /// follower can poll with it.
    pub next_cursor: String,
}

#[utoipa::path(
    get,
    path = "/projects/{project}/logs",
    tag = "logs",
    summary = "Function logs (query: deployment, stream, since, until, after, limit)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<LogParams>,
) -> ApiResult<Json<LogPage>> {
    let p = projects::load(&state, &who, &project, Role::Viewer).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE * 5).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            format!("limit must be between 1 and {}", MAX_PAGE * 5),
        ));
    }
    let after_id = match q.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request("bad_cursor", "cursor is not one this API returned")
        })?,
    };
    if let Some(s) = q.stream.as_deref() {
        if s != "stdout" && s != "stderr" {
            return Err(ApiError::bad_request(
                "bad_stream",
                "stream must be stdout or stderr",
            ));
        }
    }
    if q.deployment.as_ref().is_some_and(|d| d.len() > 64) {
        return Err(ApiError::bad_request(
            "bad_deployment",
            "deployment id is too long",
        ));
    }
    let items = state
        .store
        .function_logs(
            &p,
            &LogQuery {
                deployment: q.deployment,
                stream: q.stream,
                since_ms: q.since,
                until_ms: q.until,
                after_id,
                limit,
            },
        )
        .await?;
    let next_cursor = items.last().map_or(after_id, |l| l.id).to_string();
    Ok(Json(LogPage { items, next_cursor }))
}
