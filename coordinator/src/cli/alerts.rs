//! `coordinator channels …` and `coordinator alerts …`.

use super::client::{enc, Client};
use crate::app::alerts::{ChannelView, DeliveryView, NewChannel, NewRule, RuleView};

fn print<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn add_channel(c: &Client, new: NewChannel, json: bool) -> anyhow::Result<()> {
    let ch: ChannelView = c.post("/channels", &new).await?;
    if json {
        return print(&ch);
    }
    println!(
        "channel {} ({} → {}) added to team {}",
        ch.id, ch.kind, ch.target, ch.team
    );
    if let Some(s) = &ch.secret {
        println!("signing secret (shown once; verify `webhook-signature` with it):\n  {s}");
    }
    Ok(())
}

pub async fn list_channels(c: &Client, team: Option<&str>, json: bool) -> anyhow::Result<()> {
    let path = match team {
        Some(t) => format!("/channels?team={}", enc(t)),
        None => "/channels".to_string(),
    };
    let list: Vec<ChannelView> = c.get(&path).await?;
    if json {
        return print(&list);
    }
    if list.is_empty() {
        println!("no channels");
    }
    for ch in list {
        println!(
            "{:<16}  {:<8}  {:<24}  {}{}",
            ch.id,
            ch.kind,
            ch.name,
            ch.target,
            if ch.signed { "  (signed)" } else { "" }
        );
    }
    Ok(())
}

pub async fn test_channel(c: &Client, id: &str, json: bool) -> anyhow::Result<()> {
    let d: DeliveryView = c
        .post(
            &format!("/channels/{}/test", enc(id)),
            &serde_json::json!({}),
        )
        .await?;
    if json {
        return print(&d);
    }
    println!(
        "test message {} queued; `coordinator channels deliveries {id}` shows how it went",
        d.id
    );
    Ok(())
}

pub async fn deliveries(c: &Client, id: &str, json: bool) -> anyhow::Result<()> {
    let list: Vec<DeliveryView> = c.get(&format!("/channels/{}/deliveries", enc(id))).await?;
    if json {
        return print(&list);
    }
    for d in list {
        println!(
            "{:<16}  {:<8}  attempts {:<2}  status {:<4}  {}  {}",
            d.id,
            d.status,
            d.attempts,
            d.last_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            d.rule.as_deref().unwrap_or("test"),
            d.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn remove_channel(c: &Client, id: &str) -> anyhow::Result<()> {
    c.delete(&format!("/channels/{}", enc(id))).await?;
    println!("channel {id} removed");
    Ok(())
}

pub async fn add_rule(
    c: &Client,
    project: Option<&str>,
    new: NewRule,
    json: bool,
) -> anyhow::Result<()> {
    let path = match project {
        Some(p) => format!("/projects/{}/alerts", enc(p)),
        None => "/alerts".to_string(),
    };
    let r: RuleView = c.post(&path, &new).await?;
    if json {
        return print(&r);
    }
    println!(
        "rule {}: {} {} {} {} over {} for {} → {}",
        r.id,
        r.kind,
        r.condition,
        r.threshold,
        r.unit,
        r.window,
        r.for_,
        r.channels.join(", ")
    );
    Ok(())
}

pub async fn list_rules(c: &Client, project: Option<&str>, json: bool) -> anyhow::Result<()> {
    let path = match project {
        Some(p) => format!("/projects/{}/alerts", enc(p)),
        None => "/alerts".to_string(),
    };
    let list: Vec<RuleView> = c.get(&path).await?;
    if json {
        return print(&list);
    }
    if list.is_empty() {
        println!("no alert rules");
    }
    for r in list {
        let firing = r.alerts.iter().filter(|a| a.state == "firing").count();
        println!(
            "{:<16}  {:<18}  {} {} {:<14}  window {:<6} for {:<6}  {}",
            r.id,
            r.kind,
            r.condition,
            r.threshold,
            r.unit,
            r.window,
            r.for_,
            if firing > 0 {
                format!("FIRING ({firing})")
            } else {
                "ok".into()
            }
        );
    }
    Ok(())
}

pub async fn show_rule(c: &Client, id: &str, json: bool) -> anyhow::Result<()> {
    let r: RuleView = c.get(&format!("/alerts/{}", enc(id))).await?;
    if json {
        return print(&r);
    }
    println!(
        "{}  {} {} {} {}",
        r.id, r.kind, r.condition, r.threshold, r.unit
    );
    println!(
        "  window {}  for {}  channels {}",
        r.window,
        r.for_,
        r.channels.join(", ")
    );
    for a in r.alerts {
        println!("  {:<24}  {:<9}  value {:.2}", a.series, a.state, a.value);
    }
    Ok(())
}

pub async fn remove_rule(c: &Client, id: &str) -> anyhow::Result<()> {
    c.delete(&format!("/alerts/{}", enc(id))).await?;
    println!("alert rule {id} removed");
    Ok(())
}
