//! Alert rules and notification channels (`app::alerts` holds the rules).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::error::ApiResult;
use super::extract::ApiJson;
use crate::accounts::Principal;
use crate::app::alerts::{ChannelView, DeliveryView, NewChannel, NewRule, RuleView};
use crate::app::{self, App, AppError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamQuery {
    team: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<i64>,
}

fn query<T: serde::de::DeserializeOwned>(q: Option<String>) -> Result<T, AppError> {
    serde_urlencoded::from_str(q.as_deref().unwrap_or(""))
        .map_err(|e| AppError::invalid("invalid_query", format!("query string: {e}")))
}

#[utoipa::path(
    get,
    path = "/channels",
    tag = "alerts",
    summary = "Notification channels of a team (query: team; default: every team of the caller)",
    responses((status = 200, description = "Success", body = Vec<ChannelView>), super::openapi::Guarded)
)]
pub async fn list_channels(
    who: Principal,
    State(app): State<App>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Vec<ChannelView>>> {
    let q: TeamQuery = query(q)?;
    Ok(Json(
        app::alerts::list_channels(&app, &who, q.team.as_deref()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/channels",
    tag = "alerts",
    summary = "Add a notification channel (webhook, slack or email; team owners)",
    request_body = NewChannel,
    responses((status = 201, description = "Created; a webhook's secret is shown once", body = ChannelView), super::openapi::Guarded)
)]
pub async fn add_channel(
    who: Principal,
    State(app): State<App>,
    ApiJson(body): ApiJson<NewChannel>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let c = app::alerts::add_channel(&app, &who, body).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(
    delete,
    path = "/channels/{id}",
    tag = "alerts",
    summary = "Remove a notification channel (team owners)",
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), super::openapi::Guarded)
)]
pub async fn remove_channel(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::alerts::remove_channel(&app, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/channels/{id}/test",
    tag = "alerts",
    summary = "Send a test message to a channel (its delivery shows in the history)",
    params(("id" = String, Path)),
    responses((status = 202, description = "Queued", body = DeliveryView), super::openapi::Guarded)
)]
pub async fn test_channel(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let d = app::alerts::test_channel(&app, &who, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

#[utoipa::path(
    get,
    path = "/channels/{id}/deliveries",
    tag = "alerts",
    summary = "A channel's delivery history, newest first (query: limit ≤ 200)",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<DeliveryView>), super::openapi::Guarded)
)]
pub async fn deliveries(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let q: LimitQuery = query(q)?;
    Ok(Json(
        app::alerts::deliveries(&app, &who, &id, q.limit).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/alerts",
    tag = "alerts",
    summary = "A project's alert rules and the state of what each watches",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<RuleView>), super::openapi::Guarded)
)]
pub async fn list_project_rules(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<RuleView>>> {
    Ok(Json(
        app::alerts::list_rules(&app, &who, Some(&project)).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/projects/{project}/alerts",
    tag = "alerts",
    summary = "Add an alert rule to a project (a preset kind with threshold, window, for, channels)",
    params(("project" = String, Path)),
    request_body = NewRule,
    responses((status = 201, description = "Created", body = RuleView), super::openapi::Guarded)
)]
pub async fn add_project_rule(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<NewRule>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let r = app::alerts::add_rule(&app, &who, Some(&project), body).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[utoipa::path(
    get,
    path = "/alerts",
    tag = "alerts",
    summary = "The instance's alert rules (edge memory, disk, cluster certificates; instance owners)",
    responses((status = 200, description = "Success", body = Vec<RuleView>), super::openapi::Guarded)
)]
pub async fn list_instance_rules(
    who: Principal,
    State(app): State<App>,
) -> ApiResult<Json<Vec<RuleView>>> {
    Ok(Json(app::alerts::list_rules(&app, &who, None).await?))
}

#[utoipa::path(
    post,
    path = "/alerts",
    tag = "alerts",
    summary = "Add an instance-wide alert rule (instance owners)",
    request_body = NewRule,
    responses((status = 201, description = "Created", body = RuleView), super::openapi::Guarded)
)]
pub async fn add_instance_rule(
    who: Principal,
    State(app): State<App>,
    ApiJson(body): ApiJson<NewRule>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let r = app::alerts::add_rule(&app, &who, None, body).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[utoipa::path(
    get,
    path = "/alerts/{id}",
    tag = "alerts",
    summary = "One alert rule and its alerts",
    params(("id" = String, Path)),
    responses((status = 200, description = "Success", body = RuleView), super::openapi::Guarded)
)]
pub async fn show_rule(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<Json<RuleView>> {
    Ok(Json(app::alerts::show_rule(&app, &who, &id).await?))
}

#[utoipa::path(
    delete,
    path = "/alerts/{id}",
    tag = "alerts",
    summary = "Remove an alert rule",
    params(("id" = String, Path)),
    responses((status = 204, description = "Removed"), super::openapi::Guarded)
)]
pub async fn remove_rule(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    app::alerts::remove_rule(&app, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
