//! A real ACME CA for tests: Let's Encrypt's Pebble (Debian's `pebble`),
//! on loopback ports of its own, validating against the ports a test
//! names and resolving names through the test's DNS server. Debian ships
//! no test certificates, so the CA of Pebble's own HTTPS is made here.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::dns::free_port;
use crate::process::Proc;
use crate::{Error, Result};

pub const BINARY: &str = "pebble";

/// Whether Pebble is installed (`.ci/run` installs it).
pub fn available() -> bool {
    std::process::Command::new(BINARY)
        .arg("-h")
        .output()
        .is_ok()
}

/// Where Pebble validates and what it issues.
pub struct PebbleOptions {
    /// The port HTTP-01 validation connects to (on the name's address).
    pub http_port: u16,
    /// The port TLS-ALPN-01 validation connects to.
    pub tls_port: u16,
    /// The DNS server Pebble resolves names with.
    pub dns: SocketAddr,
    /// Lifetime of issued certificates, in seconds (Pebble's default is
    /// five years).
    pub validity_secs: Option<u64>,
    /// Validation waits a random time up to this many seconds (as a real
    /// CA's would take a while); default: validates at once.
    pub va_sleep_secs: Option<u32>,
    /// Names the CA refuses to issue for (`rejectedIdentifier`).
    pub blocklist: Vec<String>,
}

pub struct TestPebble {
    pub proc: Proc,
    /// The directory URL (`https://127.0.0.1:PORT/dir`).
    pub directory: String,
    /// The CA certificate (PEM file) Pebble's own HTTPS is signed by: what
    /// an ACME client sets as its `ca_file`.
    pub ca_file: PathBuf,
    management: String,
    http: reqwest::Client,
    dir: PathBuf,
    listen: SocketAddr,
}

impl TestPebble {
    pub fn start(dir: &Path, o: &PebbleOptions) -> Result<TestPebble> {
        std::fs::create_dir_all(dir)?;
        let (ca_pem, cert_pem, key_pem) = tls_files();
        let ca_file = dir.join("pebble-ca.pem");
        std::fs::write(&ca_file, &ca_pem)?;
        std::fs::write(dir.join("pebble-cert.pem"), cert_pem)?;
        std::fs::write(dir.join("pebble-key.pem"), key_pem)?;
        let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let management = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut pebble = serde_json::json!({
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": dir.join("pebble-cert.pem"),
            "privateKey": dir.join("pebble-key.pem"),
            "httpPort": o.http_port,
            "tlsPort": o.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(v) = o.validity_secs {
            pebble["certificateValidityPeriod"] = v.into();
        }
        if !o.blocklist.is_empty() {
            pebble["domainBlocklist"] = o.blocklist.clone().into();
        }
        let config = dir.join("pebble-config.json");
        std::fs::write(
            &config,
            serde_json::to_vec(&serde_json::json!({ "pebble": pebble }))
                .map_err(|e| Error::new(e.to_string()))?,
        )?;
        let sleep = o.va_sleep_secs.map(|s| s.to_string());
        let envs: Vec<(&str, &str)> = match &sleep {
            Some(s) => vec![("PEBBLE_VA_SLEEPTIME", s), ("PEBBLE_WFE_NONCEREJECT", "0")],
            None => vec![("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")],
        };
        let proc = Proc::launch(
            Path::new(BINARY),
            &[
                "-config".to_string(),
                config.display().to_string(),
                "-dnsserver".to_string(),
                o.dns.to_string(),
            ],
            dir.join("pebble.log"),
            &envs,
        )?;
        let tls = crate::tls_client_config(crate::pem_certs(ca_pem.as_bytes()), &[b"http/1.1"]);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::new(e.to_string()))?;
        Ok(TestPebble {
            proc,
            directory: format!("https://{listen}/dir"),
            ca_file,
            management: format!("https://{management}"),
            http,
            dir: dir.to_path_buf(),
            listen,
        })
    }

    /// Waits until the directory answers.
    pub async fn ready(&self) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match self.http.get(&self.directory).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                _ if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
                Ok(r) => return Err(Error::new(format!("pebble directory: {}", r.status()))),
                Err(e) => return Err(Error::new(format!("pebble directory: {e}"))),
            }
        }
    }

    /// The root certificate Pebble issues under (PEM), from its management
    /// API: what a browser would have to trust.
    pub async fn root(&self) -> Result<String> {
        let r = self
            .http
            .get(format!("{}/roots/0", self.management))
            .send()
            .await
            .map_err(|e| Error::new(format!("pebble roots: {e}")))?;
        r.text()
            .await
            .map_err(|e| Error::new(format!("pebble roots: {e}")))
    }

    /// Stops the CA (its state is lost: Pebble keeps nothing on disk).
    pub fn stop(&mut self) {
        self.proc.kill9();
    }

    /// The directory's listening address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn tls_files() -> (String, String, String) {
    crate::tls::loopback_cert("pebble test CA")
}
