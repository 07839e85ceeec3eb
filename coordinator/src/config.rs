//! Coordinator configuration: built-in defaults, then a TOML file, then
//! environment variables and flags (clap handles those two, flags first).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use protocol::names;
use serde::Deserialize;

/// The `[limits]` table: every upload is bounded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest single blob accepted by `PUT /api/v1/blobs/{hash}`.
    pub max_blob_bytes: u64,
    /// Largest JSON request body (a manifest of many files is the big one).
    pub max_json_bytes: u64,
    pub max_files: usize,
    pub max_bundle_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_blob_bytes: 128 * 1024 * 1024,
            max_json_bytes: 32 * 1024 * 1024,
            max_files: 100_000,
            max_bundle_bytes: 8 * 1024 * 1024 * 1024,
        }
    }
}

impl Limits {
    pub fn manifest(&self) -> protocol::ManifestLimits {
        protocol::ManifestLimits {
            max_files: self.max_files,
            max_file_size: self.max_blob_bytes,
            max_total_size: self.max_bundle_bytes,
        }
    }
}

/// The `[builds]` table: builds from git.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuildsConfig {
    /// Builds that may run at once on this coordinator (0 turns building off).
    pub concurrency: usize,
    /// Wall clock per build, e.g. "15m".
    #[serde(with = "humantime_serde_compat")]
    pub timeout: std::time::Duration,
    /// Memory per build process, e.g. "4GiB".
    pub memory: bytesize::ByteSize,
    /// Largest output folder a build may produce.
    pub max_output: bytesize::ByteSize,
    /// Largest log a build may print.
    pub max_log: bytesize::ByteSize,
    /// Workspaces and package caches. Every parent must be searchable by the
    /// unprivileged build user [default: <temp dir>/outpost-builds].
    pub work_dir: Option<PathBuf>,
    /// Allow `file://` and local-path repositories (tests, single-user setups).
    pub allow_local_git: bool,
    /// When set, repositories must live on one of these hosts.
    pub allowed_git_hosts: Vec<String>,
    /// When set, builds reach only these hosts (and their subdomains)
    /// through their network proxy, e.g. `["registry.npmjs.org"]`; never
    /// internal addresses, whatever the list says.
    pub allowed_egress_hosts: Vec<String>,
    /// Processes (and threads) one build runs at once.
    pub max_processes: u64,
    /// The checkout's size on disk (node_modules included); a build past
    /// it is stopped.
    pub max_workspace: bytesize::ByteSize,
}

impl Default for BuildsConfig {
    fn default() -> Self {
        let limits = builder::Limits::default();
        BuildsConfig {
            concurrency: 1,
            timeout: limits.timeout,
            memory: bytesize::ByteSize(limits.memory_bytes),
            max_output: bytesize::ByteSize(limits.max_output_bytes),
            max_log: bytesize::ByteSize(limits.max_log_bytes),
            work_dir: None,
            allow_local_git: false,
            allowed_git_hosts: Vec::new(),
            allowed_egress_hosts: Vec::new(),
            max_processes: limits.max_processes,
            max_workspace: bytesize::ByteSize(limits.max_workspace_bytes),
        }
    }
}

impl BuildsConfig {
    pub fn limits(&self) -> builder::Limits {
        builder::Limits {
            timeout: self.timeout,
            memory_bytes: self.memory.as_u64(),
            max_output_bytes: self.max_output.as_u64(),
            max_log_bytes: self.max_log.as_u64(),
            max_processes: self.max_processes.max(16),
            max_workspace_bytes: self.max_workspace.as_u64(),
        }
    }

    pub fn work_dir(&self) -> PathBuf {
        self.work_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("outpost-builds"))
    }
}

/// The `[accounts]` table: sign-up and sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Anyone who reaches the dashboard may create an account (the first
    /// account can always be created: it becomes the instance owner).
    pub open_signup: bool,
    /// How long a dashboard session lasts, e.g. "14d".
    #[serde(with = "humantime_serde_compat")]
    pub session_ttl: std::time::Duration,
    /// Mark session cookies `Secure`. Turn on when the dashboard is served
    /// over TLS (a request with `X-Forwarded-Proto: https` also gets it).
    pub secure_cookies: bool,
    /// Take the client address from `X-Forwarded-For` (behind a proxy you
    /// run); otherwise the TCP peer address is used for rate limits. With
    /// no `trusted_proxies`, the proxy is taken to be on loopback.
    pub trust_forwarded_for: bool,
    /// Addresses (`10.0.0.5`) and networks (`10.0.0.0/8`) of proxies of
    /// yours: a request from one has its client address taken from
    /// `X-Forwarded-For`, the rightmost entry that is not itself a trusted
    /// proxy (as nginx's `real_ip_recursive`), so a client cannot choose it.
    #[serde(deserialize_with = "proxies_serde::deserialize")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl AccountsConfig {
    /// The proxies whose `X-Forwarded-For` is believed.
    pub fn proxies(&self) -> &[ipnet::IpNet] {
        static LOOPBACK: std::sync::LazyLock<Vec<ipnet::IpNet>> = std::sync::LazyLock::new(|| {
            vec![
                "127.0.0.0/8".parse().expect("a network"),
                "::1/128".parse().expect("a network"),
            ]
        });
        match (self.trust_forwarded_for, self.trusted_proxies.is_empty()) {
            (_, false) => &self.trusted_proxies,
            (true, true) => &LOOPBACK,
            (false, true) => &[],
        }
    }
}

