//! Where the CLI finds its coordinator URL and token: flags or
//! `OUTPOST_URL` / `OUTPOST_TOKEN`, else the file `outpost dev` or
//! `coordinator login` wrote (`$XDG_CONFIG_HOME/outpost/credentials.json`).

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub url: String,
    pub token: String,
}

pub fn path() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("outpost").join("credentials.json"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home)
        .join(".config")
        .join("outpost")
        .join("credentials.json"))
}

pub fn save(c: &Credentials) -> anyhow::Result<PathBuf> {
    let p = path()?;
    std::fs::create_dir_all(p.parent().unwrap())?;
    platform::fs::write_private(&p, serde_json::to_string_pretty(c)?.as_bytes())
        .with_context(|| format!("writing {}", p.display()))?;
    Ok(p)
}

/// Flags/env win over the saved file, field by field.
pub fn resolve(url: Option<String>, token: Option<String>) -> anyhow::Result<Credentials> {
    let saved = path()
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| serde_json::from_str::<Credentials>(&s).ok());
    let url = url
        .or_else(|| saved.as_ref().map(|c| c.url.clone()))
        .context("no coordinator URL: pass --url, set OUTPOST_URL, or run `coordinator dev` / `coordinator login`")?;
    let token = token
        .or_else(|| saved.as_ref().map(|c| c.token.clone()))
        .context("no API token: pass --token, set OUTPOST_TOKEN, or run `coordinator dev` / `coordinator login`")?;
    Ok(Credentials {
        url: url.trim_end_matches('/').to_string(),
        token,
    })
}
