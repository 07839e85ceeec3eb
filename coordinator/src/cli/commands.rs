//! The small client commands: projects, deployments, promote, rollback,
//! nodes, join tokens.

use serde::Serialize;
use serde_json::json;

use super::client::Client;
use crate::api::env::Outbound;
use crate::api::extract::Page;
use crate::api::views::{DeploymentView, EnvVarView, FunctionLogPage, ProjectView, VarSet};
use crate::app::cluster::{NewJoinToken, NodeView};

pub(crate) fn print_json<T: Serialize>(v: &T) {
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
        let page: Page<ProjectView> = client.get(&format!("/projects?limit=200{q}")).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if as_json {
        print_json(&all);
        return Ok(());
    }
    if all.is_empty() {
        println!("no projects yet: `coordinator deploy ./site --project NAME --prod` creates one");
    }
    for p in all {
        println!(
            "{:<24} {:<12} {}",
            p.project.name,
            p.project.production_deployment.as_deref().unwrap_or("-"),
            p.production_url
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
    let p: ProjectView = client
        .post(
            "/projects",
            &json!({ "name": name, "team": team, "git": git }),
        )
        .await?;
    if as_json {
        print_json(&p);
    } else {
        println!("created project {} ({})", name, p.production_url);
    }
    Ok(())
}

pub async fn deployments(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let page: Page<DeploymentView> = client
        .get(&format!("/projects/{project}/deployments?limit=50"))
        .await?;
    if as_json {
        print_json(&page);
        return Ok(());
    }
    for d in page.items {
        println!(
            "{:<12} {:<10} {:<10} {:<4} {:<10} {}",
            d.deployment.id,
            d.deployment.status.as_str(),
            d.deployment.target.as_str(),
            if d.is_production { "prod" } else { "" },
            ago(Some(d.deployment.created_at)),
            d.url,
        );
    }
    Ok(())
}

fn print_deployment(action: &str, d: &DeploymentView, as_json: bool) {
    if as_json {
        print_json(d);
        return;
    }
    println!(
        "{action}: {} now serves deployment {}",
        d.production_url.as_deref().unwrap_or(&d.project),
        d.deployment.id
    );
}

pub async fn promote(client: &Client, deployment: &str, as_json: bool) -> anyhow::Result<()> {
    let d: DeploymentView = client
        .post(&format!("/deployments/{deployment}/promote"), &json!({}))
        .await?;
    print_deployment("promoted", &d, as_json);
    Ok(())
}

pub async fn rollback(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let d: DeploymentView = client
        .post(&format!("/projects/{project}/rollback"), &json!({}))
        .await?;
    print_deployment("rolled back", &d, as_json);
    Ok(())
}

pub async fn nodes(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let list: Vec<NodeView> = client.get("/nodes").await?;
    if as_json {
        print_json(&list);
        return Ok(());
    }
    if list.is_empty() {
        println!("no nodes yet: `coordinator token create-join --region REGION`, then `edge-node join` on the new host");
        return Ok(());
    }
    println!(
        "{:<12} {:<16} {:<8} {:<16} {:<8} {:<8} {:<8} {:<10} {:<11} LAST CONTACT",
        "ID", "NAME", "REGION", "LINK", "MESH", "VERSION", "CONFIG", "BUNDLES", "CERT ENDS"
    );
    for n in list {
        println!(
            "{:<12} {:<16} {:<8} {:<16} {:<8} {:<8} {:<8} {:<10} {:<11} {}",
            n.node.id,
            n.node.name,
            n.node.region,
            n.status,
            n.mesh_state,
            n.node.software_version,
            n.node.config_version,
            format!(
                "{}/{}",
                n.node.bundles_present,
                n.node.bundles_present + n.node.bundles_pending
            ),
            n.node
                .cert_not_after
                .map(in_days)
                .unwrap_or_else(|| "-".into()),
            ago(n.node.last_seen),
        );
    }
    Ok(())
}

/// "in 12d", "in 5h", "expired" for a Unix time in seconds.
fn in_days(t: i64) -> String {
    let left = t - crate::store::now_ms() / 1000;
    match left {
        l if l <= 0 => "expired".into(),
        l if l >= 86400 => format!("in {}d", l / 86400),
        l if l >= 3600 => format!("in {}h", l / 3600),
        l => format!("in {}m", (l / 60).max(1)),
    }
}

pub async fn remove_node(client: &Client, id: &str) -> anyhow::Result<()> {
    client.delete(&format!("/nodes/{id}")).await?;
    eprintln!("node {id} removed: its certificate is refused from now on");
    Ok(())
}

pub async fn create_join_token(
    client: &Client,
    region: &str,
    ttl: i64,
    as_json: bool,
) -> anyhow::Result<()> {
    let t: NewJoinToken = client
        .post(
            "/join-tokens",
            &json!({ "region": region, "ttl_seconds": ttl }),
        )
        .await?;
    if as_json {
        print_json(&t);
    } else {
        println!("{}", t.token);
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
    let _: VarSet = client
        .put_json(
            &format!("/projects/{project}/env/{name}"),
            &json!({ "value": value, "secret": secret, "env": env }),
        )
        .await?;
    println!("set {name} ({}{env})", if secret { "secret, " } else { "" });
    Ok(())
}

pub async fn env_list(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let vars: Vec<EnvVarView> = client.get(&format!("/projects/{project}/env")).await?;
    if as_json {
        print_json(&vars);
        return Ok(());
    }
    for v in vars {
        let value = if v.secret {
            "•••••• (secret)".to_string()
        } else {
            v.value.unwrap_or_default()
        };
        println!("{:<11} {:<32} {}", v.env, v.name, value);
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
    let v: Outbound = if clear || !hosts.is_empty() {
        client.put_json(&path, &json!({ "hosts": hosts })).await?
    } else {
        client.get(&path).await?
    };
    if as_json {
        print_json(&v);
    } else if v.hosts.is_empty() {
        println!("{project}: functions may not make outbound requests");
    } else {
        for h in &v.hosts {
            println!("{h}");
        }
    }
    Ok(())
}

pub struct LogsOptions<'a> {
    pub project: &'a str,
    pub deployment: Option<&'a str>,
    pub request_id: Option<&'a str>,
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
        if let Some(r) = o.request_id {
            let r: String = r.chars().filter(char::is_ascii_alphanumeric).collect();
            q.push_str(&format!("&request_id={r}"));
        }
        let page: FunctionLogPage = client.get(&q).await?;
        for l in &page.items {
            if o.json {
                println!("{}", serde_json::to_string(l)?);
            } else {
                println!(
                    "{} {} {} {} {}",
                    httpdate_ms(l.ts),
                    l.deployment,
                    l.request_id,
                    l.stream,
                    l.line
                );
            }
        }
        cursor = page.next_cursor;
        if page.items.len() == 500 {
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

pub async fn deployment_rm(client: &Client, id: &str, as_json: bool) -> anyhow::Result<()> {
    client.delete(&format!("/deployments/{id}")).await?;
    if as_json {
        print_json(&json!({ "deleted": id }));
    } else {
        println!("deleted deployment {id}");
    }
    Ok(())
}

pub async fn project_rm(client: &Client, project: &str, as_json: bool) -> anyhow::Result<()> {
    let r: crate::api::projects::ProjectDeleted =
        client.delete_json(&format!("/projects/{project}")).await?;
    if as_json {
        print_json(&r);
    } else {
        println!(
            "deleted project {project} and its {} deployments; the name is free",
            r.deployments_deleted
        );
    }
    Ok(())
}

pub async fn retention(
    client: &Client,
    project: &str,
    preview_days: Option<u32>,
    production_keep: Option<u32>,
    as_json: bool,
) -> anyhow::Result<()> {
    let path = format!("/projects/{project}/retention");
    let r: crate::store::Retention = if preview_days.is_some() || production_keep.is_some() {
        let now: crate::store::Retention = client.get(&path).await?;
        client
            .put_json(
                &path,
                &json!({
                    "preview_days": preview_days.unwrap_or(now.preview_days),
                    "production_keep": production_keep.unwrap_or(now.production_keep),
                }),
            )
            .await?
    } else {
        client.get(&path).await?
    };
    if as_json {
        print_json(&r);
    } else {
        let never = |n: u32, what: &str| match n {
            0 => "kept forever".to_string(),
            n => format!("{n} {what}"),
        };
        println!(
            "previews: deleted after {}\nproduction: the newest {} kept",
            never(r.preview_days, "days"),
            never(r.production_keep, "deployments")
        );
    }
    Ok(())
}

pub async fn gc(client: &Client, as_json: bool) -> anyhow::Result<()> {
    let r: crate::lifecycle::Report = client.post("/admin/gc", &json!({})).await?;
    if as_json {
        print_json(&r);
    } else {
        println!(
            "deleted {} deployments and {} failed builds; expired {} function and {} build log lines; removed {} bundles and {} blobs ({} bytes)",
            r.deployments_deleted,
            r.builds_deleted,
            r.function_log_lines,
            r.build_log_lines,
            r.bundles_deleted,
            r.blobs_swept,
            r.blob_bytes_swept
        );
    }
    Ok(())
}
