//! The rate-limit middleware of every `/api/v1` route (classes and the
//! limiter are in `crate::ratelimit`). It authenticates the request once,
//! so that a request is counted against the credential it carries, and
//! hands the principal to the handler's extractor through the request's
//! extensions: the credential is looked up once per request, not twice.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::accounts::authz::Via;
use crate::accounts::{session, Principal};
use crate::app::{App, ErrorKind};
use crate::http::rate_headers;
use crate::ratelimit::{Caller, RouteClass};

/// The principal the middleware authenticated, for `Principal`'s extractor.
#[derive(Clone)]
pub(crate) struct Authenticated(pub Principal);

pub async fn enforce(State(app): State<App>, req: Request, next: Next) -> Response {
    let class = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| RouteClass::of(req.method(), p.as_str()))
        .unwrap_or(RouteClass::Api);
    if class == RouteClass::Exempt {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let ip = crate::http::client_ip(&parts, &app);
    let caller = if class.per_address() {
        Caller::Address(ip)
    } else {
        let secure =
            session::wants_secure_cookie(&parts.headers, app.config.accounts.secure_cookies);
        match session::resolve(&app.store, &parts.headers, ip.clone(), secure).await {
            Ok(Ok(Some(who))) => {
                let caller = match &who.via {
                    Via::Token { id, .. } => Caller::Token(id.clone()),
                    Via::Session { id_hash, .. } => Caller::Session(id_hash.clone()),
                };
                parts.extensions.insert(Authenticated(who));
                caller
            }
            // No or a bad credential (the handler answers 401), or the
            // store failed (it answers 500): counted by address.
            _ => Caller::Address(ip),
        }
    };
    let req = Request::from_parts(parts, body);
    match app.api_limits.check(class, &caller) {
        None => next.run(req).await,
        Some(Ok(quota)) => {
            let mut resp = next.run(req).await;
            // Sign-in answers already carry the failed-sign-in count, the
            // stricter of the two.
            if !resp.headers().contains_key("x-ratelimit-limit") {
                rate_headers(resp.headers_mut(), &quota);
            }
            resp
        }
        Some(Err(quota)) => {
            let wait = quota.reset.as_secs() + u64::from(quota.reset.subsec_nanos() > 0);
            let mut resp = ApiError::new(
                ErrorKind::RateLimited,
                "rate_limited",
                format!(
                    "more than {} {} requests in {}; try again in {} seconds",
                    quota.limit,
                    class.name(),
                    humantime::format_duration(app.config.rate_limits.period(class)),
                    wait.max(1)
                ),
            )
            .into_response();
            rate_headers(resp.headers_mut(), &quota);
            resp
        }
    }
}
