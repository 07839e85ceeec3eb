//! Nodes, API tokens, teams and the audit log.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{Redirect, Response};
use dashboard::model::{
    AuditPage, AuditRow, InvitationRow, MemberRow, Nav, NodeRow, NodesPage, Pager, RegionGroup,
    TeamPage, TeamRef, TokenRow, TokensPage,
};
use serde::Deserialize;

use super::{
    act, done, failed, render, success, urlencode, Flash, NoFields, Post, SignedIn, WebError,
    WebResult,
};
use crate::accounts::Scope;
use crate::app::accounts as acc;
use crate::app::{self, App};
use crate::store::Role;

// ---- nodes --------------------------------------------------------------------

async fn nodes_model(
    state: &App,
    signed: &SignedIn,
    new_join_token: Option<String>,
) -> WebResult<NodesPage> {
    let nodes = app::cluster::nodes(state, &signed.who).await?;
    let rates = app::cluster::request_rates(state, &signed.who).await?;
    let mut regions: BTreeMap<String, Vec<NodeRow>> = BTreeMap::new();
    for n in nodes {
        // What peers see wins; without peers, the coordinator's own link.
        let state_label = match n.mesh_state.as_str() {
            "unknown" => match n.status.as_str() {
                "online" => "alive",
                "offline" => "down",
                _ => "unknown",
            },
            s => s,
        };
        regions
            .entry(n.node.region.clone())
            .or_default()
            .push(NodeRow {
                id: n.node.id.clone(),
                name: n.node.name.clone(),
                state: state_label.into(),
                version: n.node.software_version.clone(),
                config_version: n.node.config_version,
                bundles_present: n.node.bundles_present,
                bundles_pending: n.node.bundles_pending,
                last_seen: n.node.last_seen,
                addr: n.node.https_addr.clone().or(n.node.http_addr.clone()),
                cert_not_after: n.node.cert_not_after,
                requests_per_sec: rates.get(&n.node.id).copied(),
            });
    }
    Ok(NodesPage {
        regions: regions
            .into_iter()
            .map(|(region, nodes)| RegionGroup { region, nodes })
            .collect(),
        current_config_version: state.hub.version() as i64,
        new_join_token,
        alerts: super::alerts::instance_alerts(state, signed).await?,
    })
}

pub async fn nodes_page(State(state): State<App>, signed: SignedIn) -> WebResult<Response> {
    let model = nodes_model(&state, &signed, None).await?;
    let html = dashboard::nodes(&signed.page("Nodes", Nav::Nodes), &model);
    Ok(render(&signed, html))
}

#[derive(Deserialize)]
pub struct JoinTokenPost {
    region: String,
}

pub async fn create_join_token(
    State(state): State<App>,
    Post { signed, form: f }: Post<JoinTokenPost>,
) -> WebResult<Response> {
    match app::cluster::create_join_token(&state, &signed.who, f.region.trim(), None).await {
        Ok(t) => {
            // Shown on this response only: it is not stored in clear.
            let model = nodes_model(&state, &signed, Some(t.token)).await?;
            let html = dashboard::nodes(&signed.page("Nodes", Nav::Nodes), &model);
            Ok(render(&signed, html))
        }
        Err(e) => Ok(failed("/nodes", e)),
    }
}

pub async fn remove_node(
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    act(
        "/nodes",
        app::cluster::remove_node(&state, &signed.who, &id),
        |()| {
            success(
                "/nodes",
                "Node removed. Its certificate is refused from now on.",
            )
        },
    )
    .await
}

// ---- tokens ---------------------------------------------------------------------

async fn tokens_model(
    state: &App,
    signed: &SignedIn,
    new_token: Option<String>,
) -> WebResult<TokensPage> {
    let who = &signed.who;
    let tokens = acc::tokens(state, who).await?;
    let teams = acc::my_teams(state, who).await?;
    let mut scopes = vec![("all".to_string(), "Everything I can access".to_string())];
    for t in &teams {
        scopes.push((format!("team:{}", t.id), format!("Team: {}", t.name)));
    }
    let projects = app::access::visible_projects(state, who, None, 200).await?;
    for p in &projects {
        scopes.push((
            format!("project:{}", p.name),
            format!("Project: {}", p.name),
        ));
    }
    let describe = |t: &acc::TokenView| match Scope::from_columns(
        t.token.team_id.as_deref(),
        t.token.project_id.as_deref(),
    ) {
        Scope::All => "everything".to_string(),
        Scope::Team(id) => format!(
            "team {}",
            teams
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.name.as_str())
                .unwrap_or(&id)
        ),
        Scope::Project(id) => format!(
            "project {}",
            projects
                .iter()
                .find(|x| x.id == id)
                .map(|x| x.name.as_str())
                .unwrap_or(&id)
        ),
    };
    Ok(TokensPage {
        tokens: tokens
            .iter()
            .map(|t| TokenRow {
                id: t.token.id.clone(),
                name: t.token.name.clone(),
                scope: describe(t),
                created_at: t.token.created_at,
                expires_at: t.token.expires_at,
                last_used_at: t.token.last_used_at,
                revoked_at: t.token.revoked_at,
            })
            .collect(),
        new_token,
        scopes,
        error: None,
    })
}

