//! Accept loops, TLS, the per-connection h1/h2 drivers and graceful
//! shutdown.
//!
//! Pingora supplies the protocol sessions (h1 parsing and keep-alive, the h2
//! codec) and the rustls stream; the loops are ours so that every stage a
//! client controls has a deadline: TLS handshake, h2 preface, the whole h1
//! request header, idle keep-alive, each body write.

use std::io;
use std::sync::Arc;

use http::header;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::http::v2::server::{
    default_h2_options, handshake, H2Accept, HttpSession,
};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::{Digest, Stream, ALPN};
use pingora_core::InvalidHTTPHeader;
use pingora_http::ResponseHeader;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, Duration, Instant};

use super::certs::SniResolver;
use super::transport::{Transport, ZeroCopy};
use super::{dispatch, pages, EdgeHttp};
use crate::metrics::Proto;

/// Serves plain HTTP/1.x until `shutdown` becomes true (or its sender is
/// dropped), then stops accepting and gives in-flight requests
/// `Limits::shutdown_grace` to finish. Accept errors (e.g. out of file
/// descriptors) are logged and retried, never fatal.
pub async fn serve_http(
    listener: TcpListener,
    app: Arc<EdgeHttp>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    serve(listener, app, shutdown, None).await
}

/// Serves HTTPS (h2 and http/1.1 by ALPN). The certificate is chosen per
/// handshake by SNI from the current routing; no SNI or no matching
/// certificate fails the handshake.
pub async fn serve_https(
    listener: TcpListener,
    app: Arc<EdgeHttp>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let acceptor = Arc::new(tls_acceptor(&app)?);
    serve(listener, app, shutdown, Some(acceptor)).await
}

fn tls_acceptor(app: &EdgeHttp) -> io::Result<Acceptor> {
    // An explicit provider: nothing here depends on (or installs) the
    // process-wide default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(app.state.clone())));
    // `acme-tls/1` last: rustls picks by our order, and only a CA's
    // validation handshake offers it alone (see `certs`).
    config.alpn_protocols = vec![
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
        protocol::acme::ACME_TLS_ALPN.to_vec(),
    ];
    Ok(Acceptor::from_server_config(Arc::new(config)))
}

/// Body bytes one h2 stream may queue ahead of the client's window.
const H2_SEND_BUFFER: usize = 1 << 20;

/// Malformed h2 requests tolerated per connection (pingora's own figure).
const MAX_REJECTED_H2_STREAMS: usize = 32;

/// Runs one step a client controls (a handshake, a preface, a header)
/// within `limit`; its failure or timeout is logged as `what` at debug
/// level (clients fail these all the time) and gives `None`.
pub(super) async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match timeout(limit, step).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "{what} failed");
            None
        }
        Err(_) => {
            tracing::debug!("{what} timed out");
            None
        }
    }
}

/// Resolves once shutdown is requested. A dropped sender counts as a
/// request: nobody is left who could ask later.
pub(super) async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn serve(
    listener: TcpListener,
    app: Arc<EdgeHttp>,
    mut shutdown: watch::Receiver<bool>,
    tls: Option<Arc<Acceptor>>,
) -> io::Result<()> {
    let permits = Arc::new(Semaphore::new(app.limits.max_connections));
    let conn_shutdown = shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown_requested(&mut shutdown) => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "connection task panicked");
                    }
                }
            }
            accepted = accept(&listener, &permits) => match accepted {
                Ok((tcp, permit)) => {
                    conns.spawn(connection(app.clone(), tcp, tls.clone(), conn_shutdown.clone(), permit));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    // Typically EMFILE: give connections time to close
                    // instead of spinning on the error.
                    sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let open = conns.len();
    tracing::info!(open, "listener closed; draining connections");
    let drained = timeout(app.limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            "shutdown grace elapsed; closing remaining connections"
        );
        conns.shutdown().await;
    }
    Ok(())
}

/// Waits for a connection slot first, so at the limit new clients queue in
/// the kernel backlog instead of costing us a task each.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> io::Result<(TcpStream, OwnedSemaphorePermit)> {
    let permit = permits
        .clone()
        .acquire_owned()
        .await
        .expect("semaphore is never closed");
    let (tcp, _peer) = listener.accept().await?;
    Ok((tcp, permit))
}

