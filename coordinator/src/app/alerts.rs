//! Alerting's use cases: a team's notification channels (owners manage
//! them: they hold targets and signing secrets), a project's alert rules
//! (members manage them), the instance's rules (instance owners), test
//! messages and the delivery history.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::alerts::rules::{self, Kind};
use crate::alerts::{message, send};
use crate::store::alerts::{ChannelRow, DeliveryRow, RuleRow};
use crate::store::{now_ms, Role, StoreError};

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: String,
    pub team: String,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    pub name: String,
    /// The URL or the address (a Slack URL's secret path is not shown).
    pub target: String,
    /// Whether webhook deliveries are signed (`webhook-signature`).
    pub signed: bool,
    /// Only in the answer that made the channel: the signing secret
    /// (`whsec_…`), shown once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: i64,
}

/// A new channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// The team (default: the caller's first team they own).
    pub team: Option<String>,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// An https URL, or an e-mail address.
    pub target: String,
    pub name: Option<String>,
    /// A webhook's signing secret (`whsec_` + base64, or any string of 16
    /// to 256 bytes); default: a new one, shown once.
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: String,
    pub channel: String,
    /// The rule it told about (none: a test message).
    pub rule: Option<String>,
    /// `pending`, `sent` or `failed` (given up after the retries).
    pub status: String,
    pub attempts: i64,
    /// The receiver's HTTP status (SMTP reply code for e-mail).
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub next_at: i64,
    pub sent_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleView {
    pub id: String,
    /// None for an instance-wide rule.
    pub project: Option<String>,
    pub kind: String,
    pub threshold: f64,
    /// `>` or `<` (certificate days left).
    pub condition: String,
    pub unit: String,
    /// humantime, e.g. `5m`.
    pub window: String,
    #[serde(rename = "for")]
    pub for_: String,
    pub channels: Vec<String>,
    pub enabled: bool,
    pub created_at: i64,
    /// Each watched series: `pending`, `firing` or `resolved`.
    pub alerts: Vec<AlertView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertView {
    pub series: String,
    pub state: String,
    pub value: f64,
    pub since: i64,
    pub fired_at: Option<i64>,
    pub resolved_at: Option<i64>,
}

/// A new rule: a preset `kind` with its parameters (defaults per kind).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRule {
    /// `error_rate`, `function_error`, `deployment_failure`,
    /// `build_failure`, `slow_deployment`, `high_memory`, `disk_space`,
    /// `ssl_expiry`.
    pub kind: String,
    pub threshold: Option<f64>,
    /// The window counts and rates look back over (humantime, 1m-7d).
    pub window: Option<String>,
    /// How long the condition must hold before the alert fires (0s-24h).
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// Channel ids (at least one, at most 10).
    pub channels: Vec<String>,
}

const MAX_NAME: usize = 64;

/// A signing secret as given (16-256 printable characters, header-safe),
/// or a new one from `make` (webhooks and drains alike).
pub(super) fn signing_secret(given: Option<String>, make: fn() -> String) -> AppResult<String> {
    match given {
        None => Ok(make()),
        Some(s) if (16..=256).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()) => {
            Ok(s)
        }
        Some(_) => Err(AppError::invalid(
            "invalid_secret",
            "a signing secret is 16-256 printable characters",
        )),
    }
}

fn redact(kind: &str, target: &str) -> String {
    if kind != "slack" {
        return target.to_string();
    }
    match url::Url::parse(target) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
        Err(_) => "…".into(),
    }
}

fn channel_view(c: ChannelRow, secret: Option<String>) -> ChannelView {
    ChannelView {
        target: redact(&c.kind, &c.target),
        signed: c.secret_enc.is_some(),
        id: c.id,
        team: c.team_id,
        kind: c.kind,
        name: c.name,
        secret,
        created_at: c.created_at,
    }
}

fn team_to_manage(who: &Principal, asked: Option<&str>) -> AppResult<String> {
    match asked {
        Some(t) => Ok(t.to_string()),
        None => who
            .teams_with(Role::Owner)
            .into_iter()
            .next()
            .ok_or_else(|| AppError::forbidden("you own no team; name one with team")),
    }
}