/// `trusted_proxies = ["10.0.0.5", "10.1.0.0/16"]`.
mod proxies_serde {
    use serde::{de::Error, Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
        let v: Vec<String> = Vec::deserialize(d)?;
        if v.len() > 256 {
            return Err(D::Error::custom("at most 256 trusted proxies"));
        }
        v.iter()
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        D::Error::custom(format!(
                            "{s:?} is not an address or network like 10.0.0.5 or 10.0.0.0/8"
                        ))
                    })
            })
            .collect()
    }
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            open_signup: true,
            session_ttl: std::time::Duration::from_secs(14 * 24 * 3600),
            secure_cookies: false,
            trust_forwarded_for: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The `[retention]` table: what is deleted automatically, and when.
/// Projects may override the deployment rules (`PUT /projects/{p}/retention`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Preview deployments older than this many days are deleted (0: never).
    pub preview_days: u32,
    /// Production deployments beyond the newest this many are deleted
    /// (never the current one; 0: keep all).
    pub production_keep: u32,
    /// Failed and canceled builds are deleted after this many days.
    pub failed_days: u32,
    /// Function log lines expire after this many days.
    pub function_log_days: u32,
    /// Build logs of finished builds expire after this many days.
    pub build_log_days: u32,
    /// Blobs no bundle references are swept once they are this old (the
    /// grace period that protects uploads for deployments not yet made).
    #[serde(with = "humantime_serde_compat")]
    pub blob_grace: std::time::Duration,
    /// How often the retention and garbage collection pass runs.
    #[serde(with = "humantime_serde_compat")]
    pub every: std::time::Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            preview_days: 30,
            production_keep: 20,
            failed_days: 7,
            function_log_days: 7,
            build_log_days: 30,
            blob_grace: std::time::Duration::from_secs(3600),
            every: std::time::Duration::from_secs(600),
        }
    }
}

/// The `[nodes]` table: how the cluster trusts its edge nodes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct NodesConfig {
    /// How long a node certificate lasts (default "30d"); nodes renew
    /// theirs with a third left, and one offline for longer joins again.
    /// The coordinator's own QUIC certificate lasts as long.
    #[serde(with = "humantime_serde_compat")]
    pub cert_lifetime: std::time::Duration,
}

impl Default for NodesConfig {
    fn default() -> Self {
        NodesConfig {
            cert_lifetime: std::time::Duration::from_secs(
                protocol::node_cert::NODE_CERT_SECS as u64,
            ),
        }
    }
}

impl NodesConfig {
    pub fn cert_secs(&self) -> i64 {
        self.cert_lifetime.as_secs() as i64
    }
}

/// The `[domains]` table: where custom domains must point, and how the
/// coordinator checks that they do.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsConfig {
    /// The name users CNAME their subdomains to (e.g. `edge.example.net`,
    /// whose A/AAAA records list the edges).
    pub cname_target: Option<String>,
    /// The edges' public addresses, for apex domains (a CNAME cannot stand
    /// at `shop.com`) and for users who prefer A/AAAA records.
    pub apex_addresses: Vec<std::net::IpAddr>,
    /// The DNS server verification asks (`127.0.0.1:53`); default: the
    /// system's resolvers.
    pub resolver: Option<SocketAddr>,
    /// Let tenants add names under the platform's base domain.
    pub allow_under_base_domain: bool,
    /// How often every domain's DNS is checked again (pending ones, and
    /// active ones in case their records moved away).
    #[serde(with = "humantime_serde_compat")]
    pub recheck_every: std::time::Duration,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        DomainsConfig {
            cname_target: None,
            apex_addresses: Vec::new(),
            resolver: None,
            allow_under_base_domain: false,
            recheck_every: std::time::Duration::from_secs(300),
        }
    }
}

impl DomainsConfig {
    pub fn fleet(&self) -> crate::domains::dns::Fleet {
        crate::domains::dns::Fleet {
            cname_target: self.cname_target.clone(),
            apex_addresses: self.apex_addresses.clone(),
        }
    }
}

