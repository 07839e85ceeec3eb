//! Accounts over the API: the caller, teams, members, invitations, API
//! tokens and the audit log. Sign-up and sign-in live here too, shared with
//! the dashboard's forms.

use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::{time_cursor, ApiJson, Page, PageQuery};
use super::AppState;
use crate::accounts::ratelimit::Quota;
use crate::accounts::{audit, password, session, validate, Principal, Scope};
use crate::ids::{self, token_hash};
use crate::store::{
    now_ms, AcceptOutcome, ApiToken, AuditEvent, Invitation, Member, Role, Session, Team, User,
};

pub const MAX_TOKENS_PER_USER: usize = 100;
pub const MAX_TOKEN_DAYS: i64 = 3650;
pub const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The audit "team" of events that concern one account only (its tokens,
/// its password): the account reads them, nobody else does.
pub fn personal_scope(user_id: Option<&str>) -> Option<String> {
    user_id.map(|u| format!("user:{u}"))
}

/// Managing an account (its tokens, its teams, invitations it accepts)
/// needs an unscoped credential: a CI token for one project must not
/// revoke its owner's other tokens.
fn unscoped(who: &Principal) -> ApiResult<()> {
    if who.scope == Scope::All {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "this needs an unscoped credential (a session or an `all` token)",
        ))
    }
}

fn user_of(who: &Principal) -> ApiResult<&User> {
    who.user.as_ref().ok_or_else(|| {
        ApiError::forbidden("sign up in the dashboard first: the admin token has no account yet")
    })
}

/// The team, if the caller has at least `need` on it; otherwise it does not
/// exist as far as they can tell (or 403 when they are in it with less).
pub async fn team_for(state: &AppState, who: &Principal, id: &str, need: Role) -> ApiResult<Team> {
    let role = if valid_id(id) {
        who.team_role(id)
    } else {
        None
    };
    let Some(role) = role else {
        return Err(ApiError::not_found(format!(
            "team {:?}",
            id.chars().take(64).collect::<String>()
        )));
    };
    if role < need {
        return Err(ApiError::forbidden(format!(
            "your role in this team is {}; this needs {}",
            role.as_str(),
            need.as_str()
        )));
    }
    state
        .store
        .team(id)
        .await?
        .ok_or_else(|| ApiError::not_found("team"))
}

// ---- sign-up and sign-in -------------------------------------------------------

/// Creates an account: the first one owns the instance; later ones need
/// open sign-up or an invitation (`invite` is the invitation's token).
pub async fn sign_up(
    state: &AppState,
    email: &str,
    name: &str,
    password: &str,
    invite: Option<&str>,
    ip: &str,
) -> ApiResult<User> {
    let email = validate::email(email).map_err(|e| ApiError::bad_request("invalid_email", e))?;
    let name = validate::display_name(name, "name")
        .map_err(|e| ApiError::bad_request("invalid_name", e))?;
    password::check_policy(password)
        .map_err(|e| ApiError::bad_request("weak_password", e.to_string()))?;
    let invitation = match invite.filter(|t| !t.is_empty()) {
        Some(t) => Some(live_invitation(state, t).await?),
        None => None,
    };
    let first = state.store.count_users().await? == 0;
    if !first && !state.config.accounts.open_signup && invitation.is_none() {
        return Err(ApiError::forbidden(
            "sign-up is closed on this instance; ask an owner for an invitation link",
        ));
    }
    let hash = password::hash(password.to_string())
        .await
        .map_err(ApiError::internal)?;
    let now = now_ms();
    let user = User {
        id: ids::new_id(12),
        email,
        name: name.clone(),
        instance_owner: false,
        created_at: now,
    };
    let team = Team {
        id: ids::new_id(12),
        name: format!("{name}'s team"),
        created_at: now,
    };
    let user = state.store.create_user(&user, &hash, &team).await?;
    audit::record_as(
        &state.store,
        Some(&user.id),
        &user.email,
        ip,
        None,
        "user.signup",
        &user.email,
        json!({ "instance_owner": user.instance_owner }),
    )
    .await;
    if let Some(inv) = invitation {
        accept(state, &user, &inv, ip).await?;
    }
    Ok(user)
}

#[derive(Debug)]
pub enum SignInError {
    /// Wrong email or password: one message for both.
    Invalid(Quota),
    Limited(Quota),
    Internal(ApiError),
}

