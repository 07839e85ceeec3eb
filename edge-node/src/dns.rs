//! Names of upstreams — proxy rewrites and functions' outbound calls —
//! resolved without blocking: hickory's async resolver with the system's
//! name servers and hosts file, bounded timeouts and a cache.
//!
//! `getaddrinfo` (`tokio::net::lookup_host`) runs on tokio's blocking pool,
//! the pool static file I/O uses: one slow resolver would stall static
//! serving for every tenant. Only when the system's resolver configuration
//! cannot be read does this fall back to it (and says so once).

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::Duration;

use hickory_resolver::config::ResolveHosts;
use hickory_resolver::TokioResolver;

/// Per query; a name gets two tries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Answers kept (their TTLs apply).
const CACHE: u64 = 4096;

static RESOLVER: LazyLock<Option<TokioResolver>> = LazyLock::new(|| {
    let built = TokioResolver::builder_tokio().and_then(|mut b| {
        let o = b.options_mut();
        o.timeout = QUERY_TIMEOUT;
        o.attempts = 2;
        o.cache_size = CACHE;
        o.use_hosts_file = ResolveHosts::Always;
        b.build()
    });
    match built {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "no usable system resolver configuration; upstream names go through getaddrinfo");
            None
        }
    }
});

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{0} did not resolve: {1}")]
    NotFound(String, String),
    #[error("resolving {0} took longer than {1:?}")]
    Timeout(String, Duration),
}

/// Every address of `host` (a literal address is itself), with `port`, in
/// at most `within`.
pub async fn lookup(host: &str, port: u16, within: Duration) -> Result<Vec<SocketAddr>, DnsError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let timeout = |_| DnsError::Timeout(host.to_string(), within);
    let not_found = |e: String| DnsError::NotFound(host.to_string(), e);
    match RESOLVER.as_ref() {
        Some(r) => {
            // A fully qualified name: no search-domain guesses.
            let fqdn = if host.ends_with('.') {
                host.to_string()
            } else {
                format!("{host}.")
            };
            let answer = tokio::time::timeout(within, r.lookup_ip(fqdn.as_str()))
                .await
                .map_err(timeout)?
                .map_err(|e| not_found(e.to_string()))?;
            Ok(answer.iter().map(|ip| SocketAddr::new(ip, port)).collect())
        }
        None => Ok(
            tokio::time::timeout(within, tokio::net::lookup_host((host, port)))
                .await
                .map_err(timeout)?
                .map_err(|e| not_found(e.to_string()))?
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_hosts_file_names_and_nonsense() {
        let a = lookup("127.0.0.1", 80, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
        let a = lookup("::1", 443, Duration::from_secs(1)).await.unwrap();
        assert_eq!(a, vec!["[::1]:443".parse().unwrap()]);
        // From the hosts file, with no name server asked.
        let a = lookup("localhost", 8080, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            a.iter().any(|s| s.ip().is_loopback() && s.port() == 8080),
            "{a:?}"
        );
        // An invalid name fails (fast, and without panicking).
        assert!(lookup("bad..name", 80, Duration::from_secs(5))
            .await
            .is_err());
    }
}
