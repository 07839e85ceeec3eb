//! Deployments: the upload protocol (manifest → missing blobs → uploads →
//! finalize), promotion and rollback. Promote and rollback move a pointer.

use bytes::Bytes;
use protocol::{BlobHash, Manifest};

use serde_json::json;

use super::publish::Blobs;
use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::store::{Deployment, DeploymentStatus, Project, Role, Target};

/// A deployment staged from a manifest, with what is left to upload.
pub struct Staged {
    pub project: Project,
    pub deployment: Deployment,
    /// Blobs the coordinator lacks: upload these, then finalize.
    pub missing: Vec<BlobHash>,
    pub blob_count: usize,
}

/// Creates a deployment from a manifest; it waits for its blobs.
pub async fn stage(
    app: &App,
    who: &Principal,
    project: &str,
    manifest: &Manifest,
    target: Target,
) -> AppResult<Staged> {
    let p = access::project(app, who, project, Role::Member).await?;
    let publisher = app.publisher();
    publisher.validate(manifest)?;
    let bytes: u64 = manifest.blob_sizes().values().sum();
    super::quotas::check_deployment(app, &p.team_id, bytes, manifest.functions.len() as u64)
        .await?;
    let bundle_id = publisher.store_bundle(manifest).await?;
    let d = Deployment {
        id: crate::ids::new_id(10),
        project_id: p.id.clone(),
        bundle_id: bundle_id.to_hex(),
        status: DeploymentStatus::Uploading,
        target,
        created_at: crate::store::now_ms(),
        ready_at: None,
        promoted_at: None,
        git: None,
    };
    app.store.create_deployment(&d).await?;
    app.usage.created(&p.team_id, bytes);
    let blobs = manifest.blobs();
    let missing = app.blobs.missing(blobs.iter().copied()).await?;
    tracing::info!(project = %p.name, deployment = %d.id, bundle = %bundle_id.short(), blobs = blobs.len(), missing = missing.len(), "deployment created");
    app.audit(
        who,
        &p,
        "deployment.create",
        json!({ "deployment": d.id, "target": d.target.as_str() }),
    )
    .await;
    Ok(Staged {
        project: p,
        deployment: d,
        missing,
        blob_count: blobs.len(),
    })
}

/// Blob uploads are shared across projects (content-addressed), so they
/// need the member role somewhere.
fn may_upload(who: &Principal) -> AppResult<()> {
    if who.can_write_somewhere() {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "uploading needs the member role in some team",
        ))
    }
}

/// Which of `hashes` the blob store lacks.
pub async fn missing_blobs(
    app: &App,
    who: &Principal,
    hashes: Vec<BlobHash>,
) -> AppResult<Vec<BlobHash>> {
    may_upload(who)?;
    if hashes.len() > app.config.limits.max_files * 3 {
        return Err(AppError::invalid(
            "too_many_hashes",
            "too many hashes in one request",
        ));
    }
    Ok(app.blobs.missing(hashes).await?)
}

/// Streams one blob into the store; its bytes must hash to `hash`.
pub async fn upload_blob<S, E>(app: &App, who: &Principal, hash: &str, body: S) -> AppResult<()>
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: std::fmt::Display,
{
    may_upload(who)?;
    let hash: BlobHash = hash.parse().map_err(|e: protocol::hash::HashParseError| {
        AppError::invalid("bad_hash", e.to_string())
    })?;
    app.blobs
        .put_stream(&hash, body, app.config.limits.max_blob_bytes)
        .await?;
    Ok(())
}

/// Marks an uploaded deployment ready once every blob is present; a ready
/// one is returned as it is.
pub async fn finalize(app: &App, who: &Principal, id: &str) -> AppResult<(Project, Deployment)> {
    let (p, d) = access::deployment(app, who, id, Role::Member).await?;
    if d.status == DeploymentStatus::Uploading {
        // Other deployments may have filled the quota since this one was
        // staged: then it goes, rather than staying half made.
        let q = super::quotas::of(app, &p.team_id).await?;
        let used = super::quotas::usage(app, &p.team_id).await?;
        if used.deployments > q.deployments || used.stored_bytes > q.stored_bytes {
            app.store.delete_deployment(&p.id, &d.id).await?.ok();
            app.usage.forget(&p.team_id);
            return Err(AppError::new(
                super::ErrorKind::QuotaExceeded,
                "quota_exceeded",
                "this team's deployment quota filled up while this deployment was uploaded; it was removed: delete some deployments and deploy again",
            )
            .with_details(json!({ "deployments": used.deployments, "stored_bytes": used.stored_bytes })));
        }
        let published = async {
            let publisher = app.publisher();
            let manifest = publisher.manifest(&d.bundle_id).await?;
            publisher.check_blobs_present(&manifest).await?;
            publisher.check_functions(&manifest, Blobs::Stored).await?;
            publisher.ready_upload(&p, &d).await
        }
        .await;
        if let Err(e) = published {
            // A deploy that could not go live is an error of the project
            // (blobs missing, a function that is no component, the store).
            let event = super::errors::coordinator_event(
                &p.id,
                Some(&d.id),
                crate::errors::Source::Deploy,
                "finalize_failed",
                d.target.as_str(),
                &e.message,
                json!({ "deployment": d.id, "code": e.code }),
            );
            super::errors::record(app, event).await;
            return Err(e);
        }
        tracing::info!(project = %p.name, deployment = %d.id, target = d.target.as_str(), "deployment ready");
    }
    access::deployment(app, who, id, Role::Viewer).await
}

