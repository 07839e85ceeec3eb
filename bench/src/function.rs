//! `bench function`: a wasi:http component through the edge node versus
//! the same component under a bare wasmtime-wasi-http host with the same
//! engine settings (`edge-node/examples/bare_host.rs`); plus the first
//! request after a deploy (the edge compiles before switching) and after
//! a restart (compiled artefact loaded from the disk cache).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::cluster::Cluster;
use crate::load::{self, Mode, Proto, Target};
use crate::pin::{self, Split};
use crate::static_files::{side, Side, HOST};

#[derive(Debug, Serialize)]
pub struct FunctionReport {
    pub component: String,
    pub mode: Mode,
    pub edge: Side,
    pub bare: Side,
    /// Over all rounds: total requests / total time, edge over bare.
    pub rps_ratio: f64,
    /// The same ratio in each round (edge and bare measured back to back).
    pub rps_ratio_rounds: Vec<f64>,
    pub p99_ratio: f64,
    /// Server CPU time (user + system, all threads) per request under load.
    pub edge_cpu_us_per_request: f64,
    pub bare_cpu_us_per_request: f64,
    /// Finalize → the first 200 from the function (includes compiling).
    pub deploy_to_first_ok_ms: f64,
    /// Latency of that first successful request.
    pub first_request_after_deploy_ms: f64,
    /// Latency of the first request after a restart ("serving" line →
    /// request; the compiled artefact comes from the disk cache).
    pub first_request_after_restart_ms: f64,
    /// CPUs of the servers and of the load generator; `None`: shared.
    pub pinned: Option<Split>,
}

struct Bare(Child);

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bare(bin: &Path, component: &Path) -> anyhow::Result<(Bare, std::net::SocketAddr)> {
    use std::io::BufRead;
    let mut child = Command::new(bin)
        .arg(component)
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let out = child.stdout.take().context("no stdout")?;
    let bare = Bare(child);
    let mut line = String::new();
    std::io::BufReader::new(out).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected first line from bare_host: {line:?}"))?
        .parse()?;
    Ok((bare, addr))
}

/// A process stopped (SIGSTOP) until this is dropped (SIGCONT), so the
/// side not under load takes no CPU (its epoch ticker, timers).
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> anyhow::Result<Self> {
        signal("-STOP", pid)?;
        Ok(Stopped(pid))
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if let Err(e) = signal("-CONT", self.0) {
            eprintln!("cannot resume process {}: {e:#}", self.0);
        }
    }
}

fn signal(sig: &str, pid: u32) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill {sig} {pid} failed");
    Ok(())
}

/// User + system CPU time of process `pid` so far, from /proc (in clock
/// ticks, 10 ms at the usual 100 Hz: a slice of a few seconds is hundreds).
fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let ticks =
        cpu_ticks(&stat).with_context(|| format!("unexpected /proc/{pid}/stat: {stat:?}"))?;
    Ok(Duration::from_millis(
        ticks * 1000 / clock_ticks_per_second(),
    ))
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2, in parentheses) may itself hold spaces and
/// parentheses, so fields are counted from its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    }
}

fn merge(total: &mut Option<load::LoadResult>, r: load::LoadResult) {
    match total {
        None => *total = Some(r),
        Some(t) => {
            t.requests += r.requests;
            t.errors += r.errors;
            t.elapsed += r.elapsed;
            // Both come from the same bounds: adding cannot fail.
            let _ = t.latency.add(&r.latency);
        }
    }
}

/// One GET; `Some(latency)` on a 200.
async fn get_ok(http: &reqwest::Client, url: &str) -> Option<Duration> {
    let t = Instant::now();
    let r = http.get(url).header("Host", HOST).send().await.ok()?;
    let ok = r.status() == 200;
    let _ = r.bytes().await.ok()?;
    ok.then(|| t.elapsed())
}

pub struct Plan {
    pub component: Option<PathBuf>,
    pub bare_host: PathBuf,
    pub mode: Mode,
    pub duration: Duration,
    pub timeout: Duration,
    /// Servers and load generator on separate CPUs (when there are two+).
    pub pin: bool,
}

