//! `bench propagate`: deploy K times and time from the finalize call until
//! every node serves the new version; count the blob bytes the coordinator
//! sent per deploy.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::Cluster;
use crate::stats::{summarize, Summary};

#[derive(Debug, Serialize)]
pub struct PropagateReport {
    pub nodes: usize,
    pub peer_assist: bool,
    pub deploys: usize,
    pub changed_bytes_per_deploy: u64,
    /// Finalize → a node holds the new signed config, every node of every deploy.
    pub config_per_node: Summary,
    /// Finalize → the last node holds it, per deploy.
    pub config_all_nodes: Summary,
    /// Finalize → a node serves the new version, every node of every deploy.
    pub per_node: Summary,
    /// Finalize → the last node serves it, per deploy.
    pub all_nodes: Summary,
    /// Blob bytes the coordinator sent, per deploy (mean).
    pub coordinator_egress_per_deploy: u64,
    /// That, divided by the bytes a deploy changed.
    pub egress_ratio: f64,
    /// Per node (in join order): median finalize → signed config.
    pub node_config_p50_ms: Vec<f64>,
    /// Per node: median finalize → serving the new version.
    pub node_serving_p50_ms: Vec<f64>,
}

pub struct SiteShape {
    pub changed_files: usize,
    pub file_size: usize,
    pub stable_files: usize,
}

/// Pseudo-random, incompressible bytes (so precompression does not shrink
/// what the coordinator has to send).
pub fn noise(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut i = 0u64;
    while out.len() < len {
        let mut h = blake3::Hasher::new();
        h.update(seed.as_bytes());
        h.update(&i.to_le_bytes());
        out.extend_from_slice(h.finalize().as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn write_site(dir: &Path, round: usize, shape: &SiteShape) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir.join("static"))?;
    let marker = format!("<h1>deploy-{round}</h1>");
    std::fs::write(dir.join("index.html"), &marker)?;
    let mut changed = marker.len() as u64;
    for i in 0..shape.stable_files {
        let p = dir.join("static").join(format!("s{i}.txt"));
        if !p.exists() {
            std::fs::write(p, noise(&format!("stable-{i}"), 1024))?;
        }
    }
    for i in 0..shape.changed_files {
        let bytes = noise(&format!("r{round}-{i}"), shape.file_size);
        changed += bytes.len() as u64;
        std::fs::write(dir.join(format!("c{i}.bin")), bytes)?;
    }
    Ok(changed)
}

pub async fn run(
    cluster: &Cluster,
    deploys: usize,
    shape: &SiteShape,
    timeout: Duration,
) -> anyhow::Result<PropagateReport> {
    cluster.wait_formed(timeout).await?;
    let client = cluster.client()?;
    let site = cluster.root.path().join("site");
    let http = reqwest::Client::new();
    let (mut per_node, mut all, mut egress) = (Vec::new(), Vec::new(), Vec::new());
    let (mut cfg_node, mut cfg_all) = (Vec::new(), Vec::new());
    let n = cluster.edges.len();
    let (mut by_node_cfg, mut by_node_serve) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    let bar = indicatif::ProgressBar::new(deploys as u64 + 1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} deploys")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_message(format!("propagate {n} nodes"));
    let mut changed = 0;
    // Deploy 0 warms the cluster (project creation, first certificates).
    for round in 0..=deploys {
        changed = write_site(&site, round, shape)?;
        let staged = cluster.stage(&client, &site, "bench").await?;
        let before = cluster.egress().await?;
        let t0 = Instant::now();
        coordinator::cli::deploy::finalize(&client, staged).await?;
        // The coordinator has published the new version when finalize returns.
        let want = cluster.config_version().await?;
        let config_waits = cluster.edges.iter().map(|e| async move {
            loop {
                if e.status().is_some_and(|s| s.config_version >= want) {
                    return Ok(t0.elapsed());
                }
                if t0.elapsed() > timeout {
                    anyhow::bail!("{} did not get config {want} within {timeout:?}", e.node_id);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let config_times = futures::future::try_join_all(config_waits);
        let marker = format!("deploy-{round}");
        let waits = cluster.edges.iter().map(|e| {
            let (http, marker) = (http.clone(), marker.clone());
            let url = format!("http://{}/", e.http);
            async move {
                loop {
                    let ok = match http
                        .get(&url)
                        .header("Host", "bench.localhost")
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            r.text().await.is_ok_and(|b| b.contains(&marker))
                        }
                        _ => false,
                    };
                    if ok {
                        return Ok(t0.elapsed());
                    }
                    if t0.elapsed() > timeout {
                        anyhow::bail!("{url} did not serve {marker} within {timeout:?}");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        let (config_times, times): (Vec<Duration>, Vec<Duration>) =
            futures::future::try_join(config_times, futures::future::try_join_all(waits)).await?;
        // Let in-flight transfers finish counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = cluster.egress().await? - before;
        bar.inc(1);
        if round == 0 {
            continue;
        }
        for (i, (c, t)) in config_times.iter().zip(&times).enumerate() {
            by_node_cfg[i].push(c.as_secs_f64() * 1000.0);
            by_node_serve[i].push(t.as_secs_f64() * 1000.0);
        }
        let cms: Vec<f64> = config_times
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        cfg_all.push(cms.iter().copied().fold(0.0, f64::max));
        cfg_node.extend(cms);
        let ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        all.push(ms.iter().copied().fold(0.0, f64::max));
        per_node.extend(ms);
        egress.push(sent);
    }
    bar.finish_and_clear();
    let mean_egress = egress.iter().sum::<u64>() / egress.len().max(1) as u64;
    Ok(PropagateReport {
        nodes: cluster.edges.len(),
        peer_assist: cluster.peer_assist,
        deploys,
        changed_bytes_per_deploy: changed,
        config_per_node: summarize(&cfg_node),
        config_all_nodes: summarize(&cfg_all),
        per_node: summarize(&per_node),
        all_nodes: summarize(&all),
        coordinator_egress_per_deploy: mean_egress,
        egress_ratio: mean_egress as f64 / changed.max(1) as f64,
        node_config_p50_ms: by_node_cfg.iter().map(|v| summarize(v).p50_ms).collect(),
        node_serving_p50_ms: by_node_serve.iter().map(|v| summarize(v).p50_ms).collect(),
    })
}
