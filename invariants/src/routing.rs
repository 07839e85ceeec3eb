//! Routing files a deployment brings (`vercel.json`, `_redirects`,
//! `_headers`, `outpost.toml`) and the evaluator that runs their rules on
//! every request.

use builder::site_config::SiteConfig;
use protocol::routing::{
    from_sources, headers_for, route, Decision, OutpostRouting, RoutingConfig,
    MAX_HEADER_RULE_BYTES,
};

use crate::bytes::{parts, pick, text};

/// Paths the evaluator is tried on for each config that parses.
const PATHS: &[&str] = &[
    "/",
    "/a",
    "/a/",
    "/a/b",
    "/old/x",
    "/x.html",
    "/blog/2024/post",
    "/c d",
    "/..",
];

/// The first byte says which files are present; the rest holds them,
/// separated by NUL bytes, in the order vercel.json, _redirects, _headers.
pub fn sources(data: &[u8]) {
    let (which, rest) = pick(data);
    let files = parts(rest, 3);
    let file = |i: usize| {
        (which & (1 << i) != 0)
            .then(|| files.get(i).and_then(|f| text(f)))
            .flatten()
    };
    if let Ok(cfg) = from_sources(None, file(0), file(1), file(2)) {
        evaluated(&cfg);
    }
}

/// `outpost.toml`: its routing section as the builder reads it, layered
/// first as the platform's own file.
pub fn outpost_toml(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(site) = SiteConfig::parse(text) else {
        return;
    };
    let routing: OutpostRouting = site.routing;
    if let Ok(cfg) = from_sources(Some(routing), None, None, None) {
        evaluated(&cfg);
    }
}

/// A config that parses validates, survives the trip to the edge
/// (bincode, as inside a manifest, and JSON), answers every path as
/// [`decision_holds`] says, and keeps its header rules within budget.
fn evaluated(cfg: &RoutingConfig) {
    cfg.validate().expect("a parsed config validates");
    let bytes = bincode::serde::encode_to_vec(cfg, bincode::config::standard()).unwrap();
    let (back, _): (RoutingConfig, usize) =
        bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
    assert_eq!(&back, cfg, "bincode round trip changed the config");
    let json = serde_json::to_string(cfg).unwrap();
    assert_eq!(&serde_json::from_str::<RoutingConfig>(&json).unwrap(), cfg);

    for path in PATHS {
        for query in [None, Some("a=1&b=..%2f"), Some("x=/evil")] {
            for exists in [false, true] {
                decision_holds(cfg, path, query, exists);
            }
        }
        let headers = headers_for(cfg, path);
        let total: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        assert!(
            total <= MAX_HEADER_RULE_BYTES,
            "{total} header bytes for {path}"
        );
    }
}

/// What the evaluator's answer for one request must respect: an unforced
/// rule never answers for a path that exists (with every path existing,
/// the config decides as its forced rules alone do), and a same-site
/// redirect never becomes protocol-relative (`//x` or `/\x` would send the
/// browser to another host). A rewrite's path needs no check here: the
/// edge re-parses it with `parse_decoded_path`, whose guarantees the
/// `request_path` target checks.
pub fn decision_holds(cfg: &RoutingConfig, path: &str, query: Option<&str>, exists: bool) {
    let d = route(cfg, path, query, |_| exists);
    if exists {
        let forced = RoutingConfig {
            rules: cfg.rules.iter().filter(|r| r.force).cloned().collect(),
            ..cfg.clone()
        };
        assert_eq!(
            route(&forced, path, query, |_| true),
            d,
            "{path}: a rule shadowed a file"
        );
    }
    if let Decision::Redirect { location, .. } = &d {
        if location.starts_with('/') {
            assert!(
                !matches!(location.as_bytes().get(1), Some(b'/' | b'\\')),
                "{path} → {location}"
            );
        }
    }
}
