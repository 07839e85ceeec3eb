//! A project's repository connection and the push webhook.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::projects;
use super::AppState;
use crate::accounts::{audit, Principal};
use crate::builds::BuildServiceError;
use crate::store::Role;
use crate::store::{BuildTrigger, GitMeta, GitSettings};
use crate::webhooks::{self, HookError, HookEvent};

const MAX_COMMAND: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GitInput {
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    pub root_dir: Option<String>,
    pub install_command: Option<String>,
    pub build_command: Option<String>,
    pub output_dir: Option<String>,
    #[serde(default = "yes")]
    pub auto_promote: bool,
}

fn default_branch() -> String {
    "main".into()
}

fn yes() -> bool {
    true
}

#[derive(Serialize)]
pub struct GitView {
    #[serde(flatten)]
    pub settings: GitSettings,
    /// Where GitHub, GitLab or Gitea should POST push events.
    pub webhook_url: String,
    /// The HMAC secret (GitHub, Gitea) or token (GitLab) for that hook.
    pub webhook_secret: String,
}

fn bad(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_git_settings", format!("{field}: {why}"))
}

/// Checks every field of a repository connection.
pub fn validate(state: &AppState, g: &GitInput) -> ApiResult<GitSettings> {
    let policy = builder::git::UrlPolicy {
        allow_local: state.config.builds.allow_local_git,
        allowed_hosts: state.config.builds.allowed_git_hosts.clone(),
    };
    if g.url.len() > 2000 {
        return Err(bad("url", "longer than 2000 characters"));
    }
    builder::git::validate_url(&g.url, &policy).map_err(|e| bad("url", e))?;
    webhooks::validate_branch(&g.branch).map_err(|e| bad("branch", e))?;
    for (field, dir) in [("root_dir", &g.root_dir), ("output_dir", &g.output_dir)] {
        if let Some(d) = dir {
            let d = d.trim_matches('/');
            if !d.is_empty() && d != "." {
                protocol::path::validate_bundle_path(d).map_err(|e| bad(field, e))?;
            }
        }
    }
    for (field, cmd) in [
        ("install_command", &g.install_command),
        ("build_command", &g.build_command),
    ] {
        if let Some(c) = cmd {
            if c.len() > MAX_COMMAND || c.chars().any(|ch| ch.is_control() && ch != '\t') {
                return Err(bad(
                    field,
                    format!("at most {MAX_COMMAND} characters on one line"),
                ));
            }
        }
    }
    Ok(GitSettings {
        url: g.url.clone(),
        branch: g.branch.clone(),
        root_dir: g.root_dir.clone(),
        install_command: g.install_command.clone(),
        build_command: g.build_command.clone(),
        output_dir: g.output_dir.clone(),
        auto_promote: g.auto_promote,
    })
}

fn view(state: &AppState, project: &str, settings: GitSettings, secret: String) -> GitView {
    GitView {
        settings,
        webhook_url: format!(
            "{}/api/v1/hooks/git/{project}",
            state.config.api_url().trim_end_matches('/')
        ),
        webhook_secret: secret,
    }
}

/// Stores the connection; the webhook secret is made once and kept.
pub async fn connect(
    state: &AppState,
    project: &crate::store::Project,
    settings: &GitSettings,
) -> ApiResult<GitView> {
    let existing = state.store.git(&project.id).await?.and_then(|(_, s)| s);
    let (sealed, secret) = match existing {
        Some(sealed) => {
            let s = state.secrets.open(&sealed).map_err(ApiError::internal)?;
            (sealed, s)
        }
        None => {
            let s = crate::ids::new_secret();
            (state.secrets.seal(&s), s)
        }
    };
    state
        .store
        .set_git(&project.id, Some(settings), Some(&sealed))
        .await?;
    tracing::info!(project = %project.name, url = %builder::git::redact_url(&settings.url), branch = %settings.branch, "git connected");
    Ok(view(state, &project.name, settings.clone(), secret))
}

#[utoipa::path(
    put,
    path = "/projects/{project}/git",
    tag = "git",
    summary = "Connect or update a repository",
    params(("project" = String, Path)),
    request_body = GitInput,
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn put(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<GitInput>,
) -> ApiResult<Json<GitView>> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    let settings = validate(&state, &body)?;
    let view = connect(&state, &p, &settings).await?;
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "git.connect",
        &p.name,
        serde_json::json!({ "url": view.settings.url, "branch": view.settings.branch }),
    )
    .await;
    Ok(Json(view))
}

