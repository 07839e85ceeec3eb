//! HTTP/3: QUIC (quinn) on the HTTPS port over UDP, HTTP/3 framing by the
//! `h3` crate, and every request answered by the same handler as HTTP/1.1
//! and HTTP/2 ([`dispatch::respond`]): each request stream is wrapped in
//! [`H3Session`], a pingora *custom* session, so routing, static files,
//! functions, proxying, certificates (the same SNI resolver), analytics and
//! metrics need no HTTP/3 branch of their own.
//!
//! Bounds, as on TCP: open connections (`max_connections`, more are
//! refused), the QUIC handshake (`handshake_timeout`), a request's header
//! section (`header_read_timeout`, and 64 KiB of it), idle connections
//! (`idle_timeout`, as QUIC's idle timeout), each body write
//! (`write_timeout`), streams per connection (100 at a time), and the
//! shutdown grace. No 0-RTT: replayable requests are not worth its saving.

use std::io;
use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use futures::Stream;
use h3::error::Code;
use h3::server::{RequestResolver, RequestStream};
use http::HeaderMap;
use pingora_core::protocols::http::custom::server::Session as CustomSession;
use pingora_core::protocols::http::custom::CustomMessageWrite;
use pingora_core::protocols::http::{HttpTask, ServerSession};
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::protocols::tls::SslDigest;
use pingora_core::protocols::Digest;
use pingora_core::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};

use super::certs::SniResolver;
use super::{dispatch, server, EdgeHttp};

type Conn = h3_quinn::Connection;
type Stream3 = RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// Request streams a client may have open on one connection at a time.
const MAX_STREAMS: u32 = 100;
/// The largest request header section accepted (QPACK-decoded).
const MAX_HEADER_SECTION: u64 = 64 * 1024;

/// Serves HTTP/3 on `socket` until `shutdown` becomes true (or its sender
/// is dropped), then sends GOAWAY on every connection and gives in-flight
/// requests `Limits::shutdown_grace`.
pub async fn serve_http3(
    socket: UdpSocket,
    app: Arc<EdgeHttp>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server_config(&app)?),
        socket,
        Arc::new(quinn::TokioRuntime),
    )?;
    let permits = Arc::new(Semaphore::new(app.limits.max_connections));
    let conn_shutdown = shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = server::shutdown_requested(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        conns.spawn(connection(app.clone(), incoming, conn_shutdown.clone(), permit));
                    }
                    // At the limit a new client is told so at once, instead
                    // of timing out on a handshake nobody will finish.
                    Err(_) => incoming.refuse(),
                }
            }
        }
    }
    // New connections are refused from here; open ones got GOAWAY from
    // their own task and close once their requests are done.
    endpoint.set_server_config(None);
    let drained = timeout(app.limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.shutdown().await;
    }
    endpoint.close(
        Code::H3_NO_ERROR.value().try_into().unwrap_or_default(),
        b"",
    );
    Ok(())
}

fn server_config(app: &EdgeHttp) -> io::Result<quinn::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(app.state.clone())));
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto =
        quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(io::Error::other)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(MAX_STREAMS.into());
    // The client's control stream and its two QPACK streams, and spare.
    transport.max_concurrent_uni_streams(8u32.into());
    transport.max_idle_timeout(Some(
        app.limits
            .idle_timeout
            .try_into()
            .map_err(io::Error::other)?,
    ));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

async fn connection(
    app: Arc<EdgeHttp>,
    incoming: quinn::Incoming,
    mut shutdown: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "QUIC connection refused");
            return;
        }
    };
    let Some(conn) =
        server::within(app.limits.handshake_timeout, "QUIC handshake", connecting).await
    else {
        return;
    };
    let peer = conn.remote_address();
    let mut builder = h3::server::builder();
    builder.max_field_section_size(MAX_HEADER_SECTION);
    let built = builder.build::<Conn, Bytes>(h3_quinn::Connection::new(conn));
    let Some(mut h3) = server::within(app.limits.handshake_timeout, "HTTP/3 setup", built).await
    else {
        return;
    };
    let mut requests = JoinSet::new();
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            _ = server::shutdown_requested(&mut shutdown), if !draining => {
                // GOAWAY: the client opens no new requests here; accept()
                // ends once the open ones are done.
                draining = true;
                if h3.shutdown(0).await.is_err() {
                    break;
                }
            }
            Some(_) = requests.join_next(), if !requests.is_empty() => {}
            accepted = h3.accept() => match accepted {
                Ok(Some(resolver)) => {
                    requests.spawn(request(app.clone(), resolver, peer));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "HTTP/3 connection ended");
                    break;
                }
            },
        }
    }
    // Requests still running finish (each is bounded by its own timeouts).
    while requests.join_next().await.is_some() {}
}

