//! A project's repository connection and the push webhook.

use serde::Deserialize;

use serde_json::json;

use super::{access, App, AppError, AppResult};
use crate::accounts::{audit, Principal};
use crate::store::{Build, BuildTrigger, GitMeta, GitSettings, Project, Role};
use crate::webhooks::{self, HookError, HookEvent, Provider};

const MAX_COMMAND: usize = 1000;

/// A repository connection as a user gives it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
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

/// A stored connection with where and how pushes reach it.
pub struct Connection {
    pub settings: GitSettings,
    /// Where GitHub, GitLab or Gitea should POST push events.
    pub webhook_url: String,
    /// The HMAC secret (GitHub, Gitea) or token (GitLab) for that hook;
    /// empty for viewers, who may not trigger builds.
    pub webhook_secret: String,
    /// Whether credentials for the repository are stored (they were given
    /// in the URL; they are never shown again).
    pub has_credentials: bool,
}

fn bad(field: &str, why: impl std::fmt::Display) -> AppError {
    AppError::invalid("invalid_git_settings", format!("{field}: {why}"))
}

/// Checks every field of a repository connection.
pub fn validate(app: &App, g: &GitInput) -> AppResult<GitSettings> {
    let policy = builder::git::UrlPolicy {
        allow_local: app.config.builds.allow_local_git,
        allowed_hosts: app.config.builds.allowed_git_hosts.clone(),
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

fn webhook_url(app: &App, project: &str) -> String {
    format!(
        "{}/api/v1/hooks/git/{project}",
        app.config.api_url().trim_end_matches('/')
    )
}

/// Stores the connection; the webhook secret is made once and kept.
/// Credentials in the URL are taken out of it and sealed apart: the URL
/// stored (shown to viewers, written to the audit log) never holds them.
/// A new URL without credentials clears the old ones, so that they are
/// never sent to another host.
pub(super) async fn store_connection(
    app: &App,
    project: &Project,
    settings: &GitSettings,
) -> AppResult<Connection> {
    let (url, credentials) = builder::git::split_credentials(&settings.url);
    let settings = &GitSettings {
        url,
        ..settings.clone()
    };
    let existing = app.store.git(&project.id).await?.and_then(|(_, s)| s);
    let (sealed, secret) = match existing {
        Some(sealed) => {
            let s = app.secrets.open(&sealed).map_err(AppError::internal)?;
            (sealed, s)
        }
        None => {
            let s = crate::ids::new_secret();
            (app.secrets.seal(&s), s)
        }
    };
    app.store
        .set_git(&project.id, Some(settings), Some(&sealed))
        .await?;
    let sealed_credentials = credentials.as_deref().map(|c| app.secrets.seal(c));
    app.store
        .set_git_credentials(&project.id, sealed_credentials.as_deref())
        .await?;
    tracing::info!(project = %project.name, url = %settings.url, branch = %settings.branch, "git connected");
    Ok(Connection {
        settings: settings.clone(),
        webhook_url: webhook_url(app, &project.name),
        webhook_secret: secret,
        has_credentials: credentials.is_some(),
    })
}

/// The URL git is run with: the stored one with its credentials put back.
pub async fn clone_url(
    store: &crate::store::Store,
    secrets: &crate::secrets::SecretBox,
    project_id: &str,
    url: &str,
) -> Result<String, AppError> {
    let credentials = match store.git_credentials(project_id).await? {
        Some(sealed) => Some(secrets.open(&sealed).map_err(AppError::internal)?),
        None => None,
    };
    Ok(builder::git::with_credentials(url, credentials.as_deref()))
}

/// Moves credentials that older versions stored inside repository URLs
/// out of them (once, at start).
pub async fn seal_legacy_credentials(
    store: &crate::store::Store,
    secrets: &crate::secrets::SecretBox,
) -> Result<usize, crate::store::StoreError> {
    let mut moved = 0;
    for (id, url) in store.git_urls_with_userinfo().await? {
        if let (clean, Some(credentials)) = builder::git::split_credentials(&url) {
            store
                .move_git_credentials(&id, &clean, &secrets.seal(&credentials))
                .await?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Connects (or updates) the project's repository.
pub async fn connect(
    app: &App,
    who: &Principal,
    project: &str,
    input: &GitInput,
) -> AppResult<Connection> {
    let p = access::project(app, who, project, Role::Member).await?;
    let settings = validate(app, input)?;
    let c = store_connection(app, &p, &settings).await?;
    app.audit(
        who,
        &p,
        "git.connect",
        json!({ "url": c.settings.url, "branch": c.settings.branch, "credentials": c.has_credentials }),
    )
    .await;
    Ok(c)
}

/// The connection; the webhook secret only for members.
pub async fn show(app: &App, who: &Principal, project: &str) -> AppResult<Connection> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    let (settings, sealed) =
        app.store.git(&p.id).await?.ok_or_else(|| {
            AppError::not_found(format!("git connection of project {:?}", p.name))
        })?;
    // Viewers see the settings but not the secret that lets one trigger builds.
    let secret = match sealed {
        Some(s) if access::can_write(who, &p) => {
            app.secrets.open(&s).map_err(AppError::internal)?
        }
        _ => String::new(),
    };
    let has_credentials = app.store.git_credentials(&p.id).await?.is_some();
    Ok(Connection {
        // Stored without credentials; redacted again in case a row was
        // written otherwise.
        settings: GitSettings {
            url: builder::git::redact_url(&settings.url),
            ..settings
        },
        webhook_url: webhook_url(app, &p.name),
        webhook_secret: secret,
        has_credentials,
    })
}

pub async fn disconnect(app: &App, who: &Principal, project: &str) -> AppResult<()> {
    let p = access::project(app, who, project, Role::Member).await?;
    app.store.set_git(&p.id, None, None).await?;
    app.store.set_git_credentials(&p.id, None).await?;
    app.audit(who, &p, "git.disconnect", json!({})).await;
    Ok(())
}

/// What a push webhook did.
pub enum HookOutcome {
    Queued(Build),
    BranchDeleted { branch: String, alias_removed: bool },
    Pong,
    Ignored(String),
}

fn hook_error(e: HookError) -> AppError {
    let kind = match e {
        HookError::MissingSignature(_) | HookError::BadSignature => {
            super::ErrorKind::Unauthenticated
        }
        _ => super::ErrorKind::Invalid,
    };
    AppError::new(kind, "bad_webhook", e.to_string())
}

/// Largest push event read (GitHub sends at most 25 MB, usually a few KB).
pub const MAX_HOOK_BODY: usize = 8 * 1024 * 1024;

/// A webhook whose project, connection and signature header checked out.
pub struct HookGate {
    project: Project,
    secret: String,
    provider: Provider,
}

/// Everything about a webhook that needs no body: the project exists and
/// is connected, the provider is known, a signature is there (GitLab's
/// token is checked). Strangers are answered before a byte of their body
/// is read.
pub async fn hook_gate(app: &App, project: &str, headers: &http::HeaderMap) -> AppResult<HookGate> {
    // One answer for "no such project" and "not connected", so the hook
    // URL does not tell strangers which projects exist.
    let unknown = || AppError::not_found("webhook");
    let p = access::find_project(app, project)
        .await
        .map_err(|_| unknown())?;
    let (_, sealed) = app.store.git(&p.id).await?.ok_or_else(unknown)?;
    let secret = app
        .secrets
        .open(&sealed.ok_or_else(unknown)?)
        .map_err(AppError::internal)?;
    let provider: Provider = webhooks::detect(headers).map_err(hook_error)?;
    webhooks::precheck(provider, headers, secret.as_bytes()).map_err(|e| {
        tracing::warn!(project = %p.name, ?provider, "webhook refused: {e}");
        hook_error(e)
    })?;
    Ok(HookGate {
        project: p,
        secret,
        provider,
    })
}

/// A webhook from the project's git host: no credential, but the
/// provider's signature over the body (or GitLab's token) proves the
/// sender holds the secret. `ip` is the sender's, for the audit log.
///
/// Called in two steps: [`hook_gate`] with the headers alone, then, once
/// it passed, this with the body (read up to [`MAX_HOOK_BODY`]).
pub async fn receive_hook(
    app: &App,
    gate: HookGate,
    ip: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> AppResult<HookOutcome> {
    let HookGate {
        project: p,
        secret,
        provider,
    } = gate;
    webhooks::verify(provider, headers, body, secret.as_bytes()).map_err(|e| {
        tracing::warn!(project = %p.name, ?provider, "webhook refused: {e}");
        hook_error(e)
    })?;
    // A signed body stays signed: someone who captured one could send it
    // again. The delivery id makes the second copy a no-op (older pushes
    // that come without one are still never promoted over newer commits).
    if let Some(id) = webhooks::delivery_id(provider, headers) {
        if !app.store.record_delivery(&p.id, &id).await? {
            tracing::warn!(project = %p.name, delivery = %id, "webhook delivery seen before; ignored");
            return Ok(HookOutcome::Ignored(format!(
                "delivery {id} was received before"
            )));
        }
    }
    Ok(
        match webhooks::parse(provider, headers, body).map_err(hook_error)? {
            HookEvent::Push(push) => {
                let b = app
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
                &app.store,
                None,
                &format!("webhook ({provider:?})"),
                ip,
                Some(&p.team_id),
                "build.push",
                &p.name,
                serde_json::json!({ "build": b.id, "branch": b.git.branch, "commit": b.git.commit_sha }),
            )
            .await;
                HookOutcome::Queued(b)
            }
            HookEvent::BranchDeleted { branch } => {
                let removed = app.store.delete_branch_alias(&p.id, &branch).await?;
                if removed {
                    app.hub.refresh().await?;
                }
                HookOutcome::BranchDeleted {
                    branch,
                    alias_removed: removed,
                }
            }
            HookEvent::Ping => HookOutcome::Pong,
            HookEvent::Ignored(what) => HookOutcome::Ignored(what.to_string()),
        },
    )
}

/// The repository URL of a project the caller already reached, if any.
pub async fn repository_url(app: &App, p: &Project) -> AppResult<Option<String>> {
    Ok(app
        .store
        .git(&p.id)
        .await?
        .map(|(g, _)| builder::git::redact_url(&g.url)))
}
