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

pub async fn projects_create(
    client: &Client,
    name: &str,
    team: Option<String>,
    git: Option<super::builds::GitArgs>,
    as_json: bool,
) -> anyhow::Result<()> {
    let p: Value = client
        .post(
            "/projects",
            &json!({ "name": name, "team": team, "git": git }),
        )
        .await?;
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
        "{:<12} {:<16} {:<8} {:<16} {:<8} {:<8} {:<8} {:<10} LAST CONTACT",
        "ID", "NAME", "REGION", "LINK", "MESH", "VERSION", "CONFIG", "BUNDLES"
    );
    for n in list {
        println!(
            "{:<12} {:<16} {:<8} {:<16} {:<8} {:<8} {:<8} {:<10} {}",
            n["id"].as_str().unwrap_or(""),
            n["name"].as_str().unwrap_or(""),
            n["region"].as_str().unwrap_or(""),
            n["status"].as_str().unwrap_or(""),
            n["mesh_state"].as_str().unwrap_or(""),
            n["software_version"].as_str().unwrap_or(""),
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

pub async fn env_set(
    client: &Client,
    project: &str,
    assignment: &str,
    secret: bool,
    env: &str,
) -> anyhow::Result<()> {
    let (name, value) = assignment
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("expected KEY=VALUE"))?;
    let _: Value = client
        .put_json(
            &format!("/projects/{project}/env/{name}"),
            &json!({ "value": value, "secret": secret, "env": env }),
        )
        .await?;
    println!("set {name} ({}{env})", if secret { "secret, " } else { "" });
    Ok(())
}

pub async fn env_list(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let vars: Value = client.get(&format!("/projects/{project}/env")).await?;
    if as_json {
        print_json(&vars);
        return Ok(());
    }
    for v in vars.as_array().cloned().unwrap_or_default() {
        let value = if v["secret"].as_bool() == Some(true) {
            "•••••• (secret)".to_string()
        } else {
            v["value"].as_str().unwrap_or("").to_string()
        };
        println!(
            "{:<11} {:<32} {}",
            v["env"].as_str().unwrap_or(""),
            v["name"].as_str().unwrap_or(""),
            value
        );
    }
    Ok(())
}

pub async fn env_remove(
    client: &Client,
    project: &str,
    name: &str,
    env: &str,
) -> anyhow::Result<()> {
    client
        .delete(&format!("/projects/{project}/env/{name}?env={env}"))
        .await?;
    println!("removed {name} ({env})");
    Ok(())
}

pub async fn outbound(
    client: &Client,
    project: &str,
    hosts: &[String],
    clear: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let path = format!("/projects/{project}/outbound");
    let v: Value = if clear || !hosts.is_empty() {
        client.put_json(&path, &json!({ "hosts": hosts })).await?
    } else {
        client.get(&path).await?
    };
    if as_json {
        print_json(&v);
    } else if v["hosts"].as_array().is_none_or(|h| h.is_empty()) {
        println!("{project}: functions may not make outbound requests");
    } else {
        for h in v["hosts"].as_array().unwrap() {
            println!("{}", h.as_str().unwrap_or(""));
        }
    }
    Ok(())
}

pub struct LogsOptions<'a> {
    pub project: &'a str,
    pub deployment: Option<&'a str>,
    pub stream: Option<&'a str>,
    pub follow: bool,
    pub json: bool,
}

/// Prints function logs; with `follow`, keeps polling with the cursor.
pub async fn logs(client: &Client, o: LogsOptions<'_>) -> anyhow::Result<()> {
    let mut cursor = String::new();
    loop {
        let mut q = format!("/projects/{}/logs?limit=500&cursor={cursor}", o.project);
        if let Some(d) = o.deployment {
            q.push_str(&format!("&deployment={d}"));
        }
        if let Some(s) = o.stream {
            q.push_str(&format!("&stream={s}"));
        }
        let page: Value = client.get(&q).await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for l in &items {
            if o.json {
                println!("{l}");
            } else {
                let ts = l["ts"].as_i64().unwrap_or(0);
                println!(
                    "{} {} {} {} {}",
                    httpdate_ms(ts),
                    l["deployment"].as_str().unwrap_or(""),
                    l["request_id"].as_str().unwrap_or(""),
                    l["stream"].as_str().unwrap_or(""),
                    l["line"].as_str().unwrap_or("")
                );
            }
        }
        cursor = page["next_cursor"].as_str().unwrap_or("").to_string();
        if items.len() == 500 {
            continue;
        }
        if !o.follow {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub(crate) fn httpdate_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
