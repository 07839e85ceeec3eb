//! Builds: queue one (latest commit of a branch, or an exact commit),
//! list them, cancel, redeploy, and read the build log — whole, paginated,
//! or live over server-sent events.

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde::Deserialize;

use super::error::ApiResult;
use super::extract::{time_cursor, ApiJson, Page, PageQuery};
use super::views::{BuildLogPage, BuildView};
use crate::accounts::Principal;
use crate::app::builds::LogEvent;
use crate::app::{self, App};
use crate::store::Role;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBuild {
    /// Default: the production branch.
    pub branch: Option<String>,
    /// Default: the newest commit of the branch when the build starts.
    pub commit: Option<String>,
}

/// `POST /projects/{p}/builds`: "deploy the latest commit of branch X".
#[utoipa::path(
    post,
    path = "/projects/{project}/builds",
    tag = "builds",
    summary = "Build and deploy the newest (or a given) commit of a branch",
    params(("project" = String, Path)),
    request_body = CreateBuild,
    responses((status = 202, description = "Success", body = BuildView), super::openapi::Guarded)
)]
pub async fn create(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<CreateBuild>,
) -> ApiResult<(StatusCode, Json<BuildView>)> {
    let (p, b) = app::builds::queue(&app, &who, &project, body.branch, body.commit).await?;
    Ok((StatusCode::ACCEPTED, Json(BuildView::of(&app, &p, b))))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/builds",
    tag = "builds",
    summary = "Builds, newest first (query: limit, cursor)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Page<BuildView>), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<BuildView>>> {
    let limit = q.limit()?;
    let (p, items) = app::builds::list(&app, &who, &project, q.before()?, limit).await?;
    let next_cursor = time_cursor(&items, limit, |b| (b.created_at, &b.id));
    Ok(Json(Page {
        items: items
            .into_iter()
            .map(|b| BuildView::of(&app, &p, b))
            .collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/builds/{id}",
    tag = "builds",
    summary = "A build",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = BuildView), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    let (p, b) = app::access::build(&app, &who, &id, Role::Viewer).await?;
    Ok(Json(BuildView::of(&app, &p, b)))
}

#[utoipa::path(
    post,
    path = "/deployments/{id}/cancel",
    tag = "builds",
    summary = "Cancel a queued or running build",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = BuildView), super::openapi::Guarded)
)]
pub async fn cancel(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    let (p, b) = app::builds::cancel(&app, &who, &id).await?;
    Ok(Json(BuildView::of(&app, &p, b)))
}

/// `POST /deployments/{id}/redeploy`: builds the same commit again.
#[utoipa::path(
    post,
    path = "/deployments/{id}/redeploy",
    tag = "builds",
    summary = "Build the same commit again",
    params(("id" = String, Path)),
    responses((status = 202, description = "Success", body = BuildView), super::openapi::Guarded)
)]
pub async fn redeploy(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<BuildView>)> {
    let (p, b) = app::builds::redeploy(&app, &who, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(BuildView::of(&app, &p, b))))
}

#[derive(Deserialize)]
pub struct LogQuery {
    /// Lines after this sequence number.
    #[serde(default)]
    pub after: i64,
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/deployments/{id}/build-logs",
    tag = "builds",
    summary = "The build log (query: after, limit)",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = BuildLogPage), super::openapi::Guarded)
)]
pub async fn logs(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<BuildLogPage>> {
    let (b, items) =
        app::builds::log_page(&app, &who, &id, q.after, q.limit.unwrap_or(500)).await?;
    let next_after = items.last().map(|l| l.seq).unwrap_or(q.after.max(0));
    Ok(Json(BuildLogPage {
        items,
        status: b.status,
        next_after,
    }))
}

/// `GET /deployments/{id}/events`: every log line as an `event: log`
/// (id = sequence number, so a reconnecting client's `Last-Event-ID`
/// resumes), then one `event: status` when the build ends.
#[utoipa::path(
    get,
    path = "/deployments/{id}/events",
    tag = "builds",
    summary = "Server-sent events: `log` lines, then one `status` (resumes from Last-Event-ID)",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn events(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let follower = app::builds::follow(&app, &who, &id, after).await?;
    let stream = futures::stream::unfold(follower, |mut f| async move {
        let event = match f.next().await? {
            LogEvent::Line(l) => Event::default()
                .event("log")
                .id(l.seq.to_string())
                .data(serde_json::to_string(&l).unwrap_or_default()),
            LogEvent::Finished { status, error } => Event::default()
                .event("status")
                .data(serde_json::json!({ "status": status, "error": error }).to_string()),
        };
        Some((Ok(event), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
