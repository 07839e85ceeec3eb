//! Alerts: rules evaluated in the background, their notifications queued
//! and delivered to a team's channels (webhook, Slack, e-mail).
//!
//! - `rules.rs` — the eight presets (pure): what each measures, its
//!   scope, condition and bounds.
//! - `state.rs` — a series' state machine (pure): pending → firing →
//!   resolved, repeats.
//! - `evaluate.rs` — the values, from rollups, error counts, builds, node
//!   reports and certificates.
//! - `message.rs` — the Alertmanager v4 body, Slack and e-mail texts, the
//!   Standard Webhooks signature (pure).
//! - `send.rs` — one delivery attempt (I/O), targets checked and pinned.
//!
//! One coordinator of a cluster evaluates (a lease in the database);
//! deliveries are claimed row by row, so any coordinator may send them
//! and each is sent once. A change to a rule's alerts queues one delivery
//! per channel, sent after `group_wait` (the first of a group) or
//! `group_interval` after the previous one, carrying the group's state
//! as it is when it goes: a flapping alert makes one message per
//! interval, not one per flap.

pub mod config;
pub mod evaluate;
pub mod message;
pub mod rules;
pub mod send;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use self::config::{AlertsConfig, SmtpConfig};
use self::message::{Alert, Notification};
use self::rules::Kind;
use self::state::{Phase, Series, Transition};
use crate::store::alerts::{ChannelRow, DeliveryRow, RuleRow, StateRow};
use crate::store::{now_ms, Store, StoreError};

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 12;
const LEASE: &str = "alerts.evaluator";
const JSON: &str = "application/json";

pub struct AlertService {
    pub store: Store,
    pub secrets: Arc<crate::secrets::SecretBox>,
    pub config: AlertsConfig,
    /// Where webhook and Slack deliveries may go.
    pub targets: send::Targets,
    pub smtp: Option<SmtpConfig>,
    /// Where people reach the dashboard (links in messages).
    pub external_url: String,
    /// This coordinator, for the evaluator's lease.
    pub holder: String,
    pub data_dir: std::path::PathBuf,
    pub ca_der: Vec<u8>,
    /// Wakes the sender (a test message was queued).
    pub wake: Notify,
}

/// The wait before retry `attempt` (1-based): 10 s doubling, at most 1 h.
pub fn backoff(attempt: i64) -> Duration {
    let secs = 10u64.saturating_mul(1 << attempt.clamp(1, 20).saturating_sub(1) as u32);
    Duration::from_secs(secs.min(3600))
}