/// Checks the password under the per-account and per-address limits and
/// opens a session. Returns the cookie value, the session (its CSRF token),
/// the user and the quota left.
pub async fn sign_in(
    state: &AppState,
    email: &str,
    password: &str,
    ip: &str,
    user_agent: &str,
) -> Result<(String, Session, User, Quota), SignInError> {
    let email = email.trim().to_ascii_lowercase();
    let email: String = email.chars().take(validate::MAX_EMAIL + 1).collect();
    let limits = &state.login_limits;
    let quota = limits.check(&email, ip, Instant::now());
    if quota.remaining == 0 {
        return Err(SignInError::Limited(quota));
    }
    let found = state
        .store
        .user_by_email(&email)
        .await
        .map_err(|e| SignInError::Internal(e.into()))?;
    let (user, stored) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, password::dummy_hash().to_string()),
    };
    let ok = password::verify(password.to_string(), stored).await && user.is_some();
    let Some(user) = user.filter(|_| ok) else {
        let quota = limits.fail(&email, ip, Instant::now());
        return Err(SignInError::Invalid(quota));
    };
    limits.succeed(&email);
    let (cookie, row) =
        session::new_session(&user.id, state.config.accounts.session_ttl, ip, user_agent);
    state
        .store
        .create_session(&row)
        .await
        .map_err(|e| SignInError::Internal(e.into()))?;
    let quota = limits.check(&email, ip, Instant::now());
    Ok((cookie, row, user, quota))
}

/// Changes the caller's password after checking the current one; other
/// sessions end.
pub async fn change_password(
    state: &AppState,
    who: &Principal,
    current: &str,
    new: &str,
) -> ApiResult<()> {
    let user = user_of(who)?;
    let stored = state
        .store
        .password_hash(&user.id)
        .await?
        .ok_or_else(|| ApiError::not_found("account"))?;
    if !password::verify(current.to_string(), stored).await {
        return Err(ApiError::bad_request(
            "wrong_password",
            "the current password is not right",
        ));
    }
    password::check_policy(new)
        .map_err(|e| ApiError::bad_request("weak_password", e.to_string()))?;
    let hash = password::hash(new.to_string())
        .await
        .map_err(ApiError::internal)?;
    let keep = match &who.via {
        crate::accounts::authz::Via::Session { id_hash, .. } => Some(id_hash.as_str()),
        _ => None,
    };
    state.store.set_password(&user.id, &hash, keep).await?;
    audit::record(
        &state.store,
        who,
        None,
        "user.password",
        &user.email,
        json!({}),
    )
    .await;
    Ok(())
}

// ---- the caller -----------------------------------------------------------------

#[derive(Serialize)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub role: Role,
}

pub async fn my_teams(state: &AppState, who: &Principal) -> ApiResult<Vec<TeamView>> {
    let mut out = Vec::new();
    for (id, role) in &who.memberships {
        if who.team_role(id).is_none() {
            continue;
        }
        if let Some(t) = state.store.team(id).await? {
            out.push(TeamView {
                id: t.id,
                name: t.name,
                role: *role,
            });
        }
    }
    Ok(out)
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "accounts",
    summary = "The caller: user, scope and teams",
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn me(
    who: Principal,
    State(state): State<AppState>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(json!({
        "user": who.user,
        "instance_owner": who.is_instance_owner(),
        "scope": who.scope.render(),
        "teams": my_teams(&state, &who).await?,
    })))
}

// ---- teams and members ------------------------------------------------------------

