//! A finished request, counted for the site's analytics: what it asked
//! (path, user agent, referrer, client address) and what it got (status,
//! bytes, content type and encoding, time). Requests no site answered
//! (unknown hosts, ACME challenges) count in the node's metrics only.
//! A request in its project's request log sample is also logged (see
//! `crate::requestlog`).

use tokio::time::Instant;

use analytics::recorder::{FunctionEnd, FunctionHit, Hit};
use analytics::Env;
use http::header;
use http::Method;
use pingora_core::protocols::http::ServerSession;

use super::dispatch::{Sampled, Served};
use super::EdgeHttp;
use crate::requestlog::{unix_ms_before, Answered};

fn text(h: Option<&http::HeaderValue>) -> Option<&str> {
    h.and_then(|v| v.to_str().ok())
}

pub(super) fn count(app: &EdgeHttp, session: &ServerSession, started: Instant, served: &Served) {
    // Set only for a request in its project's sample: nothing else pays.
    if let Some(sampled) = &served.sampled {
        log(app, session, started, served, sampled);
    }
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

/// A sampled request's log record, into the shipper's channel.
fn log(
    app: &EdgeHttp,
    session: &ServerSession,
    started: Instant,
    served: &Served,
    sampled: &Sampled,
) {
    let (Some(sink), Some(site), Some(resp)) = (
        app.request_logs.get(),
        served.site.as_ref(),
        session.response_written(),
    ) else {
        return;
    };
    let req = session.req_header();
    let raw = super::raw_host(req).unwrap_or("");
    let host = protocol::host::normalize_host(raw).unwrap_or(std::borrow::Cow::Borrowed(raw));
    let duration = started.elapsed();
    let target = match &sampled.target {
        Some(t) => t.as_str(),
        None => req.uri.path_and_query().map_or("/", |p| p.as_str()),
    };
    let answered = Answered {
        ts_ms: unix_ms_before(duration),
        project: &site.project,
        deployment: &site.deployment,
        request_id: sampled.id,
        method: req.method.as_str(),
        tls: session.digest().is_some_and(|d| d.ssl_digest.is_some()),
        host: &host,
        target,
        status: resp.status.as_u16(),
        duration,
        bytes: session.body_bytes_sent() as u64,
        user_agent: req.headers.get(header::USER_AGENT).map(|v| v.as_bytes()),
        referer: req.headers.get(header::REFERER).map(|v| v.as_bytes()),
    };
    if let Some(record) = answered.record() {
        sink.push(record);
    }
}
