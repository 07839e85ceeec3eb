//! Projects and their aliases.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Authed, Page, PageQuery};
use super::AppState;
use crate::store::Project;

/// Leaves room for `-<deployment id>` within a 63-byte DNS label.
pub const MAX_PROJECT_NAME: usize = 40;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    pub name: String,
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

pub async fn load(state: &AppState, name: &str) -> ApiResult<Project> {
    if name.len() > 100 {
        return Err(ApiError::not_found("project"));
    }
    state
        .store
        .project(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("project {name:?}")))
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

pub async fn create(
    _: Authed,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    validate_name(&body.name)?;
    let git = match &body.git {
        Some(g) => Some(super::git::validate(&state, g)?),
        None => None,
    };
    let p = state
        .store
        .create_project(&crate::ids::new_id(12), &body.name)
        .await?;
    if let Some(g) = &git {
        super::git::connect(&state, &p, g).await?;
    }
    tracing::info!(project = %p.name, "project created");
    Ok((StatusCode::CREATED, Json(view(&state, p))))
}

pub async fn list(
    _: Authed,
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<ProjectView>>> {
    let limit = q.limit()?;
    let items = state.store.list_projects(q.cursor()?, limit).await?;
    let next_cursor = (items.len() as i64 == limit).then(|| items.last().unwrap().name.clone());
    Ok(Json(Page {
        items: items.into_iter().map(|p| view(&state, p)).collect(),
        next_cursor,
    }))
}

pub async fn show(
    _: Authed,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<ProjectView>> {
    let p = load(&state, &project).await?;
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
pub async fn aliases(
    _: Authed,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Alias>>> {
    let p = load(&state, &project).await?;
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
