//! `bench static`: the same files from an edge node and from nginx, under
//! the same load from the built-in generator, side by side; and both
//! servers' resident sets, idle (the edge serving many sites) and at
//! their peak under the 1 MB load.
//!
//! HTTP/3 rows compare the edge's HTTP/3 against nginx's HTTP/2: Debian's
//! nginx has no HTTP/3 ([`reference_proto`]).

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::{self, Mode, Proto, Target};
use crate::nginx::Nginx;
use crate::rss;

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
    /// What the edge was driven with.
    pub proto: Proto,
    /// What nginx was driven with: `proto`, but HTTP/2 for HTTP/3.
    pub reference_proto: Proto,
    pub mode: Mode,
    pub edge: Side,
    pub nginx: Side,
    /// Slices each side ran, taking turns.
    pub rounds: usize,
    /// The median of the rounds' own edge/nginx req/s ratios.
    pub rps_ratio: f64,
    /// edge/nginx req/s over all rounds.
    pub rps_ratio_total: f64,
    /// edge/nginx p99, each side's latencies over all its rounds.
    pub p99_ratio: f64,
}

/// Resident sets (VmRSS) of the edge process and of nginx (its master and
/// workers summed: pages they share count once per process).
#[derive(Debug, Serialize)]
pub struct RssReport {
    /// Sites the edge serves when idle: the bench site and small ones
    /// (an index, a stylesheet and a 10 KB script each).
    pub sites: usize,
    /// The edge, about 2 s after serving each site's index once.
    pub edge_idle_bytes: u64,
    /// nginx at the same moment (it serves the bench site's one root).
    pub nginx_idle_bytes: u64,
    /// nginx's processes counted (master + workers).
    pub nginx_processes: usize,
    /// The peaks during each protocol's 1 MB run, read every 100 ms.
    pub under_load: Vec<LoadRss>,
}

#[derive(Debug, Serialize)]
pub struct LoadRss {
    pub file: String,
    pub proto: Proto,
    pub reference_proto: Proto,
    pub edge_peak_bytes: u64,
    pub nginx_peak_bytes: u64,
}

/// What [`run`] measured.
pub struct StaticRun {
    pub rows: Vec<StaticRow>,
    pub rss: RssReport,
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

/// The file whose runs the resident sets are sampled during.
const RSS_FILE: &str = "1m.bin";

/// What nginx is driven with when the edge is driven with `proto`: the
/// same, but HTTP/2 for HTTP/3 (Debian's nginx is built without HTTP/3).
pub fn reference_proto(proto: Proto) -> Proto {
    match proto {
        Proto::H3 => Proto::H2,
        p => p,
    }
}

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

pub(crate) fn tls_config(roots_pem: &[&str]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
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
    /// `duration` is split into this many slices per side, the two sides
    /// taking turns.
    pub rounds: usize,
    /// Bound on waiting for the deploy to be served (and, once all are
    /// deployed, for the edge to serve every site).
    pub timeout: Duration,
    /// Sites the edge serves for the idle resident set, the bench site
    /// included.
    pub sites: usize,
}

pub async fn run(
    cluster: &Cluster,
    plan: &Plan,
    progress: &indicatif::MultiProgress,
) -> anyhow::Result<StaticRun> {
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
    let small = small_sites(cluster, plan.sites.saturating_sub(1), plan.timeout).await?;

    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec![HOST.to_string()])?.self_signed(&key)?;
    let nginx = Nginx::start(
        &cluster.root.path().join("nginx"),
        &site,
        &cert.pem(),
        &key.serialize_pem(),
    )?;
    let tls = tls_config(&[&cluster.ca_pem()?, &cert.pem()])?;

