//! The node's QUIC link to the coordinator: connect with mTLS, subscribe to
//! the config, apply snapshots and deltas, report status. When the link
//! drops it moves to the next of the cluster's coordinators at once (see
//! [`crate::coordinators`]), and backs off exponentially only once a whole
//! round of them failed. The node keeps serving throughout: the link only
//! ever changes the desired config.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::wire::{
    CoordinatorMessage, EdgeReport, EdgeRequest, FrameError, Subscribe, MAX_FRAME_BYTES,
};
use tokio::sync::{mpsc, watch};

use crate::config_state::{ConfigState, Source};
use crate::coordinators::{Failover, Outcome};
use crate::enroll;
use crate::identity::Identity;
use crate::mesh::Mesh;
use crate::sync::SyncStatus;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// Resolving and reaching one coordinator: an unreachable one must not
/// hold up the round (QUIC alone would wait for its idle timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(4);
/// A link that held this long was healthy: losing it resets the backoff,
/// and every other coordinator is tried again at once.
const STABLE: Duration = Duration::from_secs(30);

pub struct Link {
    /// Replaced when the certificate is renewed.
    pub identity: std::sync::Mutex<Arc<Identity>>,
    pub config: Arc<ConfigState>,
    /// The node's one QUIC endpoint (also the mesh's).
    pub endpoint: quinn::Endpoint,
    pub mesh: Arc<Mesh>,
    pub conn: watch::Sender<Option<quinn::Connection>>,
    pub status: watch::Receiver<SyncStatus>,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
    pub mesh_addr: Option<String>,
    /// Its file system's use goes with every status report.
    pub data_dir: std::path::PathBuf,
}

