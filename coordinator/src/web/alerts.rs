//! Alerting in the dashboard: a project's rules on its Alerts tab, the
//! instance's rules on the nodes page, and a team's notification channels
//! (with test messages and their delivery history) on the team page, all
//! through the same `app::alerts` calls as the API.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::response::Response;
use dashboard::model::{
    self, AlertRow, AlertsTab, ChannelRow, DeliveryRow, FlashKind, InstanceAlerts, Nav, RuleKind,
    RuleRow, TeamRef,
};
use serde::Deserialize;

use super::{act, done, failed, render, success, urlencode, Flash, NoFields, Post, SignedIn};
use super::{WebError, WebResult};
use crate::alerts::rules::{self, Scope};
use crate::app::alerts::{ChannelView, NewChannel, NewRule, RuleView};
use crate::app::{self, App};

/// Deliveries shown under each channel.
const DELIVERIES: i64 = 10;

/// The presets a project's rule (`project`) or an instance rule may take.
pub fn kinds(project: bool) -> Vec<RuleKind> {
    rules::ALL
        .into_iter()
        .map(rules::Kind::preset)
        .filter(|p| match p.scope {
            Scope::Project => project,
            Scope::Instance => !project,
            Scope::Either => true,
        })
        .map(|p| RuleKind {
            key: p.kind.as_str().into(),
            condition: p.condition.symbol().into(),
            unit: p.unit.into(),
            default_threshold: p.default_threshold,
            default_window: p
                .windowed
                .then(|| humantime::format_duration(p.default_window).to_string()),
        })
        .collect()
}

fn channel_label(c: &ChannelView) -> String {
    format!("{} ({})", c.name, c.kind)
}

fn rule_row(r: RuleView, names: &HashMap<String, String>) -> RuleRow {
    RuleRow {
        channels: r
            .channels
            .iter()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone()))
            .collect(),
        id: r.id,
        kind: r.kind,
        condition: r.condition,
        threshold: r.threshold,
        unit: r.unit,
        window: r.window,
        for_: r.for_,
        enabled: r.enabled,
        created_at: r.created_at,
        alerts: r
            .alerts
            .into_iter()
            .map(|a| AlertRow {
                series: a.series,
                state: a.state,
                value: a.value,
                since: a.since,
                fired_at: a.fired_at,
                resolved_at: a.resolved_at,
            })
            .collect(),
    }
}

fn names(channels: &[ChannelView]) -> HashMap<String, String> {
    channels
        .iter()
        .map(|c| (c.id.clone(), channel_label(c)))
        .collect()
}

/// The add-rule form's fields; `channels` repeats, once per ticked box,
/// so the form is read as pairs rather than into a struct.
fn new_rule(form: &[(String, String)]) -> Result<NewRule, String> {
    let get = |key: &str| {
        form.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    };
    let threshold = match get("threshold") {
        None => None,
        Some(t) => Some(t.parse::<f64>().map_err(|_| {
            format!("The threshold {t:?} is not a number; leave it empty for the alert's default.")
        })?),
    };
    let channels: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "channels")
        .map(|(_, v)| v.clone())
        .collect();
    if channels.is_empty() {
        return Err("Tick at least one channel to notify.".into());
    }
    Ok(NewRule {
        kind: get("kind").unwrap_or_default().to_string(),
        threshold,
        window: get("window").map(str::to_string),
        for_: get("for").map(str::to_string),
        channels,
    })
}

fn added(r: &RuleView) -> String {
    format!(
        "Alert added: {} {} {} {}.",
        r.kind,
        r.condition,
        rules_number(r.threshold),
        r.unit
    )
}