    // Idle: every site's index served once (small_sites waited on each),
    // nginx's once, then a pause.
    let r = reqwest::Client::new()
        .get(format!("http://{}/index.html", nginx.http))
        .header("Host", HOST)
        .send()
        .await?;
    anyhow::ensure!(
        r.status() == 200,
        "nginx answers {} for /index.html",
        r.status()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let edge_pid = edge.proc.child.id();
    let edge_idle_bytes = rss::rss_bytes(edge_pid).context("the edge's resident set")?;
    let (nginx_idle_bytes, nginx_processes) =
        rss::tree_rss_bytes(nginx.pid()).context("nginx's resident set")?;
    let mut rss = RssReport {
        sites: 1 + small,
        edge_idle_bytes,
        nginx_idle_bytes,
        nginx_processes,
        under_load: Vec::new(),
    };

    let mut rows = Vec::new();
    for &proto in &plan.protos {
        let reference = reference_proto(proto);
        for (name, bytes) in FILES {
            let target = |addr, proto| Target {
                addr,
                host: HOST.into(),
                path: format!("/{name}"),
                proto,
                tls: Some(tls.clone()),
                user_agent: None,
                expect: None,
            };
            // HTTP/3: UDP to the edge's HTTPS address.
            let edge_addr = if proto.tls() { edge.https } else { edge.http };
            let nginx_addr = if reference.tls() {
                nginx.https
            } else {
                nginx.http
            };
            let servers = [
                ("edge", edge_addr, proto, edge_pid, false),
                ("nginx", nginx_addr, reference, nginx.pid(), true),
            ];
            let bar = progress.add(indicatif::ProgressBar::new(2 * plan.rounds as u64));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg:32} [{bar:30}] {elapsed}")
                    .unwrap()
                    .progress_chars("=> "),
            );
            bar.set_message(format!("{name} {proto:?}"));
            let peaks: RefCell<[Option<u64>; 2]> = RefCell::default();
            let turns = load::take_turns(plan.rounds, |which| {
                let (who, addr, p, pid, tree) = servers[which];
                let target = target(addr, p);
                let (peaks, bar) = (&peaks, &bar);
                let slice = plan.duration / plan.rounds as u32;
                async move {
                    let sampler = (name == RSS_FILE).then(|| rss::Peak::start(pid, tree));
                    let r = load::run(&target, plan.mode, slice).await;
                    let peak = sampler.map(rss::Peak::stop);
                    let r = r.with_context(|| format!("{who} {name} over {}", p.name()))?;
                    if let Some(peak) = peak {
                        let peak = peak.with_context(|| format!("{who}'s resident set"))?;
                        let mut peaks = peaks.borrow_mut();
                        peaks[which] = Some(peaks[which].unwrap_or(0).max(peak));
                    }
                    bar.inc(1);
                    Ok(r)
                }
            })
            .await?;
            bar.finish_and_clear();
            let peaks = peaks.into_inner();
            if let [Some(edge_peak_bytes), Some(nginx_peak_bytes)] = peaks {
                rss.under_load.push(LoadRss {
                    file: name.into(),
                    proto,
                    reference_proto: reference,
                    edge_peak_bytes,
                    nginx_peak_bytes,
                });
            }
            let [edge_total, nginx_total] = &turns.sides;
            let (edge_side, nginx_side) = (side(edge_total), side(nginx_total));
            rows.push(StaticRow {
                file: name.into(),
                bytes,
                proto,
                reference_proto: reference,
                mode: plan.mode,
                rounds: plan.rounds,
                rps_ratio: turns.median_ratio,
                rps_ratio_total: edge_side.rps / nginx_side.rps,
                p99_ratio: edge_side.p99_ms / nginx_side.p99_ms,
                edge: edge_side,
                nginx: nginx_side,
            });
        }
    }
    Ok(StaticRun { rows, rss })
}

/// Deploys `n` small sites (`site-001`, …: an index, a stylesheet and a
/// 10 KB script, distinct per site), four at a time, and waits until the
/// edge serves each one's index, all within `timeout` of the last deploy.
/// Returns `n`.
async fn small_sites(cluster: &Cluster, n: usize, timeout: Duration) -> anyhow::Result<usize> {
    let root = cluster.root.path().join("sites");
    let names: Vec<String> = (1..=n).map(|i| format!("site-{i:03}")).collect();
    for name in &names {
        write_small_site(&root.join(name), name)?;
    }
    let root = &root;
    futures::stream::iter(names.iter())
        .map(|name| async move {
            cluster
                .deploy(&root.join(name), name)
                .await
                .with_context(|| format!("deploying site {name}"))
        })
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
    let http = reqwest::Client::new();
    let addr = cluster.edges[0].http;
    let deadline = Instant::now() + timeout;
    for name in &names {
        let host = format!("{name}.localhost");
        let marker = format!("<h1>{name}</h1>");
        loop {
            let r = http
                .get(format!("http://{addr}/"))
                .header("Host", &host)
                .send()
                .await;
            if let Ok(r) = r {
                if r.status() == 200 && r.text().await.is_ok_and(|b| b.contains(&marker)) {
                    break;
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the edge at {addr} did not serve site {name} ({host}) within {timeout:?} of the last deploy"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(n)
}

/// A small site of its own for `name`: index.html, app.css, a 10 KB app.js.
fn write_small_site(dir: &Path, name: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("index.html"),
        format!(
            "<!doctype html><title>{name}</title><link rel=stylesheet href=/app.css><script src=/app.js defer></script><h1>{name}</h1>"
        ),
    )?;
    let hue = blake3::hash(name.as_bytes()).as_bytes()[0];
    std::fs::write(
        dir.join("app.css"),
        format!("/* {name} */ body {{ font: 16px sans-serif; color: hsl({hue}, 40%, 30%) }}\n"),
    )?;
    let mut js = format!("// {name}\n");
    let mut i = 0;
    while js.len() < 10 * 1024 {
        let v = blake3::hash(format!("{name}/{i}").as_bytes()).to_hex();
        js += &format!("var v{i} = \"{}\";\n", &v[..32]);
        i += 1;
    }
    std::fs::write(dir.join("app.js"), js)?;
    Ok(())
}

/// Waits until the edge at `addr` answers `path` of the bench's host with
/// 200, for at most `timeout`.
pub(crate) async fn serves(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
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
        expect: None,
    };
    let turns = load::take_turns(pairs, |which| {
        let target = target([on.http, off.http][which]);
        async move { load::run(&target, plan.mode, slice).await }
    })
    .await?;
    if let (Some(_), Some(all)) = (&pinned, &allowed) {
        crate::pin::pin_process(std::process::id(), all)?;
    }
    let (on, off) = (side(&turns.sides[0]), side(&turns.sides[1]));
    Ok(AnalyticsRow {
        file: PAGE.into(),
        proto: Proto::H1,
        mode: plan.mode,
        rounds: pairs,
        pinned: pinned.is_some(),
        rps_ratio: on.rps / off.rps,
        median_pair_ratio: turns.median_ratio,
        on,
        off,
    })
}
