//! The small client commands: projects, deployments, promote, rollback,
//! nodes, join tokens.

use serde_json::{json, Value};

use super::client::Client;

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap());
}

/// "3m ago" from a unix-millisecond timestamp.
pub fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else { return "never".into() };
    let secs = (crate::store::now_ms() - ms).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

pub async fn projects_list(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page: Value = client.get(&format!("/projects?limit=200{q}")).await?;
        all.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    if as_json {
        print_json(&Value::Array(all));
        return Ok(());
    }
    if all.is_empty() {
        println!("no projects yet: `coordinator deploy ./site --project NAME --prod` creates one");
    }
    for p in all {
        println!(
            "{:<24} {:<12} {}",
            p["name"].as_str().unwrap_or(""),
            p["production_deployment"].as_str().unwrap_or("-"),
            p["production_url"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn projects_create(client: &Client, name: &str, as_json: bool) -> anyhow::Result<()> {
    let p: Value = client.post("/projects", &json!({ "name": name })).await?;
    if as_json {
        print_json(&p);
    } else {
        println!(
            "created project {} ({})",
            name,
            p["production_url"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

pub async fn deployments(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let page: Value = client
        .get(&format!("/projects/{project}/deployments?limit=50"))
        .await?;
    if as_json {
        print_json(&page);
        return Ok(());
    }
    for d in page["items"].as_array().cloned().unwrap_or_default() {
        println!(
            "{:<12} {:<10} {:<10} {:<4} {:<10} {}",
            d["id"].as_str().unwrap_or(""),
            d["status"].as_str().unwrap_or(""),
            d["target"].as_str().unwrap_or(""),
            if d["is_production"].as_bool() == Some(true) {
                "prod"
            } else {
                ""
            },
            ago(d["created_at"].as_i64()),
            d["url"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

fn print_deployment(action: &str, d: &Value, as_json: bool) {
    if as_json {
        print_json(d);
        return;
    }
    println!(
        "{action}: {} now serves deployment {}",
        d["production_url"]
            .as_str()
            .unwrap_or(d["project"].as_str().unwrap_or("")),
        d["id"].as_str().unwrap_or("")
    );
}

pub async fn promote(client: &Client, deployment: &str, as_json: bool) -> anyhow::Result<()> {
    let d: Value = client
        .post(&format!("/deployments/{deployment}/promote"), &json!({}))
        .await?;
    print_deployment("promoted", &d, as_json);
    Ok(())
}

pub async fn rollback(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let d: Value = client
        .post(&format!("/projects/{project}/rollback"), &json!({}))
        .await?;
    print_deployment("rolled back", &d, as_json);
    Ok(())
}

pub async fn nodes(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let nodes: Value = client.get("/nodes").await?;
    if as_json {
        print_json(&nodes);
        return Ok(());
    }
    let list = nodes.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no nodes yet: `coordinator token create-join --region REGION`, then `edge-node join` on the new host");
        return Ok(());
    }
    println!(
        "{:<12} {:<16} {:<8} {:<16} {:<8} {:<8} LAST CONTACT",
        "ID", "NAME", "REGION", "STATUS", "CONFIG", "BUNDLES"
    );
    for n in list {
        println!(
            "{:<12} {:<16} {:<8} {:<16} {:<8} {:<8} {}",
            n["id"].as_str().unwrap_or(""),
            n["name"].as_str().unwrap_or(""),
            n["region"].as_str().unwrap_or(""),
            n["status"].as_str().unwrap_or(""),
            n["config_version"].as_i64().unwrap_or(0),
            format!(
                "{}/{}",
                n["bundles_present"].as_i64().unwrap_or(0),
                n["bundles_present"].as_i64().unwrap_or(0)
                    + n["bundles_pending"].as_i64().unwrap_or(0)
            ),
            ago(n["last_seen"].as_i64()),
        );
    }
    Ok(())
}

pub async fn create_join_token(
    client: &Client,
    region: &str,
    ttl: i64,
    as_json: bool,
) -> anyhow::Result<()> {
    let t: Value = client
        .post(
            "/join-tokens",
            &json!({ "region": region, "ttl_seconds": ttl }),
        )
        .await?;
    if as_json {
        print_json(&t);
    } else {
        println!("{}", t["token"].as_str().unwrap_or(""));
        eprintln!(
            "one-time join token for region {region}, valid for {ttl} s. On the new host:\n  edge-node join <coordinator-host>:8701 --token <token> --region {region}"
        );
    }
    Ok(())
}
