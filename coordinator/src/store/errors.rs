//! Error issues and their events (see `crate::errors` for grouping).

use std::collections::BTreeMap;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_ms, Store, StoreError};
use crate::errors::{Event, Severity, Source, State};

/// Events kept per issue as samples (the newest).
pub const EVENTS_KEPT: i64 = 20;
/// Per-minute counts are kept this long (trends, alert windows).
pub const COUNTS_KEPT_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct IssueRow {
    pub id: String,
    pub project_id: String,
    pub fingerprint: String,
    pub source: Source,
    pub kind: String,
    pub title: String,
    pub culprit: String,
    pub severity: Severity,
    pub state: State,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
    pub resolved_at: Option<i64>,
    pub sample: serde_json::Value,
}

const ISSUE_COLS: &str = "id, project_id, fingerprint, source, kind, title, culprit, severity, \
                          state, first_seen, last_seen, count, resolved_at, sample";

fn issue(r: &AnyRow) -> Result<IssueRow, StoreError> {
    let bad = |what: &str, v: &str| {
        StoreError::Db(sqlx::Error::Decode(
            format!("error issue: unknown {what} {v:?}").into(),
        ))
    };
    let source: String = r.try_get("source")?;
    let severity: String = r.try_get("severity")?;
    let state: String = r.try_get("state")?;
    let sample: String = r.try_get("sample")?;
    Ok(IssueRow {
        id: r.try_get("id")?,
        project_id: r.try_get("project_id")?,
        fingerprint: r.try_get("fingerprint")?,
        source: Source::parse(&source).ok_or_else(|| bad("source", &source))?,
        kind: r.try_get("kind")?,
        title: r.try_get("title")?,
        culprit: r.try_get("culprit")?,
        severity: Severity::parse(&severity).ok_or_else(|| bad("severity", &severity))?,
        state: State::parse(&state).ok_or_else(|| bad("state", &state))?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        count: r.try_get("count")?,
        resolved_at: r.try_get("resolved_at")?,
        sample: serde_json::from_str(&sample).unwrap_or(serde_json::Value::Null),
    })
}

/// What recording an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub issue_id: String,
    /// The issue is new.
    pub new: bool,
    /// The issue was resolved and is open again.
    pub regressed: bool,
}

/// An event as kept.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub at: i64,
    pub deployment_id: Option<String>,
    pub count: i64,
    pub detail: serde_json::Value,
}

/// A list's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Unresolved and regressed.
    Open,
    Only(State),
    All,
}

