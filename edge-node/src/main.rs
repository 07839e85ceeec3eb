//! `edge-node`: join a cluster, then serve its sites.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use edge_node::{enroll, identity::Identity, node};

// Per request the edge allocates headers, a wasm store and its resources;
// under perf (wrk on a hello function) glibc's malloc took about 11% of
// that path's CPU, mimalloc about 6%. See platform::allocator.
#[global_allocator]
static ALLOCATOR: platform::allocator::Allocator = platform::allocator::Allocator;

#[derive(Parser)]
#[command(
    name = "edge-node",
    version,
    about = "Outpost edge node: serves deployed sites close to users"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct DataDir {
    /// Where the node keeps its identity, index, blobs and status.
    #[arg(
        long,
        env = "OUTPOST_EDGE_DATA_DIR",
        default_value = "/var/lib/outpost-edge"
    )]
    data_dir: PathBuf,
}

/// Behaviour flags shared by `join` (which then runs) and `run`.
#[derive(Args)]
struct NodeFlags {
    /// Fetch blobs only from the coordinator, never from peers.
    #[arg(long)]
    no_peer_assist: bool,
    /// Let functions (still only hosts on their project's outbound list)
    /// and proxy rewrites reach loopback and private addresses.
    #[arg(long)]
    allow_private_outbound: bool,
    /// WebAssembly instances this node runs at once; more requests get a
    /// 503. One project's functions together get at most half of them,
    /// and hold at most 256 outbound connections, so no tenant takes the
    /// node. Each slot reserves about 8 GiB of address space (not memory)
    /// for its linear memories and their guard pages.
    #[arg(long, env = "OUTPOST_EDGE_MAX_INSTANCES", default_value_t = edge_node::functions::DEFAULT_MAX_INSTANCES,
          value_parser = clap::value_parser!(u32).range(1..=edge_node::functions::MAX_INSTANCES_LIMIT as i64))]
    max_instances: u32,
    /// Disk the node gives bundles and blobs (e.g. `10GiB`, `500MB`). What
    /// production and branch hosts serve is always kept; deployments' own
    /// hosts, fetched on their first request, are kept most recently used
    /// first within the rest, and fetched again after eviction.
    #[arg(long, env = "OUTPOST_EDGE_CACHE_SIZE", default_value = "10GiB",
          value_parser = parse_cache_size)]
    cache_size: bytesize::ByteSize,
    /// How long a bundle no host points at any more (a deleted deployment)
    /// and a blob no kept bundle holds stay on disk before they are removed.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    cache_grace: std::time::Duration,
    /// Between passes of the disk cache.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    cache_interval: std::time::Duration,
    /// Keep the cluster key (what opens the config's secrets: project
    /// variables, certificate keys) in this file, so that after a restart
    /// HTTPS and functions with variables serve even with no coordinator
    /// and no peer reachable. Must lie outside the data directory (a copy
    /// of the directory must not carry it); a tmpfs such as `/run` keeps
    /// it across restarts but not reboots. Default: memory only, and the
    /// node asks its coordinator or a peer after each start.
    #[arg(long, env = "OUTPOST_EDGE_KEY_CACHE")]
    key_cache: Option<PathBuf>,
    /// Serve Prometheus metrics as `GET /metrics` on this address (e.g.
    /// `127.0.0.1:9100`). Off by default. Nothing authenticates a scrape:
    /// an address off loopback is served as given (with a warning), so
    /// firewall it to your scraper.
    #[arg(long, env = "OUTPOST_EDGE_METRICS", value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Do not count traffic analytics (requests, page views, visitors …
    /// per site). When counting, each closed minute is kept on disk under
    /// `<data dir>/analytics` until the coordinator has it.
    #[arg(long, env = "OUTPOST_EDGE_NO_ANALYTICS")]
    no_analytics: bool,
    /// Distinct keys (paths, referrers, countries, function routes) one
    /// minute of analytics may hold, and a site entry per 16 of them; past
    /// it new keys are counted as "(other)", so memory stays bounded
    /// whatever the traffic.
    #[arg(long, env = "OUTPOST_EDGE_ANALYTICS_MAX_KEYS", default_value_t = analytics::recorder::DEFAULT_MAX_KEYS as u32,
          value_parser = clap::value_parser!(u32).range(100..=10_000_000))]
    analytics_max_keys: u32,
    /// Disk the analytics spool may use while the coordinator cannot take
    /// records (e.g. `256MiB`); past it the oldest minutes are merged into
    /// hours, then days, instead of being dropped.
    #[arg(long, env = "OUTPOST_EDGE_ANALYTICS_SPOOL_SIZE", default_value = "256MiB",
          value_parser = parse_cache_size)]
    analytics_spool_size: bytesize::ByteSize,
    /// A country database (MaxMind GeoLite2/GeoIP2 Country or DB-IP, a
    /// `.mmdb` file) for the analytics' countries. Without one, countries
    /// are not counted.
    #[arg(long, env = "OUTPOST_EDGE_GEOIP", value_name = "FILE")]
    geoip: Option<PathBuf>,
    /// Do not serve HTTP/3. By default the node serves it over UDP on the
    /// HTTPS port (open that UDP port in your firewall) and advertises it
    /// to HTTPS clients with `Alt-Svc`.
    #[arg(long, env = "OUTPOST_EDGE_NO_HTTP3")]
    no_http3: bool,
    /// Memory for hot files: blobs up to 2 MiB are read and verified once,
    /// then served from memory, least recently used out first (e.g.
    /// `256MiB`). Larger files are served from disk (`sendfile` over plain
    /// HTTP).
    #[arg(long, env = "OUTPOST_EDGE_MEMORY_CACHE", default_value = "64MiB",
          value_parser = parse_cache_size)]
    memory_cache: bytesize::ByteSize,
}

