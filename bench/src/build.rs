//! `bench build`: the platform's own overhead per build from git, for a
//! static site of N files (default 1,000) whose install and build commands
//! are empty, so everything timed is Outpost: queue pickup, branch
//! resolution, clone, detection, collect + hash + precompress, blob store,
//! database, config push and the edge fetching the new version.
//!
//! Side by side, in the same run and cluster, the reference: the same work
//! by hand with no build service, `git clone --depth 1` of an identically
//! shaped repository plus the `coordinator deploy <dir>` CLI upload (which
//! hashes, precompresses and uploads the same folder). Each round changes
//! one file (`index.html` carries the round number), so every warm round is
//! also the "one-file change" measurement: blobs and bytes stored versus
//! the bundle's total, and blob bytes the coordinator sent to the edge.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use reqwest::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::stats::{summarize, Summary};

const BUILD_PROJECT: &str = "bbuild";
const REF_PROJECT: &str = "bref";

pub struct Plan {
    pub files: usize,
    pub rounds: usize,
    /// Run in the sandbox as the project's build command ("" skips it).
    pub build_command: String,
    pub timeout: Duration,
}

/// One build through the platform.
#[derive(Debug, Clone, Serialize)]
pub struct BuildRound {
    pub round: usize,
    /// POST /projects/{p}/builds → GET /builds/{id} says `ready`.
    pub to_ready_ms: f64,
    /// POST → the edge serves the new index.html.
    pub to_edge_ms: f64,
    /// Phases from the build log's timestamps (ms resolution, wall clock).
    pub phases: Phases,
    pub new_blobs: u64,
    pub blobs: u64,
    pub stored_bytes: u64,
    /// Blob bytes the coordinator sent to the edge for this version.
    pub edge_fetched_bytes: u64,
}

/// Where a build's time goes, from its log lines' timestamps.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Phases {
    /// POST → the "Queued" line (API, DB insert).
    pub enqueue_ms: f64,
    /// "Queued" → "Cloning" (worker wakes, claims, resolves the branch
    /// with `git ls-remote`, prepares folders).
    pub pickup_resolve_ms: f64,
    /// "Cloning" → "Checked out".
    pub clone_ms: f64,
    /// "Checked out" → collection starts (framework detection, and with a
    /// build command the sandbox run).
    pub detect_run_ms: f64,
    /// Walk, hash, brotli + gzip precompression ("Collected … in").
    pub collect_ms: f64,
    /// "Collected" → "Stored …": missing-blob lookup, blob writes, bundle row.
    pub store_ms: f64,
    /// "Stored" → "Ready" line (depending on the coordinator version, the
    /// deployment row, aliases and config refresh fall here or after).
    pub publish_ms: f64,
    /// "Ready" line → the edge serves the new version (whatever of the
    /// go-live is after the line, signed config to the edge, its blob
    /// fetch, the 5 ms poll). The phases add up to POST → served at the edge.
    pub edge_ms: f64,
}

