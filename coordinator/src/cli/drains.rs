//! `coordinator drains …`: a project's log drains.

use super::client::{enc, Client};
use crate::app::drains::{DrainView, NewDrain};

pub async fn add(c: &Client, project: &str, new: NewDrain, json: bool) -> anyhow::Result<()> {
    let d: DrainView = c
        .post(&format!("/projects/{}/drains", enc(project)), &new)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    println!(
        "drain {} → {} ({}; requests sampled at {})",
        d.id,
        d.url,
        d.sources.join(", "),
        d.sample_rate
    );
    if let Some(s) = &d.secret {
        println!(
            "signing secret (shown once; x-vercel-signature is hex HMAC-SHA1 of the body):\n  {s}"
        );
    }
    Ok(())
}

pub async fn list(c: &Client, project: &str, json: bool) -> anyhow::Result<()> {
    let list: Vec<DrainView> = c.get(&format!("/projects/{}/drains", enc(project))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("no drains");
    }
    for d in list {
        println!(
            "{:<16}  {:<8}  delivered {:<8}  {}  [{}]{}",
            d.id,
            d.status,
            d.delivered,
            d.url,
            d.sources.join(","),
            d.last_error
                .map(|e| format!("\n{:<16}  last error: {e}", ""))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn remove(c: &Client, id: &str) -> anyhow::Result<()> {
    c.delete(&format!("/drains/{}", enc(id))).await?;
    println!("drain {id} removed");
    Ok(())
}
