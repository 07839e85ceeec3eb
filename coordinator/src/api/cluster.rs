//! Cluster-wide routes: health, nodes, join tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::ApiResult;
use super::extract::ApiJson;
use crate::accounts::Principal;
use crate::app::cluster::{Health, NewJoinToken, NodeView};
use crate::app::{self, App};

#[utoipa::path(
    get,
    path = "/health",
    tag = "cluster",
    summary = "Liveness and the published config version",
    responses((status = 200, description = "Success", body = Health)),
    security(())
)]
pub async fn health(State(app): State<App>) -> Json<Health> {
    Json(app::cluster::health(&app))
}

#[utoipa::path(
    get,
    path = "/nodes",
    tag = "cluster",
    summary = "Edge nodes with region, link status, mesh state and config lag",
    responses((status = 200, description = "Success", body = Vec<NodeView>), super::openapi::Guarded)
)]
pub async fn nodes(who: Principal, State(app): State<App>) -> ApiResult<Json<Vec<NodeView>>> {
    Ok(Json(app::cluster::nodes(&app, &who).await?))
}

#[utoipa::path(
    delete,
    path = "/nodes/{id}",
    tag = "cluster",
    summary = "Remove an edge node: its certificate is refused everywhere from now on (instance owner)",
    params(("id" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn remove_node(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::cluster::remove_node(&app, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    pub region: String,
    /// Lifetime in seconds; default one hour, at most 7 days.
    pub ttl_seconds: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/join-tokens",
    tag = "cluster",
    summary = "Create a one-time join token for a new edge node (instance owner)",
    request_body = CreateJoinToken,
    responses((status = 201, description = "Success", body = NewJoinToken), super::openapi::Guarded)
)]
pub async fn create_join_token(
    who: Principal,
    State(app): State<App>,
    ApiJson(body): ApiJson<CreateJoinToken>,
) -> ApiResult<(StatusCode, Json<NewJoinToken>)> {
    let t = app::cluster::create_join_token(&app, &who, &body.region, body.ttl_seconds).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[utoipa::path(
    post,
    path = "/admin/gc",
    tag = "cluster",
    summary = "Run the retention and garbage collection pass now (instance owner)",
    responses((status = 200, description = "What it did", body = crate::lifecycle::Report), super::openapi::Guarded)
)]
pub async fn gc(
    who: Principal,
    State(app): State<App>,
) -> ApiResult<Json<crate::lifecycle::Report>> {
    if !who.is_instance_owner() {
        return Err(crate::app::AppError::forbidden(
            "only the instance owner (with an unscoped credential) runs the garbage collection",
        ));
    }
    crate::lifecycle::pass(&app)
        .await
        .map(Json)
        .map_err(crate::app::AppError::internal)
}