/// The same deploy by hand: shallow clone plus the CLI upload.
#[derive(Debug, Clone, Serialize)]
pub struct RefRound {
    pub round: usize,
    pub clone_ms: f64,
    /// `coordinator deploy <dir> --prod` from start to exit (collect, hash,
    /// precompress, upload what is missing, finalize).
    pub deploy_ms: f64,
    /// clone + deploy: comparable to the build's `to_ready_ms`.
    pub to_ready_ms: f64,
    pub to_edge_ms: f64,
    pub uploaded_blobs: u64,
    pub blobs: u64,
    pub uploaded_bytes: u64,
    pub edge_fetched_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct BuildReport {
    pub files: usize,
    /// Bytes of the site's files in the repository.
    pub site_bytes: u64,
    /// Blobs and bytes of the bundle (files plus .br/.gz variants).
    pub bundle_blobs: u64,
    pub bundle_bytes: u64,
    pub build_command: String,
    /// Warm rounds (after the cold one).
    pub rounds: usize,
    pub cold_build: BuildRound,
    pub cold_reference: RefRound,
    pub build_to_ready: Summary,
    pub build_to_edge: Summary,
    pub reference_to_ready: Summary,
    pub reference_to_edge: Summary,
    /// p50 build / p50 reference, warm rounds.
    pub ratio_to_ready: f64,
    pub ratio_to_edge: f64,
    /// Cold build / cold reference.
    pub cold_ratio_to_ready: f64,
    /// Per phase, the p50 over warm rounds.
    pub phases_p50_ms: BTreeMap<String, f64>,
    /// One-file change (warm rounds, mean): what the build stored and the
    /// edge fetched, against the bundle's total.
    pub one_file_stored_blobs: f64,
    pub one_file_stored_bytes: f64,
    pub one_file_edge_fetched_bytes: f64,
    pub one_file_stored_fraction: f64,
    pub reference_one_file_uploaded_bytes: f64,
    pub build_rounds: Vec<BuildRound>,
    pub reference_rounds: Vec<RefRound>,
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Deterministic pseudo-random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn new(seed: &str) -> Rng {
        let h = blake3::hash(seed.as_bytes());
        Rng(u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "the",
    "edge",
    "deploy",
    "static",
    "site",
    "bundle",
    "page",
    "cache",
    "request",
    "route",
    "config",
    "node",
    "cluster",
    "blob",
    "asset",
    "header",
    "content",
    "server",
    "build",
    "commit",
    "branch",
    "preview",
    "domain",
    "latency",
    "region",
    "function",
    "component",
    "stream",
    "client",
    "version",
    "and",
    "of",
    "to",
    "with",
    "for",
    "from",
    "a",
    "is",
    "on",
];

/// Text that compresses like real markup and code: lines made by `line`
/// from runs of words of a small vocabulary, until `len` bytes.
fn text(rng: &mut Rng, len: usize, line: &dyn Fn(&mut Rng, &str) -> String) -> String {
    let mut s = String::with_capacity(len + 128);
    while s.len() < len {
        let n = rng.range(4, 14);
        let words: Vec<&str> = (0..n)
            .map(|_| WORDS[rng.next() as usize % WORDS.len()])
            .collect();
        s += &line(rng, &words.join(" "));
    }
    s
}

fn html(rng: &mut Rng, title: &str, len: usize) -> String {
    let body = text(rng, len, &|r, w| match r.next() % 4 {
        0 => format!("<h2>{w}</h2>\n"),
        1 => format!(
            "<p class=\"lead\">{w} <a href=\"/pages/p{}.html\">{w}</a></p>\n",
            r.next() % 400
        ),
        _ => format!("<p>{w}</p>\n"),
    });
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <link rel=\"stylesheet\" href=\"/css/s0.css\"><script src=\"/js/m0.js\" defer></script>\
         </head><body>\n{body}</body></html>\n"
    )
}

/// Writes an N-file site into `dir` with `seed`'s content: html pages,
/// css, js, incompressible images and fonts, json, svg. Returns its bytes.
pub fn write_site(dir: &Path, seed: &str, files: usize) -> anyhow::Result<u64> {
    let mut rng = Rng::new(seed);
    let mut total = 0u64;
    let mut put = |rel: String, bytes: Vec<u8>| -> anyhow::Result<()> {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap())?;
        total += bytes.len() as u64;
        std::fs::write(p, bytes)?;
        Ok(())
    };
    put("index.html".into(), index_html(seed, 0).into_bytes())?;
    for i in 1..files {
        // 40% pages, 15% css, 20% js, 18% images, 7% other.
        let kind = i * 100 / files.max(1);
        let (rel, bytes) = match kind {
            0..=39 => {
                let len = rng.range(1_500, 9_000);
                (
                    format!("pages/p{i}.html"),
                    html(&mut rng, &format!("{seed} page {i}"), len).into_bytes(),
                )
            }
            40..=54 => {
                let len = rng.range(800, 9_000);
                let css = text(&mut rng, len, &|r, w| {
                    format!(
                        ".c{}-{} {{ margin: {}px; /* {w} */ }}\n",
                        r.next() % 97,
                        w.len(),
                        r.next() % 40
                    )
                });
                (format!("css/s{i}.css"), css.into_bytes())
            }
            55..=74 => {
                let len = rng.range(1_500, 14_000);
                let js = text(&mut rng, len, &|r, w| {
                    format!(
                        "function f{}(a, b) {{ return a + b + \"{w}\"; }}\n",
                        r.next() % 10_000
                    )
                });
                (format!("js/m{i}.js"), js.into_bytes())
            }
            75..=92 => {
                let ext = ["png", "jpg", "webp"][i % 3];
                let len = rng.range(3_000, 25_000);
                (
                    format!("img/i{i}.{ext}"),
                    crate::propagate::noise(&format!("{seed}-img-{i}"), len),
                )
            }
            _ => match i % 3 {
                0 => {
                    let len = rng.range(8_000, 24_000);
                    (
                        format!("fonts/f{i}.woff2"),
                        crate::propagate::noise(&format!("{seed}-font-{i}"), len),
                    )
                }
                1 => {
                    let len = rng.range(500, 6_000);
                    let j = text(&mut rng, len, &|r, w| {
                        format!("{{\"id\":{},\"t\":\"{w}\"}},\n", r.next() % 1000)
                    });
                    (
                        format!("data/d{i}.json"),
                        format!("[\n{j}{{}}]\n").into_bytes(),
                    )
                }
                _ => {
                    let len = rng.range(400, 4_000);
                    let svg = text(&mut rng, len, &|r, _| {
                        format!(
                            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\"/>\n",
                            r.next() % 512,
                            r.next() % 512,
                            r.next() % 64
                        )
                    });
                    (
                        format!("icons/v{i}.svg"),
                        format!("<svg xmlns=\"http://www.w3.org/2000/svg\">\n{svg}</svg>\n")
                            .into_bytes(),
                    )
                }
            },
        };
        put(rel, bytes)?;
    }
    Ok(total)
}

fn marker(seed: &str, round: usize) -> String {
    format!("{seed}-round-{round}")
}

/// The file every round changes: ~4 KB of html carrying the round's marker.
fn index_html(seed: &str, round: usize) -> String {
    let mut rng = Rng::new(&format!("{seed}-index"));
    html(
        &mut rng,
        &format!("<h1>{}</h1>", marker(seed, round)),
        4_000,
    )
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    Ok(test_support::git::try_git(dir, args)?)
}

/// A git repository at `dir` holding the site.
fn make_repo(dir: &Path, seed: &str, files: usize) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)?;
    git(dir, &["init", "-q"])?;
    let bytes = write_site(dir, seed, files)?;
    git(dir, &["add", "-A"])?;
    git(dir, &["commit", "-q", "-m", "site"])?;
    Ok(bytes)
}

