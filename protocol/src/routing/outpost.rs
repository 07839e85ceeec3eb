//! The routing keys of `outpost.toml`. The TOML text is parsed by whoever
//! reads the file (the deploy CLI or a builder, with the `toml` crate);
//! this is the shape it deserializes into. Unknown keys are ignored so the
//! struct can be read from the whole file, next to `[[functions]]`.
//!
//! ```toml
//! clean_urls = true
//! trailing_slash = false
//!
//! [[redirects]]
//! source = "/old/:slug"
//! destination = "/new/:slug"
//! status = 301            # default 308
//!
//! [[rewrites]]
//! source = "/app/*"
//! destination = "/app/index.html"
//! # status = 404          # 200 (default) or 404
//! # force = true          # also over existing files
//!
//! [[headers]]
//! source = "/*"
//! headers = { "X-Frame-Options" = "DENY" }
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{make_header_rule, make_rule, Action, ConfigFile, Layer, Locus, RoutingError};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct OutpostRouting {
    pub clean_urls: Option<bool>,
    pub trailing_slash: Option<bool>,
    #[serde(default)]
    pub redirects: Vec<OutpostRedirect>,
    #[serde(default)]
    pub rewrites: Vec<OutpostRewrite>,
    #[serde(default)]
    pub headers: Vec<OutpostHeaders>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutpostRedirect {
    pub source: String,
    pub destination: String,
    /// 301, 302, 303, 307 or 308 (default).
    pub status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutpostRewrite {
    pub source: String,
    pub destination: String,
    /// 200 (default) or 404.
    pub status: Option<u16>,
    /// Apply even when the request path exists (default false).
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutpostHeaders {
    pub source: String,
    pub headers: BTreeMap<String, String>,
}

impl OutpostRouting {
    pub(super) fn into_layer(self) -> Result<Layer, RoutingError> {
        const FILE: ConfigFile = ConfigFile::OutpostToml;
        let at = |list, index| Locus::Rule { list, index };
        let mut layer = Layer {
            clean_urls: self.clean_urls,
            trailing_slash: self.trailing_slash,
            ..Layer::default()
        };
        for (i, r) in self.redirects.iter().enumerate() {
            let action = Action::Redirect {
                status: r.status.unwrap_or(308),
            };
            let rule = make_rule(&r.source, vec![], &r.destination, action, true)
                .map_err(|p| p.at(FILE, at("redirects", i)))?;
            layer.rules.push(rule);
        }
        for (i, r) in self.rewrites.iter().enumerate() {
            let action = Action::Rewrite {
                status: r.status.unwrap_or(200),
            };
            let rule = make_rule(&r.source, vec![], &r.destination, action, r.force)
                .map_err(|p| p.at(FILE, at("rewrites", i)))?;
            layer.rules.push(rule);
        }
        for (i, h) in self.headers.into_iter().enumerate() {
            let rule = make_header_rule(&h.source, h.headers.into_iter().collect())
                .map_err(|p| p.at(FILE, at("headers", i)))?;
            layer.headers.push(rule);
        }
        Ok(layer)
    }
}
