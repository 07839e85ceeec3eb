//! What a fresh instance is given: its store (WASI context with the
//! project's env and stdio as log lines, limits, the epoch callback) and
//! the request as it sees it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::uri::{PathAndQuery, Scheme as UriScheme};
use pingora_core::protocols::http::ServerSession;
use tokio::sync::mpsc;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpCtx;

use super::super::host::{Host, Limiter, Signals};
use super::super::logs::{LogSink, LogStream, RequestLogMeta};
use super::super::outbound::{Hooks, OutboundPolicy};
use super::super::{Inner, MAX_RESOURCES, TABLE_ELEMENTS};
use super::body::{Pump, RequestBody};
use super::head::is_hop_by_hop;
use super::{is_tls, Call};

/// Request-body chunks buffered between the client and the instance.
const BODY_CHANNEL: usize = 2;

/// The request as the instance sees it: method, the original path and
/// query, headers (less hop-by-hop ones), and the body as a stream.
pub(super) fn incoming_request(
    session: &mut ServerSession,
    call: &Call<'_>,
    limit: u64,
    signals: &Arc<Signals>,
) -> Option<(http::Request<RequestBody>, Pump)> {
    let empty = session.is_body_empty();
    let scheme = if is_tls(session) {
        UriScheme::HTTPS
    } else {
        UriScheme::HTTP
    };
    let req = session.req_header();
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(scheme);
    uri.authority = Some(call.authority.clone());
    uri.path_and_query = Some(
        req.uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    let uri = http::Uri::from_parts(uri).ok()?;
    // Copied: pingora offers no way to take them out of its request.
    let mut headers = http::HeaderMap::with_capacity(req.headers.len());
    for (name, value) in req.headers.iter() {
        if !is_hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    signals.body_complete.store(empty, Ordering::Release);
    // An empty body (most GETs) needs no channel: the instance reads its
    // end at once.
    let (tx, rx) = if empty {
        (None, None)
    } else {
        let (tx, rx) = mpsc::channel(BODY_CHANNEL);
        (Some(tx), Some(rx))
    };
    let pump = Pump {
        tx,
        pending: None,
        eof: empty,
        signals: signals.clone(),
        received: 0,
        limit,
    };
    let body = RequestBody {
        rx,
        signals: signals.clone(),
        done: empty,
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Some((request, pump))
}

pub(super) fn new_store(
    inner: &Arc<Inner>,
    call: &Call<'_>,
    meta: Arc<RequestLogMeta>,
    signals: Arc<Signals>,
    deadline: Instant,
    outbound: Arc<tokio::sync::Semaphore>,
) -> Store<Host> {
    let config = &inner.config;
    let mut wasi = WasiCtxBuilder::new();
    // The project's variables for this host's environment, and nothing of
    // the node's own environment. No arguments, no preopened directories.
    for (k, v) in call.site.env.iter().flat_map(|e| e.iter()) {
        wasi.env(k, v);
    }
    let max_line = config.max_log_line_bytes;
    wasi.stdout(LogSink::new(LogStream::Stdout, meta.clone(), max_line))
        .stderr(LogSink::new(LogStream::Stderr, meta, max_line))
        // Raw sockets stay closed: outbound traffic goes through wasi:http,
        // where the allow-list and address checks apply.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let policy = (!call.site.outbound.is_empty()).then(|| OutboundPolicy {
        allowed: call.site.outbound.clone(),
        allow_private: config.allow_private_outbound,
        connect_timeout: config.outbound_connect_timeout,
        tls: inner.tls.clone(),
        connections: outbound,
    });
    let memory_bytes = call.entry.memory_bytes.min(config.max_memory_bytes);
    let host = Host {
        table,
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        hooks: Hooks { policy },
        limiter: Limiter {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            table_elements: TABLE_ELEMENTS,
            signals: signals.clone(),
        },
        _ticking: inner.ticker.start(),
    };
    let mut store = Store::new(&inner.engine, host);
    store.limiter(|h| &mut h.limiter);
    // Every tick a running instance yields to the scheduler (a busy loop
    // cannot starve other requests on this thread); past the deadline it
    // traps. (Letting the first tick pass, so fewer instances move to the
    // executor, was measured: no gain under load, and at one connection
    // 20% fewer requests per second on both the edge and the bare host,
    // with stalls of milliseconds.)
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            // tokio's own yield: the worker also polls the I/O driver
            // before it comes back, so spinning instances cannot starve
            // the node's sockets.
            signals.yields.fetch_add(1, Ordering::Relaxed);
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
    store
}
