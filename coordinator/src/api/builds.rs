//! Builds: queue one (latest commit of a branch, or an exact commit),
//! list them, cancel, redeploy, and read the build log — whole, paginated,
//! or live over server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{time_cursor, ApiJson, Page, PageQuery};
use super::projects;
use super::AppState;
use crate::accounts::{audit, Principal};
use crate::store::Role;
use crate::store::{Build, BuildLogLine, BuildTrigger, GitMeta, Project};
use crate::webhooks;

#[derive(Serialize)]
pub struct BuildView {
    #[serde(flatten)]
    pub build: Build,
    pub project: String,
    /// The deployment's own URL once the build is ready.
    pub url: String,
    /// The branch's stable preview URL.
    pub branch_url: String,
}

pub fn view(state: &AppState, p: &Project, b: Build) -> BuildView {
    BuildView {
        url: state
            .config
            .site_url(&state.config.deployment_host(&p.name, &b.id)),
        branch_url: state
            .config
            .site_url(&state.config.branch_host(&p.name, &b.git.branch)),
        project: p.name.clone(),
        build: b,
    }
}

fn valid_id(id: &str) -> bool {
    id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub async fn load(
    state: &AppState,
    who: &Principal,
    id: &str,
    need: Role,
) -> ApiResult<(Project, Build)> {
    let b = if valid_id(id) {
        state.store.build(id).await?
    } else {
        None
    };
    let b = b.ok_or_else(|| {
        ApiError::not_found(format!(
            "build {:?}",
            id.chars().take(40).collect::<String>()
        ))
    })?;
    let p = projects::load_by_id(state, who, &b.project_id, need).await?;
    Ok((p, b))
}

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
    responses((status = 202, description = "Success"), super::openapi::Guarded)
)]
pub async fn create(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<CreateBuild>,
) -> ApiResult<(StatusCode, Json<BuildView>)> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    let Some((settings, _)) = state.store.git(&p.id).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_connected",
            format!("project {:?} is not connected to a git repository", p.name),
        ));
    };
    let branch = body.branch.unwrap_or(settings.branch);
    webhooks::validate_branch(&branch)
        .map_err(|e| ApiError::bad_request("invalid_branch", e.to_string()))?;
    if let Some(c) = &body.commit {
        webhooks::validate_sha(c)
            .map_err(|e| ApiError::bad_request("invalid_commit", e.to_string()))?;
    }
    let b = state
        .builds
        .enqueue(
            &p,
            GitMeta {
                branch,
                commit_sha: body.commit.map(|c| c.to_ascii_lowercase()),
                ..Default::default()
            },
            BuildTrigger::Api,
        )
        .await?;
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "build.create",
        &p.name,
        serde_json::json!({ "build": b.id }),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(view(&state, &p, b))))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/builds",
    tag = "builds",
    summary = "Builds, newest first (query: limit, cursor)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<BuildView>>> {
    let p = projects::load(&state, &who, &project, Role::Viewer).await?;
    let limit = q.limit()?;
    let items = state.store.list_builds(&p.id, q.before()?, limit).await?;
    let next_cursor = time_cursor(&items, limit, |b| (b.created_at, &b.id));
    Ok(Json(Page {
        items: items.into_iter().map(|b| view(&state, &p, b)).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/builds/{id}",
    tag = "builds",
    summary = "A build",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    let (p, b) = load(&state, &who, &id, Role::Viewer).await?;
    Ok(Json(view(&state, &p, b)))
}

#[utoipa::path(
    post,
    path = "/deployments/{id}/cancel",
    tag = "builds",
    summary = "Cancel a queued or running build",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn cancel(
    who: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<BuildView>> {
    let (p, b) = load(&state, &who, &id, Role::Member).await?;
    if b.status.is_finished() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "build_finished",
            format!("build {} already ended ({})", b.id, b.status.as_str()),
        ));
    }
    let b = state.builds.cancel(&b.id).await?.unwrap_or(b);
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "deployment.cancel",
        &p.name,
        serde_json::json!({ "deployment": b.id }),
    )
    .await;
    Ok(Json(view(&state, &p, b)))
}

