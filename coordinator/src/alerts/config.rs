//! The `[alerts]` and `[smtp]` tables.

use std::time::Duration;

use serde::Deserialize;

/// How alerts are evaluated and notifications grouped (Alertmanager's
/// defaults).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often rules are evaluated (one coordinator of a cluster does it).
    #[serde(with = "crate::config::humantime_serde_compat")]
    pub evaluate_every: Duration,
    /// How long a group's first notification waits for other alerts of
    /// the same rule, so they go out together.
    #[serde(with = "crate::config::humantime_serde_compat")]
    pub group_wait: Duration,
    /// How long after a group's notification a change to it is sent.
    #[serde(with = "crate::config::humantime_serde_compat")]
    pub group_interval: Duration,
    /// How often a still-firing alert is sent again.
    #[serde(with = "crate::config::humantime_serde_compat")]
    pub repeat_interval: Duration,
    /// Webhook, Slack and drain URLs may point at loopback and private
    /// addresses (off: a tenant must not make the coordinator call the
    /// operator's internal services). `coordinator dev` turns it on.
    pub allow_private_targets: bool,
    /// Extra certificate authorities (PEM) trusted for webhook, Slack and
    /// drain targets, beside the public web roots: an endpoint behind
    /// the organisation's own CA.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            evaluate_every: Duration::from_secs(10),
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            allow_private_targets: false,
            ca_file: None,
        }
    }
}

impl AlertsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.evaluate_every) {
            anyhow::bail!("[alerts] evaluate_every must be between 1s and 1h");
        }
        if self.group_wait > Duration::from_secs(3600)
            || self.group_interval > Duration::from_secs(24 * 3600)
        {
            anyhow::bail!("[alerts] group_wait must be at most 1h and group_interval at most 24h");
        }
        if self.repeat_interval < Duration::from_secs(60) {
            anyhow::bail!("[alerts] repeat_interval must be at least 1m");
        }
        if self.ca_file.is_some() {
            self.roots()?;
        }
        Ok(())
    }

    /// The certificates of `ca_file` (none without one).
    pub fn roots(&self) -> anyhow::Result<Vec<reqwest::Certificate>> {
        let Some(path) = &self.ca_file else {
            return Ok(Vec::new());
        };
        let pem = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("[alerts] ca_file {}: {e}", path.display()))?;
        if pem.len() > 1 << 20 {
            anyhow::bail!("[alerts] ca_file {} is larger than 1 MiB", path.display());
        }
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| anyhow::anyhow!("[alerts] ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            anyhow::bail!("[alerts] ca_file {} holds no certificate", path.display());
        }
        Ok(certs)
    }

    /// Where deliveries may go, as `send` checks it.
    pub fn targets(&self) -> anyhow::Result<super::send::Targets> {
        Ok(super::send::Targets {
            allow_private: self.allow_private_targets,
            roots: self.roots()?,
        })
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or network.
    None,
}

/// The `[smtp]` table: the server e-mail channels send through. The
/// password may also come from `OUTPOST_SMTP_PASSWORD`; it is never
/// logged.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender, e.g. `Outpost <alerts@example.com>`.
    pub from: String,
}

fn default_port() -> u16 {
    587
}

fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

impl SmtpConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.host.is_empty() || self.host.len() > 253 {
            anyhow::bail!("[smtp] host must be a host name or address");
        }
        if self.port == 0 {
            anyhow::bail!("[smtp] port must not be 0");
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| anyhow::anyhow!("[smtp] from {:?}: {e}", self.from))?;
        if self.username.is_some() != (self.password.is_some()) {
            anyhow::bail!(
                "[smtp] username and password go together (or set OUTPOST_SMTP_PASSWORD)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tables_are_refused() {
        let ok: AlertsConfig =
            toml::from_str("evaluate_every = \"1s\"\ngroup_wait = \"0s\"").unwrap();
        ok.validate().unwrap();
        assert!(toml::from_str::<AlertsConfig>("evaluate_every = \"-1s\"").is_err());
        assert!(toml::from_str::<AlertsConfig>("nonsense = 1").is_err());
        let slow = AlertsConfig {
            evaluate_every: Duration::from_secs(7200),
            ..Default::default()
        };
        assert!(slow.validate().is_err());
        let smtp = |s: &str| {
            toml::from_str::<SmtpConfig>(s)
                .map_err(|e| e.to_string())
                .and_then(|c| c.validate().map_err(|e| e.to_string()))
        };
        smtp("host = \"127.0.0.1\"\nport = 25\nsecurity = \"none\"\nfrom = \"a@b.test\"").unwrap();
        assert!(smtp("host = \"h\"\nfrom = \"not an address\"").is_err());
        assert!(smtp("host = \"h\"\nfrom = \"a@b.test\"\nsecurity = \"ssl3\"").is_err());
        assert!(smtp("host = \"h\"\nfrom = \"a@b.test\"\nusername = \"u\"").is_err());
        // The password never reaches a log line.
        let c: SmtpConfig = toml::from_str(
            "host = \"h\"\nfrom = \"a@b.test\"\nusername = \"u\"\npassword = \"hunter2\"",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
