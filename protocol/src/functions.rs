//! Functions in a bundle: wasi:http components bound to route patterns,
//! and the pure route matcher the edge uses to dispatch requests.
//!
//! Pattern syntax: `/api/users/:id` (a `:name` segment matches one
//! segment), `/api/files/*` (a final `*` matches zero or more segments).
//! When several patterns match, the most specific wins: segment by segment,
//! a literal beats a parameter, which beats a splat.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::hash::BlobHash;

pub const MAX_FUNCTIONS: usize = 64;
pub const MAX_ROUTE_BYTES: usize = 256;
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// The seed platform's ceiling: 30 s per invocation.
pub const MAX_TIMEOUT_MS: u32 = 30_000;
pub const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
pub const MAX_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionEntry {
    /// The component's blob (a `.wasm` file).
    pub component: BlobHash,
    pub size: u64,
    /// Wall-clock limit per request.
    pub timeout_ms: u32,
    /// Linear memory limit per instance.
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("route {0:?} must start with '/'")]
    NotRooted(String),
    #[error("route {0:?} is longer than {MAX_ROUTE_BYTES} bytes")]
    TooLong(String),
    #[error("route {0:?} has an empty, '.' or '..' segment")]
    BadSegment(String),
    #[error("route {0:?}: '*' may only be the last segment")]
    SplatNotLast(String),
    #[error("route {0:?}: parameter names are [a-z0-9_]+")]
    BadParam(String),
    #[error("route {0:?} may only use [A-Za-z0-9._~-] in literal segments")]
    BadChar(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg<'a> {
    Lit(&'a str),
    Param(&'a str),
    Splat,
}

fn parse(route: &str) -> Result<Vec<Seg<'_>>, RouteError> {
    let err = |f: fn(String) -> RouteError| Err(f(route.chars().take(80).collect()));
    if route.len() > MAX_ROUTE_BYTES {
        return err(RouteError::TooLong);
    }
    let Some(rest) = route.strip_prefix('/') else {
        return err(RouteError::NotRooted);
    };
    if rest.is_empty() {
        return Ok(vec![]);
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut segs = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let seg = if *p == "*" {
            if i != parts.len() - 1 {
                return err(RouteError::SplatNotLast);
            }
            Seg::Splat
        } else if let Some(name) = p.strip_prefix(':') {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return err(RouteError::BadParam);
            }
            Seg::Param(name)
        } else {
            if p.is_empty() || *p == "." || *p == ".." {
                return err(RouteError::BadSegment);
            }
            if !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
            {
                return err(RouteError::BadChar);
            }
            Seg::Lit(p)
        };
        segs.push(seg);
    }
    Ok(segs)
}

pub fn validate_route(route: &str) -> Result<(), RouteError> {
    parse(route).map(|_| ())
}

/// A matched function: its route and the values of its `:params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'m> {
    pub route: &'m str,
    pub function: &'m FunctionEntry,
    pub params: Vec<(String, String)>,
}

/// Specificity, compared lexicographically: literal 3, param 2, splat 1;
/// a pattern without a splat ends in 2, so `/a` beats `/a/*` for `/a`.
fn rank(segs: &[Seg]) -> Vec<u8> {
    let mut v: Vec<u8> = segs
        .iter()
        .map(|s| match s {
            Seg::Lit(_) => 3,
            Seg::Param(_) => 2,
            Seg::Splat => 1,
        })
        .collect();
    if !matches!(segs.last(), Some(Seg::Splat)) {
        v.push(2);
    }
    v
}

/// A deployment's function routes, parsed and ranked once (when the edge
/// loads its bundle) so that matching a request allocates nothing.
/// Patterns that do not parse are left out: they never match.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Most specific first; equal ranks by route text.
    routes: Vec<Compiled>,
}

#[derive(Debug, Clone)]
struct Compiled {
    /// Shared: a request handler keeps the route it matched without a copy.
    route: Arc<str>,
    function: FunctionEntry,
    /// `(literal text, kind)` per segment, as [`Seg`] without the borrow.
    segs: Vec<(String, SegKind)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegKind {
    Lit,
    Param,
    Splat,
}

impl RouteTable {
    pub fn new(functions: &BTreeMap<String, FunctionEntry>) -> Self {
        let mut ranked: Vec<(Vec<u8>, Compiled)> = functions
            .iter()
            .filter_map(|(route, function)| {
                let segs = parse(route).ok()?;
                let rank = rank(&segs);
                let segs = segs
                    .into_iter()
                    .map(|s| match s {
                        Seg::Lit(l) => (l.to_string(), SegKind::Lit),
                        Seg::Param(n) => (n.to_string(), SegKind::Param),
                        Seg::Splat => (String::new(), SegKind::Splat),
                    })
                    .collect();
                Some((
                    rank,
                    Compiled {
                        route: route.as_str().into(),
                        function: function.clone(),
                        segs,
                    },
                ))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.route.cmp(&b.1.route)));
        RouteTable {
            routes: ranked.into_iter().map(|(_, c)| c).collect(),
        }
    }

