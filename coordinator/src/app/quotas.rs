//! What one team may hold: projects, deployments, stored bytes, variables
//! and functions, with instance defaults (`[quotas]`) and per-team values
//! the instance owner sets. A team over a quota can still delete.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{access, App, AppError, AppResult, ErrorKind};
use crate::accounts::{audit, Principal};
use crate::config::Quotas;
use crate::store::{Role, Usage};

fn exceeded(what: &str, limit: u64, used: u64) -> AppError {
    AppError::new(
        ErrorKind::QuotaExceeded,
        "quota_exceeded",
        format!("this team's quota of {limit} {what} is used up ({used}); delete some, or ask the instance owner to raise it"),
    )
    .with_details(serde_json::json!({ "quota": what, "limit": limit, "used": used }))
}

/// A team's usage counted in the database at most this often; between
/// counts this coordinator keeps it current with its own changes.
const USAGE_FRESH: Duration = Duration::from_secs(30);
/// Teams remembered at most (then the cache starts over).
const USAGE_TEAMS: usize = 10_000;

/// Counting a team's deployments and bytes reads every deployment it has:
/// per deploy, that would make a deploy cost what the history costs. So
/// the count is kept here, refreshed every [`USAGE_FRESH`], moved by each
/// deployment this coordinator creates and dropped by each deletion.
/// Another coordinator's changes show within [`USAGE_FRESH`]: the
/// quotas are exact on one coordinator, and within that much otherwise.
#[derive(Default)]
pub struct UsageCache {
    teams: Mutex<HashMap<String, (Usage, Instant)>>,
}

impl UsageCache {
    /// Counts one more deployment of `bytes` for `team`.
    pub fn created(&self, team: &str, bytes: u64) {
        if let Some((u, _)) = self.teams.lock().unwrap().get_mut(team) {
            u.deployments += 1;
            u.stored_bytes += bytes;
        }
    }

    /// Something of `team`'s went (or came in a way not counted here).
    pub fn forget(&self, team: &str) {
        self.teams.lock().unwrap().remove(team);
    }

    pub fn forget_all(&self) {
        self.teams.lock().unwrap().clear();
    }
}

/// What `team` holds, from the cache when it is fresh.
pub async fn usage(app: &App, team: &str) -> AppResult<Usage> {
    if let Some((u, at)) = app.usage.teams.lock().unwrap().get(team) {
        if at.elapsed() < USAGE_FRESH {
            return Ok(*u);
        }
    }
    let u = app.store.usage(team).await?;
    let mut teams = app.usage.teams.lock().unwrap();
    if teams.len() >= USAGE_TEAMS {
        teams.clear();
    }
    teams.insert(team.to_string(), (u, Instant::now()));
    Ok(u)
}

pub async fn of(app: &App, team: &str) -> AppResult<Quotas> {
    Ok(app.store.quotas(team, app.config.quotas).await?)
}

/// One more project fits.
pub async fn check_project(app: &App, team: &str) -> AppResult<()> {
    let q = of(app, team).await?;
    let used = usage(app, team).await?;
    if used.projects >= q.projects {
        return Err(exceeded("projects", q.projects, used.projects));
    }
    Ok(())
}

/// One more deployment of `bytes` with `functions` routes fits.
pub async fn check_deployment(app: &App, team: &str, bytes: u64, functions: u64) -> AppResult<()> {
    let q = of(app, team).await?;
    if functions > q.functions {
        return Err(exceeded("functions per deployment", q.functions, functions));
    }
    let used = usage(app, team).await?;
    if used.deployments >= q.deployments {
        return Err(exceeded("deployments", q.deployments, used.deployments));
    }
    if used.stored_bytes.saturating_add(bytes) > q.stored_bytes {
        return Err(exceeded("stored bytes", q.stored_bytes, used.stored_bytes));
    }
    Ok(())
}

/// A project's variables after a change: `count` names, `bytes` of values.
pub async fn check_variables(app: &App, team: &str, count: u64, bytes: u64) -> AppResult<()> {
    let q = of(app, team).await?;
    if count > q.variables {
        return Err(exceeded("variables", q.variables, count));
    }
    if bytes > q.variable_bytes {
        return Err(exceeded(
            "bytes of variable values",
            q.variable_bytes,
            bytes,
        ));
    }
    Ok(())
}

/// A team's quotas and what it holds (members may look).
pub async fn show(app: &App, who: &Principal, team: &str) -> AppResult<(Quotas, Usage)> {
    let t = access::team(app, who, team, Role::Viewer).await?;
    Ok((of(app, &t.id).await?, app.store.usage(&t.id).await?))
}

/// Sets (or with `None` clears) a team's own quotas: the instance owner's call.
pub async fn set(
    app: &App,
    who: &Principal,
    team: &str,
    quotas: Option<Quotas>,
) -> AppResult<Quotas> {
    if !who.is_instance_owner() {
        return Err(AppError::forbidden(
            "only the instance owner (with an unscoped credential) sets quotas",
        ));
    }
    let t = app
        .store
        .team(team)
        .await?
        .filter(|_| access::valid_team_id(team))
        .ok_or_else(|| AppError::not_found("team"))?;
    app.store.set_quotas(&t.id, quotas.as_ref()).await?;
    audit::record(
        &app.store,
        who,
        Some(&t.id),
        "team.quotas",
        &t.name,
        serde_json::json!({ "quotas": quotas }),
    )
    .await;
    of(app, &t.id).await
}
