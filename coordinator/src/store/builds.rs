//! Git connections, the durable build queue, build logs and branch aliases.
//!
//! A build is claimed with a conditional `UPDATE … WHERE status = 'queued'`,
//! so two workers (or two coordinators on one Postgres) never run the same
//! build; a finished build becomes its deployment in one transaction.

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{
    now_ms, Build, BuildLogLine, BuildStatus, DeploymentStatus, EdgeSync, FromRow, GitMeta,
    GitSettings, Store, StoreError,
};

const BUILD_COLS: &str = "id, project_id, status, target, branch, commit_sha, commit_message, \
     commit_author, trigger, attempts, error, created_at, started_at, finished_at";

/// A build that ran this many times and was interrupted each time fails
/// instead of being re-queued again.
pub const MAX_BUILD_ATTEMPTS: i64 = 2;

fn decode<T: FromStr<Err = String>>(s: &str) -> Result<T, StoreError> {
    T::from_str(s).map_err(|e| sqlx::Error::Decode(e.into()).into())
}

impl FromRow for Build {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let status: String = r.try_get("status")?;
        let target: String = r.try_get("target")?;
        let trigger: String = r.try_get("trigger")?;
        Ok(Build {
            id: r.try_get("id")?,
            project_id: r.try_get("project_id")?,
            status: decode(&status)?,
            target: decode(&target)?,
            git: GitMeta {
                branch: r.try_get("branch")?,
                commit_sha: r.try_get("commit_sha")?,
                commit_message: r.try_get("commit_message")?,
                commit_author: r.try_get("commit_author")?,
            },
            trigger: decode(&trigger)?,
            attempts: r.try_get("attempts")?,
            error: r.try_get("error")?,
            created_at: r.try_get("created_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
        })
    }
}

impl GitMeta {
    /// The deployment columns, or `None` for an uploaded deployment.
    pub(super) fn from_row_opt(r: &AnyRow) -> Result<Option<GitMeta>, StoreError> {
        let branch: Option<String> = r.try_get("branch")?;
        Ok(match branch {
            None => None,
            Some(branch) => Some(GitMeta {
                branch,
                commit_sha: r.try_get("commit_sha")?,
                commit_message: r.try_get("commit_message")?,
                commit_author: r.try_get("commit_author")?,
            }),
        })
    }
}

/// What a finished build turns into.
pub struct ReadyBuild<'a> {
    pub build: &'a Build,
    pub bundle_id: &'a str,
    pub commit_sha: &'a str,
    pub commit_message: &'a str,
    pub commit_author: &'a str,
    /// Committer time of the commit, Unix seconds.
    pub commit_time: Option<i64>,
    /// Point the production alias at it, unless production already serves
    /// a newer commit.
    pub promote: bool,
    /// Point the branch's preview alias at it.
    pub branch_alias: bool,
}

impl Store {
    // ---- git connection ---------------------------------------------------

