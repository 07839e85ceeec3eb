//! `bench static`: the same files from an edge node and from nginx, under
//! the same load from the built-in generator, side by side.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::{self, Mode, Proto, Target};
use crate::nginx::Nginx;

pub const HOST: &str = "bench.localhost";

#[derive(Debug, Serialize)]
pub struct Side {
    pub rps: f64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// (latency ms, fraction of requests at or below it), for the CDF plot.
    #[serde(skip)]
    pub cdf: Vec<(f64, f64)>,
}

#[derive(Debug, Serialize)]
pub struct StaticRow {
    pub file: String,
    pub bytes: usize,
    pub proto: Proto,
    pub mode: Mode,
    pub edge: Side,
    pub nginx: Side,
    pub rps_ratio: f64,
    pub p99_ratio: f64,
}

/// Analytics on against off: the same 1 KB HTML page from two edges of
/// one cluster, one started with `--no-analytics`, requested with a
/// browser's user agent (so every request is a page view of a visitor:
/// the recorder's whole path).
#[derive(Debug, Serialize)]
pub struct AnalyticsRow {
    pub file: String,
    pub proto: Proto,
    pub mode: Mode,
    /// Pairs of alternating short runs; each side is the sum of its runs.
    pub rounds: usize,
    /// Nodes on one half of the CPUs, the load generator on the other.
    pub pinned: bool,
    pub on: Side,
    pub off: Side,
    /// on / off requests per second over all runs (1.0: no cost).
    pub rps_ratio: f64,
    /// The median of the pairs' own on / off ratios.
    pub median_pair_ratio: f64,
}

pub const BROWSER_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
/// The page the analytics comparison requests.
const PAGE: &str = "1k.html";

pub const FILES: [(&str, usize); 3] = [
    ("1k.bin", 1024),
    ("100k.bin", 100 * 1024),
    ("1m.bin", 1 << 20),
];

pub fn side(r: &load::LoadResult) -> Side {
    // Every recorded value with the share of requests at or below it: the
    // exact empirical CDF (a few thousand distinct values at most).
    let total = r.latency.len().max(1) as f64;
    let mut seen = 0u64;
    let cdf = r
        .latency
        .iter_recorded()
        .map(|v| {
            seen += v.count_since_last_iteration();
            (v.value_iterated_to() as f64 / 1000.0, seen as f64 / total)
        })
        .collect();
    Side {
        rps: r.rps(),
        errors: r.errors,
        p50_ms: r.quantile_ms(0.5),
        p90_ms: r.quantile_ms(0.9),
        p99_ms: r.quantile_ms(0.99),
        p999_ms: r.quantile_ms(0.999),
        cdf,
    }
}

fn tls_config(roots_pem: &[&str]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in roots_pem {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(c?)?;
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

pub struct Plan {
    pub protos: Vec<Proto>,
    pub mode: Mode,
    pub duration: Duration,
    /// Bound on waiting for the deploy to be served.
    pub timeout: Duration,
}

pub async fn run(
    cluster: &Cluster,
    plan: &Plan,
    progress: &indicatif::MultiProgress,
) -> anyhow::Result<Vec<StaticRow>> {
    let site = cluster.root.path().join("static-site");
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("index.html"), "<h1>bench</h1>")?;
    std::fs::write(site.join(PAGE), html_page(1024))?;
    for (name, len) in FILES {
        std::fs::write(site.join(name), crate::propagate::noise(name, len))?;
    }
    cluster.deploy(&site, "bench").await?;
    let edge = &cluster.edges[0];
    // The edge switches once it holds every blob.
    serves(edge.http, "/1m.bin", plan.timeout).await?;

    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])?.self_signed(&key)?;
    let nginx = Nginx::start(
        &cluster.root.path().join("nginx"),
        &site,
        &cert.pem(),
        &key.serialize_pem(),
    )?;
    let tls = tls_config(&[&cluster.ca_pem()?, &cert.pem()])?;

    let mut rows = Vec::new();
    for &proto in &plan.protos {
        for (name, bytes) in FILES {
            let target = |addr| Target {
                addr,
                host: HOST.into(),
                path: format!("/{name}"),
                proto,
                tls: Some(tls.clone()),
                user_agent: None,
            };
            let (edge_addr, nginx_addr) = if proto.tls() {
                (edge.https, nginx.https)
            } else {
                (edge.http, nginx.http)
            };
            let mut sides = Vec::new();
            for (who, addr) in [("edge", edge_addr), ("nginx", nginx_addr)] {
                let bar =
                    progress.add(indicatif::ProgressBar::new(plan.duration.as_millis() as u64));
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{msg:32} [{bar:30}] {elapsed}")
                        .unwrap()
                        .progress_chars("=> "),
                );
                bar.set_message(format!("{who} {name} {proto:?}"));
                let ticker = {
                    let bar = bar.clone();
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            bar.inc(100);
                        }
                    })
                };
                let r = load::run(&target(addr), plan.mode, plan.duration).await;
                ticker.abort();
                bar.finish_and_clear();
                sides.push(side(&r?));
            }
            let nginx_side = sides.pop().unwrap();
            let edge_side = sides.pop().unwrap();
            rows.push(StaticRow {
                file: name.into(),
                bytes,
                proto,
                mode: plan.mode,
                rps_ratio: edge_side.rps / nginx_side.rps,
                p99_ratio: edge_side.p99_ms / nginx_side.p99_ms,
                edge: edge_side,
                nginx: nginx_side,
            });
        }
    }
    Ok(rows)
}

