//! A project's log drains: add (the endpoint, the sources, the request
//! sample, a signing secret shown once), list with delivery status, remove.
//! Members manage them; anyone who sees the project sees them (never
//! their secret).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::alerts::send;
use crate::store::drains::DrainRow;
use crate::store::{now_ms, EdgeSync, Role, StoreError};

pub const SOURCES: [&str; 3] = ["function", "request", "build"];

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DrainView {
    pub id: String,
    pub project: String,
    pub url: String,
    /// `function`, `request`, `build`.
    pub sources: Vec<String>,
    /// The share of requests sent (0 < rate ≤ 1).
    pub sample_rate: f64,
    /// `ok`, `failing` (retried with backoff) or `idle` (nothing sent yet).
    pub status: String,
    /// Lines the endpoint acknowledged.
    pub delivered: i64,
    /// Failed attempts since the last success.
    pub failures: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub last_success_at: Option<i64>,
    /// When the next attempt is due, while failing.
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    /// Only in the answer that made the drain: the signing secret
    /// (`x-vercel-signature`: hex HMAC-SHA1 of the body; `x-outpost-signature`:
    /// hex HMAC-SHA256), shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDrain {
    /// An https URL (http and private addresses only where the operator
    /// allows them).
    pub url: String,
    /// Default: all three.
    pub sources: Option<Vec<String>>,
    /// The share of requests sent, 0 < rate ≤ 1 (default 1).
    pub sample_rate: Option<f64>,
    /// 16-256 printable characters; default: a new one, shown once.
    pub secret: Option<String>,
}

fn view(d: DrainRow, project: &str, secret: Option<String>) -> DrainView {
    let status = match (d.failures, d.last_success_at) {
        (f, _) if f > 0 => "failing",
        (_, Some(_)) => "ok",
        _ => "idle",
    };
    DrainView {
        id: d.id,
        project: project.to_string(),
        url: d.url,
        sources: d.sources,
        sample_rate: d.sample_ppm as f64 / 1e6,
        status: status.into(),
        delivered: d.delivered,
        failures: d.failures,
        last_status: d.last_status,
        last_error: d.last_error,
        last_success_at: d.last_success_at,
        next_attempt_at: (d.failures > 0).then_some(d.next_at),
        created_at: d.created_at,
        secret,
    }
}

pub async fn add(app: &App, who: &Principal, project: &str, new: NewDrain) -> AppResult<DrainView> {
    let p = access::project(app, who, project, Role::Member).await?;
    let url = new.url.trim().to_string();
    send::check_url(&url, app.config.alerts.allow_private_targets)
        .map_err(|e| AppError::invalid("invalid_url", e))?;
    let mut sources = new
        .sources
        .unwrap_or_else(|| SOURCES.map(String::from).to_vec());
    sources.sort();
    sources.dedup();
    if sources.is_empty() || sources.iter().any(|s| !SOURCES.contains(&s.as_str())) {
        return Err(AppError::invalid(
            "invalid_sources",
            "sources are one or more of function, request, build",
        ));
    }
    let rate = new.sample_rate.unwrap_or(1.0);
    if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
        return Err(AppError::invalid(
            "invalid_sample_rate",
            "sample_rate must be above 0 and at most 1",
        ));
    }
    let secret = super::alerts::signing_secret(new.secret, crate::ids::new_secret)?;
    let row = DrainRow {
        id: crate::ids::new_id(16),
        project_id: p.id.clone(),
        url,
        sources,
        sample_ppm: ((rate * 1e6).round() as i64).clamp(1, 1_000_000),
        secret_enc: app.secrets.seal(&secret),
        cursor: 0,
        delivered: 0,
        failures: 0,
        next_at: 0,
        last_status: None,
        last_error: None,
        last_success_at: None,
        created_at: now_ms(),
    };
    app.store.insert_drain(&row).await.map_err(|e| match e {
        StoreError::Conflict(what) => AppError::new(
            super::ErrorKind::QuotaExceeded,
            "too_many",
            format!("{what} is over the limit"),
        ),
        e => e.into(),
    })?;
    // Edges start (or keep) sending request logs at the largest rate.
    app.store
        .sync_edges_now(&[EdgeSync::RequestLog(p.id.clone())])
        .await?;
    app.hub.refresh().await?;
    app.audit(
        who,
        &p,
        "drain.add",
        json!({ "drain": row.id, "url": row.url }),
    )
    .await;
    Ok(view(row, &p.name, Some(secret)))
}

pub async fn list(app: &App, who: &Principal, project: &str) -> AppResult<Vec<DrainView>> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    Ok(app
        .store
        .project_drains(&p.id)
        .await?
        .into_iter()
        .map(|d| view(d, &p.name, None))
        .collect())
}

async fn find(app: &App, who: &Principal, id: &str, need: Role) -> AppResult<(DrainRow, String)> {
    let missing = || AppError::not_found("drain");
    if !access::valid_id(id) {
        return Err(missing());
    }
    let d = app.store.drain(id).await?.ok_or_else(missing)?;
    let p = access::project_by_id(app, who, &d.project_id, need)
        .await
        .map_err(|e| match e.kind {
            super::ErrorKind::NotFound => missing(),
            _ => e,
        })?;
    Ok((d, p.name))
}

pub async fn show(app: &App, who: &Principal, id: &str) -> AppResult<DrainView> {
    let (d, project) = find(app, who, id, Role::Viewer).await?;
    Ok(view(d, &project, None))
}

pub async fn remove(app: &App, who: &Principal, id: &str) -> AppResult<()> {
    let (d, _) = find(app, who, id, Role::Member).await?;
    app.store.delete_drain(&d.id).await?;
    app.store
        .sync_edges_now(&[EdgeSync::RequestLog(d.project_id.clone())])
        .await?;
    app.hub.refresh().await?;
    Ok(())
}