async fn connection(
    app: Arc<EdgeHttp>,
    tcp: TcpStream,
    tls: Option<Arc<Acceptor>>,
    shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    // Responses are written as header then body; without this the body
    // would wait on the header's ACK (Nagle + delayed ACK).
    let _ = tcp.set_nodelay(true);
    let over_tls = tls.is_some();
    // Plain HTTP sends file bodies with `sendfile`; TLS encrypts in user
    // space, so there it would buy nothing.
    let zero_copy = (!over_tls).then(|| Arc::new(ZeroCopy::default()));
    let transport = Transport::new(tcp, zero_copy.clone());
    let stream: Stream = match tls {
        None => Box::new(transport),
        Some(acceptor) => {
            let handshake = within(
                app.limits.handshake_timeout,
                "TLS handshake",
                acceptor.tls_handshake(transport),
            )
            .await;
            app.metrics.tls_handshake(handshake.is_some());
            match handshake {
                Some(s) => Box::new(s),
                None => return,
            }
        }
    };
    if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
        serve_h2(app, stream, shutdown).await
    } else {
        serve_h1(app, stream, shutdown, zero_copy).await
    }
}

/// `zero_copy` is there exactly when the connection is plain TCP.
async fn serve_h1(
    app: Arc<EdgeHttp>,
    mut stream: Stream,
    shutdown: watch::Receiver<bool>,
    zero_copy: Option<Arc<ZeroCopy>>,
) {
    let tls = zero_copy.is_none();
    let limits = &app.limits;
    let idle_secs = limits.idle_timeout.as_secs().max(1);
    // One timer and one shutdown subscription per connection, not per
    // request: moving a registered timer's deadline later is an atomic
    // update, where a fresh timer per request takes the timer wheel's lock
    // twice (insert, cancel); the same holds for the shutdown waiter.
    let header_deadline = sleep(limits.header_read_timeout);
    tokio::pin!(header_deadline);
    let mut stop_rx = shutdown.clone();
    let stop = shutdown_requested(&mut stop_rx);
    tokio::pin!(stop);
    let mut reused = false;
    loop {
        let mut session = ServerSession::new_http1(stream);
        session.set_write_timeout(Some(limits.write_timeout));
        let wait = if reused {
            // The timer bounds the idle wait and the header after it
            // (pingora's own keep-alive timer is off: `Some(0)` means no
            // timeout to it), and shutdown ends the wait.
            session.set_keepalive(Some(0));
            limits.idle_timeout + limits.header_read_timeout
        } else {
            session.set_keepalive(None);
            limits.header_read_timeout
        };
        header_deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + wait);
        let read = tokio::select! {
            biased;
            r = session.read_request() => Ok(r),
            _ = &mut header_deadline => Err(()),
            _ = &mut stop, if reused => return,
        };
        match read {
            Ok(Ok(true)) => {}
            // Client closed, or an idle keep-alive connection timed out.
            Ok(Ok(false)) => return,
            Ok(Err(e)) => {
                if e.etype() == &InvalidHTTPHeader {
                    bad_request(&mut session).await;
                }
                tracing::debug!(error = %e, "reading request failed");
                return;
            }
            Err(()) => {
                tracing::debug!("request header timed out");
                return;
            }
        }
        // Parsing set keep-alive from the request (off for HTTP/1.0 without
        // `Connection: keep-alive`, or with `Connection: close`). Only narrow
        // it: `set_keepalive(Some(_))` would switch it back on for HTTP/1.0,
        // which then waits for a close that never comes.
        let keep = session.get_keepalive().is_some() && !*shutdown.borrow();
        session.set_keepalive(keep.then_some(idle_secs));
        let started = Instant::now();
        let mut served = dispatch::Served::default();
        let responded =
            dispatch::respond(&app, &mut session, &mut served, zero_copy.as_deref()).await;
        count_request(&app, &session, started, tls);
        super::traffic::count(&app, &session, started, &served);
        if let Err(e) = responded {
            tracing::debug!(error = %e, "response aborted");
            return;
        }
        match session.finish().await {
            Ok(Some(reusable)) => {
                // Pipelining is off, so there is never a prefix to carry.
                stream = reusable.into_parts().0;
                reused = true;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "finishing response failed");
                return;
            }
        }
    }
}

