//! The REST API under `/api/v1` (axum, JSON, bearer tokens).

pub mod accounts;
mod alerts;
mod analytics;
pub mod auth;
pub(crate) mod builds;
pub(crate) mod cluster;
pub(crate) mod deployments;
pub mod domains;
mod drains;
pub(crate) mod env;
pub mod error;
mod errors;
pub(crate) mod extract;
pub(crate) mod git;
mod limits;
mod logs;
pub mod openapi;
pub(crate) mod projects;
pub mod views;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

pub use crate::app::App;

fn small_body() -> DefaultBodyLimit {
    DefaultBodyLimit::max(crate::http::UNAUTHENTICATED_BODY_BYTES)
}

pub fn router(state: App) -> Router {
    let (router, _) = routes(&state);
    router
}

/// The API's routes and, from the same table, its OpenAPI document.
pub fn routes(state: &App) -> (Router, utoipa::openapi::OpenApi) {
    let json_limit = state.config.limits.max_json_bytes as usize;
    let blob_limit = state.config.limits.max_blob_bytes as usize;
    let api = OpenApiRouter::new()
        .routes(routes!(cluster::health))
        .routes(routes!(auth::signup).layer(small_body()))
        .routes(routes!(auth::login).layer(small_body()))
        .routes(routes!(auth::logout))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::list_teams, accounts::create_team))
        .routes(routes!(accounts::members))
        .routes(routes!(accounts::set_member, accounts::remove_member))
        .routes(routes!(
            accounts::list_invitations,
            accounts::create_invitation
        ))
        .routes(routes!(accounts::revoke_invitation))
        .routes(routes!(accounts::accept_invitation))
        .routes(routes!(accounts::list_tokens, accounts::create_token))
        .routes(routes!(accounts::revoke_token))
        .routes(routes!(accounts::audit))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::show, projects::delete))
        .routes(routes!(projects::retention, projects::set_retention))
        .routes(routes!(projects::aliases))
        .routes(routes!(deployments::rollback))
        .routes(routes!(env::list))
        .routes(routes!(env::set, env::delete))
        .routes(routes!(env::get_outbound, env::set_outbound))
        .routes(routes!(domains::list, domains::add))
        .routes(routes!(domains::inspect, domains::remove, domains::update))
        .routes(routes!(domains::verify))
        .routes(routes!(logs::list))
        .routes(routes!(analytics::get))
        .routes(routes!(errors::list))
        .routes(routes!(errors::show, errors::update))
        .routes(routes!(alerts::list_channels, alerts::add_channel))
        .routes(routes!(alerts::remove_channel))
        .routes(routes!(alerts::test_channel))
        .routes(routes!(alerts::deliveries))
        .routes(routes!(
            alerts::list_project_rules,
            alerts::add_project_rule
        ))
        .routes(routes!(
            alerts::list_instance_rules,
            alerts::add_instance_rule
        ))
        .routes(routes!(alerts::show_rule, alerts::remove_rule))
        .routes(routes!(drains::list, drains::add))
        .routes(routes!(drains::show, drains::remove))
        .routes(routes!(deployments::list, deployments::create))
        .routes(routes!(git::show, git::put, git::delete))
        .routes(routes!(builds::list, builds::create))
        // The webhook reads its body itself, once the project and the
        // signature header have been checked.
        .routes(routes!(git::hook))
        .routes(routes!(builds::show))
        .routes(routes!(deployments::show, deployments::delete))
        .routes(routes!(builds::cancel))
        .routes(routes!(builds::redeploy))
        .routes(routes!(builds::events))
        .routes(routes!(builds::logs))
        .routes(routes!(deployments::finalize))
        .routes(routes!(deployments::promote))
        .routes(routes!(deployments::missing_blobs))
        .routes(routes!(deployments::upload_blob).layer(DefaultBodyLimit::max(blob_limit)))
        .routes(routes!(cluster::nodes))
        .routes(routes!(cluster::remove_node))
        .routes(routes!(cluster::create_join_token))
        .routes(routes!(cluster::gc))
        .routes(routes!(accounts::quotas, accounts::set_quotas));
    let (api, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .split_for_parts();
    let mut doc = doc;
    // Paths are relative to the `/api/v1` server declared in the document.
    doc.paths.paths = std::mem::take(&mut doc.paths.paths)
        .into_iter()
        .map(|(p, item)| (p.strip_prefix("/api/v1").unwrap_or(&p).to_string(), item))
        .collect();
    let spec = std::sync::Arc::new(doc.clone());
    // Every route registered so far is rate-limited (the layer wraps each
    // route, so the middleware sees its template); the document is not.
    let api = api
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        )
        .layer(DefaultBodyLimit::max(json_limit));
    let router = Router::new()
        .merge(api)
        .merge(crate::web::router().layer(DefaultBodyLimit::max(json_limit)))
        // Prometheus' usual path, beside the API rather than in it; not
        // in the OpenAPI document (it is no JSON API).
        .route("/metrics", get(crate::metrics::serve))
        .fallback(|uri: axum::http::Uri| async move {
            use axum::response::IntoResponse;
            if uri.path().starts_with("/api/") {
                error::ApiError::not_found("route").into_response()
            } else {
                crate::web::WebError::not_found("page").into_response()
            }
        })
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.config.accounts.secure_cookies,
            crate::http::security_headers,
        ));
    (router, doc)
}
