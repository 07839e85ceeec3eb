//! The request handler: Host → site → routing rules → function or bundle
//! file → response (the order is explained in `super::routing`).
//!
//! The response is decided first from the routing snapshot and the manifest
//! alone ([`decide`], [`plan_file`]); only then is a blob opened, so a
//! missing or corrupt blob can still turn into a clean 503 before any byte
//! of the response is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http::uri::Authority;
use http::Method;
use pingora_core::protocols::http::ServerSession;
use pingora_http::RequestHeader;
use protocol::config::RequestLogPolicy;
use protocol::functions::FunctionEntry;
use protocol::host::{normalize_host, wildcard_of};
use protocol::path::{parse_decoded_path, parse_request_path};
use protocol::resolve::{resolve, Resolution};
use protocol::routing::{headers_for, route, Decision};

use super::acme::{self, Early};
use super::static_files::{
    self, base_header, plan_file, send_file, send_page, set, set_deployment, set_request_id,
    Conditionals, FilePlan,
};
use super::transport::ZeroCopy;
use super::{proxy, routing, EdgeHttp, Stamps};
use crate::functions;
use crate::functions::serve::RequestId;
use crate::state::{Resolved, Site};

/// What a request turned out to be, for analytics and request logs: the
/// site that answered (none for the platform's pages of unknown hosts) and
/// the function route.
#[derive(Default)]
pub struct Served {
    pub site: Option<Arc<Site>>,
    pub route: Option<Arc<str>>,
    /// An [`analytics::recorder::FunctionEnd`] code, set by the function path.
    pub function_end: std::sync::atomic::AtomicU8,
    /// The site's project's request log rate (ppm); 0: it has no request
    /// log drain (or the node ships none).
    pub log_ppm: u32,
    /// Set when the request is in its project's request log sample.
    pub sampled: Option<Sampled>,
}

/// A request in its project's request log sample (see `crate::requestlog`).
pub struct Sampled {
    /// Its id, which its response carries as `x-request-id`.
    pub id: RequestId,
    /// The target the client asked for, when a rewrite to a function
    /// replaced it in the request header (the log shows the client's).
    pub target: Option<String>,
}

/// Serves one request whose header has been read. An `Err` means the
/// response could not be completed and the connection must not be reused.
/// `zero_copy`: the connection is plain HTTP/1.1 and can `sendfile`.
pub async fn respond(
    app: &EdgeHttp,
    session: &mut ServerSession,
    served: &mut Served,
    zero_copy: Option<&ZeroCopy>,
) -> pingora_core::Result<()> {
    let head = session.req_header().method == Method::HEAD;
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    // One look at the routing snapshot for what comes before routing.
    let routing = app.state.current();
    match acme::early(app, &routing, session.req_header(), tls).await {
        None => {}
        Some(Early::NotFound) => return send_page(session, 404, None, None, head).await,
        Some(Early::Challenge(body)) => return send_challenge(session, body, head).await,
        Some(Early::ToHttps(location)) => {
            return send_redirect(session, None, 308, &location, &Stamps::default(), None).await
        }
    }
    let stamps = Stamps {
        hsts: if tls {
            acme::hsts(&routing, session.req_header())
                .and_then(|v| http::HeaderValue::from_str(&v).ok())
        } else {
            None
        },
        // HTTP/3's own answers need not point at HTTP/3.
        alt_svc: if tls && !session.is_custom() {
            app.alt_svc.get().cloned()
        } else {
            None
        },
    };
    // Request logs: the projects with a drain. Without any (the common
    // case) this is the only look at them.
    let logs = (!routing.request_logs.is_empty() && app.request_logs.get().is_some())
        .then(|| routing.request_logs.clone());
    drop(routing);
    let logs = logs.as_deref();
    let mut reply = decide(app, session.req_header(), None, served, logs);
    if let Reply::Resolve(host) = reply {
        // A host the routing snapshot does not hold: a deployment's own,
        // served on demand.
        reply = match app.state.resolver() {
            None => Reply::Platform(404),
            Some(r) => match Box::pin(r.resolve(&host)).await {
                Resolved::Site(site) => decide(app, session.req_header(), Some(site), served, logs),
                Resolved::Unknown => Reply::Platform(404),
                Resolved::Unavailable => Reply::Platform(503),
                Resolved::Redirect(r) => {
                    let pq = session
                        .req_header()
                        .uri
                        .path_and_query()
                        .map_or("/", |p| p.as_str());
                    match r.location(if tls { "https" } else { "http" }, pq) {
                        Some(location) => {
                            return send_redirect(session, None, r.status, &location, &stamps, None)
                                .await
                        }
                        None => Reply::Platform(404),
                    }
                }
            },
        };
    }
    // A request of a project with a request log drain has its id from
    // here on; in the sample, its response carries it (a function's
    // always does) and its log line will too.
    let request_id = (served.log_ppm != 0).then(RequestId::new);
    let stamp = request_id.filter(|id| RequestLogPolicy::samples(served.log_ppm, id.get()));
    if let Some(id) = stamp {
        served.sampled = Some(Sampled { id, target: None });
    }
    match reply {
        Reply::Resolve(_) => send_page(session, 404, None, stamp, head).await,
        Reply::Platform(status) => send_page(session, status, None, stamp, head).await,
        Reply::File { site, plan, extra } => {
            let file = static_files::FileReply {
                site: &site,
                plan,
                extra: &extra,
                stamps: &stamps,
                request_id: stamp,
                head,
            };
            send_file(app, session, file, zero_copy).await
        }
        Reply::Redirect {
            site,
            status,
            location,
        } => send_redirect(session, Some(&site), status, &location, &stamps, stamp).await,
        Reply::Proxy { site, url } => {
            // Boxed, like the function arm below: a rare arm's large state
            // would otherwise be part of every request's future, which is
            // moved into its task when an h2 stream is spawned.
            Box::pin(proxy::respond(app, session, &site, &url, &stamps, stamp)).await
        }
        Reply::Function {
            site,
            route,
            entry,
            authority,
            target,
        } => {
            if let Some(uri) = target {
                if let Some(s) = &mut served.sampled {
                    s.target = Some(crate::requestlog::target_of(session.req_header()));
                }
                // A rewrite: the function sees the path it was rewritten to.
                session.req_header_mut().set_uri(uri);
            }
            let Some(runtime) = &app.functions else {
                tracing::warn!(project = %site.project, %route, "request for a function, but this node runs none");
                return send_page(session, 503, Some(&site), stamp, head).await;
            };
            served.route = Some(route.clone());
            let call = functions::serve::Call {
                site: &site,
                route: &route,
                entry: &entry,
                authority,
                stamps,
                end: &served.function_end,
                request_id: request_id.unwrap_or_else(RequestId::new),
            };
            Box::pin(functions::respond(runtime, &app.blobs, session, call)).await
        }
    }
}

