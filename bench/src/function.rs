//! `bench function`: a wasi:http component through the edge node versus
//! the same component under a bare wasmtime-wasi-http host with the same
//! engine settings (`edge-node/examples/bare_host.rs`) and, when given one,
//! under `wasmtime serve` itself; plus the first request after a deploy
//! (the edge compiles before switching) and after a restart (compiled
//! artefact loaded from the disk cache).

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
    /// The same load on `wasmtime serve`, in the same rounds (`--wasmtime`).
    pub wasmtime_serve: Option<ServeReport>,
}

/// `wasmtime serve` measured beside the edge and the bare host.
#[derive(Debug, Serialize)]
pub struct ServeReport {
    /// `wasmtime --version`.
    pub version: String,
    /// Its arguments (engine settings as close to the edge's as its flags go).
    pub args: Vec<String>,
    pub side: Side,
    /// Edge over `wasmtime serve`, over all rounds and per round.
    pub rps_ratio: f64,
    pub rps_ratio_rounds: Vec<f64>,
    pub p99_ratio: f64,
    pub cpu_us_per_request: f64,
}

/// A reference server, killed when dropped.
struct Reference(Child);

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines a reference may print before the one with its address, and the
/// bytes of each that are read.
const MAX_BANNER_LINES: usize = 50;
const MAX_BANNER_LINE: u64 = 4096;

/// Starts `bin args…` and reads its address from the first line of `out`
/// (stdout or stderr) that `parse_addr` accepts; the rest of that stream
/// is drained in a thread so the server never blocks on a full pipe.
fn start_reference(
    bin: &Path,
    args: &[String],
    from_stderr: bool,
    parse_addr: fn(&str) -> Option<std::net::SocketAddr>,
) -> anyhow::Result<(Reference, std::net::SocketAddr)> {
    use std::io::BufRead;
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null());
    if from_stderr {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let out: Box<dyn std::io::Read + Send> = if from_stderr {
        Box::new(child.stderr.take().context("no stderr")?)
    } else {
        Box::new(child.stdout.take().context("no stdout")?)
    };
    let server = Reference(child);
    let mut out = std::io::BufReader::new(out);
    // What it said instead, shortened, for the error.
    let mut seen: Vec<String> = Vec::new();
    let addr = loop {
        let mut line = String::new();
        let read = std::io::Read::take(&mut out, MAX_BANNER_LINE)
            .read_line(&mut line)
            .with_context(|| format!("reading what {} printed", bin.display()))?;
        if read == 0 || seen.len() >= MAX_BANNER_LINES {
            bail!(
                "{} printed no address; its first lines: {:?}",
                bin.display(),
                &seen[..seen.len().min(5)]
            );
        }
        if let Some(addr) = parse_addr(line.trim()) {
            break addr;
        }
        seen.push(line.chars().take(120).collect());
    };
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Ok((server, addr))
}

/// `bare_host`'s first line: `listening on 127.0.0.1:PORT`.
fn bare_host_addr(line: &str) -> Option<std::net::SocketAddr> {
    line.strip_prefix("listening on ")?.parse().ok()
}

/// `wasmtime serve`'s banner: `Serving HTTP on http://127.0.0.1:PORT/`.
fn serve_addr(line: &str) -> Option<std::net::SocketAddr> {
    line.strip_prefix("Serving HTTP on http://")?
        .strip_suffix('/')?
        .parse()
        .ok()
}

/// `wasmtime serve` set up like the edge's engine as far as its flags go:
/// the pooling allocator with the edge's slot reset (PAGEMAP_SCAN and the
/// bytes kept resident, when this kernel has it), table shape and memory
/// ceiling; epoch interruption (a timeout turns it on; its ticker runs
/// every 50 ms where the edge's runs every 1 ms); and the `wasi:cli`
/// command world next to `wasi:http`, which components built with Rust's
/// std import. It prefixes and copies the guest's stdout and stderr as the
/// edge captures them.
fn serve_args(component: &Path) -> Vec<String> {
    use edge_node::functions::{RuntimeConfig, MAX_TABLES_PER_MODULE, TABLE_ELEMENTS};
    let r = edge_node::functions::pool_residency();
    let config = RuntimeConfig::new(Path::new("."));
    let pool = [
        "pooling-allocator=y".to_string(),
        format!(
            "pooling-pagemap-scan={}",
            if r.pagemap_scan { "y" } else { "n" }
        ),
        format!("pooling-memory-keep-resident={}", r.memory_bytes),
        format!("pooling-table-keep-resident={}", r.table_bytes),
        format!("pooling-async-stack-keep-resident={}", r.async_stack_bytes),
        format!("pooling-max-tables-per-module={MAX_TABLES_PER_MODULE}"),
        format!("pooling-table-elements={TABLE_ELEMENTS}"),
        format!("pooling-max-memory-size={}", config.max_memory_bytes),
    ];
    let mut args: Vec<String> = ["serve", "--addr", "127.0.0.1:0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for o in pool {
        args.push("-O".to_string());
        args.push(o);
    }
    for a in ["-W", "timeout=30s", "-S", "cli=y"] {
        args.push(a.to_string());
    }
    args.push(component.display().to_string());
    args
}

