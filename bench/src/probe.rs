//! `bench probe`: what one user's first request costs, phase by phase —
//! DNS, TCP connect, TLS handshake, time to first byte — to each target,
//! repeated. For operators to run from each region against their nodes.
//!
//! With `--http3`, https URLs are probed over HTTP/3 instead (UDP to the
//! URL's port): `connect` is then the whole QUIC handshake, TLS 1.3
//! included, and `tls` is empty. QUIC carries TLS inside its own
//! handshake (one round trip for both), and quinn reports no point
//! between a transport and a TLS part, so there is nothing to split.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::stats::{summarize, Summary};

/// Bytes of a response read before giving up on reading the rest.
const MAX_BODY: usize = 16 << 20;

#[derive(Debug, Serialize)]
pub struct ProbeReport {
    pub url: String,
    /// `HTTP/1.1`, or `HTTP/3` (https URLs with `--http3`).
    pub protocol: &'static str,
    pub samples: usize,
    pub failures: usize,
    pub dns: Summary,
    /// TCP connect; over HTTP/3 the QUIC handshake, TLS included.
    pub connect: Summary,
    /// Empty for plain HTTP, and over HTTP/3 (see `connect`).
    pub tls: Summary,
    /// From sending the request to the first response byte.
    pub first_byte: Summary,
    /// DNS through the last byte.
    pub total: Summary,
    pub last_error: Option<String>,
}

pub struct ProbeTarget {
    pub url: reqwest::Url,
    /// Connect here instead of resolving the URL's host (Host and SNI are
    /// still the URL's).
    pub connect: Option<SocketAddr>,
}

struct Sample {
    dns: Duration,
    connect: Duration,
    tls: Option<Duration>,
    first_byte: Duration,
    total: Duration,
}

fn tls_config(extra_ca: Option<&str>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca {
        for c in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(c?)?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    url: &reqwest::Url,
    host: &str,
) -> anyhow::Result<(Duration, usize)> {
    let path = path_and_query(url);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: outpost-bench\r\nConnection: close\r\n\r\n"
    );
    let sent = Instant::now();
    s.write_all(req.as_bytes()).await?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).await?;
    if n == 0 {
        bail!("the server closed the connection without answering");
    }
    let first = sent.elapsed();
    if !buf.starts_with(b"HTTP/1.") {
        bail!("not an HTTP/1 response");
    }
    let mut total = n;
    loop {
        match s.read(&mut buf).await {
            Ok(0) => break,
            Ok(k) => total += k,
            // Servers that close without TLS close_notify: the body is in.
            Err(_) => break,
        }
        if total > MAX_BODY {
            break;
        }
    }
    Ok((first, total))
}