enum Reply {
    /// One of the platform's own pages, never a tenant's.
    Platform(u16),
    /// The host is not in the routing snapshot: resolve it.
    Resolve(String),
    File {
        site: Arc<Site>,
        plan: FilePlan,
        /// Headers from the bundle's header rules.
        extra: Vec<(String, String)>,
    },
    /// A function's route matched; it takes every method.
    Function {
        site: Arc<Site>,
        route: Arc<str>,
        entry: FunctionEntry,
        /// `Host` / `:authority` as the client sent it.
        authority: Authority,
        /// The request target after a rewrite.
        target: Option<http::Uri>,
    },
    /// A redirect rule (or a clean-URL / trailing-slash canonicalisation).
    Redirect {
        site: Arc<Site>,
        status: u16,
        location: String,
    },
    /// A rewrite to an absolute URL.
    Proxy { site: Arc<Site>, url: String },
}

/// The response, from the routing snapshot and the manifest alone; `site`
/// when the host was resolved on demand; `logs`: the projects with a
/// request log drain, when there are any.
fn decide(
    app: &EdgeHttp,
    req: &RequestHeader,
    site: Option<Arc<Site>>,
    served: &mut Served,
    logs: Option<&BTreeMap<String, RequestLogPolicy>>,
) -> Reply {
    let raw_host = super::raw_host(req);
    let Some(host) = raw_host.and_then(|h| normalize_host(h).ok()) else {
        return Reply::Platform(400);
    };
    let site = match site {
        Some(s) => s,
        None => {
            let routing = app.state.current();
            // An exact host first, then a wildcard domain covering it.
            let eager = routing
                .hosts
                .get(host.as_ref())
                .cloned()
                .or_else(|| wildcard_of(&host).and_then(|w| routing.hosts.get(&w).cloned()));
            match eager {
                Some(s) => s,
                None => match app.state.cached(host.as_ref()) {
                    Some(s) => s,
                    None => return Reply::Resolve(host.into_owned()),
                },
            }
        }
    };
    let logged = logs.and_then(|l| l.get(&*site.project));
    if let Some(policy) = logged {
        served.log_ppm = policy.sample_ppm;
    }
    if app.analytics.get().is_some() || logged.is_some() {
        served.site = Some(site.clone());
    }
    // The raw target, not the parsed URI: the path parser does the one and
    // only percent-decoding, and refuses anything that could leave the bundle.
    let Some(path) = std::str::from_utf8(req.raw_path())
        .ok()
        .and_then(|t| parse_request_path(t).ok())
    else {
        return Reply::Platform(400);
    };
    let mut path = path;
    let mut extra = Vec::new();
    let mut target = None;
    let mut not_found_rewrite = false;
    let rules = &site.manifest.routing;
    // A bundle without routing rules pays for this one check only.
    if !rules.is_empty() {
        let rooted = path.rooted();
        let query = req.uri.query();
        match route(rules, &rooted, query, |p| {
            routing::exists(&site.manifest, &site.functions, p)
        }) {
            Decision::Pass => {}
            Decision::Redirect { status, location } => {
                return Reply::Redirect {
                    site,
                    status,
                    location,
                }
            }
            Decision::Proxy { url } => return Reply::Proxy { site, url },
            Decision::Rewrite {
                path: to,
                query,
                status,
            } => {
                let Ok(rewritten) = parse_decoded_path(&to) else {
                    tracing::debug!(project = %site.project, "rewrite to an invalid path");
                    return Reply::Platform(404);
                };
                target = routing::rewritten_target(&to, query.as_deref());
                not_found_rewrite = status == 404;
                path = rewritten;
            }
        }
        // Header rules match the path the client asked for.
        extra = headers_for(rules, &rooted);
    }
    // Functions first: their routes shadow files of the same path.
    if let Some((route, entry)) = site.functions.find(&path.segments) {
        let authority = match req.uri.authority() {
            Some(a) => a.clone(),
            None => match Authority::try_from(raw_host.unwrap_or(host.as_ref())) {
                Ok(a) => a,
                Err(_) => return Reply::Platform(400),
            },
        };
        return Reply::Function {
            route: route.clone(),
            entry: entry.clone(),
            authority,
            site,
            target,
        };
    }
    if req.method != Method::GET && req.method != Method::HEAD {
        return Reply::Platform(405);
    }
    let cond = Conditionals::from_request(req);
    let plan = match resolve(&site.manifest, &path) {
        Resolution::File { path, entry } => plan_file(path, entry, !not_found_rewrite, &cond),
        Resolution::NotFound {
            page: Some((path, entry)),
        } => plan_file(path, entry, false, &cond),
        Resolution::NotFound { page: None } => return Reply::Platform(404),
    };
    Reply::File { site, plan, extra }
}

