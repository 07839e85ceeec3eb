//! `coordinator errors`: a project's error issues, one issue, and
//! resolving, ignoring or reopening one.

use super::client::{enc, Client};
use crate::app::errors::{IssueUpdate, IssueView};

fn ago(ms: i64) -> String {
    let secs = (crate::store::now_ms() - ms).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// Eight levels of a bar, for the 24-hour trend in a terminal.
fn sparkline(trend: &[i64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = trend.iter().copied().max().unwrap_or(0);
    trend
        .iter()
        .map(|&n| {
            if n == 0 || max == 0 {
                ' '
            } else {
                BARS[((n * 7) / max) as usize]
            }
        })
        .collect()
}

pub async fn list(
    c: &Client,
    project: &str,
    state: Option<&str>,
    limit: Option<i64>,
    json: bool,
) -> anyhow::Result<()> {
    let mut q = format!("/projects/{}/errors", enc(project));
    let mut sep = '?';
    if let Some(s) = state {
        q.push_str(&format!("{sep}state={}", enc(s)));
        sep = '&';
    }
    if let Some(l) = limit {
        q.push_str(&format!("{sep}limit={l}"));
    }
    let issues: Vec<IssueView> = c.get(&q).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&issues)?);
        return Ok(());
    }
    if issues.is_empty() {
        println!("no error issues ({})", state.unwrap_or("open"));
        return Ok(());
    }
    println!(
        "{:<16}  {:<10}  {:<10}  {:>7}  {:<10}  {:<24}  TITLE",
        "ID", "STATE", "SEVERITY", "EVENTS", "LAST SEEN", "LAST 24H"
    );
    for i in issues {
        println!(
            "{:<16}  {:<10}  {:<10}  {:>7}  {:<10}  {:<24}  {}",
            i.id,
            i.state,
            i.severity,
            i.count,
            ago(i.last_seen),
            sparkline(&i.trend),
            i.title
        );
        if !i.culprit.is_empty() {
            println!("{:<16}  {}", "", i.culprit);
        }
    }
    Ok(())
}

pub async fn show(c: &Client, id: &str, json: bool) -> anyhow::Result<()> {
    let i: IssueView = c.get(&format!("/errors/{}", enc(id))).await?;
    print_issue(&i, json)
}

pub async fn update(c: &Client, id: &str, change: IssueUpdate, json: bool) -> anyhow::Result<()> {
    let i: IssueView = c.patch(&format!("/errors/{}", enc(id)), &change).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&i)?);
    } else {
        println!("{}: {} ({})", i.id, i.state, i.severity);
    }
    Ok(())
}

fn print_issue(i: &IssueView, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(i)?);
        return Ok(());
    }
    println!("{}  {}", i.id, i.title);
    println!(
        "  project   {}   source {}   kind {}",
        i.project, i.source, i.kind
    );
    println!("  state     {}   severity {}", i.state, i.severity);
    println!(
        "  events    {}   first seen {}   last seen {}",
        i.count,
        ago(i.first_seen),
        ago(i.last_seen)
    );
    println!("  last 24h  {}", sparkline(&i.trend));
    if !i.culprit.is_empty() {
        println!("  where     {}", i.culprit);
    }
    let s = &i.sample;
    if let Some(m) = s.get("message").and_then(|m| m.as_str()) {
        println!("  message   {m}");
    }
    if let Some(frames) = s.get("frames").and_then(|f| f.as_array()) {
        if !frames.is_empty() {
            println!("  backtrace");
            for f in frames {
                println!("    {}", f.as_str().unwrap_or(""));
            }
        }
    }
    let d = &s["detail"];
    if let Some(r) = d.get("request_id").and_then(|r| r.as_str()) {
        println!(
            "  sample    {} {} → {}   request {r}",
            d["method"].as_str().unwrap_or(""),
            d["path"].as_str().unwrap_or(""),
            d["status"]
        );
        println!(
            "            (its logs: coordinator logs {} --request-id {r})",
            i.project
        );
    }
    if let Some(lines) = d.get("stderr").and_then(|l| l.as_array()) {
        if !lines.is_empty() {
            println!("  stderr");
            for l in lines {
                println!("    {}", l.as_str().unwrap_or(""));
            }
        }
    }
    if !i.deployments.is_empty() {
        println!("  deployments");
        for d in &i.deployments {
            println!(
                "    {}  {} events, last {}",
                d.deployment,
                d.count,
                ago(d.last_seen)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_to_the_largest_hour() {
        assert_eq!(sparkline(&[0, 1, 7, 0]), " ▂█ ");
        assert_eq!(sparkline(&[0, 0]), "  ");
        assert_eq!(sparkline(&[]), "");
    }
}