#[utoipa::path(
    get,
    path = "/teams",
    tag = "teams",
    summary = "The caller's teams and roles",
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list_teams(
    who: Principal,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<TeamView>>> {
    Ok(Json(my_teams(&state, &who).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    pub name: String,
}

pub async fn create_team_as(state: &AppState, who: &Principal, name: &str) -> ApiResult<Team> {
    let user = user_of(who)?;
    if who.scope != Scope::All {
        return Err(ApiError::forbidden("a scoped token cannot create teams"));
    }
    if who.memberships.len() >= 50 {
        return Err(ApiError::bad_request(
            "too_many_teams",
            "an account may be in at most 50 teams",
        ));
    }
    let name = validate::display_name(name, "team name")
        .map_err(|e| ApiError::bad_request("invalid_name", e))?;
    let team = Team {
        id: ids::new_id(12),
        name,
        created_at: now_ms(),
    };
    state.store.create_team(&team, &user.id).await?;
    audit::record(
        &state.store,
        who,
        Some(&team.id),
        "team.create",
        &team.name,
        json!({}),
    )
    .await;
    Ok(team)
}

#[utoipa::path(
    post,
    path = "/teams",
    tag = "teams",
    summary = "Create a team owned by the caller",
    request_body = CreateTeam,
    responses((status = 201, description = "Success"), super::openapi::Guarded)
)]
pub async fn create_team(
    who: Principal,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTeam>,
) -> ApiResult<(StatusCode, Json<Team>)> {
    Ok((
        StatusCode::CREATED,
        Json(create_team_as(&state, &who, &body.name).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/teams/{team}/members",
    tag = "teams",
    summary = "Members of a team",
    params(("team" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn members(
    who: Principal,
    State(state): State<AppState>,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<Member>>> {
    let team = team_for(&state, &who, &team, Role::Viewer).await?;
    Ok(Json(state.store.members(&team.id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

/// Owners change roles and remove members; anyone may leave a team
/// (`role` None), as long as an owner remains.
pub async fn set_member_as(
    state: &AppState,
    who: &Principal,
    team: &str,
    user_id: &str,
    role: Option<Role>,
) -> ApiResult<()> {
    let leaving = role.is_none() && who.user_id() == Some(user_id);
    let need = if leaving { Role::Viewer } else { Role::Owner };
    let team = team_for(state, who, team, need).await?;
    if !valid_id(user_id) || !state.store.set_member_role(&team.id, user_id, role).await? {
        return Err(ApiError::not_found("member"));
    }
    let action = if role.is_some() {
        "member.role"
    } else {
        "member.remove"
    };
    audit::record(
        &state.store,
        who,
        Some(&team.id),
        action,
        user_id,
        json!({ "role": role }),
    )
    .await;
    Ok(())
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
    State(state): State<AppState>,
    Path((team, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetRole>,
) -> ApiResult<StatusCode> {
    set_member_as(&state, &who, &team, &user, Some(body.role)).await?;
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
    State(state): State<AppState>,
    Path((team, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    set_member_as(&state, &who, &team, &user, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- invitations --------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    pub role: Role,
}

#[derive(Serialize)]
pub struct NewInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// Shown once: the link to send to the person invited.
    pub url: String,
    pub token: String,
}

pub async fn invite_as(
    state: &AppState,
    who: &Principal,
    team: &str,
    role: Role,
) -> ApiResult<NewInvitation> {
    let team = team_for(state, who, team, Role::Owner).await?;
    if state.store.pending_invitations(&team.id).await?.len() >= 100 {
        return Err(ApiError::bad_request(
            "too_many_invitations",
            "a team may have at most 100 pending invitations; revoke some first",
        ));
    }
    let token = format!("inv_{}", ids::new_secret());
    let now = now_ms();
    let invitation = Invitation {
        id: ids::new_id(12),
        team_id: team.id.clone(),
        role,
        token_hash: token_hash(&token),
        created_by: who.actor(),
        created_at: now,
        expires_at: now + INVITE_TTL_MS,
        accepted_at: None,
        accepted_by: None,
        revoked_at: None,
    };
    state.store.create_invitation(&invitation).await?;
    audit::record(
        &state.store,
        who,
        Some(&team.id),
        "invitation.create",
        &invitation.id,
        json!({ "role": role }),
    )
    .await;
    Ok(NewInvitation {
        url: format!("{}/invite/{token}", state.config.api_url()),
        invitation,
        token,
    })
}

#[utoipa::path(
    post,
    path = "/teams/{team}/invitations",
    tag = "teams",
    summary = "Create an invitation link, shown once (owner)",
    params(("team" = String, Path)),
    request_body = CreateInvitation,
    responses((status = 201, description = "Success"), super::openapi::Guarded)
)]
pub async fn create_invitation(
    who: Principal,
    State(state): State<AppState>,
    Path(team): Path<String>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> ApiResult<(StatusCode, Json<NewInvitation>)> {
    Ok((
        StatusCode::CREATED,
        Json(invite_as(&state, &who, &team, body.role).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/teams/{team}/invitations",
    tag = "teams",
    summary = "Pending invitations (owner)",
    params(("team" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list_invitations(
    who: Principal,
    State(state): State<AppState>,
    Path(team): Path<String>,
) -> ApiResult<Json<Vec<Invitation>>> {
    let team = team_for(&state, &who, &team, Role::Owner).await?;
    Ok(Json(state.store.pending_invitations(&team.id).await?))
}

pub async fn revoke_invitation_as(
    state: &AppState,
    who: &Principal,
    team: &str,
    id: &str,
) -> ApiResult<()> {
    let team = team_for(state, who, team, Role::Owner).await?;
    if !valid_id(id) || !state.store.revoke_invitation(&team.id, id).await? {
        return Err(ApiError::not_found("invitation"));
    }
    audit::record(
        &state.store,
        who,
        Some(&team.id),
        "invitation.revoke",
        id,
        json!({}),
    )
    .await;
    Ok(())
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
    State(state): State<AppState>,
    Path((team, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    revoke_invitation_as(&state, &who, &team, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An invitation that can still be used, by its token.
pub async fn live_invitation(state: &AppState, token: &str) -> ApiResult<Invitation> {
    let gone = || {
        ApiError::new(
            StatusCode::GONE,
            "invitation_gone",
            "this invitation link is unknown, expired, revoked or already used; ask for a new one",
        )
    };
    if !token.starts_with("inv_") || token.len() > 100 {
        return Err(gone());
    }
    match state.store.invitation_by_hash(&token_hash(token)).await? {
        Some(i) if i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > now_ms() => {
            Ok(i)
        }
        _ => Err(gone()),
    }
}

async fn accept(state: &AppState, user: &User, inv: &Invitation, ip: &str) -> ApiResult<()> {
    match state.store.accept_invitation(&inv.id, &user.id).await? {
        AcceptOutcome::Joined => {
            audit::record_as(
                &state.store,
                Some(&user.id),
                &user.email,
                ip,
                Some(&inv.team_id),
                "invitation.accept",
                &user.email,
                json!({ "role": inv.role, "invitation": inv.id }),
            )
            .await;
            Ok(())
        }
        AcceptOutcome::AlreadyMember => Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_member",
            "you are already in this team",
        )),
        AcceptOutcome::Gone => Err(ApiError::new(
            StatusCode::GONE,
            "invitation_gone",
            "this invitation was used or revoked a moment ago",
        )),
    }
}

pub async fn accept_as(state: &AppState, who: &Principal, token: &str) -> ApiResult<Invitation> {
    unscoped(who)?;
    let user = user_of(who)?;
    let inv = live_invitation(state, token).await?;
    accept(state, user, &inv, &who.ip).await?;
    Ok(inv)
}

#[utoipa::path(
    post,
    path = "/invitations/{token}/accept",
    tag = "teams",
    summary = "Join the invitation's team",
    params(("token" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn accept_invitation(
    who: Principal,
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Json<Invitation>> {
    Ok(Json(accept_as(&state, &who, &token).await?))
}

// ---- API tokens -------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    /// `all` (default), `team:<id>` or `project:<name or id>`.
    pub scope: Option<String>,
    pub expires_in_days: Option<i64>,
}

#[derive(Serialize)]
pub struct TokenView {
    #[serde(flatten)]
    pub token: ApiToken,
    pub scope: String,
}

#[derive(Serialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub view: TokenView,
    /// Shown once; only its hash is kept.
    pub secret: String,
}

fn token_view(t: ApiToken) -> TokenView {
    TokenView {
        scope: Scope::from_columns(t.team_id.as_deref(), t.project_id.as_deref()).render(),
        token: t,
    }
}

pub async fn create_token_as(
    state: &AppState,
    who: &Principal,
    body: &CreateToken,
) -> ApiResult<NewToken> {
    unscoped(who)?;
    let name = validate::display_name(&body.name, "token name")
        .map_err(|e| ApiError::bad_request("invalid_name", e))?;
    let raw_scope = body.scope.as_deref().unwrap_or("all");
    let scope = Scope::parse(raw_scope).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_scope",
            "scope must be `all`, `team:<id>` or `project:<name>`",
        )
    })?;
    // A token never reaches further than the credential that made it.
    let (team_id, project_id) = match &scope {
        Scope::All if who.scope == Scope::All => (None, None),
        Scope::All => {
            return Err(ApiError::forbidden(
                "a scoped token cannot create an unscoped one",
            ))
        }
        Scope::Team(t) => (Some(team_for(state, who, t, Role::Viewer).await?.id), None),
        Scope::Project(p) => {
            let p = super::projects::load(state, who, p, Role::Viewer).await?;
            (Some(p.team_id), Some(p.id))
        }
    };
    let expires_at = match body.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(now_ms() + d * 24 * 3600 * 1000),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_expiry",
                format!("expires_in_days must be between 1 and {MAX_TOKEN_DAYS}"),
            ))
        }
    };
    let live = state
        .store
        .api_tokens_of(who.user_id())
        .await?
        .into_iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    if live >= MAX_TOKENS_PER_USER {
        return Err(ApiError::bad_request(
            "too_many_tokens",
            format!("at most {MAX_TOKENS_PER_USER} live tokens per account; revoke some first"),
        ));
    }
    let secret = format!("{}{}", ids::API_TOKEN_PREFIX, ids::new_secret());
    let token = ApiToken {
        id: ids::new_id(12),
        name,
        token_hash: token_hash(&secret),
        user_id: who.user_id().map(str::to_string),
        team_id,
        project_id,
        created_at: now_ms(),
        expires_at,
        last_used_at: None,
        revoked_at: None,
    };
    state.store.insert_api_token(&token).await?;
    let audit_scope = token
        .team_id
        .clone()
        .or_else(|| personal_scope(who.user_id()));
    audit::record(
        &state.store,
        who,
        audit_scope.as_deref(),
        "token.create",
        &token.name,
        json!({ "id": token.id, "scope": scope.render(), "expires_at": expires_at }),
    )
    .await;
    Ok(NewToken {
        view: token_view(token),
        secret,
    })
}

#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    summary = "Create an API token, scoped and optionally expiring; the secret is shown once",
    request_body = CreateToken,
    responses((status = 201, description = "Success"), super::openapi::Guarded)
)]
pub async fn create_token(
    who: Principal,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    Ok((
        StatusCode::CREATED,
        Json(create_token_as(&state, &who, &body).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    summary = "The caller's API tokens (never their secrets)",
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list_tokens(
    who: Principal,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<TokenView>>> {
    let tokens = state.store.api_tokens_of(who.user_id()).await?;
    Ok(Json(tokens.into_iter().map(token_view).collect()))
}

pub async fn revoke_token_as(state: &AppState, who: &Principal, id: &str) -> ApiResult<()> {
    unscoped(who)?;
    if !valid_id(id) || !state.store.revoke_api_token(who.user_id(), id).await? {
        return Err(ApiError::not_found("token"));
    }
    let mine = personal_scope(who.user_id());
    audit::record(
        &state.store,
        who,
        mine.as_deref(),
        "token.revoke",
        id,
        json!({}),
    )
    .await;
    Ok(())
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
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    revoke_token_as(&state, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- audit log ------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct AuditQuery {
    pub team: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Owners read their teams' events, everyone their own account's (tokens,
/// password); the instance owner also reads the instance's own (sign-ups,
/// nodes).
pub async fn audit_page(
    state: &AppState,
    who: &Principal,
    q: &AuditQuery,
) -> ApiResult<Page<AuditEvent>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = page.limit()?;
    let (teams, instance) = match q.team.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => (vec![team_for(state, who, t, Role::Owner).await?.id], false),
        None => (
            who.memberships
                .iter()
                .filter(|(t, _)| who.team_role(t) == Some(Role::Owner))
                .map(|(t, _)| t.clone())
                .chain(if who.scope == Scope::All {
                    personal_scope(who.user_id())
                } else {
                    None
                })
                .collect(),
            who.is_instance_owner(),
        ),
    };
    let items = state
        .store
        .audit_events(&teams, instance, page.before()?, limit)
        .await?;
    let next_cursor = time_cursor(&items, limit, |e| (e.at, e.id.as_str()));
    Ok(Page { items, next_cursor })
}

#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    summary = "Audit events of teams the caller owns (query: team, limit, cursor)",
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn audit(
    who: Principal,
    State(state): State<AppState>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Page<AuditEvent>>> {
    Ok(Json(audit_page(&state, &who, &q).await?))
}