pub async fn add_channel(app: &App, who: &Principal, new: NewChannel) -> AppResult<ChannelView> {
    let team = team_to_manage(who, new.team.as_deref())?;
    let team = access::team(app, who, &team, Role::Owner).await?;
    let allow = app.config.alerts.allow_private_targets;
    let target = new.target.trim().to_string();
    let (secret, sealed) = match new.kind.as_str() {
        "webhook" => {
            send::check_url(&target, allow).map_err(|e| AppError::invalid("invalid_target", e))?;
            let secret = signing_secret(new.secret, message::new_secret)?;
            let sealed = app.secrets.seal(&secret);
            (Some(secret), Some(sealed))
        }
        "slack" => {
            send::check_url(&target, allow).map_err(|e| AppError::invalid("invalid_target", e))?;
            if new.secret.is_some() {
                return Err(AppError::invalid(
                    "invalid_secret",
                    "Slack webhooks are not signed",
                ));
            }
            (None, None)
        }
        "email" => {
            if target.len() > 254 || target.parse::<lettre::Address>().is_err() {
                return Err(AppError::invalid(
                    "invalid_target",
                    format!("{target:?} is not an e-mail address"),
                ));
            }
            if new.secret.is_some() {
                return Err(AppError::invalid(
                    "invalid_secret",
                    "e-mail channels take no secret",
                ));
            }
            (None, None)
        }
        k => {
            return Err(AppError::invalid(
                "invalid_kind",
                format!("channel kind {k:?}: use webhook, slack or email"),
            ))
        }
    };
    let name = match new.name {
        Some(n)
            if !n.trim().is_empty() && n.len() <= MAX_NAME && !n.chars().any(char::is_control) =>
        {
            n.trim().to_string()
        }
        Some(_) => {
            return Err(AppError::invalid(
                "invalid_name",
                format!("a channel name is 1-{MAX_NAME} characters"),
            ))
        }
        None => match url::Url::parse(&target) {
            Ok(u) => format!("{} {}", new.kind, u.host_str().unwrap_or("")),
            Err(_) => format!("email {target}"),
        }
        .chars()
        .take(MAX_NAME)
        .collect(),
    };
    let row = ChannelRow {
        id: crate::ids::new_id(16),
        team_id: team.id.clone(),
        kind: new.kind.clone(),
        name,
        target,
        secret_enc: sealed,
        created_at: now_ms(),
    };
    app.store.insert_channel(&row).await.map_err(limit)?;
    crate::accounts::audit::record(
        &app.store,
        who,
        Some(&team.id),
        "channel.add",
        &row.name,
        json!({ "channel": row.id, "kind": row.kind }),
    )
    .await;
    Ok(channel_view(row, secret))
}

fn limit(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict(what) => AppError::new(
            super::ErrorKind::QuotaExceeded,
            "too_many",
            format!("{what} is over the limit"),
        ),
        e => e.into(),
    }
}

/// Channels of a team (default: every team the caller is in).
pub async fn list_channels(
    app: &App,
    who: &Principal,
    team: Option<&str>,
) -> AppResult<Vec<ChannelView>> {
    let teams = match team {
        Some(t) => vec![access::team(app, who, t, Role::Viewer).await?.id],
        None => who.teams_with(Role::Viewer),
    };
    let mut out = Vec::new();
    for t in teams {
        out.extend(
            app.store
                .team_channels(&t)
                .await?
                .into_iter()
                .map(|c| channel_view(c, None)),
        );
    }
    Ok(out)
}

async fn channel_of(app: &App, who: &Principal, id: &str, need: Role) -> AppResult<ChannelRow> {
    let missing = || AppError::not_found("channel");
    if !access::valid_id(id) {
        return Err(missing());
    }
    let c = app.store.channel(id).await?.ok_or_else(missing)?;
    access::team(app, who, &c.team_id, need)
        .await
        .map_err(|e| match e.kind {
            super::ErrorKind::NotFound => missing(),
            _ => e,
        })?;
    Ok(c)
}

