//! Alert channels, rules, the state of each watched series, deliveries
//! (the outbox and its history). Leases are in `coordinators.rs`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_ms, Store, StoreError};

#[derive(Debug, Clone)]
pub struct ChannelRow {
    pub id: String,
    pub team_id: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    pub name: String,
    pub target: String,
    /// The webhook's signing secret, sealed with the instance key.
    pub secret_enc: Option<Vec<u8>>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct RuleRow {
    pub id: String,
    pub team_id: Option<String>,
    pub project_id: Option<String>,
    pub kind: String,
    pub threshold: f64,
    pub window_ms: i64,
    pub for_ms: i64,
    pub channels: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct StateRow {
    pub rule_id: String,
    pub series: String,
    pub state: String,
    pub value: f64,
    pub active_since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub notified_at: Option<i64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub id: String,
    pub channel_id: String,
    pub rule_id: Option<String>,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_at: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

const CHANNEL_COLS: &str = "id, team_id, kind, name, target, secret_enc, created_at";
const RULE_COLS: &str =
    "id, team_id, project_id, kind, threshold, window_ms, for_ms, channels, enabled, created_at";
const STATE_COLS: &str = "rule_id, series, state, value, active_since, fired_at, resolved_at, \
                          notified_at, updated_at";
const DELIVERY_COLS: &str = "id, channel_id, rule_id, payload, status, attempts, next_at, \
                             last_status, last_error, created_at, sent_at";

fn channel(r: &AnyRow) -> Result<ChannelRow, StoreError> {
    Ok(ChannelRow {
        id: r.try_get("id")?,
        team_id: r.try_get("team_id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        target: r.try_get("target")?,
        secret_enc: r.try_get("secret_enc")?,
        created_at: r.try_get("created_at")?,
    })
}

fn rule(r: &AnyRow) -> Result<RuleRow, StoreError> {
    let channels: String = r.try_get("channels")?;
    Ok(RuleRow {
        id: r.try_get("id")?,
        team_id: r.try_get("team_id")?,
        project_id: r.try_get("project_id")?,
        kind: r.try_get("kind")?,
        threshold: r.try_get("threshold")?,
        window_ms: r.try_get("window_ms")?,
        for_ms: r.try_get("for_ms")?,
        channels: serde_json::from_str(&channels).unwrap_or_default(),
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        created_at: r.try_get("created_at")?,
    })
}

fn state(r: &AnyRow) -> Result<StateRow, StoreError> {
    Ok(StateRow {
        rule_id: r.try_get("rule_id")?,
        series: r.try_get("series")?,
        state: r.try_get("state")?,
        value: r.try_get("value")?,
        active_since: r.try_get("active_since")?,
        fired_at: r.try_get("fired_at")?,
        resolved_at: r.try_get("resolved_at")?,
        notified_at: r.try_get("notified_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn delivery(r: &AnyRow) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: r.try_get("id")?,
        channel_id: r.try_get("channel_id")?,
        rule_id: r.try_get("rule_id")?,
        payload: r.try_get("payload")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_at: r.try_get("next_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        sent_at: r.try_get("sent_at")?,
    })
}

/// Channels a team may have, rules a project may have.
pub const MAX_CHANNELS_PER_TEAM: i64 = 50;
pub const MAX_RULES_PER_SCOPE: i64 = 100;
/// Delivery history kept per channel.
pub const DELIVERIES_KEPT: i64 = 200;

impl Store {
    pub async fn insert_channel(&self, c: &ChannelRow) -> Result<(), StoreError> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM alert_channels WHERE team_id = $1")
            .bind(&c.team_id)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        if n >= MAX_CHANNELS_PER_TEAM {
            return Err(StoreError::Conflict(format!(
                "the team's {MAX_CHANNELS_PER_TEAM}th channel"
            )));
        }
        sqlx::query(
            "INSERT INTO alert_channels (id, team_id, kind, name, target, secret_enc, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&c.id)
        .bind(&c.team_id)
        .bind(&c.kind)
        .bind(&c.name)
        .bind(&c.target)
        .bind(&c.secret_enc)
        .bind(c.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn channel(&self, id: &str) -> Result<Option<ChannelRow>, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLS} FROM alert_channels WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(channel).transpose()
    }

    pub async fn team_channels(&self, team_id: &str) -> Result<Vec<ChannelRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CHANNEL_COLS} FROM alert_channels WHERE team_id = $1 ORDER BY created_at, id"
        )))
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel).collect()
    }

    pub async fn delete_channel(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM alert_channels WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn insert_rule(&self, r: &RuleRow) -> Result<(), StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM alert_rules WHERE COALESCE(project_id, '') = $1",
        )
        .bind(r.project_id.as_deref().unwrap_or(""))
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        if n >= MAX_RULES_PER_SCOPE {
            return Err(StoreError::Conflict(format!(
                "the {MAX_RULES_PER_SCOPE}th alert rule here"
            )));
        }
        sqlx::query(
            "INSERT INTO alert_rules (id, team_id, project_id, kind, threshold, window_ms, for_ms, \
             channels, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&r.id)
        .bind(&r.team_id)
        .bind(&r.project_id)
        .bind(&r.kind)
        .bind(r.threshold)
        .bind(r.window_ms)
        .bind(r.for_ms)
        .bind(serde_json::to_string(&r.channels).unwrap_or_else(|_| "[]".into()))
        .bind(i64::from(r.enabled))
        .bind(r.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn alert_rule(&self, id: &str) -> Result<Option<RuleRow>, StoreError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLS} FROM alert_rules WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(rule).transpose()
    }

