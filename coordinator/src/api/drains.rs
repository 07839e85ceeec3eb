//! Log drains (`app::drains` holds the rules).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::error::ApiResult;
use super::extract::ApiJson;
use crate::accounts::Principal;
use crate::app::drains::{DrainView, NewDrain};
use crate::app::{self, App};

#[utoipa::path(
    get,
    path = "/projects/{project}/drains",
    tag = "drains",
    summary = "A project's log drains and how their deliveries go",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<DrainView>), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<DrainView>>> {
    Ok(Json(app::drains::list(&app, &who, &project).await?))
}

#[utoipa::path(
    post,
    path = "/projects/{project}/drains",
    tag = "drains",
    summary = "Drain a project's function, request (sampled) and build logs to an HTTPS endpoint as signed NDJSON",
    params(("project" = String, Path)),
    request_body = NewDrain,
    responses((status = 201, description = "Created; the signing secret is shown once", body = DrainView), super::openapi::Guarded)
)]
pub async fn add(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<NewDrain>,
) -> ApiResult<(StatusCode, Json<DrainView>)> {
    let d = app::drains::add(&app, &who, &project, body).await?;
    Ok((StatusCode::CREATED, Json(d)))
}

#[utoipa::path(
    get,
    path = "/drains/{id}",
    tag = "drains",
    summary = "One log drain and its delivery status",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = DrainView), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<DrainView>> {
    Ok(Json(app::drains::show(&app, &who, &id).await?))
}

#[utoipa::path(
    delete,
    path = "/drains/{id}",
    tag = "drains",
    summary = "Remove a log drain",
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), super::openapi::Guarded)
)]
pub async fn remove(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::drains::remove(&app, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