impl AlertService {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let sender = tokio::spawn(self.clone().send_loop(shutdown.clone()));
        let mut tick = tokio::time::interval(self.config.evaluate_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expired_at = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            if let Err(e) = self.evaluate_all(now_ms()).await {
                tracing::warn!(error = %e, "evaluating alert rules");
            }
            // Error counts past their 30 days, hourly.
            let now = now_ms();
            if now - expired_at > 3_600_000 {
                expired_at = now;
                if let Err(e) = self.store.expire_error_counts().await {
                    tracing::warn!(error = %e, "expiring error counts");
                }
            }
        }
        sender.abort();
    }

    /// Evaluates every enabled rule, if this coordinator holds the lease.
    pub async fn evaluate_all(&self, now: i64) -> Result<(), StoreError> {
        let ttl = (self.config.evaluate_every.as_millis() as i64 * 3).max(10_000);
        if !self.store.try_lease(LEASE, &self.holder, ttl).await? {
            return Ok(());
        }
        for rule in self.store.enabled_alert_rules().await? {
            if let Err(e) = self.evaluate(&rule, now).await {
                tracing::warn!(rule = %rule.id, error = %e, "evaluating an alert rule");
            }
        }
        Ok(())
    }

    async fn evaluate(&self, rule: &RuleRow, now: i64) -> Result<(), StoreError> {
        let Some(kind) = Kind::parse(&rule.kind) else {
            return Ok(());
        };
        let preset = kind.preset();
        let sources = evaluate::Sources {
            store: &self.store,
            data_dir: &self.data_dir,
            ca_der: &self.ca_der,
        };
        let samples = evaluate::values(&sources, rule, kind, now).await?;
        let mut prev: HashMap<String, StateRow> = self
            .store
            .alert_states(&rule.id)
            .await?
            .into_iter()
            .map(|s| (s.series.clone(), s))
            .collect();
        let repeat = self.config.repeat_interval.as_millis() as i64;
        let mut notify = false;
        for s in &samples {
            let known = prev.remove(&s.series);
            let breached = preset.condition.breached(s.value, rule.threshold);
            if known.is_none() && !breached {
                // Quiet and never alerted: nothing to keep.
                continue;
            }
            let before = known.map(series_of).unwrap_or_else(Series::inactive);
            let (after, tr) = state::step(before, breached, s.value, now, rule.for_ms, repeat);
            notify |= tr.is_some();
            if tr == Some(Transition::Fired) {
                tracing::info!(rule = %rule.id, kind = kind.as_str(), series = %s.series, value = s.value, "alert firing");
            }
            self.store
                .put_alert_state(&row_of(&rule.id, &s.series, &after, now))
                .await?;
        }
        // A series that is gone (a node removed, a domain deleted) is
        // resolved if it fired, and forgotten.
        for (series, row) in prev {
            let before = series_of(row);
            if before.phase == Phase::Firing {
                let (after, _) = state::step(before, false, 0.0, now, rule.for_ms, repeat);
                self.store
                    .put_alert_state(&row_of(&rule.id, &series, &after, now))
                    .await?;
                notify = true;
            } else if before.phase == Phase::Pending
                || before.resolved_at.is_none_or(|t| now - t > 86_400_000)
            {
                self.store.delete_alert_state(&rule.id, &series).await?;
            }
        }
        if notify {
            for channel in &rule.channels {
                self.queue(rule, channel, now).await?;
            }
        }
        Ok(())
    }

    /// Queues a notification of `rule` to `channel`: after `group_wait`
    /// for a group that has not been told anything yet, else
    /// `group_interval` after the last one.
    async fn queue(&self, rule: &RuleRow, channel: &str, now: i64) -> Result<(), StoreError> {
        let wait = self.config.group_wait.as_millis() as i64;
        let interval = self.config.group_interval.as_millis() as i64;
        let next_at = match self.store.last_delivery(channel, &rule.id).await? {
            Some(last) => (last + interval).max(now),
            None => now + wait,
        };
        self.store
            .queue_delivery(
                &crate::ids::new_id(16),
                channel,
                Some(&rule.id),
                "{}",
                next_at,
            )
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    async fn send_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.store.claim_deliveries(20, 60_000).await {
                Ok(batch) => {
                    for d in batch {
                        self.deliver(d).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming alert deliveries"),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One attempt of one delivery, recorded.
    pub async fn deliver(&self, d: DeliveryRow) {
        let result = self.attempt(&d).await;
        let (payload, outcome) = match result {
            Ok(v) => v,
            Err(e) => (
                d.payload.clone(),
                send::Outcome {
                    ok: false,
                    status: None,
                    error: Some(e.to_string()),
                },
            ),
        };
        let attempts = d.attempts + 1;
        let retry_at = (!outcome.ok && attempts < MAX_ATTEMPTS)
            .then(|| now_ms() + backoff(attempts).as_millis() as i64);
        if !outcome.ok {
            tracing::warn!(delivery = %d.id, channel = %d.channel_id, attempts, error = outcome.error.as_deref().unwrap_or(""), "alert delivery failed");
        }
        if let Err(e) = self
            .store
            .finish_delivery(
                &d.id,
                outcome.ok,
                retry_at,
                &payload,
                outcome.status,
                outcome.error.as_deref(),
            )
            .await
        {
            tracing::warn!(delivery = %d.id, error = %e, "recording an alert delivery");
        }
    }

    async fn attempt(&self, d: &DeliveryRow) -> Result<(String, send::Outcome), StoreError> {
        let Some(channel) = self.store.channel(&d.channel_id).await? else {
            return Ok((
                d.payload.clone(),
                send::Outcome {
                    ok: false,
                    status: None,
                    error: Some("the channel was removed".into()),
                },
            ));
        };
        let notification = match &d.rule_id {
            Some(rule_id) => match self.group(rule_id, &channel).await? {
                Some(n) => n,
                None => {
                    return Ok((
                        d.payload.clone(),
                        send::Outcome {
                            ok: true,
                            status: None,
                            error: Some("nothing left to tell: the rule was removed".into()),
                        },
                    ))
                }
            },
            None => match serde_json::from_str::<serde_json::Value>(&d.payload) {
                // A test message, built when it was queued.
                Ok(v) => test_notification(&channel, &self.external_url, v),
                Err(_) => {
                    return Ok((
                        d.payload.clone(),
                        send::Outcome {
                            ok: false,
                            status: None,
                            error: Some("unreadable test payload".into()),
                        },
                    ))
                }
            },
        };
        let body = serde_json::to_vec(&notification).unwrap_or_default();
        let payload = String::from_utf8_lossy(&body).into_owned();
        let allow = &self.targets;
        let outcome = match channel.kind.as_str() {
            "webhook" => {
                let ts = now_ms() / 1000;
                let mut headers = vec![
                    ("webhook-id", d.id.clone()),
                    ("webhook-timestamp", ts.to_string()),
                ];
                if let Some(enc) = &channel.secret_enc {
                    let secret = self.secrets.open(enc).unwrap_or_default();
                    headers.push((
                        "webhook-signature",
                        message::sign(&secret, &d.id, ts, &body),
                    ));
                }
                send::post(&channel.target, allow, JSON, &headers, &body).await
            }
            "slack" => {
                let body = serde_json::to_vec(&notification.slack()).unwrap_or_default();
                send::post(&channel.target, allow, JSON, &[], &body).await
            }
            "email" => {
                send::email(
                    self.smtp.as_ref(),
                    &channel.target,
                    &notification.subject(),
                    &notification.text(),
                )
                .await
            }
            k => send::Outcome {
                ok: false,
                status: None,
                error: Some(format!("unknown channel kind {k:?}")),
            },
        };
        Ok((payload, outcome))
    }

    /// The rule's current alerts for a channel: firing ones, and those
    /// resolved since the channel last heard of the rule.
    async fn group(
        &self,
        rule_id: &str,
        channel: &ChannelRow,
    ) -> Result<Option<Notification>, StoreError> {
        let Some(rule) = self.store.alert_rule(rule_id).await? else {
            return Ok(None);
        };
        let Some(kind) = Kind::parse(&rule.kind) else {
            return Ok(None);
        };
        let project = match &rule.project_id {
            Some(p) => self.store.project_by_id(p).await?.map(|p| p.name),
            None => None,
        };
        let last = self
            .store
            .last_delivery(&channel.id, rule_id)
            .await?
            .unwrap_or(0);
        let preset = kind.preset();
        let alerts: Vec<Alert> = self
            .store
            .alert_states(rule_id)
            .await?
            .into_iter()
            .filter(|s| s.state == "firing" || s.resolved_at.is_some_and(|t| t >= last))
            .filter(|s| s.state != "pending")
            .map(|s| {
                let mut labels = BTreeMap::from([
                    ("alertname".to_string(), kind.as_str().to_string()),
                    ("rule".to_string(), rule.id.clone()),
                    ("series".to_string(), s.series.clone()),
                    ("severity".to_string(), preset.severity.to_string()),
                ]);
                if let Some(p) = &project {
                    labels.insert("project".into(), p.clone());
                }
                // What the series is, as a label of its own.
                match kind {
                    Kind::HighMemory | Kind::DiskSpace if s.series != "coordinator" => {
                        labels.insert("node".into(), s.series.clone());
                    }
                    Kind::SslExpiry => {
                        labels.insert("certificate".into(), s.series.clone());
                    }
                    _ => {}
                }
                let firing = s.state == "firing";
                let summary = format!(
                    "{}{}: {:.2} {} (threshold {} {})",
                    kind.as_str(),
                    project
                        .as_ref()
                        .map(|p| format!(" of {p}"))
                        .unwrap_or_default(),
                    s.value,
                    preset.unit,
                    preset.condition.symbol(),
                    rule.threshold
                );
                let fingerprint = blake3::hash(format!("{}\0{}", rule.id, s.series).as_bytes())
                    .to_hex()[..16]
                    .to_string();
                Alert {
                    status: if firing { "firing" } else { "resolved" }.into(),
                    labels,
                    annotations: BTreeMap::from([
                        ("summary".to_string(), summary),
                        ("value".to_string(), format!("{}", s.value)),
                    ]),
                    starts_at: message::rfc3339(s.fired_at.unwrap_or(s.active_since)),
                    ends_at: match (firing, s.resolved_at) {
                        (false, Some(t)) => message::rfc3339(t),
                        _ => message::ZERO_TIME.into(),
                    },
                    generator_url: self.external_url.clone(),
                    fingerprint,
                }
            })
            .collect();
        Ok(Some(Notification::new(
            &format!("rule:{rule_id}"),
            &channel.name,
            &self.external_url,
            alerts,
        )))
    }
}

fn test_notification(
    channel: &ChannelRow,
    external_url: &str,
    v: serde_json::Value,
) -> Notification {
    let at = v.get("at").and_then(|a| a.as_i64()).unwrap_or(0);
    Notification::new(
        "test",
        &channel.name,
        external_url,
        vec![Alert {
            status: "firing".into(),
            labels: BTreeMap::from([
                ("alertname".to_string(), "test".to_string()),
                ("channel".to_string(), channel.name.clone()),
            ]),
            annotations: BTreeMap::from([(
                "summary".to_string(),
                "A test message from Outpost: this channel works.".to_string(),
            )]),
            starts_at: message::rfc3339(at),
            ends_at: message::ZERO_TIME.into(),
            generator_url: external_url.into(),
            fingerprint: "test".into(),
        }],
    )
}

fn series_of(r: StateRow) -> Series {
    Series {
        phase: Phase::parse(&r.state),
        value: r.value,
        active_since: r.active_since,
        fired_at: r.fired_at,
        resolved_at: r.resolved_at,
        notified_at: r.notified_at,
    }
}

fn row_of(rule: &str, series: &str, s: &Series, now: i64) -> StateRow {
    StateRow {
        rule_id: rule.into(),
        series: series.into(),
        state: s.phase.as_str().into(),
        value: s.value,
        active_since: s.active_since,
        fired_at: s.fired_at,
        resolved_at: s.resolved_at,
        notified_at: s.notified_at,
        updated_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        let secs: Vec<u64> = (1..=10).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]);
        assert_eq!(backoff(100).as_secs(), 3600);
    }
}
