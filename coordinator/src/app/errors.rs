//! Error tracking's use cases: file an event (from an edge's report or the
//! coordinator's own failures), list a project's issues, show one, change
//! its state or severity. Anyone who may see the project reads its issues;
//! changing one needs the member role.

use serde::{Deserialize, Serialize};

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::errors::{Event, Severity, Source, State};
use crate::store::errors::{IssueRow, StateFilter};
use crate::store::Role;

/// Hours in an issue's trend.
pub const TREND_HOURS: usize = 24;
/// Most issues one list answers.
pub const MAX_LIST: i64 = 200;

/// An issue as the API, the CLI and the dashboard show it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssueView {
    pub id: String,
    pub project: String,
    /// `function`, `build`, `deploy` or `certificate`.
    pub source: String,
    pub kind: String,
    pub title: String,
    pub culprit: String,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: String,
    /// `unresolved`, `resolved`, `ignored` or `regressed`.
    pub state: String,
    /// Milliseconds since the Unix epoch.
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
    pub resolved_at: Option<i64>,
    /// Events per hour over the last 24 hours, oldest first.
    pub trend: Vec<i64>,
    /// The newest event: message, frames, and its detail (request id,
    /// method, path, status, stderr tail, node; a build's id; a CA's
    /// problem).
    #[schema(value_type = Object)]
    pub sample: serde_json::Value,
    /// With `GET /errors/{id}` only: the deployments it was seen in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<IssueDeployment>,
    /// With `GET /errors/{id}` only: its newest events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<IssueEvent>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssueDeployment {
    pub deployment: String,
    pub count: i64,
    pub last_seen: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IssueEvent {
    pub at: i64,
    pub deployment: Option<String>,
    /// Failures this event stands for (an edge folds repeats).
    pub count: i64,
    /// The event as sampled, shaped as the issue's `sample`: `message`,
    /// `place`, `frames` and `detail` (request id, method, path, …).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A change to an issue.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueUpdate {
    /// `unresolved`, `resolved` or `ignored`.
    pub state: Option<String>,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: Option<String>,
}

fn view(
    row: IssueRow,
    project: &str,
    trend: Option<&std::collections::BTreeMap<i64, i64>>,
) -> IssueView {
    let now_hour = crate::store::now_ms().div_euclid(3_600_000);
    let trend = (0..TREND_HOURS as i64)
        .rev()
        .map(|back| {
            trend
                .and_then(|t| t.get(&(now_hour - back)))
                .copied()
                .unwrap_or(0)
        })
        .collect();
    IssueView {
        id: row.id,
        project: project.to_string(),
        source: row.source.as_str().into(),
        kind: row.kind,
        title: row.title,
        culprit: row.culprit,
        severity: row.severity.as_str().into(),
        state: row.state.as_str().into(),
        first_seen: row.first_seen,
        last_seen: row.last_seen,
        count: row.count,
        resolved_at: row.resolved_at,
        trend,
        sample: row.sample,
        deployments: Vec::new(),
        events: Vec::new(),
    }
}

fn trend_from() -> i64 {
    let hour = crate::store::now_ms().div_euclid(3_600_000);
    (hour - TREND_HOURS as i64 + 1) * 3_600_000
}

/// A project's issues, the most recently seen first. `state`: `open`
/// (default: unresolved and regressed), `all`, or one state.
pub async fn list(
    app: &App,
    who: &Principal,
    project: &str,
    state: Option<&str>,
    limit: Option<i64>,
) -> AppResult<Vec<IssueView>> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    let filter = match state.unwrap_or("open") {
        "open" => StateFilter::Open,
        "all" => StateFilter::All,
        s => StateFilter::Only(State::parse(s).ok_or_else(|| {
            AppError::invalid(
                "invalid_state",
                format!("state {s:?}: use open, all, unresolved, resolved, ignored or regressed"),
            )
        })?),
    };
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(AppError::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIST}"),
        ));
    }
    let rows = app.store.error_issues(&p.id, filter, limit).await?;
    let trends = app.store.error_trends(&p.id, trend_from()).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let t = trends.get(&r.id);
            view(r, &p.name, t)
        })
        .collect())
}