#[utoipa::path(
    get,
    path = "/projects/{project}/git",
    tag = "git",
    summary = "The git connection, webhook URL and (for members) its secret",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn show(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<GitView>> {
    let p = projects::load(&state, &who, &project, Role::Viewer).await?;
    let (settings, sealed) =
        state.store.git(&p.id).await?.ok_or_else(|| {
            ApiError::not_found(format!("git connection of project {:?}", p.name))
        })?;
    // Viewers see the settings but not the secret that lets one trigger builds.
    let may_see_secret = who
        .project_role(&p.team_id, &p.id)
        .is_some_and(|r| r >= Role::Member);
    let secret = match sealed {
        Some(s) if may_see_secret => state.secrets.open(&s).map_err(ApiError::internal)?,
        _ => String::new(),
    };
    Ok(Json(view(&state, &p.name, settings, secret)))
}

#[utoipa::path(
    delete,
    path = "/projects/{project}/git",
    tag = "git",
    summary = "Disconnect the repository",
    params(("project" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn delete(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<StatusCode> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    state.store.set_git(&p.id, None, None).await?;
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "git.disconnect",
        &p.name,
        serde_json::json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

impl From<BuildServiceError> for ApiError {
    fn from(e: BuildServiceError) -> Self {
        match e {
            BuildServiceError::NotConnected(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_connected", e.to_string())
            }
            BuildServiceError::Store(s) => s.into(),
        }
    }
}

fn hook_error(e: HookError) -> ApiError {
    let status = match e {
        HookError::MissingSignature(_) | HookError::BadSignature => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, "bad_webhook", e.to_string())
}

/// `POST /hooks/git/{project}`: no bearer token; the provider's signature
/// over the body (or GitLab's token) proves the sender holds the secret.
#[utoipa::path(
    post,
    path = "/hooks/git/{project}",
    tag = "git",
    summary = "Push webhook from GitHub, GitLab or Gitea (authenticated by signature, not token)",
    params(("project" = String, Path)),
    request_body(content = Object, description = "The git host's push event"),
    responses((status = 202, description = "Success"), super::openapi::Public),
    security(())
)]
pub async fn hook(
    State(state): State<AppState>,
    Path(project): Path<String>,
    super::auth::ClientIp(ip): super::auth::ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    // One answer for "no such project" and "not connected", so the hook
    // URL does not tell strangers which projects exist.
    let unknown = || ApiError::not_found("webhook");
    let p = projects::find(&state, &project)
        .await
        .map_err(|_| unknown())?;
    let (_, sealed) = state.store.git(&p.id).await?.ok_or_else(unknown)?;
    let secret = state
        .secrets
        .open(&sealed.ok_or_else(unknown)?)
        .map_err(ApiError::internal)?;
    let provider = webhooks::detect(&headers).map_err(hook_error)?;
    webhooks::verify(provider, &headers, &body, secret.as_bytes()).map_err(|e| {
        tracing::warn!(project = %p.name, ?provider, "webhook refused: {e}");
        hook_error(e)
    })?;
    match webhooks::parse(provider, &headers, &body).map_err(hook_error)? {
        HookEvent::Push(push) => {
            let b = state
                .builds
                .enqueue(
                    &p,
                    GitMeta {
                        branch: push.branch,
                        commit_sha: Some(push.commit_sha),
                        commit_message: push.message,
                        commit_author: push.author,
                    },
                    BuildTrigger::Push,
                )
                .await?;
            audit::record_as(
                &state.store,
                None,
                &format!("webhook ({provider:?})"),
                &ip,
                Some(&p.team_id),
                "build.push",
                &p.name,
                json!({ "build": b.id, "branch": b.git.branch, "commit": b.git.commit_sha }),
            )
            .await;
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "queued": b.id, "branch": b.git.branch, "target": b.target })),
            ))
        }
        HookEvent::BranchDeleted { branch } => {
            let removed = state.store.delete_branch_alias(&p.id, &branch).await?;
            if removed {
                state.hub.refresh().await?;
            }
            Ok((
                StatusCode::OK,
                Json(json!({ "branch_deleted": branch, "alias_removed": removed })),
            ))
        }
        HookEvent::Ping => Ok((StatusCode::OK, Json(json!({ "pong": true })))),
        HookEvent::Ignored(what) => Ok((StatusCode::ACCEPTED, Json(json!({ "ignored": what })))),
    }
}
