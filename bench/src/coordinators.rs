//! `bench coordinators`: one coordinator against three, on one Postgres
//! and one real Garage (S3), measured the same way in the same run:
//! deploys per second through the API (concurrent clients, each deploy
//! sent to the next coordinator in turn), deploy → served on every edge,
//! and a coordinator's resident memory while it streams one large blob
//! into the object store.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use test_support::cluster::{Bins, Coordinator, Edge};
use test_support::garage::Garage;

use crate::propagate::noise;
use crate::stats::{summarize, Summary};

/// Every coordinator of one cluster shares it (it opens the CA in the DB).
const SECRET_KEY: &str = "be4c4be4c4be4c4be4c4be4c4be4c4be4c4be4c4be4c4be4c4be4c4be4c4be4c";

#[derive(Debug, Serialize)]
pub struct Round {
    pub coordinators: usize,
    pub deploys: usize,
    pub clients: usize,
    pub deploys_per_sec: f64,
    /// CLI deploy returned → every edge serves the new version.
    pub served_all_edges: Summary,
}

#[derive(Debug, Serialize)]
pub struct UploadMemory {
    pub blob_bytes: u64,
    pub seconds: f64,
    pub rss_before_bytes: u64,
    pub rss_peak_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub rounds: Vec<Round>,
    pub upload: UploadMemory,
}

pub struct Options {
    pub deploys: usize,
    pub clients: usize,
    pub served: usize,
    pub edges: usize,
    pub blob_mb: u64,
}

/// A fresh Postgres database on the local server (`OUTPOST_BENCH_POSTGRES`,
/// default `postgres://postgres@127.0.0.1:5432`), made with `psql`.
fn new_database(tag: &str) -> anyhow::Result<String> {
    let base = std::env::var("OUTPOST_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let name = format!(
        "outpost_bench_{tag}_{}",
        std::process::id() as u64 * 1000 + rand_suffix()
    );
    let out = std::process::Command::new("psql")
        .arg(format!("{base}/postgres"))
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .context("running psql (apt install postgresql-client)")?;
    anyhow::ensure!(
        out.status.success(),
        "creating database {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(format!("{base}/{name}"))
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros() as u64 % 1000)
        .unwrap_or(0)
}

fn rss(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// `n` coordinators (role all) on one database and bucket, and `edges`
/// edges joined through the first.
fn cluster(
    bins: &Bins,
    root: &Path,
    n: usize,
    edges: usize,
) -> anyhow::Result<(Garage, Vec<Coordinator>, Vec<Edge>)> {
    let store = Garage::start(&root.join("garage"))?;
    let db = new_database(&format!("c{n}"))?;
    let toml = format!(
        "database_url = \"{db}\"\n{}\n[limits]\nmax_blob_bytes = 1073741824\n",
        store.blobs_toml("bench")
    );
    let env = [("OUTPOST_SECRET_KEY", SECRET_KEY), ("RUST_LOG", "warn")];
    let first = Coordinator::launch_member(
        bins,
        &root.join("coord-0"),
        Some(&toml),
        "127.0.0.1:0",
        &env,
        &[],
        None,
    )?;
    let token = first.token.clone();
    let mut coords = vec![first];
    for i in 1..n {
        coords.push(Coordinator::launch_member(
            bins,
            &root.join(format!("coord-{i}")),
            Some(&toml),
            "127.0.0.1:0",
            &env,
            &[],
            Some(&token),
        )?);
    }
    let mut nodes = Vec::new();
    for e in 0..edges {
        nodes.push(Edge::launch_join(
            &coords[e % n],
            "bench",
            &root.join(format!("edge-{e}")),
            &[],
        )?);
    }
    Ok((store, coords, nodes))
}

fn write_site(dir: &Path, marker: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("index.html"), format!("<h1>{marker}</h1>"))?;
    for f in 0..8 {
        std::fs::write(
            dir.join(format!("f{f}.bin")),
            noise(&format!("{marker}/{f}"), 16_384),
        )?;
    }
    Ok(())
}

/// What a client thread needs of a coordinator (the process handle stays
/// with the cluster).
#[derive(Clone)]
struct Target {
    bin: std::path::PathBuf,
    url: String,
    token: String,
    home: std::path::PathBuf,
}

impl Target {
    fn of(c: &Coordinator) -> Target {
        Target {
            bin: c.bins.coordinator.clone(),
            url: c.url(),
            token: c.token.clone(),
            home: c.dir.clone(),
        }
    }