fn rules_number(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

// ---- a project's rules ---------------------------------------------------------------

pub async fn tab(
    State(state): State<App>,
    signed: SignedIn,
    Path(name): Path<String>,
) -> WebResult<Response> {
    let (p, h) = super::project::header(&state, &signed, &name).await?;
    let channels = app::alerts::list_channels(&state, &signed.who, Some(&p.team_id)).await?;
    let names = names(&channels);
    let rules = app::alerts::list_rules(&state, &signed.who, Some(&p.name)).await?;
    let tab = AlertsTab {
        rules: rules.into_iter().map(|r| rule_row(r, &names)).collect(),
        kinds: kinds(true),
        team: TeamRef {
            id: p.team_id.clone(),
            name: h.team.clone(),
            role: signed
                .who
                .team_role(&p.team_id)
                .map(|r| r.as_str().to_string())
                .unwrap_or_default(),
        },
        channels: channels
            .iter()
            .map(|c| (c.id.clone(), channel_label(c)))
            .collect(),
    };
    let page = signed.page(h.name.clone(), Nav::Projects);
    Ok(render(&signed, dashboard::alerts(&page, &h, &tab)))
}

pub async fn add_rule(
    State(state): State<App>,
    Path(project): Path<String>,
    Post { signed, form }: Post<Vec<(String, String)>>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/alerts", urlencode(&project));
    let new = match new_rule(&form) {
        Ok(n) => n,
        Err(m) => return Ok(done(&back, Flash::error(m))),
    };
    act(
        &back,
        app::alerts::add_rule(&state, &signed.who, Some(&project), new),
        |r| success(&back, added(&r)),
    )
    .await
}

pub async fn remove_rule(
    State(state): State<App>,
    Path((project, id)): Path<(String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/projects/{}/alerts", urlencode(&project));
    let (p, _) = super::project::header(&state, &signed, &project).await?;
    let r = app::alerts::show_rule(&state, &signed.who, &id).await?;
    if r.project.as_deref() != Some(p.name.as_str()) {
        return Err(WebError::not_found("alert rule"));
    }
    act(
        &back,
        app::alerts::remove_rule(&state, &signed.who, &id),
        |()| success(&back, "Alert removed."),
    )
    .await
}

// ---- the instance's rules (nodes page) -------------------------------------------------

/// The nodes page's section, for instance owners (`None` for others).
pub(super) async fn instance_alerts(
    state: &App,
    signed: &SignedIn,
) -> WebResult<Option<InstanceAlerts>> {
    if !signed.who.is_instance_owner() {
        return Ok(None);
    }
    let channels = app::alerts::list_channels(state, &signed.who, None).await?;
    let names = names(&channels);
    let rules = app::alerts::list_rules(state, &signed.who, None).await?;
    Ok(Some(InstanceAlerts {
        rules: rules.into_iter().map(|r| rule_row(r, &names)).collect(),
        kinds: kinds(false),
        channels: channels
            .iter()
            .map(|c| (c.id.clone(), channel_label(c)))
            .collect(),
    }))
}

pub async fn add_instance_rule(
    State(state): State<App>,
    Post { signed, form }: Post<Vec<(String, String)>>,
) -> WebResult<Response> {
    let new = match new_rule(&form) {
        Ok(n) => n,
        Err(m) => return Ok(done("/nodes", Flash::error(m))),
    };
    act(
        "/nodes",
        app::alerts::add_rule(&state, &signed.who, None, new),
        |r| success("/nodes#instance-alerts-h", added(&r)),
    )
    .await
}

pub async fn remove_instance_rule(
    State(state): State<App>,
    Path(id): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let r = app::alerts::show_rule(&state, &signed.who, &id).await?;
    if r.project.is_some() {
        return Err(WebError::not_found("alert rule"));
    }
    act(
        "/nodes",
        app::alerts::remove_rule(&state, &signed.who, &id),
        |()| success("/nodes#instance-alerts-h", "Instance alert removed."),
    )
    .await
}

// ---- a team's channels (team page) -----------------------------------------------------

/// The team's channels, each with its newest deliveries.
pub(super) async fn team_channels(
    state: &App,
    signed: &SignedIn,
    team: &str,
) -> WebResult<Vec<ChannelRow>> {
    let mut out = Vec::new();
    for c in app::alerts::list_channels(state, &signed.who, Some(team)).await? {
        let deliveries = app::alerts::deliveries(state, &signed.who, &c.id, Some(DELIVERIES))
            .await?
            .into_iter()
            .map(|d| DeliveryRow {
                status: d.status,
                rule: d.rule,
                attempts: d.attempts,
                last_status: d.last_status,
                last_error: d.last_error,
                created_at: d.created_at,
                next_at: d.next_at,
                sent_at: d.sent_at,
            })
            .collect();
        out.push(ChannelRow {
            id: c.id,
            kind: c.kind,
            name: c.name,
            target: c.target,
            signed: c.signed,
            created_at: c.created_at,
            deliveries,
        });
    }
    Ok(out)
}

/// The channel, if it is `team`'s and the caller may see the team.
async fn channel_of(state: &App, signed: &SignedIn, team: &str, id: &str) -> WebResult<()> {
    let channels = app::alerts::list_channels(state, &signed.who, Some(team)).await?;
    if channels.iter().any(|c| c.id == id) {
        Ok(())
    } else {
        Err(WebError::not_found("channel"))
    }
}

#[derive(Deserialize)]
pub struct ChannelPost {
    kind: String,
    target: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

fn some(s: String) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

pub async fn add_channel(
    State(state): State<App>,
    Path(team): Path<String>,
    Post { signed, form: f }: Post<ChannelPost>,
) -> WebResult<Response> {
    let back = format!("/teams/{}", urlencode(&team));
    let new = NewChannel {
        team: Some(team.clone()),
        kind: f.kind,
        target: f.target,
        name: some(f.name),
        secret: some(f.secret),
    };
    let c = match app::alerts::add_channel(&state, &signed.who, new).await {
        Ok(c) => c,
        Err(e) => return Ok(failed(&back, e)),
    };
    let message = format!(
        "Channel {} added. Send it a test, then use it in a project's alert rules.",
        c.name
    );
    let Some(secret) = c.secret else {
        return Ok(success(&format!("{back}#channels-h"), message));
    };
    // A webhook's signing secret: shown on this response only.
    let mut model = super::admin::team_model(&state, &signed, &team, None).await?;
    model.new_channel_secret = Some((c.name, secret));
    let mut page = signed.page(model.team.name.clone(), Nav::Team);
    page.flash = Some(model::Flash {
        kind: FlashKind::Success,
        message,
    });
    Ok(render(&signed, dashboard::team(&page, &model)))
}

pub async fn test_channel(
    State(state): State<App>,
    Path((team, id)): Path<(String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/teams/{}", urlencode(&team));
    channel_of(&state, &signed, &team, &id).await?;
    act(
        &back,
        app::alerts::test_channel(&state, &signed.who, &id),
        |_| {
            success(
                &format!("{back}#channels-h"),
                "Test message queued: it goes out within seconds. Reload to see what the receiver answered.",
            )
        },
    )
    .await
}

pub async fn remove_channel(
    State(state): State<App>,
    Path((team, id)): Path<(String, String)>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    let back = format!("/teams/{}", urlencode(&team));
    channel_of(&state, &signed, &team, &id).await?;
    act(
        &back,
        app::alerts::remove_channel(&state, &signed.who, &id),
        |()| success(&format!("{back}#channels-h"), "Channel removed."),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_rule_form_is_read_with_its_repeated_channels() {
        let r = new_rule(&pairs(&[
            ("csrf", "x"),
            ("kind", "error_rate"),
            ("threshold", " 2.5 "),
            ("window", ""),
            ("for", "1m"),
            ("channels", "c1"),
            ("channels", "c2"),
        ]))
        .unwrap();
        assert_eq!(r.kind, "error_rate");
        assert_eq!(r.threshold, Some(2.5));
        assert_eq!(r.window, None);
        assert_eq!(r.for_.as_deref(), Some("1m"));
        assert_eq!(r.channels, ["c1", "c2"]);
        let bad = [
            (
                vec![
                    ("kind", "error_rate"),
                    ("threshold", "lots"),
                    ("channels", "c1"),
                ],
                "not a number",
            ),
            (vec![("kind", "error_rate")], "at least one channel"),
        ];
        for (form, says) in bad {
            let e = new_rule(&pairs(&form)).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn each_scope_offers_its_presets() {
        let keys = |project| -> Vec<String> { kinds(project).into_iter().map(|k| k.key).collect() };
        assert_eq!(
            keys(true),
            [
                "error_rate",
                "function_error",
                "deployment_failure",
                "build_failure",
                "slow_deployment",
                "ssl_expiry"
            ]
        );
        assert_eq!(keys(false), ["high_memory", "disk_space", "ssl_expiry"]);
        let rate = &kinds(true)[0];
        assert_eq!(
            (
                rate.condition.as_str(),
                rate.unit.as_str(),
                rate.default_threshold
            ),
            (">", "% of requests", 5.0)
        );
        assert_eq!(rate.default_window.as_deref(), Some("5m"));
        assert_eq!(
            kinds(false)[0].default_window,
            None,
            "gauges have no window"
        );
        assert_eq!(rules_number(5.0), "5");
        assert_eq!(rules_number(2.5), "2.5");
    }
}
