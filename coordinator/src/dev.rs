//! `coordinator dev`: coordinator + one local edge node in one process, on
//! SQLite and local disk, with CLI credentials written for the next command.
//!
//! A module of the binary, not of the library: only here does the
//! coordinator link the edge node (and wasmtime), so the library and its
//! tests stay free of them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context};

use coordinator::cli::credentials::{self, Credentials};
use coordinator::config::{default_sqlite_url, Config, Limits};
use coordinator::ids;
use coordinator::server;

#[derive(clap::Args)]
pub struct DevOptions {
    /// Where the coordinator and the edge node keep their data.
    #[arg(long, default_value = ".outpost-dev")]
    pub data_dir: PathBuf,
    /// The address every listener binds (use 0.0.0.0 to reach it from other hosts).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The API and dashboard.
    #[arg(long, default_value_t = 8700)]
    pub api_port: u16,
    /// The coordinator's QUIC endpoint for edge nodes (UDP).
    #[arg(long, default_value_t = 8701)]
    pub quic_port: u16,
    /// The edge node's plain HTTP.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// The edge node's HTTPS (HTTP/1.1 and HTTP/2).
    #[arg(long, default_value_t = 8443)]
    pub https_port: u16,
}

/// Fails with the flag to change when a port is taken, before anything
/// starts (a half-started dev stack helps nobody).
fn check_ports(o: &DevOptions) -> anyhow::Result<()> {
    for (port, flag, udp) in [
        (o.api_port, "--api-port", false),
        (o.quic_port, "--quic-port", true),
        (o.http_port, "--http-port", false),
        (o.https_port, "--https-port", false),
    ] {
        if port == 0 {
            continue;
        }
        let addr = SocketAddr::new(o.bind, port);
        let res = if udp {
            std::net::UdpSocket::bind(addr).map(drop)
        } else {
            std::net::TcpListener::bind(addr).map(drop)
        };
        if let Err(e) = res {
            bail!(
                "port {port} on {} is not available ({e}); pick another with {flag}",
                o.bind
            );
        }
    }
    Ok(())
}

pub async fn run(o: DevOptions) -> anyhow::Result<()> {
    check_ports(&o)?;
    std::fs::create_dir_all(&o.data_dir)
        .with_context(|| format!("creating {}", o.data_dir.display()))?;
    let data_dir = o.data_dir.canonicalize()?;
    let coord_dir = data_dir.join("coordinator");
    let config = Config {
        database_url: default_sqlite_url(&coord_dir),
        data_dir: coord_dir.clone(),
        api_addr: SocketAddr::new(o.bind, o.api_port),
        quic_addr: SocketAddr::new(o.bind, o.quic_port),
        base_domain: "localhost".into(),
        public_url: format!("http://{{host}}:{}", o.http_port),
        api_url: None,
        role: Default::default(),
        quic_advertise: None,
        blobs: Default::default(),
        limits: Limits::default(),
        builds: Default::default(),
        accounts: Default::default(),
        retention: Default::default(),
        nodes: Default::default(),
        domains: Default::default(),
        // A laptop has no public name a CA could reach: no orders.
        acme: acme_off(),
        metrics: Default::default(),
        analytics: Default::default(),
        rate_limits: Default::default(),
        // A local mode: webhooks and drains may point at this machine.
        alerts: coordinator::alerts::config::AlertsConfig {
            allow_private_targets: true,
            ..Default::default()
        },
        smtp: None,
        quotas: Default::default(),
        secret_key: None,
    };
    let running = server::start(config).await?;
    let quic_addr = running
        .quic_addr
        .context("dev mode runs every role, QUIC included")?;
    let token = match &running.new_admin_token {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(coord_dir.join("admin-token"))
            .context("reading the admin token of an existing dev data directory")?
            .trim()
            .to_string(),
    };

    let edge_dir = data_dir.join("edge");
    if !edge_node::identity::Identity::exists(&edge_dir) {
        let secret = ids::new_secret();
        running
            .store
            .create_join_token(
                &ids::new_id(12),
                &ids::token_hash(&secret),
                "local",
                coordinator::store::now_ms() + 60_000,
            )
            .await?;
        let join_token = protocol::token::JoinToken {
            secret,
            ca_fingerprint: running.ca_fingerprint.clone(),
        };
        edge_node::enroll::join(edge_node::enroll::JoinOptions {
            coordinator: &quic_addr.to_string(),
            token: &join_token.to_string(),
            name: "local",
            region: "local",
            data_dir: &edge_dir,
            http_addr: None,
            https_addr: None,
            mesh_addr: Some(SocketAddr::new(o.bind, 0).to_string()),
            advertise_addr: None,
        })
        .await
        .context("enrolling the local edge node")?;
    }
    let edge = edge_node::node::start(edge_node::node::RunOptions {
        data_dir: edge_dir,
        http_addr: Some(SocketAddr::new(o.bind, o.http_port)),
        https_addr: Some(SocketAddr::new(o.bind, o.https_port)),
        allow_private_outbound: false,
        mesh_addr: None,
        advertise_addr: None,
        peer_assist: true,
        max_instances: edge_node::functions::DEFAULT_MAX_INSTANCES as usize,
        cache: Default::default(),
        // In the same process as its coordinator: the key is a link away.
        key_cache: None,
        metrics_addr: None,
        analytics: Default::default(),
        http3: true,
        memory_cache_bytes: edge_node::store::blobs::DEFAULT_MEMORY_CACHE_BYTES,
    })
    .await
    .context("starting the local edge node")?;

    let api_url = format!("http://{}", running.api_addr);
    let creds_path = credentials::save(&Credentials {
        url: api_url.clone(),
        token: token.clone(),
    })?;
    println!("Outpost dev is running.");
    match &running.setup_token {
        Some(t) => println!(
            "  dashboard:    {api_url}/signup?setup={t} (create the instance owner's account)"
        ),
        None => println!("  dashboard:    {api_url}/"),
    }
    println!("  API:          {api_url}/api/v1 (described at {api_url}/api/v1/openapi.json)");
    println!(
        "  edge HTTP:    http://{} (sites at http://<project>.localhost:{})",
        edge.http_addr,
        edge.http_addr.port()
    );
    println!("  edge HTTPS:   https://{}", edge.https_addr);
    println!("  admin token:  {token}");
    println!("  cluster CA:   {}", running.ca_path.display());
    println!("  edge QUIC:    {} (for `edge-node join`)", quic_addr);
    println!("  credentials:  {}", creds_path.display());
    println!("  data:         {}", data_dir.display());
    println!();
    println!("Next: coordinator deploy ./site --project blog --prod");
    println!("Stop with Ctrl-C.");

    wait_for_signal().await;
    println!("shutting down…");
    edge.shutdown().await;
    running.shutdown().await;
    Ok(())
}

pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn acme_off() -> coordinator::config::AcmeConfig {
    coordinator::config::AcmeConfig {
        enabled: false,
        ..Default::default()
    }
}