pub async fn remove_channel(app: &App, who: &Principal, id: &str) -> AppResult<()> {
    let c = channel_of(app, who, id, Role::Owner).await?;
    app.store.delete_channel(&c.id).await?;
    crate::accounts::audit::record(
        &app.store,
        who,
        Some(&c.team_id),
        "channel.remove",
        &c.name,
        json!({ "channel": c.id }),
    )
    .await;
    Ok(())
}

/// Queues a test message to a channel; it goes within a second.
pub async fn test_channel(app: &App, who: &Principal, id: &str) -> AppResult<DeliveryView> {
    let c = channel_of(app, who, id, Role::Member).await?;
    let delivery = crate::ids::new_id(16);
    let now = now_ms();
    app.store
        .queue_delivery(
            &delivery,
            &c.id,
            None,
            &json!({ "at": now }).to_string(),
            now,
        )
        .await?;
    app.alerts.wake.notify_one();
    let d = app
        .store
        .deliveries(&c.id, 50)
        .await?
        .into_iter()
        .find(|d| d.id == delivery)
        .ok_or_else(|| AppError::not_found("delivery"))?;
    Ok(delivery_view(d))
}

fn delivery_view(d: DeliveryRow) -> DeliveryView {
    DeliveryView {
        id: d.id,
        channel: d.channel_id,
        rule: d.rule_id,
        status: d.status,
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at,
        next_at: d.next_at,
        sent_at: d.sent_at,
    }
}

/// A channel's deliveries, newest first.
pub async fn deliveries(
    app: &App,
    who: &Principal,
    id: &str,
    limit: Option<i64>,
) -> AppResult<Vec<DeliveryView>> {
    let c = channel_of(app, who, id, Role::Viewer).await?;
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(AppError::invalid(
            "invalid_limit",
            "limit must be between 1 and 200",
        ));
    }
    Ok(app
        .store
        .deliveries(&c.id, limit)
        .await?
        .into_iter()
        .map(delivery_view)
        .collect())
}

fn fmt_ms(ms: i64) -> String {
    humantime::format_duration(Duration::from_millis(ms.max(0) as u64)).to_string()
}

async fn rule_view(app: &App, r: RuleRow, project: Option<String>) -> AppResult<RuleView> {
    let kind = Kind::parse(&r.kind);
    let preset = kind.map(Kind::preset);
    let alerts = app
        .store
        .alert_states(&r.id)
        .await?
        .into_iter()
        .map(|s| AlertView {
            series: s.series,
            state: s.state,
            value: s.value,
            since: s.active_since,
            fired_at: s.fired_at,
            resolved_at: s.resolved_at,
        })
        .collect();
    Ok(RuleView {
        id: r.id,
        project,
        kind: r.kind,
        threshold: r.threshold,
        condition: preset.map_or(">", |p| p.condition.symbol()).into(),
        unit: preset.map_or("", |p| p.unit).into(),
        window: fmt_ms(r.window_ms),
        for_: fmt_ms(r.for_ms),
        channels: r.channels,
        enabled: r.enabled,
        created_at: r.created_at,
        alerts,
    })
}