pub async fn tokens_page(State(state): State<App>, signed: SignedIn) -> WebResult<Response> {
    let model = tokens_model(&state, &signed, None).await?;
    let html = dashboard::tokens(&signed.page("API tokens", Nav::Tokens), &model);
    Ok(render(&signed, html))
}

#[derive(Deserialize)]
pub struct TokenPost {
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expires_days: String,
}

pub async fn create_token(
    State(state): State<App>,
    Post { signed, form: f }: Post<TokenPost>,
) -> WebResult<Response> {
    let expires_in_days = match f.expires_days.trim() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Ok(done(
                    "/tokens",
                    Flash::error("Expiry must be a whole number of days, or empty for never."),
                ))
            }
        },
    };
    let body = acc::CreateToken {
        name: f.name,
        scope: Some(f.scope).filter(|s| !s.is_empty()),
        expires_in_days,
    };
    match acc::create_token(&state, &signed.who, &body).await {
        Ok(t) => {
            let model = tokens_model(&state, &signed, Some(t.secret)).await?;
            let html = dashboard::tokens(&signed.page("API tokens", Nav::Tokens), &model);
            Ok(render(&signed, html))
        }
        Err(e) => Ok(failed("/tokens", e)),
    }
}

pub async fn revoke_token(
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    act(
        "/tokens",
        acc::revoke_token(&state, &signed.who, &id),
        |()| success("/tokens", "Token revoked. Requests using it now fail."),
    )
    .await
}

// ---- teams ------------------------------------------------------------------------

pub async fn teams_index(signed: SignedIn) -> WebResult<Response> {
    let first = signed
        .who
        .memberships
        .first()
        .map(|(t, _)| t.clone())
        .ok_or_else(|| WebError::not_found("team"))?;
    Ok(axum::response::IntoResponse::into_response(Redirect::to(
        &format!("/teams/{first}"),
    )))
}

#[derive(Deserialize)]
pub struct TeamPost {
    name: String,
}

pub async fn create_team(
    State(state): State<App>,
    Post { signed, form: f }: Post<TeamPost>,
) -> WebResult<Response> {
    act(
        "/teams",
        acc::create_team(&state, &signed.who, &f.name),
        |t| {
            success(
                &format!("/teams/{}", t.id),
                format!("Team {} created.", t.name),
            )
        },
    )
    .await
}

pub(super) async fn team_model(
    state: &App,
    signed: &SignedIn,
    id: &str,
    new_invite_url: Option<String>,
) -> WebResult<TeamPage> {
    let team = app::access::team(state, &signed.who, id, Role::Viewer).await?;
    let role = signed.who.team_role(&team.id).unwrap_or(Role::Viewer);
    let is_owner = role == Role::Owner;
    let me = signed.who.user_id().unwrap_or("");
    let members = acc::members(state, &signed.who, &team.id)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            is_self: m.user_id == me,
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role.as_str().into(),
            joined_at: m.created_at,
        })
        .collect();
    let invitations = if is_owner {
        acc::pending_invitations(state, &signed.who, &team.id)
            .await?
            .into_iter()
            .map(|i| InvitationRow {
                id: i.id,
                role: i.role.as_str().into(),
                created_by: i.created_by,
                created_at: i.created_at,
                expires_at: i.expires_at,
            })
            .collect()
    } else {
        Vec::new()
    };
    let channels = super::alerts::team_channels(state, signed, &team.id).await?;
    let teams = acc::my_teams(state, &signed.who)
        .await?
        .into_iter()
        .map(|t| TeamRef {
            id: t.id,
            name: t.name,
            role: t.role.as_str().into(),
        })
        .collect();
    Ok(TeamPage {
        team: TeamRef {
            id: team.id,
            name: team.name,
            role: role.as_str().into(),
        },
        teams,
        members,
        invitations,
        new_invite_url,
        is_owner,
        error: None,
        channels,
        new_channel_secret: None,
    })
}

