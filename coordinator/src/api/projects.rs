//! Projects and their aliases.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Page, PageQuery};
use super::AppState;
use crate::accounts::{audit, Principal};
use crate::store::Project;
use crate::store::Role;

/// Leaves room for `-<deployment id>` within a 63-byte DNS label.
pub const MAX_PROJECT_NAME: usize = 40;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    /// The team that owns it (default: the caller's first team).
    pub team: Option<String>,
    /// Connect a repository at once (see `PUT /projects/{name}/git`).
    pub git: Option<super::git::GitInput>,
}

#[derive(Serialize)]
pub struct ProjectView {
    #[serde(flatten)]
    pub project: Project,
    pub production_url: String,
}

pub fn view(state: &AppState, p: Project) -> ProjectView {
    ProjectView {
        production_url: state
            .config
            .site_url(&state.config.production_host(&p.name)),
        project: p,
    }
}

/// A project by name or id, without any access check: for webhooks, which
/// authenticate by signature instead.
pub async fn find(state: &AppState, name: &str) -> ApiResult<Project> {
    if name.len() > 100 {
        return Err(ApiError::not_found("project"));
    }
    state
        .store
        .project(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project {name:?}")))
}

/// A project the principal may act on with at least `need`. Without any
/// role it answers "not found", so names of other teams' projects leak
/// nothing; with too small a role, 403.
pub async fn load(state: &AppState, who: &Principal, name: &str, need: Role) -> ApiResult<Project> {
    let p = find(state, name).await?;
    authorize(who, p, need, name)
}

/// Like [`load`] for a project id read from another row (a deployment's,
/// a build's): looked up as an id only.
pub async fn load_by_id(
    state: &AppState,
    who: &Principal,
    id: &str,
    need: Role,
) -> ApiResult<Project> {
    let p = state
        .store
        .project_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found("project"))?;
    authorize(who, p, need, id)
}

fn authorize(who: &Principal, p: Project, need: Role, asked: &str) -> ApiResult<Project> {
    match who.project_role(&p.team_id, &p.id) {
        None => Err(ApiError::not_found(format!("project {asked:?}"))),
        Some(role) if role < need => Err(ApiError::forbidden(format!(
            "your role on this project's team is {}; this needs {}",
            role.as_str(),
            need.as_str()
        ))),
        Some(_) => Ok(p),
    }
}

/// An id no project has as its id or its name.
async fn fresh_id(state: &AppState) -> ApiResult<String> {
    loop {
        let id = crate::ids::new_id(12);
        if state.store.project(&id).await?.is_none() {
            return Ok(id);
        }
    }
}

/// The team a new project goes to: the one asked for, else the token's
/// team, else the principal's oldest team where it may create projects.
pub fn team_for_new_project(who: &Principal, asked: Option<&str>) -> ApiResult<String> {
    if let crate::accounts::Scope::Project(_) = who.scope {
        return Err(ApiError::forbidden(
            "a project-scoped token cannot create projects",
        ));
    }
    let team = match asked {
        Some(t) => t.to_string(),
        None => match &who.scope {
            crate::accounts::Scope::Team(t) => t.clone(),
            _ => who
                .teams_with(Role::Member)
                .into_iter()
                .next()
                .ok_or_else(|| {
                    ApiError::forbidden("you are not a member of any team that may create projects")
                })?,
        },
    };
    match who.team_role(&team) {
        None => Err(ApiError::not_found(format!("team {team:?}"))),
        Some(r) if r < Role::Member => Err(ApiError::forbidden(
            "viewers cannot create projects; ask a team owner for the member role",
        )),
        Some(_) => Ok(team),
    }
}

pub fn validate_name(name: &str) -> ApiResult<()> {
    if name.len() > MAX_PROJECT_NAME || !protocol::host::is_valid_label(name) {
        return Err(ApiError::bad_request(
            "invalid_name",
            format!(
                "project name must be 1-{MAX_PROJECT_NAME} characters of a-z, 0-9 and '-', not starting or ending with '-'"
            ),
        ));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/projects",
    tag = "projects",
    summary = "Create a project in a team (default: the caller's first)",
    request_body = CreateProject,
    responses((status = 201, description = "Success"), super::openapi::Guarded)
)]
pub async fn create(
    who: Principal,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    validate_name(&body.name)?;
    if body.team.as_ref().is_some_and(|t| t.len() > 64) {
        return Err(ApiError::not_found("team"));
    }
    let team = team_for_new_project(&who, body.team.as_deref())?;
    // A name equal to another project's id would make that id ambiguous.
    if state.store.project_by_id(&body.name).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("project name {:?} is taken", body.name),
        ));
    }
    let git = match &body.git {
        Some(g) => Some(super::git::validate(&state, g)?),
        None => None,
    };
    let p = state
        .store
        .create_project(&fresh_id(&state).await?, &body.name, &team)
        .await?;
    audit::record(
        &state.store,
        &who,
        Some(&team),
        "project.create",
        &p.name,
        serde_json::json!({ "id": p.id }),
    )
    .await;
    if let Some(g) = &git {
        super::git::connect(&state, &p, g).await?;
    }
    tracing::info!(project = %p.name, "project created");
    Ok((StatusCode::CREATED, Json(view(&state, p))))
}

#[utoipa::path(
    get,
    path = "/projects",
    tag = "projects",
    summary = "Projects the caller can see, by name (query: limit, cursor)",
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<ProjectView>>> {
    let limit = q.limit()?;
    let mut items = state
        .store
        .list_projects(&who.teams_with(Role::Viewer), q.cursor()?, limit)
        .await?;
    if let crate::accounts::Scope::Project(only) = &who.scope {
        items.retain(|p| &p.id == only);
    }
    let next_cursor = (items.len() as i64 == limit).then(|| items.last().unwrap().name.clone());
    Ok(Json(Page {
        items: items.into_iter().map(|p| view(&state, p)).collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/projects/{project}",
    tag = "projects",
    summary = "A project and its production URL",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    let p = load(&state, &who, &project, Role::Viewer).await?;
    Ok(Json(view(&state, p)))
}

#[derive(Serialize)]
pub struct Alias {
    pub host: String,
    pub url: String,
    pub deployment: String,
    pub kind: &'static str,
}

/// The hosts that serve this project right now, from the published config.
#[utoipa::path(
    get,
    path = "/projects/{project}/aliases",
    tag = "projects",
    summary = "Hosts serving the project right now",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn aliases(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Alias>>> {
    let p = load(&state, &who, &project, Role::Viewer).await?;
    let signed = state.hub.current();
    let cfg = &signed.config;
    let prod_host = state.config.production_host(&p.name);
    let out = cfg
        .hosts
        .iter()
        .filter(|(_, t)| t.project == p.name)
        .map(|(host, t)| Alias {
            url: state.config.site_url(host),
            host: host.clone(),
            deployment: t.deployment.clone(),
            kind: if *host == prod_host {
                "production"
            } else {
                "deployment"
            },
        })
        .collect();
    Ok(Json(out))
}