fn commit_round(dir: &Path, seed: &str, round: usize) -> anyhow::Result<()> {
    std::fs::write(dir.join("index.html"), index_html(seed, round))?;
    git(dir, &["commit", "-q", "-am", &format!("round {round}")])?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Waits until the edge serves `marker` for `project`; returns when.
async fn wait_edge(
    http: &reqwest::Client,
    cluster: &Cluster,
    project: &str,
    marker: &str,
    deadline: Instant,
) -> anyhow::Result<Instant> {
    let url = format!("http://{}/", cluster.edges[0].http);
    let host = format!("{project}.localhost");
    loop {
        if let Ok(r) = http.get(&url).header("Host", &host).send().await {
            if r.status() == 200 && r.text().await.is_ok_and(|b| b.contains(marker)) {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            bail!("the edge did not serve {marker} for {host} in time");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Egress so far, after letting in-flight transfers finish counting.
async fn settled_egress(cluster: &Cluster) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.egress().await
}

async fn api_json(r: reqwest::RequestBuilder) -> anyhow::Result<Value> {
    let r = r.send().await?;
    let status = r.status();
    let body = r.text().await?;
    anyhow::ensure!(status.is_success(), "{status}: {body}");
    Ok(serde_json::from_str(&body)?)
}

/// Every line of a build's log.
async fn build_log(cluster: &Cluster, id: &str) -> anyhow::Result<Vec<(i64, String)>> {
    let mut lines = Vec::new();
    let mut after = 0;
    for _ in 0..100 {
        let page = api_json(cluster.api(
            Method::GET,
            &format!("/deployments/{id}/build-logs?after={after}&limit=1000"),
        ))
        .await?;
        let items = page["items"].as_array().context("log items")?;
        for l in items {
            lines.push((
                l["ts"].as_i64().unwrap_or(0),
                l["line"].as_str().unwrap_or("").to_string(),
            ));
        }
        if items.len() < 1000 {
            break;
        }
        after = page["next_after"].as_i64().unwrap_or(after);
    }
    Ok(lines)
}

/// "Stored N new of M blobs (X bytes); bundle …" → (N, M, X).
pub fn parse_stored(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix("Stored ")?;
    let mut w = rest.split_whitespace();
    let new = w.next()?.parse().ok()?;
    let (_, _) = (w.next()?, w.next()?); // "new" "of"
    let all = w.next()?.parse().ok()?;
    let bytes = rest
        .split('(')
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((new, all, bytes))
}

/// Phases from the log lines' timestamps; `post_ms` is the POST's wall clock.
fn phases(lines: &[(i64, String)], post_ms: i64) -> anyhow::Result<Phases> {
    let at = |prefix: &str| -> anyhow::Result<i64> {
        lines
            .iter()
            .find(|(_, l)| l.starts_with(prefix))
            .map(|(t, _)| *t)
            .with_context(|| format!("no {prefix:?} line in the build log"))
    };
    let (queued, cloning, checked) = (at("Queued")?, at("Cloning")?, at("Checked out")?);
    // Collection starts after the last command, or after "Nothing to install".
    let collect_start = lines
        .iter()
        .filter(|(_, l)| {
            l.starts_with("Nothing to install")
                || (l.starts_with('`') && l.contains("` finished in "))
        })
        .map(|(t, _)| *t)
        .next_back()
        .unwrap_or(checked);
    let (collected, stored, ready) = (at("Collected")?, at("Stored")?, at("Ready:")?);
    let d = |a: i64, b: i64| (b - a) as f64;
    Ok(Phases {
        enqueue_ms: d(post_ms, queued),
        pickup_resolve_ms: d(queued, cloning),
        clone_ms: d(cloning, checked),
        detect_run_ms: d(checked, collect_start),
        collect_ms: d(collect_start, collected),
        store_ms: d(collected, stored),
        publish_ms: d(stored, ready),
        edge_ms: 0.0,
    })
}

async fn build_round(
    cluster: &Cluster,
    http: &reqwest::Client,
    repo: &Path,
    round: usize,
    timeout: Duration,
) -> anyhow::Result<BuildRound> {
    if round > 0 {
        commit_round(repo, BUILD_PROJECT, round)?;
    }
    let before = cluster.egress().await?;
    let t0 = Instant::now();
    let post_ms = now_ms();
    let deadline = t0 + timeout;
    let created = api_json(
        cluster
            .api(Method::POST, &format!("/projects/{BUILD_PROJECT}/builds"))
            .json(&json!({})),
    )
    .await?;
    let id = created["id"].as_str().context("no build id")?.to_string();
    let ready_at = loop {
        let b = api_json(cluster.api(Method::GET, &format!("/builds/{id}"))).await?;
        match b["status"].as_str().unwrap_or("") {
            "ready" => break Instant::now(),
            "queued" | "building" => {}
            other => {
                let log = build_log(cluster, &id).await.unwrap_or_default();
                let text: Vec<&str> = log.iter().map(|(_, l)| l.as_str()).collect();
                bail!("build {id} ended {other}: {b}\n{}", text.join("\n"));
            }
        }
        if Instant::now() > deadline {
            bail!("build {id} not ready within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let served = wait_edge(
        http,
        cluster,
        BUILD_PROJECT,
        &marker(BUILD_PROJECT, round),
        deadline,
    )
    .await?;
    let served_wall = now_ms();
    let fetched = settled_egress(cluster).await? - before;
    let log = build_log(cluster, &id).await?;
    let mut p = phases(&log, post_ms)?;
    let ready_line = log
        .iter()
        .find(|(_, l)| l.starts_with("Ready:"))
        .map(|(t, _)| *t)
        .context("no \"Ready:\" line in the build log")?;
    p.edge_ms = (served_wall - ready_line) as f64;
    let (new_blobs, blobs, stored_bytes) = log
        .iter()
        .find_map(|(_, l)| parse_stored(l))
        .context("no \"Stored …\" line in the build log")?;
    Ok(BuildRound {
        round,
        to_ready_ms: ms(ready_at - t0),
        to_edge_ms: ms(served - t0),
        phases: p,
        new_blobs,
        blobs,
        stored_bytes,
        edge_fetched_bytes: fetched,
    })
}

async fn reference_round(
    cluster: &Cluster,
    http: &reqwest::Client,
    repo: &Path,
    work: &Path,
    round: usize,
    timeout: Duration,
) -> anyhow::Result<RefRound> {
    if round > 0 {
        commit_round(repo, REF_PROJECT, round)?;
    }
    let checkout = work.join(format!("ref-{round}"));
    let url = format!("file://{}", repo.display());
    let before = cluster.egress().await?;
    let t0 = Instant::now();
    let out = tokio::process::Command::new("git")
        .args(["clone", "-q", "--depth", "1", "--branch", "main", &url])
        .arg(&checkout)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "git clone: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cloned = Instant::now();
    let out = tokio::process::Command::new(cluster.bin_dir.join("coordinator"))
        .arg("deploy")
        .arg(&checkout)
        .args(["--project", REF_PROJECT, "--prod", "--json"])
        .env("OUTPOST_URL", &cluster.api)
        .env("OUTPOST_TOKEN", &cluster.token)
        .output()
        .await?;
    let deployed = Instant::now();
    anyhow::ensure!(
        out.status.success(),
        "coordinator deploy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "deploy --json printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let served = wait_edge(
        http,
        cluster,
        REF_PROJECT,
        &marker(REF_PROJECT, round),
        t0 + timeout,
    )
    .await?;
    let fetched = settled_egress(cluster).await? - before;
    std::fs::remove_dir_all(&checkout)?;
    Ok(RefRound {
        round,
        clone_ms: ms(cloned - t0),
        deploy_ms: ms(deployed - cloned),
        to_ready_ms: ms(deployed - t0),
        to_edge_ms: ms(served - t0),
        uploaded_blobs: result["uploaded_blobs"].as_u64().unwrap_or(0),
        blobs: result["blobs"].as_u64().unwrap_or(0),
        uploaded_bytes: result["uploaded_bytes"].as_u64().unwrap_or(0),
        edge_fetched_bytes: fetched,
    })
}

pub async fn run(cluster: &Cluster, plan: &Plan) -> anyhow::Result<BuildReport> {
    let work = cluster.root.path().join("bench-build");
    let (build_repo, ref_repo) = (work.join("repo-build"), work.join("repo-ref"));
    let site_bytes = make_repo(&build_repo, BUILD_PROJECT, plan.files)?;
    make_repo(&ref_repo, REF_PROJECT, plan.files)?;
    let (bundle_blobs, bundle_bytes) = {
        let dir = build_repo.clone();
        let b = tokio::task::spawn_blocking(move || builder::bundle::collect(&dir)).await??;
        let sizes = b.manifest.blob_sizes();
        (sizes.len() as u64, sizes.values().sum::<u64>())
    };
    eprintln!(
        "build: {} files, {:.1} MB in the repository; bundle {} blobs, {:.1} MB",
        plan.files,
        site_bytes as f64 / 1e6,
        bundle_blobs,
        bundle_bytes as f64 / 1e6
    );
    api_json(cluster.api(Method::POST, "/projects").json(&json!({
        "name": BUILD_PROJECT,
        "git": {
            "url": format!("file://{}", build_repo.display()),
            "branch": "main",
            "install_command": "",
            "build_command": plan.build_command,
            "output_dir": ".",
        },
    })))
    .await?;
    // Created up front so its cold round does not pay for it either.
    api_json(
        cluster
            .api(Method::POST, "/projects")
            .json(&json!({"name": REF_PROJECT})),
    )
    .await?;

    let http = reqwest::Client::new();
    let bar = indicatif::ProgressBar::new(plan.rounds as u64 + 1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} rounds")
            .unwrap()
            .progress_chars("=> "),
    );
    bar.set_message("build vs clone + deploy");
    let (mut builds, mut refs) = (Vec::new(), Vec::new());
    for round in 0..=plan.rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        if round % 2 == 0 {
            builds.push(build_round(cluster, &http, &build_repo, round, plan.timeout).await?);
            refs.push(
                reference_round(cluster, &http, &ref_repo, &work, round, plan.timeout).await?,
            );
        } else {
            refs.push(
                reference_round(cluster, &http, &ref_repo, &work, round, plan.timeout).await?,
            );
            builds.push(build_round(cluster, &http, &build_repo, round, plan.timeout).await?);
        }
        let (b, r) = (builds.last().unwrap(), refs.last().unwrap());
        eprintln!(
            "  round {round}: build ready {:.0} ms, edge {:.0} ms (stored {} new of {} blobs, {} B) | clone+deploy {:.0} ms, edge {:.0} ms (uploaded {} blobs, {} B)",
            b.to_ready_ms, b.to_edge_ms, b.new_blobs, b.blobs, b.stored_bytes,
            r.to_ready_ms, r.to_edge_ms, r.uploaded_blobs, r.uploaded_bytes
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(report(
        plan,
        site_bytes,
        bundle_blobs,
        bundle_bytes,
        builds,
        refs,
    ))
}

fn report(
    plan: &Plan,
    site_bytes: u64,
    bundle_blobs: u64,
    bundle_bytes: u64,
    builds: Vec<BuildRound>,
    refs: Vec<RefRound>,
) -> BuildReport {
    let warm_b = &builds[1..];
    let warm_r = &refs[1..];
    let s = |v: Vec<f64>| summarize(&v);
    let build_to_ready = s(warm_b.iter().map(|b| b.to_ready_ms).collect());
    let build_to_edge = s(warm_b.iter().map(|b| b.to_edge_ms).collect());
    let reference_to_ready = s(warm_r.iter().map(|r| r.to_ready_ms).collect());
    let reference_to_edge = s(warm_r.iter().map(|r| r.to_edge_ms).collect());
    let p50 = |f: &dyn Fn(&Phases) -> f64| s(warm_b.iter().map(|b| f(&b.phases)).collect()).p50_ms;
    let mut phases_p50_ms = BTreeMap::new();
    type Get = fn(&Phases) -> f64;
    let fields: [(&str, Get); 8] = [
        ("1 enqueue", |p| p.enqueue_ms),
        ("2 pickup + resolve branch", |p| p.pickup_resolve_ms),
        ("3 clone", |p| p.clone_ms),
        ("4 detect + commands", |p| p.detect_run_ms),
        ("5 collect + hash + precompress", |p| p.collect_ms),
        ("6 store blobs + bundle", |p| p.store_ms),
        ("7 \"Stored\" → \"Ready\" line", |p| p.publish_ms),
        ("8 \"Ready\" line → edge serves", |p| p.edge_ms),
    ];
    for (name, get) in fields {
        phases_p50_ms.insert(name.to_string(), p50(&get));
    }
    let mean = |v: Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let one_file_stored_bytes = mean(warm_b.iter().map(|b| b.stored_bytes as f64).collect());
    BuildReport {
        files: plan.files,
        site_bytes,
        bundle_blobs,
        bundle_bytes,
        build_command: plan.build_command.clone(),
        rounds: warm_b.len(),
        cold_build: builds[0].clone(),
        cold_reference: refs[0].clone(),
        ratio_to_ready: build_to_ready.p50_ms / reference_to_ready.p50_ms,
        ratio_to_edge: build_to_edge.p50_ms / reference_to_edge.p50_ms,
        cold_ratio_to_ready: builds[0].to_ready_ms / refs[0].to_ready_ms,
        build_to_ready,
        build_to_edge,
        reference_to_ready,
        reference_to_edge,
        phases_p50_ms,
        one_file_stored_blobs: mean(warm_b.iter().map(|b| b.new_blobs as f64).collect()),
        one_file_stored_bytes,
        one_file_edge_fetched_bytes: mean(
            warm_b.iter().map(|b| b.edge_fetched_bytes as f64).collect(),
        ),
        one_file_stored_fraction: one_file_stored_bytes / bundle_bytes.max(1) as f64,
        reference_one_file_uploaded_bytes: mean(
            warm_r.iter().map(|r| r.uploaded_bytes as f64).collect(),
        ),
        build_rounds: builds,
        reference_rounds: refs,
    }
}

/// Checks the host can build at all; `Some(reason)` to skip.
pub fn missing_tools() -> Option<String> {
    ["bwrap", "git"]
        .into_iter()
        .find(|p| !have(p))
        .map(|p| format!("`{p}` is not installed on this host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_line_parses() {
        assert_eq!(
            parse_stored("Stored 3 new of 2971 blobs (5123 bytes); bundle ab12cd34"),
            Some((3, 2971, 5123))
        );
        assert_eq!(parse_stored("Collected 3 files"), None);
    }

    #[test]
    fn site_has_the_files_asked_for() {
        let d = tempfile::tempdir().unwrap();
        let bytes = write_site(d.path(), "t", 50).unwrap();
        let mut n = 0;
        let mut stack = vec![d.path().to_path_buf()];
        while let Some(p) = stack.pop() {
            for e in std::fs::read_dir(p).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    n += 1;
                }
            }
        }
        assert_eq!(n, 50);
        assert!(bytes > 50_000, "{bytes}");
        assert_eq!(
            write_site(d.path(), "t", 50).unwrap(),
            bytes,
            "deterministic"
        );
    }

    #[test]
    fn phases_from_log() {
        let lines: Vec<(i64, String)> = [
            (105, "Queued (api) build of main for production"),
            (120, "Branch main is at abc"),
            (121, "Cloning file:///r at abc1234"),
            (150, "Checked out abc1234 \"x\" by B in 29ms"),
            (151, "Detected static site"),
            (152, "Nothing to install or build"),
            (400, "Collected 10 files (0 functions), 1 MB in 248ms"),
            (401, "Build finished in 300ms"),
            (450, "Stored 1 new of 30 blobs (10 bytes); bundle ab"),
            (470, "Ready: http://x"),
        ]
        .into_iter()
        .map(|(t, l)| (t, l.to_string()))
        .collect();
        let p = phases(&lines, 100).unwrap();
        assert_eq!(
            (
                p.enqueue_ms,
                p.pickup_resolve_ms,
                p.clone_ms,
                p.detect_run_ms
            ),
            (5.0, 16.0, 29.0, 2.0)
        );
        assert_eq!(
            (p.collect_ms, p.store_ms, p.publish_ms),
            (248.0, 50.0, 20.0)
        );
    }
}
