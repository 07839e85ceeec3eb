//! What a principal may reach: a project by name or id, a deployment or a
//! build by id, a team, the projects it may list. Without any role the
//! answer is "not found", so other teams' names leak nothing; with too
//! small a role, "forbidden".

use super::{App, AppError, AppResult};
use crate::accounts::{Principal, Scope};
use crate::store::{Build, Deployment, Project, Role, Team, User};

/// Longest id anything in the store has; longer input is refused unread.
const MAX_ID: usize = 40;

/// Ids are short and alphanumeric; anything else is refused before a query.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Team, user and invitation ids (up to 64 characters).
pub fn valid_team_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn shown(id: &str) -> String {
    id.chars().take(MAX_ID).collect()
}

/// A project by name or id, without any access check: for webhooks, which
/// authenticate by signature instead.
pub async fn find_project(app: &App, name: &str) -> AppResult<Project> {
    if name.len() > 100 {
        return Err(AppError::not_found("project"));
    }
    app.store
        .project(name)
        .await?
        .ok_or_else(|| AppError::not_found(format!("project {name:?}")))
}

/// A project the principal may act on with at least `need`.
pub async fn project(app: &App, who: &Principal, name: &str, need: Role) -> AppResult<Project> {
    let p = find_project(app, name).await?;
    authorize(who, p, need, name)
}

/// Like [`project`] for a project id read from another row (a
/// deployment's, a build's): looked up as an id only.
pub async fn project_by_id(app: &App, who: &Principal, id: &str, need: Role) -> AppResult<Project> {
    let p = app
        .store
        .project_by_id(id)
        .await?
        .ok_or_else(|| AppError::not_found("project"))?;
    authorize(who, p, need, id)
}

fn authorize(who: &Principal, p: Project, need: Role, asked: &str) -> AppResult<Project> {
    match who.project_role(&p.team_id, &p.id) {
        None => Err(AppError::not_found(format!("project {asked:?}"))),
        Some(role) if role < need => Err(AppError::forbidden(format!(
            "your role on this project's team is {}; this needs {}",
            role.as_str(),
            need.as_str()
        ))),
        Some(_) => Ok(p),
    }
}

/// Whether the principal may change things in `p` (the member role).
pub fn can_write(who: &Principal, p: &Project) -> bool {
    who.project_role(&p.team_id, &p.id)
        .is_some_and(|r| r >= Role::Member)
}

/// Whether the principal may delete `p` (the owner role).
pub fn can_own(who: &Principal, p: &Project) -> bool {
    who.project_role(&p.team_id, &p.id)
        .is_some_and(|r| r >= Role::Owner)
}

/// A deployment and its project, if the principal has `need` on it.
pub async fn deployment(
    app: &App,
    who: &Principal,
    id: &str,
    need: Role,
) -> AppResult<(Project, Deployment)> {
    let d = match valid_id(id) {
        true => app.store.deployment(id).await?,
        false => None,
    };
    let d = d.ok_or_else(|| AppError::not_found(format!("deployment {:?}", shown(id))))?;
    Ok((project_by_id(app, who, &d.project_id, need).await?, d))
}

/// A build and its project, if the principal has `need` on it.
pub async fn build(
    app: &App,
    who: &Principal,
    id: &str,
    need: Role,
) -> AppResult<(Project, Build)> {
    let b = match valid_id(id) {
        true => app.store.build(id).await?,
        false => None,
    };
    let b = b.ok_or_else(|| AppError::not_found(format!("build {:?}", shown(id))))?;
    Ok((project_by_id(app, who, &b.project_id, need).await?, b))
}

/// What an id a user holds names: a build from git shares its id with the
/// deployment it becomes, so an id may name a build, a deployment, or both.
pub struct Subject {
    pub project: Project,
    pub deployment: Option<Deployment>,
    pub build: Option<Build>,
}

/// The deployment and/or build with this id, if the principal has `need`.
pub async fn subject(app: &App, who: &Principal, id: &str, need: Role) -> AppResult<Subject> {
    let missing = || AppError::not_found(format!("deployment {:?}", shown(id)));
    if !valid_id(id) {
        return Err(missing());
    }
    let deployment = app.store.deployment(id).await?;
    let build = app.store.build(id).await?;
    let project_id = match (&deployment, &build) {
        (Some(d), _) => d.project_id.clone(),
        (None, Some(b)) => b.project_id.clone(),
        (None, None) => return Err(missing()),
    };
    let project = project_by_id(app, who, &project_id, need).await?;
    Ok(Subject {
        project,
        deployment,
        build,
    })
}

/// The projects the principal may see, by name, `limit` after `after`.
pub async fn visible_projects(
    app: &App,
    who: &Principal,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<Project>> {
    let mut items = app
        .store
        .list_projects(&who.teams_with(Role::Viewer), after, limit)
        .await?;
    // A project-scoped credential lists its team's projects through the
    // team, then sees only its own.
    if let Scope::Project(only) = &who.scope {
        items.retain(|p| &p.id == only);
    }
    Ok(items)
}

/// The team, if the caller has at least `need` on it; otherwise it does
/// not exist as far as they can tell (or "forbidden" with less).
pub async fn team(app: &App, who: &Principal, id: &str, need: Role) -> AppResult<Team> {
    let role = if valid_team_id(id) {
        who.team_role(id)
    } else {
        None
    };
    let Some(role) = role else {
        return Err(AppError::not_found(format!(
            "team {:?}",
            id.chars().take(64).collect::<String>()
        )));
    };
    if role < need {
        return Err(AppError::forbidden(format!(
            "your role in this team is {}; this needs {}",
            role.as_str(),
            need.as_str()
        )));
    }
    app.store
        .team(id)
        .await?
        .ok_or_else(|| AppError::not_found("team"))
}

/// Managing an account (its tokens, its teams, invitations it accepts)
/// needs an unscoped credential: a CI token for one project must not
/// revoke its owner's other tokens.
pub fn unscoped(who: &Principal) -> AppResult<()> {
    if who.scope == Scope::All {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "this needs an unscoped credential (a session or an `all` token)",
        ))
    }
}

/// The caller's account; the first-start admin token has none.
pub fn user_of(who: &Principal) -> AppResult<&User> {
    who.user.as_ref().ok_or_else(|| {
        AppError::forbidden("sign up in the dashboard first: the admin token has no account yet")
    })
}
