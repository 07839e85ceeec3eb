//! Accounts: sign-up, sign-in and passwords, the caller's teams, members,
//! invitations, API tokens and the audit log.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::access::{self, unscoped, user_of, valid_team_id as valid_id};
use super::page::{time_cursor, Page, PageQuery};
use super::{App, AppError, AppResult};
use crate::accounts::ratelimit::Quota;
use crate::accounts::{audit, password, session, validate, Principal, Scope};
use crate::ids::{self, token_hash};
use crate::store::{
    now_ms, AcceptOutcome, ApiToken, AuditEvent, Invitation, Member, Role, Session, Team, User,
};

pub const MAX_TOKENS_PER_USER: usize = 100;
pub const MAX_TOKEN_DAYS: i64 = 3650;
pub const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// The audit "team" of events that concern one account only (its tokens,
/// its password): the account reads them, nobody else does.
pub fn personal_scope(user_id: Option<&str>) -> Option<String> {
    user_id.map(|u| format!("user:{u}"))
}

// ---- sign-up and sign-in -------------------------------------------------------

/// What a sign-up carries besides the account's own fields.
#[derive(Debug, Default, Clone, Copy)]
pub struct SignUpProof<'a> {
    /// An invitation's token.
    pub invite: Option<&'a str>,
    /// The setup token printed at first start: the first account needs it.
    pub setup: Option<&'a str>,
}