fn wasmtime_version(bin: &Path) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} --version failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
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
pub(crate) fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
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
    /// A `wasmtime` binary to measure `wasmtime serve` with, too.
    pub wasmtime: Option<PathBuf>,
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
        user_agent: None,
        expect: None,
    };
    let bare_args = vec![component.display().to_string(), "127.0.0.1:0".to_string()];
    let (bare_proc, bare_addr) =
        start_reference(&plan.bare_host, &bare_args, false, bare_host_addr)?;
    // Each server measured: the edge first, then the references.
    let mut servers = vec![
        Measured::new(edge_target.clone(), cluster.edges[0].proc.child.id()),
        Measured::new(
            Target {
                addr: bare_addr,
                ..edge_target.clone()
            },
            bare_proc.0.id(),
        ),
    ];
    let mut references = vec![bare_proc];
    let serve = match &plan.wasmtime {
        Some(bin) => {
            let version = wasmtime_version(bin)?;
            let args = serve_args(&component);
            let (proc, addr) = start_reference(bin, &args, true, serve_addr)?;
            servers.push(Measured::new(
                Target {
                    addr,
                    ..edge_target.clone()
                },
                proc.0.id(),
            ));
            references.push(proc);
            Some((version, args))
        }
        None => None,
    };
    let (allowed, pinned) = pin::split_if(plan.pin);
    if let Some(split) = &pinned {
        for s in &servers {
            pin::pin_process(s.pid, &split.servers)?;
        }
        // This process is the load generator (its runtime's threads).
        pin::pin_process(std::process::id(), &split.load)?;
    }
    // The servers take turns (edge-bare, bare-edge, …) in short slices,
    // the idle ones stopped (SIGSTOP): on a shared machine whose speed
    // drifts by ±10% within a minute, one long run each compares different
    // machines. Each round gives its own ratios too.
    let rounds = (plan.duration.as_secs() / 2).clamp(2, 10) as usize;
    let slice = plan.duration / rounds as u32;
    for round in 0..rounds {
        bar.set_message(format!(
            "function: round {}/{rounds}, {} servers ({slice:?} each)",
            round + 1,
            servers.len()
        ));
        for i in turn_order(round, servers.len()) {
            let _stopped = servers
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, s)| Stopped::new(s.pid))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let s = &mut servers[i];
            // CPU time each server used under load: what a request costs
            // it, whatever the load generator takes.
            let before = cpu_time(s.pid)?;
            let r = load::run(&s.target, plan.mode, slice).await?;
            s.cpu += cpu_time(s.pid)?.saturating_sub(before);
            s.round_rps.push(r.rps());
            merge(&mut s.total, r);
        }
    }
    drop(references);
    let mut summaries = servers.iter().map(Measured::summary);
    let edge = summaries.next().context("no edge")??;
    let bare = summaries.next().context("no bare host")??;
    let bare_ratios = Ratios::of(&edge, &bare);
    let wasmtime_serve = match (serve, summaries.next().transpose()?) {
        (Some((version, args)), Some(s)) => {
            let r = Ratios::of(&edge, &s);
            Some(ServeReport {
                version,
                args,
                side: s.side,
                rps_ratio: r.rps,
                rps_ratio_rounds: r.rounds,
                p99_ratio: r.p99,
                cpu_us_per_request: s.cpu_us,
            })
        }
        _ => None,
    };

    if let (Some(_), Some(all)) = (&pinned, &allowed) {
        // The restarted edge is this process's child: it must not inherit
        // the load generator's CPUs.
        pin::pin_process(std::process::id(), all)?;
    }
    bar.set_message("function: restarting the edge");
    // Warm restart: the compiled artefact is on disk.
    cluster.edges[0].proc.kill9();
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
        edge_cpu_us_per_request: edge.cpu_us,
        bare_cpu_us_per_request: bare.cpu_us,
        component: component.display().to_string(),
        mode: plan.mode,
        rps_ratio: bare_ratios.rps,
        rps_ratio_rounds: bare_ratios.rounds,
        p99_ratio: bare_ratios.p99,
        edge: edge.side,
        bare: bare.side,
        deploy_to_first_ok_ms: deploy_to_first_ok.as_secs_f64() * 1000.0,
        first_request_after_deploy_ms: first.as_secs_f64() * 1000.0,
        first_request_after_restart_ms: after_restart.as_secs_f64() * 1000.0,
        pinned,
        wasmtime_serve,
    })
}

/// One server under load: where it listens and what it did.
struct Measured {
    target: Target,
    pid: u32,
    total: Option<load::LoadResult>,
    round_rps: Vec<f64>,
    cpu: Duration,
}

impl Measured {
    fn new(target: Target, pid: u32) -> Self {
        Measured {
            target,
            pid,
            total: None,
            round_rps: Vec::new(),
            cpu: Duration::ZERO,
        }
    }

