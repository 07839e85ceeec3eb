//! `bench scale`: does deploying stay as cheap when history grows?
//!
//! One cluster (a coordinator and `--edges` edge nodes) is grown, without
//! restarting, to each size of `--deployments`: filler deployments are
//! created through the API (previews of one big project, every manifest
//! sharing the same asset blobs and having an index page of its own, many
//! in flight), then at each size:
//!
//! - production deploys of the big project, each with a marker in its
//!   index page: finalize returning → every edge serves the marker;
//! - coordinator and edge CPU time (/proc/<pid>/stat) and the bytes each
//!   edge received from the coordinator (`bytes_from_coordinator` in its
//!   status.json) across those deploys, per deploy;
//! - edge index size, edge and coordinator RSS, the coordinator database;
//! - a fresh edge: `edge-node join` → serving every production alias (a
//!   handful of small projects plus the big one), then it is stopped.
//!
//! Every wait is bounded by `--timeout`; filling stops at `--budget`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures::StreamExt;
use protocol::{BlobHash, FileEntry, Manifest};
use serde::Serialize;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::function::cpu_time;
use crate::stats::{summarize, Summary};

mod report;
pub use report::{md, plots};

/// The project every filler and measured deploy goes to.
const BIG: &str = "big";
/// Requests per edge to price one polling request (see `poll_cost_us`).
const CALIBRATION_REQUESTS: usize = 1000;
/// How often the deploy waits ask each edge.
const POLL: Duration = Duration::from_millis(5);

pub struct Plan {
    pub sizes: Vec<usize>,
    pub deploys: usize,
    pub files: usize,
    pub concurrency: usize,
    pub projects: usize,
    pub timeout: Duration,
    /// Stop filling (and measure what was reached) after this long.
    pub budget: Option<Duration>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleRow {
    /// Deployments that existed when this row was measured.
    pub deployments: usize,
    /// The size asked for (differs from `deployments` when the budget ran out).
    pub target_deployments: usize,
    pub deploys: usize,
    /// Finalize returned → the last edge serves the new index page, per deploy.
    pub deploy_to_served: Summary,
    /// Finalize returned → an edge serves it, every edge of every deploy.
    pub deploy_to_served_per_edge: Summary,
    /// Coordinator user+system CPU across the measured deploys (stage,
    /// finalize and pushing to edges), per deploy.
    pub coordinator_cpu_ms_per_deploy: f64,
    /// Edge CPU per deploy, mean over edges, less the benchmark's own
    /// polling requests (`polls_per_deploy` × `poll_cost_us`).
    pub edge_cpu_ms_per_deploy: f64,
    /// The same, polling included.
    pub edge_cpu_raw_ms_per_deploy: f64,
    /// HTTP requests the deploy waits sent each edge, per deploy (mean).
    pub polls_per_deploy: f64,
    /// Edge CPU per polling request, measured before the deploys (mean over edges).
    pub poll_cost_us: f64,
    /// UDP bytes each edge received on its coordinator connection per
    /// deploy (mean over edges): config batches, manifest, blobs, QUIC overhead.
    pub bytes_to_edge_per_deploy: f64,
    /// Edge sled index on disk (mean over edges).
    pub edge_index_bytes: u64,
    /// Edge resident set (mean over edges).
    pub edge_rss_bytes: u64,
    pub coordinator_rss_bytes: u64,
    /// The coordinator's SQLite files (database, WAL, shared memory).
    pub coordinator_db_bytes: u64,
    /// `edge-node join` started → serving every production alias.
    pub fresh_edge_ms: f64,
    /// … of which: start → the node printed it is serving.
    pub fresh_edge_startup_ms: f64,
    pub production_aliases: usize,
    /// Filler deployments created to reach this size, and how fast.
    pub filled: usize,
    pub fill_seconds: f64,
    pub fill_per_second: f64,
    /// The coordinator's config version when measured.
    pub config_version: u64,
    /// Full config snapshots each edge received (mean over edges; from
    /// the edges' logs) while this step's fillers were created …
    pub edge_snapshots_during_fill: f64,
    /// … and during the measured deploys.
    pub edge_snapshots_during_deploys: f64,
}

#[derive(Debug, Serialize)]
pub struct ScaleReport {
    pub edges: usize,
    pub files_per_manifest: usize,
    pub manifest_bytes: usize,
    pub small_projects: usize,
    pub concurrency: usize,
    pub budget_reached: bool,
    pub rows: Vec<ScaleRow>,
}

/// The coordinator API with a client whose requests are bounded.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn send(&self, rb: reqwest::RequestBuilder, what: &str) -> anyhow::Result<Value> {
        let r = rb.send().await.with_context(|| what.to_string())?;
        let status = r.status();
        let body = r
            .text()
            .await
            .with_context(|| format!("{what}: reading the answer"))?;
        ensure!(status.is_success(), "{what}: {status}: {body}");
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: answer {body:?}"))
    }

    async fn put_blob(&self, bytes: Vec<u8>) -> anyhow::Result<BlobHash> {
        let h = BlobHash::of(&bytes);
        self.send(
            self.req(reqwest::Method::PUT, &format!("/blobs/{h}"))
                .body(bytes),
            &format!("PUT /blobs/{h}"),
        )
        .await?;
        Ok(h)
    }
}