/// The request's line in the metrics: its status class, body bytes and
/// time from its head read to its response sent.
pub(super) fn count_request(app: &EdgeHttp, session: &ServerSession, started: Instant, tls: bool) {
    let status = session.response_written().map_or(0, |h| h.status.as_u16());
    let proto = if session.is_http2() {
        Proto::H2
    } else if session.is_custom() {
        // The only custom sessions here are HTTP/3's.
        Proto::H3
    } else {
        Proto::H1
    };
    app.metrics.request(
        status,
        session.body_bytes_sent() as u64,
        started.elapsed(),
        proto,
        tls,
    );
}

/// Best effort: a client that sent garbage gets a 400 before the close.
async fn bad_request(session: &mut ServerSession) {
    let body = pages::page(400);
    let Ok(mut h) = ResponseHeader::build(400, Some(4)) else {
        return;
    };
    let _ = h.insert_header(header::SERVER, "outpost");
    let _ = h.insert_header(header::CONTENT_TYPE, "text/html; charset=utf-8");
    let _ = h.insert_header(header::CONTENT_LENGTH, body.len().to_string());
    let _ = h.insert_header(header::CONNECTION, "close");
    session.set_keepalive(None);
    let _ = timeout(Duration::from_secs(1), async {
        session.write_response_header(Box::new(h)).await?;
        session.write_response_body(body, true).await
    })
    .await;
}

async fn serve_h2(app: Arc<EdgeHttp>, stream: Stream, mut shutdown: watch::Receiver<bool>) {
    let limits = &app.limits;
    let digest = Arc::new(Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    });
    let mut options = default_h2_options();
    // A stream hands h2 up to this much of its body before waiting for
    // capacity (h2's default is 400 KiB): a 1 MB file then goes over in
    // about one step instead of three wake-ups of the stream's task. The
    // bodies are `Bytes` of the memory cache, so the buffer holds
    // references, not copies. (`bench static`, HTTP/2: 100 KB 1.08 → 1.22
    // and 1 MB 1.06 → 1.09 of nginx in one A/B pair; within the noise of
    // this VM, never worse.)
    options.max_send_buffer_size(H2_SEND_BUFFER);
    let Some(mut conn) = within(
        limits.handshake_timeout,
        "h2 preface",
        handshake(stream, Some(options)),
    )
    .await
    else {
        return;
    };
    // Streams run as tasks; this loop keeps polling the connection, which is
    // what actually moves their frames. Dropping the set (connection gone)
    // cancels whatever is left.
    let mut streams = JoinSet::new();
    let mut draining = false;
    let mut rejected = 0;
    loop {
        let idle = streams.is_empty();
        tokio::select! {
            biased;
            _ = shutdown_requested(&mut shutdown), if !draining => {
                // GOAWAY: no new streams; the codec closes the connection
                // once the open ones finish, and accept() then yields None.
                conn.graceful_shutdown();
                draining = true;
            }
            Some(_) = streams.join_next(), if !idle => {}
            accepted = HttpSession::from_h2_conn(&mut conn, digest.clone()) => match accepted {
                Ok(Some(H2Accept::Session(h2))) => {
                    let app = app.clone();
                    streams.spawn(async move {
                        let mut session = ServerSession::new_http2(h2);
                        session.set_write_timeout(Some(app.limits.write_timeout));
                        let started = Instant::now();
                        let mut served = dispatch::Served::default();
                        let responded =
                            dispatch::respond(&app, &mut session, &mut served, None).await;
                        // h2 is only ever negotiated by ALPN, so over TLS.
                        count_request(&app, &session, started, true);
                        super::traffic::count(&app, &session, started, &served);
                        match responded {
                            Ok(()) => {
                                let _ = session.finish().await;
                            }
                            // Dropped unfinished: the client sees a reset.
                            Err(e) => tracing::debug!(error = %e, "h2 response aborted"),
                        }
                    });
                }
                // Pingora already answered or reset that stream. Its own
                // loop caps these per connection; `from_h2_conn` does not,
                // so the cap is kept here.
                Ok(Some(H2Accept::Rejected)) => {
                    rejected += 1;
                    if rejected >= MAX_REJECTED_H2_STREAMS {
                        tracing::debug!("too many malformed h2 requests; closing");
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "h2 connection ended");
                    return;
                }
            },
            _ = sleep(limits.idle_timeout), if idle => return,
        }
    }
}