/// The `[acme]` table: the CA custom domains' certificates come from.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Issue certificates for custom domains at all.
    pub enabled: bool,
    /// The CA's directory URL [default: Let's Encrypt production].
    pub directory: String,
    /// Tried when `directory` keeps failing (as Caddy falls back to
    /// ZeroSSL); the same account key is used there.
    pub fallback_directory: Option<String>,
    /// The account's contact address.
    pub email: Option<String>,
    /// External Account Binding (ZeroSSL, Google): key id and the base64url
    /// HMAC key the CA gave.
    pub eab_kid: Option<String>,
    pub eab_hmac_key: Option<String>,
    /// A PEM CA certificate the directory's own HTTPS is checked against
    /// (a test CA such as Pebble's); default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Challenge types in the order tried: `http-01`, `tls-alpn-01`,
    /// `dns-01`. A failed attempt tries the next one. Wildcards always use
    /// DNS-01.
    pub challenges: Vec<String>,
    /// `[acme.dns01]`: the DNS provider DNS-01 writes its TXT records
    /// with (wildcard domains need it).
    pub dns01: Option<Dns01Config>,
    /// Also get a publicly trusted `*.<base_domain>` through DNS-01, so
    /// every per-deployment and branch URL is trusted by browsers (the
    /// cluster CA's stays as the fallback).
    pub base_domain: bool,
}

/// The `[acme.dns01]` table.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Dns01Config {
    /// `rfc2136` (dynamic updates signed with TSIG) or `exec`.
    pub provider: String,
    /// rfc2136: the primary server taking updates (`192.0.2.53:53`).
    pub server: Option<SocketAddr>,
    /// rfc2136: the zone updated; default: the registrable domain of the
    /// record (set it when `_acme-challenge` names are CNAMEs into a zone
    /// of yours).
    pub zone: Option<String>,
    pub tsig_key_name: Option<String>,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    pub tsig_algorithm: Option<String>,
    /// The key's secret, base64 as in BIND's `key` statement.
    pub tsig_secret: Option<String>,
    /// exec: run as `COMMAND present|cleanup <fqdn> <value>`.
    pub command: Option<PathBuf>,
    /// How long the TXT record may take to be visible.
    #[serde(
        with = "humantime_serde_compat",
        default = "Dns01Config::default_propagation"
    )]
    pub propagation_timeout: std::time::Duration,
}

/// Secrets (the EAB HMAC key, the TSIG secret) stay out of logs.
impl std::fmt::Debug for AcmeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeConfig")
            .field("enabled", &self.enabled)
            .field("directory", &self.directory)
            .field("fallback_directory", &self.fallback_directory)
            .field("email", &self.email)
            .field("eab_kid", &self.eab_kid)
            .field(
                "eab_hmac_key",
                &self.eab_hmac_key.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_file", &self.ca_file)
            .field("challenges", &self.challenges)
            .field("dns01", &self.dns01)
            .field("base_domain", &self.base_domain)
            .finish()
    }
}

impl std::fmt::Debug for Dns01Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns01Config")
            .field("provider", &self.provider)
            .field("server", &self.server)
            .field("zone", &self.zone)
            .field("tsig_key_name", &self.tsig_key_name)
            .field("tsig_algorithm", &self.tsig_algorithm)
            .field(
                "tsig_secret",
                &self.tsig_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("command", &self.command)
            .field("propagation_timeout", &self.propagation_timeout)
            .finish()
    }
}

impl Dns01Config {
    fn default_propagation() -> std::time::Duration {
        std::time::Duration::from_secs(120)
    }
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: true,
            directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            fallback_directory: None,
            email: None,
            eab_kid: None,
            eab_hmac_key: None,
            ca_file: None,
            challenges: vec!["http-01".into(), "tls-alpn-01".into()],
            dns01: None,
            base_domain: false,
        }
    }
}