impl Link {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        let mut force_snapshot = false;
        let mut failover = Failover::new(self.identity().info.coordinator.clone());
        loop {
            let Some(addr) = failover.next(&self.config.coordinators()) else {
                tracing::warn!(retry_in = ?backoff, "no coordinator link held this round; serving last known state");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                failover.new_round();
                continue;
            };
            let mut linked_at = None;
            let result = tokio::select! {
                r = self.session(&addr, force_snapshot, &mut linked_at) => r,
                _ = shutdown.changed() => Ok(()),
            };
            self.conn.send_replace(None);
            if *shutdown.borrow() {
                return;
            }
            let outcome = match linked_at {
                None => Outcome::Failed,
                Some(at) if at.elapsed() >= STABLE => Outcome::Lasted,
                Some(_) => Outcome::Dropped,
            };
            if outcome == Outcome::Lasted {
                backoff = MIN_BACKOFF;
            }
            failover.record(&addr, outcome);
            match result {
                Ok(()) => tracing::warn!(coordinator = %addr, "coordinator closed the link"),
                Err(e) => {
                    // A refused config wants a snapshot, from whichever
                    // coordinator links next (a failed connect is no news).
                    if linked_at.is_some() {
                        force_snapshot = e
                            .downcast_ref::<crate::config_state::AcceptError>()
                            .is_some();
                    }
                    tracing::warn!(coordinator = %addr, error = %format!("{e:#}"), "link to coordinator down; serving last known state");
                }
            }
        }
    }

    fn identity(&self) -> Arc<Identity> {
        self.identity.lock().unwrap().clone()
    }

    /// Renews the node certificate over `conn` when a third of it is left,
    /// and switches every TLS config of the node to the new one. A failure
    /// is logged and retried at the next report: the current certificate
    /// is still valid.
    async fn renew_if_due(&self, conn: &quinn::Connection) {
        let identity = self.identity();
        let now = crate::status::now_ms() / 1000;
        if !crate::renew::due(&identity, now) {
            return;
        }
        let renewed = match crate::renew::renew(conn, &identity).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "renewing the node certificate failed; will retry");
                return;
            }
        };
        let swap = || -> anyhow::Result<()> {
            let (ca, cert, key) = (&renewed.ca_pem, &renewed.cert_pem, &renewed.key_pem);
            self.endpoint
                .set_server_config(Some(crate::tls::mesh_server_config(ca, cert, key)?));
            self.mesh
                .transport
                .set_client(crate::tls::mesh_client_config(ca, cert, key)?);
            Ok(())
        };
        if let Err(e) = swap() {
            tracing::error!(error = %format!("{e:#}"), "the renewed certificate is unusable");
            return;
        }
        tracing::info!(not_after = ?renewed.cert_validity().map(|v| v.1), "node certificate renewed");
        *self.identity.lock().unwrap() = Arc::new(renewed);
    }

    /// Resolves `coordinator` (`host:port`) and completes the handshake,
    /// within [`CONNECT_TIMEOUT`].
    async fn connect(
        &self,
        identity: &Identity,
        coordinator: &str,
    ) -> anyhow::Result<quinn::Connection> {
        let attempt = async {
            let addr = enroll::resolve(coordinator).await?;
            let cfg = crate::tls::node_client_config(
                &identity.ca_pem,
                &identity.cert_pem,
                &identity.key_pem,
            )?;
            self.endpoint
                .connect_with(cfg, addr, &identity.info.coordinator_name)?
                .await
                .with_context(|| format!("connecting to the coordinator at {coordinator} ({addr})"))
        };
        tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the coordinator at {coordinator} did not answer within {CONNECT_TIMEOUT:?}"
                )
            })?
    }

    /// One link to `coordinator`, until it fails. `linked_at` is set once
    /// the node subscribed (the coordinator took it).
    async fn session(
        &self,
        coordinator: &str,
        force_snapshot: bool,
        linked_at: &mut Option<std::time::Instant>,
    ) -> anyhow::Result<()> {
        let identity = self.identity();
        let info = &identity.info;
        let conn = self.connect(&identity, coordinator).await?;
        let addr = conn.remote_address();
        let (mut send, mut recv) = conn.open_bi().await?;
        let have = if force_snapshot {
            0
        } else {
            self.config.version()
        };

        write_frame(
            &mut send,
            &EdgeRequest::Subscribe(Subscribe {
                have_version: have,
                software_version: env!("CARGO_PKG_VERSION").to_string(),
                http_addr: self.http_addr.clone(),
                https_addr: self.https_addr.clone(),
                mesh_addr: self.mesh_addr.clone(),
            }),
        )
        .await?;
        self.conn.send_replace(Some(conn.clone()));
        *linked_at = Some(std::time::Instant::now());
        tracing::info!(coordinator = %coordinator, at = %addr, node = %info.node_id, have, "linked to coordinator");
        self.renew_if_due(&conn).await;

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
        let mut members = self.mesh.members_changed();
        let mut tick = tokio::time::interval(REPORT_EVERY);
        let mut snapshot = None;
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
                    self.apply(msg, &mut snapshot)?;
                }
                _ = tick.tick() => {
                    self.report(&mut send).await?;
                    self.renew_if_due(&conn).await;
                }
                changed = status.changed() => {
                    if changed.is_err() { bail!("sync stopped"); }
                    self.report(&mut send).await?;
                }
                changed = members.changed() => {
                    if changed.is_err() { bail!("mesh stopped"); }
                    self.report(&mut send).await?;
                }
            }
        }
    }

    fn apply(
        &self,
        msg: CoordinatorMessage,
        snapshot: &mut Option<crate::config_state::Snapshot>,
    ) -> anyhow::Result<()> {
        match msg {
            CoordinatorMessage::Batches(batches) => {
                self.config.accept(batches, Source::Coordinator)?;
            }
            CoordinatorMessage::SnapshotBegin { version } => {
                tracing::info!(version, "receiving a config snapshot");
                *snapshot = Some(self.config.begin_snapshot(version, Source::Coordinator));
            }
            CoordinatorMessage::SnapshotPage(page) => {
                let s = snapshot
                    .as_mut()
                    .context("a snapshot page without a snapshot")?;
                if page.len() > protocol::wire::MAX_SNAPSHOT_PAGE {
                    bail!("a snapshot page of {} entries is too large", page.len());
                }
                s.page(&page)?;
            }
            CoordinatorMessage::SnapshotEnd(sig) => {
                let s = snapshot
                    .take()
                    .context("a snapshot end without a snapshot")?;
                s.finish(&sig)?;
            }
            CoordinatorMessage::Peers(peers) => self.mesh.add_seeds(peers),
            CoordinatorMessage::Error(e) => bail!("coordinator error: {}", e.message),
            other => bail!("unexpected message on the config stream: {other:?}"),
        }
        Ok(())
    }

    async fn report(&self, send: &mut quinn::SendStream) -> anyhow::Result<()> {
        let s = *self.status.borrow();
        let report = EdgeReport::Status {
            config_version: self.config.version(),
            bundles_present: s.bundles_present,
            bundles_pending: s.bundles_pending,
            members: self.mesh.member_views(),
            resources: crate::resources::read(&self.data_dir),
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