/// A size of at least 1 MiB (less could not hold one site) and at most 1 PiB.
fn parse_cache_size(s: &str) -> Result<bytesize::ByteSize, String> {
    let b: bytesize::ByteSize = s
        .trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a size like 10GiB or 500MB: {e}"))?;
    if b.0 < 1024 * 1024 || b.0 > 1 << 50 {
        return Err(format!(
            "{s:?}: the cache size must be between 1MiB and 1PiB"
        ));
    }
    Ok(b)
}

#[derive(Subcommand)]
enum Command {
    /// Enrol with a coordinator using a one-time join token, then run.
    Join {
        /// The coordinator's QUIC address (host:port, default port 8701).
        coordinator: String,
        /// Join token from `coordinator token create-join`.
        #[arg(long, env = "OUTPOST_JOIN_TOKEN", hide_env_values = true)]
        token: String,
        /// Region this node serves (must match the token's region).
        #[arg(long)]
        region: String,
        /// Node name shown in `coordinator nodes` (default: the host name).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        data: DataDir,
        /// HTTP listen address, saved for later runs.
        #[arg(long, default_value = "0.0.0.0:80")]
        http: SocketAddr,
        /// HTTPS listen address, saved for later runs.
        #[arg(long, default_value = "0.0.0.0:443")]
        https: SocketAddr,
        /// QUIC (UDP) listen address for other edge nodes: SWIM gossip,
        /// config relay, blob transfer. Saved for later runs.
        #[arg(long, default_value = "0.0.0.0:8702")]
        mesh: SocketAddr,
        /// Address peers should dial (IP:PORT) when it differs from --mesh
        /// (NAT, 0.0.0.0). Default: --mesh, with 0.0.0.0 replaced by the
        /// local IP that routes to the coordinator. Saved for later runs.
        #[arg(long)]
        advertise: Option<SocketAddr>,
        /// Enrol and exit instead of running.
        #[arg(long)]
        no_run: bool,
        #[command(flatten)]
        node: NodeFlags,
    },
    /// Run an enrolled node with its saved identity.
    Run {
        #[command(flatten)]
        data: DataDir,
        /// HTTP listen address (default: the one saved at join).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// HTTPS listen address (default: the one saved at join).
        #[arg(long)]
        https: Option<SocketAddr>,
        /// Mesh (QUIC) listen address (default: the one saved at join).
        #[arg(long)]
        mesh: Option<SocketAddr>,
        /// Address peers should dial (default: the one saved at join).
        #[arg(long)]
        advertise: Option<SocketAddr>,
        #[command(flatten)]
        node: NodeFlags,
    },
    /// Show this node's own view: config version, coordinator link,
    /// functions loaded (compiled here or from the disk cache), mesh
    /// members (alive / suspect / down) and the config version each
    /// announced. Reads `<data-dir>/status.json`, which a running node
    /// rewrites every second.
    Status {
        #[command(flatten)]
        data: DataDir,
        /// Print the raw status as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn run_options(
    data: DataDir,
    http: Option<SocketAddr>,
    https: Option<SocketAddr>,
    mesh: Option<SocketAddr>,
    advertise: Option<SocketAddr>,
    node: NodeFlags,
) -> node::RunOptions {
    node::RunOptions {
        data_dir: data.data_dir,
        http_addr: http,
        https_addr: https,
        mesh_addr: mesh,
        advertise_addr: advertise,
        allow_private_outbound: node.allow_private_outbound,
        peer_assist: !node.no_peer_assist,
        max_instances: node.max_instances as usize,
        cache: edge_node::disk_cache::CacheOptions {
            budget_bytes: node.cache_size.0,
            grace: node.cache_grace,
            interval: node
                .cache_interval
                .max(std::time::Duration::from_millis(100)),
        },
        key_cache: node.key_cache,
        metrics_addr: node.metrics,
        analytics: edge_node::traffic::AnalyticsOptions {
            enabled: !node.no_analytics,
            max_keys: node.analytics_max_keys as usize,
            spool_bytes: node.analytics_spool_size.0,
            geoip: node.geoip,
        },
        http3: !node.no_http3,
        memory_cache_bytes: node.memory_cache.0,
    }
}

fn print_status(data_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let s = edge_node::status::read(data_dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let age_ms = edge_node::status::now_ms() - s.updated_at_ms;
    println!("node      {} ({}, region {})", s.node_id, s.name, s.region);
    println!("mesh      {}", s.mesh_addr);
    println!("config    version {}", s.config_version);
    match (&s.coordinator_link, &s.coordinator_addr) {
        (true, Some(addr)) => println!("link      connected to the coordinator at {addr}"),
        (true, None) => println!("link      connected to the coordinator"),
        _ => println!("link      no coordinator link (serving last known state)"),
    }
    println!(
        "bundles   {} present, {} pending",
        s.bundles_present, s.bundles_pending
    );
    println!(
        "blobs     {} B from the coordinator, {} B from peers, {} served to peers",
        s.blob_bytes_from_coordinator, s.blob_bytes_from_peers, s.blobs_served_to_peers
    );
    let f = &s.functions;
    println!(
        "functions {} loaded ({} compiled here, {} from the disk cache), {} invocations",
        f.loaded, f.compiled, f.loaded_from_cache, f.invocations
    );
    let k = &s.cluster_keys;
    println!(
        "keys      cluster key generations held {:?}{}",
        k.held,
        if k.missing.is_empty() {
            String::new()
        } else {
            format!(
                ", waiting for {:?} (functions with variables answer 503 until then)",
                k.missing
            )
        }
    );
    if age_ms > 5_000 {
        println!(
            "WARNING   this status is {}s old: the node is probably not running",
            age_ms / 1000
        );
    }
    println!();
    if s.members.is_empty() {
        println!("no other members known yet");
        return Ok(());
    }
    println!(
        "{:<12} {:<16} {:<8} {:<22} {:<8} CONFIG",
        "ID", "NAME", "REGION", "MESH ADDRESS", "STATE"
    );
    for m in &s.members {
        println!(
            "{:<12} {:<16} {:<8} {:<22} {:<8} {}",
            m.node_id, m.name, m.region, m.mesh_addr, m.state, m.config_version
        );
    }
    Ok(())
}

fn default_name() -> String {
    let raw = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "edge".into());
    let label: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let label = label.trim_matches('-').to_string();
    if label.is_empty() {
        "edge".into()
    } else {
        label
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pingora_core=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let opts = match cli.command {
        Command::Status { data, json } => return print_status(&data.data_dir, json),
        Command::Join {
            coordinator,
            token,
            region,
            name,
            data,
            http,
            https,
            mesh,
            advertise,
            no_run,
            node,
        } => {
            let name = name.unwrap_or_else(default_name);
            let id = enroll::join(enroll::JoinOptions {
                coordinator: &coordinator,
                token: &token,
                name: &name,
                region: &region,
                data_dir: &data.data_dir,
                http_addr: Some(http.to_string()),
                https_addr: Some(https.to_string()),
                mesh_addr: Some(mesh.to_string()),
                advertise_addr: advertise.map(|a| a.to_string()),
            })
            .await?;
            println!(
                "joined as node {} ({}, region {})",
                id.info.node_id, id.info.name, id.info.region
            );
            println!("identity saved in {}", data.data_dir.display());
            if no_run {
                return Ok(());
            }
            // Listen addresses come from what join just saved.
            run_options(data, None, None, None, None, node)
        }
        Command::Run {
            data,
            http,
            https,
            mesh,
            advertise,
            node,
        } => {
            if !Identity::exists(&data.data_dir) {
                anyhow::bail!(
                    "{} holds no node identity: run `edge-node join` first",
                    data.data_dir.display()
                );
            }
            run_options(data, http, https, mesh, advertise, node)
        }
    };
    let running = node::start(opts).await.context("starting the edge node")?;
    let metrics = running
        .metrics_addr
        .map(|a| format!(", metrics http://{a}/metrics"))
        .unwrap_or_default();
    let http3 = if running.http3 { ", HTTP/3 on UDP" } else { "" };
    println!(
        "serving http://{} and https://{}{http3}, mesh {}{metrics}",
        running.http_addr, running.https_addr, running.mesh_addr
    );
    let stop = running.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down gracefully");
        let _ = stop.send(true);
    });
    running.wait().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_instances(args: &[&str]) -> Result<usize, clap::Error> {
        let argv = ["edge-node", "run", "--data-dir", "/nonexistent"]
            .iter()
            .chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Run { data, node, .. } => {
                Ok(run_options(data, None, None, None, None, node).max_instances)
            }
            _ => unreachable!("parsed `run`"),
        }
    }

    #[test]
    fn max_instances_is_bounded_and_reaches_the_node() {
        let default = edge_node::functions::DEFAULT_MAX_INSTANCES as usize;
        let limit = edge_node::functions::MAX_INSTANCES_LIMIT as usize;
        let cases: &[(&[&str], Option<usize>)] = &[
            (&[], Some(default)),
            (&["--max-instances", "1"], Some(1)),
            (&["--max-instances", "4096"], Some(limit)),
            (&["--max-instances", "0"], None),
            (&["--max-instances", "4097"], None),
            (&["--max-instances=-3"], None),
            (&["--max-instances", "many"], None),
            (&["--max-instances", ""], None),
        ];
        for (args, want) in cases {
            let got = max_instances(args);
            match want {
                Some(n) => assert_eq!(got.as_ref().ok(), Some(n), "{args:?}: {got:?}"),
                None => {
                    let e = got.expect_err(&format!("{args:?} must be refused"));
                    assert!(e.to_string().contains("--max-instances"), "{args:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn metrics_are_off_unless_an_address_is_given() {
        let metrics = |args: &[&str]| -> Result<Option<SocketAddr>, clap::Error> {
            let argv = ["edge-node", "run", "--data-dir", "/nonexistent"]
                .iter()
                .chain(args);
            match Cli::try_parse_from(argv)?.command {
                Command::Run { data, node, .. } => {
                    Ok(run_options(data, None, None, None, None, node).metrics_addr)
                }
                _ => unreachable!("parsed `run`"),
            }
        };
        assert_eq!(metrics(&[]).unwrap(), None);
        assert_eq!(
            metrics(&["--metrics", "127.0.0.1:9101"]).unwrap(),
            Some("127.0.0.1:9101".parse().unwrap())
        );
        for bad in ["localhost:9101", "9101", "", "127.0.0.1"] {
            let arg = format!("--metrics={bad}");
            assert!(metrics(&[&arg]).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_size_takes_units_and_refuses_nonsense() {
        let cache = |args: &[&str]| -> Result<u64, clap::Error> {
            let argv = ["edge-node", "run", "--data-dir", "/nonexistent"]
                .iter()
                .chain(args);
            match Cli::try_parse_from(argv)?.command {
                Command::Run { data, node, .. } => {
                    Ok(run_options(data, None, None, None, None, node)
                        .cache
                        .budget_bytes)
                }
                _ => unreachable!("parsed `run`"),
            }
        };
        assert_eq!(cache(&[]).unwrap(), 10 << 30);
        assert_eq!(cache(&["--cache-size", "500MiB"]).unwrap(), 500 << 20);
        assert_eq!(cache(&["--cache-size", "2GB"]).unwrap(), 2_000_000_000);
        for bad in ["lots", "", "1KiB", "-5GB", "5EiB"] {
            let arg = format!("--cache-size={bad}");
            let e = cache(&[&arg]).unwrap_err().to_string();
            assert!(
                e.contains("cache size") || e.contains("not a size"),
                "{bad}: {e}"
            );
        }
    }
}