/// Every deployment's files: `files` assets, each its own blob shared by
/// every deployment, plus an index page of its own.
struct Site {
    assets: BTreeMap<String, FileEntry>,
}

impl Site {
    async fn upload(api: &Api, files: usize) -> anyhow::Result<Site> {
        let mut assets = BTreeMap::new();
        for i in 0..files {
            let (ext, ctype) = match i % 4 {
                0 | 1 => ("js", "text/javascript"),
                2 => ("css", "text/css"),
                _ => ("svg", "image/svg+xml"),
            };
            // 0.3–4.3 KB, deterministic: with 50 files a deployment is
            // about 120 KB, so 100,000 of them stay under the default
            // stored-bytes quota (100 GiB, counted per deployment).
            let size = 300 + (i * 7919) % 4_000;
            let line = format!("/* asset {i} */\n");
            let mut bytes = line.repeat(size / line.len() + 1).into_bytes();
            bytes.truncate(size);
            let hash = api.put_blob(bytes).await?;
            assets.insert(
                format!("assets/{i:04}-{}.{ext}", &hash.to_hex()[..8]),
                FileEntry {
                    hash,
                    size: size as u64,
                    content_type: ctype.into(),
                    variants: vec![],
                },
            );
        }
        Ok(Site { assets })
    }

    fn manifest(&self, index: BlobHash, len: usize) -> Manifest {
        let mut files = self.assets.clone();
        files.insert(
            "index.html".into(),
            FileEntry {
                hash: index,
                size: len as u64,
                content_type: "text/html".into(),
                variants: vec![],
            },
        );
        Manifest::new(files)
    }

    /// Uploads `page`, creates a deployment of `project` and finalizes it;
    /// returns its id once finalize has returned.
    async fn deploy(
        &self,
        api: &Api,
        project: &str,
        target: &str,
        page: String,
    ) -> anyhow::Result<String> {
        let len = page.len();
        let own = api.put_blob(page.into_bytes()).await?;
        let staged = api
            .send(
                api.req(
                    reqwest::Method::POST,
                    &format!("/projects/{project}/deployments"),
                )
                .json(&json!({ "manifest": self.manifest(own, len), "target": target })),
                &format!("creating a {target} deployment of {project}"),
            )
            .await?;
        ensure!(
            staged["missing"] == json!([]),
            "blobs missing after upload: {staged}"
        );
        let id = staged["deployment"]["id"]
            .as_str()
            .with_context(|| format!("no deployment id in {staged}"))?
            .to_string();
        api.send(
            api.req(
                reqwest::Method::POST,
                &format!("/deployments/{id}/finalize"),
            ),
            &format!("finalizing {id}"),
        )
        .await?;
        Ok(id)
    }
}

fn page(marker: &str) -> String {
    format!("<!doctype html><title>{marker}</title><h1>{marker}</h1>")
}

/// Resident set of `pid` (VmRSS).
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))?;
    Ok(kb * 1024)
}

/// The SQLite files in the coordinator's data directory.
fn db_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("coordinator.db") {
            total += e.metadata()?.len();
        }
    }
    Ok(total)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Config snapshots each edge has received so far: the lines its log has
/// for them (edges log at info).
fn snapshots(cluster: &Cluster) -> Vec<usize> {
    cluster
        .edges
        .iter()
        .map(|e| {
            std::fs::read_to_string(&e.proc.log)
                .map_or(0, |l| l.matches("receiving a config snapshot").count())
        })
        .collect()
}

