//! The REST API under `/api/v1` (axum, JSON, bearer tokens).

pub mod accounts;
pub mod auth;
pub(crate) mod builds;
pub(crate) mod cluster;
pub(crate) mod deployments;
pub(crate) mod env;
pub mod error;
pub(crate) mod extract;
pub(crate) mod git;
mod logs;
pub(crate) mod projects;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::edge_config::ConfigHub;
use crate::quic::QuicContext;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub secrets: Arc<crate::secrets::SecretBox>,
    pub store: Store,
    pub blobs: BlobStore,
    pub hub: Arc<ConfigHub>,
    pub config: Arc<Config>,
    pub quic: Arc<QuicContext>,
    pub builds: Arc<crate::builds::BuildService>,
    pub login_limits: Arc<crate::accounts::ratelimit::LoginLimits>,
}

pub fn router(state: AppState) -> Router {
    let json_limit = state.config.limits.max_json_bytes as usize;
    let blob_limit = state.config.limits.max_blob_bytes as usize;
    let api = Router::new()
        .route("/health", get(cluster::health))
        .route("/projects", get(projects::list).post(projects::create))
        .route("/projects/{project}", get(projects::show))
        .route("/projects/{project}/aliases", get(projects::aliases))
        .route("/projects/{project}/rollback", post(deployments::rollback))
        .route("/projects/{project}/env", get(env::list))
        .route(
            "/projects/{project}/env/{name}",
            put(env::set).delete(env::delete),
        )
        .route(
            "/projects/{project}/outbound",
            get(env::get_outbound).put(env::set_outbound),
        )
        .route("/projects/{project}/logs", get(logs::list))
        .route(
            "/projects/{project}/deployments",
            get(deployments::list).post(deployments::create),
        )
        .route(
            "/projects/{project}/git",
            get(git::show).put(git::put).delete(git::delete),
        )
        .route(
            "/projects/{project}/builds",
            get(builds::list).post(builds::create),
        )
        .route("/hooks/git/{project}", post(git::hook))
        .route("/builds/{id}", get(builds::show))
        .route("/deployments/{id}", get(deployments::show))
        .route("/deployments/{id}/cancel", post(builds::cancel))
        .route("/deployments/{id}/redeploy", post(builds::redeploy))
        .route("/deployments/{id}/events", get(builds::events))
        .route("/deployments/{id}/build-logs", get(builds::logs))
        .route("/deployments/{id}/finalize", post(deployments::finalize))
        .route("/deployments/{id}/promote", post(deployments::promote))
        .route("/blobs/missing", post(deployments::missing_blobs))
        .route(
            "/blobs/{hash}",
            put(deployments::upload_blob).layer(DefaultBodyLimit::max(blob_limit)),
        )
        .route("/auth/signup", post(auth::signup))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(accounts::me))
        .route(
            "/teams",
            get(accounts::list_teams).post(accounts::create_team),
        )
        .route("/teams/{team}/members", get(accounts::members))
        .route(
            "/teams/{team}/members/{user}",
            put(accounts::set_member).delete(accounts::remove_member),
        )
        .route(
            "/teams/{team}/invitations",
            get(accounts::list_invitations).post(accounts::create_invitation),
        )
        .route(
            "/teams/{team}/invitations/{id}",
            delete(accounts::revoke_invitation),
        )
        .route(
            "/invitations/{token}/accept",
            post(accounts::accept_invitation),
        )
        .route(
            "/tokens",
            get(accounts::list_tokens).post(accounts::create_token),
        )
        .route("/tokens/{id}", delete(accounts::revoke_token))
        .route("/audit", get(accounts::audit))
        .route("/nodes", get(cluster::nodes))
        .route("/join-tokens", post(cluster::create_join_token))
        .fallback(|| async { error::ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(json_limit));
    Router::new()
        .nest("/api/v1", api)
        .merge(crate::web::router().layer(DefaultBodyLimit::max(json_limit)))
        .fallback(|uri: axum::http::Uri| async move {
            use axum::response::IntoResponse;
            if uri.path().starts_with("/api/") {
                error::ApiError::not_found("route").into_response()
            } else {
                crate::web::WebError::not_found("page").into_response()
            }
        })
        .with_state(state)
}