pub async fn team_page(
    State(state): State<App>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let model = team_model(&state, &signed, &id, None).await?;
    let html = dashboard::team(&signed.page(model.team.name.clone(), Nav::Team), &model);
    Ok(render(&signed, html))
}

#[derive(Deserialize)]
pub struct RolePost {
    role: String,
}

fn parse_role(s: &str) -> Option<Role> {
    s.parse::<Role>().ok()
}

fn bad_role(back: &str) -> Response {
    done(back, Flash::error("Choose owner, member or viewer."))
}

pub async fn invite(
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, form: f }: Post<RolePost>,
) -> WebResult<Response> {
    let back = format!("/teams/{}", urlencode(&id));
    let Some(role) = parse_role(&f.role) else {
        return Ok(bad_role(&back));
    };
    match acc::invite(&state, &signed.who, &id, role).await {
        Ok(inv) => {
            let model = team_model(&state, &signed, &id, Some(inv.url)).await?;
            let html = dashboard::team(&signed.page(model.team.name.clone(), Nav::Team), &model);
            Ok(render(&signed, html))
        }
        Err(e) => Ok(failed(&back, e)),
    }
}

pub async fn revoke_invitation(
    State(state): State<App>,
    Path((id, iid)): Path<(String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/teams/{}", urlencode(&id));
    act(
        &back,
        acc::revoke_invitation(&state, &signed.who, &id, &iid),
        |()| success(&back, "Invitation revoked."),
    )
    .await
}

pub async fn set_role(
    State(state): State<App>,
    Path((id, uid)): Path<(String, String)>,
    Post { signed, form: f }: Post<RolePost>,
) -> WebResult<Response> {
    let back = format!("/teams/{}", urlencode(&id));
    let Some(role) = parse_role(&f.role) else {
        return Ok(bad_role(&back));
    };
    act(
        &back,
        acc::set_member(&state, &signed.who, &id, &uid, Some(role)),
        |()| success(&back, "Role changed."),
    )
    .await
}

pub async fn remove_member(
    State(state): State<App>,
    Path((id, uid)): Path<(String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let leaving = signed.who.user_id() == Some(uid.as_str());
    let back = format!("/teams/{}", urlencode(&id));
    Ok(
        match acc::set_member(&state, &signed.who, &id, &uid, None).await {
            Ok(()) if leaving => success("/", "You left the team."),
            Ok(()) => success(&back, "Member removed."),
            Err(e) => failed(&back, e),
        },
    )
}

// ---- audit ---------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct AuditQuery {
    team: Option<String>,
    cursor: Option<String>,
}

pub async fn audit_page(
    State(state): State<App>,
    signed: SignedIn,
    Query(q): Query<AuditQuery>,
) -> WebResult<Response> {
    let team = q.team.clone().filter(|t| !t.is_empty());
    let query = acc::AuditQuery {
        team: team.clone(),
        limit: Some(50),
        cursor: q.cursor.clone(),
    };
    let page = acc::audit(&state, &signed.who, &query).await?;
    let teams = acc::my_teams(&state, &signed.who).await?;
    let team_name = |id: &Option<String>| match id {
        Some(id) if id.starts_with("user:") => "your account".to_string(),
        Some(id) => teams
            .iter()
            .find(|t| &t.id == id)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| id.clone()),
        None => "instance".into(),
    };
    let base = match &team {
        Some(t) => format!("/audit?team={}", urlencode(t)),
        None => "/audit?team=".into(),
    };
    let model = AuditPage {
        events: page
            .items
            .iter()
            .map(|e| AuditRow {
                at: e.at,
                actor: e.actor.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                ip: e.ip.clone(),
                team: team_name(&e.team_id),
            })
            .collect(),
        pager: Pager {
            prev: q.cursor.as_ref().map(|_| base.clone()),
            next: page
                .next_cursor
                .map(|c| format!("{base}&cursor={}", urlencode(&c))),
        },
        teams: teams
            .iter()
            .filter(|t| t.role == Role::Owner)
            .map(|t| TeamRef {
                id: t.id.clone(),
                name: t.name.clone(),
                role: t.role.as_str().into(),
            })
            .collect(),
        team,
    };
    let html = dashboard::audit(&signed.page("Audit log", Nav::Audit), &model);
    Ok(render(&signed, html))
}
