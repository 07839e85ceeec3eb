//! The retention and garbage-collection pass, run every `[retention]
//! every` (and by `POST /api/v1/admin/gc` on demand): deployments the
//! retention rules select are deleted (previews past their age,
//! production deployments beyond the newest kept, failed builds after a
//! week), logs expire, bundles no deployment uses go, and the blob store
//! sweeps blobs no bundle references once they are older than the grace
//! period.
//!
//! Every run does a bounded amount of work per project
//! ([`PER_PROJECT`]), so a project with a long history is trimmed over
//! several runs rather than in one long one.

use tokio::sync::watch;

use crate::accounts::audit;
use crate::app::App;
use crate::store::now_ms;

/// Deployments deleted per project per run.
pub const PER_PROJECT: i64 = 500;

/// What one pass did.
#[derive(
    Debug,
    Default,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
pub struct Report {
    pub deployments_deleted: u64,
    pub builds_deleted: u64,
    pub function_log_lines: u64,
    pub build_log_lines: u64,
    pub bundles_deleted: u64,
    pub blobs_swept: u64,
    pub blob_bytes_swept: u64,
}

/// The lease that makes one coordinator of several run the pass.
const LEASE: &str = "retention.pass";

pub async fn run(app: App, holder: String, mut shutdown: watch::Receiver<bool>) {
    let every = app.config.retention.every;
    // Held across passes (so the same coordinator keeps doing them) and
    // passed on when its holder has missed a few.
    let ttl = (every.as_millis() as i64 * 3).clamp(30_000, 3_600_000);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        match app.store.try_lease(LEASE, &holder, ttl).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "taking the retention lease");
                continue;
            }
        }
        match pass(&app).await {
            Ok(r) if r != Report::default() => {
                tracing::info!(?r, "retention and garbage collection")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention pass failed; it runs again later"),
        }
    }
}

/// One pass of every rule.
/// Drops the usage cache when the pass ends, however it ends.
struct Recount<'a>(&'a App);

impl Drop for Recount<'_> {
    fn drop(&mut self) {
        self.0.usage.forget_all();
    }
}

pub async fn pass(app: &App) -> anyhow::Result<Report> {
    let mut r = Report::default();
    // Whatever the pass deletes, the teams' usage is counted afresh.
    let _recount = Recount(app);
    let rules = &app.config.retention;
    let defaults = crate::app::projects::default_retention(app);
    let mut after = String::new();
    loop {
        let ids = app.store.project_ids_after(&after, 200).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for pid in ids {
            let policy = app.store.retention(&pid, defaults).await?;
            for id in app
                .store
                .retention_candidates(&pid, policy, PER_PROJECT)
                .await?
            {
                if app.store.delete_deployment(&pid, &id).await?.is_ok() {
                    r.deployments_deleted += 1;
                    record(app, &pid, &id, "retention").await;
                }
            }
        }
    }
    if rules.failed_days > 0 {
        let before = now_ms() - i64::from(rules.failed_days) * 86_400_000;
        for (pid, id) in app.store.old_failed_builds(before, 10_000).await? {
            if app.store.delete_deployment(&pid, &id).await?.is_ok() {
                r.builds_deleted += 1;
            }
        }
    }
    let day = 86_400_000;
    let keep_f = i64::from(rules.function_log_days.max(1)) * day;
    let keep_b = i64::from(rules.build_log_days.max(1)) * day;
    (r.function_log_lines, r.build_log_lines) = app
        .store
        .expire_logs(now_ms() - keep_f, now_ms() - keep_b)
        .await?;
    // Providers redeliver within hours; a month of delivery ids is plenty
    // to refuse replays (older pushes are also never promoted over newer).
    app.store.expire_deliveries(now_ms() - 30 * day).await?;
    let grace = rules.blob_grace;
    r.bundles_deleted = app
        .store
        .delete_orphan_bundles(now_ms() - grace.as_millis() as i64)
        .await?;
    // Mark after the bundles are settled: a blob is kept if any stored
    // bundle (also of a deployment still uploading) references it, or if
    // it was written within the grace period.
    let referenced = app.store.referenced_blobs().await?;
    let swept = app
        .blobs
        .sweep(&referenced, crate::blobs::cutoff(grace))
        .await?;
    r.blobs_swept = swept.blobs;
    r.blob_bytes_swept = swept.bytes;
    if r.deployments_deleted + r.builds_deleted > 0 {
        app.hub.refresh().await?;
    }
    Ok(r)
}

async fn record(app: &App, project_id: &str, deployment: &str, why: &str) {
    let team = app
        .store
        .project_by_id(project_id)
        .await
        .ok()
        .flatten()
        .map(|p| (p.team_id, p.name));
    let (team, name) = team.unzip();
    audit::record_as(
        &app.store,
        None,
        why,
        "",
        team.as_deref(),
        "deployment.delete",
        name.as_deref().unwrap_or(project_id),
        serde_json::json!({ "deployment": deployment, "by": why }),
    )
    .await;
}
