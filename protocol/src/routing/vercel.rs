//! `vercel.json`: `redirects`, `rewrites`, `headers`, `cleanUrls`,
//! `trailingSlash`. Other top-level keys (build settings, `functions`,
//! `regions`, …) are ignored: they do not change routing. Conditions
//! (`has`, `missing`) and the legacy `routes` array change routing in ways
//! we do not implement, so they are refused rather than silently dropped.

use serde::Deserialize;
use serde_json::Value;

use super::{make_header_rule, make_rule, Action, ConfigFile, Layer, Locus, Problem, RoutingError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VercelJson {
    #[serde(default)]
    redirects: Vec<Value>,
    #[serde(default)]
    rewrites: Vec<Value>,
    #[serde(default)]
    headers: Vec<Value>,
    clean_urls: Option<bool>,
    trailing_slash: Option<bool>,
    routes: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Redirect {
    source: String,
    destination: String,
    permanent: Option<bool>,
    status_code: Option<u16>,
    has: Option<Value>,
    missing: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rewrite {
    source: String,
    destination: String,
    has: Option<Value>,
    missing: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Headers {
    source: String,
    headers: Vec<KeyValue>,
    has: Option<Value>,
    missing: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyValue {
    key: String,
    value: String,
}

const FILE: ConfigFile = ConfigFile::VercelJson;

fn item<T: serde::de::DeserializeOwned>(
    v: Value,
    list: &'static str,
    index: usize,
) -> Result<T, RoutingError> {
    serde_json::from_value(v)
        .map_err(|e| Problem::Json(e.to_string()).at(FILE, Locus::Rule { list, index }))
}

fn no_conditions(has: &Option<Value>, missing: &Option<Value>) -> Result<(), Problem> {
    if has.is_some() || missing.is_some() {
        return Err(Problem::Unsupported(
            "conditional routing (`has` / `missing`)",
        ));
    }
    Ok(())
}

pub(super) fn parse(text: &str) -> Result<Layer, RoutingError> {
    let doc: VercelJson = serde_json::from_str(text)
        .map_err(|e| Problem::Json(e.to_string()).at(FILE, Locus::Whole))?;
    if doc.routes.is_some() {
        return Err(Problem::Unsupported(
            "the legacy `routes` array (use `redirects`, `rewrites` and `headers`)",
        )
        .at(FILE, Locus::Whole));
    }
    let mut layer = Layer {
        clean_urls: doc.clean_urls,
        trailing_slash: doc.trailing_slash,
        ..Layer::default()
    };
    for (index, v) in doc.redirects.into_iter().enumerate() {
        let at = Locus::Rule {
            list: "redirects",
            index,
        };
        let r: Redirect = item(v, "redirects", index)?;
        let rule = no_conditions(&r.has, &r.missing).and_then(|()| {
            let status = match (r.status_code, r.permanent) {
                (Some(s), _) => s,
                (None, Some(false)) => 307,
                (None, _) => 308,
            };
            // Vercel checks redirects before the filesystem.
            make_rule(
                &r.source,
                vec![],
                &r.destination,
                Action::Redirect { status },
                true,
            )
        });
        layer.rules.push(rule.map_err(|p| p.at(FILE, at))?);
    }
    for (index, v) in doc.rewrites.into_iter().enumerate() {
        let at = Locus::Rule {
            list: "rewrites",
            index,
        };
        let r: Rewrite = item(v, "rewrites", index)?;
        let rule = no_conditions(&r.has, &r.missing).and_then(|()| {
            // ... and the filesystem before rewrites.
            make_rule(
                &r.source,
                vec![],
                &r.destination,
                Action::Rewrite { status: 200 },
                false,
            )
        });
        layer.rules.push(rule.map_err(|p| p.at(FILE, at))?);
    }
    for (index, v) in doc.headers.into_iter().enumerate() {
        let at = Locus::Rule {
            list: "headers",
            index,
        };
        let h: Headers = item(v, "headers", index)?;
        let rule = no_conditions(&h.has, &h.missing).and_then(|()| {
            make_header_rule(
                &h.source,
                h.headers.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            )
        });
        layer.headers.push(rule.map_err(|p| p.at(FILE, at))?);
    }
    Ok(layer)
}
