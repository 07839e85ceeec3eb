//! One deployment: its status timeline, the live build log, its files and
//! functions, and the promote / cancel / redeploy buttons.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::{Form, Json};
use dashboard::model::{DeploymentPage, FileRow, LogLine, Nav};

use super::project::{build_row, deployment_row, manifest, manifest_functions};
use super::{act, done, render, CsrfOnly, Flash, SignedIn, WebError, WebResult};
use crate::api::{builds, deployments, projects, AppState};
use crate::store::Role;

/// The page shows this many files; the rest are counted.
const MAX_FILES: usize = 200;
/// Lines rendered into the page; the SSE stream carries on after them.
const MAX_LOG_LINES: i64 = 5000;

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub async fn page(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    if !valid_id(&id) {
        return Err(WebError::not_found("deployment"));
    }
    let deployment = state.store.deployment(&id).await?;
    let build = state.store.build(&id).await?;
    let project_id = match (&deployment, &build) {
        (Some(d), _) => d.project_id.clone(),
        (None, Some(b)) => b.project_id.clone(),
        (None, None) => return Err(WebError::not_found("deployment")),
    };
    let p = projects::load_by_id(&state, &signed.who, &project_id, Role::Viewer).await?;
    let mut row = match (&deployment, &build) {
        (Some(d), _) => deployment_row(&state, &p, d),
        (None, Some(b)) => build_row(&state, &p, b),
        (None, None) => unreachable!("checked above"),
    };
    if signed.who.project_role(&p.team_id, &p.id) < Some(Role::Member) {
        row.can_promote = false;
        row.can_cancel = false;
        row.can_redeploy = false;
    }
    let mut timeline = Vec::new();
    if let Some(b) = &build {
        timeline.push(("Queued".to_string(), b.created_at));
        if let Some(t) = b.started_at {
            timeline.push(("Build started".into(), t));
        }
        if let Some(t) = b.finished_at {
            let label = match b.status {
                crate::store::BuildStatus::Ready => "Build finished",
                crate::store::BuildStatus::Canceled => "Cancelled",
                _ => "Build failed",
            };
            timeline.push((label.into(), t));
        }
    } else if let Some(d) = &deployment {
        timeline.push(("Uploaded".into(), d.created_at));
    }
    let (mut files, mut files_total, mut functions) = (Vec::new(), 0, Vec::new());
    if let Some(d) = &deployment {
        if let Some(t) = d.ready_at {
            timeline.push(("Ready".into(), t));
        }
        if let Some(t) = d.promoted_at {
            timeline.push(("Promoted to production".into(), t));
        }
        if let Some(m) = manifest(&state, &d.bundle_id).await? {
            files_total = m.files.len();
            files = m
                .files
                .iter()
                .take(MAX_FILES)
                .map(|(path, f)| FileRow {
                    path: path.clone(),
                    size: f.size,
                    content_type: f.content_type.clone(),
                })
                .collect();
        }
        functions = manifest_functions(&state, &d.bundle_id).await?;
    }
    let log = match &build {
        Some(b) => state
            .store
            .build_logs(&b.id, 0, MAX_LOG_LINES)
            .await?
            .into_iter()
            .map(|l| LogLine {
                seq: l.seq,
                ts: l.ts,
                stream: l.stream,
                line: l.line,
            })
            .collect(),
        None => Vec::new(),
    };
    let page = DeploymentPage {
        project: p.name.clone(),
        row,
        timeline,
        log,
        has_build: build.is_some(),
        events_url: format!("/api/v1/deployments/{id}/events"),
        files,
        files_total,
        functions,
    };
    let html = dashboard::deployment(
        &signed.page(format!("{} · {id}", p.name), Nav::Projects),
        &page,
    );
    Ok(render(&signed, html))
}

pub async fn promote(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> WebResult<Response> {
    let back = format!("/deployments/{id}");
    act(
        &signed,
        &f.csrf,
        &back,
        deployments::promote(signed.who.clone(), State(state), Path(id)),
        |Json(d)| {
            done(
                &format!("/projects/{}", d.project),
                Flash::success(format!("{} is now in production.", d.deployment.id)),
            )
        },
    )
    .await
}

pub async fn cancel(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> WebResult<Response> {
    let back = format!("/deployments/{id}");
    act(
        &signed,
        &f.csrf,
        &back,
        builds::cancel(signed.who.clone(), State(state), Path(id)),
        |_| done(&back, Flash::success("Build cancelled.")),
    )
    .await
}

pub async fn redeploy(
    State(state): State<AppState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> WebResult<Response> {
    let back = format!("/deployments/{id}");
    act(
        &signed,
        &f.csrf,
        &back,
        builds::redeploy(signed.who.clone(), State(state), Path(id)),
        |(_, Json(b))| {
            done(
                &format!("/deployments/{}", b.build.id),
                Flash::success("Redeploy queued."),
            )
        },
    )
    .await
}
