//! `coordinator analytics <project>`: a project's traffic for a range, as
//! a summary or (`--json`) the API's answer as it is.

use super::client::{enc, Client};
use crate::api::views::AnalyticsView;

pub struct Options<'a> {
    pub project: &'a str,
    pub since: &'a str,
    pub granularity: Option<&'a str>,
    pub deployment: Option<&'a str>,
    pub env: Option<&'a str>,
    pub json: bool,
}

pub async fn show(client: &Client, o: Options<'_>) -> anyhow::Result<()> {
    let mut q = format!(
        "/projects/{}/analytics?since={}",
        enc(o.project),
        enc(o.since)
    );
    for (k, v) in [
        ("granularity", o.granularity),
        ("deployment", o.deployment),
        ("env", o.env),
    ] {
        if let Some(v) = v {
            q.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let AnalyticsView(r) = client.get(&q).await?;
    if o.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("{} (last {})", o.project, o.since);
    println!(
        "  requests {}   page views {}   visitors {}   bots {}   bytes {}",
        r.requests,
        r.page_views,
        r.visitors,
        r.bots,
        bytesize::ByteSize(r.bytes)
    );
    let classes: Vec<String> = r
        .status_classes
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    if !classes.is_empty() {
        println!("  status   {}", classes.join("   "));
    }
    if let Some(d) = &r.duration_ms {
        println!(
            "  response time  p50 {:.1} ms   p95 {:.1} ms   p99 {:.1} ms",
            d.p50, d.p95, d.p99
        );
    }
    for (title, list) in [
        ("top pages", &r.top.pages),
        ("not found", &r.top.not_found),
        ("referrers", &r.top.referrers),
    ] {
        if !list.is_empty() {
            println!("  {title}:");
            for (k, n) in list.iter().take(5) {
                println!("    {n:>8}  {k}");
            }
        }
    }
    if !r.functions.is_empty() {
        println!("  functions:");
        for (route, f) in &r.functions {
            println!(
                "    {route}: {} invocations, {} errors ({} timeouts, {} memory), p50 {} ms",
                f.invocations,
                f.errors,
                f.timeouts,
                f.memory_limit,
                f.p50_ms.map_or("-".into(), |v| format!("{v:.1}"))
            );
        }
    }
    Ok(())
}
