//! Where the bundle's routing rules meet the edge: what "exists" means for
//! shadowing, and the request target a rewritten function call sees.
//!
//! Order of a request (see `dispatch::decide`): host → site → the
//! bundle's routing rules ([`protocol::routing::route`]: canonical
//! redirects, then redirects / rewrites / proxies, first match wins, an
//! unforced rule yielding to an existing path) → functions (their routes
//! shadow files of the same path) → static resolution. A path *exists*
//! when a function route or a file (exact, directory index or clean URL)
//! answers it, so a SPA fallback `/* /index.html 200` never hides an API
//! route or an asset. A rewrite's target goes through the same function →
//! file dispatch, once; its status 404 serves the page with 404.

use protocol::functions::RouteTable;
use protocol::path::parse_decoded_path;
use protocol::resolve::{resolve, Resolution};
use protocol::Manifest;

/// Does the decoded, rooted `path` name a function or file of `manifest`?
pub(super) fn exists(manifest: &Manifest, functions: &RouteTable, path: &str) -> bool {
    let Ok(req) = parse_decoded_path(path) else {
        return false;
    };
    functions.find(&req.segments).is_some()
        || matches!(resolve(manifest, &req), Resolution::File { .. })
}

/// The origin-form target a function sees after a rewrite.
pub(super) fn rewritten_target(path: &str, query: Option<&str>) -> Option<http::Uri> {
    let mut target = protocol::routing::encode_path(path);
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    target.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{BlobHash, FileEntry, FunctionEntry};

    #[test]
    fn functions_and_files_exist() {
        let file = |p: &str| {
            (
                p.to_string(),
                FileEntry {
                    hash: BlobHash::of(p.as_bytes()),
                    size: 1,
                    content_type: "text/html".into(),
                    variants: vec![],
                },
            )
        };
        let mut m = Manifest::new(
            [
                file("index.html"),
                file("about.html"),
                file("docs/index.html"),
            ]
            .into(),
        );
        m.functions.insert(
            "/api/*".into(),
            FunctionEntry {
                component: BlobHash::of(b"c"),
                size: 1,
                timeout_ms: 1000,
                memory_bytes: 1 << 24,
            },
        );
        let table = RouteTable::new(&m.functions);
        for (path, want) in [
            ("/", true),
            ("/index.html", true),
            ("/about", true),
            ("/about/", true),
            ("/docs", true),
            ("/api/anything/here", true),
            ("/missing", false),
            ("/../etc", false),
        ] {
            assert_eq!(exists(&m, &table, path), want, "{path}");
        }
        assert_eq!(
            rewritten_target("/api/a b", Some("x=1"))
                .unwrap()
                .to_string(),
            "/api/a%20b?x=1"
        );
    }
}
