//! The build service: queue builds of a project's repository, run them
//! (bounded by `[builds] concurrency`) through the `builder` crate, and
//! turn each finished bundle into a deployment.
//!
//! The queue lives in the database, so a restart loses nothing: builds
//! left running by a stopped coordinator are re-queued once (and the log
//! says so), then failed.

pub mod logs;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::BlobHash;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::app::publish::{Blobs, Publisher};
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::edge_config::ConfigHub;
use crate::errors::Source;
use crate::secrets::SecretBox;
use crate::store::{Build, BuildStatus, BuildTrigger, GitMeta, Project, ReadyBuild, Store, Target};
use logs::{LogHub, LogWriter};

/// How often idle workers look at the queue (an enqueue wakes them at once)
/// and running builds look for a cancel request from another coordinator.
const POLL: Duration = Duration::from_secs(2);
/// A running build is its coordinator's while this lease lasts; renewed
/// every [`LEASE_RENEW`], so a coordinator that died leaves its builds to
/// be re-queued by another within about this long.
const LEASE: Duration = Duration::from_secs(30);
const LEASE_RENEW: Duration = Duration::from_secs(10);

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BuildServiceError {
    #[error("project {0:?} is not connected to a git repository")]
    NotConnected(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

pub struct BuildService {
    store: Store,
    blobs: BlobStore,
    hub: Arc<ConfigHub>,
    secrets: Arc<SecretBox>,
    config: Arc<Config>,
    builder: Option<Arc<builder::Builder>>,
    /// Why builds cannot run here, when `builder` is `None`.
    unavailable: Option<String>,
    pub logs: Arc<LogHub>,
    wake: Notify,
    running: Mutex<HashMap<String, CancellationToken>>,
}

impl BuildService {
    pub fn new(
        store: Store,
        blobs: BlobStore,
        hub: Arc<ConfigHub>,
        secrets: Arc<SecretBox>,
        config: Arc<Config>,
    ) -> Arc<BuildService> {
        let b = &config.builds;
        let made = builder::Builder::new(builder::BuilderConfig {
            url_policy: builder::git::UrlPolicy {
                allow_local: b.allow_local_git,
                allowed_hosts: b.allowed_git_hosts.clone(),
            },
            egress: builder::egress::EgressPolicy {
                allowed_hosts: b.allowed_egress_hosts.clone(),
                allow_private: false,
            },
            shim_dir: Some(b.work_dir().join("shim")),
            ..Default::default()
        });
        let (builder, unavailable) = match made {
            Ok(b) => (Some(Arc::new(b)), None),
            Err(e) => {
                // Uploads keep working on a host that cannot build.
                tracing::warn!(error = %e, "builds from git are unavailable on this coordinator");
                (None, Some(e.to_string()))
            }
        };
        Arc::new(BuildService {
            store,
            blobs,
            hub,
            secrets,
            config,
            builder,
            unavailable,
            logs: Arc::new(LogHub::default()),
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Queues a build of `branch` (its newest commit, or `commit`).
    pub async fn enqueue(
        &self,
        project: &Project,
        git: GitMeta,
        trigger: BuildTrigger,
    ) -> Result<Build, BuildServiceError> {
        let Some((settings, _)) = self.store.git(&project.id).await? else {
            return Err(BuildServiceError::NotConnected(project.name.clone()));
        };
        let target = if git.branch == settings.branch {
            Target::Production
        } else {
            Target::Preview
        };
        let b = Build {
            id: crate::ids::new_id(10),
            project_id: project.id.clone(),
            status: BuildStatus::Queued,
            target,
            git,
            trigger,
            attempts: 0,
            error: None,
            created_at: crate::store::now_ms(),
            started_at: None,
            finished_at: None,
        };
        self.store.enqueue_build(&b).await?;
        let line = format!(
            "Queued ({}) build of {}{} for {}",
            trigger.as_str(),
            b.git.branch,
            b.git
                .commit_sha
                .as_deref()
                .map(|s| format!(" at {}", &s[..s.len().min(12)]))
                .unwrap_or_default(),
            target.as_str()
        );
        self.append_system(&b.id, &line).await;
        tracing::info!(project = %project.name, build = %b.id, branch = %b.git.branch, "build queued");
        self.wake.notify_one();
        Ok(b)
    }

    /// Cancels a queued build, or stops a running one.
    pub async fn cancel(&self, id: &str) -> Result<Option<Build>, BuildServiceError> {
        let b = self.store.request_cancel(id).await?;
        if let Some(token) = self.running.lock().unwrap().get(id) {
            token.cancel();
        }
        Ok(b)
    }

    async fn append_system(&self, build_id: &str, text: &str) {
        let seq = self.store.next_build_log_seq(build_id).await.unwrap_or(1);
        let line = logs::system(text);
        let row = crate::store::BuildLogLine {
            seq,
            ts: line.ts_ms,
            stream: "system".into(),
            line: line.text,
        };
        if let Err(e) = self.store.append_build_logs(build_id, &[row]).await {
            tracing::error!(build = %build_id, error = %e, "writing build log");
        }
    }

    /// One recovery pass (see [`Self::run`]); the build's log says what
    /// happened to it.
    async fn recover(&self, me: &str, mine: bool) {
        match self.store.recover_interrupted_builds(me, mine).await {
            Ok(found) => {
                for (b, requeued) in found {
                    let text = if requeued {
                        format!(
                            "The coordinator running this build stopped; re-queued (attempt {} of {}).",
                            b.attempts + 1,
                            crate::store::MAX_BUILD_ATTEMPTS
                        )
                    } else {
                        "The coordinator running this build stopped, and it has no attempts left; marked failed.".to_string()
                    };
                    tracing::warn!(build = %b.id, requeued, "interrupted build found");
                    self.append_system(&b.id, &text).await;
                    if requeued {
                        self.wake.notify_one();
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "recovering interrupted builds"),
        }
    }

    /// Re-queues what a stopped coordinator left running (this one before
    /// its restart at once; another one's when its lease lapses, checked
    /// every few seconds on every coordinator), and, when `work`, runs the
    /// queue until shutdown.
    pub async fn run(self: Arc<Self>, me: String, work: bool, mut shutdown: watch::Receiver<bool>) {
        self.recover(&me, true).await;
        let recovery = {
            let (me2, this, mut stop) = (me.clone(), self.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(LEASE_RENEW) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    this.recover(&me2, false).await;
                }
            })
        };
        let _recovery = AbortOnDrop(recovery);
        if !work {
            let _ = shutdown.wait_for(|s| *s).await;
            return;
        }
        let workers = self.config.builds.concurrency;
        if workers == 0 || self.builder.is_none() {
            let _ = shutdown.wait_for(|s| *s).await;
            return;
        }
        let slots = Arc::new(Semaphore::new(workers));
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
                _ = shutdown.wait_for(|s| *s) => break,
            };
            match self.store.claim_build(&me, LEASE.as_millis() as i64).await {
                Ok(Some(b)) => {
                    let this = self.clone();
                    let stop = shutdown.clone();
                    let worker = me.clone();
                    tasks.spawn(async move {
                        this.run_one(b, worker, stop).await;
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "reading the build queue"),
            }
            drop(permit);
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
            while tasks.try_join_next().is_some() {}
        }
        // Running builds stop with the coordinator; its next start re-queues
        // them, or another coordinator once their lease lapses.
        for t in self.running.lock().unwrap().values() {
            t.cancel();
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn run_one(self: &Arc<Self>, b: Build, worker: String, shutdown: watch::Receiver<bool>) {
        let cancel = CancellationToken::new();
        self.running
            .lock()
            .unwrap()
            .insert(b.id.clone(), cancel.clone());
        // A cancel requested through another coordinator arrives by the DB;
        // the lease is renewed on the way, and a build that is no longer
        // this coordinator's (its lease lapsed and another took it) stops
        // here without a word: the other run owns its outcome.
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let me = self.clone();
            let (id, token, lost) = (b.id.clone(), cancel.clone(), lost.clone());
            tokio::spawn(async move {
                let mut renewed = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(POLL).await;
                    if me.store.cancel_requested(&id).await.unwrap_or(false) {
                        token.cancel();
                        return;
                    }
                    if renewed.elapsed() >= LEASE_RENEW {
                        match me
                            .store
                            .renew_build_lease(&id, &worker, LEASE.as_millis() as i64)
                            .await
                        {
                            Ok(true) => renewed = tokio::time::Instant::now(),
                            Ok(false) => {
                                tracing::warn!(build = %id, "this build's lease was lost (another coordinator re-queued it); stopping here");
                                lost.store(true, std::sync::atomic::Ordering::SeqCst);
                                token.cancel();
                                return;
                            }
                            // The database is away: keep building, try again.
                            Err(e) => {
                                tracing::warn!(build = %id, error = %e, "renewing a build's lease")
                            }
                        }
                    }
                }
            })
        };
        let writer = LogWriter::start(
            self.store.clone(),
            self.logs.clone(),
            b.id.clone(),
            b.project_id.clone(),
        )
        .await;
        let result = self.build(&b, &writer, cancel.clone()).await;
        watcher.abort();
        self.running.lock().unwrap().remove(&b.id);
        if lost.load(std::sync::atomic::Ordering::SeqCst) {
            writer.finish().await;
            return;
        }
        let interrupted = *shutdown.borrow();
        let outcome = match result {
            Ok(published) => {
                writer.finish().await;
                if let Err(BuildFailure::Failed(msg)) = self.go_live(&b, &published).await {
                    self.append_system(&b.id, &format!("Build failed: {msg}"))
                        .await;
                    self.track_failure(&b, "publish_failed", Source::Deploy, &msg)
                        .await;
                    let _ = self
                        .store
                        .finish_build(&b.id, BuildStatus::Error, Some(&msg))
                        .await;
                }
                return;
            }
            Err(BuildFailure::Canceled) if interrupted => {
                // Left `building`: re-queued at the next start, or by another
                // coordinator when the lease lapses.
                let _ = writer.tx.send(logs::system(
                    "The coordinator is stopping; this build will be re-queued.",
                ));
                writer.finish().await;
                return;
            }
            Err(BuildFailure::Canceled) => Some((BuildStatus::Canceled, "canceled".to_string())),
            Err(BuildFailure::Failed(msg)) => Some((BuildStatus::Error, msg)),
        };
        if let Some((status, msg)) = &outcome {
            let _ = writer.tx.send(logs::system(match status {
                BuildStatus::Canceled => "Build canceled.".to_string(),
                _ => format!("Build failed: {msg}"),
            }));
        }
        writer.finish().await;
        if let Some((status, msg)) = outcome {
            if status == BuildStatus::Error {
                self.track_failure(&b, "build_failed", Source::Build, &msg)
                    .await;
            }
            if let Err(e) = self.store.finish_build(&b.id, status, Some(&msg)).await {
                tracing::error!(build = %b.id, error = %e, "recording build result");
            }
            tracing::info!(build = %b.id, status = status.as_str(), error = %msg, "build ended");
        }
    }

    /// A failed build or publish, filed for error tracking.
    async fn track_failure(&self, b: &Build, kind: &str, source: Source, msg: &str) {
        let event = crate::app::errors::coordinator_event(
            &b.project_id,
            Some(&b.id),
            source,
            kind,
            &format!("branch {}", b.git.branch),
            msg,
            serde_json::json!({
                "build": b.id,
                "branch": b.git.branch,
                "commit": b.git.commit_sha,
            }),
        );
        crate::app::errors::record_in(&self.store, event).await;
    }

    async fn build(
        &self,
        b: &Build,
        writer: &LogWriter,
        cancel: CancellationToken,
    ) -> Result<Published, BuildFailure> {
        let builder = self
            .builder
            .clone()
            .ok_or_else(|| BuildFailure::Failed(self.unavailable.clone().unwrap_or_default()))?;
        let project = self
            .store
            .project_by_id(&b.project_id)
            .await
            .map_err(BuildFailure::internal)?
            .ok_or_else(|| BuildFailure::Failed("the project was deleted".into()))?;
        let (settings, _) = self
            .store
            .git(&project.id)
            .await
            .map_err(BuildFailure::internal)?
            .ok_or_else(|| {
                BuildFailure::Failed("the project is no longer connected to git".into())
            })?;
        let policy = builder::git::UrlPolicy {
            allow_local: self.config.builds.allow_local_git,
            allowed_hosts: self.config.builds.allowed_git_hosts.clone(),
        };
        // Only git sees the credentials; its output is redacted of them.
        let repo_url =
            crate::app::git::clone_url(&self.store, &self.secrets, &project.id, &settings.url)
                .await
                .map_err(|e| BuildFailure::internal(e.message))?;
        let commit = match &b.git.commit_sha {
            Some(sha) => sha.clone(),
            None => {
                let resolved = tokio::select! {
                    r = builder::git::resolve_branch(&repo_url, &b.git.branch, &policy) => r,
                    _ = cancel.cancelled() => return Err(BuildFailure::Canceled),
                };
                let sha = resolved.map_err(|e| BuildFailure::Failed(e.to_string()))?;
                let _ = writer
                    .tx
                    .send(logs::system(format!("Branch {} is at {sha}", b.git.branch)));
                sha
            }
        };
        let (env, redact) = self.build_env(&project, b.target).await?;
        let root = self.config.builds.work_dir();
        let work_dir = root.join("jobs").join(&b.id);
        let cache_dir = cache_dir(&root, &project.id, b.target);
        prepare_dirs(&root, &work_dir, &cache_dir).map_err(BuildFailure::internal)?;
        let req = builder::BuildRequest {
            repo_url,
            commit,
            settings: builder::ProjectSettings {
                root_dir: settings.root_dir.clone(),
                install_command: settings.install_command.clone(),
                build_command: settings.build_command.clone(),
                output_dir: settings.output_dir.clone(),
            },
            env,
            redact,
            limits: self.config.builds.limits(),
            work_dir: work_dir.clone(),
            cache_dir,
        };
        let out = builder.run(req, writer.tx.clone(), cancel.clone()).await;
        let result = match out {
            Ok(out) => self.publish(b, &project, &settings, out, writer).await,
            Err(builder::BuildError::Canceled) => Err(BuildFailure::Canceled),
            Err(e) => Err(BuildFailure::Failed(e.to_string())),
        };
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&work_dir)).await;
        result
    }

    /// The project's variables for the build's environment; secret values
    /// are also returned to be redacted from the log.
    async fn build_env(
        &self,
        project: &Project,
        target: Target,
    ) -> Result<(BTreeMap<String, String>, Vec<String>), BuildFailure> {
        let rows = self
            .store
            .env_vars(&project.id)
            .await
            .map_err(BuildFailure::internal)?;
        crate::app::env::open_values(&self.secrets, rows, target.as_str())
            .map_err(BuildFailure::internal)
    }

    fn publisher(&self) -> Publisher<'_> {
        Publisher {
            store: &self.store,
            blobs: &self.blobs,
            hub: &self.hub,
            limits: &self.config.limits,
        }
    }

    /// Stores the bundle's blobs and manifest, checks its functions, and
    /// makes the deployment (moving aliases) in one transaction.
    async fn publish(
        &self,
        b: &Build,
        project: &Project,
        settings: &crate::store::GitSettings,
        out: builder::BuildOutput,
        writer: &LogWriter,
    ) -> Result<Published, BuildFailure> {
        let publisher = self.publisher();
        let manifest = out.bundle.manifest;
        publisher.validate(&manifest).map_err(|e| {
            BuildFailure::Failed(format!("the output cannot be deployed: {}", e.message))
        })?;
        let sources = Arc::new(out.bundle.sources);
        let wanted: Vec<BlobHash> = sources.keys().copied().collect();
        let missing = self
            .blobs
            .missing(wanted.iter().copied())
            .await
            .map_err(BuildFailure::internal)?;
        let mut sent = 0u64;
        for h in &missing {
            let src = sources.clone();
            let h2 = *h;
            let bytes = tokio::task::spawn_blocking(move || src[&h2].read())
                .await
                .map_err(BuildFailure::internal)?
                .map_err(BuildFailure::internal)?;
            sent += bytes.len() as u64;
            self.blobs
                .put_verified(h, bytes)
                .await
                .map_err(BuildFailure::internal)?;
        }
        publisher
            .check_functions(&manifest, Blobs::Local(&sources))
            .await
            .map_err(BuildFailure::from_app)?;
        let bundle_id = publisher
            .store_bundle(&manifest)
            .await
            .map_err(BuildFailure::from_app)?;
        let _ = writer.tx.send(logs::system(format!(
            "Stored {} new of {} blobs ({} bytes); bundle {}",
            missing.len(),
            wanted.len(),
            sent,
            bundle_id.short()
        )));
        let mut promote = b.target == Target::Production && settings.auto_promote;
        let commit_time = (out.commit.committed_at > 0).then_some(out.commit.committed_at);
        if promote {
            // A replayed push, or a build that finished late, must not put
            // an older commit in front of a newer one.
            let production = self
                .store
                .production_commit_time(&project.id)
                .await
                .map_err(BuildFailure::internal)?;
            if let (Some(prod), Some(this)) = (production, commit_time) {
                if prod > this {
                    promote = false;
                    let _ = writer.tx.send(logs::system(format!(
                        "Not promoted: commit {} was made before the one production serves; promote this deployment by hand if that is what you want",
                        out.commit.sha
                    )));
                }
            }
        }
        let author = match (
            out.commit.author_name.is_empty(),
            out.commit.author_email.is_empty(),
        ) {
            (false, false) => format!("{} <{}>", out.commit.author_name, out.commit.author_email),
            (false, true) => out.commit.author_name.clone(),
            _ => out.commit.author_email.clone(),
        };
        let mut urls = vec![self
            .config
            .site_url(&self.config.deployment_host(&project.name, &b.id))];
        urls.push(
            self.config
                .site_url(&self.config.branch_host(&project.name, &b.git.branch)),
        );
        if promote {
            urls.push(
                self.config
                    .site_url(&self.config.production_host(&project.name)),
            );
        }
        let _ = writer
            .tx
            .send(logs::system(format!("Ready: {}", urls.join(" "))));
        Ok(Published {
            bundle_id: bundle_id.to_hex(),
            commit_sha: out.commit.sha,
            commit_message: out.commit.message,
            commit_author: author,
            commit_time,
            promote,
        })
    }

    /// Makes the build's deployment live — after its whole log is stored,
    /// so a reader that sees `ready` has every line.
    async fn go_live(&self, b: &Build, p: &Published) -> Result<(), BuildFailure> {
        self.publisher()
            .ready_build(&ReadyBuild {
                build: b,
                bundle_id: &p.bundle_id,
                commit_sha: &p.commit_sha,
                commit_message: &p.commit_message,
                commit_author: &p.commit_author,
                commit_time: p.commit_time,
                promote: p.promote,
                branch_alias: true,
            })
            .await
            .map_err(BuildFailure::from_app)?;
        tracing::info!(deployment = %b.id, promote = p.promote, "build ready");
        Ok(())
    }
}

/// A built and stored bundle, about to become the build's deployment.
struct Published {
    bundle_id: String,
    commit_sha: String,
    commit_message: String,
    commit_author: String,
    commit_time: Option<i64>,
    promote: bool,
}

enum BuildFailure {
    Canceled,
    /// A message for the user (the log and the build's `error`).
    Failed(String),
}

impl BuildFailure {
    /// A check the user can act on keeps its message; a platform failure
    /// was logged where it happened.
    fn from_app(e: crate::app::AppError) -> BuildFailure {
        match e.kind {
            crate::app::ErrorKind::Internal => {
                BuildFailure::Failed(format!("internal error: {}", e.message))
            }
            _ => BuildFailure::Failed(e.message),
        }
    }

    fn internal(e: impl std::fmt::Display) -> BuildFailure {
        tracing::error!(error = %e, "build failed on the platform side");
        BuildFailure::Failed(format!("internal error: {e}"))
    }
}

/// A project's package cache for one target. Production and preview
/// builds never share one: a preview (any branch, any contributor) that
/// plants something in the cache must not reach the production build.
fn cache_dir(root: &std::path::Path, project: &str, target: Target) -> std::path::PathBuf {
    let kind = match target {
        Target::Production => "production",
        Target::Preview => "preview",
    };
    root.join("cache").join(project).join(kind)
}

/// The work root must be searchable by the unprivileged build user; the
/// per-build folder starts empty.
fn prepare_dirs(root: &Path, work: &Path, cache: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in [root.to_path_buf(), root.join("jobs"), root.join("cache")] {
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711))?;
    }
    if work.exists() {
        std::fs::remove_dir_all(work)?;
    }
    std::fs::create_dir_all(work)?;
    std::fs::create_dir_all(cache)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_and_preview_builds_never_share_a_cache() {
        let root = std::path::Path::new("/w");
        let prod = cache_dir(root, "p1", Target::Production);
        let preview = cache_dir(root, "p1", Target::Preview);
        assert_ne!(prod, preview);
        assert!(!prod.starts_with(&preview) && !preview.starts_with(&prod));
        assert_ne!(preview, cache_dir(root, "p2", Target::Preview));
    }
}
