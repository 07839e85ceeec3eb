//! A running edge node: restore last state, serve HTTP(S), link to the
//! coordinator and sync bundles, until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config_state::ConfigState;
use crate::fetch::Fetcher;
use crate::functions::{FunctionRuntime, RuntimeConfig};
use crate::http::{self, EdgeHttp};
use crate::identity::Identity;
use crate::link::Link;
use crate::mesh::{Mesh, MeshOptions};
use crate::state::ServingState;
use crate::status::StatusWriter;
use crate::store::{BlobStore, Index};
use crate::sync::{OnDemand, SyncStatus, Syncer};

/// How long a (re)starting node waits for its functions to load before
/// it accepts requests.
const WARM_FUNCTIONS_WAIT: Duration = Duration::from_millis(250);

pub struct RunOptions {
    pub data_dir: PathBuf,
    /// Listen addresses; `None` falls back to what `join` saved, then to
    /// :80 / :443.
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// Let functions reach loopback/private addresses (hosts must still be
    /// on their project's outbound list).
    pub allow_private_outbound: bool,
    /// QUIC listen address for peers; `None` falls back to what `join`
    /// saved, then to :8702.
    pub mesh_addr: Option<SocketAddr>,
    /// Address peers should dial, when not the listen address.
    pub advertise_addr: Option<SocketAddr>,
    /// Fetch blobs from the region's peers before the coordinator.
    pub peer_assist: bool,
    /// WebAssembly instances running at once (sizes the pooling allocator).
    pub max_instances: usize,
    /// The disk cache of bundles and blobs (`--cache-size` and its pass).
    pub cache: crate::disk_cache::CacheOptions,
    /// `--key-cache`: keep the cluster key in this file (outside the data
    /// directory) across restarts; `None`: in memory only.
    pub key_cache: Option<PathBuf>,
    /// `--metrics`: serve Prometheus metrics here (no authentication);
    /// `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
    /// Traffic analytics (`--analytics-*`).
    pub analytics: crate::traffic::AnalyticsOptions,
    /// Serve HTTP/3 on the HTTPS port over UDP (and advertise it).
    pub http3: bool,
    /// Memory for verified blobs served from memory (`--memory-cache`).
    pub memory_cache_bytes: u64,
}

pub struct RunningNode {
    pub node_id: String,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
    /// Where peers reach this node (advertised mesh address).
    pub mesh_addr: SocketAddr,
    /// Where `GET /metrics` is served, with `--metrics`.
    pub metrics_addr: Option<SocketAddr>,
    /// HTTP/3 is served on UDP at `https_addr`.
    pub http3: bool,
    pub mesh: Arc<Mesh>,
    pub state: Arc<ServingState>,
    pub status: watch::Receiver<SyncStatus>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }

    /// Graceful: stop accepting, let in-flight requests finish (bounded).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }

    /// Waits until every task has ended (after a shutdown from elsewhere).
    pub async fn wait(self) {
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn pick(
    flag: Option<SocketAddr>,
    saved: &Option<String>,
    default: &str,
) -> anyhow::Result<SocketAddr> {
    if let Some(a) = flag {
        return Ok(a);
    }
    let s = saved.as_deref().unwrap_or(default);
    s.parse()
        .with_context(|| format!("invalid listen address {s:?}"))
}

async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen for {what} on {addr}: {e}. Is the port taken (or privileged)? Choose another with {flag}.")
    })
}

/// The address peers should use: the advertised one, else the listen
/// address, with an unspecified IP replaced by the local IP that routes to
/// the coordinator (no packet is sent to find it).
async fn advertised(
    listen: SocketAddr,
    advertise: Option<SocketAddr>,
    coordinator: &str,
) -> SocketAddr {
    if let Some(a) = advertise {
        return a;
    }
    if !listen.ip().is_unspecified() {
        return listen;
    }
    let ip = async {
        let target = crate::enroll::resolve(coordinator).await.ok()?;
        let bind: SocketAddr = if target.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        }
        .parse()
        .ok()?;
        let s = std::net::UdpSocket::bind(bind).ok()?;
        s.connect(target).ok()?;
        s.local_addr().ok().map(|a| a.ip())
    }
    .await;
    SocketAddr::new(ip.unwrap_or(listen.ip()), listen.port())
}

