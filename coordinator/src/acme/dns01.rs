//! DNS-01 (RFC 8555 §8.4): the TXT record `_acme-challenge.<domain>`
//! holding the key authorization's digest, put in place by a DNS provider
//! and removed after the order. The only challenge a wildcard can use.
//!
//! Providers:
//! - `rfc2136`: dynamic updates (RFC 2136) signed with TSIG (RFC 8945),
//!   sent with hickory to the zone's primary server; BIND, Knot, PowerDNS
//!   and many hosted DNS services take them.
//! - `exec`: the operator's program, run as `PROGRAM present|cleanup
//!   <fqdn> <value>` (lego's pattern), so that any provider can be
//!   scripted.
//!
//! `_acme-challenge.<domain>` may be a CNAME into a zone the operator
//! controls (delegation, so the platform never needs the customer's zone):
//! the record is then written at the CNAME's target.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine as _;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::proto::op::ResponseCode;
use hickory_net::proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_net::proto::rr::rdata::TXT;
use hickory_net::proto::rr::{DNSClass, Name, RData, Record, TSigner};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;

use crate::config::Dns01Config;
use crate::domains::dns::Lookup;

/// The label DNS-01 answers live under.
pub const LABEL: &str = "_acme-challenge";
/// A provider's program gets this long per call.
const EXEC_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a TXT record written here is cached elsewhere.
const TTL: u32 = 60;
/// TSIG's allowed clock skew, seconds (RFC 8945 recommends 300).
const FUDGE: u16 = 300;

/// The record name of `domain`'s challenge (a wildcard's is its base's).
pub fn challenge_name(domain: &str) -> String {
    format!("{LABEL}.{}", domain.strip_prefix("*.").unwrap_or(domain))
}

enum Provider {
    Rfc2136 {
        server: SocketAddr,
        zone: Option<Name>,
        signer: TSigner,
    },
    Exec {
        command: PathBuf,
    },
}

pub struct Dns01 {
    provider: Provider,
    /// What the CA will see: the provider's server (authoritative) for
    /// rfc2136, else `[domains] resolver`.
    check: Lookup,
    /// Follows `_acme-challenge` CNAMEs (delegation).
    resolve: Lookup,
    propagation_timeout: Duration,
}