    fn deploy(&self, site: &Path, project: &str) -> anyhow::Result<()> {
        let out = std::process::Command::new(&self.bin)
            .arg("deploy")
            .arg(site)
            .args(["--project", project, "--prod", "--json"])
            .env("OUTPOST_URL", &self.url)
            .env("OUTPOST_TOKEN", &self.token)
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "deploy {project} through {}: {}",
            self.url,
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

async fn round(bins: &Bins, root: &Path, n: usize, o: &Options) -> anyhow::Result<Round> {
    let (_store, coords, edges) = cluster(bins, root, n, o.edges)?;
    let targets: std::sync::Arc<Vec<Target>> =
        std::sync::Arc::new(coords.iter().map(Target::of).collect());
    // Throughput: `clients` deploying at once, each its own project,
    // every deploy to the next coordinator in turn.
    let started = Instant::now();
    let per_client = o.deploys.div_ceil(o.clients);
    let mut tasks = Vec::new();
    for client in 0..o.clients {
        let (targets, root) = (targets.clone(), root.to_path_buf());
        tasks.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<()> {
                for i in 0..per_client {
                    let site = root.join(format!("site-{client}"));
                    write_site(&site, &format!("c{client} d{i}"))?;
                    targets[(client + i) % targets.len()].deploy(&site, &format!("p{client}"))?;
                }
                Ok(())
            },
        ));
    }
    for t in tasks {
        t.await??;
    }
    let deploys = per_client * o.clients;
    let deploys_per_sec = deploys as f64 / started.elapsed().as_secs_f64();

    // Latency: one project, sequential production deploys.
    let mut served = Vec::new();
    for i in 0..o.served {
        let site = root.join("served");
        let marker = format!("served round {i}");
        write_site(&site, &marker)?;
        targets[i % targets.len()].deploy(&site, "served")?;
        let t0 = Instant::now();
        for e in &edges {
            loop {
                let (status, body, _) = e.get("served.localhost", "/").await;
                if status == 200 && body.contains(&marker) {
                    break;
                }
                anyhow::ensure!(
                    t0.elapsed() < Duration::from_secs(60),
                    "deploy {i} not served within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        served.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(Round {
        coordinators: n,
        deploys,
        clients: o.clients,
        deploys_per_sec,
        served_all_edges: summarize(&served),
    })
}

/// One blob of `mb` MiB streamed through the API of a lone coordinator,
/// its resident memory sampled every 20 ms.
async fn upload(bins: &Bins, root: &Path, mb: u64) -> anyhow::Result<UploadMemory> {
    let (_store, coords, _edges) = cluster(bins, root, 1, 0)?;
    let c = &coords[0];
    let pid = c.proc.child.id();
    let len = mb * 1024 * 1024;
    // The hash first, from the same generator the body streams from.
    let chunk = |i: u64| noise(&format!("big/{i}"), 1 << 20);
    let mut h = blake3::Hasher::new();
    for i in 0..mb {
        h.update(&chunk(i));
    }
    let hash = h.finalize().to_hex().to_string();
    let rss_before = rss(pid, "VmRSS:");
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(pid, "VmRSS:"), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let body = futures::stream::iter(0..mb).map(move |i| Ok::<_, std::io::Error>(chunk(i)));
    let t0 = Instant::now();
    let r = c
        .api()
        .req(reqwest::Method::PUT, &format!("/blobs/{hash}"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await?;
    let seconds = t0.elapsed().as_secs_f64();
    sampler.abort();
    anyhow::ensure!(
        r.status() == 201,
        "upload: {} {}",
        r.status(),
        r.text().await?
    );
    Ok(UploadMemory {
        blob_bytes: len,
        seconds,
        rss_before_bytes: rss_before,
        rss_peak_bytes: peak.load(std::sync::atomic::Ordering::Relaxed),
    })
}

pub async fn run(bin_dir: &Path, o: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(
        test_support::garage::available(),
        "garage is not installed (cargo install garage; see README)"
    );
    let bins = Bins::in_dir(bin_dir);
    let mut rounds = Vec::new();
    for n in [1, 3] {
        let root = tempfile::tempdir()?;
        rounds.push(round(&bins, root.path(), n, o).await?);
    }
    let root = tempfile::tempdir()?;
    let upload = upload(&bins, root.path(), o.blob_mb).await?;
    Ok(Report { rounds, upload })
}

/// The report's text (printed and written as report.md).
pub fn md(r: &Report) -> String {
    let mut out = String::from("# bench coordinators\n\n");
    for line in lines(r) {
        out.push_str(&format!("- {line}\n"));
    }
    out
}

fn lines(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    for x in &r.rounds {
        out.push(format!(
            "{} coordinator(s): {:.2} deploys/s ({} deploys, {} clients); deploy → served on every edge p50 {:.0} ms, p99 {:.0} ms",
            x.coordinators, x.deploys_per_sec, x.deploys, x.clients, x.served_all_edges.p50_ms, x.served_all_edges.p99_ms
        ));
    }
    if let [one, three] = &r.rounds[..] {
        out.push(format!(
            "three / one: deploys/s {:.2}x, served p50 {:.2}x",
            three.deploys_per_sec / one.deploys_per_sec,
            three.served_all_edges.p50_ms / one.served_all_edges.p50_ms
        ));
    }
    let u = &r.upload;
    out.push(format!(
        "one {:.0} MiB blob streamed into Garage in {:.1} s: coordinator RSS {:.0} MiB before, {:.0} MiB at peak (+{:.0} MiB, {:.2} of the blob)",
        mb(u.blob_bytes),
        u.seconds,
        mb(u.rss_before_bytes),
        mb(u.rss_peak_bytes),
        mb(u.rss_peak_bytes.saturating_sub(u.rss_before_bytes)),
        u.rss_peak_bytes.saturating_sub(u.rss_before_bytes) as f64 / u.blob_bytes as f64
    ));
    out
}