fn mean_delta(after: &[usize], before: &[usize]) -> f64 {
    let d: usize = after
        .iter()
        .zip(before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum();
    d as f64 / after.len().max(1) as f64
}

/// Each edge's status as written after `after_ms` (they write every second).
async fn fresh_statuses(
    cluster: &Cluster,
    after_ms: i64,
    timeout: Duration,
) -> anyhow::Result<Vec<protocol::status::NodeStatus>> {
    let started = Instant::now();
    loop {
        let all: Vec<_> = cluster.edges.iter().map(|e| e.status()).collect();
        if all
            .iter()
            .all(|s| s.as_ref().is_some_and(|s| s.updated_at_ms > after_ms))
        {
            return Ok(all.into_iter().flatten().collect());
        }
        if started.elapsed() > timeout {
            bail!("edges did not rewrite status.json within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every edge holds the coordinator's current config version.
async fn wait_caught_up(cluster: &Cluster, timeout: Duration) -> anyhow::Result<Duration> {
    let want = cluster.config_version().await?;
    let started = Instant::now();
    loop {
        let behind: Vec<String> = cluster
            .edges
            .iter()
            .filter(|e| e.status().is_none_or(|s| s.config_version < want))
            .map(|e| e.node_id.clone())
            .collect();
        if behind.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("edges {behind:?} did not reach config {want} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GETs `/` for `host` at `addr` until the body holds `marker`; returns
/// the time since `t0` and the requests sent.
async fn until_served(
    http: &reqwest::Client,
    addr: std::net::SocketAddr,
    host: &str,
    marker: &str,
    t0: Instant,
    timeout: Duration,
) -> anyhow::Result<(Duration, usize)> {
    let url = format!("http://{addr}/");
    let mut polls = 0;
    loop {
        polls += 1;
        let ok = match http.get(&url).header("Host", host).send().await {
            Ok(r) if r.status() == 200 => r.text().await.is_ok_and(|b| b.contains(marker)),
            _ => false,
        };
        if ok {
            return Ok((t0.elapsed(), polls));
        }
        if t0.elapsed() > timeout {
            bail!("{url} (Host {host}) did not serve {marker:?} within {timeout:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

struct Run<'a> {
    cluster: &'a Cluster,
    plan: &'a Plan,
    api: Api,
    site: Site,
    /// Plain client for the edges (no pooling surprises: keep-alive, as a browser).
    http: reqwest::Client,
    /// Deployments created so far (every project, every target).
    created: usize,
    /// (production host, marker its index page holds).
    aliases: Vec<(String, String)>,
    fresh_edges: usize,
}

pub async fn run(
    cluster: &Cluster,
    plan: &Plan,
    mut on_row: impl FnMut(&ScaleReport) -> anyhow::Result<()>,
) -> anyhow::Result<ScaleReport> {
    cluster.wait_formed(plan.timeout).await?;
    let http = reqwest::Client::builder()
        .timeout(plan.timeout)
        .pool_max_idle_per_host(64)
        .build()?;
    let api = Api {
        base: cluster.api.clone(),
        token: cluster.token.clone(),
        http: http.clone(),
    };
    for i in 0..=plan.projects {
        let name = if i == 0 {
            BIG.to_string()
        } else {
            format!("site{i}")
        };
        api.send(
            api.req(reqwest::Method::POST, "/projects")
                .json(&json!({ "name": name })),
            &format!("creating project {name}"),
        )
        .await?;
    }
    // Keep every deployment of the big project: the retention pass would
    // otherwise trim its productions (beyond 20) and old previews.
    api.send(
        api.req(reqwest::Method::PUT, &format!("/projects/{BIG}/retention"))
            .json(&json!({ "preview_days": 0, "production_keep": 0 })),
        "setting the big project's retention to keep everything",
    )
    .await?;
    let site = Site::upload(&api, plan.files).await?;
    let manifest_bytes = site.manifest(BlobHash::of(b"x"), 1).canonical_bytes().len();
    let mut r = Run {
        cluster,
        plan,
        api,
        site,
        http,
        created: 0,
        aliases: Vec::new(),
        fresh_edges: 0,
    };
    for i in 1..=plan.projects {
        let name = format!("site{i}");
        let marker = format!("production of {name}");
        r.site
            .deploy(&r.api, &name, "production", page(&marker))
            .await?;
        r.created += 1;
        r.aliases.push((format!("{name}.localhost"), marker));
    }
    let marker = "production of big, first".to_string();
    r.site
        .deploy(&r.api, BIG, "production", page(&marker))
        .await?;
    r.created += 1;
    r.aliases.push((format!("{BIG}.localhost"), marker));

    let mut report = ScaleReport {
        edges: cluster.edges.len(),
        files_per_manifest: plan.files + 1,
        manifest_bytes,
        small_projects: plan.projects,
        concurrency: plan.concurrency,
        budget_reached: false,
        rows: Vec::new(),
    };
    let started = Instant::now();
    for &size in &plan.sizes {
        let deadline = plan.budget.map(|b| started + b);
        let fill = r.fill(size, deadline).await?;
        let reached = r.created < size;
        if reached {
            eprintln!(
                "scale: the --budget ran out at {} deployments (asked {size}); measuring there",
                r.created
            );
        }
        let row = r.measure(size, fill).await?;
        eprintln!(
            "scale: {} deployments: served p50 {:.0} ms p99 {:.0} ms; coordinator {:.1} ms CPU/deploy; edge {:.1} ms CPU/deploy, {:.0} B/deploy; fresh edge {:.0} ms",
            row.deployments,
            row.deploy_to_served.p50_ms,
            row.deploy_to_served.p99_ms,
            row.coordinator_cpu_ms_per_deploy,
            row.edge_cpu_ms_per_deploy,
            row.bytes_to_edge_per_deploy,
            row.fresh_edge_ms
        );
        report.rows.push(row);
        report.budget_reached = reached;
        on_row(&report)?;
        if reached {
            break;
        }
    }
    Ok(report)
}

impl Run<'_> {
    /// Creates preview deployments of the big project until `size` exist
    /// (or `deadline` passes); returns how many, and how long it took.
    async fn fill(
        &mut self,
        size: usize,
        deadline: Option<Instant>,
    ) -> anyhow::Result<(usize, Duration, f64)> {
        let from = self.created;
        let started = Instant::now();
        if size <= from {
            return Ok((0, Duration::ZERO, 0.0));
        }
        let snaps0 = snapshots(self.cluster);
        eprintln!(
            "scale: creating {} preview deployments ({from} → {size}), {} in flight",
            size - from,
            self.plan.concurrency
        );
        let done = {
            let (api, site) = (&self.api, &self.site);
            // Past the deadline no new one starts; those in flight finish.
            let mut jobs = futures::stream::iter(from..size)
                .take_while(|_| futures::future::ready(deadline.is_none_or(|d| Instant::now() < d)))
                .map(|n| async move {
                    let mut last = None;
                    for attempt in 0..3 {
                        if attempt > 0 {
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        match site
                            .deploy(api, BIG, "preview", page(&format!("preview {n}")))
                            .await
                        {
                            Ok(_) => return Ok(()),
                            Err(e) => last = Some(e),
                        }
                    }
                    Err(last
                        .expect("three attempts")
                        .context(format!("filler deployment {n}")))
                })
                .buffer_unordered(self.plan.concurrency);
            let mut done = 0;
            let mut told = Instant::now();
            while let Some(res) = jobs.next().await {
                res?;
                done += 1;
                if told.elapsed() >= Duration::from_secs(15) {
                    told = Instant::now();
                    let s = started.elapsed().as_secs_f64();
                    eprintln!(
                        "scale:   {} deployments, {:.0}/s over this step, {:.0} s so far",
                        from + done,
                        done as f64 / s,
                        s
                    );
                }
            }
            done
        };
        self.created = from + done;
        let took = started.elapsed();
        let snaps = mean_delta(&snapshots(self.cluster), &snaps0);
        eprintln!(
            "scale: {done} deployments in {:.1} s ({:.0}/s)",
            took.as_secs_f64(),
            done as f64 / took.as_secs_f64().max(1e-9)
        );
        Ok((done, took, snaps))
    }

    async fn measure(
        &mut self,
        size: usize,
        (filled, fill_time, fill_snapshots): (usize, Duration, f64),
    ) -> anyhow::Result<ScaleRow> {
        let (cluster, timeout) = (self.cluster, self.plan.timeout);
        let lag = wait_caught_up(cluster, timeout)
            .await
            .context("waiting for the edges to apply the filler deployments")?;
        eprintln!(
            "scale: edges caught up {:.1} s after the last filler",
            lag.as_secs_f64()
        );
        let deployments = self.created;
        let big = format!("{BIG}.localhost");
        // One unmeasured deploy first: whatever is lazy after filling.
        self.production_deploy(&format!("scale-{size}-warm-up"), &big)
            .await?;
        let poll_cost_us = self.poll_cost_us(&big).await?;

        let coord_pid = cluster.coordinator_pid();
        let pids: Vec<u32> = cluster.edges.iter().map(|e| e.proc.child.id()).collect();
        let t_before = now_ms();
        let coord_cpu0 = cpu_time(coord_pid)?;
        let edge_cpu0 = pids
            .iter()
            .map(|&p| cpu_time(p))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes0: Vec<u64> = fresh_statuses(cluster, t_before, timeout)
            .await?
            .iter()
            .map(|s| s.bytes_from_coordinator)
            .collect();

        let snaps0 = snapshots(cluster);
        let n = self.plan.deploys;
        let (mut all, mut per_edge, mut polls) = (Vec::new(), Vec::new(), 0usize);
        for i in 0..n {
            let (times, p) = self
                .production_deploy(&format!("scale-{size}-{i}"), &big)
                .await?;
            let ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
            all.push(ms.iter().copied().fold(0.0, f64::max));
            per_edge.extend(ms);
            polls += p;
        }

        let t_after = now_ms();
        let deploy_snapshots = mean_delta(&snapshots(cluster), &snaps0);
        let coord_cpu = cpu_time(coord_pid)?.saturating_sub(coord_cpu0);
        let edge_cpu: Vec<Duration> = pids
            .iter()
            .zip(&edge_cpu0)
            .map(|(&p, &c0)| Ok(cpu_time(p)?.saturating_sub(c0)))
            .collect::<anyhow::Result<_>>()?;
        let after = fresh_statuses(cluster, t_after, timeout).await?;
        let mut bytes = Vec::new();
        for (s, b0) in after.iter().zip(&bytes0) {
            ensure!(
                s.bytes_from_coordinator >= *b0,
                "{}'s coordinator connection was replaced during the measured deploys (bytes went from {b0} to {})",
                s.node_id,
                s.bytes_from_coordinator
            );
            bytes.push((s.bytes_from_coordinator - b0) as f64 / n as f64);
        }
        let edges = cluster.edges.len() as f64;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let edge_cpu_ms: Vec<f64> = edge_cpu
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0 / n as f64)
            .collect();
        let polls_per_deploy = polls as f64 / n as f64 / edges;
        let raw = mean(&edge_cpu_ms);
        let edge_rss = pids
            .iter()
            .map(|&p| rss_bytes(p))
            .sum::<anyhow::Result<u64>>()?
            / pids.len().max(1) as u64;
        let index = after.iter().map(|s| s.index_bytes).sum::<u64>() / after.len().max(1) as u64;
        let coordinator_rss_bytes = rss_bytes(coord_pid)?;
        let coordinator_db_bytes = db_bytes(&cluster.coordinator_dir())?;
        let config_version = cluster.config_version().await?;
        let (fresh, startup) = self.fresh_edge().await?;
        Ok(ScaleRow {
            deployments,
            target_deployments: size,
            deploys: n,
            deploy_to_served: summarize(&all),
            deploy_to_served_per_edge: summarize(&per_edge),
            coordinator_cpu_ms_per_deploy: coord_cpu.as_secs_f64() * 1000.0 / n as f64,
            edge_cpu_ms_per_deploy: (raw - polls_per_deploy * poll_cost_us / 1000.0).max(0.0),
            edge_cpu_raw_ms_per_deploy: raw,
            polls_per_deploy,
            poll_cost_us,
            bytes_to_edge_per_deploy: mean(&bytes),
            edge_index_bytes: index,
            edge_rss_bytes: edge_rss,
            coordinator_rss_bytes,
            coordinator_db_bytes,
            fresh_edge_ms: fresh.as_secs_f64() * 1000.0,
            fresh_edge_startup_ms: startup.as_secs_f64() * 1000.0,
            production_aliases: self.aliases.len(),
            filled,
            fill_seconds: fill_time.as_secs_f64(),
            fill_per_second: filled as f64 / fill_time.as_secs_f64().max(1e-9),
            config_version,
            edge_snapshots_during_fill: fill_snapshots,
            edge_snapshots_during_deploys: deploy_snapshots,
        })
    }

    /// A production deploy of the big project whose index page holds
    /// `marker`: finalize returned → each edge serves it; and the polling
    /// requests sent.
    async fn production_deploy(
        &mut self,
        marker: &str,
        host: &str,
    ) -> anyhow::Result<(Vec<Duration>, usize)> {
        let (api, timeout) = (&self.api, self.plan.timeout);
        let len = page(marker).len();
        let own = api.put_blob(page(marker).into_bytes()).await?;
        let staged = api
            .send(
                api.req(
                    reqwest::Method::POST,
                    &format!("/projects/{BIG}/deployments"),
                )
                .json(&json!({ "manifest": self.site.manifest(own, len), "target": "production" })),
                "creating a production deployment",
            )
            .await?;
        ensure!(staged["missing"] == json!([]), "blobs missing: {staged}");
        let id = staged["deployment"]["id"]
            .as_str()
            .with_context(|| format!("no deployment id in {staged}"))?
            .to_string();
        let finalize = api.req(
            reqwest::Method::POST,
            &format!("/deployments/{id}/finalize"),
        );
        api.send(finalize, &format!("finalizing {id}")).await?;
        let t0 = Instant::now();
        self.created += 1;
        let waits = self
            .cluster
            .edges
            .iter()
            .map(|e| until_served(&self.http, e.http, host, marker, t0, timeout));
        let res = futures::future::try_join_all(waits)
            .await
            .with_context(|| format!("deploy {marker}"))?;
        if let Some(a) = self.aliases.iter_mut().find(|(h, _)| h == host) {
            a.1 = marker.to_string();
        }
        Ok((
            res.iter().map(|r| r.0).collect(),
            res.iter().map(|r| r.1).sum(),
        ))
    }

    /// Edge CPU per request of the kind the deploy waits send (`/` of the
    /// production host), mean over edges, in µs: each edge is sent
    /// [`CALIBRATION_REQUESTS`] one after another.
    async fn poll_cost_us(&self, host: &str) -> anyhow::Result<f64> {
        let mut costs = Vec::new();
        for e in &self.cluster.edges {
            let pid = e.proc.child.id();
            let url = format!("http://{}/", e.http);
            let c0 = cpu_time(pid)?;
            for _ in 0..CALIBRATION_REQUESTS {
                let r = self
                    .http
                    .get(&url)
                    .header("Host", host)
                    .send()
                    .await
                    .with_context(|| format!("calibration request to {url}"))?;
                ensure!(
                    r.status() == 200,
                    "calibration request to {url}: {}",
                    r.status()
                );
                r.bytes().await?;
            }
            let c = cpu_time(pid)?.saturating_sub(c0);
            costs.push(c.as_secs_f64() * 1e6 / CALIBRATION_REQUESTS as f64);
        }
        Ok(costs.iter().sum::<f64>() / costs.len().max(1) as f64)
    }

    /// Joins a new edge: `edge-node join` started → serving every
    /// production alias; and start → the node says it serves. The edge is
    /// stopped and its data removed afterwards.
    async fn fresh_edge(&mut self) -> anyhow::Result<(Duration, Duration)> {
        let timeout = self.plan.timeout;
        let coord = self.cluster.coordinator();
        let token = coord
            .try_join_token("fra")
            .context("a join token for the fresh edge")?;
        self.fresh_edges += 1;
        let dir: PathBuf = self
            .cluster
            .root
            .path()
            .join(format!("fresh{}", self.fresh_edges));
        let d = dir.display().to_string();
        let quic = coord.quic.to_string();
        let name = format!("fresh-{}", self.fresh_edges);
        let args = [
            "join",
            &quic,
            "--token",
            &token,
            "--region",
            "fra",
            "--data-dir",
            &d,
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--mesh",
            "127.0.0.1:0",
            "--name",
            &name,
        ];
        let t0 = Instant::now();
        let proc = test_support::process::Proc::launch(
            &coord.bins.edge,
            &args,
            dir.with_extension("join.log"),
            &[("RUST_LOG", "warn")],
        )
        .context("starting the fresh edge")?;
        let edge = tokio::task::block_in_place(|| {
            test_support::cluster::Edge::try_wait_serving(proc, &dir)
        })
        .context("the fresh edge did not start serving")?;
        let startup = t0.elapsed();
        let waits = self
            .aliases
            .iter()
            .map(|(host, marker)| until_served(&self.http, edge.http, host, marker, t0, timeout));
        let res = futures::future::try_join_all(waits)
            .await
            .context("the fresh edge serving every production alias");
        let took = t0.elapsed();
        // Stop it (SIGTERM, bounded) so it leaves the mesh, then remove it.
        let pid = edge.proc.child.id();
        test_support::process::signal(pid, "TERM");
        let mut edge = edge;
        let stop = Instant::now();
        while edge.proc.child.try_wait()?.is_none() && stop.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(edge);
        let _ = std::fs::remove_dir_all(&dir);
        res?;
        Ok((took, startup))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }
}
