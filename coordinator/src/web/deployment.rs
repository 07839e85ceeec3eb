//! One deployment: its status timeline, the live build log, its files and
//! functions, and the promote / cancel / redeploy / delete buttons.

use axum::extract::{Path, State};
use axum::response::Response;
use dashboard::model::{DeploymentPage, FileRow, LogLine, Nav};

use super::project::{build_row, deployment_row, manifest_functions};
use super::{act, render, success, NoFields, Post, SignedIn, WebResult};
use crate::app::{self, App};
use crate::store::Role;

/// The page shows this many files; the rest are counted.
const MAX_FILES: usize = 200;
/// Lines rendered into the page; the SSE stream carries on after them.
const MAX_LOG_LINES: i64 = 5000;

pub async fn page(
    State(state): State<App>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let app::access::Subject {
        project: p,
        deployment,
        build,
    } = app::access::subject(&state, &signed.who, &id, Role::Viewer).await?;
    let mut row = match (&deployment, &build) {
        (Some(d), _) => deployment_row(&state, &p, d),
        (None, Some(b)) => build_row(&state, &p, b),
        (None, None) => unreachable!("a subject has a deployment or a build"),
    };
    if !app::access::can_write(&signed.who, &p) {
        row.can_promote = false;
        row.can_cancel = false;
        row.can_redeploy = false;
        row.can_delete = false;
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
        if let Some(m) = app::deployments::manifest(&state, d).await? {
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
        functions = manifest_functions(&state, d).await?;
    }
    let log = match &build {
        Some(b) => app::builds::first_lines(&state, b, MAX_LOG_LINES)
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
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/deployments/{id}");
    act(
        &back,
        app::deployments::promote(&state, &signed.who, &id),
        |(p, d)| {
            success(
                &format!("/projects/{}", p.name),
                format!("{} is now in production.", d.id),
            )
        },
    )
    .await
}

pub async fn cancel(
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/deployments/{id}");
    act(&back, app::builds::cancel(&state, &signed.who, &id), |_| {
        success(&back, "Build cancelled.")
    })
    .await
}

pub async fn redeploy(
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/deployments/{id}");
    act(
        &back,
        app::builds::redeploy(&state, &signed.who, &id),
        |(_, b)| success(&format!("/deployments/{}", b.id), "Redeploy queued."),
    )
    .await
}

pub async fn delete(
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/deployments/{id}");
    act(
        &back,
        app::deployments::delete(&state, &signed.who, &id),
        |p| {
            success(
                &format!("/projects/{}", super::urlencode(&p.name)),
                format!("Deleted deployment {id}: its URL no longer answers."),
            )
        },
    )
    .await
}
