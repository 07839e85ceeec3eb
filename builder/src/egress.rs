//! A build's only way out: its sandbox has a network namespace of its own
//! (loopback only), and an HTTP proxy run by the builder, reached through
//! a Unix socket bound into the sandbox, takes its requests out — `CONNECT`
//! for HTTPS, absolute-form requests for plain HTTP — to public addresses
//! only. So `npm install` reaches the registry, and nothing internal (the
//! coordinator's API on localhost, its database, a cloud metadata address,
//! the operator's private network) is reachable at all.
//!
//! Inside the sandbox the command runs under the *shim* ([`shim_main`]):
//! it listens on `127.0.0.1:3128` in the sandbox's namespace, relays each
//! connection to the socket, and runs the command (whose environment names
//! that address as `HTTP(S)_PROXY`). The shim is the coordinator's own
//! executable called with [`SHIM_ARG`] (or the `outpost-build-shim` binary).
//!
//! Every destination is resolved here, checked with
//! [`protocol::addr::is_restricted`], and connected to by the checked
//! address, so a name cannot be re-pointed between check and connect.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// The first argument that makes an executable run [`shim_main`].
pub const SHIM_ARG: &str = "__outpost-build-shim";
/// The proxy's socket file, in the folder bound into the sandbox.
pub const SOCKET_NAME: &str = "egress.sock";
/// Where builds find the proxy, inside their sandbox.
pub const PROXY_ADDR: &str = "127.0.0.1:3128";
/// Longest request head a build may send the proxy.
const MAX_HEAD: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the builder's side of the proxy may go.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Host names (and their subdomains) builds may reach; empty: any
    /// public host.
    pub allowed_hosts: Vec<String>,
    /// Reach internal addresses too (tests on loopback only).
    pub allow_private: bool,
}

impl EgressPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.is_empty()
            || self.allowed_hosts.iter().any(|a| {
                let a = a.trim_end_matches('.').to_ascii_lowercase();
                host == a || host.ends_with(&format!(".{a}"))
            })
    }
}

/// What a build asked the proxy for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRequest {
    /// `CONNECT host:port`: a tunnel (HTTPS).
    Connect { host: String, port: u16 },
    /// An absolute-form request (`GET http://host/path`), forwarded with
    /// `head` as the origin-form head to send.
    Forward {
        host: String,
        port: u16,
        head: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is not HTTP/1.x")]
    NotHttp,
    #[error("only http:// URLs and CONNECT are proxied")]
    Scheme,
    #[error("bad target {0:?}")]
    Target(String),
}

/// Parses a complete request head (through its blank line). Pure.
pub fn parse_head(head: &[u8]) -> Result<ProxyRequest, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::NotHttp)?;
    let mut lines = text.split("\r\n");
    let first = lines.next().ok_or(HeadError::NotHttp)?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::NotHttp);
    };
    if !version.starts_with("HTTP/1.")
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
    {
        return Err(HeadError::NotHttp);
    }
    let bad = || HeadError::Target(target.chars().take(200).collect());
    if method == "CONNECT" {
        let (host, port) = split_host_port(target, None).ok_or_else(bad)?;
        return Ok(ProxyRequest::Connect { host, port });
    }
    let rest = target.strip_prefix("http://").ok_or(HeadError::Scheme)?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(bad());
    }
    let (host, port) = split_host_port(authority, Some(80)).ok_or_else(bad)?;
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    let mut out = format!("{method} {path} {version}\r\n");
    for line in lines {
        if line.is_empty() {
            break;
        }
        let name = line
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // Ours to consume, or about a connection we replace.
        if name.starts_with("proxy-") || name == "connection" || name == "keep-alive" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    // One request per upstream connection: the next may be for another host.
    out.push_str("Connection: close\r\n\r\n");
    Ok(ProxyRequest::Forward {
        host,
        port,
        head: out.into_bytes(),
    })
}

/// `host:port` (IPv6 in brackets); `default` when the port is absent.
fn split_host_port(s: &str, default: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => default?,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (s.to_string(), default?),
        }
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
    (ok && port != 0).then_some((host, port))
}

/// The proxy for one build: listens on a Unix socket in `dir` until it is
/// dropped. Refused destinations are reported through `refused`.
pub struct Egress {
    stop: CancellationToken,
}