impl AcmeConfig {
    pub const CHALLENGES: [&'static str; 3] = ["http-01", "tls-alpn-01", "dns-01"];

    pub fn validate(&self) -> anyhow::Result<()> {
        for d in std::iter::once(&self.directory).chain(&self.fallback_directory) {
            if !d.starts_with("https://") || d.len() > 500 || d.chars().any(char::is_whitespace) {
                anyhow::bail!("[acme] directory {d:?} must be an https:// URL");
            }
        }
        if let Some(e) = &self.email {
            crate::accounts::validate::email(e)
                .map_err(|m| anyhow::anyhow!("[acme] email {e:?}: {m}"))?;
        }
        match (&self.eab_kid, &self.eab_hmac_key) {
            (None, None) => {}
            (Some(kid), Some(key)) => {
                if kid.is_empty() || kid.len() > 256 {
                    anyhow::bail!("[acme] eab_kid must be 1-256 characters");
                }
                crate::acme::decode_hmac_key(key)
                    .map_err(|m| anyhow::anyhow!("[acme] eab_hmac_key: {m}"))?;
            }
            _ => anyhow::bail!("[acme] eab_kid and eab_hmac_key go together"),
        }
        if self.challenges.is_empty() || self.challenges.len() > Self::CHALLENGES.len() {
            anyhow::bail!(
                "[acme] challenges lists one or more of {:?}",
                Self::CHALLENGES
            );
        }
        for c in &self.challenges {
            if !Self::CHALLENGES.contains(&c.as_str()) {
                anyhow::bail!(
                    "[acme] challenges: {c:?} is not one of {:?}",
                    Self::CHALLENGES
                );
            }
            if c == "dns-01" && self.dns01.is_none() {
                anyhow::bail!("[acme] challenges lists dns-01, which needs [acme.dns01]");
            }
        }
        if let Some(d) = &self.dns01 {
            d.validate()?;
        }
        if self.base_domain && self.dns01.is_none() {
            anyhow::bail!(
                "[acme] base_domain = true needs [acme.dns01]: a wildcard is proven through DNS-01"
            );
        }
        Ok(())
    }
}

impl Dns01Config {
    pub fn validate(&self) -> anyhow::Result<()> {
        match self.provider.as_str() {
            "rfc2136" => {
                if self.server.is_none()
                    || self.tsig_key_name.is_none()
                    || self.tsig_secret.is_none()
                {
                    anyhow::bail!(
                        "[acme.dns01] provider \"rfc2136\" needs server, tsig_key_name and tsig_secret"
                    );
                }
                let name = self.tsig_key_name.as_deref().unwrap_or_default();
                if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_whitespace()) {
                    anyhow::bail!("[acme.dns01] tsig_key_name {name:?} is not a key name");
                }
                crate::acme::dns01::tsig_algorithm(
                    self.tsig_algorithm.as_deref().unwrap_or("hmac-sha256"),
                )
                .map_err(|m| anyhow::anyhow!("[acme.dns01] tsig_algorithm: {m}"))?;
                crate::acme::dns01::tsig_secret(self.tsig_secret.as_deref().unwrap_or_default())
                    .map_err(|m| anyhow::anyhow!("[acme.dns01] tsig_secret: {m}"))?;
                if let Some(z) = &self.zone {
                    protocol::host::normalize_host(z.trim_end_matches('.'))
                        .map_err(|e| anyhow::anyhow!("[acme.dns01] zone {z:?}: {e}"))?;
                }
            }
            "exec" => {
                let Some(c) = &self.command else {
                    anyhow::bail!("[acme.dns01] provider \"exec\" needs command");
                };
                if !c.is_absolute() {
                    anyhow::bail!(
                        "[acme.dns01] command {} must be an absolute path",
                        c.display()
                    );
                }
            }
            other => {
                anyhow::bail!("[acme.dns01] provider {other:?} is not \"rfc2136\" or \"exec\"")
            }
        }
        if self.propagation_timeout.is_zero()
            || self.propagation_timeout > std::time::Duration::from_secs(3600)
        {
            anyhow::bail!("[acme.dns01] propagation_timeout is between 1 second and 1 hour");
        }
        Ok(())
    }
}

/// The `[quotas]` table: what one team may hold, unless the instance owner
/// set the team's own (`PUT /teams/{id}/quotas`).
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Quotas {
    pub projects: u64,
    /// Deployments not yet deleted (ready or uploading), over all projects.
    pub deployments: u64,
    /// Sum of the bundle sizes of those deployments.
    pub stored_bytes: u64,
    /// Variables per project (a name counts once for all environments).
    pub variables: u64,
    /// Total size of one project's variable values.
    pub variable_bytes: u64,
    /// Function routes per deployment.
    pub functions: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            projects: 100,
            deployments: 200_000,
            stored_bytes: 100 * 1024 * 1024 * 1024,
            variables: 200,
            variable_bytes: 256 * 1024,
            functions: 100,
        }
    }
}

/// The `[analytics]` table: how long traffic analytics are kept, per
/// granularity (minutes 48 h, hours 90 days, days for ever by default, as
/// Plausible and Netlify keep them).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    #[serde(with = "humantime_serde_compat")]
    pub minute_retention: std::time::Duration,
    #[serde(with = "humantime_serde_compat")]
    pub hour_retention: std::time::Duration,
    /// `None`: day rollups are kept for ever.
    #[serde(with = "humantime_serde_option")]
    pub day_retention: Option<std::time::Duration>,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            minute_retention: std::time::Duration::from_secs(48 * 3600),
            hour_retention: std::time::Duration::from_secs(90 * 86_400),
            day_retention: None,
        }
    }
}