pub async fn run(cluster: &mut Cluster, plan: &Plan) -> anyhow::Result<FunctionReport> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(100));
    bar.set_message("function: building the component");
    let component = match &plan.component {
        Some(c) => c.clone(),
        None => tokio::task::spawn_blocking(|| test_support::wasm_fixture("hello")).await?,
    };
    anyhow::ensure!(component.is_file(), "{} is not a file", component.display());
    let site = cluster.root.path().join("function-site");
    std::fs::create_dir_all(site.join("api"))?;
    std::fs::write(site.join("index.html"), "<h1>functions</h1>")?;
    std::fs::copy(&component, site.join("api/hello.wasm"))?;

    bar.set_message("function: deploying");
    let client = cluster.client()?;
    let staged = cluster.stage(&client, &site, "bench").await?;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/hello", cluster.edges[0].http);
    let t0 = Instant::now();
    coordinator::cli::deploy::finalize(&client, staged).await?;
    let first = loop {
        if let Some(lat) = get_ok(&http, &url).await {
            break lat;
        }
        if t0.elapsed() > plan.timeout {
            bail!("the function was not served within {:?}", plan.timeout);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let deploy_to_first_ok = t0.elapsed();

    let edge_target = Target {
        addr: cluster.edges[0].http,
        host: HOST.into(),
        path: "/api/hello".into(),
        proto: Proto::H1,
        tls: None,
    };
    let (bare_proc, bare_addr) = start_bare(&plan.bare_host, &component)?;
    let bare_target = Target {
        addr: bare_addr,
        ..edge_target.clone()
    };
    let edge_pid = cluster.edges[0].proc.child.id();
    let bare_pid = bare_proc.0.id();
    let allowed = pin::allowed_cpus().ok();
    let pinned = if plan.pin {
        allowed.as_deref().and_then(Split::of)
    } else {
        None
    };
    if let Some(split) = &pinned {
        pin::pin_process(edge_pid, &split.servers)?;
        pin::pin_process(bare_pid, &split.servers)?;
        // This process is the load generator (its runtime's threads).
        pin::pin_process(std::process::id(), &split.load)?;
    }
    // Edge and bare host take turns (edge-bare, bare-edge, …) in short
    // slices, the idle one stopped (SIGSTOP): on a shared machine whose
    // speed drifts by ±10% within a minute, one long run each compares two
    // different machines. Each round gives its own ratio too.
    let rounds = (plan.duration.as_secs() / 2).clamp(2, 10) as u32;
    let slice = plan.duration / rounds;
    let (mut edge_total, mut bare_total) = (None, None);
    let mut round_ratios = Vec::new();
    // CPU time each server used under load: what a request costs it,
    // whatever the load generator takes.
    let mut cpu = [Duration::ZERO; 2];
    for round in 0..rounds {
        bar.set_message(format!(
            "function: round {}/{rounds}, edge and bare host ({slice:?} each)",
            round + 1
        ));
        let mut rps = [0.0; 2];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (target, total, pid, paused) = if i == 0 {
                (&edge_target, &mut edge_total, edge_pid, bare_pid)
            } else {
                (&bare_target, &mut bare_total, bare_pid, edge_pid)
            };
            let r = {
                let _stopped = Stopped::new(paused)?;
                let before = cpu_time(pid)?;
                let r = load::run(target, plan.mode, slice).await?;
                cpu[i] += cpu_time(pid)?.saturating_sub(before);
                r
            };
            rps[i] = r.rps();
            merge(total, r);
        }
        round_ratios.push(rps[0] / rps[1]);
    }
    let cpu_us = |cpu: Duration, r: &Option<load::LoadResult>| {
        r.as_ref()
            .map_or(0.0, |r| cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64)
    };
    let (edge_cpu_us, bare_cpu_us) = (cpu_us(cpu[0], &edge_total), cpu_us(cpu[1], &bare_total));
    drop(bare_proc);
    let (edge, bare) = (
        side(&edge_total.context("no edge rounds")?),
        side(&bare_total.context("no bare rounds")?),
    );

    if let (Some(_), Some(all)) = (&pinned, &allowed) {
        // The restarted edge is this process's child: it must not inherit
        // the load generator's CPUs.
        pin::pin_process(std::process::id(), all)?;
    }
    bar.set_message("function: restarting the edge");
    // Warm restart: the compiled artefact is on disk.
    cluster.edges[0].proc.kill();
    cluster.restart(0)?;
    let url = format!("http://{}/api/hello", cluster.edges[0].http);
    let restarted = Instant::now();
    let after_restart = loop {
        if let Some(lat) = get_ok(&http, &url).await {
            break lat;
        }
        if restarted.elapsed() > plan.timeout {
            bail!(
                "the restarted edge did not serve the function within {:?}",
                plan.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    bar.finish_and_clear();
    Ok(FunctionReport {
        edge_cpu_us_per_request: edge_cpu_us,
        bare_cpu_us_per_request: bare_cpu_us,
        component: component.display().to_string(),
        mode: plan.mode,
        rps_ratio: edge.rps / bare.rps,
        rps_ratio_rounds: round_ratios,
        p99_ratio: edge.p99_ms / bare.p99_ms,
        edge,
        bare,
        deploy_to_first_ok_ms: deploy_to_first_ok.as_secs_f64() * 1000.0,
        first_request_after_deploy_ms: first.as_secs_f64() * 1000.0,
        first_request_after_restart_ms: after_restart.as_secs_f64() * 1000.0,
        pinned,
    })
}

#[cfg(test)]
mod tests {
    use super::cpu_ticks;

    #[test]
    fn cpu_ticks_from_proc_stat() {
        let line =
            "4242 (edge node) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(line), Some(1290));
        // A name with a parenthesis of its own.
        let odd = "7 (a) b) R 1 7 7 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 1 0 0";
        assert_eq!(cpu_ticks(odd), Some(15));
        for bad in [
            "",
            "4242 (edge",
            "4242 (x) S 1 2",
            "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ten 5",
        ] {
            assert_eq!(cpu_ticks(bad), None, "{bad:?}");
        }
    }
}
