//! A running edge node: restore last state, serve HTTP(S), link to the
//! coordinator and sync bundles, until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::functions::{FunctionRuntime, RuntimeConfig};
use crate::http::{self, EdgeHttp};
use crate::identity::Identity;
use crate::link::Link;
use crate::state::ServingState;
use crate::store::{BlobStore, Index};
use crate::sync::{SyncStatus, Syncer};

pub struct RunOptions {
    pub data_dir: PathBuf,
    /// Listen addresses; `None` falls back to what `join` saved, then to
    /// :80 / :443.
    pub http_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    /// Let functions reach loopback/private addresses (hosts must still be
    /// on their project's outbound list).
    pub allow_private_outbound: bool,
}

pub struct RunningNode {
    pub node_id: String,
    pub http_addr: SocketAddr,
    pub https_addr: SocketAddr,
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

pub async fn start(opts: RunOptions) -> anyhow::Result<RunningNode> {
    let identity = Arc::new(Identity::load(&opts.data_dir)?);
    let http_addr = pick(opts.http_addr, &identity.info.http_addr, "0.0.0.0:80")?;
    let https_addr = pick(opts.https_addr, &identity.info.https_addr, "0.0.0.0:443")?;
    let http_listener = bind(http_addr, "HTTP", "--http").await?;
    let https_listener = bind(https_addr, "HTTPS", "--https").await?;
    let http_addr = http_listener.local_addr()?;
    let https_addr = https_listener.local_addr()?;

    let index = Arc::new(Index::open(&opts.data_dir.join("index"))?);
    let (blobs, corrupt) = BlobStore::open(&opts.data_dir.join("blobs"))?;
    let state = Arc::new(ServingState::default());
    let (status_tx, status_rx) = watch::channel(SyncStatus::default());
    let (conn_tx, conn_rx) = watch::channel(None);
    let (desired_tx, desired_rx) = watch::channel(Arc::new(index.config()?));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let (fn_log_tx, fn_log_rx) = tokio::sync::mpsc::channel(4096);
    let mut runtime_config = RuntimeConfig::new(&opts.data_dir);
    runtime_config.allow_private_outbound = opts.allow_private_outbound;
    let functions = Arc::new(
        FunctionRuntime::new(runtime_config, fn_log_tx).context("starting the function runtime")?,
    );
    let syncer = Arc::new(Syncer {
        index: index.clone(),
        blobs: blobs.clone(),
        state: state.clone(),
        conn: conn_rx.clone(),
        status: status_tx,
        functions: Some(functions.clone()),
    });
    // Serve the last known state before talking to anyone.
    syncer.restore()?;
    let restored = state.current();
    tracing::info!(
        node = %identity.info.node_id,
        config_version = restored.config_version,
        hosts = restored.hosts.len(),
        %http_addr,
        %https_addr,
        "edge node serving"
    );

    let app = EdgeHttp::with_functions(
        state.clone(),
        blobs.clone(),
        crate::http::Limits::default(),
        functions,
    );
    let mut tasks = Vec::new();
    let (a, s) = (app.clone(), shutdown_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = http::serve_http(http_listener, a, s).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));
    let (a, s) = (app, shutdown_rx.clone());
    tasks.push(tokio::spawn(async move {
        if let Err(e) = http::serve_https(https_listener, a, s).await {
            tracing::error!(error = %e, "HTTPS server failed");
        }
    }));
    tasks.push(tokio::spawn(syncer.run(
        desired_rx,
        corrupt,
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::logship::run(
        fn_log_rx,
        conn_rx,
        shutdown_rx.clone(),
    )));
    let link = Link {
        identity: identity.clone(),
        index,
        desired: desired_tx,
        conn: conn_tx,
        status: status_rx.clone(),
        http_addr: Some(http_addr.to_string()),
        https_addr: Some(https_addr.to_string()),
    };
    tasks.push(tokio::spawn(link.run(shutdown_rx)));
    Ok(RunningNode {
        node_id: identity.info.node_id.clone(),
        http_addr,
        https_addr,
        state,
        status: status_rx,
        shutdown: shutdown_tx,
        tasks,
    })
}
