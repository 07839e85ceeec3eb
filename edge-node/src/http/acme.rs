//! What the edge does for ACME before any routing: answers HTTP-01
//! challenges statelessly from the account thumbprint in the signed config
//! (see [`protocol::acme`] for why), and sends plain-HTTP requests of a host
//! with an active certificate to HTTPS (308) when its policy says so.
//!
//! A challenge is answered only for a host this node serves and only with a
//! well-formed token; anything else under the challenge prefix is a plain
//! 404 that echoes nothing. Challenge paths are never redirected: a CA
//! validates over port 80 even after the certificate exists (renewals).

use std::borrow::Cow;

use pingora_http::RequestHeader;
use protocol::acme::HttpsPolicy;
use protocol::acme::{http01_token, is_http01_path, key_authorization};
use protocol::host::{normalize_host, wildcard_of};

use super::EdgeHttp;
use crate::state::{Resolved, Routing};

/// What is answered before routing, if anything.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Early {
    /// 200 with this body (a key authorization).
    Challenge(String),
    /// The platform's 404.
    NotFound,
    /// 308 to this URL.
    ToHttps(String),
}

/// The request's host, normalised.
fn request_host(req: &RequestHeader) -> Option<Cow<'_, str>> {
    super::raw_host(req).and_then(|h| normalize_host(h).ok())
}

pub(super) async fn early(
    app: &EdgeHttp,
    routing: &Routing,
    req: &RequestHeader,
    tls: bool,
) -> Option<Early> {
    let path = req.uri.path();
    if is_http01_path(path) {
        let (Some(token), Some(host)) = (http01_token(path), request_host(req)) else {
            return Some(Early::NotFound);
        };
        if req.uri.query().is_some() || !serves(app, routing, &host).await {
            return Some(Early::NotFound);
        }
        // An order with another account than the published one left its
        // answer under the host; otherwise the stateless answer.
        let stored = routing
            .challenges
            .get(host.as_ref())
            .and_then(|c| c.http01_for(token));
        return match (stored, &routing.acme) {
            (Some(ka), _) => Some(Early::Challenge(ka.to_string())),
            (None, Some(thumbprint)) => {
                Some(Early::Challenge(key_authorization(token, thumbprint)))
            }
            (None, None) => Some(Early::NotFound),
        };
    }
    if tls || routing.https.is_empty() {
        return None;
    }
    let host = request_host(req)?;
    let policy = policy_for(routing, &host)?;
    if !policy.redirect {
        return None;
    }
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let pq = if pq.starts_with('/') { pq } else { "/" };
    // The normalised host (no port: HTTPS is on its standard port).
    Some(Early::ToHttps(format!("https://{host}{pq}")))
}

/// The `Strict-Transport-Security` value for `host` over TLS, if its policy
/// has one.
pub(super) fn hsts(routing: &Routing, req: &RequestHeader) -> Option<String> {
    if routing.https.is_empty() {
        return None;
    }
    let host = request_host(req)?;
    policy_for(routing, &host)?
        .hsts
        .as_ref()
        .map(|h| h.header_value())
}

/// The HTTPS policy of `host`, or of the wildcard domain covering it.
fn policy_for<'a>(routing: &'a Routing, host: &str) -> Option<&'a HttpsPolicy> {
    routing
        .https
        .get(host)
        .or_else(|| routing.https.get(&wildcard_of(host)?))
}

/// Whether the config has `host` as a site or a redirecting host.
async fn serves(app: &EdgeHttp, routing: &Routing, host: &str) -> bool {
    if routing.hosts.contains_key(host) || app.state.cached(host).is_some() {
        return true;
    }
    match app.state.resolver() {
        Some(r) => matches!(
            r.resolve(host).await,
            Resolved::Site(_) | Resolved::Redirect(_)
        ),
        None => false,
    }
}