/// `POST /deployments/{id}/redeploy`: builds the same commit again.
#[utoipa::path(
    post,
    path = "/deployments/{id}/redeploy",
    tag = "builds",
    summary = "Build the same commit again",
    params(("id" = String, Path)),
    responses((status = 202, description = "Success"), super::openapi::Guarded)
)]
pub async fn redeploy(
    who: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<BuildView>)> {
    let (p, git) = match state.store.build(&id).await? {
        Some(b) if valid_id(&id) => (
            projects::load_by_id(&state, &who, &b.project_id, Role::Member).await?,
            b.git,
        ),
        _ => {
            let (p, d) = super::deployments::load(&state, &who, &id, Role::Member).await?;
            let git = d.git.ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "not_a_build",
                    "this deployment was uploaded, not built from git: deploy the folder again or promote it",
                )
            })?;
            (p, git)
        }
    };
    let b = state
        .builds
        .enqueue(&p, git, BuildTrigger::Redeploy)
        .await?;
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "deployment.redeploy",
        &p.name,
        serde_json::json!({ "from": id, "build": b.id }),
    )
    .await;
    Ok((StatusCode::ACCEPTED, Json(view(&state, &p, b))))
}

#[derive(Deserialize)]
pub struct LogQuery {
    /// Lines after this sequence number.
    #[serde(default)]
    pub after: i64,
    pub limit: Option<i64>,
}

#[derive(Serialize)]
pub struct LogPage {
    pub items: Vec<BuildLogLine>,
    /// The build's status now; when it has ended and `items` is short,
    /// the log is complete.
    pub status: crate::store::BuildStatus,
    pub next_after: i64,
}

#[utoipa::path(
    get,
    path = "/deployments/{id}/build-logs",
    tag = "builds",
    summary = "The build log (query: after, limit)",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn logs(
    who: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Json<LogPage>> {
    let (_, b) = load(&state, &who, &id, Role::Viewer).await?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_limit",
            "limit must be between 1 and 1000",
        ));
    }
    let items = state.store.build_logs(&b.id, q.after.max(0), limit).await?;
    let next_after = items.last().map(|l| l.seq).unwrap_or(q.after.max(0));
    Ok(Json(LogPage {
        items,
        status: b.status,
        next_after,
    }))
}

/// How long an SSE stream waits between looks at the database when the
/// build does not run on this coordinator.
const SSE_POLL: Duration = Duration::from_secs(1);

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
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let (_, b) = load(&state, &who, &id, Role::Viewer).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0)
        .max(0);
    struct Cursor {
        state: AppState,
        id: String,
        after: i64,
        pending: std::collections::VecDeque<Event>,
        done: bool,
    }
    let cursor = Cursor {
        state,
        id: b.id,
        after,
        pending: Default::default(),
        done: false,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if let Some(e) = c.pending.pop_front() {
                return Some((Ok(e), c));
            }
            if c.done {
                return None;
            }
            // Subscribe before reading, so a line written in between wakes us.
            let mut live = c.state.builds.logs.follow(&c.id);
            let lines = c.state.store.build_logs(&c.id, c.after, 500).await;
            let lines = match lines {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(build = %c.id, error = %e, "reading build log for SSE");
                    return None;
                }
            };
            if !lines.is_empty() {
                for l in lines {
                    c.after = l.seq;
                    let data = serde_json::to_string(&l).unwrap_or_default();
                    c.pending.push_back(
                        Event::default()
                            .event("log")
                            .id(l.seq.to_string())
                            .data(data),
                    );
                }
                continue;
            }
            let build = match c.state.store.build(&c.id).await {
                Ok(Some(b)) => b,
                _ => return None,
            };
            if build.status.is_finished() {
                // One more read: lines written just before the status changed.
                if let Ok(rest) = c.state.store.build_logs(&c.id, c.after, 500).await {
                    if !rest.is_empty() {
                        continue;
                    }
                }
                let data = serde_json::json!({
                    "status": build.status,
                    "error": build.error,
                })
                .to_string();
                c.pending
                    .push_back(Event::default().event("status").data(data));
                c.done = true;
                continue;
            }
            match live.as_mut() {
                Some(rx) => {
                    let _ = tokio::time::timeout(SSE_POLL, rx.changed()).await;
                }
                None => tokio::time::sleep(SSE_POLL).await,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
