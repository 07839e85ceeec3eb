//! `bench`: measure what users and operators feel, on real processes.
//!
//! `membership`, `propagate` and `scale` start a real coordinator and N
//! real edge nodes on loopback; `build`, `static` and `function` one edge node.
//! Every loop is bounded in count and time. Results go to
//! `results/<timestamp>-<subcommand>/report.{json,md}`.

mod build;
mod cluster;
mod coordinators;
mod function;
mod load;
mod membership;
mod nginx;
mod pin;
mod plot;
mod probe;
mod propagate;
mod report;
mod rss;
mod scale;
mod soak;
mod static_files;
mod stats;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bench",
    version,
    about = "Outpost latency benchmarks: real processes on loopback, side by side with a reference; `probe` measures your own nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Cluster sizes to measure, e.g. `5,10,20`.
    #[arg(long, value_delimiter = ',', default_value = "5")]
    nodes: Vec<usize>,
    /// Regions assigned to nodes in turn.
    #[arg(long, value_delimiter = ',', default_value = "fra")]
    regions: Vec<String>,
    /// Where the `coordinator` and `edge-node` binaries are (default: next
    /// to this one).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Report directory (default: results/<timestamp>-<what>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Give up on any single wait after this long.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Load and run flags shared by `static` and `function`.
