//! A real HTTP/3 client for tests (and `bench`): QUIC through quinn,
//! rustls with the ring provider only, TLS 1.3, ALPN `h3`, trusting only
//! the roots given as PEM.
//!
//! - [`get`]: one request on a connection of its own.
//! - [`H3Client`]: one QUIC connection carrying any number of requests
//!   (in turn or at once), so a test can check that they share it
//!   ([`H3Client::stable_id`], or the server's own count).
//!
//! Every wait is bounded ([`TIMEOUT`] unless given): a server that never
//! answers fails the test with an error naming the address and the step,
//! instead of hanging it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};

use crate::{Error, Result};

/// How long connecting, and each request (through its last body byte),
/// may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Response bodies larger than this are an error (tests stay bounded).
const MAX_BODY: usize = 256 << 20;

/// HTTP/3's "no error" code, for closing a connection we are done with.
const H3_NO_ERROR: u32 = 0x100;

/// The h3 request sender of an [`H3Client`]'s connection.
pub type SendRequest = ::h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// A whole response.
#[derive(Debug, Clone)]
pub struct H3Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl H3Response {
    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client config for HTTP/3: ring, TLS 1.3 only, ALPN `h3`, trusting
/// only the certificates in `roots_pem` (each a PEM text of one or more).
pub fn client_config(roots_pem: &[&str]) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for pem in roots_pem {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
            let c = c.map_err(|e| Error::new(format!("reading a root certificate: {e}")))?;
            roots
                .add(c)
                .map_err(|e| Error::new(format!("adding a root certificate: {e}")))?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| Error::new(format!("TLS 1.3 with ring: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h3".to_vec()];
    Ok(config)
}

/// GET `path` of `host` from the HTTP/3 server at `addr` (UDP), trusting
/// `extra_roots_pem`, with `headers` added; one connection, closed after.
pub async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    extra_roots_pem: &[&str],
    headers: &[(&str, &str)],
) -> Result<H3Response> {
    let client = H3Client::connect(addr, host, extra_roots_pem).await?;
    let r = client.get(path, headers).await;
    client.close().await;
    r
}

/// One HTTP/3 connection; requests on it share it. Dropping the client
/// closes the connection (HTTP/3 "no error").
pub struct H3Client {
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    send: SendRequest,
    /// Drives the h3 connection (control stream, SETTINGS, GOAWAY).
    driver: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
    /// `:authority` of every request.
    host: String,
    timeout: Duration,
}

impl Drop for H3Client {
    fn drop(&mut self) {
        self.conn.close(H3_NO_ERROR.into(), b"");
        self.driver.abort();
    }
}

impl H3Client {
    /// Connects to `addr` (UDP) as `host` (SNI and `:authority`), trusting
    /// only `extra_roots_pem`; every wait bounded by [`TIMEOUT`].
    pub async fn connect(
        addr: SocketAddr,
        host: &str,
        extra_roots_pem: &[&str],
    ) -> Result<H3Client> {
        Self::connect_with(addr, host, &client_config(extra_roots_pem)?, TIMEOUT).await
    }

    /// [`connect`](Self::connect) with a TLS config of the caller's (its
    /// ALPN is replaced by `h3`; QUIC negotiates TLS 1.3 whatever else it
    /// allows) and a bound of `timeout` on connecting and on each request.
    pub async fn connect_with(
        addr: SocketAddr,
        host: &str,
        tls: &rustls::ClientConfig,
        timeout: Duration,
    ) -> Result<H3Client> {
        let what = format!("HTTP/3 to {addr} ({host})");
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::new(format!("{what}: QUIC client config: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // A client held across a test's slow steps keeps its connection.
        transport.keep_alive_interval(Some(Duration::from_secs(5)));
        config.transport_config(Arc::new(transport));
        let endpoint = quinn::Endpoint::client(local_for(addr))
            .map_err(|e| Error::new(format!("{what}: UDP socket: {e}")))?;
        let connecting = endpoint
            .connect_with(config, addr, server_name(host))
            .map_err(|e| Error::new(format!("{what}: {e}")))?;
        let handshake = async {
            let conn = connecting
                .await
                .map_err(|e| Error::new(format!("{what}: QUIC handshake: {e}")))?;
            let alpn = conn
                .handshake_data()
                .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|d| d.protocol);
            if alpn.as_deref() != Some(b"h3") {
                return Err(Error::new(format!(
                    "{what}: the server did not agree on h3"
                )));
            }
            let (mut h3conn, send) = ::h3::client::new(h3_quinn::Connection::new(conn.clone()))
                .await
                .map_err(|e| Error::new(format!("{what}: HTTP/3 setup: {e}")))?;
            let driver = tokio::spawn(async move {
                let _ = h3conn.wait_idle().await;
            });
            Ok((conn, send, driver))
        };
        let (conn, send, driver) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| {
                Error::new(format!(
                    "{what}: no QUIC handshake within {timeout:?} (is anything serving HTTP/3 on that UDP port?)"
                ))
            })??;
        Ok(H3Client {
            endpoint,
            conn,
            send,
            driver,
            addr,
            host: host.to_string(),
            timeout,
        })
    }

