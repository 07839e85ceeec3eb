//! Static path resolution: which file of a bundle answers a request path.
//! Pure: the manifest and the parsed path in, a decision out.

use crate::manifest::{FileEntry, Manifest};
use crate::path::RequestPath;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution<'m> {
    /// Serve this file with 200.
    File { path: &'m str, entry: &'m FileEntry },
    /// Nothing matched: serve the bundle's `404.html` (if any) with 404.
    NotFound {
        page: Option<(&'m str, &'m FileEntry)>,
    },
}

pub const NOT_FOUND_PAGE: &str = "404.html";

/// Resolution order, first hit wins:
/// 1. the exact file (`/app.js` → `app.js`), unless the request ends in `/`;
/// 2. the directory index (`/docs`, `/docs/` → `docs/index.html`);
/// 3. the clean URL (`/about`, `/about/` → `about.html`);
/// 4. otherwise not found, with `404.html` when the bundle has one.
pub fn resolve<'m>(manifest: &'m Manifest, req: &RequestPath) -> Resolution<'m> {
    let joined = req.joined();
    let lookup = |p: &str| {
        manifest
            .files
            .get_key_value(p)
            .map(|(k, v)| (k.as_str(), v))
    };
    let candidates = [
        (!joined.is_empty() && !req.trailing_slash).then(|| joined.clone()),
        Some(if joined.is_empty() {
            "index.html".to_string()
        } else {
            format!("{joined}/index.html")
        }),
        (!joined.is_empty()).then(|| format!("{joined}.html")),
    ];
    for c in candidates.into_iter().flatten() {
        if let Some((path, entry)) = lookup(&c) {
            return Resolution::File { path, entry };
        }
    }
    Resolution::NotFound {
        page: lookup(NOT_FOUND_PAGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::BlobHash;
    use crate::path::parse_request_path;

    fn bundle(paths: &[&str]) -> Manifest {
        Manifest::new(
            paths
                .iter()
                .map(|p| {
                    (
                        p.to_string(),
                        FileEntry {
                            hash: BlobHash::of(p.as_bytes()),
                            size: 1,
                            content_type: "text/html".into(),
                            variants: vec![],
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn table() {
        let full = bundle(&[
            "index.html",
            "about.html",
            "docs/index.html",
            "docs/intro.html",
            "app.js",
            "404.html",
            "a b.txt",
        ]);
        let bare = bundle(&["only.txt"]);
        // (bundle, request, expected file or Err(custom 404 present))
        let cases: &[(&Manifest, &str, Result<&str, bool>)] = &[
            (&full, "/", Ok("index.html")),
            (&full, "/index.html", Ok("index.html")),
            (&full, "/app.js", Ok("app.js")),
            (&full, "/app.js?v=3", Ok("app.js")),
            (&full, "/about", Ok("about.html")),
            (&full, "/about/", Ok("about.html")),
            (&full, "/about.html", Ok("about.html")),
            (&full, "/docs", Ok("docs/index.html")),
            (&full, "/docs/", Ok("docs/index.html")),
            (&full, "/docs/intro", Ok("docs/intro.html")),
            (&full, "/a%20b.txt", Ok("a b.txt")),
            (&full, "/app.js/", Err(true)),
            (&full, "/missing", Err(true)),
            (&full, "/docs/missing", Err(true)),
            (&bare, "/", Err(false)),
            (&bare, "/nope", Err(false)),
        ];
        for (m, target, want) in cases {
            let req = parse_request_path(target).unwrap();
            let got = match resolve(m, &req) {
                Resolution::File { path, .. } => Ok(path),
                Resolution::NotFound { page } => {
                    if let Some((p, _)) = page {
                        assert_eq!(p, NOT_FOUND_PAGE);
                    }
                    Err(page.is_some())
                }
            };
            assert_eq!(&got, want, "request {target}");
        }
    }
}