async fn find(app: &App, who: &Principal, id: &str, need: Role) -> AppResult<(IssueRow, String)> {
    if !access::valid_id(id) {
        return Err(AppError::not_found("error issue"));
    }
    let row = app
        .store
        .error_issue(id)
        .await?
        .ok_or_else(|| AppError::not_found("error issue"))?;
    // Not the project's 404 but the issue's; a role too small stays 403.
    let p = access::project_by_id(app, who, &row.project_id, need)
        .await
        .map_err(|e| match e.kind {
            super::ErrorKind::NotFound => AppError::not_found("error issue"),
            _ => e,
        })?;
    Ok((row, p.name))
}

/// One issue with its deployments and newest events.
pub async fn show(app: &App, who: &Principal, id: &str) -> AppResult<IssueView> {
    let (row, project) = find(app, who, id, Role::Viewer).await?;
    let trends = app
        .store
        .error_trends(&row.project_id, trend_from())
        .await?;
    let deployments = app.store.error_deployments(&row.id).await?;
    let events = app.store.error_events(&row.id).await?;
    let mut v = view(row.clone(), &project, trends.get(&row.id));
    v.deployments = deployments
        .into_iter()
        .map(|(deployment, count, last_seen)| IssueDeployment {
            deployment,
            count,
            last_seen,
        })
        .collect();
    v.events = events
        .into_iter()
        .map(|e| IssueEvent {
            at: e.at,
            deployment: e.deployment_id,
            count: e.count,
            detail: e.detail,
        })
        .collect();
    Ok(v)
}

/// Resolves, ignores or reopens an issue, or sets its severity.
pub async fn update(
    app: &App,
    who: &Principal,
    id: &str,
    change: IssueUpdate,
) -> AppResult<IssueView> {
    let state = match change.state.as_deref() {
        None => None,
        Some(s @ ("unresolved" | "resolved" | "ignored")) => State::parse(s),
        Some(s) => {
            return Err(AppError::invalid(
                "invalid_state",
                format!("state {s:?}: set unresolved, resolved or ignored"),
            ))
        }
    };
    let severity = match change.severity.as_deref() {
        None => None,
        Some(s) => Some(Severity::parse(s).ok_or_else(|| {
            AppError::invalid(
                "invalid_severity",
                format!("severity {s:?}: use critical, high, medium or low"),
            )
        })?),
    };
    if state.is_none() && severity.is_none() {
        return Err(AppError::invalid(
            "empty_update",
            "give a state, a severity or both",
        ));
    }
    let (row, _) = find(app, who, id, Role::Member).await?;
    app.store
        .update_error_issue(&row.id, state, severity)
        .await?;
    show(app, who, id).await
}

/// Files an event; failures are logged, never passed on (error tracking
/// must not make the failing thing fail differently).
pub async fn record(app: &App, event: Event) {
    record_in(&app.store, event).await
}

/// [`record`] with only the store (for services that hold no `App`).
pub async fn record_in(store: &crate::store::Store, event: Event) {
    let id = crate::ids::new_id(16);
    match store.record_error(&id, &event).await {
        Ok(r) if r.regressed => {
            tracing::info!(issue = %r.issue_id, project = %event.project_id, "a resolved error issue regressed");
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, project = %event.project_id, kind = %event.kind, "recording an error event failed");
        }
    }
}

/// A coordinator-side failure as an event.
pub fn coordinator_event(
    project_id: &str,
    deployment_id: Option<&str>,
    source: Source,
    kind: &str,
    place: &str,
    message: &str,
    detail: serde_json::Value,
) -> Event {
    let now = crate::store::now_ms();
    Event {
        project_id: project_id.to_string(),
        deployment_id: deployment_id.map(str::to_string),
        source,
        kind: kind.to_string(),
        message: protocol::errors::bounded(message, protocol::errors::MAX_MESSAGE),
        place: place.to_string(),
        frames: Vec::new(),
        at: now,
        first_at: now,
        count: 1,
        detail,
    }
}
