//! Proxy rewrites: a routing rule that rewrites to an absolute URL has the
//! edge fetch it through pingora's HTTP client and relay the response.
//!
//! Bounded like everything a client can trigger: the request body is
//! buffered up to [`ProxyLimits::max_request_body`], connecting and waiting
//! for the response head have deadlines, and each body read has one. The
//! upstream name is resolved here and every address is checked with the
//! same policy as function outbound HTTP (no loopback, private, link-local,
//! … unless the operator allows it); pingora then dials the checked address,
//! so DNS cannot answer differently a second time.
//!
//! A proxied request carries [`HOPS`]; an edge that receives one that has
//! already been proxied answers 508 instead of proxying it again, so a
//! rewrite to the site's own host, or two sites rewriting to each other,
//! ends after one hop instead of looping.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{Uri, Version};
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::{RequestHeader, ResponseHeader};

use super::EdgeHttp;
use crate::functions::outbound::{normalize, permitted};
use crate::functions::serve::RequestId;
use crate::state::Site;

/// How many Outpost proxies a request has passed through.
pub const HOPS: HeaderName = HeaderName::from_static("x-outpost-proxy-hops");
/// Proxy hops a request may have taken before this edge proxies it again.
const MAX_HOPS: u32 = 1;

/// Bounds on proxied requests.
#[derive(Debug, Clone)]
pub struct ProxyLimits {
    /// Allow upstreams on loopback/private/link-local addresses (tests, or
    /// an operator proxying to their own network).
    pub allow_private: bool,
    /// DNS, TCP connect and TLS handshake, each.
    pub connect_timeout: Duration,
    /// From the request sent to the upstream's response head, and between
    /// reads of its body.
    pub response_timeout: Duration,
    /// Request bodies are buffered (so a retry-free, length-delimited
    /// request goes upstream); larger ones get 413.
    pub max_request_body: usize,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            allow_private: false,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            max_request_body: 10 * 1024 * 1024,
        }
    }
}

/// Why a proxied request could not reach its upstream; the client gets a
/// platform page with [`Failure::status`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("invalid proxy URL")]
    BadUrl,
    #[error("upstream resolves only to restricted addresses")]
    Restricted,
    #[error("upstream name did not resolve: {0}")]
    Dns(String),
    #[error("request body larger than the proxy limit")]
    BodyTooLarge,
    #[error("reading the request body failed")]
    ClientBody,
    #[error("upstream timed out")]
    Timeout,
    #[error("upstream failed: {0}")]
    Upstream(String),
    #[error("the request was already proxied (a rewrite loop)")]
    Loop,
}

