//! HTTP/1.1, HTTP/2 and HTTP/3 serving on pingora's protocol stack (h3 on
//! quinn, as a pingora custom session, so every protocol shares one
//! request handler).
//!
//! We run our own accept loops (plain and TLS) and drive pingora's h1/h2
//! sessions ourselves instead of using pingora's `Server`: that one owns the
//! runtimes, signals and `process::exit`, cannot report the port it bound for
//! `127.0.0.1:0`, and its per-connection loop has no time bound on the h2
//! preface or on a whole h1 request header.

mod acme;
mod certs;
mod dispatch;
mod http3;
mod negotiate;
pub(crate) mod pages;
mod proxy;
mod routing;
mod server;
mod static_files;
mod traffic;
mod transport;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pingora_core::connectors::http::Connector;

use crate::functions::FunctionRuntime;
use crate::metrics::EdgeMetrics;
use crate::state::ServingState;
use crate::store::BlobStore;

pub use certs::SniResolver;

/// The host a request names as sent: h2 carries it in `:authority` (the
/// URI), h1 in `Host`. Pingora has already refused requests where the two
/// disagree.
pub(crate) fn raw_host(req: &pingora_http::RequestHeader) -> Option<&str> {
    match req.uri.authority() {
        Some(a) => Some(a.as_str()),
        None => req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok()),
    }
}
pub use proxy::ProxyLimits;

/// Headers the platform adds to every answer to a site's request over
/// HTTPS, whatever produced it (file, redirect, proxy, function): the
/// host's `Strict-Transport-Security` policy, and `Alt-Svc` on TCP
/// connections when the node serves HTTP/3.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stamps {
    pub hsts: Option<http::HeaderValue>,
    pub alt_svc: Option<http::HeaderValue>,
}

impl Stamps {
    /// Sets them on `h`, replacing a function's or upstream's own.
    pub fn apply(&self, h: &mut http::HeaderMap) {
        if let Some(v) = &self.hsts {
            h.insert(http::header::STRICT_TRANSPORT_SECURITY, v.clone());
        }
        if let Some(v) = &self.alt_svc {
            h.insert(http::header::ALT_SVC, v.clone());
        }
    }

    pub fn apply_to(&self, h: &mut pingora_http::ResponseHeader) {
        for (name, v) in [
            (http::header::STRICT_TRANSPORT_SECURITY, &self.hsts),
            (http::header::ALT_SVC, &self.alt_svc),
        ] {
            if let Some(v) = v {
                let _ = h.insert_header(name, v.clone());
            }
        }
    }
}
pub use http3::serve_http3;
pub use server::{serve_http, serve_https};

/// Bounds on what one client can hold on to. Every field is a protection
/// against a slow or idle peer pinning memory, a task and a permit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections per listener; further clients wait in the backlog.
    pub max_connections: usize,
    /// A whole request header (h1) must arrive within this.
    pub header_read_timeout: Duration,
    /// TLS handshake, and the h2 connection preface after it.
    pub handshake_timeout: Duration,
    /// How long an idle keep-alive h1 connection (plus `header_read_timeout`
    /// for the header of its next request) or an h2 connection with no open
    /// stream is kept.
    pub idle_timeout: Duration,
    /// A single body write may stall this long before the client is dropped.
    pub write_timeout: Duration,
    /// After shutdown, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
    /// Routing rules that proxy to an absolute URL.
    pub proxy: ProxyLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            proxy: ProxyLimits::default(),
        }
    }
}

/// What every connection handler shares: the routing snapshot source, the
/// blob store and, when the node runs functions, their runtime.
pub struct EdgeHttp {
    pub(crate) state: Arc<ServingState>,
    pub(crate) blobs: Arc<BlobStore>,
    pub(crate) limits: Limits,
    pub(crate) functions: Option<Arc<FunctionRuntime>>,
    /// Request counters and the duration histogram (`--metrics`).
    pub(crate) metrics: Arc<EdgeMetrics>,
    /// Traffic analytics, when the node counts them (set once at start).
    pub(crate) analytics: OnceLock<Arc<crate::traffic::Analytics>>,
    /// Where sampled request logs go, when the node ships them (set once
    /// at start; see `crate::requestlog`).
    pub(crate) request_logs: OnceLock<crate::requestlog::RequestLogSink>,
    /// pingora's client for proxy rewrites, with its upstream connection
    /// pool; built on first use (it loads the system's root certificates).
    proxy_connector: OnceLock<Connector>,
    /// `Alt-Svc` for answers over TLS on TCP, once HTTP/3 is served.
    alt_svc: OnceLock<http::HeaderValue>,
}

impl EdgeHttp {
    pub fn new(state: Arc<ServingState>, blobs: Arc<BlobStore>) -> Arc<Self> {
        Self::with_limits(state, blobs, Limits::default())
    }

    pub fn with_limits(
        state: Arc<ServingState>,
        blobs: Arc<BlobStore>,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(EdgeHttp {
            state,
            blobs,
            limits,
            functions: None,
            metrics: Default::default(),
            analytics: OnceLock::new(),
            request_logs: OnceLock::new(),
            proxy_connector: OnceLock::new(),
            alt_svc: OnceLock::new(),
        })
    }

    /// A server that also runs WebAssembly functions. Without a runtime,
    /// requests routed to a function get a 503.
    pub fn with_functions(
        state: Arc<ServingState>,
        blobs: Arc<BlobStore>,
        limits: Limits,
        functions: Arc<FunctionRuntime>,
    ) -> Arc<Self> {
        Arc::new(EdgeHttp {
            state,
            blobs,
            limits,
            functions: Some(functions),
            metrics: Default::default(),
            analytics: OnceLock::new(),
            request_logs: OnceLock::new(),
            proxy_connector: OnceLock::new(),
            alt_svc: OnceLock::new(),
        })
    }

    /// Counts every request a site answers into `analytics`.
    pub fn set_analytics(&self, analytics: Arc<crate::traffic::Analytics>) {
        let _ = self.analytics.set(analytics);
    }

    /// Sends the sampled requests of projects with a request log drain
    /// to `sink`.
    pub fn set_request_logs(&self, sink: crate::requestlog::RequestLogSink) {
        let _ = self.request_logs.set(sink);
    }

    /// Advertises HTTP/3 on UDP `port` (the HTTPS port, normally) in every
    /// answer over TLS on TCP, for a day, as Cloudflare and Google do.
    pub fn advertise_http3(&self, port: u16) {
        let value = format!("h3=\":{port}\"; ma=86400");
        let _ = self
            .alt_svc
            .set(http::HeaderValue::from_str(&value).expect("a valid header value"));
    }

    fn proxy_connector(&self) -> &Connector {
        self.proxy_connector.get_or_init(|| Connector::new(None))
    }

    pub fn functions(&self) -> Option<&Arc<FunctionRuntime>> {
        self.functions.as_ref()
    }

    /// What the requests served here count into; the node serves it on
    /// `--metrics` and fills in the rest of its state.
    pub fn metrics(&self) -> &Arc<EdgeMetrics> {
        &self.metrics
    }
}
