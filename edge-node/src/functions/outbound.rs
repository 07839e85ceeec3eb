//! Outbound HTTP from functions: off unless the project lists the host, and
//! never to loopback, private, link-local, CGNAT, unique-local or
//! unspecified addresses unless the operator allows them.
//!
//! The name is resolved here, every address is checked, and the connection
//! goes to a checked address: there is no second lookup an attacker's DNS
//! could answer differently (no rebinding gap).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// What one request's function may reach.
#[derive(Clone)]
pub(crate) struct OutboundPolicy {
    /// Exact host names (or IP literals) from the project's `outbound`.
    pub allowed: Arc<Vec<String>>,
    pub allow_private: bool,
    pub connect_timeout: Duration,
    pub tls: Arc<rustls::ClientConfig>,
    /// The project's outbound connections open at once on this node: one
    /// tenant cannot use up the node's file descriptors.
    pub connections: Arc<tokio::sync::Semaphore>,
}

/// Normalises a host for comparison: lower case, no trailing dot, no IPv6
/// brackets.
pub fn normalize(host: &str) -> String {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `host` (as the function wrote it) is on the allow-list.
pub fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = normalize(host);
    !host.is_empty() && allowed.iter().any(|a| normalize(a) == host)
}

/// Addresses a function must not reach unless private outbound is allowed
/// (loopback, private, link-local, metadata…: `protocol::addr`).
pub use protocol::addr::is_restricted;

/// Of the resolved addresses, those the function may connect to.
pub fn permitted(
    addrs: impl IntoIterator<Item = SocketAddr>,
    allow_private: bool,
) -> Vec<SocketAddr> {
    addrs
        .into_iter()
        .filter(|a| allow_private || !is_restricted(a.ip()))
        .collect()
}

/// Hooks of one request's store: the policy above for `send_request`,
/// wasi-http's defaults for everything else.
pub(crate) struct Hooks {
    pub policy: Option<OutboundPolicy>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.policy.clone();
        Box::new(async move {
            let Some(policy) = policy else {
                return Err(Error::HttpRequestDenied);
            };
            send(policy, request, options).await
        })
    }
}

async fn send(
    policy: OutboundPolicy,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> SendResult {
    let uri = request.uri().clone();
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let host = authority.host();
    if !host_allowed(&policy.allowed, host) {
        tracing::debug!(
            host,
            "outbound request to a host not on the allow-list refused"
        );
        return Err(Error::HttpRequestDenied);
    }
    // Held until the connection is done (it moves into its driver).
    let Ok(slot) = policy.connections.clone().try_acquire_owned() else {
        tracing::debug!(
            host,
            "outbound connection refused: the project's limit is reached"
        );
        return Err(Error::ConnectionLimitReached);
    };
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(Error::HttpProtocolError),
    };
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let name = normalize(host);
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .map_or(policy.connect_timeout, |t| t.min(policy.connect_timeout));

    let resolved = match crate::dns::lookup(&name, port, connect_timeout).await {
        Ok(a) => a,
        Err(crate::dns::DnsError::Timeout(..)) => return Err(Error::DnsTimeout),
        Err(_) => {
            return Err(Error::DnsError {
                rcode: Some("address not available".into()),
                info_code: None,
            })
        }
    };
    let addrs = permitted(resolved.iter().copied(), policy.allow_private);
    if addrs.is_empty() {
        tracing::debug!(host = %name, ?resolved, "outbound request to a restricted address refused");
        return Err(if resolved.is_empty() {
            Error::DestinationNotFound
        } else {
            Error::DestinationIpProhibited
        });
    }

    let tcp = tokio::time::timeout(connect_timeout, connect_any(&addrs))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Connect)?;
    let _ = tcp.set_nodelay(true);

    // Origin-form on the wire; wasi-http has already set `Host`.
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    if tls {
        let server_name = match name.parse::<IpAddr>() {
            Ok(ip) => rustls::pki_types::ServerName::from(ip),
            Err(_) => rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| Error::HttpRequestUriInvalid)?,
        };
        let stream = tokio::time::timeout(
            connect_timeout,
            tokio_rustls::TlsConnector::from(policy.tls.clone()).connect(server_name, tcp),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(Error::Tls)?;
        exchange(stream, request, options, connect_timeout, slot).await
    } else {
        exchange(tcp, request, options, connect_timeout, slot).await
    }
}

async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}

async fn exchange<S>(
    stream: S,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    handshake_timeout: Duration,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> SendResult
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = tokio::time::timeout(
        handshake_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    let mut conn = Box::pin(conn);
    let first_byte = options.and_then(|o| o.first_byte_timeout);
    let send = sender.send_request(request);
    let send = async {
        match first_byte {
            Some(t) => tokio::time::timeout(t, send)
                .await
                .map_err(|_| Error::ConnectionReadTimeout)?
                .map_err(Error::from),
            None => send.await.map_err(Error::from),
        }
    };
    tokio::pin!(send);
    // The connection must be driven while we wait for the response head.
    let mut conn_done = false;
    let response = loop {
        tokio::select! {
            r = &mut send => break r?,
            c = &mut conn, if !conn_done => {
                conn_done = true;
                c.map_err(Error::from)?;
            }
        }
    };
    let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
    let io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
        Box::new(async move {
            let _slot = slot;
            if !conn_done {
                conn.await.map_err(Error::from)?;
            }
            Ok(())
        });
    Ok((response, io))
}

/// The TLS client for outbound HTTPS: webpki roots, ring.
pub(crate) fn tls_client_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_is_exact() {
        let allowed = vec!["api.example.com".to_string(), "127.0.0.1".to_string()];
        let cases: &[(&str, bool)] = &[
            ("api.example.com", true),
            ("API.Example.COM", true),
            ("api.example.com.", true),
            ("example.com", false),
            ("evil.api.example.com", false),
            ("api.example.com.evil.net", false),
            ("127.0.0.1", true),
            ("localhost", false),
            ("", false),
        ];
        for (host, ok) in cases {
            assert_eq!(host_allowed(&allowed, host), *ok, "{host}");
        }
        assert!(host_allowed(&["[::1]".to_string()], "[::1]"));
        assert!(!host_allowed(&[], "api.example.com"));
    }

    #[test]
    fn only_checked_addresses_are_dialled() {
        let addrs: Vec<SocketAddr> = [
            "127.0.0.1:80",
            "8.8.8.8:80",
            "[::1]:80",
            "[2606:4700::1]:80",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let public = permitted(addrs.clone(), false);
        assert_eq!(
            public,
            vec![
                "8.8.8.8:80".parse::<SocketAddr>().unwrap(),
                "[2606:4700::1]:80".parse().unwrap()
            ]
        );
        assert_eq!(permitted(addrs.clone(), true), addrs);
    }
}