    /// GET `path` (starting with `/`) with `headers` added.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<H3Response> {
        self.request(http::Method::GET, path, headers, &[]).await
    }

    /// `method` `path` with `headers` and `body` (none when empty); the
    /// whole response, bounded by the client's timeout.
    pub async fn request<M>(
        &self,
        method: M,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<H3Response>
    where
        http::Method: TryFrom<M>,
        <http::Method as TryFrom<M>>::Error: Into<http::Error>,
    {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.host));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(())
            .map_err(|e| Error::new(format!("request for {path}: {e}")))?;
        let what = format!(
            "HTTP/3 {} https://{}{path} at {}",
            req.method(),
            self.host,
            self.addr
        );
        let exchange = async {
            let mut send = self.send.clone();
            let mut stream = send
                .send_request(req)
                .await
                .map_err(|e| Error::new(format!("{what}: sending: {e}")))?;
            if !body.is_empty() {
                stream
                    .send_data(Bytes::copy_from_slice(body))
                    .await
                    .map_err(|e| Error::new(format!("{what}: sending the body: {e}")))?;
            }
            stream
                .finish()
                .await
                .map_err(|e| Error::new(format!("{what}: finishing the request: {e}")))?;
            let resp = stream
                .recv_response()
                .await
                .map_err(|e| Error::new(format!("{what}: response: {e}")))?;
            let mut body = Vec::new();
            while let Some(mut chunk) = stream
                .recv_data()
                .await
                .map_err(|e| Error::new(format!("{what}: response body: {e}")))?
            {
                if body.len() + chunk.remaining() > MAX_BODY {
                    return Err(Error::new(format!(
                        "{what}: response body over {MAX_BODY} bytes"
                    )));
                }
                while chunk.has_remaining() {
                    let c = chunk.chunk();
                    body.extend_from_slice(c);
                    let n = c.len();
                    chunk.advance(n);
                }
            }
            Ok(H3Response {
                status: resp.status().as_u16(),
                headers: resp.headers().clone(),
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                Error::new(format!(
                    "{what}: no whole response within {:?}",
                    self.timeout
                ))
            })?
    }

    /// Another sender on this connection, for callers that drive h3
    /// streams themselves (`bench` reads bodies without keeping them).
    pub fn sender(&self) -> SendRequest {
        self.send.clone()
    }

    /// The QUIC connection (stats, RTT, the peer's address).
    pub fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// Equal for two requests' clients iff they are one connection.
    pub fn stable_id(&self) -> usize {
        self.conn.stable_id()
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// Closes the connection (HTTP/3 "no error") and waits, at most a
    /// second, for the server to hear it.
    pub async fn close(self) {
        self.conn.close(H3_NO_ERROR.into(), b"");
        let _ = tokio::time::timeout(Duration::from_secs(1), self.endpoint.wait_idle()).await;
    }
}

/// The local address a client endpoint binds for `target`: loopback for
/// a loopback target, any address of its family otherwise; any port.
pub fn local_for(target: SocketAddr) -> SocketAddr {
    let ip: IpAddr = match (target.ip(), target.ip().is_loopback()) {
        (IpAddr::V4(_), true) => Ipv4Addr::LOCALHOST.into(),
        (IpAddr::V4(_), false) => Ipv4Addr::UNSPECIFIED.into(),
        (IpAddr::V6(_), true) => Ipv6Addr::LOCALHOST.into(),
        (IpAddr::V6(_), false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    SocketAddr::new(ip, 0)
}

/// The TLS server name of an authority: without its port, an IPv6
/// literal without its brackets.
fn server_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port))
            if !name.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    #[test]
    fn server_names_drop_the_port() {
        assert_eq!(server_name("bench.localhost"), "bench.localhost");
        assert_eq!(server_name("bench.localhost:8443"), "bench.localhost");
        assert_eq!(server_name("127.0.0.1:443"), "127.0.0.1");
        assert_eq!(server_name("[::1]:443"), "::1");
        assert_eq!(server_name("[::1]"), "::1");
        assert_eq!(server_name("::1"), "::1");
    }

