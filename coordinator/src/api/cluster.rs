//! Cluster-wide routes: health, nodes, join tokens.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::AppState;
use crate::accounts::{audit, Principal};
use crate::ids;
use crate::store::{now_ms, Node};

/// A node that has not reported for this long is shown as offline.
const ONLINE_WITHIN_MS: i64 = 30_000;

#[utoipa::path(
    get,
    path = "/health",
    tag = "cluster",
    summary = "Liveness and the published config version",
    responses((status = 200, description = "Success")),
    security(())
)]
pub async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "config_version": state.hub.current().config.version,
        "blob_bytes_sent_to_edges": state.quic.blob_bytes_sent.load(Ordering::Relaxed),
    }))
}

#[derive(Serialize)]
pub struct NodeView {
    #[serde(flatten)]
    pub node: Node,
    /// Link to this coordinator: online / offline / never-connected.
    pub status: &'static str,
    pub config_lag: i64,
    /// What the other edges see: alive / suspect / down, or `unknown`
    /// when no peer reports the node (a single-node cluster).
    pub mesh_state: &'static str,
    /// How many peers' fresh reports the verdict is made of.
    pub mesh_seen_by: usize,
}

#[utoipa::path(
    get,
    path = "/nodes",
    tag = "cluster",
    summary = "Edge nodes with region, link status, mesh state and config lag",
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn nodes(
    _who: Principal,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<NodeView>>> {
    let current = state.hub.current().config.version as i64;
    let now = now_ms();
    let nodes = state.store.list_nodes().await?;
    let verdicts = state.quic.mesh.verdicts(now);
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| NodeView {
                mesh_state: verdicts
                    .get(&n.id)
                    .map(|v| v.state.as_str())
                    .unwrap_or("unknown"),
                mesh_seen_by: verdicts.get(&n.id).map(|v| v.seen_by).unwrap_or(0),
                status: match n.last_seen {
                    Some(t) if now - t <= ONLINE_WITHIN_MS => "online",
                    Some(_) => "offline",
                    None => "never-connected",
                },
                config_lag: (current - n.config_version).max(0),
                node: n,
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJoinToken {
    pub region: String,
    /// Lifetime in seconds; default one hour, at most 7 days.
    pub ttl_seconds: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/join-tokens",
    tag = "cluster",
    summary = "Create a one-time join token for a new edge node (instance owner)",
    request_body = CreateJoinToken,
    responses((status = 201, description = "Success"), super::openapi::Guarded)
)]
pub async fn create_join_token(
    who: Principal,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateJoinToken>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    if !who.is_instance_owner() {
        return Err(ApiError::forbidden(
            "only the instance owner (with an unscoped credential) may add nodes",
        ));
    }
    if !protocol::host::is_valid_label(&body.region) {
        return Err(ApiError::bad_request(
            "invalid_region",
            "region must be a DNS label such as `fra` or `us-east`",
        ));
    }
    let ttl = body.ttl_seconds.unwrap_or(3600);
    if !(1..=7 * 24 * 3600).contains(&ttl) {
        return Err(ApiError::bad_request(
            "invalid_ttl",
            "ttl_seconds must be between 1 and 604800",
        ));
    }
    let secret = ids::new_secret();
    let expires_at = now_ms() + ttl * 1000;
    state
        .store
        .create_join_token(
            &ids::new_id(12),
            &ids::token_hash(&secret),
            &body.region,
            expires_at,
        )
        .await?;
    let token = protocol::token::JoinToken {
        secret,
        ca_fingerprint: state.quic.ca.fingerprint(),
    };
    tracing::info!(region = %body.region, "join token created");
    audit::record(
        &state.store,
        &who,
        None,
        "node.join_token",
        &body.region,
        json!({ "expires_at": expires_at }),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "token": token.to_string(), "region": body.region, "expires_at": expires_at }),
        ),
    ))
}
