//! `bench soak`: one edge under a constant mixed load for a long time —
//! static files, a function and 404s, over HTTP/1.1 and HTTP/2 with TLS —
//! and whether anything drifts: errors, resident memory, open descriptors,
//! latency per window.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::{self, Mode, Proto, Target};
use crate::rss;
use crate::static_files::{serves, tls_config, HOST};

/// How often the edge's RSS and descriptors are read.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

pub struct Plan {
    pub duration: Duration,
    /// Requests per second, all kinds together.
    pub rate: u64,
    /// Connections per kind of traffic.
    pub connections: usize,
    pub window: Duration,
    pub timeout: Duration,
}

/// One kind of request in the mix.
pub struct Kind {
    name: &'static str,
    path: &'static str,
    proto: Proto,
    status: u16,
}

/// The mix; `--rate` is shared equally among them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "page, HTTP/1.1",
        path: "/",
        proto: Proto::H1,
        status: 200,
    },
    Kind {
        name: "100 KB script, HTTP/2",
        path: "/app.js",
        proto: Proto::H2,
        status: 200,
    },
    Kind {
        name: "function, HTTP/1.1",
        path: "/api/hello",
        proto: Proto::H1,
        status: 200,
    },
    Kind {
        name: "function, HTTP/2",
        path: "/api/hello",
        proto: Proto::H2,
        status: 200,
    },
    Kind {
        name: "404, HTTP/1.1",
        path: "/missing",
        proto: Proto::H1,
        status: 404,
    },
    Kind {
        name: "404, HTTP/2",
        path: "/missing.png",
        proto: Proto::H2,
        status: 404,
    },
];

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub at_secs: f64,
    pub rss_bytes: u64,
    pub fds: u64,
}

#[derive(Debug, Serialize)]
pub struct Window {
    /// Seconds from the start of the load to the window's start.
    pub from_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    /// The edge at the window's end.
    pub rss_bytes: u64,
    pub fds: u64,
}

#[derive(Debug, Serialize)]
pub struct KindTotal {
    pub kind: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub rate: u64,
    pub duration_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub kinds: Vec<KindTotal>,
    pub windows: Vec<Window>,
    pub start: Sample,
    pub peak_rss: Sample,
    pub peak_fds: Sample,
    pub end: Sample,
}

fn fds(pid: u32) -> anyhow::Result<u64> {
    let dir = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&dir)
        .with_context(|| format!("reading {dir}"))?
        .count() as u64)
}

fn sample(pid: u32, started: Instant) -> anyhow::Result<Sample> {
    Ok(Sample {
        at_secs: started.elapsed().as_secs_f64(),
        rss_bytes: rss::rss_bytes(pid)?,
        fds: fds(pid)?,
    })
}