/// A redirect: no body (clients follow `Location`; a body would only be
/// shown by clients that do not). A redirecting host has no site (so no
/// deployment header); `request_id` when the request is in its project's
/// request log sample.
async fn send_redirect(
    session: &mut ServerSession,
    site: Option<&Site>,
    status: u16,
    location: &str,
    stamps: &Stamps,
    request_id: Option<RequestId>,
) -> pingora_core::Result<()> {
    let mut h = base_header(status);
    set(&mut h, header::LOCATION, location);
    set(&mut h, header::CONTENT_LENGTH, "0");
    stamps.apply_to(&mut h);
    if let Some(site) = site {
        set_deployment(&mut h, site);
    }
    set_request_id(&mut h, request_id);
    session.write_response_header(Box::new(h)).await?;
    session.write_response_body(Bytes::new(), true).await
}

/// An HTTP-01 key authorization (RFC 8555 §8.3: `application/octet-stream`
/// is what CAs accept; nothing may be cached).
async fn send_challenge(
    session: &mut ServerSession,
    body: String,
    head: bool,
) -> pingora_core::Result<()> {
    let mut h = base_header(200);
    set(&mut h, header::CONTENT_TYPE, "application/octet-stream");
    set(&mut h, header::CONTENT_LENGTH, &body.len().to_string());
    set(&mut h, header::CACHE_CONTROL, "no-store");
    session.write_response_header(Box::new(h)).await?;
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    session.write_response_body(body, true).await
}

#[cfg(test)]
mod tests {
    use pingora_core::protocols::l4::stream::Stream;

    use super::*;
    use crate::state::ServingState;
    use crate::store::blobs::BlobStore;

    /// Every request's future is moved into its task when an h2 stream is
    /// spawned, and again when the task finishes: its size is paid per
    /// request (memmove showed in the 1 KB HTTP/2 profile). The function,
    /// proxy and on-demand arms are boxed so that only what static files
    /// need is inline. Measured in a debug build: 2,480 bytes, where it was
    /// 14,216 with every arm inline.
    #[tokio::test]
    async fn a_request_future_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, _fetches) = BlobStore::open(dir.path()).unwrap();
        let app = EdgeHttp::new(Arc::new(ServingState::default()), blobs);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut session = ServerSession::new_http1(Box::new(Stream::from(server)));
        let mut served = Served::default();
        let size = std::mem::size_of_val(&respond(&app, &mut session, &mut served, None));
        println!("respond future: {size} bytes");
        assert!(size <= 4096, "the request future grew to {size} bytes");
    }
}