    /// Its figures over all rounds.
    fn summary(&self) -> anyhow::Result<Summary<'_>> {
        let total = self.total.as_ref().context("no rounds were run")?;
        Ok(Summary {
            side: side(total),
            cpu_us: self.cpu.as_secs_f64() * 1e6 / total.requests.max(1) as f64,
            round_rps: &self.round_rps,
        })
    }
}

/// One server's figures: latency and req/s, CPU time per request (µs) and
/// req/s in each round.
struct Summary<'a> {
    side: Side,
    cpu_us: f64,
    round_rps: &'a [f64],
}

/// The edge over one reference.
struct Ratios {
    rps: f64,
    rounds: Vec<f64>,
    p99: f64,
}

impl Ratios {
    fn of(edge: &Summary, other: &Summary) -> Ratios {
        Ratios {
            rps: edge.side.rps / other.side.rps,
            rounds: edge
                .round_rps
                .iter()
                .zip(other.round_rps)
                .map(|(a, b)| a / b)
                .collect(),
            p99: edge.side.p99_ms / other.side.p99_ms,
        }
    }
}

/// Which server goes when in round `round` of `n`: each round starts one
/// further along, so none is always measured first (or right after the
/// same neighbour) and drift spreads over all of them.
fn turn_order(round: usize, n: usize) -> Vec<usize> {
    (0..n).map(|k| (k + round) % n).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{bare_host_addr, cpu_ticks, serve_addr, start_reference, turn_order};

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".to_string(), script.to_string()]
    }

    #[test]
    fn a_reference_is_found_by_its_banner_and_killed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let drained = dir.path().join("drained");
        // Noise, the banner on stderr, then far more output than a pipe
        // holds (64 KiB): the marker appears only if that is read.
        let script = format!(
            "echo starting >&2; echo 'Serving HTTP on http://127.0.0.1:4242/' >&2; \
             head -c 1000000 /dev/zero >&2; touch {}; sleep 30",
            drained.display()
        );
        let (server, addr) = start_reference(Path::new("sh"), &sh(&script), true, serve_addr)
            .expect("the banner is read");
        assert_eq!(addr, "127.0.0.1:4242".parse().unwrap());
        let pid = server.0.id();
        let t = std::time::Instant::now();
        while !drained.exists() {
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "its output is not drained: it blocks on a full pipe"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(server);
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty(), "killed and reaped: {state}");
    }

    /// The error of a reference whose output never gives an address.
    fn no_address(script: &str, from_stderr: bool) -> String {
        let parse = if from_stderr {
            serve_addr
        } else {
            bare_host_addr
        };
        let err = start_reference(Path::new("sh"), &sh(script), from_stderr, parse)
            .err()
            .expect("no address");
        format!("{err:#}")
    }

    #[test]
    fn a_reference_without_a_banner_is_an_error_naming_its_output() {
        // Exits without one.
        let err = no_address("echo oops", false);
        assert!(err.contains("oops"), "{err}");
        // Prints forever but never the banner: bounded.
        let err = no_address("while :; do echo chatter; done", false);
        assert!(err.contains("printed no address"), "{err}");
        // One endless line: read in bounded pieces, and the error stays short.
        let err = no_address("while :; do printf xxxxxxxxxxxxxxxx >&2; done", true);
        assert!(err.len() < 1000, "{err}");
        // Not a program at all.
        assert!(
            start_reference(Path::new("/nonexistent/wasmtime"), &[], true, serve_addr).is_err()
        );
    }

    #[test]
    fn reference_addresses_from_their_banners() {
        let addr = |s: &str| Some(s.parse().unwrap());
        assert_eq!(
            serve_addr("Serving HTTP on http://127.0.0.1:40123/"),
            addr("127.0.0.1:40123")
        );
        assert_eq!(
            serve_addr("Serving HTTP on http://[::1]:8080/"),
            addr("[::1]:8080")
        );
        assert_eq!(
            bare_host_addr("listening on 127.0.0.1:9"),
            addr("127.0.0.1:9")
        );
        for bad in [
            "",
            "Serving HTTP on http://127.0.0.1:40123",
            "Serving HTTP on http://localhost:80/",
            "Serving HTTP on https://127.0.0.1:1/",
            "Serving HTTP on http://127.0.0.1:99999/",
            "Listening for shutdown on tcp://127.0.0.1:1/",
        ] {
            assert_eq!(serve_addr(bad), None, "{bad:?}");
        }
        for bad in [
            "",
            "listening on ",
            "listening on 127.0.0.1",
            "listening 127.0.0.1:1",
        ] {
            assert_eq!(bare_host_addr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_server_takes_each_place_in_turn() {
        assert_eq!(turn_order(0, 2), [0, 1]);
        assert_eq!(turn_order(1, 2), [1, 0]);
        assert_eq!(turn_order(0, 3), [0, 1, 2]);
        assert_eq!(turn_order(1, 3), [1, 2, 0]);
        assert_eq!(turn_order(2, 3), [2, 0, 1]);
        assert_eq!(turn_order(3, 3), [0, 1, 2]);
        assert_eq!(turn_order(5, 1), [0]);
    }

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
