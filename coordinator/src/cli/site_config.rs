//! `outpost.toml` in a deployed folder, and the `api/<name>.wasm`
//! convention: which files are functions, on which routes, with which
//! limits.
//!
//! ```toml
//! [[functions]]
//! route = "/api/users/:id"
//! component = "functions/users.wasm"
//! timeout = "10s"
//! memory = "128MiB"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use protocol::functions::{validate_route, DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_MS};
use serde::Deserialize;

pub const FILE_NAME: &str = "outpost.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteConfig {
    #[serde(default)]
    functions: Vec<FunctionConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionConfig {
    route: String,
    component: String,
    timeout: Option<String>,
    memory: Option<String>,
}

/// A function as the deploy command will put it in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Bundle-relative path of the `.wasm` file.
    pub component: String,
    pub timeout_ms: u32,
    pub memory_bytes: u64,
}

fn parse_timeout(s: &str) -> anyhow::Result<u32> {
    let d = humantime::parse_duration(s)
        .with_context(|| format!("timeout {s:?} (e.g. \"10s\", \"500ms\")"))?;
    u32::try_from(d.as_millis()).context("timeout too large")
}

fn parse_memory(s: &str) -> anyhow::Result<u64> {
    let b: bytesize::ByteSize = s
        .parse()
        .map_err(|e| anyhow::anyhow!("memory {s:?} (e.g. \"128MiB\"): {e}"))?;
    Ok(b.as_u64())
}

/// Routes → functions for the folder's file list (bundle-relative paths).
/// Convention: `api/<name>.wasm` serves `/api/<name>` and `/api/<name>/*`;
/// `outpost.toml` adds or overrides routes.
pub fn functions(dir: &Path, files: &[String]) -> anyhow::Result<BTreeMap<String, FunctionSpec>> {
    let mut out = BTreeMap::new();
    for f in files {
        if let Some(name) = f.strip_prefix("api/").and_then(|n| n.strip_suffix(".wasm")) {
            if name.contains('/') {
                continue;
            }
            let spec = FunctionSpec {
                component: f.clone(),
                timeout_ms: DEFAULT_TIMEOUT_MS,
                memory_bytes: DEFAULT_MEMORY_BYTES,
            };
            out.insert(format!("/api/{name}"), spec.clone());
            out.insert(format!("/api/{name}/*"), spec);
        }
    }
    let path = dir.join(FILE_NAME);
    if !path.exists() {
        return Ok(out);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if text.len() > 256 * 1024 {
        bail!("{} is larger than 256 KiB", path.display());
    }
    let cfg: SiteConfig =
        toml::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?;
    for f in cfg.functions {
        validate_route(&f.route).with_context(|| format!("{FILE_NAME}: function route"))?;
        let component = f.component.trim_start_matches("./").to_string();
        if !files.contains(&component) {
            bail!(
                "{FILE_NAME}: function {} names {:?}, which is not in the folder",
                f.route,
                f.component
            );
        }
        if !component.ends_with(".wasm") {
            bail!(
                "{FILE_NAME}: function {} component must be a .wasm file",
                f.route
            );
        }
        let spec = FunctionSpec {
            component,
            timeout_ms: match &f.timeout {
                Some(t) => parse_timeout(t)
                    .with_context(|| format!("{FILE_NAME}: function {}", f.route))?,
                None => DEFAULT_TIMEOUT_MS,
            },
            memory_bytes: match &f.memory {
                Some(m) => {
                    parse_memory(m).with_context(|| format!("{FILE_NAME}: function {}", f.route))?
                }
                None => DEFAULT_MEMORY_BYTES,
            },
        };
        out.insert(f.route, spec);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn convention_and_config() {
        let dir = tempfile::tempdir().unwrap();
        let list = files(&[
            "index.html",
            "api/hello.wasm",
            "api/nested/x.wasm",
            "fn/users.wasm",
        ]);
        let got = functions(dir.path(), &list).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["/api/hello", "/api/hello/*"]
        );

        std::fs::write(
            dir.path().join(FILE_NAME),
            "[[functions]]\nroute = \"/api/users/:id\"\ncomponent = \"./fn/users.wasm\"\ntimeout = \"2s\"\nmemory = \"64MiB\"\n",
        )
        .unwrap();
        let got = functions(dir.path(), &list).unwrap();
        assert_eq!(
            got["/api/users/:id"],
            FunctionSpec {
                component: "fn/users.wasm".into(),
                timeout_ms: 2000,
                memory_bytes: 64 * 1024 * 1024
            }
        );
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let list = files(&["fn/users.wasm", "index.html"]);
        for (toml, needle) in [
            ("[[functions]]\nroute = \"api\"\ncomponent = \"fn/users.wasm\"", "route"),
            ("[[functions]]\nroute = \"/api\"\ncomponent = \"fn/missing.wasm\"", "not in the folder"),
            ("[[functions]]\nroute = \"/api\"\ncomponent = \"index.html\"", ".wasm"),
            ("[[functions]]\nroute = \"/api\"\ncomponent = \"fn/users.wasm\"\ntimeout = \"soon\"", "timeout"),
            ("[[functions]]\nroute = \"/api\"\ncomponent = \"fn/users.wasm\"\nmemory = \"lots\"", "memory"),
            ("[[functions]]\nroute = \"/api\"\ncomponent = \"fn/users.wasm\"\nbogus = 1", "invalid"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(FILE_NAME), toml).unwrap();
            let err = format!("{:#}", functions(dir.path(), &list).unwrap_err());
            assert!(err.contains(needle), "{toml}: {err}");
        }
    }
}