impl Failure {
    pub fn status(&self) -> u16 {
        match self {
            Failure::BodyTooLarge => 413,
            Failure::ClientBody => 400,
            Failure::Timeout => 504,
            Failure::Loop => 508,
            _ => 502,
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and those whose framing we redo.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

fn is_hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    HOP_BY_HOP.contains(name) || connection_listed.iter().any(|c| c == name.as_str())
}

/// Header names listed in `Connection` are hop-by-hop too.
fn connection_listed(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// `Host` for the upstream request.
    authority: String,
    path_and_query: String,
}

fn parse_target(url: &str) -> Result<Target, Failure> {
    let uri: Uri = url.parse().map_err(|_| Failure::BadUrl)?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(Failure::BadUrl),
    };
    let authority = uri.authority().ok_or(Failure::BadUrl)?;
    let host = normalize(authority.host());
    if host.is_empty() {
        return Err(Failure::BadUrl);
    }
    Ok(Target {
        tls,
        port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
        authority: authority.as_str().to_string(),
        host,
        path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
    })
}

async fn resolve(t: &Target, limits: &ProxyLimits) -> Result<Vec<SocketAddr>, Failure> {
    let resolved = match crate::dns::lookup(&t.host, t.port, limits.connect_timeout).await {
        Ok(a) => a,
        Err(crate::dns::DnsError::Timeout(..)) => return Err(Failure::Timeout),
        Err(e) => return Err(Failure::Dns(e.to_string())),
    };
    let addrs = permitted(resolved.iter().copied(), limits.allow_private);
    if addrs.is_empty() {
        tracing::debug!(host = %t.host, ?resolved, "proxy to a restricted address refused");
        return Err(if resolved.is_empty() {
            Failure::Dns("no addresses".into())
        } else {
            Failure::Restricted
        });
    }
    Ok(addrs)
}

async fn read_body(session: &mut ServerSession, limits: &ProxyLimits) -> Result<Bytes, Failure> {
    let mut body = BytesMut::new();
    let read = async {
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|_| Failure::ClientBody)?
        {
            if body.len() + chunk.len() > limits.max_request_body {
                return Err(Failure::BodyTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    tokio::time::timeout(limits.response_timeout, read)
        .await
        .map_err(|_| Failure::ClientBody)??;
    Ok(body.freeze())
}

/// The hops a request has taken so far (an unreadable value counts as
/// many: nobody but an edge sets it).
fn hops(headers: &http::HeaderMap) -> u32 {
    match headers.get(&HOPS) {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u32::MAX),
    }
}

fn upstream_request(
    session: &ServerSession,
    t: &Target,
    body_len: usize,
) -> Result<RequestHeader, Failure> {
    let req = session.req_header();
    let hops = hops(&req.headers);
    let mut up = RequestHeader::build(req.method.clone(), t.path_and_query.as_bytes(), None)
        .map_err(|_| Failure::BadUrl)?;
    let listed = connection_listed(&req.headers);
    let mut forwarded_for = None;
    for (name, value) in req.headers.iter() {
        if is_hop_by_hop(name, &listed)
            || name == HOPS
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == header::EXPECT
        {
            continue;
        }
        if name.as_str() == "x-forwarded-for" {
            forwarded_for = value.to_str().ok().map(str::to_string);
            continue;
        }
        if name.as_str().starts_with("x-forwarded-") {
            // Ours replace whatever the client claimed.
            continue;
        }
        let _ = up.append_header(name.clone(), value.clone());
    }
    let bad = |_| Failure::BadUrl;
    up.insert_header(header::HOST, &t.authority).map_err(bad)?;
    up.insert_header(HOPS, hops.saturating_add(1).to_string())
        .map_err(bad)?;
    if body_len > 0 || !matches!(req.method.as_str(), "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        up.insert_header(header::CONTENT_LENGTH, body_len.to_string())
            .map_err(bad)?;
    }
    let client = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip().to_string());
    if let Some(ip) = client {
        let xff = match forwarded_for {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip,
        };
        up.insert_header("x-forwarded-for", xff).map_err(bad)?;
    }
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    up.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })
        .map_err(bad)?;
    let host = req
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    if let Some(host) = host {
        up.insert_header("x-forwarded-host", host).map_err(bad)?;
    }
    Ok(up)
}

fn peer(addr: SocketAddr, t: &Target, limits: &ProxyLimits) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, t.tls, t.host.clone());
    peer.options.connection_timeout = Some(limits.connect_timeout);
    peer.options.total_connection_timeout = Some(limits.connect_timeout * 2);
    peer.options.read_timeout = Some(limits.response_timeout);
    peer.options.write_timeout = Some(limits.response_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(30));
    // HTTP/1.1 upstream: a request is one exchange on one connection.
    peer.options.alpn = ALPN::H1;
    peer
}

/// Sends the request and reads the response head: everything that can
/// still fail with a clean error page.
async fn exchange(
    connector: &Connector,
    addrs: &[SocketAddr],
    t: &Target,
    limits: &ProxyLimits,
    req: RequestHeader,
    body: Bytes,
) -> Result<(HttpSession, HttpPeer), Failure> {
    let mut last = Failure::Upstream("no address".into());
    for &addr in addrs {
        let peer = peer(addr, t, limits);
        let mut up = match connector.get_http_session(&peer).await {
            Ok((up, _reused)) => up,
            Err(e) => {
                last = Failure::Upstream(e.to_string());
                continue;
            }
        };
        up.set_read_timeout(Some(limits.response_timeout));
        up.set_write_timeout(Some(limits.response_timeout));
        let sent = async {
            up.write_request_header(Box::new(req.clone())).await?;
            if !body.is_empty() {
                up.write_request_body(body.clone(), true).await?;
            }
            up.finish_request_body().await?;
            // Skip interim (1xx) responses.
            loop {
                up.read_response_header().await?;
                match up.response_header() {
                    Some(h) if h.status.is_informational() => continue,
                    _ => return Ok::<_, Box<pingora_core::Error>>(()),
                }
            }
        };
        return match tokio::time::timeout(limits.response_timeout, sent).await {
            Ok(Ok(())) => Ok((up, peer)),
            Ok(Err(e)) => Err(Failure::Upstream(e.to_string())),
            Err(_) => Err(Failure::Timeout),
        };
    }
    Err(last)
}