    /// The route and function that serve `segments` (a parsed request
    /// path), if any.
    pub fn find(&self, segments: &[String]) -> Option<(&Arc<str>, &FunctionEntry)> {
        self.routes
            .iter()
            .find(|c| c.matches(segments))
            .map(|c| (&c.route, &c.function))
    }

    /// [`Self::find`] with the values of the route's `:params`.
    pub fn matched(&self, segments: &[String]) -> Option<RouteMatch<'_>> {
        let c = self.routes.iter().find(|c| c.matches(segments))?;
        let params = c
            .segs
            .iter()
            .zip(segments)
            .filter(|((_, kind), _)| *kind == SegKind::Param)
            .map(|((name, _), value)| (name.clone(), value.clone()))
            .collect();
        Some(RouteMatch {
            route: &c.route,
            function: &c.function,
            params,
        })
    }
}

impl Compiled {
    fn matches(&self, path: &[String]) -> bool {
        for (i, (text, kind)) in self.segs.iter().enumerate() {
            match kind {
                SegKind::Splat => return true,
                SegKind::Lit => {
                    if path.get(i) != Some(text) {
                        return false;
                    }
                }
                SegKind::Param => {
                    if path.get(i).is_none() {
                        return false;
                    }
                }
            }
        }
        self.segs.len() == path.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(tag: &str) -> FunctionEntry {
        FunctionEntry {
            component: BlobHash::of(tag.as_bytes()),
            size: 1,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }

    #[test]
    fn route_validation_table() {
        let long = format!("/{}", "a".repeat(300));
        let cases: &[(&str, bool)] = &[
            ("/", true),
            ("/api/hello", true),
            ("/api/hello/*", true),
            ("/api/users/:id", true),
            ("/api/:a/:b/*", true),
            ("/v1.2/~x-y_z", true),
            ("api/hello", false),
            ("/api//x", false),
            ("/api/../x", false),
            ("/api/*/x", false),
            ("/api/:", false),
            ("/api/:Id", false),
            ("/api/hé", false),
            ("/api/a b", false),
            (&long, false),
        ];
        for (route, ok) in cases {
            assert_eq!(validate_route(route).is_ok(), *ok, "{route}");
        }
    }

    #[test]
    fn matching_table() {
        let functions: BTreeMap<String, FunctionEntry> = [
            "/api/hello",
            "/api/hello/*",
            "/api/users/:id",
            "/api/users/me",
            "/api/users/:id/posts/:post",
            "/api/*",
        ]
        .iter()
        .map(|r| (r.to_string(), f(r)))
        .collect();
        let table = RouteTable::new(&functions);
        type Expected<'a> = Option<(&'a str, &'a [(&'a str, &'a str)])>;
        let cases: &[(&str, Expected)] = &[
            ("/api/hello", Some(("/api/hello", &[]))),
            ("/api/hello/x/y", Some(("/api/hello/*", &[]))),
            ("/api/users/42", Some(("/api/users/:id", &[("id", "42")]))),
            ("/api/users/me", Some(("/api/users/me", &[]))),
            (
                "/api/users/7/posts/9",
                Some(("/api/users/:id/posts/:post", &[("id", "7"), ("post", "9")])),
            ),
            ("/api/users", Some(("/api/*", &[]))),
            ("/api", Some(("/api/*", &[]))),
            ("/", None),
            ("/about", None),
        ];
        for (path, want) in cases {
            let segs: Vec<String> = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            let got = table.matched(&segs);
            assert_eq!(
                table.find(&segs).map(|(r, _)| &**r),
                got.as_ref().map(|m| m.route),
                "{path}"
            );
            match want {
                None => assert!(got.is_none(), "{path} matched {got:?}"),
                Some((route, params)) => {
                    let got = got.unwrap_or_else(|| panic!("{path} matched nothing"));
                    assert_eq!(got.route, *route, "{path}");
                    let params: Vec<(String, String)> = params
                        .iter()
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                        .collect();
                    assert_eq!(got.params, params, "{path}");
                }
            }
        }
    }

    #[test]
    fn table_skips_bad_patterns_and_breaks_ties_by_text() {
        let functions: BTreeMap<String, FunctionEntry> = ["/api/:b", "/api/:a", "/api//x", "nope"]
            .iter()
            .map(|r| (r.to_string(), f(r)))
            .collect();
        let table = RouteTable::new(&functions);
        let segs = |p: &str| -> Vec<String> { p.split('/').skip(1).map(String::from).collect() };
        assert_eq!(
            table.find(&segs("/api/1")).map(|(r, _)| &**r),
            Some("/api/:a")
        );
        assert!(table
            .find(&segs("/api/x"))
            .is_some_and(|(r, _)| &**r == "/api/:a"));
        assert!(table.find(&segs("/nope")).is_none());
        assert!(RouteTable::new(&BTreeMap::new())
            .find(&segs("/api"))
            .is_none());
    }
}