impl Drop for Egress {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Egress {
    /// Starts the proxy on `<dir>/`[`SOCKET_NAME`] (`dir` must exist and be
    /// reachable by the build user).
    pub fn start(
        dir: &Path,
        policy: EgressPolicy,
        refused: impl Fn(String) + Send + Sync + 'static,
    ) -> std::io::Result<Egress> {
        let socket = dir.join(SOCKET_NAME);
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        // The build runs as another user: it must be able to connect.
        std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
        let stop = CancellationToken::new();
        let policy = Arc::new(policy);
        let refused: Arc<dyn Fn(String) + Send + Sync> = Arc::new(refused);
        let token = stop.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = listener.accept() => match c { Ok((c, _)) => c, Err(_) => continue },
                    _ = token.cancelled() => return,
                };
                let (policy, refused, token) = (policy.clone(), refused.clone(), token.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = handle(conn, &policy, &*refused) => {}
                        _ = token.cancelled() => {}
                    }
                });
            }
        });
        Ok(Egress { stop })
    }
}

async fn handle(
    mut conn: UnixStream,
    policy: &EgressPolicy,
    refused: &(dyn Fn(String) + Send + Sync),
) {
    let Ok(Ok((head, extra))) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut conn)).await
    else {
        let _ = conn
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let req = match parse_head(&head) {
        Ok(r) => r,
        Err(e) => {
            let _ = answer(&mut conn, 400, &e.to_string()).await;
            return;
        }
    };
    let (host, port) = match &req {
        ProxyRequest::Connect { host, port } | ProxyRequest::Forward { host, port, .. } => {
            (host.clone(), *port)
        }
    };
    let upstream = match connect(&host, port, policy).await {
        Ok(s) => s,
        Err(why) => {
            refused(format!("network access to {host}:{port} refused: {why}"));
            let _ = answer(
                &mut conn,
                403,
                &format!("outpost build proxy: {host}:{port} refused: {why}"),
            )
            .await;
            return;
        }
    };
    let mut upstream = upstream;
    match req {
        ProxyRequest::Connect { .. } => {
            if conn
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            if !extra.is_empty() && upstream.write_all(&extra).await.is_err() {
                return;
            }
        }
        ProxyRequest::Forward { head, .. } => {
            if upstream.write_all(&head).await.is_err()
                || (!extra.is_empty() && upstream.write_all(&extra).await.is_err())
            {
                return;
            }
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
}

async fn answer(conn: &mut UnixStream, status: u16, why: &str) -> std::io::Result<()> {
    let reason = if status == 403 {
        "Forbidden"
    } else {
        "Bad Request"
    };
    let body = format!("{why}\n");
    conn.write_all(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
}

/// The head through its blank line, and whatever came after it.
async fn read_head(conn: &mut UnixStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let extra = buf.split_off(end + 4);
            return Ok((buf, extra));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the head ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Resolves `host`, keeps only the addresses the policy allows, and
/// connects to one of those.
async fn connect(host: &str, port: u16, policy: &EgressPolicy) -> Result<TcpStream, String> {
    if !policy.host_allowed(host) {
        return Err("not on the build host's allowed list".into());
    }
    let resolved: Vec<SocketAddr> =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return Err(format!("it does not resolve ({e})")),
            Err(_) => return Err("resolving it timed out".into()),
        };
    let permitted: Vec<SocketAddr> = resolved
        .iter()
        .copied()
        .filter(|a| policy.allow_private || !protocol::addr::is_restricted(a.ip()))
        .collect();
    if permitted.is_empty() {
        return Err(format!(
            "{} is an internal address (loopback, private, link-local or metadata)",
            resolved
                .first()
                .map(|a| a.ip().to_string())
                .unwrap_or_else(|| "it".into())
        ));
    }
    let mut last = String::from("no address");
    for a in permitted {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
            Ok(Ok(s)) => return Ok(s),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "connect timed out".into(),
        }
    }
    Err(last)
}

/// The shim inside the sandbox: `<exe> __outpost-build-shim <listen>
/// <socket> -- <command…>`. Relays every connection to `listen` (in the
/// sandbox's own network namespace) to the proxy's `socket`, runs the
/// command, and exits with its status. Plain threads: it runs before (and
/// instead of) anything else of the executable it is part of.
pub fn shim_main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.iter().position(|a| a == "--") {
        Some(dash) if dash >= 4 && args.len() > dash + 1 => {
            run_shim(&args[2], Path::new(&args[3]), &args[dash + 1..])
        }
        _ => {
            eprintln!("usage: {SHIM_ARG} <listen addr> <proxy socket> -- <command…>");
            2
        }
    };
    std::process::exit(code)
}

fn run_shim(listen: &str, socket: &Path, command: &[String]) -> i32 {
    match std::net::TcpListener::bind(listen) {
        Ok(l) => {
            let socket = socket.to_path_buf();
            std::thread::spawn(move || {
                for conn in l.incoming().flatten() {
                    let socket = socket.clone();
                    std::thread::spawn(move || relay(conn, &socket));
                }
            });
        }
        // The build still runs, with no way out (and says why).
        Err(e) => eprintln!("outpost: no network proxy for this build ({listen}: {e})"),
    }
    match std::process::Command::new(&command[0])
        .args(&command[1..])
        .status()
    {
        Ok(s) => s
            .code()
            .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)),
        Err(e) => {
            eprintln!("outpost: cannot run {}: {e}", command[0]);
            127
        }
    }
}

