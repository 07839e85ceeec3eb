//! Accounts over the API: the caller, teams, members, invitations, API
//! tokens and the audit log (the rules are `app::accounts`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiResult;
use super::extract::{ApiJson, Page};
use super::views::Me;
use crate::accounts::Principal;
use crate::app::accounts::{
    self as acc, AuditQuery, CreateToken, NewInvitation, NewToken, TeamView, TokenView,
};
use crate::app::App;
use crate::config::Quotas;
use crate::store::{AuditEvent, Invitation, Member, Role, Team, Usage};

#[utoipa::path(
    get,
    path = "/me",
    tag = "accounts",
    summary = "The caller: user, scope and teams",
    responses((status = 200, description = "Success", body = Me), super::openapi::Guarded)
)]
pub async fn me(who: Principal, State(app): State<App>) -> ApiResult<Json<Me>> {
    Ok(Json(Me {
        teams: acc::my_teams(&app, &who).await?,
        instance_owner: who.is_instance_owner(),
        scope: who.scope.render(),
        user: who.user,
    }))
}

#[utoipa::path(
    get,
    path = "/teams",
    tag = "teams",
    summary = "The caller's teams and roles",
    responses((status = 200, description = "Success", body = Vec<TeamView>), super::openapi::Guarded)
)]
pub async fn list_teams(who: Principal, State(app): State<App>) -> ApiResult<Json<Vec<TeamView>>> {
    Ok(Json(acc::my_teams(&app, &who).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    pub name: String,
}

#[utoipa::path(
    post,
    path = "/teams",
    tag = "teams",
    summary = "Create a team owned by the caller",
    request_body = CreateTeam,
    responses((status = 201, description = "Success", body = Team), super::openapi::Guarded)
)]
pub async fn create_team(
    who: Principal,
    State(app): State<App>,
    ApiJson(body): ApiJson<CreateTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    Ok((
        StatusCode::CREATED,
        Json(acc::create_team(&app, &who, &body.name).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/teams/{team}/members",
    tag = "teams",
    summary = "Members of a team",
    params(("team" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<Member>), super::openapi::Guarded)
)]
pub async fn members(
    who: Principal,
    State(app): State<App>,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<Member>>> {
    Ok(Json(acc::members(&app, &who, &team).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

#[utoipa::path(
    put,
    path = "/teams/{team}/members/{user}",
    tag = "teams",
    summary = "Change a member's role (owner)",
    params(("team" = String, Path), ("user" = String, Path)),
    request_body = SetRole,
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn set_member(
    who: Principal,
    State(app): State<App>,
    Path((team, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetRole>,
) -> ApiResult<StatusCode> {
    acc::set_member(&app, &who, &team, &user, Some(body.role)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    delete,
    path = "/teams/{team}/members/{user}",
    tag = "teams",
    summary = "Remove a member (owner) or leave the team",
    params(("team" = String, Path), ("user" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn remove_member(
    who: Principal,
    State(app): State<App>,
    Path((team, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    acc::set_member(&app, &who, &team, &user, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    pub role: Role,
}

#[utoipa::path(
    post,
    path = "/teams/{team}/invitations",
    tag = "teams",
    summary = "Create an invitation link, shown once (owner)",
    params(("team" = String, Path)),
    request_body = CreateInvitation,
    responses((status = 201, description = "Success", body = NewInvitation), super::openapi::Guarded)
)]
pub async fn create_invitation(
    who: Principal,
    State(app): State<App>,
    Path(team): Path<String>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> ApiResult<(StatusCode, Json<NewInvitation>)> {
    Ok((
        StatusCode::CREATED,
        Json(acc::invite(&app, &who, &team, body.role).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/teams/{team}/invitations",
    tag = "teams",
    summary = "Pending invitations (owner)",
    params(("team" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<Invitation>), super::openapi::Guarded)
)]
pub async fn list_invitations(
    who: Principal,
    State(app): State<App>,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<Invitation>>> {
    Ok(Json(acc::pending_invitations(&app, &who, &team).await?))
}

#[utoipa::path(
    delete,
    path = "/teams/{team}/invitations/{id}",
    tag = "teams",
    summary = "Revoke a pending invitation (owner)",
    params(("team" = String, Path), ("id" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn revoke_invitation(
    who: Principal,
    State(app): State<App>,
    Path((team, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    acc::revoke_invitation(&app, &who, &team, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/invitations/{token}/accept",
    tag = "teams",
    summary = "Join the invitation's team",
    params(("token" = String, Path)),
    responses((status = 200, description = "Success", body = Invitation), super::openapi::Guarded)
)]
pub async fn accept_invitation(
    who: Principal,
    State(app): State<App>,
    Path(token): Path<String>,
) -> ApiResult<Json<Invitation>> {
    Ok(Json(acc::accept_invitation(&app, &who, &token).await?))
}

#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    summary = "Create an API token, scoped and optionally expiring; the secret is shown once",
    request_body = CreateToken,
    responses((status = 201, description = "Success", body = NewToken), super::openapi::Guarded)
)]
pub async fn create_token(
    who: Principal,
    State(app): State<App>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(acc::create_token(&app, &who, &body).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    summary = "The caller's API tokens (never their secrets)",
    responses((status = 200, description = "Success", body = Vec<TokenView>), super::openapi::Guarded)
)]
pub async fn list_tokens(
    who: Principal,
    State(app): State<App>,
) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(acc::tokens(&app, &who).await?))
}

#[utoipa::path(
    delete,
    path = "/tokens/{id}",
    tag = "tokens",
    summary = "Revoke one of the caller's tokens",
    params(("id" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn revoke_token(
    who: Principal,
    State(app): State<App>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    acc::revoke_token(&app, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    summary = "Audit events of teams the caller owns (query: team, limit, cursor)",
    responses((status = 200, description = "Success", body = Page<AuditEvent>), super::openapi::Guarded)
)]
pub async fn audit(
    who: Principal,
    State(app): State<App>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    Ok(Json(acc::audit(&app, &who, &q).await?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamQuotas {
    pub quotas: Quotas,
    pub usage: Usage,
}

#[utoipa::path(
    get,
    path = "/teams/{team}/quotas",
    tag = "teams",
    summary = "The team's quotas and what it holds",
    params(("team" = String, Path)),
    responses((status = 200, description = "Success", body = TeamQuotas), super::openapi::Guarded)
)]
pub async fn quotas(
    who: Principal,
    State(app): State<App>,
    Path(team): Path<String>,
) -> ApiResult<Json<TeamQuotas>> {
    let (quotas, usage) = crate::app::quotas::show(&app, &who, &team).await?;
    Ok(Json(TeamQuotas { quotas, usage }))
}

#[utoipa::path(
    put,
    path = "/teams/{team}/quotas",
    tag = "teams",
    summary = "Set the team's own quotas, or null for the instance's (instance owner)",
    params(("team" = String, Path)),
    request_body = Option<Quotas>,
    responses((status = 200, description = "Success", body = Quotas), super::openapi::Guarded)
)]
pub async fn set_quotas(
    who: Principal,
    State(app): State<App>,
    Path(team): Path<String>,
    ApiJson(body): ApiJson<Option<Quotas>>,
) -> ApiResult<Json<Quotas>> {
    Ok(Json(
        crate::app::quotas::set(&app, &who, &team, body).await?,
    ))
}
