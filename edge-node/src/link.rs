//! The node's QUIC link to the coordinator: connect with mTLS, subscribe to
//! the config, apply snapshots and deltas, report status; reconnect with
//! exponential backoff when the link drops. The node keeps serving
//! throughout: the link only ever changes the desired config.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::wire::{
    CoordinatorMessage, EdgeReport, EdgeRequest, FrameError, Subscribe, MAX_FRAME_BYTES,
};
use protocol::EdgeConfig;
use tokio::sync::{mpsc, watch};

use crate::enroll;
use crate::identity::Identity;
use crate::store::Index;
use crate::sync::SyncStatus;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const REPORT_EVERY: Duration = Duration::from_secs(10);

pub struct Link {
    pub identity: Arc<Identity>,
    pub index: Arc<Index>,
    pub desired: watch::Sender<Arc<EdgeConfig>>,
    pub conn: watch::Sender<Option<quinn::Connection>>,
    pub status: watch::Receiver<SyncStatus>,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
}

impl Link {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        let mut force_snapshot = false;
        loop {
            let started = std::time::Instant::now();
            let result = tokio::select! {
                r = self.session(force_snapshot) => r,
                _ = shutdown.changed() => Ok(()),
            };
            self.conn.send_replace(None);
            if *shutdown.borrow() {
                return;
            }
            match result {
                Ok(()) => tracing::warn!("coordinator closed the link"),
                Err(e) => {
                    force_snapshot = e.downcast_ref::<protocol::config::ConfigError>().is_some();
                    tracing::warn!(error = %format!("{e:#}"), retry_in = ?backoff, "link to coordinator down; serving last known state");
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                backoff = MIN_BACKOFF;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn session(&self, force_snapshot: bool) -> anyhow::Result<()> {
        let info = &self.identity.info;
        let addr = enroll::resolve(&info.coordinator).await?;
        let cfg = crate::tls::node_client_config(
            &self.identity.ca_pem,
            &self.identity.cert_pem,
            &self.identity.key_pem,
        )?;
        let endpoint = enroll::client_endpoint(addr)?;
        let conn = endpoint
            .connect_with(cfg, addr, &info.coordinator_name)?
            .await
            .with_context(|| format!("connecting to the coordinator at {addr}"))?;
        let (mut send, mut recv) = conn.open_bi().await?;
        let have = if force_snapshot {
            0
        } else {
            self.desired.borrow().version
        };

        write_frame(
            &mut send,
            &EdgeRequest::Subscribe(Subscribe {
                have_version: have,
                software_version: env!("CARGO_PKG_VERSION").to_string(),
                http_addr: self.http_addr.clone(),
                https_addr: self.https_addr.clone(),
            }),
        )
        .await?;
        self.conn.send_replace(Some(conn.clone()));
        tracing::info!(coordinator = %addr, node = %info.node_id, have, "linked to coordinator");

        // Frame reads are not cancellation-safe; they get their own task.
        let (tx, mut messages) = mpsc::channel::<Result<CoordinatorMessage, FrameError>>(2);
        let reader = tokio::spawn(async move {
            loop {
                let r = read_frame::<CoordinatorMessage, _>(&mut recv, MAX_FRAME_BYTES).await;
                let end = !matches!(r, Ok(Some(_)));
                let item = match r {
                    Ok(Some(m)) => Ok(m),
                    Ok(None) => Err(FrameError::Truncated),
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() || end {
                    return;
                }
            }
        });
        let _reader = AbortOnDrop(reader);

        let mut status = self.status.clone();
        let mut tick = tokio::time::interval(REPORT_EVERY);
        loop {
            tokio::select! {
                msg = messages.recv() => {
                    let msg = msg.context("config stream ended")?.map_err(|e| match e {
                        FrameError::UnsupportedVersion { got } => anyhow::anyhow!(
                            "the coordinator speaks protocol version {got}, this edge node speaks {}: upgrade one of them",
                            protocol::wire::PROTOCOL_VERSION
                        ),
                        FrameError::Truncated => anyhow::anyhow!("the coordinator closed the config stream"),
                        other => anyhow::anyhow!("reading config: {other}"),
                    })?;
                    self.apply(msg)?;
                }
                _ = tick.tick() => self.report(&mut send).await?,
                changed = status.changed() => {
                    if changed.is_err() { bail!("sync stopped"); }
                    self.report(&mut send).await?;
                }
            }
        }
    }

    fn apply(&self, msg: CoordinatorMessage) -> anyhow::Result<()> {
        let next = match msg {
            CoordinatorMessage::Snapshot(c) => {
                c.check()?;
                c
            }
            CoordinatorMessage::Delta(d) => {
                let mut c = EdgeConfig::clone(&self.desired.borrow());
                c.apply(&d)?;
                c
            }
            CoordinatorMessage::Error(e) => bail!("coordinator error: {}", e.message),
            other => bail!("unexpected message on the config stream: {other:?}"),
        };
        if next.version < self.desired.borrow().version {
            tracing::warn!(got = next.version, "ignoring an older config");
            return Ok(());
        }
        // Persist before acting on it: a restart resumes from here.
        self.index.store_config(&next)?;
        tracing::info!(
            version = next.version,
            hosts = next.hosts.len(),
            "config received"
        );
        self.desired.send_replace(Arc::new(next));
        Ok(())
    }

    async fn report(&self, send: &mut quinn::SendStream) -> anyhow::Result<()> {
        let s = *self.status.borrow();
        let report = EdgeReport::Status {
            config_version: self.desired.borrow().version,
            bundles_present: s.bundles_present,
            bundles_pending: s.bundles_pending,
        };
        write_frame(send, &report).await?;
        Ok(())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