/// The request's target: the URL's path and query.
fn path_and_query(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// The address to connect to: `--connect`, or the host's first.
async fn resolve(t: &ProbeTarget, host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    Ok(match t.connect {
        Some(a) => a,
        None => tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to nothing"))?,
    })
}

/// The target's host, the address to connect to (resolved: this is the
/// DNS phase) and the authority requests name (`host[:port]`).
async fn locate(t: &ProbeTarget) -> anyhow::Result<(String, SocketAddr, String)> {
    let host = t.url.host_str().context("URL without a host")?.to_string();
    let port = t
        .url
        .port_or_known_default()
        .context("URL without a port")?;
    let addr = resolve(t, &host, port).await?;
    let authority = match t.url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    Ok((host, addr, authority))
}

/// One probe over HTTP/3: DNS, the QUIC handshake (as `connect`), the
/// request to its response's headers (first byte) and body.
async fn once_h3(
    t: &ProbeTarget,
    tls: &rustls::ClientConfig,
    timeout: Duration,
) -> anyhow::Result<Sample> {
    use bytes::Buf;

    let started = Instant::now();
    let (_, addr, authority) = locate(t).await?;
    let dns = started.elapsed();
    let client = test_support::h3::H3Client::connect_with(addr, &authority, tls, timeout).await?;
    let connect = started.elapsed() - dns;
    let req = http::Request::get(format!("https://{authority}{}", path_and_query(&t.url)))
        .header(http::header::USER_AGENT, "outpost-bench")
        .body(())?;
    let sent = Instant::now();
    let mut send = client.sender();
    let mut stream = send
        .send_request(req)
        .await
        .context("sending the request")?;
    stream.finish().await.context("sending the request")?;
    stream.recv_response().await.context("the response")?;
    let first_byte = sent.elapsed();
    let mut total = 0;
    while let Some(mut chunk) = stream.recv_data().await.context("the response body")? {
        total += chunk.remaining();
        chunk.advance(chunk.remaining());
        if total > MAX_BODY {
            break;
        }
    }
    let sample = Sample {
        dns,
        connect,
        tls: None,
        first_byte,
        total: started.elapsed(),
    };
    client.close().await;
    Ok(sample)
}

async fn once(t: &ProbeTarget, tls: &Arc<rustls::ClientConfig>) -> anyhow::Result<Sample> {
    let https = match t.url.scheme() {
        "https" => true,
        "http" => false,
        other => bail!("unsupported scheme {other:?} (http or https)"),
    };
    let started = Instant::now();
    let (host, addr, header_host) = locate(t).await?;
    let dns = started.elapsed();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    tcp.set_nodelay(true)?;
    let connect = started.elapsed() - dns;
    let (tls_time, first_byte) = if https {
        let name = rustls::pki_types::ServerName::try_from(host.clone())?;
        let before = Instant::now();
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .context("TLS handshake")?;
        let hs = before.elapsed();
        let (fb, _) = exchange(stream, &t.url, &header_host).await?;
        (Some(hs), fb)
    } else {
        let (fb, _) = exchange(tcp, &t.url, &header_host).await?;
        (None, fb)
    };
    Ok(Sample {
        dns,
        connect,
        tls: tls_time,
        first_byte,
        total: started.elapsed(),
    })
}

pub async fn run(
    targets: &[ProbeTarget],
    count: usize,
    interval: Duration,
    timeout: Duration,
    extra_ca: Option<&str>,
    http3: bool,
) -> anyhow::Result<Vec<ProbeReport>> {
    let tls = tls_config(extra_ca)?;
    let mut out = Vec::new();
    for t in targets {
        let h3 = http3 && t.url.scheme() == "https";
        let mut samples = Vec::new();
        let mut failures = 0;
        let mut last_error = None;
        for i in 0..count {
            if i > 0 {
                tokio::time::sleep(interval).await;
            }
            let probe = async {
                if h3 {
                    once_h3(t, &tls, timeout).await
                } else {
                    once(t, &tls).await
                }
            };
            match tokio::time::timeout(timeout, probe).await {
                Ok(Ok(s)) => samples.push(s),
                Ok(Err(e)) => {
                    failures += 1;
                    last_error = Some(format!("{e:#}"));
                }
                Err(_) => {
                    failures += 1;
                    last_error = Some(format!("no answer within {timeout:?}"));
                }
            }
        }
        let ms = |f: &dyn Fn(&Sample) -> Option<Duration>| -> Vec<f64> {
            samples
                .iter()
                .filter_map(f)
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect()
        };
        out.push(ProbeReport {
            url: t.url.to_string(),
            protocol: if h3 { "HTTP/3" } else { "HTTP/1.1" },
            samples: samples.len(),
            failures,
            dns: summarize(&ms(&|s| Some(s.dns))),
            connect: summarize(&ms(&|s| Some(s.connect))),
            tls: summarize(&ms(&|s| s.tls)),
            first_byte: summarize(&ms(&|s| Some(s.first_byte))),
            total: summarize(&ms(&|s| Some(s.total))),
            last_error,
        });
    }
    Ok(out)
}