async fn request(
    app: Arc<EdgeHttp>,
    resolver: RequestResolver<Conn, Bytes>,
    peer: std::net::SocketAddr,
) {
    let Some((req, stream)) = server::within(
        app.limits.header_read_timeout,
        "HTTP/3 request header",
        resolver.resolve_request(),
    )
    .await
    else {
        return;
    };
    let (parts, ()) = req.into_parts();
    let mut session = ServerSession::new_custom(Box::new(H3Session::new(
        RequestHeader::from(parts),
        stream,
        peer,
    )));
    session.set_write_timeout(Some(app.limits.write_timeout));
    let started = Instant::now();
    let mut served = dispatch::Served::default();
    let responded = dispatch::respond(&app, &mut session, &mut served, None).await;
    server::count_request(&app, &session, started, true);
    super::traffic::count(&app, &session, started, &served);
    match responded {
        Ok(()) => {
            if let Err(e) = session.finish().await {
                tracing::debug!(error = %e, "finishing HTTP/3 response failed");
            }
        }
        // Dropped unfinished: `H3Session`'s drop resets the stream, so the
        // client cannot take a cut-off body for a whole one.
        Err(e) => tracing::debug!(error = %e, "HTTP/3 response aborted"),
    }
}

/// One HTTP/3 request stream as a pingora server session.
pub struct H3Session {
    req: RequestHeader,
    /// In a mutex only so the session is `Sync`, as pingora asks; every use
    /// has `&mut self` and goes through `get_mut`, which never locks.
    stream: Mutex<Stream3>,
    response: Option<Box<ResponseHeader>>,
    /// The response was ended cleanly (FIN sent).
    finished: bool,
    request_body_done: bool,
    body_sent: usize,
    body_read: usize,
    write_timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    digest: Digest,
    client: SocketAddr,
}

impl H3Session {
    fn new(req: RequestHeader, stream: Stream3, peer: std::net::SocketAddr) -> Self {
        H3Session {
            req,
            stream: Mutex::new(stream),
            response: None,
            finished: false,
            request_body_done: false,
            body_sent: 0,
            body_read: 0,
            write_timeout: None,
            read_timeout: None,
            // What the handler asks of a digest: that the request came
            // over TLS (QUIC is always TLS 1.3).
            digest: Digest {
                ssl_digest: Some(Arc::new(SslDigest::new(
                    "QUIC",
                    "TLSv1.3",
                    None,
                    None,
                    Vec::new(),
                ))),
                timing_digest: Vec::new(),
                proxy_digest: None,
                socket_digest: None,
            },
            client: SocketAddr::Inet(peer),
        }
    }

    fn stream(&mut self) -> &mut Stream3 {
        self.stream.get_mut().unwrap_or_else(|p| p.into_inner())
    }

    async fn with_write_timeout<T>(
        limit: Option<Duration>,
        what: &'static str,
        f: impl std::future::Future<Output = std::result::Result<T, h3::error::StreamError>>,
    ) -> Result<T> {
        let done = match limit {
            Some(t) => match timeout(t, f).await {
                Ok(r) => r,
                Err(_) => return Error::e_explain(ErrorType::WriteTimedout, what),
            },
            None => f.await,
        };
        done.map_err(|e| Error::because(ErrorType::WriteError, what, e))
    }

