//! Function logs: stdout/stderr lines shipped by edges, filtered and
//! paginated by a cursor that also serves `--follow` polling.

use super::page::MAX_PAGE;
use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::store::{FunctionLogRow, LogQuery, Role};

/// Which lines to read (the API's query string, as it is).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    pub deployment: Option<String>,
    /// One request's lines (the id error issues and `x-request-id` show).
    pub request_id: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: Option<String>,
    /// Unix milliseconds.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lines matching `f` and the cursor to pass back for what came after
/// (present even at the end, so a follower can poll with it).
pub async fn function_logs(
    app: &App,
    who: &Principal,
    project: &str,
    f: LogFilter,
) -> AppResult<(Vec<FunctionLogRow>, String)> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    let limit = f.limit.unwrap_or(100);
    if !(1..=MAX_PAGE * 5).contains(&limit) {
        return Err(AppError::invalid(
            "bad_limit",
            format!("limit must be between 1 and {}", MAX_PAGE * 5),
        ));
    }
    let after_id = match f.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            AppError::invalid("bad_cursor", "cursor is not one this API returned")
        })?,
    };
    if let Some(s) = f.stream.as_deref() {
        if s != "stdout" && s != "stderr" {
            return Err(AppError::invalid(
                "bad_stream",
                "stream must be stdout or stderr",
            ));
        }
    }
    if f.deployment.as_ref().is_some_and(|d| d.len() > 64) {
        return Err(AppError::invalid(
            "bad_deployment",
            "deployment id is too long",
        ));
    }
    let items = app
        .store
        .function_logs(
            &p,
            &LogQuery {
                deployment: f.deployment,
                request_id: f.request_id,
                stream: f.stream,
                since_ms: f.since,
                until_ms: f.until,
                after_id,
                limit,
            },
        )
        .await?;
    let next = items.last().map_or(after_id, |l| l.id).to_string();
    Ok((items, next))
}
