//! Coordinator configuration: built-in defaults, then a TOML file, then
//! environment variables and flags (clap handles those two, flags first).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    #[serde(default)]
    pub limits: Option<Limits>,
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
    pub limits: Limits,
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

    pub fn production_host(&self, project: &str) -> String {
        format!("{project}.{}", self.base_domain)
    }

    pub fn deployment_host(&self, project: &str, deployment: &str) -> String {
        format!("{project}-{deployment}.{}", self.base_domain)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        protocol::host::normalize_host(&self.base_domain)
            .map_err(|e| anyhow::anyhow!("base_domain {:?}: {e}", self.base_domain))?;
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
        ] {
            assert!(toml::from_str::<FileConfig>(bad).is_err(), "{bad}");
        }
    }
}