    /// Connects (or with `None`, disconnects) a repository.
    pub async fn set_git(
        &self,
        project_id: &str,
        git: Option<&GitSettings>,
        webhook_secret_enc: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE projects SET git_url = $1, git_branch = $2, root_dir = $3, \
             install_command = $4, build_command = $5, output_dir = $6, auto_promote = $7, \
             webhook_secret_enc = $8 WHERE id = $9",
        )
        .bind(git.map(|g| g.url.clone()))
        .bind(git.map(|g| g.branch.clone()))
        .bind(git.and_then(|g| g.root_dir.clone()))
        .bind(git.and_then(|g| g.install_command.clone()))
        .bind(git.and_then(|g| g.build_command.clone()))
        .bind(git.and_then(|g| g.output_dir.clone()))
        .bind(git.is_none_or(|g| g.auto_promote) as i64)
        .bind(webhook_secret_enc.map(|s| s.to_vec()))
        .bind(project_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Remembers a webhook delivery id. `false`: it was seen before (a
    /// replay, or the provider's own redelivery).
    pub async fn record_delivery(
        &self,
        project_id: &str,
        delivery: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO webhook_deliveries (project_id, delivery_id, received_at) \
             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(project_id)
        .bind(delivery)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Forgets delivery ids received before `before_ms`.
    pub async fn expire_deliveries(&self, before_ms: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
                .bind(before_ms)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Committer time (Unix seconds) of the project's production
    /// deployment, when it is known.
    pub async fn production_commit_time(
        &self,
        project_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT d.commit_time AS t FROM projects p JOIN deployments d \
             ON d.id = p.production_deployment WHERE p.id = $1",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("t")?,
            None => None,
        })
    }

    /// Sets (or with `None` clears) the sealed credentials of the project's
    /// repository URL.
    pub async fn set_git_credentials(
        &self,
        project_id: &str,
        sealed: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE projects SET git_credentials_enc = $1 WHERE id = $2")
            .bind(sealed.map(|s| s.to_vec()))
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The sealed credentials of the project's repository URL, if any.
    pub async fn git_credentials(&self, project_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query("SELECT git_credentials_enc FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("git_credentials_enc")?,
            None => None,
        })
    }

    /// Projects whose stored repository URL has a userinfo part (from
    /// before credentials were kept apart): (id, url).
    pub async fn git_urls_with_userinfo(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, git_url FROM projects WHERE git_url LIKE '%@%'")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("git_url")?)))
            .collect()
    }

    /// Replaces a project's repository URL by `url` and its credentials by
    /// `sealed`, in one statement.
    pub async fn move_git_credentials(
        &self,
        project_id: &str,
        url: &str,
        sealed: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE projects SET git_url = $1, git_credentials_enc = $2 WHERE id = $3")
            .bind(url)
            .bind(sealed.to_vec())
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The project's repository settings and its encrypted webhook secret.
    pub async fn git(
        &self,
        project_id: &str,
    ) -> Result<Option<(GitSettings, Option<Vec<u8>>)>, StoreError> {
        let row = sqlx::query(
            "SELECT git_url, git_branch, root_dir, install_command, build_command, output_dir, \
             auto_promote, webhook_secret_enc FROM projects WHERE id = $1",
        )
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let url: Option<String> = r.try_get("git_url")?;
        let Some(url) = url else { return Ok(None) };
        let auto: i64 = r.try_get("auto_promote")?;
        Ok(Some((
            GitSettings {
                url,
                branch: r.try_get("git_branch")?,
                root_dir: r.try_get("root_dir")?,
                install_command: r.try_get("install_command")?,
                build_command: r.try_get("build_command")?,
                output_dir: r.try_get("output_dir")?,
                auto_promote: auto != 0,
            },
            r.try_get("webhook_secret_enc")?,
        )))
    }

    // ---- the queue ----------------------------------------------------------

    pub async fn enqueue_build(&self, b: &Build) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO builds (id, project_id, status, target, branch, commit_sha, \
             commit_message, commit_author, trigger, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&b.id)
        .bind(&b.project_id)
        .bind(BuildStatus::Queued.as_str())
        .bind(b.target.as_str())
        .bind(&b.git.branch)
        .bind(b.git.commit_sha.clone())
        .bind(b.git.commit_message.clone())
        .bind(b.git.commit_author.clone())
        .bind(b.trigger.as_str())
        .bind(b.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn build(&self, id: &str) -> Result<Option<Build>, StoreError> {
        self.by_id("builds", BUILD_COLS, id).await
    }

    /// A project's builds, newest first; `before` is the (created_at, id) of
    /// the last item seen.
    pub async fn list_builds(
        &self,
        project_id: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<Build>, StoreError> {
        self.newest_first("builds", BUILD_COLS, project_id, before, limit)
            .await
    }

    /// Builds waiting and building, over every project: (queued, building).
    /// A count over the status index, for the metrics.
    pub async fn build_queue_depth(&self) -> Result<(i64, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM builds WHERE status IN ($1, $2) GROUP BY status",
        )
        .bind(BuildStatus::Queued.as_str())
        .bind(BuildStatus::Building.as_str())
        .fetch_all(&self.pool)
        .await?;
        let (mut queued, mut building) = (0, 0);
        for r in rows {
            let status: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            if status == BuildStatus::Queued.as_str() {
                queued = n;
            } else {
                building = n;
            }
        }
        Ok((queued, building))
    }

    /// Takes the oldest queued build of a project with nothing building,
    /// if any, and marks it building by `worker` (a coordinator's id) for
    /// `lease_ms`, which the worker renews while it runs.
    pub async fn claim_build(
        &self,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Option<Build>, StoreError> {
        loop {
            // One build per project at a time: they share the project's
            // package cache, and the newer one would be promoted last anyway.
            let row = sqlx::query(
                "SELECT id FROM builds WHERE status = $1 AND project_id NOT IN \
                 (SELECT project_id FROM builds WHERE status = $2) \
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(BuildStatus::Queued.as_str())
            .bind(BuildStatus::Building.as_str())
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let id: String = row.try_get("id")?;
            let now = now_ms();
            let claimed = sqlx::query(
                "UPDATE builds SET status = $1, started_at = $2, attempts = attempts + 1, \
                 worker = $3, lease_until = $4 WHERE id = $5 AND status = $6",
            )
            .bind(BuildStatus::Building.as_str())
            .bind(now)
            .bind(worker)
            .bind(now + lease_ms)
            .bind(&id)
            .bind(BuildStatus::Queued.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
            if claimed == 1 {
                return self.build(&id).await;
            }
            // Someone else took it (or it was canceled): look again.
        }
    }

    /// Extends `worker`'s lease on a running build: false when it is no
    /// longer its (re-queued after the lease lapsed, or ended).
    pub async fn renew_build_lease(
        &self,
        id: &str,
        worker: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE builds SET lease_until = $1 WHERE id = $2 AND worker = $3 AND status = $4",
        )
        .bind(now_ms() + lease_ms)
        .bind(id)
        .bind(worker)
        .bind(BuildStatus::Building.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records what the build resolved "latest of the branch" to.
    pub async fn set_build_commit(&self, id: &str, git: &GitMeta) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE builds SET commit_sha = $1, commit_message = $2, commit_author = $3 WHERE id = $4",
        )
        .bind(git.commit_sha.clone())
        .bind(git.commit_message.clone())
        .bind(git.commit_author.clone())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a build that produced nothing (`error` or `canceled`).
    pub async fn finish_build(
        &self,
        id: &str,
        status: BuildStatus,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE builds SET status = $1, error = $2, finished_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .bind(BuildStatus::Building.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Turns a built bundle into a ready deployment with the build's id,
    /// moves aliases and bumps the config version, all in one transaction.
    pub async fn finish_build_ready(&self, r: &ReadyBuild<'_>) -> Result<i64, StoreError> {
        let b = r.build;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO deployments (id, project_id, bundle_id, status, target, created_at, \
             ready_at, branch, commit_sha, commit_message, commit_author, commit_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&b.id)
        .bind(&b.project_id)
        .bind(r.bundle_id)
        .bind(DeploymentStatus::Ready.as_str())
        .bind(b.target.as_str())
        .bind(now)
        .bind(now)
        .bind(&b.git.branch)
        .bind(r.commit_sha)
        .bind(r.commit_message)
        .bind(r.commit_author)
        .bind(r.commit_time)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE builds SET status = $1, finished_at = $2, commit_sha = $3, \
             commit_message = $4, commit_author = $5 WHERE id = $6",
        )
        .bind(BuildStatus::Ready.as_str())
        .bind(now)
        .bind(r.commit_sha)
        .bind(r.commit_message)
        .bind(r.commit_author)
        .bind(&b.id)
        .execute(&mut *tx)
        .await?;
        if r.promote {
            // Checked in the same statement as the move, so two builds
            // finishing at once cannot put the older one in front.
            sqlx::query(
                "UPDATE projects SET production_deployment = $1 WHERE id = $2 AND NOT EXISTS \
                 (SELECT 1 FROM deployments d WHERE d.id = projects.production_deployment \
                  AND d.commit_time IS NOT NULL AND d.commit_time > $3)",
            )
            .bind(&b.id)
            .bind(&b.project_id)
            .bind(r.commit_time.unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE deployments SET promoted_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&b.id)
                .execute(&mut *tx)
                .await?;
        }
        if r.branch_alias {
            sqlx::query(
                "INSERT INTO branch_aliases (project_id, branch, deployment_id, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, branch) \
                 DO UPDATE SET deployment_id = excluded.deployment_id, updated_at = excluded.updated_at",
            )
            .bind(&b.project_id)
            .bind(&b.git.branch)
            .bind(&b.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let mut syncs = vec![EdgeSync::Deployment(b.id.clone())];
        if r.promote {
            syncs.push(EdgeSync::Production(b.project_id.clone()));
        }
        if r.branch_alias {
            syncs.push(EdgeSync::Branch(b.project_id.clone(), b.git.branch.clone()));
        }
        let v = self.sync_edges(&mut tx, &syncs).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Cancels a queued build at once; asks a running one to stop. Returns
    /// the build as it is now.
    pub async fn request_cancel(&self, id: &str) -> Result<Option<Build>, StoreError> {
        sqlx::query(
            "UPDATE builds SET status = $1, finished_at = $2, error = $3 WHERE id = $4 AND status = $5",
        )
        .bind(BuildStatus::Canceled.as_str())
        .bind(now_ms())
        .bind("canceled before it started")
        .bind(id)
        .bind(BuildStatus::Queued.as_str())
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE builds SET cancel_requested = 1 WHERE id = $1 AND status = $2")
            .bind(id)
            .bind(BuildStatus::Building.as_str())
            .execute(&self.pool)
            .await?;
        self.build(id).await
    }

    pub async fn cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT cancel_requested FROM builds WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>("cancel_requested")? != 0,
            None => false,
        })
    }

    /// Builds whose coordinator stopped: running with a lapsed lease (or
    /// none: rows from before leases), and with `mine` also those this
    /// coordinator (`me`) ran before it restarted. Each is queued again
    /// while it has attempts left, else failed; returned with which.
    pub async fn recover_interrupted_builds(
        &self,
        me: &str,
        mine: bool,
    ) -> Result<Vec<(Build, bool)>, StoreError> {
        let now = now_ms();
        // `me` never matches when `mine` is false (ids are never empty).
        let me = if mine { me } else { "" };
        const LAPSED: &str =
            "status = $1 AND (lease_until IS NULL OR lease_until < $2 OR worker = $3)";
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {BUILD_COLS} FROM builds WHERE {LAPSED}"
        )))
        .bind(BuildStatus::Building.as_str())
        .bind(now)
        .bind(me)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let b = Build::from_row(r)?;
            let requeue = b.attempts < MAX_BUILD_ATTEMPTS;
            // The same condition again: of coordinators finding the same
            // build, one moves it.
            let moved = if requeue {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE builds SET status = $4, started_at = NULL, worker = NULL, \
                     lease_until = NULL WHERE id = $5 AND {LAPSED}"
                )))
                .bind(BuildStatus::Building.as_str())
                .bind(now)
                .bind(me)
                .bind(BuildStatus::Queued.as_str())
                .bind(&b.id)
                .execute(&self.pool)
                .await?
            } else {
                sqlx::query(AssertSqlSafe(format!(
                    "UPDATE builds SET status = $4, error = $5, finished_at = $6, worker = NULL, \
                     lease_until = NULL WHERE id = $7 AND {LAPSED}"
                )))
                .bind(BuildStatus::Building.as_str())
                .bind(now)
                .bind(me)
                .bind(BuildStatus::Error.as_str())
                .bind("interrupted by coordinator restarts too many times")
                .bind(now)
                .bind(&b.id)
                .execute(&self.pool)
                .await?
            }
            .rows_affected();
            if moved == 1 {
                out.push((b, requeue));
            }
        }
        Ok(out)
    }

    // ---- logs ---------------------------------------------------------------

    /// Appends lines; `seq` must continue the build's sequence.
    pub async fn append_build_logs(
        &self,
        build_id: &str,
        lines: &[BuildLogLine],
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for l in lines {
            sqlx::query(
                "INSERT INTO build_logs (build_id, seq, ts, stream, line) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(build_id)
            .bind(l.seq)
            .bind(l.ts)
            .bind(&l.stream)
            .bind(&l.line)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The next sequence number for a build's log.
    pub async fn next_build_log_seq(&self, build_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM build_logs WHERE build_id = $1",
        )
        .bind(build_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("next")?)
    }

    pub async fn build_logs(
        &self,
        build_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<BuildLogLine>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, ts, stream, line FROM build_logs WHERE build_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(build_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BuildLogLine {
                    seq: r.try_get("seq")?,
                    ts: r.try_get("ts")?,
                    stream: r.try_get("stream")?,
                    line: r.try_get("line")?,
                })
            })
            .collect()
    }

    // ---- branch aliases -------------------------------------------------------

    /// Every branch alias: (project name, branch, deployment id).
    pub async fn branch_aliases(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.name AS project, a.branch AS branch, a.deployment_id AS deployment \
             FROM branch_aliases a JOIN projects p ON p.id = a.project_id ORDER BY p.name, a.branch",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("project")?,
                    r.try_get("branch")?,
                    r.try_get("deployment")?,
                ))
            })
            .collect()
    }

    /// Drops a deleted branch's preview alias; bumps the config version if
    /// there was one.
    pub async fn delete_branch_alias(
        &self,
        project_id: &str,
        branch: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM branch_aliases WHERE project_id = $1 AND branch = $2")
            .bind(project_id)
            .bind(branch)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            self.sync_edges(
                &mut tx,
                &[EdgeSync::Branch(project_id.to_string(), branch.to_string())],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
