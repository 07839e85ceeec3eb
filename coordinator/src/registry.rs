//! The coordinators of one cluster, as each registers itself in the
//! database (`coordinators`): their QUIC addresses go into the edge config
//! (`Key::Coordinators`), so every edge knows where to fail over to.
//!
//! A coordinator registers at start and marks itself seen every
//! [`HEARTBEAT`]; one not seen for [`FORGET_AFTER`] is dropped from the
//! list (a machine retired without a word). A coordinator merely down for
//! a while stays listed: an edge tries it, fails fast, and moves on.

use std::time::Duration;

use tokio::sync::watch;

use crate::role::Role;
use crate::store::{EdgeSync, Store, StoreError};

pub const HEARTBEAT: Duration = Duration::from_secs(10);
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Registers (or re-registers) this coordinator and puts the list of
/// coordinators into the edge config if it changed.
pub async fn register(
    store: &Store,
    id: &str,
    quic_addr: Option<&str>,
    api_url: &str,
    role: Role,
) -> Result<(), StoreError> {
    // A builder, or a coordinator without an address edges can use, is
    // listed with none (the edge config leaves it out).
    store
        .register_coordinator(id, quic_addr.unwrap_or(""), api_url, role.as_str())
        .await?;
    store.sync_edges_now(&[EdgeSync::Coordinators]).await?;
    Ok(())
}

/// Until shutdown: marks this coordinator seen, and forgets long-silent
/// ones (whoever notices first; the edge list is rewritten only when it
/// changes).
pub async fn heartbeat(store: Store, id: String, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = shutdown.changed() => return,
        }
        match store.coordinator_seen(&id).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("this coordinator's registration was forgotten; it is listed again at its next start"),
            Err(e) => tracing::warn!(error = %e, "coordinator heartbeat"),
        }
        let before = crate::store::now_ms() - FORGET_AFTER.as_millis() as i64;
        match store.forget_coordinators(before).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    forgotten = n,
                    "coordinators silent for a day left the edge list"
                );
                if let Err(e) = store.sync_edges_now(&[EdgeSync::Coordinators]).await {
                    tracing::warn!(error = %e, "updating the coordinator list for edges");
                }
            }
            Err(e) => tracing::warn!(error = %e, "forgetting silent coordinators"),
        }
    }
}

/// What a builder answers over HTTP: its health, nothing else (the API and
/// dashboard are the other coordinators').
pub fn builder_router() -> axum::Router {
    axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok: builder\n" }))
}