pub async fn start(opts: RunOptions) -> anyhow::Result<RunningNode> {
    let identity = Arc::new(Identity::load(&opts.data_dir)?);
    let verifier = protocol::signing::ConfigVerifier::from_hex(&identity.info.config_key)
        .map_err(|_| {
            anyhow::anyhow!(
                "{} was enrolled by an older coordinator without a config signing key: join again with a new token",
                opts.data_dir.display()
            )
        })?;
    let http_addr = pick(opts.http_addr, &identity.info.http_addr, "0.0.0.0:80")?;
    let https_addr = pick(opts.https_addr, &identity.info.https_addr, "0.0.0.0:443")?;
    let http_listener = bind(http_addr, "HTTP", "--http").await?;
    let https_listener = bind(https_addr, "HTTPS", "--https").await?;
    let http_addr = http_listener.local_addr()?;
    let https_addr = https_listener.local_addr()?;
    // HTTP/3 on the same port number over UDP (what `Alt-Svc` names). It
    // only speeds clients up, so a port that cannot be had is a warning.
    let http3_socket = if opts.http3 {
        match std::net::UdpSocket::bind(https_addr) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(addr = %https_addr, error = %e, "cannot listen for HTTP/3 on UDP; serving HTTP/1.1 and HTTP/2 only");
                None
            }
        }
    } else {
        None
    };
    let metrics_listener = match opts.metrics_addr {
        Some(a) => Some(crate::metrics::bind(a).await?),
        None => None,
    };
    let metrics_addr = metrics_listener
        .as_ref()
        .map(|l| l.local_addr())
        .transpose()?;
    let mesh_listen = pick(opts.mesh_addr, &identity.info.mesh_addr, "0.0.0.0:8702")?;
    let server_cfg =
        crate::tls::mesh_server_config(&identity.ca_pem, &identity.cert_pem, &identity.key_pem)?;
    let endpoint = quinn::Endpoint::server(server_cfg, mesh_listen).map_err(|e| {
        anyhow::anyhow!("cannot listen for peers (QUIC) on {mesh_listen}: {e}. Is the port taken? Choose another with --mesh.")
    })?;
    let mesh_listen = endpoint.local_addr()?;
    let advertise_flag = match (opts.advertise_addr, &identity.info.advertise_addr) {
        (Some(a), _) => Some(a),
        (None, Some(s)) => Some(
            s.parse()
                .with_context(|| format!("invalid saved advertise address {s:?}"))?,
        ),
        (None, None) => None,
    };
    let mesh_addr = advertised(mesh_listen, advertise_flag, &identity.info.coordinator).await;

    let index = Arc::new(Index::open(&opts.data_dir.join("index"))?);
    let (blobs, corrupt) =
        BlobStore::open_with_memory(&opts.data_dir.join("blobs"), opts.memory_cache_bytes)?;
    let state = Arc::new(ServingState::default());
    let (status_tx, status_rx) = watch::channel(SyncStatus::default());
    let (conn_tx, conn_rx) = watch::channel(None);
    let config_state = Arc::new(ConfigState::new(index.clone(), verifier)?);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let persist_index = index.clone();
    let mesh = Mesh::start(
        MeshOptions {
            me: protocol::mesh::PeerInfo {
                node_id: identity.info.node_id.clone(),
                name: identity.info.name.clone(),
                region: identity.info.region.clone(),
                mesh_addr: mesh_addr.to_string(),
            },
            incarnation: crate::status::now_ms() as u64,
            endpoint: endpoint.clone(),
            client: crate::tls::mesh_client_config(
                &identity.ca_pem,
                &identity.cert_pem,
                &identity.key_pem,
            )?,
            peer_assist: opts.peer_assist,
            persist: Box::new(move |members| {
                if let Err(e) = persist_index.store_members(members) {
                    tracing::warn!(error = %e, "persisting mesh members");
                }
            }),
        },
        config_state.clone(),
    )?;
    // Rejoin through the peers we knew, before (and without) the coordinator.
    let known = index.members()?;
    if !known.is_empty() {
        tracing::info!(
            peers = known.len(),
            "rejoining the mesh through the peers last seen"
        );
    }
    mesh.add_seeds(known);
    let fetcher = Arc::new(Fetcher::new(
        blobs.clone(),
        conn_rx.clone(),
        Some(mesh.clone()),
    ));

    let (fn_log_tx, fn_log_rx) = tokio::sync::mpsc::channel(4096);
    let mut runtime_config = RuntimeConfig::new(&opts.data_dir);
    runtime_config.allow_private_outbound = opts.allow_private_outbound;
    runtime_config.set_max_concurrent(opts.max_instances);
    let functions = Arc::new(
        FunctionRuntime::new(runtime_config, fn_log_tx).context("starting the function runtime")?,
    );
    // In memory only (see `keys`): after a start, sealed values wait for it.
    let keys = Arc::new(match &opts.key_cache {
        Some(path) => crate::keys::ClusterKeys::with_cache(path, &opts.data_dir)?,
        None => crate::keys::ClusterKeys::default(),
    });
    let loader = Arc::new(OnDemand::new(
        config_state.clone(),
        index.clone(),
        blobs.clone(),
        fetcher.clone(),
        state.clone(),
        Some(functions.clone()),
        keys.clone(),
    ));
    state.set_resolver(loader.clone());
    let syncer = Arc::new(Syncer {
        index: index.clone(),
        blobs: blobs.clone(),
        state: state.clone(),
        config: config_state.clone(),
        conn: conn_rx.clone(),
        fetcher: fetcher.clone(),
        status: status_tx,
        functions: Some(functions.clone()),
        loader,
        certs: Default::default(),
        keys: keys.clone(),
    });
    // Serve the last known state before talking to anyone.
    syncer.restore()?;
    // The functions it serves load beside serving. A short wait first lets
    // a node with a handful of them (cached code loads in a few ms each)
    // answer their first requests warm; more, or compiles after an engine
    // upgrade, go on in the background.
    let warm = syncer.clone();
    let mut warming = tokio::spawn(async move { warm.warm_functions().await });
    let _ = tokio::time::timeout(WARM_FUNCTIONS_WAIT, &mut warming).await;
    let restored = state.current();
    tracing::info!(
        node = %identity.info.node_id,
        config_version = restored.config_version,
        hosts = restored.hosts.len(),
        %http_addr,
        %https_addr,
        %mesh_addr,
        metrics_addr = ?metrics_addr,
        "edge node serving"
    );

    let mut limits = crate::http::Limits::default();
    // One operator switch for everything the node fetches for tenants.
    limits.proxy.allow_private = opts.allow_private_outbound;
    let app = EdgeHttp::with_functions(state.clone(), blobs.clone(), limits, functions.clone());
    let metrics = app.metrics().clone();
    let mut tasks = Vec::new();
    if opts.analytics.enabled {
        let analytics = Arc::new(crate::traffic::Analytics::new(&opts.analytics)?);
        let spool = analytics::spool::Spool::open(
            &opts.data_dir.join("analytics"),
            opts.analytics.spool_bytes,
        )?;
        app.set_analytics(analytics.clone());
        tasks.push(tokio::spawn(crate::traffic::run(
            analytics,
            spool,
            config_state.subscribe(),
            conn_rx.clone(),
            metrics.clone(),
            shutdown_rx.clone(),
        )));
    }
    // Request logs of projects with a log drain: sampled on the request
    // path, shipped by their own loop.
    let request_logs = crate::requestlog::Counters::default();
    request_logs.register(&metrics);
    let (request_log_sink, request_log_rx) = crate::requestlog::channel(&request_logs);
    app.set_request_logs(request_log_sink);
    if let Some(listener) = metrics_listener {
        tasks.push(tokio::spawn(crate::metrics::serve(
            listener,
            metrics.clone(),
            shutdown_rx.clone(),
        )));
    }
    let (a, s) = (app.clone(), shutdown_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = http::serve_http(http_listener, a, s).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));
    let http3 = http3_socket.is_some();
    if let Some(socket) = http3_socket {
        app.advertise_http3(https_addr.port());
        let (a, s) = (app.clone(), shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = http::serve_http3(socket, a, s).await {
                tracing::error!(error = %e, "HTTP/3 server failed");
            }
        }));
    }
    let (a, s) = (app, shutdown_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = http::serve_https(https_listener, a, s).await {
            tracing::error!(error = %e, "HTTPS server failed");
        }
    }));
    tasks.push(tokio::spawn(syncer.run(
        config_state.subscribe(),
        config_state.touched(),
        corrupt,
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::logship::run(
        fn_log_rx,
        conn_rx.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::errorship::run(
        functions.errors(),
        conn_rx.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::requestlog::run(
        request_log_rx,
        conn_rx.clone(),
        request_logs,
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::mesh::peer::serve(
        endpoint.clone(),
        mesh.transport.clone(),
        config_state.clone(),
        index.clone(),
        fetcher.clone(),
        keys.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::keys::run(
        keys.clone(),
        config_state.clone(),
        conn_rx.clone(),
        mesh.clone(),
        shutdown_rx.clone(),
    )));
    let cache = Arc::new(crate::disk_cache::DiskCache::new(
        index.clone(),
        blobs.clone(),
        config_state.clone(),
        state.clone(),
        opts.cache,
    ));
    tasks.push(tokio::spawn(cache.clone().run(shutdown_rx.clone())));
    let status_writer = StatusWriter {
        data_dir: opts.data_dir.clone(),
        mesh: mesh.clone(),
        config: config_state.clone(),
        fetcher,
        sync: status_rx.clone(),
        conn: conn_rx,
        functions,
        cache,
        keys: keys.clone(),
        metrics,
        metrics_addr,
    };
    // Written before the node says it is serving, so `edge-node status`
    // never sees a running node without a status.
    status_writer.write_now();
    tasks.push(tokio::spawn(status_writer.run(shutdown_rx.clone())));
    // On shutdown, say goodbye so peers mark us down at once.
    let (m, mut s) = (mesh.clone(), shutdown_rx.clone());
    tasks.push(tokio::spawn(async move {
        let _ = s.wait_for(|stop| *stop).await;
        m.leave().await;
    }));
    let link = Link {
        identity: std::sync::Mutex::new(identity.clone()),
        config: config_state,
        endpoint,
        mesh: mesh.clone(),
        conn: conn_tx,
        status: status_rx.clone(),
        http_addr: Some(http_addr.to_string()),
        https_addr: Some(https_addr.to_string()),
        mesh_addr: Some(mesh_addr.to_string()),
        data_dir: opts.data_dir.clone(),
    };
    tasks.push(tokio::spawn(link.run(shutdown_rx)));
    Ok(RunningNode {
        node_id: identity.info.node_id.clone(),
        http_addr,
        https_addr,
        mesh_addr,
        metrics_addr,
        http3,
        mesh,
        state,
        status: status_rx,
        shutdown: shutdown_tx,
        tasks,
    })
}
