//! The cluster as users and operators see it: health, the edge nodes with
//! their link and mesh state, and join tokens for new nodes.

use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{App, AppError, AppResult};
use crate::accounts::{audit, Principal};
use crate::ids;
use crate::store::analytics::AnalyticsStore;
use crate::store::{now_ms, Node};

/// A node whose link reported within this long counts as online.
const ONLINE_WITHIN_MS: i64 = 30_000;

/// What `/health` says.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub config_version: u64,
    pub blob_bytes_sent_to_edges: u64,
}

pub fn health(app: &App) -> Health {
    Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        config_version: app.hub.version(),
        blob_bytes_sent_to_edges: app.quic.blob_bytes_sent.load(Ordering::Relaxed),
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: Node,
    /// Link to this coordinator: online / offline / never-connected.
    pub status: String,
    pub config_lag: i64,
    /// What the other edges see: alive / suspect / down, or `unknown`
    /// when no peer reports the node (a single-node cluster).
    pub mesh_state: String,
    /// How many peers' fresh reports the verdict is made of.
    pub mesh_seen_by: usize,
}

/// Every node, for the instance owner (operators run the fleet; tenants
/// have no business with its addresses).
/// Addresses, regions, versions and traffic of the fleet are the operator's.
fn may_see_nodes(who: &Principal) -> AppResult<()> {
    if !who.is_instance_owner() {
        return Err(AppError::forbidden(
            "only the instance owner (with an unscoped credential) may see the nodes",
        ));
    }
    Ok(())
}

/// Closed minutes the nodes' request rate averages over.
const RATE_MINUTES: i64 = 5;

/// Requests per second each node served over the last [`RATE_MINUTES`]
/// closed minutes, from the analytics rollups (a minute arrives shortly
/// after it closes, so the window ends a minute back).
pub async fn request_rates(
    app: &App,
    who: &Principal,
) -> AppResult<std::collections::BTreeMap<String, f64>> {
    may_see_nodes(who)?;
    let minute = analytics::Granularity::Minute.floor(now_ms() / 1000);
    let to = minute - 60;
    let from = to - RATE_MINUTES * 60;
    Ok(app
        .store
        .node_requests(from, to)
        .await?
        .into_iter()
        .map(|(node, n)| (node, n as f64 / (RATE_MINUTES * 60) as f64))
        .collect())
}

pub async fn nodes(app: &App, who: &Principal) -> AppResult<Vec<NodeView>> {
    may_see_nodes(who)?;
    let current = app.hub.version() as i64;
    let now = now_ms();
    let nodes = app.store.list_nodes().await?;
    let verdicts = app.quic.mesh.verdicts(now);
    Ok(nodes
        .into_iter()
        .map(|n| NodeView {
            mesh_state: verdicts
                .get(&n.id)
                .map(|v| v.state.as_str())
                .unwrap_or("unknown")
                .to_string(),
            mesh_seen_by: verdicts.get(&n.id).map(|v| v.seen_by).unwrap_or(0),
            status: match n.last_seen {
                Some(t) if now - t <= ONLINE_WITHIN_MS => "online",
                Some(_) => "offline",
                None => "never-connected",
            }
            .to_string(),
            config_lag: (current - n.config_version).max(0),
            node: n,
        })
        .collect())
}

/// Removes node `id` from the cluster (instance owner): no coordinator or
/// edge accepts its certificate any more, its open connections to this
/// coordinator close now (to others within a report interval, to edges as
/// soon as the revocation reaches them), and its certificate cannot be
/// renewed. The host must `edge-node join` again with a new token to come
/// back, as a new node.
pub async fn remove_node(app: &App, who: &Principal, id: &str) -> AppResult<()> {
    if !who.is_instance_owner() {
        return Err(AppError::forbidden(
            "only the instance owner (with an unscoped credential) may remove nodes",
        ));
    }
    if !protocol::host::is_valid_label(id) {
        return Err(AppError::not_found(format!("node {id:?}")));
    }
    let Some(node) = app.store.remove_node(id).await? else {
        return Err(AppError::not_found(format!("node {id:?}")));
    };
    app.quic.close_node(id);
    app.hub.refresh().await.ok();
    tracing::info!(node = %id, "node removed");
    audit::record(
        &app.store,
        who,
        None,
        "node.remove",
        id,
        serde_json::json!({
            "name": node.name,
            "region": node.region,
        }),
    )
    .await;
    Ok(())
}

/// A new one-time join token, shown once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewJoinToken {
    pub token: String,
    pub region: String,
    pub expires_at: i64,
}

/// Creates a join token for a node of `region`, living `ttl_seconds`
/// (default one hour, at most 7 days). Instance owner only.
pub async fn create_join_token(
    app: &App,
    who: &Principal,
    region: &str,
    ttl_seconds: Option<i64>,
) -> AppResult<NewJoinToken> {
    if !who.is_instance_owner() {
        return Err(AppError::forbidden(
            "only the instance owner (with an unscoped credential) may add nodes",
        ));
    }
    if !protocol::host::is_valid_label(region) {
        return Err(AppError::invalid(
            "invalid_region",
            "region must be a DNS label such as `fra` or `us-east`",
        ));
    }
    let ttl = ttl_seconds.unwrap_or(3600);
    if !(1..=7 * 24 * 3600).contains(&ttl) {
        return Err(AppError::invalid(
            "invalid_ttl",
            "ttl_seconds must be between 1 and 604800",
        ));
    }
    let secret = ids::new_secret();
    let expires_at = now_ms() + ttl * 1000;
    app.store
        .create_join_token(
            &ids::new_id(12),
            &ids::token_hash(&secret),
            region,
            expires_at,
        )
        .await?;
    let token = protocol::token::JoinToken {
        secret,
        ca_fingerprint: app.quic.ca.fingerprint(),
    };
    tracing::info!(%region, "join token created");
    audit::record(
        &app.store,
        who,
        None,
        "node.join_token",
        region,
        serde_json::json!({ "expires_at": expires_at }),
    )
    .await;
    Ok(NewJoinToken {
        token: token.to_string(),
        region: region.to_string(),
        expires_at,
    })
}