    #[test]
    fn clients_bind_the_target_family() {
        let l = |s: &str| local_for(s.parse().unwrap());
        assert_eq!(l("127.0.0.1:443"), "127.0.0.1:0".parse().unwrap());
        assert_eq!(l("192.0.2.1:443"), "0.0.0.0:0".parse().unwrap());
        assert_eq!(l("[::1]:443"), "[::1]:0".parse().unwrap());
        assert_eq!(l("[2001:db8::1]:443"), "[::]:0".parse().unwrap());
    }

    #[tokio::test]
    async fn nothing_listening_fails_within_the_timeout() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let tls = client_config(&[]).unwrap();
        let started = Instant::now();
        let err = H3Client::connect_with(port, "localhost", &tls, Duration::from_millis(500))
            .await
            .err()
            .expect("nothing serves HTTP/3 there");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        let msg = err.to_string();
        assert!(msg.contains(&port.to_string()), "{msg}");
        assert!(msg.contains("within"), "{msg}");
    }

    /// A real HTTP/3 server (h3 over quinn) answering every request with
    /// its method, path, `x-test` header and body; counts connections.
    struct Server {
        addr: SocketAddr,
        ca: String,
        connections: Arc<AtomicUsize>,
        _endpoint: quinn::Endpoint,
    }

    fn server() -> Server {
        let (ca, cert, key) = crate::tls::loopback_cert("h3 test CA");
        let certs = crate::pem_certs(cert.as_bytes());
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .unwrap()
            .unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
        let endpoint = quinn::Endpoint::server(
            quinn::ServerConfig::with_crypto(Arc::new(quic)),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (ep, count) = (endpoint.clone(), connections.clone());
        tokio::spawn(async move {
            while let Some(incoming) = ep.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(conn) = incoming.await else { return };
                    let Ok(mut h3conn) =
                        ::h3::server::Connection::<_, Bytes>::new(h3_quinn::Connection::new(conn))
                            .await
                    else {
                        return;
                    };
                    while let Ok(Some(resolver)) = h3conn.accept().await {
                        tokio::spawn(async move {
                            let (req, mut stream) = resolver.resolve_request().await.unwrap();
                            let mut body = Vec::new();
                            while let Some(mut c) = stream.recv_data().await.unwrap() {
                                let b = c.copy_to_bytes(c.remaining());
                                body.extend_from_slice(&b);
                            }
                            let x = req
                                .headers()
                                .get("x-test")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_string();
                            let status = if req.uri().path() == "/missing" {
                                404
                            } else {
                                200
                            };
                            let resp = http::Response::builder()
                                .status(status)
                                .header("x-authority", req.uri().authority().unwrap().as_str())
                                .body(())
                                .unwrap();
                            stream.send_response(resp).await.unwrap();
                            let text = format!(
                                "{} {} {x} {}",
                                req.method(),
                                req.uri().path(),
                                String::from_utf8_lossy(&body)
                            );
                            stream.send_data(Bytes::from(text)).await.unwrap();
                            stream.finish().await.unwrap();
                        });
                    }
                });
            }
        });
        Server {
            addr: endpoint.local_addr().unwrap(),
            ca,
            connections,
            _endpoint: endpoint,
        }
    }

    #[tokio::test]
    async fn requests_share_one_connection() {
        let s = server();
        let client = H3Client::connect(s.addr, "localhost", &[&s.ca])
            .await
            .unwrap();
        let id = client.stable_id();
        let r = client.get("/a", &[("x-test", "one")]).await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "GET /a one "));
        assert_eq!(r.header("x-authority"), Some("localhost"));
        let r = client.request("POST", "/b", &[], b"payload").await.unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "POST /b - payload"));
        let r = client.get("/missing", &[]).await.unwrap();
        assert_eq!(r.status, 404);
        // At once, too.
        let (a, b) = tokio::join!(client.get("/c", &[]), client.get("/d", &[]));
        assert_eq!(a.unwrap().text(), "GET /c - ");
        assert_eq!(b.unwrap().text(), "GET /d - ");
        assert_eq!(client.stable_id(), id);
        assert!(client.is_open());
        assert_eq!(s.connections.load(Ordering::SeqCst), 1);
        client.close().await;

        let r = get(s.addr, "localhost", "/e", &[&s.ca], &[]).await.unwrap();
        assert_eq!(r.text(), "GET /e - ");
        assert_eq!(s.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_clear_error() {
        let s = server();
        let (other_ca, _, _) = crate::tls::loopback_cert("another CA");
        let err = get(s.addr, "localhost", "/", &[&other_ca], &[])
            .await
            .expect_err("the server's CA is not trusted");
        let msg = err.to_string();
        assert!(msg.contains("QUIC handshake"), "{msg}");
        assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    }
}
