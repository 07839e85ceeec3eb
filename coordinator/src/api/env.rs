//! Per-project environment variables (plain or secret) and the outbound
//! allow-list for functions. Secret values go in, never out
//! (`app::env` holds the rule).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiResult;
use super::extract::ApiJson;
use super::views::{EnvVarView, VarSet};
use crate::accounts::Principal;
use crate::app::{self, App};

#[utoipa::path(
    get,
    path = "/projects/{project}/env",
    tag = "env",
    summary = "Environment variables (secret values are never returned)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<EnvVarView>), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<EnvVarView>>> {
    let vars = app::env::list(&app, &who, &project).await?;
    Ok(Json(vars.into_iter().map(EnvVarView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVar {
    pub value: String,
    #[serde(default)]
    pub secret: bool,
    #[serde(default = "all")]
    pub env: String,
}

fn all() -> String {
    "all".into()
}

#[utoipa::path(
    put,
    path = "/projects/{project}/env/{name}",
    tag = "env",
    summary = "Set a variable, plain or secret, for production, preview or all",
    params(("project" = String, Path), ("name" = String, Path)),
    request_body = SetVar,
    responses((status = 200, description = "Success", body = VarSet), super::openapi::Guarded)
)]
pub async fn set(
    who: Principal,
    State(app): State<App>,
    Path((project, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetVar>,
) -> ApiResult<Json<VarSet>> {
    let kinds = app::env::set(
        &app,
        &who,
        &project,
        &name,
        &body.value,
        body.secret,
        &body.env,
    )
    .await?;
    Ok(Json(VarSet {
        name,
        env: kinds.into_iter().map(str::to_string).collect(),
        secret: body.secret,
    }))
}

#[derive(Deserialize)]
pub struct EnvQuery {
    pub env: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/projects/{project}/env/{name}",
    tag = "env",
    summary = "Delete a variable (query: env)",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn delete(
    who: Principal,
    State(app): State<App>,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<StatusCode> {
    app::env::delete(&app, &who, &project, &name, q.env.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    pub hosts: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/projects/{project}/outbound",
    tag = "env",
    summary = "Hosts the project's functions may call",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Outbound), super::openapi::Guarded)
)]
pub async fn get_outbound(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<Outbound>> {
    Ok(Json(Outbound {
        hosts: app::env::outbound(&app, &who, &project).await?,
    }))
}

#[utoipa::path(
    put,
    path = "/projects/{project}/outbound",
    tag = "env",
    summary = "Replace the outbound allow-list",
    params(("project" = String, Path)),
    request_body = Outbound,
    responses((status = 200, description = "Success", body = Outbound), super::openapi::Guarded)
)]
pub async fn set_outbound(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<Outbound>,
) -> ApiResult<Json<Outbound>> {
    Ok(Json(Outbound {
        hosts: app::env::set_outbound(&app, &who, &project, &body.hosts).await?,
    }))
}