    /// A project's rules, or (`None`) the instance's.
    pub async fn alert_rules(&self, project_id: Option<&str>) -> Result<Vec<RuleRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLS} FROM alert_rules WHERE COALESCE(project_id, '') = $1 \
             ORDER BY created_at, id"
        )))
        .bind(project_id.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule).collect()
    }

    /// Every enabled rule, for the evaluator.
    pub async fn enabled_alert_rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_COLS} FROM alert_rules WHERE enabled = 1 ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule).collect()
    }

    pub async fn delete_alert_rule(&self, id: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM alert_rules WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn alert_states(&self, rule_id: &str) -> Result<Vec<StateRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {STATE_COLS} FROM alert_states WHERE rule_id = $1 ORDER BY series"
        )))
        .bind(rule_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(state).collect()
    }

    pub async fn put_alert_state(&self, s: &StateRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO alert_states (rule_id, series, state, value, active_since, fired_at, \
             resolved_at, notified_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (rule_id, series) DO UPDATE SET state = $3, value = $4, \
             active_since = $5, fired_at = $6, resolved_at = $7, notified_at = $8, updated_at = $9",
        )
        .bind(&s.rule_id)
        .bind(&s.series)
        .bind(&s.state)
        .bind(s.value)
        .bind(s.active_since)
        .bind(s.fired_at)
        .bind(s.resolved_at)
        .bind(s.notified_at)
        .bind(s.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_alert_state(&self, rule_id: &str, series: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM alert_states WHERE rule_id = $1 AND series = $2")
            .bind(rule_id)
            .bind(series)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Queues a notification of `rule_id` (none: a test message) to a
    /// channel at `next_at`, unless one of that rule is already waiting
    /// there (it will carry the group's state when it goes). Returns
    /// whether a row was added.
    pub async fn queue_delivery(
        &self,
        id: &str,
        channel_id: &str,
        rule_id: Option<&str>,
        payload: &str,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        if let Some(rule) = rule_id {
            let waiting: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM alert_deliveries \
                 WHERE channel_id = $1 AND rule_id = $2 AND status = 'pending' AND attempts = 0",
            )
            .bind(channel_id)
            .bind(rule)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
            if waiting > 0 {
                return Ok(false);
            }
        }
        sqlx::query(
            "INSERT INTO alert_deliveries (id, channel_id, rule_id, payload, status, attempts, \
             next_at, created_at) VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6)",
        )
        .bind(id)
        .bind(channel_id)
        .bind(rule_id)
        .bind(payload)
        .bind(next_at)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        // History is bounded per channel.
        sqlx::query(
            "DELETE FROM alert_deliveries WHERE channel_id = $1 AND status <> 'pending' AND \
             created_at <= (SELECT created_at FROM alert_deliveries WHERE channel_id = $1 \
             ORDER BY created_at DESC LIMIT 1 OFFSET $2)",
        )
        .bind(channel_id)
        .bind(DELIVERIES_KEPT)
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// When a notification of `rule_id` last went to a channel.
    pub async fn last_delivery(
        &self,
        channel_id: &str,
        rule_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let r = sqlx::query(
            "SELECT MAX(sent_at) AS at FROM alert_deliveries WHERE channel_id = $1 AND rule_id = $2",
        )
        .bind(channel_id)
        .bind(rule_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get("at")?)
    }

    /// Takes up to `limit` due deliveries for `lease_ms` (so that another
    /// coordinator does not send them too).
    pub async fn claim_deliveries(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let now = now_ms();
        let due = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLS} FROM alert_deliveries WHERE status = 'pending' \
             AND next_at <= $1 AND lease_until < $1 ORDER BY next_at LIMIT $2"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for r in &due {
            let d = delivery(r)?;
            let got = sqlx::query(
                "UPDATE alert_deliveries SET lease_until = $1 WHERE id = $2 AND lease_until < $3",
            )
            .bind(now + lease_ms)
            .bind(&d.id)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if got == 1 {
                claimed.push(d);
            }
        }
        Ok(claimed)
    }

    /// Records an attempt: sent, to be retried at `retry_at`, or failed
    /// for good (`retry_at` `None`).
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_delivery(
        &self,
        id: &str,
        sent: bool,
        retry_at: Option<i64>,
        payload: &str,
        last_status: Option<i64>,
        last_error: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let status = match (sent, retry_at) {
            (true, _) => "sent",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        sqlx::query(
            "UPDATE alert_deliveries SET status = $1, attempts = attempts + 1, next_at = $2, \
             payload = $3, last_status = $4, last_error = $5, lease_until = 0, \
             sent_at = CASE WHEN $1 = 'sent' THEN $6 ELSE sent_at END WHERE id = $7",
        )
        .bind(status)
        .bind(retry_at.unwrap_or(now))
        .bind(payload)
        .bind(last_status)
        .bind(last_error)
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A channel's deliveries, newest first.
    pub async fn deliveries(
        &self,
        channel_id: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLS} FROM alert_deliveries WHERE channel_id = $1 \
             ORDER BY created_at DESC, id LIMIT $2"
        )))
        .bind(channel_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// A project's builds created since `since_ms` or still unfinished:
    /// `(id, created_at, finished_at)`.
    pub async fn recent_builds(
        &self,
        project_id: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, i64, Option<i64>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, created_at, finished_at FROM builds WHERE project_id = $1 \
             AND (created_at >= $2 OR status IN ('queued', 'building')) \
             ORDER BY created_at DESC LIMIT 200",
        )
        .bind(project_id)
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("created_at")?,
                    r.try_get("finished_at")?,
                ))
            })
            .collect()
    }
}