#[derive(Args, Clone)]
struct LoadArgs {
    /// Connections, closed loop or spreading --rate (default: 32 for
    /// static, 16 for function).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Constant request rate (req/s) instead of a closed loop; latency
    /// then counts from each request's scheduled send time.
    #[arg(long)]
    rate: Option<u64>,
    /// Load duration per server (and file). `function` splits it into
    /// rounds of about 2 s, the servers taking turns.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Where `coordinator`, `edge-node` (and for `function`
    /// `examples/bare_host`) are; default: next to this binary.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Report directory (default: results/<timestamp>-<subcommand>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Give up waiting for the deploy to be served after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Subcommand)]
enum Command {
    /// Full TLS 1.3 handshakes per second (no resumption) of an edge
    /// serving a custom domain with the ECDSA P-256 certificate it got
    /// through ACME (a local Pebble; needs `pebble`, and nginx), against
    /// nginx with the same certificate and key, in alternating rounds.
    Tls {
        /// Handshakes in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Let servers and client share every CPU (see `function`).
        #[arg(long)]
        no_pin: bool,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up waiting for the certificate after this long.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// A wasi:http component (default: the `hello` fixture) through the
    /// edge versus a bare wasmtime-wasi-http host with the same engine, and
    /// `wasmtime serve` with --wasmtime (req/s, latency, server CPU time per
    /// request); first request after a deploy and after a restart.
    Function {
        /// The component to serve (default: build fixtures/wasm `hello`,
        /// which needs the wasm32-wasip2 target).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Let the servers and the load generator share every CPU. By
        /// default (with two CPUs or more) the servers run on the first
        /// half and the load generator on the other, so each server's req/s
        /// is its own capacity rather than how it fares beside the load.
        #[arg(long)]
        no_pin: bool,
        /// Also measure `wasmtime serve` (the reference the design names) with
        /// this `wasmtime` binary, built with its `serve` feature; ideally
        /// the edge's wasmtime version (48). Its engine gets the pooling
        /// allocator, epoch interruption and the `wasi:cli` world.
        #[arg(long, value_name = "PATH")]
        wasmtime: Option<PathBuf>,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Time DNS, TCP connect, TLS and first byte to each URL, repeated:
    /// run it from each region against your own nodes. With --http3, https
    /// URLs over HTTP/3: DNS, QUIC handshake (TLS inside), first byte.
    Probe {
        /// http:// or https:// URLs (at most 64).
        #[arg(required = true)]
        urls: Vec<String>,
        /// Probes per URL.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Pause between probes of one URL.
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Give up on one probe after this long.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// Connect to this address instead of resolving the URL's host
        /// (Host and SNI stay the URL's), like curl's --connect-to.
        #[arg(long)]
        connect: Option<std::net::SocketAddr>,
        /// Also trust this CA (PEM), e.g. the cluster CA for platform hosts.
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// Probe https:// URLs over HTTP/3 (QUIC, UDP to the URL's port or
        /// --connect); `connect` is then the QUIC handshake with TLS inside
        /// it, and TLS is empty. http:// URLs stay HTTP/1.1.
        #[arg(long)]
        http3: bool,
        /// Report directory (default: results/<timestamp>-probe).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The same files (1 KB, 100 KB, 1 MB) from an edge node and from nginx
    /// under the same load: req/s, p50/p90/p99/p99.9 and edge/nginx ratios;
    /// both servers' RSS, idle (the edge serving --sites sites) and at the
    /// peak of each 1 MB run.
    Static {
        /// Protocols: h1 (HTTP/1.1), h1s (HTTP/1.1 over TLS), h2 (over
        /// TLS), h3 (HTTP/3 over QUIC; nginx is driven with HTTP/2, as
        /// Debian's has no HTTP/3).
        #[arg(long, value_delimiter = ',', default_value = "h1,h2,h3")]
        protos: Vec<load::Proto>,
        /// Sites the edge serves when its idle RSS is read: the bench site
        /// and small ones (index, stylesheet, 10 KB script each).
        #[arg(long, default_value_t = 100)]
        sites: usize,
        /// Each side's --duration is split into this many slices, edge and
        /// nginx taking turns (who goes first alternating); the req/s ratio
        /// is the median of the slices' own ratios.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// One edge under a constant mixed load for a long time: a page and a
    /// 100 KB script, a function and 404s, over HTTP/1.1 and HTTP/2 with
    /// TLS. Reports errors, the edge's RSS and open descriptors (start,
    /// peak, end) and latency per window; fails when any request failed.
    Soak {
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Requests per second, all kinds together (an equal share each).
        #[arg(long, default_value_t = 600)]
        rate: u64,
        /// Connections per kind of traffic.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Latency and resources are reported per window of this length.
        #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
        window: Duration,
        /// Where `coordinator` and `edge-node` are (default: next to this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Report directory (default: results/<timestamp>-soak).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up waiting for the deploy to be served after this long.
        #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Builds from git of an N-file static site with empty install/build
    /// commands (so only Outpost's own work is timed: queue, clone, collect,
    /// hash + precompress, store, publish, edge fetch) against the same work
    /// by hand (`git clone --depth 1` + `coordinator deploy <dir>`); every
    /// warm round changes one file. Needs `bwrap` and `git` (skips without).
    Build {
        /// Files in the site (html, css, js, images, fonts, json, svg).
        #[arg(long, default_value_t = 1000)]
        files: usize,
        /// Warm builds measured, after one cold build (each side).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The project's build command, run in the sandbox ("" skips the
        /// sandbox; e.g. `true` adds its setup cost to the measurement).
        #[arg(long, default_value = "")]
        build_command: String,
        /// Where `coordinator` and `edge-node` are (default: next to this
        /// binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Report directory (default: results/<timestamp>-build).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up on one build (or one reference deploy) after this long.
        #[arg(long, default_value = "300s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Kill -9 a node: time until each peer marks it down; restart it:
    /// time until every peer sees it alive.
    Membership {
        #[command(flatten)]
        common: Common,
        /// Kill/restart rounds per cluster size.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// One coordinator against three on one Postgres and one real Garage:
    /// deploys per second (concurrent clients, deploys spread over the
    /// coordinators), deploy → served on every edge, and a coordinator's
    /// RSS while it streams one large blob into the store. Needs `garage`
    /// (see README) and Postgres on 127.0.0.1:5432 (or
    /// OUTPOST_BENCH_POSTGRES=postgres://user@host:port).
    Coordinators {
        /// Deploys measured for throughput per cluster.
        #[arg(long, default_value_t = 24)]
        deploys: usize,
        /// Clients deploying at once (each its own project).
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Sequential production deploys timed until served.
        #[arg(long, default_value_t = 10)]
        served: usize,
        /// Edge nodes per cluster.
        #[arg(long, default_value_t = 2)]
        edges: usize,
        /// Size of the streamed blob in MiB.
        #[arg(long, default_value_t = 300)]
        blob_mb: u64,
        /// Where `coordinator` and `edge-node` are (default: next to this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Report directory (default: results/<timestamp>-coordinators).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Deploy repeatedly: time from finalize until every node serves the
    /// new version, and coordinator egress per deploy, with and without
    /// peer-assisted blob fetch.
    Propagate {
        #[command(flatten)]
        common: Common,
        /// Deploys measured per cluster size (after one warm-up deploy).
        #[arg(long, default_value_t = 5)]
        deploys: usize,
        /// Files rewritten by every deploy.
        #[arg(long, default_value_t = 20)]
        changed_files: usize,
        /// Size of each rewritten file in bytes.
        #[arg(long, default_value_t = 50_000)]
        file_size: usize,
        /// Files that never change.
        #[arg(long, default_value_t = 100)]
        stable_files: usize,
        /// Measure only with peer assist (skip the coordinator-only run).
        #[arg(long)]
        assist_only: bool,
    },
    /// Grow one cluster to each number of deployments (created through the
    /// API, previews of one big project sharing blobs) and measure there:
    /// finalize → served on every edge, coordinator and edge CPU and bytes
    /// per deploy, edge index and RSS, coordinator RSS and database, and a
    /// fresh edge's join → serving every production alias.
    Scale {
        /// Sizes to grow to, ascending, e.g. `100,1000,10000,100000`.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        deployments: Vec<usize>,
        /// Edge nodes in the cluster (a fresh one joins at each size, then leaves).
        #[arg(long, default_value_t = 3)]
        edges: usize,
        /// Production deploys measured at each size (after one warm-up).
        #[arg(long, default_value_t = 20)]
        deploys: usize,
        /// Asset files in every manifest (shared blobs), besides its own index page.
        #[arg(long, default_value_t = 50)]
        files: usize,
        /// Filler deployments in flight.
        #[arg(long, default_value_t = 12)]
        concurrency: usize,
        /// Small projects with a production deployment each (the fresh
        /// edge must serve them and the big project's production).
        #[arg(long, default_value_t = 5)]
        projects: usize,
        /// Stop creating deployments after this long in all (e.g. `50m`)
        /// and measure at the size reached.
        #[arg(long, value_parser = humantime::parse_duration)]
        budget: Option<Duration>,
        /// Regions assigned to edges in turn.
        #[arg(long, value_delimiter = ',', default_value = "fra")]
        regions: Vec<String>,
        /// Where `coordinator` and `edge-node` are (default: next to this binary).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Report directory (default: results/<timestamp>-scale).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Give up on any single wait (or API request) after this long.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

/// Validates the load flags shared by `static` and `function`.
fn load_mode(l: &LoadArgs, default_concurrency: usize) -> anyhow::Result<load::Mode> {
    let concurrency = l.concurrency.unwrap_or(default_concurrency);
    anyhow::ensure!(
        (1..=4096).contains(&concurrency),
        "--concurrency must be 1..=4096"
    );
    anyhow::ensure!(
        l.duration >= Duration::from_millis(100) && l.duration <= Duration::from_secs(600),
        "--duration must be between 100ms and 10m"
    );
    Ok(match l.rate {
        Some(r) => {
            anyhow::ensure!((1..=10_000_000).contains(&r), "--rate must be 1..=10000000");
            load::Mode::Rate {
                rate: r,
                conns: concurrency,
            }
        }
        None => load::Mode::Concurrency(concurrency),
    })
}

fn bin_dir(c: &Common) -> anyhow::Result<PathBuf> {
    find_bins(&c.bin_dir)
}

fn find_bins(flag: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match flag {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    for b in ["coordinator", "edge-node"] {
        anyhow::ensure!(
            dir.join(b).exists(),
            "{} is missing: build with `cargo build --release -p outpost-coordinator -p outpost-edge-node` or pass --bin-dir",
            dir.join(b).display()
        );
    }
    Ok(dir)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let argv: Vec<String> = std::env::args().collect();
    match cli.command {
        Command::Tls {
            concurrency,
            no_pin,
            duration,
            bin_dir,
            out,
            timeout,
        } => {
            let bins = find_bins(&bin_dir)?;
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(200));
            let plan = tls::Plan {
                concurrency: concurrency.max(1),
                duration,
                timeout,
                pin: !no_pin,
            };
            let r = tls::run(&bins, &plan, &bar).await?;
            bar.finish_and_clear();
            report::write(out, "tls", &argv, std::slice::from_ref(&r), tls::md(&r))?;
        }
        Command::Coordinators {
            deploys,
            clients,
            served,
            edges,
            blob_mb,
            bin_dir,
            out,
        } => {
            anyhow::ensure!(
                (1..=10_000).contains(&deploys),
                "--deploys must be 1..=10000"
            );
            anyhow::ensure!((1..=64).contains(&clients), "--clients must be 1..=64");
            anyhow::ensure!((1..=1000).contains(&served), "--served must be 1..=1000");
            anyhow::ensure!((1..=16).contains(&edges), "--edges must be 1..=16");
            anyhow::ensure!((1..=4096).contains(&blob_mb), "--blob-mb must be 1..=4096");
            let bins = find_bins(&bin_dir)?;
            let o = coordinators::Options {
                deploys,
                clients,
                served,
                edges,
                blob_mb,
            };
            let r = coordinators::run(&bins, &o).await?;
            let md = coordinators::md(&r);
            report::write(out, "coordinators", &argv, std::slice::from_ref(&r), md)?;
        }
        Command::Function {
            component,
            no_pin,
            wasmtime,
            load,
        } => {
            let mode = load_mode(&load, 16)?;
            let bins = find_bins(&load.bin_dir)?;
            let bare_host = bins.join("examples/bare_host");
            anyhow::ensure!(
                bare_host.exists(),
                "{} is missing: cargo build --release --example bare_host -p outpost-edge-node",
                bare_host.display()
            );
            let mut cluster = cluster::Cluster::start(&bins, 1, &["local".to_string()], true)?;
            let plan = function::Plan {
                component,
                bare_host,
                wasmtime,
                mode,
                duration: load.duration,
                timeout: load.timeout,
                pin: !no_pin,
            };
            let r = function::run(&mut cluster, &plan).await?;
            let dir = report::write(
                load.out,
                "function",
                &argv,
                std::slice::from_ref(&r),
                report::function_md(&r),
            )?;
            let mut curves = vec![("edge", &r.edge.cdf[..]), ("bare host", &r.bare.cdf[..])];
            if let Some(s) = &r.wasmtime_serve {
                curves.push(("wasmtime serve", &s.side.cdf[..]));
            }
            plot::latency_cdf(
                &dir.join("function-hello-h1.svg"),
                "wasi:http hello over HTTP/1.1: latency CDF",
                &curves,
            )?;
        }
        Command::Probe {
            urls,
            count,
            interval,
            timeout,
            connect,
            cacert,
            http3,
            out,
        } => {
            anyhow::ensure!(urls.len() <= 64, "at most 64 URLs");
            anyhow::ensure!((1..=1000).contains(&count), "--count must be 1..=1000");
            anyhow::ensure!(
                interval <= Duration::from_secs(60),
                "--interval must be at most 60s"
            );
            anyhow::ensure!(
                timeout > Duration::ZERO && timeout <= Duration::from_secs(120),
                "--timeout must be between 1ms and 120s"
            );
            let targets = urls
                .iter()
                .map(|u| {
                    let url = reqwest::Url::parse(u)
                        .map_err(|e| anyhow::anyhow!("{u:?} is not a URL: {e}"))?;
                    anyhow::ensure!(
                        matches!(url.scheme(), "http" | "https") && url.host_str().is_some(),
                        "{u:?}: only http:// and https:// URLs with a host"
                    );
                    Ok(probe::ProbeTarget { url, connect })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let ca = match &cacert {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                ),
                None => None,
            };
            let rs = probe::run(&targets, count, interval, timeout, ca.as_deref(), http3).await?;
            report::write(out, "probe", &argv, &rs, report::probe_md(&rs))?;
            if rs.iter().all(|r| r.samples == 0) {
                anyhow::bail!("every probe failed");
            }
        }
        Command::Static {
            protos,
            sites,
            rounds,
            load,
        } => {
            let mode = load_mode(&load, 32)?;
            anyhow::ensure!((1..=1000).contains(&sites), "--sites must be 1..=1000");
            anyhow::ensure!(
                (1..=100).contains(&rounds)
                    && load.duration / rounds as u32 >= Duration::from_millis(100),
                "--rounds must be 1..=100, each at least 100 ms of --duration"
            );
            let bins = find_bins(&load.bin_dir)?;
            let mut cluster = cluster::Cluster::start(&bins, 1, &["local".to_string()], true)?;
            // The reference for analytics' cost: the same node without them.
            cluster.add_edge("local", &["--no-analytics"])?;
            let progress = indicatif::MultiProgress::new();
            let plan = static_files::Plan {
                protos,
                mode,
                duration: load.duration,
                rounds,
                timeout: load.timeout,
                sites,
            };
            let run = static_files::run(&cluster, &plan, &progress).await?;
            let rows = run.rows;
            let analytics =
                static_files::analytics_cost(&cluster, &plan, 15, Duration::from_secs(1)).await?;
            let md = report::static_md(&rows)
                + &report::rss_md(&run.rss)
                + &report::analytics_md(&analytics);
            let dir = report::write_with(
                load.out,
                "static",
                &argv,
                &rows,
                &[("rss", serde_json::to_value(&run.rss)?)],
                md,
            )?;
            std::fs::write(
                dir.join("analytics.json"),
                serde_json::to_vec_pretty(&analytics)?,
            )?;
            for r in &rows {
                let name = format!("static-{}-{:?}.svg", r.file, r.proto).to_lowercase();
                let nginx = if r.reference_proto == r.proto {
                    "nginx".to_string()
                } else {
                    format!("nginx ({})", r.reference_proto.name())
                };
                plot::latency_cdf(
                    &dir.join(&name),
                    &format!("{} over {}: latency CDF", r.file, r.proto.name()),
                    &[("edge", &r.edge.cdf), (&nginx, &r.nginx.cdf)],
                )?;
            }
        }
        Command::Soak {
            duration,
            rate,
            connections,
            window,
            bin_dir,
            out,
            timeout,
        } => {
            anyhow::ensure!(
                duration >= Duration::from_secs(1) && duration <= Duration::from_secs(7 * 86_400),
                "--duration must be between 1s and 7 days"
            );
            anyhow::ensure!(
                window >= Duration::from_secs(1) && window <= duration,
                "--window must be at least 1s and at most --duration"
            );
            // At least one request per second of each kind.
            let kinds = soak::KINDS.len() as u64;
            anyhow::ensure!(
                (kinds..=1_000_000).contains(&rate),
                "--rate must be {kinds}..=1000000"
            );
            anyhow::ensure!(
                (1..=1024).contains(&connections),
                "--connections must be 1..=1024"
            );
            let bins = find_bins(&bin_dir)?;
            let cluster = cluster::Cluster::start(&bins, 1, &["local".to_string()], false)?;
            let plan = soak::Plan {
                duration,
                rate,
                connections,
                window,
                timeout,
            };
            let report = soak::run(&cluster, &plan).await?;
            let md = soak::markdown(&report);
            let errors = report.errors;
            report::write(out, "soak", &argv, &[report], md)?;
            anyhow::ensure!(errors == 0, "{errors} requests failed during the soak");
        }
        Command::Build {
            files,
            rounds,
            build_command,
            bin_dir,
            out,
            timeout,
        } => {
            anyhow::ensure!((1..=100).contains(&rounds), "--rounds must be 1..=100");
            anyhow::ensure!((2..=20_000).contains(&files), "--files must be 2..=20000");
            if let Some(why) = build::missing_tools() {
                eprintln!("\n\n!!!!! SKIPPING bench build: {why} !!!!!\n\n");
                return Ok(());
            }
            let bins = find_bins(&bin_dir)?;
            let cluster = cluster::Cluster::start_building(&bins, 1, &["local".to_string()])?;
            let plan = build::Plan {
                files,
                rounds,
                build_command,
                timeout,
            };
            let r = build::run(&cluster, &plan).await?;
            report::write(
                out,
                "build",
                &argv,
                std::slice::from_ref(&r),
                report::build_md(&r),
            )?;
        }
        Command::Membership { common, rounds } => {
            anyhow::ensure!((1..=100).contains(&rounds), "--rounds must be 1..=100");
            let bins = bin_dir(&common)?;
            let mut results = Vec::new();
            for &n in &common.nodes {
                anyhow::ensure!((2..=64).contains(&n), "--nodes must be 2..=64");
                eprintln!("membership: {n} nodes, {rounds} rounds");
                let mut c = cluster::Cluster::start(&bins, n, &common.regions, true)?;
                let r = membership::run(&mut c, rounds, common.timeout).await?;
                eprintln!(
                    "  down seen by a peer p50 {:.0} ms, by all p50 {:.0} ms max {:.0} ms; rejoin seen by all p50 {:.0} ms",
                    r.detect_down.p50_ms, r.detect_down_all.p50_ms, r.detect_down_all.max_ms, r.rejoin_all.p50_ms
                );
                results.push(r);
            }
            report::write(
                common.out,
                "membership",
                &argv,
                &results,
                report::membership_md(&results),
            )?;
        }
        Command::Scale {
            deployments,
            edges,
            deploys,
            files,
            concurrency,
            projects,
            budget,
            regions,
            bin_dir,
            out,
            timeout,
        } => {
            anyhow::ensure!(
                !deployments.is_empty()
                    && deployments.windows(2).all(|w| w[0] < w[1])
                    && deployments.iter().all(|&n| (1..=200_000).contains(&n)),
                "--deployments must be ascending sizes of 1..=200000"
            );
            anyhow::ensure!((1..=16).contains(&edges), "--edges must be 1..=16");
            anyhow::ensure!((1..=200).contains(&deploys), "--deploys must be 1..=200");
            anyhow::ensure!((1..=10_000).contains(&files), "--files must be 1..=10000");
            anyhow::ensure!(
                (1..=64).contains(&concurrency),
                "--concurrency must be 1..=64"
            );
            anyhow::ensure!((1..=50).contains(&projects), "--projects must be 1..=50");
            anyhow::ensure!(!regions.is_empty(), "--regions must name one");
            let bins = find_bins(&bin_dir)?;
            eprintln!("scale: {edges} edges, sizes {deployments:?}, {deploys} deploys each");
            let cluster = cluster::Cluster::start(&bins, edges, &regions, true)?;
            let plan = scale::Plan {
                sizes: deployments,
                deploys,
                files,
                concurrency,
                projects,
                timeout,
                budget,
            };
            // The report is rewritten after every size, so a run cut short
            // keeps what it measured.
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .replace(':', "-");
            let dir =
                out.unwrap_or_else(|| PathBuf::from("results").join(format!("{stamp}-scale")));
            scale::run(&cluster, &plan, |r| {
                report::write(
                    Some(dir.clone()),
                    "scale",
                    &argv,
                    std::slice::from_ref(r),
                    scale::md(r),
                )?;
                scale::plots(&dir, r)
            })
            .await?;
        }
        Command::Propagate {
            common,
            deploys,
            changed_files,
            file_size,
            stable_files,
            assist_only,
        } => {
            anyhow::ensure!((1..=100).contains(&deploys), "--deploys must be 1..=100");
            anyhow::ensure!(
                file_size <= 16 << 20 && changed_files <= 1000 && stable_files <= 10_000,
                "site shape too large"
            );
            let bins = bin_dir(&common)?;
            let shape = propagate::SiteShape {
                changed_files,
                file_size,
                stable_files,
            };
            let mut results = Vec::new();
            for &n in &common.nodes {
                anyhow::ensure!((1..=64).contains(&n), "--nodes must be 1..=64");
                let modes: &[bool] = if assist_only { &[true] } else { &[true, false] };
                for &assist in modes {
                    eprintln!("propagate: {n} nodes, peer assist {assist}, {deploys} deploys");
                    let c = cluster::Cluster::start(&bins, n, &common.regions, assist)?;
                    let r = propagate::run(&c, deploys, &shape, common.timeout).await?;
                    eprintln!(
                        "  all nodes serving p50 {:.0} ms max {:.0} ms; coordinator egress {:.2}x the changed bytes",
                        r.all_nodes.p50_ms, r.all_nodes.max_ms, r.egress_ratio
                    );
                    results.push(r);
                }
            }
            let dir = report::write(
                common.out,
                "propagate",
                &argv,
                &results,
                report::propagate_md(&results),
            )?;
            for r in &results {
                let assist = if r.peer_assist { "assist" } else { "direct" };
                plot::per_node(
                    &dir.join(format!("propagate-{}-nodes-{assist}.svg", r.nodes)),
                    &format!(
                        "{} nodes, peer assist {}: finalize → per node (p50)",
                        r.nodes,
                        if r.peer_assist { "on" } else { "off" }
                    ),
                    "milliseconds",
                    &[
                        ("signed config", &r.node_config_p50_ms),
                        ("serving", &r.node_serving_p50_ms),
                    ],
                )?;
            }
        }
    }
    Ok(())
}