/// Creates an account: the first one owns the instance and needs the setup
/// token; later ones need open sign-up or an invitation.
pub async fn sign_up(
    app: &App,
    email: &str,
    name: &str,
    password: &str,
    proof: SignUpProof<'_>,
    ip: &str,
) -> AppResult<User> {
    let invite = proof.invite;
    let email = validate::email(email).map_err(|e| AppError::invalid("invalid_email", e))?;
    let name =
        validate::display_name(name, "name").map_err(|e| AppError::invalid("invalid_name", e))?;
    password::check_policy(password)
        .map_err(|e| AppError::invalid("weak_password", e.to_string()))?;
    let invitation = match invite.filter(|t| !t.is_empty()) {
        Some(t) => Some(live_invitation(app, t).await?),
        None => None,
    };
    let first = app.store.count_users().await? == 0;
    if !first && !app.config.accounts.open_signup && invitation.is_none() {
        return Err(AppError::forbidden(
            "sign-up is closed on this instance; ask an owner for an invitation link",
        ));
    }
    // Checked before the (costly) hash, and again where it is spent.
    let setup_hash = ids::token_hash(proof.setup.unwrap_or("").trim());
    if first && !app.store.setup_token_exists(&setup_hash).await? {
        return Err(setup_token_needed(app));
    }
    let hash = password::hash(password.to_string())
        .await
        .map_err(hash_error)?;
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
    // The invitation is used in the account's own transaction: two
    // sign-ups with one link cannot both get an account.
    let user = match app
        .store
        .create_user_invited(
            &user,
            &hash,
            &team,
            invitation.as_ref().map(|i| i.id.as_str()),
            Some(&setup_hash),
        )
        .await
    {
        Ok(u) => u,
        Err(crate::store::StoreError::SetupToken) => return Err(setup_token_needed(app)),
        Err(crate::store::StoreError::Gone(_)) => {
            return Err(AppError::gone(
                "invitation_gone",
                "this invitation was used a moment ago; ask for a new one",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    audit::record_as(
        &app.store,
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
        audit_accept(app, &user, &inv, ip).await;
    }
    if user.instance_owner {
        let _ = std::fs::remove_file(app.config.data_dir.join(SETUP_TOKEN_FILE));
    }
    Ok(user)
}

fn setup_token_needed(app: &App) -> AppError {
    AppError::forbidden(format!(
        "the first account owns this instance and needs its setup token: open the sign-up link the coordinator printed at its first start, or read the token from {}",
        app.config.data_dir.join(SETUP_TOKEN_FILE).display()
    ))
}

/// Where the setup token is kept for the operator, mode 0600.
pub const SETUP_TOKEN_FILE: &str = "setup-token";

/// On a start with no account yet: the setup token the first account
/// needs, made (and written to the data directory) unless a live one is
/// there. `None` once an account exists.
pub async fn ensure_setup_token(
    store: &crate::store::Store,
    data_dir: &std::path::Path,
) -> anyhow::Result<Option<String>> {
    let path = data_dir.join(SETUP_TOKEN_FILE);
    if store.count_users().await? > 0 {
        // Spent: nothing to keep around.
        let _ = std::fs::remove_file(&path);
        return Ok(None);
    }
    if let Ok(text) = std::fs::read_to_string(&path) {
        let token = text.trim().to_string();
        if store.setup_token_exists(&token_hash(&token)).await? {
            return Ok(Some(token));
        }
    }
    let token = format!("setup_{}", ids::new_secret());
    store.create_setup_token(&token_hash(&token)).await?;
    platform::fs::write_private(&path, format!("{token}\n").as_bytes())?;
    Ok(Some(token))
}

async fn audit_accept(app: &App, user: &User, inv: &Invitation, ip: &str) {
    audit::record_as(
        &app.store,
        Some(&user.id),
        &user.email,
        ip,
        Some(&inv.team_id),
        "invitation.accept",
        &user.email,
        json!({ "role": inv.role, "invitation": inv.id }),
    )
    .await;
}

/// A hashing failure: the gate was full (try later), or the platform broke.
fn hash_error(e: password::PasswordError) -> AppError {
    match e {
        password::PasswordError::Busy => AppError::new(
            super::ErrorKind::RateLimited,
            "busy",
            "too many sign-ins at once; try again in a moment",
        ),
        other => AppError::internal(other),
    }
}

#[derive(Debug)]
pub enum SignInError {
    /// Wrong email or password: one message for both.
    Invalid(Quota),
    Limited(Quota),
    Internal(AppError),
}

/// Checks the password under the per-account and per-address limits and
/// opens a session. Returns the cookie value, the session (its CSRF token),
/// the user and the quota left.
pub async fn sign_in(
    app: &App,
    email: &str,
    password: &str,
    ip: &str,
    user_agent: &str,
) -> Result<(String, Session, User, Quota), SignInError> {
    let email = email.trim().to_ascii_lowercase();
    let email: String = email.chars().take(validate::MAX_EMAIL + 1).collect();
    let limits = &app.login_limits;
    // The attempt is counted before the password is checked, in one step
    // with the check of the limit: concurrent guesses cannot all slip in
    // under it. A success gives it back.
    let quota = limits
        .reserve(&email, ip, Instant::now())
        .map_err(SignInError::Limited)?;
    let found = app
        .store
        .user_by_email(&email)
        .await
        .map_err(|e| SignInError::Internal(e.into()))?;
    let (user, stored) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, password::dummy_hash().to_string()),
    };
    let ok = match password::verify(password.to_string(), stored).await {
        Ok(ok) => ok && user.is_some(),
        Err(e) => {
            // Not a guess that was judged: it does not count.
            limits.refund(&email, ip);
            return Err(SignInError::Internal(hash_error(e)));
        }
    };
    let Some(user) = user.filter(|_| ok) else {
        return Err(SignInError::Invalid(quota));
    };
    limits.succeed(&email, ip);
    let (cookie, row) =
        session::new_session(&user.id, app.config.accounts.session_ttl, ip, user_agent);
    app.store
        .create_session(&row)
        .await
        .map_err(|e| SignInError::Internal(e.into()))?;
    let quota = limits.check(&email, ip, Instant::now());
    Ok((cookie, row, user, quota))
}

/// Changes the caller's password after checking the current one; other
/// sessions end.
pub async fn change_password(
    app: &App,
    who: &Principal,
    current: &str,
    new: &str,
) -> AppResult<()> {
    let user = user_of(who)?;
    let stored = app
        .store
        .password_hash(&user.id)
        .await?
        .ok_or_else(|| AppError::not_found("account"))?;
    if !password::verify(current.to_string(), stored)
        .await
        .map_err(hash_error)?
    {
        return Err(AppError::invalid(
            "wrong_password",
            "the current password is not right",
        ));
    }
    password::check_policy(new).map_err(|e| AppError::invalid("weak_password", e.to_string()))?;
    let hash = password::hash(new.to_string()).await.map_err(hash_error)?;
    let keep = match &who.via {
        crate::accounts::authz::Via::Session { id_hash, .. } => Some(id_hash.as_str()),
        _ => None,
    };
    app.store.set_password(&user.id, &hash, keep).await?;
    audit::record(
        &app.store,
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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TeamView {
    pub id: String,
    pub name: String,
    pub role: Role,
}

pub async fn my_teams(app: &App, who: &Principal) -> AppResult<Vec<TeamView>> {
    let mut out = Vec::new();
    for (id, role) in &who.memberships {
        if who.team_role(id).is_none() {
            continue;
        }
        if let Some(t) = app.store.team(id).await? {
            out.push(TeamView {
                id: t.id,
                name: t.name,
                role: *role,
            });
        }
    }
    Ok(out)
}

// ---- teams and members ------------------------------------------------------------

pub async fn create_team(app: &App, who: &Principal, name: &str) -> AppResult<Team> {
    let user = user_of(who)?;
    if who.scope != Scope::All {
        return Err(AppError::forbidden("a scoped token cannot create teams"));
    }
    if who.memberships.len() >= 50 {
        return Err(AppError::invalid(
            "too_many_teams",
            "an account may be in at most 50 teams",
        ));
    }
    let name = validate::display_name(name, "team name")
        .map_err(|e| AppError::invalid("invalid_name", e))?;
    let team = Team {
        id: ids::new_id(12),
        name,
        created_at: now_ms(),
    };
    app.store.create_team(&team, &user.id).await?;
    audit::record(
        &app.store,
        who,
        Some(&team.id),
        "team.create",
        &team.name,
        json!({}),
    )
    .await;
    Ok(team)
}

/// Owners change roles and remove members; anyone may leave a team
/// (`role` None), as long as an owner remains.
pub async fn set_member(
    app: &App,
    who: &Principal,
    team: &str,
    user_id: &str,
    role: Option<Role>,
) -> AppResult<()> {
    let leaving = role.is_none() && who.user_id() == Some(user_id);
    let need = if leaving { Role::Viewer } else { Role::Owner };
    let team = access::team(app, who, team, need).await?;
    if !valid_id(user_id) || !app.store.set_member_role(&team.id, user_id, role).await? {
        return Err(AppError::not_found("member"));
    }
    let action = if role.is_some() {
        "member.role"
    } else {
        "member.remove"
    };
    audit::record(
        &app.store,
        who,
        Some(&team.id),
        action,
        user_id,
        json!({ "role": role }),
    )
    .await;
    Ok(())
}

// ---- invitations --------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewInvitation {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// Shown once: the link to send to the person invited.
    pub url: String,
    pub token: String,
}

pub async fn invite(
    app: &App,
    who: &Principal,
    team: &str,
    role: Role,
) -> AppResult<NewInvitation> {
    let team = access::team(app, who, team, Role::Owner).await?;
    if app.store.pending_invitations(&team.id).await?.len() >= 100 {
        return Err(AppError::invalid(
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
    app.store.create_invitation(&invitation).await?;
    audit::record(
        &app.store,
        who,
        Some(&team.id),
        "invitation.create",
        &invitation.id,
        json!({ "role": role }),
    )
    .await;
    Ok(NewInvitation {
        url: format!("{}/invite/{token}", app.config.api_url()),
        invitation,
        token,
    })
}

pub async fn revoke_invitation(app: &App, who: &Principal, team: &str, id: &str) -> AppResult<()> {
    let team = access::team(app, who, team, Role::Owner).await?;
    if !valid_id(id) || !app.store.revoke_invitation(&team.id, id).await? {
        return Err(AppError::not_found("invitation"));
    }
    audit::record(
        &app.store,
        who,
        Some(&team.id),
        "invitation.revoke",
        id,
        json!({}),
    )
    .await;
    Ok(())
}

/// An invitation that can still be used, by its token.
pub async fn live_invitation(app: &App, token: &str) -> AppResult<Invitation> {
    let gone = || {
        AppError::gone(
            "invitation_gone",
            "this invitation link is unknown, expired, revoked or already used; ask for a new one",
        )
    };
    if !token.starts_with("inv_") || token.len() > 100 {
        return Err(gone());
    }
    match app.store.invitation_by_hash(&token_hash(token)).await? {
        Some(i) if i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > now_ms() => {
            Ok(i)
        }
        _ => Err(gone()),
    }
}

async fn accept(app: &App, user: &User, inv: &Invitation, ip: &str) -> AppResult<()> {
    match app.store.accept_invitation(&inv.id, &user.id).await? {
        AcceptOutcome::Joined => {
            audit_accept(app, user, inv, ip).await;
            Ok(())
        }
        AcceptOutcome::AlreadyMember => Err(AppError::conflict(
            "already_member",
            "you are already in this team",
        )),
        AcceptOutcome::Gone => Err(AppError::gone(
            "invitation_gone",
            "this invitation was used or revoked a moment ago",
        )),
    }
}

pub async fn accept_invitation(app: &App, who: &Principal, token: &str) -> AppResult<Invitation> {
    unscoped(who)?;
    let user = user_of(who)?;
    let inv = live_invitation(app, token).await?;
    accept(app, user, &inv, &who.ip).await?;
    Ok(inv)
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

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    #[serde(flatten)]
    pub token: ApiToken,
    pub scope: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

pub async fn create_token(app: &App, who: &Principal, body: &CreateToken) -> AppResult<NewToken> {
    unscoped(who)?;
    let name = validate::display_name(&body.name, "token name")
        .map_err(|e| AppError::invalid("invalid_name", e))?;
    let raw_scope = body.scope.as_deref().unwrap_or("all");
    let scope = Scope::parse(raw_scope).ok_or_else(|| {
        AppError::invalid(
            "invalid_scope",
            "scope must be `all`, `team:<id>` or `project:<name>`",
        )
    })?;
    // A token never reaches further than the credential that made it.
    let (team_id, project_id) = match &scope {
        Scope::All if who.scope == Scope::All => (None, None),
        Scope::All => {
            return Err(AppError::forbidden(
                "a scoped token cannot create an unscoped one",
            ))
        }
        Scope::Team(t) => (
            Some(access::team(app, who, t, Role::Viewer).await?.id),
            None,
        ),
        Scope::Project(p) => {
            let p = access::project(app, who, p, Role::Viewer).await?;
            (Some(p.team_id), Some(p.id))
        }
    };
    let expires_at = match body.expires_in_days {
        None => None,
        Some(d) if (1..=MAX_TOKEN_DAYS).contains(&d) => Some(now_ms() + d * 24 * 3600 * 1000),
        Some(_) => {
            return Err(AppError::invalid(
                "invalid_expiry",
                format!("expires_in_days must be between 1 and {MAX_TOKEN_DAYS}"),
            ))
        }
    };
    let live = app
        .store
        .api_tokens_of(who.user_id())
        .await?
        .into_iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    if live >= MAX_TOKENS_PER_USER {
        return Err(AppError::invalid(
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
    app.store.insert_api_token(&token).await?;
    let audit_scope = token
        .team_id
        .clone()
        .or_else(|| personal_scope(who.user_id()));
    audit::record(
        &app.store,
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

pub async fn revoke_token(app: &App, who: &Principal, id: &str) -> AppResult<()> {
    unscoped(who)?;
    if !valid_id(id) || !app.store.revoke_api_token(who.user_id(), id).await? {
        return Err(AppError::not_found("token"));
    }
    let mine = personal_scope(who.user_id());
    audit::record(
        &app.store,
        who,
        mine.as_deref(),
        "token.revoke",
        id,
        json!({}),
    )
    .await;
    Ok(())
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
pub async fn audit(app: &App, who: &Principal, q: &AuditQuery) -> AppResult<Page<AuditEvent>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = page.limit()?;
    let (teams, instance) = match q.team.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => (
            vec![access::team(app, who, t, Role::Owner).await?.id],
            false,
        ),
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
    let items = app
        .store
        .audit_events(&teams, instance, page.before()?, limit)
        .await?;
    let next_cursor = time_cursor(&items, limit, |e| (e.at, e.id.as_str()));
    Ok(Page { items, next_cursor })
}

/// Members of a team the caller is in.
pub async fn members(app: &App, who: &Principal, team: &str) -> AppResult<Vec<Member>> {
    let team = access::team(app, who, team, Role::Viewer).await?;
    Ok(app.store.members(&team.id).await?)
}

/// Invitations of a team still waiting to be used (owners only).
pub async fn pending_invitations(
    app: &App,
    who: &Principal,
    team: &str,
) -> AppResult<Vec<Invitation>> {
    let team = access::team(app, who, team, Role::Owner).await?;
    Ok(app.store.pending_invitations(&team.id).await?)
}

/// The caller's API tokens (never their secrets).
pub async fn tokens(app: &App, who: &Principal) -> AppResult<Vec<TokenView>> {
    let tokens = app.store.api_tokens_of(who.user_id()).await?;
    Ok(tokens.into_iter().map(token_view).collect())
}

/// Opens a session for a user who just proved who they are (sign-up):
/// the cookie value and the session (its CSRF token).
pub async fn open_session(
    app: &App,
    user: &User,
    ip: &str,
    user_agent: &str,
) -> AppResult<(String, Session)> {
    let (cookie, row) =
        session::new_session(&user.id, app.config.accounts.session_ttl, ip, user_agent);
    app.store.create_session(&row).await?;
    Ok((cookie, row))
}

/// Ends the session whose cookie value is `cookie`.
pub async fn end_session(app: &App, cookie: &str) -> AppResult<()> {
    app.store.delete_session(&token_hash(cookie)).await?;
    Ok(())
}

/// Whether no account exists yet (the first one will own the instance).
pub async fn no_accounts_yet(app: &App) -> AppResult<bool> {
    Ok(app.store.count_users().await? == 0)
}

/// Whether `cookie` names a live session.
pub async fn has_session(app: &App, cookie: &str) -> bool {
    matches!(app.store.session(&token_hash(cookie)).await, Ok(Some(_)))
}

/// A usable invitation and the team it is for, by its token.
pub async fn invitation_and_team(app: &App, token: &str) -> Option<(Invitation, Team)> {
    let inv = live_invitation(app, token).await.ok()?;
    let team = app.store.team(&inv.team_id).await.ok()??;
    Some((inv, team))
}

/// A team's name (empty if the team is gone), for pages about its projects.
pub async fn team_name(app: &App, team_id: &str) -> AppResult<String> {
    Ok(app
        .store
        .team(team_id)
        .await?
        .map(|t| t.name)
        .unwrap_or_default())
}