pub async fn run(cluster: &Cluster, plan: &Plan) -> anyhow::Result<SoakReport> {
    let site = cluster.root.path().join("soak-site");
    std::fs::create_dir_all(site.join("api"))?;
    std::fs::write(site.join("index.html"), "<h1>soak</h1>".repeat(80))?;
    std::fs::write(
        site.join("app.js"),
        crate::propagate::noise("app.js", 100 * 1024),
    )?;
    let component = tokio::task::spawn_blocking(|| test_support::wasm_fixture("hello")).await?;
    std::fs::copy(&component, site.join("api/hello.wasm"))?;
    cluster.deploy(&site, "bench").await?;
    let edge = &cluster.edges[0];
    serves(edge.http, "/app.js", plan.timeout).await?;
    serves(edge.http, "/api/hello", plan.timeout).await?;
    let tls = tls_config(&[&cluster.ca_pem()?])?;
    let pid = edge.proc.child.id();

    // Each kind gets an equal share of the rate.
    let share = plan.rate / KINDS.len() as u64;
    let started = Instant::now();
    let first = sample(pid, started)?;
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut samples = vec![first];
        loop {
            tokio::select! {
                _ = &mut stopped => return samples,
                _ = tokio::time::sleep(SAMPLE_EVERY) => {
                    if let Ok(s) = sample(pid, started) {
                        samples.push(s);
                    }
                }
            }
        }
    });
    let loads: Vec<_> = KINDS
        .iter()
        .map(|k| {
            let target = Target {
                addr: if k.proto.tls() { edge.https } else { edge.http },
                host: HOST.into(),
                path: k.path.into(),
                proto: k.proto,
                tls: Some(tls.clone()),
                user_agent: None,
                expect: Some(k.status),
            };
            let mode = Mode::Rate {
                rate: share,
                conns: plan.connections,
            };
            let (duration, window) = (plan.duration, plan.window);
            tokio::spawn(async move { load::run_windows(&target, mode, duration, window).await })
        })
        .collect();
    let mut per_kind = Vec::new();
    for (k, l) in KINDS.iter().zip(loads) {
        per_kind.push(l.await?.with_context(|| format!("load of {}", k.name))?);
    }
    let _ = stop.send(());
    let samples = sampler.await?;
    let end = sample(pid, started)?;

    let windows = (0..per_kind[0].len())
        .map(|i| {
            let mut all = load::LoadResult::empty(Duration::ZERO);
            for kind in &per_kind {
                all.absorb(&kind[i])?;
            }
            let until = plan.window.as_secs_f64() * (i + 1) as f64;
            let at_end = samples
                .iter()
                .rev()
                .find(|s| s.at_secs <= until)
                .copied()
                .unwrap_or(end);
            Ok(Window {
                from_secs: plan.window.as_secs_f64() * i as f64,
                requests: all.requests,
                errors: all.errors,
                p50_ms: all.quantile_ms(0.5),
                p99_ms: all.quantile_ms(0.99),
                p999_ms: all.quantile_ms(0.999),
                rss_bytes: at_end.rss_bytes,
                fds: at_end.fds,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let kinds = KINDS
        .iter()
        .zip(&per_kind)
        .map(|(k, windows)| {
            let mut all = load::LoadResult::empty(Duration::ZERO);
            for w in windows {
                all.absorb(w)?;
            }
            Ok(KindTotal {
                kind: k.name,
                requests: all.requests,
                errors: all.errors,
                p99_ms: all.quantile_ms(0.99),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let max_by = |f: fn(&Sample) -> u64| {
        samples
            .iter()
            .chain([&end])
            .copied()
            .max_by_key(f)
            .unwrap_or(end)
    };
    Ok(SoakReport {
        rate: plan.rate,
        duration_secs: plan.duration.as_secs_f64(),
        requests: windows.iter().map(|w| w.requests).sum(),
        errors: windows.iter().map(|w| w.errors).sum(),
        kinds,
        windows,
        start: samples[0],
        peak_rss: max_by(|s| s.rss_bytes),
        peak_fds: max_by(|s| s.fds),
        end,
    })
}

pub fn markdown(r: &SoakReport) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut md = format!(
        "## Soak: {} req/s for {:.0} s through one edge\n\n\
         {} requests, **{} errors** (a connection failure or a status other than the expected one).\n\n\
         | | RSS (MiB) | open descriptors |\n|---|---|---|\n\
         | start | {:.1} | {} |\n| peak | {:.1} (at {:.0} s) | {} (at {:.0} s) |\n| end | {:.1} | {} |\n\n\
         | window from (s) | requests | errors | p50 ms | p99 ms | p99.9 ms | RSS MiB | fds |\n\
         |---|---|---|---|---|---|---|---|\n",
        r.rate,
        r.duration_secs,
        r.requests,
        r.errors,
        mib(r.start.rss_bytes),
        r.start.fds,
        mib(r.peak_rss.rss_bytes),
        r.peak_rss.at_secs,
        r.peak_fds.fds,
        r.peak_fds.at_secs,
        mib(r.end.rss_bytes),
        r.end.fds,
    );
    for w in &r.windows {
        md += &format!(
            "| {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.1} | {} |\n",
            w.from_secs,
            w.requests,
            w.errors,
            w.p50_ms,
            w.p99_ms,
            w.p999_ms,
            mib(w.rss_bytes),
            w.fds
        );
    }
    md += "\n| kind | requests | errors | p99 ms |\n|---|---|---|---|\n";
    for k in &r.kinds {
        md += &format!(
            "| {} | {} | {} | {:.2} |\n",
            k.kind, k.requests, k.errors, k.p99_ms
        );
    }
    md
}