    async fn end(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let limit = self.write_timeout;
        Self::with_write_timeout(limit, "finishing HTTP/3 response", self.stream().finish())
            .await?;
        self.finished = true;
        Ok(())
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.request_body_done {
            return Ok(None);
        }
        let limit = self.read_timeout;
        let read = async {
            match self.stream().recv_data().await {
                Ok(Some(mut buf)) => Ok(Some(buf.copy_to_bytes(buf.remaining()))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let read = match limit {
            Some(t) => match timeout(t, read).await {
                Ok(r) => r,
                Err(_) => {
                    return Error::e_explain(ErrorType::ReadTimedout, "reading HTTP/3 request body")
                }
            },
            None => read.await,
        };
        match read {
            Ok(Some(b)) => {
                self.body_read += b.len();
                Ok(Some(b))
            }
            Ok(None) => {
                self.request_body_done = true;
                Ok(None)
            }
            Err(e) => Err(Error::because(
                ErrorType::ReadError,
                "reading HTTP/3 request body",
                e,
            )),
        }
    }
}

impl Drop for H3Session {
    fn drop(&mut self) {
        if !self.finished {
            // Reset, not FIN: an unfinished response must not look whole.
            self.stream().stop_stream(Code::H3_INTERNAL_ERROR);
        }
    }
}

/// Response headers HTTP/3 forbids (RFC 9114 §4.2): they describe an
/// HTTP/1.1 connection, and a response carrying one is malformed.
const CONNECTION_HEADERS: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

fn response_of(resp: &ResponseHeader) -> http::Response<()> {
    let mut out = http::Response::new(());
    *out.status_mut() = resp.status;
    let headers = out.headers_mut();
    headers.reserve(resp.headers.len());
    for (name, value) in resp.headers.iter() {
        if !CONNECTION_HEADERS.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    out
}

#[async_trait]
impl CustomSession for H3Session {
    fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        self.read_body().await
    }

    async fn drain_request_body(&mut self) -> Result<()> {
        while self.read_body().await?.is_some() {}
        Ok(())
    }

    async fn write_response_header(&mut self, resp: Box<ResponseHeader>, end: bool) -> Result<()> {
        if self.response.is_some() {
            // As pingora's own sessions: one final response per request.
            return Ok(());
        }
        let head = response_of(&resp);
        let limit = self.write_timeout;
        Self::with_write_timeout(
            limit,
            "writing HTTP/3 response header",
            self.stream().send_response(head),
        )
        .await?;
        self.response = Some(resp);
        if end {
            self.end().await?;
        }
        Ok(())
    }

    async fn write_response_header_ref(&mut self, resp: &ResponseHeader, end: bool) -> Result<()> {
        self.write_response_header(Box::new(resp.clone()), end)
            .await
    }

    async fn write_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        if !data.is_empty() {
            let len = data.len();
            let limit = self.write_timeout;
            Self::with_write_timeout(
                limit,
                "writing HTTP/3 response body",
                self.stream().send_data(data),
            )
            .await?;
            self.body_sent += len;
        }
        if end {
            self.end().await?;
        }
        Ok(())
    }

    async fn write_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        let limit = self.write_timeout;
        Self::with_write_timeout(
            limit,
            "writing HTTP/3 trailers",
            self.stream().send_trailers(trailers),
        )
        .await?;
        self.end().await
    }

    async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut ended = false;
        for task in tasks {
            match task {
                HttpTask::Header(h, end) => {
                    self.write_response_header(h, end).await?;
                    ended |= end;
                }
                HttpTask::Body(data, end) => {
                    self.write_body(data.unwrap_or_default(), end).await?;
                    ended |= end;
                }
                HttpTask::Trailer(t) => {
                    self.write_trailers(t.map(|t| *t).unwrap_or_default())
                        .await?;
                    ended = true;
                }
                HttpTask::Done => {
                    self.end().await?;
                    ended = true;
                }
                HttpTask::Failed(e) => return Err(e),
                other => {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        format!("HTTP/3 cannot carry {other:?}"),
                    )
                }
            }
        }
        Ok(ended)
    }

    fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    fn get_read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    fn get_write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    fn set_total_drain_timeout(&mut self, _timeout: Option<Duration>) {}

    fn get_total_drain_timeout(&self) -> Option<Duration> {
        None
    }

    fn request_summary(&self) -> String {
        format!("{} {}, HTTP/3", self.req.method, self.req.uri)
    }

    fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    async fn shutdown(&mut self, _code: u32, _ctx: &str) {
        if !self.finished {
            self.stream().stop_stream(Code::H3_INTERNAL_ERROR);
            // Reset: nothing more goes out, and drop must not reset again.
            self.finished = true;
        }
    }

    fn is_body_done(&mut self) -> bool {
        self.request_body_done
    }

    async fn finish(&mut self) -> Result<()> {
        if self.response.is_none() {
            return Error::e_explain(
                ErrorType::InternalError,
                "HTTP/3 request finished without a response",
            );
        }
        self.end().await
    }

    fn is_body_empty(&mut self) -> bool {
        // HTTP/3 requests declare no body framing up front; whether one
        // is empty is known only once it has been read.
        self.request_body_done && self.body_read == 0
    }

    async fn read_body_or_idle(&mut self, _no_body_expected: bool) -> Result<Option<Bytes>> {
        self.read_body().await
    }

    fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    fn digest(&self) -> Option<&Digest> {
        Some(&self.digest)
    }

    fn digest_mut(&mut self) -> Option<&mut Digest> {
        Some(&mut self.digest)
    }

    fn client_addr(&self) -> Option<&SocketAddr> {
        Some(&self.client)
    }

    fn server_addr(&self) -> Option<&SocketAddr> {
        None
    }

    fn pseudo_raw_h1_request_header(&self) -> Bytes {
        Bytes::new()
    }

    fn enable_retry_buffering(&mut self) {}

    fn retry_buffer_truncated(&self) -> bool {
        false
    }

    fn get_retry_buffer(&self) -> Option<Bytes> {
        None
    }

    async fn finish_custom(&mut self) -> Result<()> {
        Ok(())
    }

    fn take_custom_message_reader(
        &mut self,
    ) -> Option<Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>> {
        None
    }

    fn restore_custom_message_reader(
        &mut self,
        _reader: Box<dyn Stream<Item = Result<Bytes>> + Unpin + Send + Sync + 'static>,
    ) -> Result<()> {
        Error::e_explain(ErrorType::InternalError, "HTTP/3 has no custom messages")
    }

    fn take_custom_message_writer(&mut self) -> Option<Box<dyn CustomMessageWrite>> {
        None
    }

    fn restore_custom_message_writer(
        &mut self,
        _writer: Box<dyn CustomMessageWrite>,
    ) -> Result<()> {
        Error::e_explain(ErrorType::InternalError, "HTTP/3 has no custom messages")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header;

    #[test]
    fn connection_headers_never_reach_an_http3_response() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (name, value) in [
            ("content-type", "text/html"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-connection", "close"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
        ] {
            resp.append_header(name, value).unwrap();
        }
        let out = response_of(&resp);
        assert_eq!(out.status(), 200);
        let names: Vec<&str> = out.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "set-cookie"]);
        assert_eq!(out.headers().get_all(header::SET_COOKIE).iter().count(), 2);
    }
}