/// Adds a rule to a project, or (`project` none) to the instance.
pub async fn add_rule(
    app: &App,
    who: &Principal,
    project: Option<&str>,
    new: NewRule,
) -> AppResult<RuleView> {
    let kind = Kind::parse(&new.kind).ok_or_else(|| {
        AppError::invalid(
            "invalid_kind",
            format!(
                "alert type {:?}: use {}",
                new.kind,
                rules::ALL.map(Kind::as_str).join(", ")
            ),
        )
    })?;
    let preset = kind.preset();
    let (team, project) = match project {
        Some(name) => {
            let p = access::project(app, who, name, Role::Member).await?;
            (Some(p.team_id.clone()), Some(p))
        }
        None => {
            if !who.instance_owner {
                return Err(AppError::forbidden(
                    "instance-wide rules are for the instance's owners",
                ));
            }
            (None, None)
        }
    };
    let window = match &new.window {
        Some(w) => rules::parse_duration("window", w)
            .map_err(|e| AppError::invalid("invalid_window", e))?,
        None => preset.default_window,
    };
    let for_ = match &new.for_ {
        Some(f) => {
            rules::parse_duration("for", f).map_err(|e| AppError::invalid("invalid_for", e))?
        }
        None => Duration::ZERO,
    };
    let threshold = new.threshold.unwrap_or(preset.default_threshold);
    rules::validate(kind, project.is_some(), threshold, window, for_)
        .map_err(|e| AppError::invalid("invalid_rule", e))?;
    if new.channels.is_empty() || new.channels.len() > 10 {
        return Err(AppError::invalid(
            "invalid_channels",
            "a rule notifies 1 to 10 channels",
        ));
    }
    for c in &new.channels {
        // Notifying a channel is using it: the member role, as sending a
        // test message needs.
        let ch = channel_of(app, who, c, Role::Member).await?;
        // A project's alerts go to its own team's channels only.
        if let Some(t) = &team {
            if &ch.team_id != t {
                return Err(AppError::invalid(
                    "invalid_channels",
                    format!("channel {c} belongs to another team than the project"),
                ));
            }
        }
    }
    let row = RuleRow {
        id: crate::ids::new_id(16),
        team_id: team,
        project_id: project.as_ref().map(|p| p.id.clone()),
        kind: kind.as_str().into(),
        threshold,
        window_ms: window.as_millis() as i64,
        for_ms: for_.as_millis() as i64,
        channels: new.channels,
        enabled: true,
        created_at: now_ms(),
    };
    app.store.insert_rule(&row).await.map_err(limit)?;
    if let Some(p) = &project {
        app.audit(
            who,
            p,
            "alert.add",
            json!({ "rule": row.id, "kind": row.kind }),
        )
        .await;
    }
    rule_view(app, row, project.map(|p| p.name)).await
}

/// A project's rules, or (`project` none) the instance's.
pub async fn list_rules(
    app: &App,
    who: &Principal,
    project: Option<&str>,
) -> AppResult<Vec<RuleView>> {
    let (pid, name) = match project {
        Some(name) => {
            let p = access::project(app, who, name, Role::Viewer).await?;
            (Some(p.id), Some(p.name))
        }
        None => {
            if !who.instance_owner {
                return Err(AppError::forbidden(
                    "instance-wide rules are for the instance's owners",
                ));
            }
            (None, None)
        }
    };
    let mut out = Vec::new();
    for r in app.store.alert_rules(pid.as_deref()).await? {
        out.push(rule_view(app, r, name.clone()).await?);
    }
    Ok(out)
}

async fn rule_of(
    app: &App,
    who: &Principal,
    id: &str,
    need: Role,
) -> AppResult<(RuleRow, Option<String>)> {
    let missing = || AppError::not_found("alert rule");
    if !access::valid_id(id) {
        return Err(missing());
    }
    let r = app.store.alert_rule(id).await?.ok_or_else(missing)?;
    match &r.project_id {
        Some(p) => {
            let p = access::project_by_id(app, who, p, need)
                .await
                .map_err(|e| match e.kind {
                    super::ErrorKind::NotFound => missing(),
                    _ => e,
                })?;
            Ok((r, Some(p.name)))
        }
        None if who.instance_owner => Ok((r, None)),
        None => Err(missing()),
    }
}

pub async fn show_rule(app: &App, who: &Principal, id: &str) -> AppResult<RuleView> {
    let (r, project) = rule_of(app, who, id, Role::Viewer).await?;
    rule_view(app, r, project).await
}

pub async fn remove_rule(app: &App, who: &Principal, id: &str) -> AppResult<()> {
    let (r, _) = rule_of(app, who, id, Role::Member).await?;
    app.store.delete_alert_rule(&r.id).await?;
    Ok(())
}
