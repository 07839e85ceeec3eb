//! `bench membership`: kill -9 a node and time when each peer marks it
//! down; restart it and time when every peer sees it alive again.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::Cluster;
use crate::stats::{summarize, Summary};

#[derive(Debug, Serialize)]
pub struct MembershipReport {
    pub nodes: usize,
    pub rounds: usize,
    /// Time from the kill until each survivor marked the node down.
    pub detect_down: Summary,
    /// Time from the kill until the last survivor marked it down.
    pub detect_down_all: Summary,
    /// Time from the restart's "serving" line until every peer saw it alive.
    pub rejoin_all: Summary,
}

pub async fn run(
    cluster: &mut Cluster,
    rounds: usize,
    timeout: Duration,
) -> anyhow::Result<MembershipReport> {
    let n = cluster.edges.len();
    anyhow::ensure!(n >= 2, "membership needs at least 2 nodes");
    cluster.wait_formed(timeout).await?;
    let (mut down, mut down_all, mut rejoin) = (Vec::new(), Vec::new(), Vec::new());
    let bar = indicatif::ProgressBar::new(rounds as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rounds")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_message(format!("membership {n} nodes"));
    for round in 0..rounds {
        let victim = n - 1 - (round % n);
        let id = cluster.edges[victim].node_id.clone();
        let killed = Instant::now();
        cluster.edges[victim].proc.kill9();
        let mut seen: Vec<Option<Duration>> = vec![None; n];
        seen[victim] = Some(Duration::ZERO);
        while seen.iter().any(Option::is_none) {
            anyhow::ensure!(
                killed.elapsed() < timeout,
                "round {round}: not every peer noticed the kill within {timeout:?}"
            );
            for (i, e) in cluster.edges.iter().enumerate() {
                if seen[i].is_none()
                    && e.status().is_some_and(|s| {
                        s.members
                            .iter()
                            .any(|m| m.node_id == id && m.state == "down")
                    })
                {
                    seen[i] = Some(killed.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let per: Vec<f64> = seen
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, d)| d.unwrap().as_secs_f64() * 1000.0)
            .collect();
        down_all.push(per.iter().copied().fold(0.0, f64::max));
        down.extend(per);

        cluster.restart(victim)?;
        let restarted = Instant::now();
        loop {
            anyhow::ensure!(
                restarted.elapsed() < timeout,
                "round {round}: the restarted node was not seen alive within {timeout:?}"
            );
            let all = cluster
                .edges
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != victim)
                .all(|(_, e)| {
                    e.status().is_some_and(|s| {
                        s.members
                            .iter()
                            .any(|m| m.node_id == id && m.state == "alive")
                    })
                });
            if all {
                rejoin.push(restarted.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cluster.wait_formed(timeout).await?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(MembershipReport {
        nodes: n,
        rounds,
        detect_down: summarize(&down),
        detect_down_all: summarize(&down_all),
        rejoin_all: summarize(&rejoin),
    })
}