/// The TSIG algorithm named in the config.
pub fn tsig_algorithm(name: &str) -> Result<TsigAlgorithm, String> {
    match name.to_ascii_lowercase().trim_end_matches('.') {
        "hmac-sha256" => Ok(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Ok(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Ok(TsigAlgorithm::HmacSha512),
        other => Err(format!(
            "{other:?} is not one of hmac-sha256, hmac-sha384, hmac-sha512"
        )),
    }
}

/// A TSIG secret as BIND's `key` statement writes it (standard base64).
pub fn tsig_secret(s: &str) -> Result<Vec<u8>, String> {
    let b = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| "not base64".to_string())?;
    if b.len() < 16 || b.len() > 512 {
        return Err("must decode to 16-512 bytes".into());
    }
    Ok(b)
}

impl Dns01 {
    pub fn new(cfg: &Dns01Config, resolver: Option<SocketAddr>) -> anyhow::Result<Dns01> {
        let provider = match cfg.provider.as_str() {
            "rfc2136" => {
                let server = cfg.server.context("[acme.dns01] server is required")?;
                let key_name = cfg
                    .tsig_key_name
                    .as_deref()
                    .context("[acme.dns01] tsig_key_name is required")?;
                let secret = tsig_secret(
                    cfg.tsig_secret
                        .as_deref()
                        .context("[acme.dns01] tsig_secret is required")?,
                )
                .map_err(anyhow::Error::msg)?;
                let algorithm =
                    tsig_algorithm(cfg.tsig_algorithm.as_deref().unwrap_or("hmac-sha256"))
                        .map_err(anyhow::Error::msg)?;
                let signer = TSigner::new(secret, algorithm, Name::from_ascii(key_name)?, FUDGE)?;
                let zone = cfg.zone.as_deref().map(Name::from_ascii).transpose()?;
                Provider::Rfc2136 {
                    server,
                    zone,
                    signer,
                }
            }
            "exec" => Provider::Exec {
                command: cfg
                    .command
                    .clone()
                    .context("[acme.dns01] command is required")?,
            },
            other => bail!("[acme.dns01] provider {other:?} is not rfc2136 or exec"),
        };
        let check = match &provider {
            Provider::Rfc2136 { server, .. } => Lookup::new(Some(*server))?,
            Provider::Exec { .. } => Lookup::new(resolver)?,
        };
        Ok(Dns01 {
            provider,
            check,
            resolve: Lookup::new(resolver)?,
            propagation_timeout: cfg.propagation_timeout,
        })
    }

    /// Where `domain`'s challenge record goes: `_acme-challenge.<domain>`,
    /// or where it is a CNAME to.
    pub async fn target(&self, domain: &str) -> String {
        let name = challenge_name(domain);
        self.resolve.cname(&name).await.unwrap_or(name)
    }

    /// Puts `value` at `fqdn` and waits until the DNS the CA asks shows it.
    pub async fn present(&self, fqdn: &str, value: &str) -> anyhow::Result<()> {
        match &self.provider {
            Provider::Rfc2136 {
                server,
                zone,
                signer,
            } => update(*server, zone, signer, fqdn, value, true).await?,
            Provider::Exec { command } => exec(command, "present", fqdn, value).await?,
        }
        let deadline = tokio::time::Instant::now() + self.propagation_timeout;
        loop {
            if self.check.txt(fqdn).await.iter().any(|t| t == value) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "the TXT record {fqdn} was not visible within {}s",
                    self.propagation_timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Removes `value` from `fqdn` (other values there stay).
    pub async fn cleanup(&self, fqdn: &str, value: &str) -> anyhow::Result<()> {
        match &self.provider {
            Provider::Rfc2136 {
                server,
                zone,
                signer,
            } => update(*server, zone, signer, fqdn, value, false).await,
            Provider::Exec { command } => exec(command, "cleanup", fqdn, value).await,
        }
    }
}

/// The zone an update for `fqdn` goes to: the configured one, else the
/// registrable domain `fqdn` lies in.
fn zone_of(fqdn: &str, configured: &Option<Name>) -> anyhow::Result<Name> {
    if let Some(z) = configured {
        return Ok(z.clone());
    }
    let bare = fqdn.trim_end_matches('.');
    let zone = psl::domain_str(bare).context("no registrable domain for the TXT record")?;
    Ok(Name::from_ascii(format!("{zone}."))?)
}

/// One signed RFC 2136 update: add (or delete) the TXT `value` at `fqdn`.
async fn update(
    server: SocketAddr,
    zone: &Option<Name>,
    signer: &TSigner,
    fqdn: &str,
    value: &str,
    add: bool,
) -> anyhow::Result<()> {
    let zone = zone_of(fqdn, zone)?;
    let name = Name::from_ascii(format!("{}.", fqdn.trim_end_matches('.')))?;
    if !zone.zone_of(&name) {
        bail!("{fqdn} is not in the zone {zone} ([acme.dns01] zone)");
    }
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(5)))
        .with_signer(Some(signer.clone()))
        .build();
    let (mut client, bg) = Client::<TokioRuntimeProvider>::from_sender(stream);
    let bg = tokio::spawn(bg);
    let mut record = Record::from_rdata(name, TTL, RData::TXT(TXT::new(vec![value.to_string()])));
    record.dns_class = DNSClass::IN;
    let response = if add {
        client.append(record, zone.clone(), false).await
    } else {
        client.delete_by_rdata(record, zone.clone()).await
    };
    bg.abort();
    let response = response.with_context(|| format!("the DNS update to {server}"))?;
    let code = response.response_code;
    if code != ResponseCode::NoError {
        bail!("the DNS server {server} refused the update of {fqdn} in {zone}: {code}");
    }
    Ok(())
}

/// Runs the operator's program; its output is logged, not trusted.
async fn exec(command: &PathBuf, verb: &str, fqdn: &str, value: &str) -> anyhow::Result<()> {
    let child = tokio::process::Command::new(command)
        .args([verb, fqdn, value])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", command.display()))?;
    let out = match tokio::time::timeout(EXEC_TIMEOUT, child.wait_with_output()).await {
        Ok(o) => o?,
        Err(_) => bail!(
            "{} {verb} took longer than {}s",
            command.display(),
            EXEC_TIMEOUT.as_secs()
        ),
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The last 500 characters: where a program says what went wrong.
        let tail = stderr
            .char_indices()
            .rev()
            .nth(499)
            .map_or(&stderr[..], |(i, _)| &stderr[i..]);
        bail!(
            "{} {verb} {fqdn} failed ({}): {}",
            command.display(),
            out.status,
            tail.trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_names() {
        assert_eq!(challenge_name("shop.com"), "_acme-challenge.shop.com");
        assert_eq!(challenge_name("*.shop.com"), "_acme-challenge.shop.com");
        assert_eq!(
            challenge_name("www.shop.co.uk"),
            "_acme-challenge.www.shop.co.uk"
        );
    }

    #[test]
    fn zones() {
        let z = |f: &str, c: Option<&str>| {
            zone_of(f, &c.map(|c| Name::from_ascii(c).unwrap()))
                .map(|n| n.to_ascii())
                .ok()
        };
        assert_eq!(
            z("_acme-challenge.www.shop.co.uk", None).as_deref(),
            Some("shop.co.uk.")
        );
        assert_eq!(
            z("_acme-challenge.shop.com", Some("acme.example.net.")).as_deref(),
            Some("acme.example.net.")
        );
    }

    #[test]
    fn tsig_settings() {
        assert!(tsig_algorithm("hmac-sha256").is_ok());
        assert!(tsig_algorithm("HMAC-SHA512.").is_ok());
        assert!(tsig_algorithm("hmac-md5").is_err());
        assert!(tsig_secret("c2VjcmV0c2VjcmV0c2VjcmV0").is_ok());
        assert!(tsig_secret("c2hvcnQ=").is_err(), "too short");
        assert!(tsig_secret("not base64!").is_err());
    }

    #[tokio::test]
    async fn exec_reports_the_programs_failure() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hook");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"no such zone for $2\" >&2\nexit 3\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = exec(&script, "present", "_acme-challenge.shop.com", "v")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no such zone for _acme-challenge.shop.com"),
            "{err}"
        );
        let missing = exec(&dir.path().join("nope"), "present", "a", "b").await;
        assert!(missing.is_err());
    }
}
