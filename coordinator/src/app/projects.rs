//! Projects: create one in a team, list and show them, and the hosts that
//! serve each right now.

use super::{access, git, App, AppError, AppResult};
use crate::accounts::{audit, Principal, Scope};
use crate::store::{GitSettings, Project, Role};

/// A name no other project's hosts can collide with (`protocol::names`).
pub fn validate_name(name: &str) -> AppResult<()> {
    protocol::names::validate_project_name(name)
        .map_err(|e| AppError::invalid("invalid_name", e.to_string()))
}

/// The team a new project goes to: the one asked for, else the token's
/// team, else the principal's oldest team where it may create projects.
pub fn team_for_new_project(who: &Principal, asked: Option<&str>) -> AppResult<String> {
    if let Scope::Project(_) = who.scope {
        return Err(AppError::forbidden(
            "a project-scoped token cannot create projects",
        ));
    }
    let team = match asked {
        Some(t) => t.to_string(),
        None => match &who.scope {
            Scope::Team(t) => t.clone(),
            _ => who
                .teams_with(Role::Member)
                .into_iter()
                .next()
                .ok_or_else(|| {
                    AppError::forbidden("you are not a member of any team that may create projects")
                })?,
        },
    };
    match who.team_role(&team) {
        None => Err(AppError::not_found(format!("team {team:?}"))),
        Some(r) if r < Role::Member => Err(AppError::forbidden(
            "viewers cannot create projects; ask a team owner for the member role",
        )),
        Some(_) => Ok(team),
    }
}

/// An id no project has as its id or its name.
async fn fresh_id(app: &App) -> AppResult<String> {
    loop {
        let id = crate::ids::new_id(12);
        if app.store.project(&id).await?.is_none() {
            return Ok(id);
        }
    }
}

/// What a new project is made of.
pub struct NewProject<'a> {
    pub name: &'a str,
    /// The team that owns it (default: see [`team_for_new_project`]).
    pub team: Option<&'a str>,
    /// A repository to connect at once, not yet validated.
    pub git: Option<&'a git::GitInput>,
}

pub async fn create(app: &App, who: &Principal, new: NewProject<'_>) -> AppResult<Project> {
    validate_name(new.name)?;
    if new.team.is_some_and(|t| t.len() > 64) {
        return Err(AppError::not_found("team"));
    }
    let team = team_for_new_project(who, new.team)?;
    super::quotas::check_project(app, &team).await?;
    // A name equal to another project's id would make that id ambiguous.
    if app.store.project_by_id(new.name).await?.is_some() {
        return Err(AppError::conflict(
            "conflict",
            format!("project name {:?} is taken", new.name),
        ));
    }
    let settings: Option<GitSettings> = match new.git {
        Some(g) => Some(git::validate(app, g)?),
        None => None,
    };
    let p = app
        .store
        .create_project(&fresh_id(app).await?, new.name, &team)
        .await?;
    app.usage.forget(&team);
    audit::record(
        &app.store,
        who,
        Some(&team),
        "project.create",
        &p.name,
        serde_json::json!({ "id": p.id }),
    )
    .await;
    if let Some(s) = &settings {
        git::store_connection(app, &p, s).await?;
    }
    tracing::info!(project = %p.name, "project created");
    Ok(p)
}

/// One host serving a project right now.
pub struct Alias {
    pub host: String,
    pub deployment: String,
    /// `production`, or `deployment` for the others.
    pub kind: &'static str,
}

/// The most hosts [`aliases`] lists.
const MAX_ALIASES: i64 = 500;

/// The production and branch hosts that serve the project right now,
/// from the edge config (a deployment's own host is in its own row).
pub async fn aliases(
    app: &App,
    who: &Principal,
    project: &str,
) -> AppResult<(Project, Vec<Alias>)> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    let entries = app.store.project_entries(&p.id, "h/", MAX_ALIASES).await?;
    let out = entries
        .into_iter()
        .filter_map(|(key, entry)| match entry {
            protocol::Entry::Host(t) => Some(Alias {
                host: key["h/".len()..].to_string(),
                deployment: t.deployment,
                kind: match t.kind {
                    protocol::HostKind::Production => "production",
                    protocol::HostKind::Branch => "branch",
                    protocol::HostKind::Deployment => "deployment",
                },
            }),
            _ => None,
        })
        .collect();
    Ok((p, out))
}

/// The newest deployment or build of a project: (id, status, created_at).
pub async fn latest_activity(app: &App, p: &Project) -> AppResult<Option<(String, String, i64)>> {
    let d = app.store.list_deployments(&p.id, None, 1).await?;
    let b = app.store.list_builds(&p.id, None, 1).await?;
    let from_d = d
        .into_iter()
        .next()
        .map(|d| (d.id, d.status.as_str().to_string(), d.created_at));
    let from_b = b.into_iter().next().map(|b| {
        (
            b.id,
            super::builds::status_label(b.status).to_string(),
            b.created_at,
        )
    });
    Ok(match (from_d, from_b) {
        (Some(d), Some(b)) if b.2 > d.2 => Some(b),
        (Some(d), _) => Some(d),
        (None, b) => b,
    })
}

/// Deletes a project with its hosts, deployments, aliases, variables, git
/// connection, builds and logs; a running build is canceled first, and the
/// name is free afterwards. Owners only.
pub async fn delete(app: &App, who: &Principal, project: &str) -> AppResult<u64> {
    let p = access::project(app, who, project, Role::Owner).await?;
    for id in app.store.unfinished_builds(&p.id).await? {
        app.builds.cancel(&id).await?;
    }
    let deployments = app.store.delete_project(&p.id).await?;
    app.usage.forget(&p.team_id);
    app.hub.refresh().await?;
    tracing::info!(project = %p.name, deployments, "project deleted");
    audit::record(
        &app.store,
        who,
        Some(&p.team_id),
        "project.delete",
        &p.name,
        serde_json::json!({ "id": p.id, "deployments": deployments }),
    )
    .await;
    Ok(deployments)
}

/// The instance's retention defaults as a project's rules.
pub fn default_retention(app: &App) -> crate::store::Retention {
    crate::store::Retention {
        preview_days: app.config.retention.preview_days,
        production_keep: app.config.retention.production_keep,
    }
}

/// A project's retention rules (its own, or the instance's defaults).
pub async fn retention(
    app: &App,
    who: &Principal,
    project: &str,
) -> AppResult<crate::store::Retention> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    Ok(app.store.retention(&p.id, default_retention(app)).await?)
}

/// Sets a project's own retention rules; `None` goes back to the default.
pub async fn set_retention(
    app: &App,
    who: &Principal,
    project: &str,
    preview_days: Option<u32>,
    production_keep: Option<u32>,
) -> AppResult<crate::store::Retention> {
    let p = access::project(app, who, project, Role::Member).await?;
    for (field, v, max) in [
        ("preview_days", preview_days, 3650),
        ("production_keep", production_keep, 100_000),
    ] {
        if v.is_some_and(|v| v > max) {
            return Err(AppError::invalid(
                "invalid_retention",
                format!("{field} must be between 0 and {max}"),
            ));
        }
    }
    app.store
        .set_retention(&p.id, preview_days, production_keep)
        .await?;
    audit::record(
        &app.store,
        who,
        Some(&p.team_id),
        "project.retention",
        &p.name,
        serde_json::json!({ "preview_days": preview_days, "production_keep": production_keep }),
    )
    .await;
    Ok(app.store.retention(&p.id, default_retention(app)).await?)
}
