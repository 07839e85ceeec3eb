//! Projects and their aliases.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiResult;
use super::extract::{ApiJson, Page, PageQuery};
use super::views::{Alias, ProjectView};
use crate::accounts::Principal;
use crate::app::{self, App};
use crate::store::{Retention, Role};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
    /// The team that owns it (default: the caller's first team).
    pub team: Option<String>,
    /// Connect a repository at once (see `PUT /projects/{name}/git`).
    pub git: Option<app::git::GitInput>,
}

#[utoipa::path(
    post,
    path = "/projects",
    tag = "projects",
    summary = "Create a project in a team (default: the caller's first)",
    request_body = CreateProject,
    responses((status = 201, description = "Success", body = ProjectView), super::openapi::Guarded)
)]
pub async fn create(
    who: Principal,
    State(app): State<App>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    let p = app::projects::create(
        &app,
        &who,
        app::projects::NewProject {
            name: &body.name,
            team: body.team.as_deref(),
            git: body.git.as_ref(),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ProjectView::of(&app, p))))
}

#[utoipa::path(
    get,
    path = "/projects",
    tag = "projects",
    summary = "Projects the caller can see, by name (query: limit, cursor)",
    responses((status = 200, description = "Success", body = Page<ProjectView>), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<ProjectView>>> {
    let limit = q.limit()?;
    let items = app::access::visible_projects(&app, &who, q.cursor()?, limit).await?;
    let next_cursor = (items.len() as i64 == limit).then(|| items.last().unwrap().name.clone());
    Ok(Json(Page {
        items: items
            .into_iter()
            .map(|p| ProjectView::of(&app, p))
            .collect(),
        next_cursor,
    }))
}

#[utoipa::path(
    get,
    path = "/projects/{project}",
    tag = "projects",
    summary = "A project and its production URL",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = ProjectView), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    let p = app::access::project(&app, &who, &project, Role::Viewer).await?;
    Ok(Json(ProjectView::of(&app, p)))
}

/// The hosts that serve this project right now, from the published config.
#[utoipa::path(
    get,
    path = "/projects/{project}/aliases",
    tag = "projects",
    summary = "Hosts serving the project right now",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<Alias>), super::openapi::Guarded)
)]
pub async fn aliases(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Alias>>> {
    let (_, aliases) = app::projects::aliases(&app, &who, &project).await?;
    Ok(Json(
        aliases
            .into_iter()
            .map(|a| Alias {
                url: app.config.site_url(&a.host),
                host: a.host,
                deployment: a.deployment,
                kind: a.kind.to_string(),
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectDeleted {
    pub deployments_deleted: u64,
}

#[utoipa::path(
    delete,
    path = "/projects/{project}",
    tag = "projects",
    summary = "Delete a project and everything in it (owner); its name becomes free",
    params(("project" = String, Path)),
    responses((status = 200, description = "Deleted", body = ProjectDeleted), super::openapi::Guarded)
)]
pub async fn delete(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectDeleted>> {
    let n = app::projects::delete(&app, &who, &project).await?;
    Ok(Json(ProjectDeleted {
        deployments_deleted: n,
    }))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/retention",
    tag = "projects",
    summary = "The project's retention rules (its own or the instance's defaults)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Retention), super::openapi::Guarded)
)]
pub async fn retention(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<Retention>> {
    Ok(Json(app::projects::retention(&app, &who, &project).await?))
}

/// Absent fields go back to the instance's defaults.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRetention {
    pub preview_days: Option<u32>,
    pub production_keep: Option<u32>,
}

#[utoipa::path(
    put,
    path = "/projects/{project}/retention",
    tag = "projects",
    summary = "Set the project's retention rules",
    params(("project" = String, Path)),
    request_body = SetRetention,
    responses((status = 200, description = "Success", body = Retention), super::openapi::Guarded)
)]
pub async fn set_retention(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<SetRetention>,
) -> ApiResult<Json<Retention>> {
    Ok(Json(
        app::projects::set_retention(
            &app,
            &who,
            &project,
            body.preview_days,
            body.production_keep,
        )
        .await?,
    ))
}