impl Store {
    /// Files an event under its issue (made if new): counts, last seen,
    /// the sample, the minute's count, the deployment, the event itself;
    /// a resolved issue becomes regressed. `new_id` names the issue if it
    /// is new.
    pub async fn record_error(&self, new_id: &str, e: &Event) -> Result<Recorded, StoreError> {
        let fingerprint = e.fingerprint();
        let sample = serde_json::json!({
            "at": e.at,
            "deployment_id": e.deployment_id,
            "message": protocol::errors::bounded(&e.message, 4096),
            "place": e.place,
            "frames": e.frames,
            "detail": e.detail,
        })
        .to_string();
        let mut tx = self.pool.begin().await?;
        // Another coordinator may file the same new issue at the same
        // moment: the unique key decides, and both then update one row.
        let inserted = sqlx::query(
            "INSERT INTO error_issues (id, project_id, fingerprint, source, kind, title, culprit, \
             severity, state, first_seen, last_seen, count, sample) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'unresolved', $9, $9, 0, $10) \
             ON CONFLICT (project_id, fingerprint) DO NOTHING",
        )
        .bind(new_id)
        .bind(&e.project_id)
        .bind(&fingerprint)
        .bind(e.source.as_str())
        .bind(&e.kind)
        .bind(e.title())
        .bind(e.culprit())
        .bind(crate::errors::default_severity(e.source, &e.kind).as_str())
        .bind(e.first_at.min(e.at))
        .bind(&sample)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row = sqlx::query(
            "SELECT id, state FROM error_issues WHERE project_id = $1 AND fingerprint = $2",
        )
        .bind(&e.project_id)
        .bind(&fingerprint)
        .fetch_one(&mut *tx)
        .await?;
        let id: String = row.try_get("id")?;
        let state: String = row.try_get("state")?;
        let was = State::parse(&state).unwrap_or(State::Unresolved);
        let now_state = was.after_event();
        let count = i64::from(e.count.max(1));
        sqlx::query(
            "UPDATE error_issues SET count = count + $1, state = $2, sample = $3, \
             last_seen = CASE WHEN last_seen > $4 THEN last_seen ELSE $4 END, \
             first_seen = CASE WHEN first_seen < $5 THEN first_seen ELSE $5 END \
             WHERE id = $6",
        )
        .bind(count)
        .bind(now_state.as_str())
        .bind(&sample)
        .bind(e.at)
        .bind(e.first_at.min(e.at))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO error_counts (issue_id, project_id, source, minute, count) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (issue_id, minute) DO UPDATE SET count = error_counts.count + $5",
        )
        .bind(&id)
        .bind(&e.project_id)
        .bind(e.source.as_str())
        .bind(e.at.div_euclid(60_000))
        .bind(count)
        .execute(&mut *tx)
        .await?;
        if let Some(d) = &e.deployment_id {
            sqlx::query(
                "INSERT INTO error_deployments (issue_id, deployment_id, count, last_seen) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (issue_id, deployment_id) DO UPDATE SET \
                 count = error_deployments.count + $3, last_seen = $4",
            )
            .bind(&id)
            .bind(d)
            .bind(count)
            .bind(e.at)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO error_events (issue_id, project_id, at, deployment_id, count, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&e.project_id)
        .bind(e.at)
        .bind(&e.deployment_id)
        .bind(count)
        .bind(&sample)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM error_events WHERE issue_id = $1 AND id <= \
             (SELECT id FROM error_events WHERE issue_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(&id)
        .bind(EVENTS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Recorded {
            issue_id: id,
            new: inserted,
            regressed: was == State::Resolved,
        })
    }

    /// A project's issues, the most recently seen first.
    pub async fn error_issues(
        &self,
        project_id: &str,
        filter: StateFilter,
        limit: i64,
    ) -> Result<Vec<IssueRow>, StoreError> {
        let (cond, a, b) = match filter {
            StateFilter::Open => ("AND state IN ($2, $3)", "unresolved", "regressed"),
            StateFilter::Only(s) => ("AND state IN ($2, $3)", s.as_str(), s.as_str()),
            // No state is "-": every issue.
            StateFilter::All => ("AND state NOT IN ($2, $3)", "-", "-"),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLS} FROM error_issues WHERE project_id = $1 {cond} \
             ORDER BY last_seen DESC, id LIMIT $4"
        )))
        .bind(project_id)
        .bind(a)
        .bind(b)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(issue).collect()
    }

    pub async fn error_issue(&self, id: &str) -> Result<Option<IssueRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ISSUE_COLS} FROM error_issues WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(issue).transpose()
    }

    /// Events per hour (Unix hours) since `from_ms`, for each of `ids`.
    pub async fn error_trends(
        &self,
        project_id: &str,
        from_ms: i64,
    ) -> Result<BTreeMap<String, BTreeMap<i64, i64>>, StoreError> {
        let rows = sqlx::query(
            "SELECT issue_id, minute, count FROM error_counts \
             WHERE project_id = $1 AND minute >= $2",
        )
        .bind(project_id)
        .bind(from_ms.div_euclid(60_000))
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
        for r in rows {
            let minute: i64 = r.try_get("minute")?;
            *out.entry(r.try_get("issue_id")?)
                .or_default()
                .entry(minute.div_euclid(60))
                .or_default() += r.try_get::<i64, _>("count")?;
        }
        Ok(out)
    }

    /// The newest events of an issue.
    pub async fn error_events(&self, issue_id: &str) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, deployment_id, count, detail FROM error_events WHERE issue_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(issue_id)
        .bind(EVENTS_KEPT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let detail: String = r.try_get("detail")?;
                Ok(EventRow {
                    at: r.try_get("at")?,
                    deployment_id: r.try_get("deployment_id")?,
                    count: r.try_get("count")?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    /// The deployments an issue was seen in: `(deployment, count, last seen)`.
    pub async fn error_deployments(
        &self,
        issue_id: &str,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT deployment_id, count, last_seen FROM error_deployments WHERE issue_id = $1 \
             ORDER BY last_seen DESC LIMIT 50",
        )
        .bind(issue_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("deployment_id")?,
                    r.try_get("count")?,
                    r.try_get("last_seen")?,
                ))
            })
            .collect()
    }

    /// Sets an issue's state and/or severity.
    pub async fn update_error_issue(
        &self,
        id: &str,
        state: Option<State>,
        severity: Option<Severity>,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE error_issues SET \
             state = COALESCE($1, state), severity = COALESCE($2, severity), \
             resolved_at = CASE WHEN $1 = 'resolved' THEN $3 \
                                WHEN $1 IS NULL THEN resolved_at ELSE NULL END \
             WHERE id = $4",
        )
        .bind(state.map(State::as_str))
        .bind(severity.map(Severity::as_str))
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Events of `source` (all sources for `None`) in a project since
    /// `from_ms` (minute resolution).
    pub async fn error_count_since(
        &self,
        project_id: &str,
        source: Option<Source>,
        from_ms: i64,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM error_counts \
             WHERE project_id = $1 AND minute >= $2 AND ($3 = '' OR source = $3)",
        )
        .bind(project_id)
        .bind(from_ms.div_euclid(60_000))
        .bind(source.map(Source::as_str).unwrap_or(""))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    /// Drops per-minute counts older than [`COUNTS_KEPT_MS`].
    pub async fn expire_error_counts(&self) -> Result<u64, StoreError> {
        let before = (now_ms() - COUNTS_KEPT_MS).div_euclid(60_000);
        let r = sqlx::query("DELETE FROM error_counts WHERE minute < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
