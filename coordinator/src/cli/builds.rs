//! Client commands for builds from git: connect a repository, queue a
//! build, follow its log, cancel, redeploy.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;

use super::client::Client;

#[derive(Debug, Default, Serialize)]
pub struct GitArgs {
    pub url: String,
    pub branch: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dir: Option<String>,
    pub auto_promote: bool,
}

fn print_git(v: &Value, as_json: bool) {
    if as_json {
        println!("{v:#}");
        return;
    }
    println!("repository:   {}", v["url"].as_str().unwrap_or(""));
    println!(
        "branch:       {} (production)",
        v["branch"].as_str().unwrap_or("")
    );
    for k in ["root_dir", "install_command", "build_command", "output_dir"] {
        if let Some(s) = v[k].as_str() {
            println!("{:<13} {s}", format!("{k}:"));
        }
    }
    println!(
        "auto-promote: {}",
        v["auto_promote"].as_bool().unwrap_or(true)
    );
    println!("webhook URL:  {}", v["webhook_url"].as_str().unwrap_or(""));
    println!("webhook secret (GitHub/Gitea HMAC secret, GitLab token):");
    println!("  {}", v["webhook_secret"].as_str().unwrap_or(""));
}

/// `coordinator git PROJECT [--url …]`: show or set the connection.
pub async fn git(
    client: &Client,
    project: &str,
    set: Option<GitArgs>,
    as_json: bool,
) -> anyhow::Result<()> {
    let v: Value = match set {
        Some(a) => {
            client
                .put_json(&format!("/projects/{project}/git"), &a)
                .await?
        }
        None => client.get(&format!("/projects/{project}/git")).await?,
    };
    print_git(&v, as_json);
    Ok(())
}

/// `coordinator build PROJECT [--branch B] [--commit SHA] [--follow]`.
pub async fn build(
    client: &Client,
    project: &str,
    branch: Option<&str>,
    commit: Option<&str>,
    follow: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let v: Value = client
        .post(
            &format!("/projects/{project}/builds"),
            &serde_json::json!({ "branch": branch, "commit": commit }),
        )
        .await?;
    announce(&v, as_json);
    if follow {
        follow_log(client, v["id"].as_str().unwrap_or_default(), as_json).await?;
    }
    Ok(())
}

fn announce(v: &Value, as_json: bool) {
    if as_json {
        println!("{v}");
    } else {
        println!(
            "queued {} ({} of {}): {}  branch: {}",
            v["id"].as_str().unwrap_or(""),
            v["target"].as_str().unwrap_or(""),
            v["git"]["branch"].as_str().unwrap_or(""),
            v["url"].as_str().unwrap_or(""),
            v["branch_url"].as_str().unwrap_or("")
        );
    }
}

pub async fn cancel(client: &Client, id: &str, as_json: bool) -> anyhow::Result<()> {
    let v: Value = client
        .post(&format!("/deployments/{id}/cancel"), &serde_json::json!({}))
        .await?;
    if as_json {
        println!("{v}");
    } else {
        println!("{}: {}", id, v["status"].as_str().unwrap_or(""));
    }
    Ok(())
}

pub async fn redeploy(
    client: &Client,
    id: &str,
    follow: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let v: Value = client
        .post(
            &format!("/deployments/{id}/redeploy"),
            &serde_json::json!({}),
        )
        .await?;
    announce(&v, as_json);
    if follow {
        follow_log(client, v["id"].as_str().unwrap_or_default(), as_json).await?;
    }
    Ok(())
}

/// Does `id` name a build (so `logs ID` means its build log)?
pub async fn is_build(client: &Client, id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_alphanumeric())
        && client.get::<Value>(&format!("/builds/{id}")).await.is_ok()
}

/// Prints a build's log; with `follow`, until the build ends, failing the
/// command when the build did not become ready.
pub async fn follow_log(client: &Client, id: &str, as_json: bool) -> anyhow::Result<()> {
    print_log(client, id, true, as_json).await
}

pub async fn print_log(
    client: &Client,
    id: &str,
    follow: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut after = 0i64;
    loop {
        let page: Value = client
            .get(&format!(
                "/deployments/{id}/build-logs?after={after}&limit=1000"
            ))
            .await?;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        for l in &items {
            if as_json {
                println!("{l}");
            } else {
                println!(
                    "{} {:<6} {}",
                    super::commands::httpdate_ms(l["ts"].as_i64().unwrap_or(0)),
                    l["stream"].as_str().unwrap_or(""),
                    l["line"].as_str().unwrap_or("")
                );
            }
        }
        after = page["next_after"].as_i64().unwrap_or(after);
        if items.len() == 1000 {
            continue;
        }
        let status = page["status"].as_str().unwrap_or("");
        let ended = matches!(status, "ready" | "error" | "canceled");
        if !follow || ended {
            if follow && status != "ready" {
                bail!("build {id} ended: {status}");
            }
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
