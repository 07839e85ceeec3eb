//! Deployments: the upload protocol (manifest → missing blobs → uploads →
//! finalize), promotion and rollback. The rules live in `app::deployments`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use protocol::{BlobHash, Manifest};
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::{time_cursor, ApiJson, Page, PageQuery};
use super::views::{BuildView, DeploymentOrBuild, DeploymentView, Missing, Staged};
use crate::accounts::Principal;
use crate::app::{self, App, ErrorKind};
use crate::store::{Role, Target};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeployment {
    /// The bundle manifest (see `protocol::Manifest`): files, functions, routing.
    #[schema(value_type = Object)]
    pub manifest: Manifest,
    #[serde(default = "default_target")]
    pub target: Target,
}

fn default_target() -> Target {
    Target::Preview
}

#[utoipa::path(
    post,
    path = "/projects/{project}/deployments",
    tag = "deployments",
    summary = "Create a deployment from a manifest; answers with the blobs still missing",
    params(("project" = String, Path)),
    request_body = CreateDeployment,
    responses((status = 201, description = "Success", body = Staged), super::openapi::Guarded)
)]
pub async fn create(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> ApiResult<(StatusCode, Json<Staged>)> {
    let s = app::deployments::stage(&app, &who, &project, &body.manifest, body.target).await?;
    Ok((
        StatusCode::CREATED,
        Json(Staged {
            deployment: DeploymentView::of(&app, &s.project, s.deployment),
            missing: s.missing,
            blob_count: s.blob_count,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MissingQuery {
    /// blake3 hashes, hex.
    #[schema(value_type = Vec<String>)]
    pub hashes: Vec<BlobHash>,
}

#[utoipa::path(
    post,
    path = "/blobs/missing",
    tag = "deployments",
    summary = "Which of these blobs the coordinator lacks",
    request_body = MissingQuery,
    responses((status = 200, description = "Success", body = Missing), super::openapi::Guarded)
)]
pub async fn missing_blobs(
    who: Principal,
    State(app): State<App>,
    ApiJson(body): ApiJson<MissingQuery>,
) -> ApiResult<Json<Missing>> {
    let missing = app::deployments::missing_blobs(&app, &who, body.hashes).await?;
    Ok(Json(Missing { missing }))
}

#[utoipa::path(
    put,
    path = "/blobs/{hash}",
    tag = "deployments",
    summary = "Upload one blob; its blake3 hash must match",
    params(("hash" = String, Path)),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, description = "Success"), super::openapi::Guarded)
)]
pub async fn upload_blob(
    who: Principal,
    State(app): State<App>,
    Path(hash): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<StatusCode> {
    // Who may upload is checked before anything of the body is read.
    if !who.can_write_somewhere() {
        return Err(ApiError::forbidden(
            "uploading needs the member role in some team",
        ));
    }
    hash.parse::<BlobHash>()
        .map_err(|e| ApiError::bad_request("bad_hash", e.to_string()))?;
    // A declared length over the limit is refused before any byte is read;
    // a body without one is counted as it streams.
    let limit = app.config.limits.max_blob_bytes;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            format!("blob exceeds the {limit}-byte limit (limits.max_blob_bytes)"),
        ));
    }
    app::deployments::upload_blob(&app, &who, &hash, body.into_data_stream()).await?;
    Ok(StatusCode::CREATED)
}

#[utoipa::path(
    post,
    path = "/deployments/{id}/finalize",
    tag = "deployments",
    summary = "Mark an uploaded deployment ready once every blob is present",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = DeploymentView), super::openapi::Guarded)
)]
pub async fn finalize(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let (p, d) = app::deployments::finalize(&app, &who, &id).await?;
    Ok(Json(DeploymentView::of(&app, &p, d)))
}

#[utoipa::path(
    post,
    path = "/deployments/{id}/promote",
    tag = "deployments",
    summary = "Point production at a ready deployment",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = DeploymentView), super::openapi::Guarded)
)]
pub async fn promote(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let (p, d) = app::deployments::promote(&app, &who, &id).await?;
    Ok(Json(DeploymentView::of(&app, &p, d)))
}

#[utoipa::path(
    post,
    path = "/projects/{project}/rollback",
    tag = "deployments",
    summary = "Point production back at the previous production deployment",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = DeploymentView), super::openapi::Guarded)
)]
pub async fn rollback(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let (p, d) = app::deployments::rollback(&app, &who, &project).await?;
    Ok(Json(DeploymentView::of(&app, &p, d)))
}

/// A deployment; while a git build has not produced it yet, the build
/// (same id) with its status.
#[utoipa::path(
    get,
    path = "/deployments/{id}",
    tag = "deployments",
    summary = "A deployment, or its build while it is being built",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = DeploymentOrBuild), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentOrBuild>> {
    let s = app::access::subject(&app, &who, &id, Role::Viewer).await?;
    Ok(Json(match (s.deployment, s.build) {
        (Some(d), _) => DeploymentOrBuild::Deployment(DeploymentView::of(&app, &s.project, d)),
        (None, Some(b)) => DeploymentOrBuild::Build(BuildView::of(&app, &s.project, b)),
        (None, None) => return Err(ApiError::not_found(format!("deployment {id:?}"))),
    }))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/deployments",
    tag = "deployments",
    summary = "Deployments, newest first (query: limit, cursor)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Page<DeploymentView>), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<DeploymentView>>> {
    let limit = q.limit()?;
    let (p, items) = app::deployments::list(&app, &who, &project, q.before()?, limit).await?;
    let next_cursor = time_cursor(&items, limit, |d| (d.created_at, &d.id));
    Ok(Json(Page {
        items: items
            .into_iter()
            .map(|d| DeploymentView::of(&app, &p, d))
            .collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    delete,
    path = "/deployments/{id}",
    tag = "deployments",
    summary = "Delete a deployment (not the production one) or a finished build",
    params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), super::openapi::Guarded)
)]
pub async fn delete(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::deployments::delete(&app, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
