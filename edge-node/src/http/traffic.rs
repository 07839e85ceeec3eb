//! A finished request, counted for the site's analytics: what it asked
//! (path, user agent, referrer, client address) and what it got (status,
//! bytes, content type and encoding, time). Requests no site answered
//! (unknown hosts, ACME challenges) count in the node's metrics only.

use tokio::time::Instant;

use analytics::recorder::{FunctionEnd, FunctionHit, Hit};
use analytics::Env;
use http::header;
use http::Method;
use pingora_core::protocols::http::ServerSession;

use super::dispatch::Served;
use super::EdgeHttp;

fn text(h: Option<&http::HeaderValue>) -> Option<&str> {
    h.and_then(|v| v.to_str().ok())
}

pub(super) fn count(app: &EdgeHttp, session: &ServerSession, started: Instant, served: &Served) {
    let (Some(analytics), Some(site)) = (app.analytics.get(), served.site.as_ref()) else {
        return;
    };
    let Some(resp) = session.response_written() else {
        return;
    };
    let req = session.req_header();
    let ip = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_canonical());
    let country = match ip {
        Some(ip) if analytics.has_geoip() => analytics.country(ip),
        _ => None,
    };
    // The site's own host, to tell its own pages from referring sites (a
    // borrow for the lowercase hosts a site was found by).
    let raw = super::raw_host(req).unwrap_or("");
    let host = protocol::host::normalize_host(raw).unwrap_or(std::borrow::Cow::Borrowed(raw));
    let function = served.route.as_deref().map(|route| FunctionHit {
        route,
        end: FunctionEnd::from_code(
            served
                .function_end
                .load(std::sync::atomic::Ordering::Relaxed),
        ),
    });
    analytics.record(&Hit {
        project: &site.project,
        deployment: &site.deployment,
        env: match site.environment {
            protocol::EnvKind::Production => Env::Production,
            protocol::EnvKind::Preview => Env::Preview,
        },
        host: &host,
        // The visitor is counted per project: one person on the apex and
        // on www is one visitor.
        visitor_scope: &site.project,
        path: req.uri.path(),
        get: req.method == Method::GET,
        status: resp.status.as_u16(),
        bytes: session.body_bytes_sent() as u64,
        micros: started.elapsed().as_micros() as u64,
        content_type: text(resp.headers.get(header::CONTENT_TYPE)),
        content_encoding: text(resp.headers.get(header::CONTENT_ENCODING)),
        user_agent: text(req.headers.get(header::USER_AGENT)).unwrap_or(""),
        referer: text(req.headers.get(header::REFERER)),
        ip,
        country: country.as_deref(),
        function,
    });
}