impl AnalyticsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        let hour = std::time::Duration::from_secs(3600);
        if self.minute_retention < hour {
            anyhow::bail!("[analytics] minute_retention must be at least one hour");
        }
        if self.hour_retention < self.minute_retention.max(hour * 24) {
            anyhow::bail!(
                "[analytics] hour_retention must be at least a day and at least minute_retention"
            );
        }
        if self.day_retention.is_some_and(|d| d < self.hour_retention) {
            anyhow::bail!("[analytics] day_retention must be at least hour_retention");
        }
        Ok(())
    }

    /// Retention per granularity in seconds (`None`: for ever).
    pub fn retention(&self) -> Vec<(analytics::Granularity, Option<i64>)> {
        vec![
            (
                analytics::Granularity::Minute,
                Some(self.minute_retention.as_secs() as i64),
            ),
            (
                analytics::Granularity::Hour,
                Some(self.hour_retention.as_secs() as i64),
            ),
            (
                analytics::Granularity::Day,
                self.day_retention.map(|d| d.as_secs() as i64),
            ),
        ]
    }
}

mod humantime_serde_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let s = String::deserialize(d)?;
        if s == "forever" {
            return Ok(None);
        }
        humantime::parse_duration(&s)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e} (or \"forever\")")))
    }
}

/// The `[metrics]` table: who may read `GET /metrics`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The bearer token every scrape must carry (`Authorization: Bearer
    /// …`), loopback too. Unset: only requests from a loopback address,
    /// not relayed by a proxy, are answered.
    pub token: Option<String>,
}

/// The token stays out of logs.
impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl MetricsConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(t) = &self.token {
            // It travels in a header: printable ASCII, no spaces; long
            // enough not to be guessed.
            if !(16..=256).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_graphic()) {
                anyhow::bail!(
                    "[metrics] token must be 16-256 printable ASCII characters without spaces"
                );
            }
        }
        Ok(())
    }
}

/// `timeout = "15m"` in TOML.
pub(crate) mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// The TOML file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub api_addr: Option<SocketAddr>,
    pub quic_addr: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub base_domain: Option<String>,
    pub public_url: Option<String>,
    pub api_url: Option<String>,
    /// `all`, `api` or `builder` (see `role.rs`).
    pub role: Option<crate::role::Role>,
    /// The QUIC address edges reach this coordinator at (`host:port`).
    pub quic_advertise: Option<String>,
    #[serde(default)]
    pub blobs: Option<crate::blobs::BlobsConfig>,
    #[serde(default)]
    pub limits: Option<Limits>,
    #[serde(default)]
    pub builds: Option<BuildsConfig>,
    #[serde(default)]
    pub accounts: Option<AccountsConfig>,
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
    #[serde(default)]
    pub quotas: Option<Quotas>,
    #[serde(default)]
    pub nodes: Option<NodesConfig>,
    #[serde(default)]
    pub domains: Option<DomainsConfig>,
    #[serde(default)]
    pub acme: Option<AcmeConfig>,
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    #[serde(default)]
    pub analytics: Option<AnalyticsConfig>,
    #[serde(default)]
    pub rate_limits: Option<crate::ratelimit::RateLimitsConfig>,
    #[serde(default)]
    pub alerts: Option<crate::alerts::config::AlertsConfig>,
    #[serde(default)]
    pub smtp: Option<crate::alerts::config::SmtpConfig>,
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading config file {}: {e}", path.display()))?;
        if text.len() > 1024 * 1024 {
            anyhow::bail!("config file {} is larger than 1 MiB", path.display());
        }
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))
    }
}

/// The resolved configuration the coordinator runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub api_addr: SocketAddr,
    pub quic_addr: SocketAddr,
    /// `sqlite://…` (default: `<data_dir>/coordinator.db`) or `postgres://…`.
    pub database_url: String,
    /// Sites are served as `<project>.<base_domain>`.
    pub base_domain: String,
    /// How users reach edges, `{host}` standing for the site's host name,
    /// e.g. `https://{host}` or `http://{host}:8080`.
    pub public_url: String,
    /// How people and git hosts reach the API and dashboard (webhook and
    /// invitation links); default: `http://<api_addr>` as bound.
    pub api_url: Option<String>,
    /// What this process runs (`--role`).
    pub role: crate::role::Role,
    /// The QUIC address edges reach this coordinator at, published in the
    /// edge config so they can fail over to it; default: the bound QUIC
    /// address when it is a specific one.
    pub quic_advertise: Option<String>,
    /// `[blobs]`: local disk, or an S3-compatible store.
    pub blobs: crate::blobs::BlobsConfig,
    pub limits: Limits,
    pub builds: BuildsConfig,
    pub accounts: AccountsConfig,
    pub retention: RetentionConfig,
    pub quotas: Quotas,
    pub nodes: NodesConfig,
    pub domains: DomainsConfig,
    pub acme: AcmeConfig,
    pub metrics: MetricsConfig,
    pub analytics: AnalyticsConfig,
    /// `[rate_limits]`: API requests per credential and route class.
    pub rate_limits: crate::ratelimit::RateLimitsConfig,
    /// `[alerts]`: evaluation and notification grouping.
    pub alerts: crate::alerts::config::AlertsConfig,
    /// `[smtp]`: the server e-mail channels send through (none: e-mail
    /// deliveries fail, visibly).
    pub smtp: Option<crate::alerts::config::SmtpConfig>,
    /// Key for secrets at rest (64 hex); default: `<data_dir>/secret.key`.
    pub secret_key: Option<String>,
}

