//! Builds: queue one (latest commit of a branch, or an exact commit),
//! list them, cancel, redeploy, and read the build log — a page at a time,
//! or followed live.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::json;

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::builds::BuildServiceError;
use crate::store::{Build, BuildLogLine, BuildStatus, BuildTrigger, GitMeta, Project, Role};
use crate::webhooks;

/// The most lines one page of a build log holds.
pub const MAX_LOG_PAGE: i64 = 1000;

impl From<BuildServiceError> for AppError {
    fn from(e: BuildServiceError) -> Self {
        match e {
            BuildServiceError::NotConnected(_) => {
                AppError::conflict("not_connected", e.to_string())
            }
            BuildServiceError::Store(s) => s.into(),
        }
    }
}

/// How the dashboard names a build's status.
pub fn status_label(s: BuildStatus) -> &'static str {
    match s {
        BuildStatus::Queued => "queued",
        BuildStatus::Building => "building",
        BuildStatus::Ready => "ready",
        BuildStatus::Error => "failed",
        BuildStatus::Canceled => "cancelled",
    }
}

/// Queues a build of `branch` (default: the production branch), at
/// `commit` or the branch's newest commit when it starts.
pub async fn queue(
    app: &App,
    who: &Principal,
    project: &str,
    branch: Option<String>,
    commit: Option<String>,
) -> AppResult<(Project, Build)> {
    let p = access::project(app, who, project, Role::Member).await?;
    let Some((settings, _)) = app.store.git(&p.id).await? else {
        return Err(AppError::conflict(
            "not_connected",
            format!("project {:?} is not connected to a git repository", p.name),
        ));
    };
    let branch = branch.unwrap_or(settings.branch);
    webhooks::validate_branch(&branch)
        .map_err(|e| AppError::invalid("invalid_branch", e.to_string()))?;
    if let Some(c) = &commit {
        webhooks::validate_sha(c)
            .map_err(|e| AppError::invalid("invalid_commit", e.to_string()))?;
    }
    let b = app
        .builds
        .enqueue(
            &p,
            GitMeta {
                branch,
                commit_sha: commit.map(|c| c.to_ascii_lowercase()),
                ..Default::default()
            },
            BuildTrigger::Api,
        )
        .await?;
    app.audit(who, &p, "build.create", json!({ "build": b.id }))
        .await;
    Ok((p, b))
}

pub async fn list(
    app: &App,
    who: &Principal,
    project: &str,
    before: Option<(i64, &str)>,
    limit: i64,
) -> AppResult<(Project, Vec<Build>)> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    let items = app.store.list_builds(&p.id, before, limit).await?;
    Ok((p, items))
}

/// Cancels a queued or running build.
pub async fn cancel(app: &App, who: &Principal, id: &str) -> AppResult<(Project, Build)> {
    let (p, b) = access::build(app, who, id, Role::Member).await?;
    if b.status.is_finished() {
        return Err(AppError::conflict(
            "build_finished",
            format!("build {} already ended ({})", b.id, b.status.as_str()),
        ));
    }
    let b = app.builds.cancel(&b.id).await?.unwrap_or(b);
    app.audit(who, &p, "deployment.cancel", json!({ "deployment": b.id }))
        .await;
    Ok((p, b))
}

/// Builds the same commit as build or deployment `id` again.
pub async fn redeploy(app: &App, who: &Principal, id: &str) -> AppResult<(Project, Build)> {
    let found = if access::valid_id(id) {
        app.store.build(id).await?
    } else {
        None
    };
    let (p, git) = match found {
        Some(b) => (
            access::project_by_id(app, who, &b.project_id, Role::Member).await?,
            b.git,
        ),
        None => {
            let (p, d) = access::deployment(app, who, id, Role::Member).await?;
            let git = d.git.ok_or_else(|| {
                AppError::conflict(
                    "not_a_build",
                    "this deployment was uploaded, not built from git: deploy the folder again or promote it",
                )
            })?;
            (p, git)
        }
    };
    let b = app.builds.enqueue(&p, git, BuildTrigger::Redeploy).await?;
    app.audit(
        who,
        &p,
        "deployment.redeploy",
        json!({ "from": id, "build": b.id }),
    )
    .await;
    Ok((p, b))
}

/// A page of a build's log: lines after `after`, and the build's status.
pub async fn log_page(
    app: &App,
    who: &Principal,
    id: &str,
    after: i64,
    limit: i64,
) -> AppResult<(Build, Vec<BuildLogLine>)> {
    let (_, b) = access::build(app, who, id, Role::Viewer).await?;
    if !(1..=MAX_LOG_PAGE).contains(&limit) {
        return Err(AppError::invalid(
            "bad_limit",
            format!("limit must be between 1 and {MAX_LOG_PAGE}"),
        ));
    }
    let items = app.store.build_logs(&b.id, after.max(0), limit).await?;
    Ok((b, items))
}

/// How long a follower waits between looks at the database when the
/// build does not run on this coordinator.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// What following a build's log yields.
pub enum LogEvent {
    Line(BuildLogLine),
    /// The build ended; nothing follows.
    Finished {
        status: BuildStatus,
        error: Option<String>,
    },
}

/// A build's log from line `after` on, as it is written: every line, then
/// one `Finished` when the build ends.
pub struct LogFollower {
    app: App,
    id: String,
    after: i64,
    pending: VecDeque<LogEvent>,
    done: bool,
}

pub async fn follow(app: &App, who: &Principal, id: &str, after: i64) -> AppResult<LogFollower> {
    let (_, b) = access::build(app, who, id, Role::Viewer).await?;
    Ok(LogFollower {
        app: app.clone(),
        id: b.id,
        after: after.max(0),
        pending: VecDeque::new(),
        done: false,
    })
}

impl LogFollower {
    /// The next event; `None` after `Finished` (or if the store fails).
    pub async fn next(&mut self) -> Option<LogEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            // Subscribe before reading, so a line written in between wakes us.
            let mut live = self.app.builds.logs.follow(&self.id);
            let lines = match self.app.store.build_logs(&self.id, self.after, 500).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(build = %self.id, error = %e, "reading build log to follow it");
                    return None;
                }
            };
            if !lines.is_empty() {
                for l in lines {
                    self.after = l.seq;
                    self.pending.push_back(LogEvent::Line(l));
                }
                continue;
            }
            let build = match self.app.store.build(&self.id).await {
                Ok(Some(b)) => b,
                _ => return None,
            };
            if build.status.is_finished() {
                // One more read: lines written just before the status changed.
                if let Ok(rest) = self.app.store.build_logs(&self.id, self.after, 500).await {
                    if !rest.is_empty() {
                        continue;
                    }
                }
                self.pending.push_back(LogEvent::Finished {
                    status: build.status,
                    error: build.error,
                });
                self.done = true;
                continue;
            }
            match live.as_mut() {
                Some(rx) => {
                    let _ = tokio::time::timeout(FOLLOW_POLL, rx.changed()).await;
                }
                None => tokio::time::sleep(FOLLOW_POLL).await,
            }
        }
    }
}

/// The first `n` lines of a build the caller already reached (the
/// dashboard renders them into the page; the live stream goes on after).
pub async fn first_lines(app: &App, b: &Build, n: i64) -> AppResult<Vec<BuildLogLine>> {
    Ok(app.store.build_logs(&b.id, 0, n).await?)
}
