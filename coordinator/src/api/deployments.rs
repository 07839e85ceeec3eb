//! Deployments: the upload protocol (manifest → missing blobs → uploads →
//! finalize), promotion and rollback. Promote and rollback move a pointer.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use protocol::{BlobHash, Manifest};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::{time_cursor, ApiJson, Page, PageQuery};
use super::projects;
use super::AppState;
use crate::accounts::{audit, Principal};
use crate::store::Role;
use crate::store::{BundleRow, Deployment, DeploymentStatus, Project, Target};

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

#[derive(Serialize)]
pub struct DeploymentView {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub project: String,
    pub url: String,
    pub production_url: Option<String>,
    pub is_production: bool,
}

#[derive(Serialize)]
pub struct Created {
    pub deployment: DeploymentView,
    /// Blobs the coordinator lacks: upload these, then finalize.
    pub missing: Vec<BlobHash>,
    pub blob_count: usize,
}

fn view(state: &AppState, p: &Project, d: Deployment) -> DeploymentView {
    let is_production = p.production_deployment.as_deref() == Some(d.id.as_str());
    DeploymentView {
        url: state
            .config
            .site_url(&state.config.deployment_host(&p.name, &d.id)),
        production_url: is_production.then(|| {
            state
                .config
                .site_url(&state.config.production_host(&p.name))
        }),
        is_production,
        project: p.name.clone(),
        deployment: d,
    }
}

pub(super) async fn load(
    state: &AppState,
    who: &Principal,
    id: &str,
    need: Role,
) -> ApiResult<(Project, Deployment)> {
    let valid = id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let d = if valid {
        state.store.deployment(id).await?
    } else {
        None
    };
    let d = d.ok_or_else(|| {
        ApiError::not_found(format!(
            "deployment {:?}",
            id.chars().take(40).collect::<String>()
        ))
    })?;
    let p = projects::load_by_id(state, who, &d.project_id, need).await?;
    Ok((p, d))
}

