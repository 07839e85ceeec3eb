//! `edge-node`: join a cluster, then serve its sites.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge_node::{enroll, identity::Identity, node};

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
        #[arg(
            long,
            env = "OUTPOST_EDGE_DATA_DIR",
            default_value = "/var/lib/outpost-edge"
        )]
        data_dir: PathBuf,
        /// HTTP listen address, saved for later runs.
        #[arg(long, default_value = "0.0.0.0:80")]
        http: SocketAddr,
        /// HTTPS listen address, saved for later runs.
        #[arg(long, default_value = "0.0.0.0:443")]
        https: SocketAddr,
        /// Enrol and exit instead of running.
        #[arg(long)]
        no_run: bool,
        /// Let functions reach loopback and private addresses (still only
        /// hosts on their project's outbound list).
        #[arg(long)]
        allow_private_outbound: bool,
    },
    /// Run an enrolled node with its saved identity.
    Run {
        #[arg(
            long,
            env = "OUTPOST_EDGE_DATA_DIR",
            default_value = "/var/lib/outpost-edge"
        )]
        data_dir: PathBuf,
        /// HTTP listen address (default: the one saved at join).
        #[arg(long)]
        http: Option<SocketAddr>,
        /// HTTPS listen address (default: the one saved at join).
        #[arg(long)]
        https: Option<SocketAddr>,
        /// Let functions reach loopback and private addresses (still only
        /// hosts on their project's outbound list).
        #[arg(long)]
        allow_private_outbound: bool,
    },
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
    let (data_dir, http, https, allow_private_outbound) = match cli.command {
        Command::Join {
            coordinator,
            token,
            region,
            name,
            data_dir,
            http,
            https,
            no_run,
            allow_private_outbound,
        } => {
            let name = name.unwrap_or_else(default_name);
            let id = enroll::join(enroll::JoinOptions {
                coordinator: &coordinator,
                token: &token,
                name: &name,
                region: &region,
                data_dir: &data_dir,
                http_addr: Some(http.to_string()),
                https_addr: Some(https.to_string()),
            })
            .await?;
            println!(
                "joined as node {} ({}, region {})",
                id.info.node_id, id.info.name, id.info.region
            );
            println!("identity saved in {}", data_dir.display());
            if no_run {
                return Ok(());
            }
            (data_dir, None, None, allow_private_outbound)
        }
        Command::Run {
            data_dir,
            http,
            https,
            allow_private_outbound,
        } => {
            if !Identity::exists(&data_dir) {
                anyhow::bail!(
                    "{} holds no node identity: run `edge-node join` first",
                    data_dir.display()
                );
            }
            (data_dir, http, https, allow_private_outbound)
        }
    };
    let running = node::start(node::RunOptions {
        data_dir,
        http_addr: http,
        https_addr: https,
        allow_private_outbound,
    })
    .await
    .context("starting the edge node")?;
    println!(
        "serving http://{} and https://{}",
        running.http_addr, running.https_addr
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