/// Waits until the edge at `addr` answers `path` of the bench's host with
/// 200, for at most `timeout`.
async fn serves(addr: std::net::SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let r = http
            .get(format!("http://{addr}{path}"))
            .header("Host", HOST)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "the edge at {addr} did not serve {path} within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTML page of `len` bytes.
fn html_page(len: usize) -> String {
    let head = "<!doctype html><title>bench</title><p>";
    let mut s = String::with_capacity(len);
    s.push_str(head);
    while s.len() < len {
        s.push('x');
    }
    s
}

/// Analytics on (`cluster.edges[0]`) against off (`cluster.edges[1]`,
/// started with `--no-analytics`) for a 1 KB page over HTTP/1.1. The two
/// take turns in short slices (`pairs` of each), both pinned to the same
/// half of the CPUs and the load generator to the other half where there
/// are two or more: on a shared machine whose speed drifts within a minute,
/// one long run each would compare different moments, not the two nodes.
pub async fn analytics_cost(
    cluster: &Cluster,
    plan: &Plan,
    pairs: usize,
    slice: Duration,
) -> anyhow::Result<AnalyticsRow> {
    anyhow::ensure!(
        cluster.edges.len() >= 2,
        "the analytics comparison needs two edges"
    );
    anyhow::ensure!(pairs > 0, "at least one pair of runs");
    let (on, off) = (&cluster.edges[0], &cluster.edges[1]);
    for edge in [on, off] {
        serves(edge.http, &format!("/{PAGE}"), plan.timeout).await?;
    }
    let (allowed, pinned) = crate::pin::split_if(true);
    if let Some(split) = &pinned {
        for e in [on, off] {
            crate::pin::pin_process(e.proc.child.id(), &split.servers)?;
        }
        crate::pin::pin_process(std::process::id(), &split.load)?;
    }
    let target = |addr| Target {
        addr,
        host: HOST.into(),
        path: format!("/{PAGE}"),
        proto: Proto::H1,
        tls: None,
        user_agent: Some(http::HeaderValue::from_static(BROWSER_UA)),
    };
    let mut totals: [Option<load::LoadResult>; 2] = [None, None];
    let mut ratios = Vec::with_capacity(pairs);
    for i in 0..pairs {
        // Alternate who goes first, so neither always follows the other.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rps = [0.0; 2];
        for which in order {
            let addr = [on.http, off.http][which];
            let r = load::run(&target(addr), plan.mode, slice).await?;
            rps[which] = r.requests as f64 / r.elapsed.as_secs_f64();
            match &mut totals[which] {
                Some(t) => {
                    t.requests += r.requests;
                    t.errors += r.errors;
                    t.elapsed += r.elapsed;
                    let _ = t.latency.add(&r.latency);
                }
                slot @ None => *slot = Some(r),
            }
        }
        ratios.push(rps[0] / rps[1]);
    }
    if let (Some(_), Some(all)) = (&pinned, &allowed) {
        crate::pin::pin_process(std::process::id(), all)?;
    }
    ratios.sort_by(f64::total_cmp);
    let [Some(t_on), Some(t_off)] = totals else {
        anyhow::bail!("no runs");
    };
    let (on, off) = (side(&t_on), side(&t_off));
    Ok(AnalyticsRow {
        file: PAGE.into(),
        proto: Proto::H1,
        mode: plan.mode,
        rounds: pairs,
        pinned: pinned.is_some(),
        rps_ratio: on.rps / off.rps,
        median_pair_ratio: ratios[ratios.len() / 2],
        on,
        off,
    })
}
