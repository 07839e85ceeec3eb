//! A project's repository connection and the push webhook.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::error::ApiResult;
use super::extract::ApiJson;
use super::views::{GitView, HookAnswer};
use crate::accounts::Principal;
use crate::app::git::{GitInput, HookOutcome};
use crate::app::{self, App};

#[utoipa::path(
    put,
    path = "/projects/{project}/git",
    tag = "git",
    summary = "Connect or update a repository",
    params(("project" = String, Path)),
    request_body = GitInput,
    responses((status = 200, description = "Success", body = GitView), super::openapi::Guarded)
)]
pub async fn put(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<GitInput>,
) -> ApiResult<Json<GitView>> {
    Ok(Json(
        app::git::connect(&app, &who, &project, &body).await?.into(),
    ))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/git",
    tag = "git",
    summary = "The git connection, webhook URL and (for members) its secret",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = GitView), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<GitView>> {
    Ok(Json(app::git::show(&app, &who, &project).await?.into()))
}

#[utoipa::path(
    delete,
    path = "/projects/{project}/git",
    tag = "git",
    summary = "Disconnect the repository",
    params(("project" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn delete(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<StatusCode> {
    app::git::disconnect(&app, &who, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /hooks/git/{project}`: no bearer token; the provider's signature
/// over the body (or GitLab's token) proves the sender holds the secret.
#[utoipa::path(
    post,
    path = "/hooks/git/{project}",
    tag = "git",
    summary = "Push webhook from GitHub, GitLab or Gitea (authenticated by signature, not token)",
    params(("project" = String, Path)),
    request_body(content = Object, description = "The git host's push event"),
    responses((status = 202, description = "Success", body = HookAnswer), super::openapi::Public),
    security(())
)]
pub async fn hook(
    State(app): State<App>,
    Path(project): Path<String>,
    super::auth::ClientIp(ip): super::auth::ClientIp,
    headers: HeaderMap,
    body: axum::body::Body,
) -> ApiResult<(StatusCode, Json<HookAnswer>)> {
    let gate = app::git::hook_gate(&app, &project, &headers).await?;
    let body = axum::body::to_bytes(body, app::git::MAX_HOOK_BODY)
        .await
        .map_err(|_| {
            app::AppError::new(
                app::ErrorKind::TooLarge,
                "body_too_large",
                format!("a push event is at most {} bytes", app::git::MAX_HOOK_BODY),
            )
        })?;
    let outcome = app::git::receive_hook(&app, gate, &ip, &headers, &body).await?;
    Ok(match outcome {
        HookOutcome::Queued(b) => (
            StatusCode::ACCEPTED,
            Json(HookAnswer::Queued {
                queued: b.id,
                branch: b.git.branch,
                target: b.target,
            }),
        ),
        HookOutcome::BranchDeleted {
            branch,
            alias_removed,
        } => (
            StatusCode::OK,
            Json(HookAnswer::BranchDeleted {
                branch_deleted: branch,
                alias_removed,
            }),
        ),
        HookOutcome::Pong => (StatusCode::OK, Json(HookAnswer::Pong { pong: true })),
        HookOutcome::Ignored(what) => (
            StatusCode::ACCEPTED,
            Json(HookAnswer::Ignored { ignored: what }),
        ),
    })
}
