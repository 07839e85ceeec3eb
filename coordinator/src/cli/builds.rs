//! Client commands for builds from git: connect a repository, queue a
//! build, follow its log, cancel, redeploy.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

use super::client::Client;
use super::commands::print_json;
use crate::api::views::{BuildLogPage, BuildView, GitView};
use crate::store::BuildStatus;

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

fn print_git(v: &GitView, as_json: bool) {
    if as_json {
        print_json(v);
        return;
    }
    let s = &v.settings;
    println!("repository:   {}", s.url);
    println!("branch:       {} (production)", s.branch);
    for (k, value) in [
        ("root_dir", &s.root_dir),
        ("install_command", &s.install_command),
        ("build_command", &s.build_command),
        ("output_dir", &s.output_dir),
    ] {
        if let Some(value) = value {
            println!("{:<13} {value}", format!("{k}:"));
        }
    }
    println!("auto-promote: {}", s.auto_promote);
    println!("webhook URL:  {}", v.webhook_url);
    println!("webhook secret (GitHub/Gitea HMAC secret, GitLab token):");
    println!("  {}", v.webhook_secret);
}

/// `coordinator git PROJECT [--git URL …]`: show or set the connection.
pub async fn git(
    client: &Client,
    project: &str,
    set: Option<GitArgs>,
    as_json: bool,
) -> anyhow::Result<()> {
    let v: GitView = match set {
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
    let v: BuildView = client
        .post(
            &format!("/projects/{project}/builds"),
            &serde_json::json!({ "branch": branch, "commit": commit }),
        )
        .await?;
    announce(&v, as_json);
    if follow {
        follow_log(client, &v.build.id, as_json).await?;
    }
    Ok(())
}

fn announce(v: &BuildView, as_json: bool) {
    if as_json {
        println!("{}", serde_json::to_string(v).unwrap());
    } else {
        println!(
            "queued {} ({} of {}): {}  branch: {}",
            v.build.id,
            v.build.target.as_str(),
            v.build.git.branch,
            v.url,
            v.branch_url
        );
    }
}

pub async fn cancel(client: &Client, id: &str, as_json: bool) -> anyhow::Result<()> {
    let v: BuildView = client
        .post(&format!("/deployments/{id}/cancel"), &serde_json::json!({}))
        .await?;
    if as_json {
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{}: {}", id, v.build.status.as_str());
    }
    Ok(())
}

pub async fn redeploy(
    client: &Client,
    id: &str,
    follow: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let v: BuildView = client
        .post(
            &format!("/deployments/{id}/redeploy"),
            &serde_json::json!({}),
        )
        .await?;
    announce(&v, as_json);
    if follow {
        follow_log(client, &v.build.id, as_json).await?;
    }
    Ok(())
}

/// Does `id` name a build (so `logs ID` means its build log)?
pub async fn is_build(client: &Client, id: &str) -> bool {
    id.bytes().all(|b| b.is_ascii_alphanumeric())
        && client
            .get::<BuildView>(&format!("/builds/{id}"))
            .await
            .is_ok()
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
        let page: BuildLogPage = client
            .get(&format!(
                "/deployments/{id}/build-logs?after={after}&limit=1000"
            ))
            .await?;
        for l in &page.items {
            if as_json {
                println!("{}", serde_json::to_string(l)?);
            } else {
                println!(
                    "{} {:<6} {}",
                    super::commands::httpdate_ms(l.ts),
                    l.stream,
                    l.line
                );
            }
        }
        after = page.next_after;
        if page.items.len() == 1000 {
            continue;
        }
        if !follow || page.status.is_finished() {
            if follow && page.status != BuildStatus::Ready {
                bail!("build {id} ended: {}", page.status.as_str());
            }
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
