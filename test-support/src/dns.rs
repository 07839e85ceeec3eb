//! A real DNS server for tests: Pebble's `pebble-challtestsrv` (Debian's
//! `pebble` package), on loopback ports of its own, whose answers a test
//! sets through its management API. Nothing is answered by default (no
//! catch-all addresses).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde_json::json;

use crate::process::Proc;
use crate::{Error, Result};

pub const BINARY: &str = "pebble-challtestsrv";

pub struct TestDns {
    pub proc: Proc,
    /// Where DNS queries go (UDP and TCP).
    pub dns: SocketAddr,
    management: String,
    http: reqwest::Client,
}

/// A loopback port free for both UDP and TCP just now.
pub fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// Whether the server's binary is installed (`.ci/run` installs it).
pub fn available() -> bool {
    std::process::Command::new(BINARY)
        .arg("-h")
        .output()
        .is_ok()
}

impl TestDns {
    /// Starts the server, its log in `dir`.
    pub fn start(dir: &Path) -> Result<TestDns> {
        let (dns_port, mgmt_port) = (free_port(), free_port());
        let dns = SocketAddr::from((Ipv4Addr::LOCALHOST, dns_port));
        let mgmt = format!("127.0.0.1:{mgmt_port}");
        std::fs::create_dir_all(dir)?;
        let proc = Proc::launch(
            Path::new(BINARY),
            &[
                "-dns01",
                &dns.to_string(),
                "-management",
                &mgmt,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv4",
                "",
                "-defaultIPv6",
                "",
            ],
            dir.join("challtestsrv.log"),
            &[],
        )?;
        let t = TestDns {
            proc,
            dns,
            management: format!("http://{mgmt}"),
            http: crate::cluster::http_client(),
        };
        Ok(t)
    }

    /// The management API's base URL (`http://127.0.0.1:PORT`), for a
    /// script that sets records itself (a DNS-01 `exec` hook).
    pub fn management_url(&self) -> &str {
        &self.management
    }

    async fn call(&self, path: &str, body: serde_json::Value) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match self
                .http
                .post(format!("{}{path}", self.management))
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => return Err(Error::new(format!("{path}: {}", r.status()))),
                // Not listening yet, just after the start.
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Err(e) => return Err(Error::new(format!("{path}: {e}"))),
            }
        }
    }

    fn fqdn(name: &str) -> String {
        format!("{}.", name.trim_end_matches('.'))
    }

    pub async fn set_cname(&self, name: &str, target: &str) {
        self.call(
            "/set-cname",
            json!({"host": Self::fqdn(name), "target": Self::fqdn(target)}),
        )
        .await
        .unwrap()
    }

    pub async fn clear_cname(&self, name: &str) {
        self.call("/clear-cname", json!({"host": Self::fqdn(name)}))
            .await
            .unwrap()
    }

    pub async fn set_a(&self, name: &str, addresses: &[&str]) {
        self.call(
            "/add-a",
            json!({"host": Self::fqdn(name), "addresses": addresses}),
        )
        .await
        .unwrap()
    }

    pub async fn clear_a(&self, name: &str) {
        self.call("/clear-a", json!({"host": Self::fqdn(name)}))
            .await
            .unwrap()
    }

    pub async fn set_txt(&self, name: &str, value: &str) {
        self.call(
            "/set-txt",
            json!({"host": Self::fqdn(name), "value": value}),
        )
        .await
        .unwrap()
    }
}