#[utoipa::path(
    post,
    path = "/projects/{project}/deployments",
    tag = "deployments",
    summary = "Create a deployment from a manifest; answers with the blobs still missing",
    params(("project" = String, Path)),
    request_body = CreateDeployment,
    responses((status = 201, description = "Success"), super::openapi::Guarded)
)]
pub async fn create(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<CreateDeployment>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    body.manifest
        .validate(&state.config.limits.manifest())
        .map_err(|e| ApiError::bad_request("invalid_manifest", e.to_string()))?;
    let canonical = body.manifest.canonical_bytes();
    let bundle_id = BlobHash::of(&canonical);
    let total: u64 = body.manifest.blob_sizes().values().sum();
    state
        .store
        .put_bundle(&BundleRow {
            id: bundle_id.to_hex(),
            manifest: canonical,
            file_count: body.manifest.files.len() as i64,
            total_size: total as i64,
        })
        .await?;
    let d = Deployment {
        id: crate::ids::new_id(10),
        project_id: p.id.clone(),
        bundle_id: bundle_id.to_hex(),
        status: DeploymentStatus::Uploading,
        target: body.target,
        created_at: crate::store::now_ms(),
        ready_at: None,
        promoted_at: None,
        git: None,
    };
    state.store.create_deployment(&d).await?;
    let blobs = body.manifest.blobs();
    let missing = state.blobs.missing(blobs.iter().copied()).await?;
    tracing::info!(project = %p.name, deployment = %d.id, bundle = %bundle_id.short(), blobs = blobs.len(), missing = missing.len(), "deployment created");
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "deployment.create",
        &p.name,
        serde_json::json!({ "deployment": d.id, "target": d.target.as_str() }),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            deployment: view(&state, &p, d),
            missing,
            blob_count: blobs.len(),
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
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn missing_blobs(
    who: Principal,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<MissingQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    if !who.can_write_somewhere() {
        return Err(ApiError::forbidden(
            "uploading needs the member role in some team",
        ));
    }
    if body.hashes.len() > state.config.limits.max_files * 3 {
        return Err(ApiError::bad_request(
            "too_many_hashes",
            "too many hashes in one request",
        ));
    }
    let missing = state.blobs.missing(body.hashes).await?;
    Ok(Json(json!({ "missing": missing })))
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
    State(state): State<AppState>,
    Path(hash): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<StatusCode> {
    if !who.can_write_somewhere() {
        return Err(ApiError::forbidden(
            "uploading needs the member role in some team",
        ));
    }
    let hash: BlobHash = hash.parse().map_err(|e: protocol::hash::HashParseError| {
        ApiError::bad_request("bad_hash", e.to_string())
    })?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "blob exceeds the {}-byte limit (limits.max_blob_bytes)",
                    state.config.limits.max_blob_bytes
                ),
            )
        } else {
            ApiError::bad_request("bad_body", e.body_text())
        }
    })?;
    match state.blobs.put_verified(&hash, body).await {
        Ok(()) => Ok(StatusCode::CREATED),
        Err(crate::blobs::BlobStoreError::HashMismatch { expected, actual }) => {
            Err(ApiError::bad_request(
                "hash_mismatch",
                format!("uploaded bytes hash to {actual}, not {expected}"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(
    post,
    path = "/deployments/{id}/finalize",
    tag = "deployments",
    summary = "Mark an uploaded deployment ready once every blob is present",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn finalize(
    who: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let (p, d) = load(&state, &who, &id, Role::Member).await?;
    if d.status == DeploymentStatus::Uploading {
        let bytes = state
            .store
            .bundle_manifest(&d.bundle_id)
            .await?
            .ok_or_else(|| ApiError::internal("deployment without bundle"))?;
        let manifest = Manifest::from_canonical_bytes(&bytes, protocol::wire::MAX_FRAME_BYTES)
            .map_err(ApiError::internal)?;
        let missing = state.blobs.missing(manifest.blobs()).await?;
        if !missing.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "blobs_missing",
                format!(
                    "{} blobs are still missing; upload them first",
                    missing.len()
                ),
            )
            .with_details(json!({ "missing": missing })));
        }
        check_functions(&state, &manifest).await?;
        state.store.mark_ready(&d.id).await?;
        if d.target == Target::Production {
            state.store.promote(&p.id, &d.id).await?;
        } else {
            state.store.bump_config_version().await?;
        }
        state.hub.refresh().await?;
        tracing::info!(project = %p.name, deployment = %d.id, target = d.target.as_str(), "deployment ready");
    }
    let (p, d) = load(&state, &who, &id, Role::Viewer).await?;
    Ok(Json(view(&state, &p, d)))
}

/// Every function must be a wasi:http component; a bad one is refused
/// here, before any edge sees it.
async fn check_functions(state: &AppState, manifest: &Manifest) -> ApiResult<()> {
    use futures::TryStreamExt;
    for (route, f) in &manifest.functions {
        let (_, stream) = state.blobs.get(&f.component).await?;
        let bytes: Vec<bytes::Bytes> = stream.try_collect().await?;
        let bytes = bytes.concat();
        let checked =
            tokio::task::spawn_blocking(move || crate::components::validate_http_component(&bytes))
                .await
                .map_err(ApiError::internal)?;
        if let Err(e) = checked {
            return Err(ApiError::bad_request(
                "invalid_function",
                format!("function {route}: {e}"),
            ));
        }
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/deployments/{id}/promote",
    tag = "deployments",
    summary = "Point production at a ready deployment",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn promote(
    who: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let (p, d) = load(&state, &who, &id, Role::Member).await?;
    if d.status != DeploymentStatus::Ready {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            "only a ready deployment can be promoted",
        ));
    }
    state.store.promote(&p.id, &d.id).await?;
    state.hub.refresh().await?;
    tracing::info!(project = %p.name, deployment = %d.id, "promoted");
    let (p, d) = load(&state, &who, &id, Role::Viewer).await?;
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "deployment.promote",
        &p.name,
        serde_json::json!({ "deployment": d.id }),
    )
    .await;
    Ok(Json(view(&state, &p, d)))
}

#[utoipa::path(
    post,
    path = "/projects/{project}/rollback",
    tag = "deployments",
    summary = "Point production back at the previous production deployment",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn rollback(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<DeploymentView>> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    let current_id = p.production_deployment.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_production",
            "the project has no production deployment",
        )
    })?;
    let current = state
        .store
        .deployment(&current_id)
        .await?
        .ok_or_else(|| ApiError::internal("production deployment row missing"))?;
    let previous = state
        .store
        .previous_production(&p.id, &current)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "no_previous",
                "there is no earlier production deployment to roll back to",
            )
        })?;
    state.store.promote(&p.id, &previous.id).await?;
    state.hub.refresh().await?;
    tracing::info!(project = %p.name, from = %current.id, to = %previous.id, "rolled back");
    let (p, d) = load(&state, &who, &previous.id, Role::Viewer).await?;
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "deployment.rollback",
        &p.name,
        serde_json::json!({ "to": d.id }),
    )
    .await;
    Ok(Json(view(&state, &p, d)))
}

/// A deployment; while a git build has not produced it yet, the build
/// (same id) with its status.
#[utoipa::path(
    get,
    path = "/deployments/{id}",
    tag = "deployments",
    summary = "A deployment, or its build while it is being built",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let found = match load(&state, &who, &id, Role::Viewer).await {
        Ok((p, d)) => serde_json::to_value(view(&state, &p, d)),
        Err(not_found) => match super::builds::load(&state, &who, &id, Role::Viewer).await {
            Ok((p, b)) => serde_json::to_value(super::builds::view(&state, &p, b)),
            Err(_) => return Err(not_found),
        },
    };
    Ok(Json(found.map_err(ApiError::internal)?))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/deployments",
    tag = "deployments",
    summary = "Deployments, newest first (query: limit, cursor)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<DeploymentView>>> {
    let p = projects::load(&state, &who, &project, Role::Viewer).await?;
    let limit = q.limit()?;
    let items = state
        .store
        .list_deployments(&p.id, q.before()?, limit)
        .await?;
    let next_cursor = time_cursor(&items, limit, |d| (d.created_at, &d.id));
    Ok(Json(Page {
        items: items.into_iter().map(|d| view(&state, &p, d)).collect(),
        next_cursor,
    }))
}