/// Relays the upstream's response for `url`. An `Err` means the response
/// was cut off after its head was sent. `request_id`: the request is in
/// its project's request log sample, and the response says so.
pub async fn respond(
    app: &EdgeHttp,
    session: &mut ServerSession,
    site: &Site,
    url: &str,
    stamps: &super::Stamps,
    request_id: Option<RequestId>,
) -> pingora_core::Result<()> {
    let limits = &app.limits.proxy;
    let prepared = async {
        if hops(&session.req_header().headers) >= MAX_HOPS {
            return Err(Failure::Loop);
        }
        let t = parse_target(url)?;
        let addrs = resolve(&t, limits).await?;
        let body = read_body(session, limits).await?;
        let req = upstream_request(session, &t, body.len())?;
        exchange(app.proxy_connector(), &addrs, &t, limits, req, body).await
    }
    .await;
    let (mut up, peer) = match prepared {
        Ok(ok) => ok,
        Err(e) => {
            tracing::debug!(project = %site.project, error = %e, "proxy request failed");
            let head = session.req_header().method == http::Method::HEAD;
            return super::static_files::send_page(
                session,
                e.status(),
                Some(site),
                request_id,
                head,
            )
            .await;
        }
    };
    let upstream = up
        .response_header()
        .expect("a response head was read")
        .clone();
    let listed = connection_listed(&upstream.headers);
    let mut h = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 2))
        .expect("status from a parsed response");
    for (name, value) in upstream.headers.iter() {
        if !is_hop_by_hop(name, &listed) {
            let _ = h.append_header(name.clone(), value.clone());
        }
    }
    super::static_files::set_deployment(&mut h, site);
    // Ours replaces the upstream's own.
    super::static_files::set_request_id(&mut h, request_id);
    stamps.apply_to(&mut h);
    // h2 and h3 frame bodies themselves.
    if !h.headers.contains_key(header::CONTENT_LENGTH)
        && !session.is_http2()
        && !session.is_custom()
    {
        if session.req_header().version == Version::HTTP_11 {
            let _ = h.insert_header(header::TRANSFER_ENCODING, "chunked");
        } else {
            // HTTP/1.0: the end of the body is the end of the connection.
            session.set_keepalive(None);
        }
    }
    session.write_response_header(Box::new(h)).await?;
    while let Some(chunk) = up.read_response_body().await? {
        if !chunk.is_empty() {
            session.write_response_body(chunk, false).await?;
        }
    }
    session.write_response_body(Bytes::new(), true).await?;
    if up.response_done() {
        app.proxy_connector()
            .release_http_session(up, &peer, Some(Duration::from_secs(30)))
            .await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target("https://api.example.com/v1/x?y=1").unwrap();
        assert!(t.tls);
        assert_eq!((t.host.as_str(), t.port), ("api.example.com", 443));
        assert_eq!(t.path_and_query, "/v1/x?y=1");
        assert_eq!(t.authority, "api.example.com");
        let t = parse_target("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 8080, false));
        assert_eq!(t.path_and_query, "/");
        let t = parse_target("http://[::1]:81/a").unwrap();
        assert_eq!(t.host, "::1");
        for bad in ["ftp://x/", "/relative", "http:///x", "not a url"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hops_are_counted_and_nonsense_counts_as_too_many() {
        let mut h = http::HeaderMap::new();
        assert_eq!(hops(&h), 0);
        for (value, want) in [("1", 1), (" 3 ", 3), ("x", u32::MAX), ("-1", u32::MAX)] {
            h.insert(&HOPS, value.parse().unwrap());
            assert_eq!(hops(&h), want, "{value:?}");
        }
    }

    #[test]
    fn hop_by_hop_headers() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::CONNECTION, "close, X-Secret".parse().unwrap());
        let listed = connection_listed(&headers);
        for (name, hop) in [
            ("connection", true),
            ("transfer-encoding", true),
            ("upgrade", true),
            ("keep-alive", true),
            ("x-secret", true),
            ("content-type", false),
            ("cache-control", false),
        ] {
            let name = HeaderName::from_static(name);
            assert_eq!(is_hop_by_hop(&name, &listed), hop, "{name}");
        }
    }

    #[tokio::test]
    async fn restricted_upstreams_are_refused_unless_allowed() {
        let strict = ProxyLimits::default();
        let lax = ProxyLimits {
            allow_private: true,
            ..ProxyLimits::default()
        };
        for url in [
            "http://127.0.0.1/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
        ] {
            let t = parse_target(url).unwrap();
            assert!(
                matches!(resolve(&t, &strict).await, Err(Failure::Restricted)),
                "{url}"
            );
            assert_eq!(resolve(&t, &lax).await.unwrap().len(), 1, "{url}");
        }
        let public = parse_target("http://8.8.8.8/").unwrap();
        assert!(resolve(&public, &strict).await.is_ok());
    }
}