fn relay(tcp: std::net::TcpStream, socket: &Path) {
    let Ok(unix) = std::os::unix::net::UnixStream::connect(socket) else {
        return;
    };
    let (Ok(mut tcp_r), Ok(mut unix_w)) = (tcp.try_clone(), unix.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut tcp_r, &mut unix_w);
        let _ = unix_w.shutdown(std::net::Shutdown::Write);
    });
    let (mut unix_r, mut tcp_w) = (unix, tcp);
    let _ = std::io::copy(&mut unix_r, &mut tcp_w);
    let _ = tcp_w.shutdown(std::net::Shutdown::Write);
    let _ = up.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_table() {
        let connect = |h: &str, p| {
            Ok(ProxyRequest::Connect {
                host: h.into(),
                port: p,
            })
        };
        for (head, want) in [
            (
                "CONNECT registry.npmjs.org:443 HTTP/1.1\r\nHost: x\r\n\r\n",
                connect("registry.npmjs.org", 443),
            ),
            (
                "CONNECT [2606:4700::1]:443 HTTP/1.1\r\n\r\n",
                connect("2606:4700::1", 443),
            ),
            (
                "CONNECT registry.npmjs.org HTTP/1.1\r\n\r\n",
                Err(HeadError::Target("registry.npmjs.org".into())),
            ),
            ("CONNECT a b:1 HTTP/1.1\r\n\r\n", Err(HeadError::NotHttp)),
            ("GET https://x/ HTTP/1.1\r\n\r\n", Err(HeadError::Scheme)),
            ("GET /local HTTP/1.1\r\n\r\n", Err(HeadError::Scheme)),
            (
                "GET http://u:p@x/ HTTP/1.1\r\n\r\n",
                Err(HeadError::Target("http://u:p@x/".into())),
            ),
            ("get http://x/ HTTP/1.1\r\n\r\n", Err(HeadError::NotHttp)),
            ("GET http://x/ SPDY/3\r\n\r\n", Err(HeadError::NotHttp)),
            (
                "CONNECT x:0 HTTP/1.1\r\n\r\n",
                Err(HeadError::Target("x:0".into())),
            ),
            (
                "CONNECT bad$host:1 HTTP/1.1\r\n\r\n",
                Err(HeadError::Target("bad$host:1".into())),
            ),
        ] {
            assert_eq!(parse_head(head.as_bytes()), want, "{head:?}");
        }
        let Ok(ProxyRequest::Forward { host, port, head }) = parse_head(
            b"GET http://deb.example:8080/a?b HTTP/1.1\r\nHost: deb.example:8080\r\nProxy-Authorization: x\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n",
        ) else {
            panic!("a forward");
        };
        assert_eq!((host.as_str(), port), ("deb.example", 8080));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /a?b HTTP/1.1\r\nHost: deb.example:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let Ok(ProxyRequest::Forward { port, head, .. }) =
            parse_head(b"GET http://x?q HTTP/1.0\r\n\r\n")
        else {
            panic!("a forward");
        };
        assert_eq!(port, 80);
        assert!(String::from_utf8(head)
            .unwrap()
            .starts_with("GET /?q HTTP/1.0\r\n"));
    }

    #[test]
    fn the_allowed_list_covers_subdomains_only() {
        let p = EgressPolicy {
            allowed_hosts: vec!["npmjs.org".into()],
            allow_private: false,
        };
        for (host, ok) in [
            ("npmjs.org", true),
            ("registry.npmjs.org", true),
            ("REGISTRY.NPMJS.ORG.", true),
            ("evilnpmjs.org", false),
            ("npmjs.org.evil.com", false),
        ] {
            assert_eq!(p.host_allowed(host), ok, "{host}");
        }
        assert!(EgressPolicy::default().host_allowed("anything.example"));
    }

    #[tokio::test]
    async fn internal_destinations_are_refused_and_public_ones_connected() {
        let strict = EgressPolicy::default();
        for host in [
            "127.0.0.1",
            "localhost",
            "10.0.0.1",
            "169.254.169.254",
            "::1",
        ] {
            let e = connect(host, 5432, &strict).await.unwrap_err();
            assert!(e.contains("internal"), "{host}: {e}");
        }
        // Allowed (tests): a loopback listener is reached.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let lax = EgressPolicy {
            allow_private: true,
            ..Default::default()
        };
        assert!(connect("127.0.0.1", port, &lax).await.is_ok());
    }
}