/// Points production at a ready deployment.
pub async fn promote(app: &App, who: &Principal, id: &str) -> AppResult<(Project, Deployment)> {
    let (p, d) = access::deployment(app, who, id, Role::Member).await?;
    if d.status != DeploymentStatus::Ready {
        return Err(AppError::conflict(
            "not_ready",
            "only a ready deployment can be promoted",
        ));
    }
    app.store.promote(&p.id, &d.id).await?;
    app.hub.refresh().await?;
    tracing::info!(project = %p.name, deployment = %d.id, "promoted");
    let (p, d) = access::deployment(app, who, id, Role::Viewer).await?;
    app.audit(who, &p, "deployment.promote", json!({ "deployment": d.id }))
        .await;
    Ok((p, d))
}

/// The production deployment before the current one, if there is one.
pub async fn previous_production(app: &App, p: &Project) -> AppResult<Option<Deployment>> {
    let Some(id) = &p.production_deployment else {
        return Ok(None);
    };
    let Some(current) = app.store.deployment(id).await? else {
        return Ok(None);
    };
    Ok(app.store.previous_production(&p.id, &current).await?)
}

/// Points production back at the previous production deployment.
pub async fn rollback(
    app: &App,
    who: &Principal,
    project: &str,
) -> AppResult<(Project, Deployment)> {
    let p = access::project(app, who, project, Role::Member).await?;
    let current_id = p.production_deployment.clone().ok_or_else(|| {
        AppError::conflict("no_production", "the project has no production deployment")
    })?;
    let current = app
        .store
        .deployment(&current_id)
        .await?
        .ok_or_else(|| AppError::internal("production deployment row missing"))?;
    let previous = app
        .store
        .previous_production(&p.id, &current)
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "no_previous",
                "there is no earlier production deployment to roll back to",
            )
        })?;
    app.store.promote(&p.id, &previous.id).await?;
    app.hub.refresh().await?;
    tracing::info!(project = %p.name, from = %current.id, to = %previous.id, "rolled back");
    let (p, d) = access::deployment(app, who, &previous.id, Role::Viewer).await?;
    app.audit(who, &p, "deployment.rollback", json!({ "to": d.id }))
        .await;
    Ok((p, d))
}

/// A project's deployments, newest first; `before` is the (created_at, id)
/// of the last one seen.
pub async fn list(
    app: &App,
    who: &Principal,
    project: &str,
    before: Option<(i64, &str)>,
    limit: i64,
) -> AppResult<(Project, Vec<Deployment>)> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    let items = app.store.list_deployments(&p.id, before, limit).await?;
    Ok((p, items))
}

/// The stored manifest of a deployment the caller may see.
pub async fn manifest(app: &App, d: &Deployment) -> AppResult<Option<Manifest>> {
    match app.store.bundle_manifest(&d.bundle_id).await? {
        None => Ok(None),
        Some(bytes) => Manifest::from_canonical_bytes(&bytes, protocol::wire::MAX_FRAME_BYTES)
            .map(Some)
            .map_err(AppError::internal),
    }
}

/// Deletes a deployment (or a finished build) and everything that belongs
/// to it; its URL answers the platform's 404 on every edge once they have
/// the change. The production deployment cannot be deleted.
pub async fn delete(app: &App, who: &Principal, id: &str) -> AppResult<Project> {
    let s = access::subject(app, who, id, Role::Member).await?;
    let p = s.project;
    match app.store.delete_deployment(&p.id, id).await? {
        Ok(()) => app.usage.forget(&p.team_id),
        Err(crate::store::Undeletable::Production) => {
            return Err(AppError::conflict(
                "is_production",
                format!(
                    "{id} is the production deployment of {}: promote another deployment first",
                    p.name
                ),
            ))
        }
        Err(crate::store::Undeletable::Building) => {
            return Err(AppError::conflict(
                "building",
                format!("the build of {id} has not finished: cancel it first"),
            ))
        }
    }
    app.hub.refresh().await?;
    tracing::info!(project = %p.name, deployment = %id, "deployment deleted");
    app.audit(who, &p, "deployment.delete", json!({ "deployment": id }))
        .await;
    Ok(p)
}