impl Config {
    pub fn site_url(&self, host: &str) -> String {
        let mut u = self.public_url.replace("{host}", host);
        if !u.ends_with('/') {
            u.push('/');
        }
        u
    }

    /// The API's address as clients on this host reach it (webhook URLs).
    /// The QUIC address published for edges: `quic_advertise`, else the
    /// bound address unless it is unspecified (0.0.0.0 names no host).
    pub fn quic_advertised(&self, bound: SocketAddr) -> Option<String> {
        if let Some(a) = &self.quic_advertise {
            return Some(a.clone());
        }
        (!bound.ip().is_unspecified()).then(|| bound.to_string())
    }

    pub fn api_url(&self) -> String {
        match &self.api_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.api_addr),
        }
    }

    /// `<project>.<base>` (see `protocol::names` for why hosts are spelled so).
    pub fn production_host(&self, project: &str) -> String {
        format!("{}.{}", names::production_label(project), self.base_domain)
    }

    /// `<deployment>--<project>.<base>`.
    pub fn deployment_host(&self, project: &str, deployment: &str) -> String {
        format!(
            "{}.{}",
            names::deployment_label(project, deployment),
            self.base_domain
        )
    }

    /// The stable preview host of a branch: `git-<branch slug>--<project>.<base>`.
    pub fn branch_host(&self, project: &str, branch: &str) -> String {
        format!(
            "{}.{}",
            names::branch_label(project, branch),
            self.base_domain
        )
    }

    /// The dashboard's host when it lies at or under the sites' base
    /// domain: a tenant's site there could then set cookies the dashboard
    /// reads (cookie tossing); the `__Host-` session cookie guards only
    /// over TLS. Start-up warns about it.
    pub fn dashboard_under_base_domain(&self) -> Option<String> {
        let url = self.api_url();
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or(authority),
        }
        .trim_end_matches('.')
        .to_ascii_lowercase();
        let base = self.base_domain.trim_end_matches('.').to_ascii_lowercase();
        (host == base || host.ends_with(&format!(".{base}"))).then_some(host)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.accounts.session_ttl < std::time::Duration::from_secs(60) {
            anyhow::bail!("[accounts] session_ttl must be at least one minute");
        }
        let life = self.nodes.cert_lifetime.as_secs();
        // Renewal is checked every 10 s, with a third of the lifetime left.
        if !(30..=365 * 24 * 3600).contains(&life) {
            anyhow::bail!("[nodes] cert_lifetime must be between 30 seconds and 365 days");
        }
        if let Some(t) = &self.domains.cname_target {
            protocol::host::normalize_host(t.trim_end_matches('.'))
                .map_err(|e| anyhow::anyhow!("[domains] cname_target {t:?}: {e}"))?;
        }
        if self.domains.apex_addresses.len() > 16 {
            anyhow::bail!("[domains] apex_addresses lists at most 16 addresses");
        }
        if self.domains.recheck_every < std::time::Duration::from_secs(1) {
            anyhow::bail!("[domains] recheck_every must be at least one second");
        }
        self.acme.validate()?;
        self.blobs.validate()?;
        if let Some(a) = &self.quic_advertise {
            if !protocol::config::CoordinatorList::is_valid_addr(a) {
                anyhow::bail!(
                    "quic_advertise {a:?} must be host:port (a DNS name or IP address and a port)"
                );
            }
        }
        self.metrics.validate()?;
        self.analytics.validate()?;
        self.alerts.validate()?;
        if let Some(s) = &self.smtp {
            s.validate()?;
        }
        if self.retention.every < std::time::Duration::from_secs(1) {
            anyhow::bail!("[retention] every must be at least one second");
        }
        if self.builds.timeout.is_zero() || self.builds.memory.as_u64() < 64 << 20 {
            anyhow::bail!("[builds] timeout must be positive and memory at least 64MiB");
        }
        protocol::host::normalize_host(&self.base_domain)
            .map_err(|e| anyhow::anyhow!("base_domain {:?}: {e}", self.base_domain))?;
        if crate::ca::is_internal(&self.base_domain) {
            anyhow::bail!(
                "base_domain {:?} is in the cluster's internal name space ({}), where node identities live",
                self.base_domain,
                crate::ca::INTERNAL_DOMAIN
            );
        }
        if let Some(u) = &self.api_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 200 {
                anyhow::bail!("api_url {u:?} must be an http:// or https:// URL");
            }
        }
        if !self.public_url.contains("{host}") {
            anyhow::bail!("public_url {:?} must contain {{host}}", self.public_url);
        }
        if self.limits.max_blob_bytes == 0
            || self.limits.max_json_bytes == 0
            || self.limits.max_files == 0
        {
            anyhow::bail!("limits must be greater than zero");
        }
        Ok(())
    }
}

pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("coordinator.db").display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base_domain: &str) -> Config {
        Config {
            data_dir: "/tmp/x".into(),
            api_addr: "127.0.0.1:0".parse().unwrap(),
            quic_addr: "127.0.0.1:0".parse().unwrap(),
            database_url: "sqlite://x".into(),
            base_domain: base_domain.into(),
            public_url: "http://{host}".into(),
            api_url: None,
            role: Default::default(),
            quic_advertise: None,
            blobs: Default::default(),
            limits: Default::default(),
            builds: Default::default(),
            accounts: Default::default(),
            retention: Default::default(),
            quotas: Default::default(),
            nodes: Default::default(),
            domains: Default::default(),
            acme: Default::default(),
            metrics: Default::default(),
            analytics: Default::default(),
            rate_limits: Default::default(),
            alerts: Default::default(),
            smtp: None,
            secret_key: None,
        }
    }

    #[test]
    fn a_dashboard_under_the_sites_base_domain_is_noticed() {
        for (api_url, base, under) in [
            (None, "localhost", false),
            (Some("https://dash.example.com"), "example.com", true),
            (Some("https://example.com/"), "example.com", true),
            (
                Some("https://dash.example.com:8443/x"),
                "sites.example.com",
                false,
            ),
            (
                Some("https://Dash.Sites.Example.com."),
                "sites.example.com",
                true,
            ),
            (Some("https://notexample.com"), "example.com", false),
            (Some("http://[::1]:8700"), "localhost", false),
        ] {
            let mut c = config(base);
            c.api_url = api_url.map(str::to_string);
            assert_eq!(
                c.dashboard_under_base_domain().is_some(),
                under,
                "{api_url:?} {base}"
            );
        }
    }

    #[test]
    fn the_base_domain_and_node_certificates_are_checked() {
        config("localhost").validate().unwrap();
        config("sites.example.com").validate().unwrap();
        for internal in [
            "outpost.internal",
            "node.outpost.internal",
            "x.outpost.internal",
        ] {
            let e = config(internal).validate().unwrap_err().to_string();
            assert!(e.contains("internal name space"), "{internal}: {e}");
        }
        let mut c = config("localhost");
        c.nodes.cert_lifetime = std::time::Duration::from_secs(5);
        assert!(c.validate().is_err());
    }

    #[test]
    fn file_config_rejects_unknown_keys_and_bad_values() {
        let ok: FileConfig =
            toml::from_str("base_domain = \"example.com\"\n[limits]\nmax_files = 5\n").unwrap();
        assert_eq!(ok.limits.unwrap().max_files, 5);
        for bad in [
            "unknown = 1",
            "api_addr = \"not an address\"",
            "[limits]\nmax_files = -1",
            "[limits]\nbogus = 1",
            "base_domain = [",
            "[builds]\ntimeout = \"soon\"",
            "[builds]\nmemory = \"lots\"",
            "[builds]\nbogus = 1",
            "[retention]\npreview_days = -1",
            "[retention]\nevery = \"often\"",
            "[quotas]\nprojects = \"many\"",
            "[quotas]\nbogus = 1",
            "[nodes]\ncert_lifetime = \"soon\"",
            "[nodes]\nbogus = 1",
            "[accounts]\ntrusted_proxies = [\"not an address\"]",
            "[accounts]\ntrusted_proxies = [\"10.0.0.0/99\"]",
        ] {
            assert!(toml::from_str::<FileConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn acme_settings_are_checked() {
        let dns = |provider: &str| Dns01Config {
            provider: provider.into(),
            server: Some("127.0.0.1:53".parse().unwrap()),
            zone: None,
            tsig_key_name: Some("outpost.".into()),
            tsig_algorithm: None,
            tsig_secret: Some("c2VjcmV0c2VjcmV0c2VjcmV0".into()),
            command: Some("/usr/local/bin/hook".into()),
            propagation_timeout: std::time::Duration::from_secs(60),
        };
        let ok = AcmeConfig::default();
        assert!(ok.validate().is_ok());
        let cases: Vec<(AcmeConfig, &str)> = vec![
            (
                AcmeConfig {
                    directory: "http://ca.example/dir".into(),
                    ..Default::default()
                },
                "https:// URL",
            ),
            (
                AcmeConfig {
                    email: Some("not an address".into()),
                    ..Default::default()
                },
                "[acme] email",
            ),
            (
                AcmeConfig {
                    eab_kid: Some("kid".into()),
                    ..Default::default()
                },
                "go together",
            ),
            (
                AcmeConfig {
                    eab_kid: Some("kid".into()),
                    eab_hmac_key: Some("!!".into()),
                    ..Default::default()
                },
                "eab_hmac_key",
            ),
            (
                AcmeConfig {
                    challenges: vec!["dns-01".into()],
                    ..Default::default()
                },
                "needs [acme.dns01]",
            ),
            (
                AcmeConfig {
                    challenges: vec!["http-02".into()],
                    ..Default::default()
                },
                "not one of",
            ),
            (
                AcmeConfig {
                    challenges: vec![],
                    ..Default::default()
                },
                "one or more",
            ),
            (
                AcmeConfig {
                    base_domain: true,
                    ..Default::default()
                },
                "base_domain = true needs",
            ),
            (
                AcmeConfig {
                    dns01: Some(dns("route53")),
                    ..Default::default()
                },
                "is not \"rfc2136\" or \"exec\"",
            ),
            (
                AcmeConfig {
                    dns01: Some(Dns01Config {
                        tsig_secret: Some("c2hvcnQ=".into()),
                        ..dns("rfc2136")
                    }),
                    ..Default::default()
                },
                "tsig_secret",
            ),
            (
                AcmeConfig {
                    dns01: Some(Dns01Config {
                        tsig_algorithm: Some("hmac-md5".into()),
                        ..dns("rfc2136")
                    }),
                    ..Default::default()
                },
                "tsig_algorithm",
            ),
            (
                AcmeConfig {
                    dns01: Some(Dns01Config {
                        server: None,
                        ..dns("rfc2136")
                    }),
                    ..Default::default()
                },
                "needs server",
            ),
            (
                AcmeConfig {
                    dns01: Some(Dns01Config {
                        command: Some("relative/hook".into()),
                        ..dns("exec")
                    }),
                    ..Default::default()
                },
                "absolute path",
            ),
            (
                AcmeConfig {
                    dns01: Some(Dns01Config {
                        propagation_timeout: std::time::Duration::ZERO,
                        ..dns("exec")
                    }),
                    ..Default::default()
                },
                "propagation_timeout",
            ),
        ];
        for (c, want) in cases {
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want:?})");
        }
        for good in ["rfc2136", "exec"] {
            let c = AcmeConfig {
                dns01: Some(dns(good)),
                base_domain: true,
                ..Default::default()
            };
            assert!(c.validate().is_ok(), "{good}");
        }
    }

    #[test]
    fn the_metrics_token_is_checked_and_kept_out_of_debug() {
        let with = |t: &str| MetricsConfig {
            token: Some(t.into()),
        };
        assert!(MetricsConfig::default().validate().is_ok());
        assert!(with("0123456789abcdef-SECRETMETRICS").validate().is_ok());
        for bad in [
            "short",
            "has a space in it ok",
            "tab\there-0123456789",
            "é-0123456789abcdef",
            &"x".repeat(257),
        ] {
            let e = with(bad).validate().unwrap_err().to_string();
            assert!(e.contains("[metrics] token"), "{bad:?}: {e}");
        }
        let shown = format!("{:?}", with("0123456789abcdef-SECRETMETRICS"));
        assert!(
            !shown.contains("SECRETMETRICS") && shown.contains("<redacted>"),
            "{shown}"
        );
        let file: FileConfig = toml::from_str("[metrics]\ntoken = \"0123456789abcdef\"\n").unwrap();
        assert_eq!(
            file.metrics.unwrap().token.as_deref(),
            Some("0123456789abcdef")
        );
        assert!(toml::from_str::<FileConfig>("[metrics]\ntokn = \"x\"\n").is_err());
        let mut c = config("localhost");
        c.metrics = with("short");
        assert!(c.validate().is_err());
    }

    #[test]
    fn acme_secrets_stay_out_of_debug() {
        let c = AcmeConfig {
            eab_kid: Some("kid".into()),
            eab_hmac_key: Some("SECRETHMAC".into()),
            dns01: Some(Dns01Config {
                provider: "rfc2136".into(),
                server: None,
                zone: None,
                tsig_key_name: None,
                tsig_algorithm: None,
                tsig_secret: Some("SECRETTSIG".into()),
                command: None,
                propagation_timeout: std::time::Duration::from_secs(1),
            }),
            ..Default::default()
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("SECRETHMAC") && !shown.contains("SECRETTSIG"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn unknown_acme_keys_are_refused() {
        let err = toml::from_str::<FileConfig>("[acme]\ndirectroy = \"https://x/dir\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("directroy"), "{err}");
        let err =
            toml::from_str::<FileConfig>("[acme.dns01]\nprovider = \"exec\"\nsecret = \"x\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("secret"), "{err}");
    }
}
