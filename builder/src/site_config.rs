//! `outpost.toml` at the root of a bundle, and the `api/<name>.wasm`
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
//!
//! The same file carries routing (`[[redirects]]`, `[[rewrites]]`,
//! `[[headers]]`, `clean_urls`, `trailing_slash`), read into
//! [`protocol::routing::OutpostRouting`]. Other unknown top-level keys are
//! not an error, so a newer file still deploys with an older CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use protocol::functions::{validate_route, RouteError, DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_MS};
use protocol::routing::OutpostRouting;
use serde::Deserialize;

pub const FILE_NAME: &str = "outpost.toml";
const MAX_FILE_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SiteConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{FILE_NAME} is larger than 256 KiB")]
    TooLarge,
    #[error("{FILE_NAME} is invalid: {0}")]
    Invalid(#[from] toml::de::Error),
    #[error("{FILE_NAME}: function route {route:?}: {source}")]
    Route { route: String, source: RouteError },
    #[error("{FILE_NAME}: function {route} names {component:?}, which is not in the folder")]
    MissingComponent { route: String, component: String },
    #[error("{FILE_NAME}: function {route} component must be a .wasm file")]
    NotWasm { route: String },
    #[error("{FILE_NAME}: function {route}: timeout {value:?} is not a duration (e.g. \"10s\", \"500ms\") below 49 days")]
    Timeout { route: String, value: String },
    #[error("{FILE_NAME}: function {route}: memory {value:?} is not a size (e.g. \"128MiB\")")]
    Memory { route: String, value: String },
}

/// The parsed file.
#[derive(Debug, Default)]
pub struct SiteConfig {
    pub functions: Vec<FunctionConfig>,
    pub routing: OutpostRouting,
}

#[derive(Debug, Default, Deserialize)]
struct Sections {
    #[serde(default)]
    functions: Vec<FunctionConfig>,
}

/// One `[[functions]]` entry. Its keys are closed so a typo (`timout`)
/// fails loudly instead of silently using the default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionConfig {
    pub route: String,
    pub component: String,
    pub timeout: Option<String>,
    pub memory: Option<String>,
}

/// A function as it will go into the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Bundle-relative path of the `.wasm` file.
    pub component: String,
    pub timeout_ms: u32,
    pub memory_bytes: u64,
}

impl SiteConfig {
    pub fn parse(text: &str) -> Result<SiteConfig, SiteConfigError> {
        if text.len() > MAX_FILE_BYTES {
            return Err(SiteConfigError::TooLarge);
        }
        let sections: Sections = toml::from_str(text)?;
        Ok(SiteConfig {
            functions: sections.functions,
            routing: toml::from_str(text)?,
        })
    }

    /// `dir/outpost.toml`, or `None` when the folder has none.
    pub fn load(dir: &Path) -> Result<Option<SiteConfig>, SiteConfigError> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SiteConfigError::Read { path, source }),
        };
        Self::parse(&text).map(Some)
    }
}

fn parse_timeout(route: &str, s: &str) -> Result<u32, SiteConfigError> {
    humantime::parse_duration(s)
        .ok()
        .and_then(|d| u32::try_from(d.as_millis()).ok())
        .ok_or_else(|| SiteConfigError::Timeout {
            route: route.to_string(),
            value: s.to_string(),
        })
}

fn parse_memory(route: &str, s: &str) -> Result<u64, SiteConfigError> {
    s.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| SiteConfigError::Memory {
            route: route.to_string(),
            value: s.to_string(),
        })
}

/// Routes → functions for a folder's file list (bundle-relative paths).
/// Convention: `api/<name>.wasm` serves `/api/<name>` and `/api/<name>/*`;
/// `outpost.toml` adds or overrides routes.
pub fn functions(
    config: Option<&SiteConfig>,
    files: &[String],
) -> Result<BTreeMap<String, FunctionSpec>, SiteConfigError> {
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
    let Some(config) = config else {
        return Ok(out);
    };
    for f in &config.functions {
        validate_route(&f.route).map_err(|source| SiteConfigError::Route {
            route: f.route.clone(),
            source,
        })?;
        let component = f.component.trim_start_matches("./").to_string();
        if !files.contains(&component) {
            return Err(SiteConfigError::MissingComponent {
                route: f.route.clone(),
                component: f.component.clone(),
            });
        }
        if !component.ends_with(".wasm") {
            return Err(SiteConfigError::NotWasm {
                route: f.route.clone(),
            });
        }
        let spec = FunctionSpec {
            component,
            timeout_ms: match &f.timeout {
                Some(t) => parse_timeout(&f.route, t)?,
                None => DEFAULT_TIMEOUT_MS,
            },
            memory_bytes: match &f.memory {
                Some(m) => parse_memory(&f.route, m)?,
                None => DEFAULT_MEMORY_BYTES,
            },
        };
        out.insert(f.route.clone(), spec);
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
        let list = files(&[
            "index.html",
            "api/hello.wasm",
            "api/nested/x.wasm",
            "fn/users.wasm",
        ]);
        let got = functions(None, &list).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["/api/hello", "/api/hello/*"]
        );

        let cfg = SiteConfig::parse(
            "[[functions]]\nroute = \"/api/users/:id\"\ncomponent = \"./fn/users.wasm\"\ntimeout = \"2s\"\nmemory = \"64MiB\"\n",
        )
        .unwrap();
        let got = functions(Some(&cfg), &list).unwrap();
        assert_eq!(
            got["/api/users/:id"],
            FunctionSpec {
                component: "fn/users.wasm".into(),
                timeout_ms: 2000,
                memory_bytes: 64 * 1024 * 1024
            }
        );
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn routing_and_unknown_sections_sit_beside_functions() {
        let text = "clean_urls = true\nfuture_key = 1\n\n[[redirects]]\nsource = \"/a\"\ndestination = \"/b\"\n\n[someday]\nx = 1\n\n[[functions]]\nroute = \"/api\"\ncomponent = \"fn/users.wasm\"\n";
        let cfg = SiteConfig::parse(text).unwrap();
        assert_eq!(cfg.functions.len(), 1);
        assert_eq!(cfg.routing.clean_urls, Some(true));
        assert_eq!(cfg.routing.redirects.len(), 1);
        // A typo inside a routing entry is an error, like one in a function.
        let err = SiteConfig::parse("[[redirects]]\nsource = \"/a\"\ndestinaton = \"/b\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid"), "{err}");
    }

    #[test]
    fn load_reads_the_file_or_reports_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(SiteConfig::load(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join(FILE_NAME), "functions = 3").unwrap();
        let err = SiteConfig::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("invalid"), "{err}");
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
            let err = SiteConfig::parse(toml)
                .and_then(|c| functions(Some(&c), &list))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{toml}: {err}");
        }
        let big = "#".repeat(MAX_FILE_BYTES + 1);
        assert!(matches!(
            SiteConfig::parse(&big),
            Err(SiteConfigError::TooLarge)
        ));
    }
}
