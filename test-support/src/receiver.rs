//! A webhook receiver for tests: an HTTP/1.1 server (plain, or HTTPS with
//! a test CA of its own) on loopback that
//! keeps every request it gets (head and body) and answers with a status
//! the test sets, or not at all (`hang`), or refuses connections while
//! `down`. Enough HTTP for the coordinator's webhook, Slack and drain
//! clients (one request per connection, `Content-Length` bodies).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    status: AtomicU16,
    hang: AtomicBool,
    down: AtomicBool,
}

pub struct Receiver {
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
    /// With HTTPS: the PEM of the CA its certificate is signed by.
    pub ca_pem: Option<String>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

const MAX_BODY: usize = 16 << 20;

impl Receiver {
    /// Starts on `127.0.0.1:0`, answering 200.
    pub async fn start() -> Receiver {
        Self::launch(None).await
    }

    /// The same over HTTPS, with a certificate for `127.0.0.1` and
    /// `localhost` from a CA of its own (`ca_pem`).
    pub async fn start_tls() -> Receiver {
        let (ca, cert, key) = crate::tls::loopback_cert("receiver test CA");
        let certs = crate::tls::pem_certs(cert.as_bytes());
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .expect("key PEM")
            .expect("a key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
        let mut r = Self::launch(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await;
        r.ca_pem = Some(ca);
        r
    }

    async fn launch(tls: Option<tokio_rustls::TlsAcceptor>) -> Receiver {
        let tls_on = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared.status.store(200, Ordering::Relaxed);
        let s = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let s = s.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    if s.down.load(Ordering::Relaxed) {
                        return; // dropped: the client sees the connection close
                    }
                    match tls {
                        None => serve(conn, s).await,
                        Some(acceptor) => {
                            if let Ok(conn) = acceptor.accept(conn).await {
                                serve(conn, s).await;
                            }
                        }
                    }
                });
            }
        });
        Receiver {
            addr,
            scheme: if tls_on { "https" } else { "http" },
            ca_pem: None,
            shared,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Requests answered so far (with any status), in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// The status the next requests get.
    pub fn answer(&self, status: u16) {
        self.shared.status.store(status, Ordering::Relaxed);
    }

    /// Accept requests and never answer them.
    pub fn hang(&self, on: bool) {
        self.shared.hang.store(on, Ordering::Relaxed);
    }

    /// Close every connection at once, without reading it (an outage).
    pub fn down(&self, on: bool) {
        self.shared.down.store(on, Ordering::Relaxed);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request on a connection, answered as the test set.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, s: Arc<Shared>) {
    let Some(req) = read_request(&mut conn).await else {
        return;
    };
    if s.hang.load(Ordering::Relaxed) {
        // Never answer; hold the connection a long while.
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        return;
    }
    let status = s.status.load(Ordering::Relaxed);
    s.got.lock().unwrap().push(Received { status, ..req });
    let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    let _ = conn.write_all(resp.as_bytes()).await;
    let _ = conn.shutdown().await;
}

async fn read_request<S: AsyncRead + Unpin>(conn: &mut S) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(len);
    Some(Received {
        method,
        path,
        headers,
        body,
        status: 0,
    })
}
