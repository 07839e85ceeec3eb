//! The per-request evaluator. Runs on every request of a bundle with a
//! routing config, so it matches without allocating and builds a string
//! only for the decision it returns; an empty config returns at once.

use std::cell::Cell;

use super::pattern::{encode_path, match_source, substitute, Captures, Part};
use super::{is_absolute, Action, RoutingConfig, Rule};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Serve the request path as it is.
    Pass,
    /// Answer with this status and `Location` (already percent-encoded).
    Redirect { status: u16, location: String },
    /// Serve another bundle path (decoded, rooted) with `status` (200, or
    /// 404 for a custom not-found page). `query` is the query the target
    /// sees.
    Rewrite {
        path: String,
        query: Option<String>,
        status: u16,
    },
    /// Fetch this absolute URL and relay its response.
    Proxy { url: String },
}

/// Decides what answers `path` (decoded, rooted, as the edge parsed it)
/// with `query` (raw, without `?`). `exists` says whether a path names a
/// file or function of the bundle; it is called at most once per request,
/// only when some rule needs it.
pub fn route(
    cfg: &RoutingConfig,
    path: &str,
    query: Option<&str>,
    exists: impl Fn(&str) -> bool,
) -> Decision {
    if cfg.rules.is_empty() && !cfg.clean_urls && cfg.trailing_slash.is_none() {
        return Decision::Pass;
    }
    let query = query.filter(|q| !q.is_empty());
    let known = Cell::new(None);
    let exists = || match known.get() {
        Some(e) => e,
        None => {
            let e = exists(path);
            known.set(Some(e));
            e
        }
    };

    if let Some(d) = canonical(cfg, path, query, &exists) {
        return d;
    }

    let mut caps = Captures::new();
    for rule in &cfg.rules {
        caps.clear();
        if !match_source(&rule.source, path, &mut caps) || !match_query(rule, query, &mut caps) {
            continue;
        }
        if !rule.force && exists() {
            continue;
        }
        if let Some(d) = apply(rule, &caps, path, query) {
            return d;
        }
    }
    Decision::Pass
}

/// Trailing-slash and clean-URL redirects (Vercel's, 308).
fn canonical(
    cfg: &RoutingConfig,
    path: &str,
    query: Option<&str>,
    exists: &impl Fn() -> bool,
) -> Option<Decision> {
    let slashed = path.len() > 1 && path.ends_with('/');
    let bare = if slashed {
        &path[..path.len() - 1]
    } else {
        path
    };
    let last = bare.rsplit('/').next().unwrap_or("");
    let mut target: Option<String> = None;
    if cfg.clean_urls {
        if let Some(stem) = last.strip_suffix(".html").filter(|_| !slashed) {
            if exists() {
                let dir = &bare[..bare.len() - last.len()];
                let mut t = if stem == "index" {
                    dir.to_string()
                } else {
                    format!("{dir}{stem}")
                };
                if t.len() > 1 && t.ends_with('/') {
                    t.pop();
                }
                target = Some(t);
            }
        }
    }
    let base = target.as_deref().unwrap_or(path);
    let wanted = match cfg.trailing_slash {
        Some(true) if base != "/" && !base.ends_with('/') => {
            let last = base.rsplit('/').next().unwrap_or("");
            // Files keep their name: `/app.js` never becomes `/app.js/`.
            (target.is_some() || !last.contains('.')).then(|| format!("{base}/"))
        }
        Some(false) if base.len() > 1 && base.ends_with('/') => {
            Some(base[..base.len() - 1].to_string())
        }
        _ => None,
    };
    let target = wanted.or(target)?;
    if target == path {
        return None;
    }
    let mut location = String::with_capacity(target.len() + 16);
    encode_path(&target, &mut location);
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    Some(Decision::Redirect {
        status: 308,
        location,
    })
}

/// Every condition must find its key; `:name` values bind, literals must
/// equal. Keys and values compare in their raw (encoded) form.
fn match_query<'c, 'r>(
    rule: &'c Rule,
    query: Option<&'r str>,
    caps: &mut Captures<'c, 'r>,
) -> bool {
    rule.query.iter().all(|cond| {
        let found = query.and_then(|q| {
            q.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k == cond.key).then_some(v)
            })
        });
        match (found, cond.value.strip_prefix(':')) {
            (Some(v), Some(name)) => {
                caps.push(name, v, true);
                true
            }
            (Some(v), None) => v == cond.value,
            (None, _) => false,
        }
    })
}

fn apply(rule: &Rule, caps: &Captures, path: &str, query: Option<&str>) -> Option<Decision> {
    let (rest, fragment) = match rule.destination.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rule.destination.as_str(), None),
    };
    let (path_t, query_t) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let external = is_absolute(path_t);
    let internal_rewrite = matches!(rule.action, Action::Rewrite { .. }) && !external;

    let mut out = String::with_capacity(rule.destination.len() + path.len());
    substitute(
        path_t,
        caps,
        if internal_rewrite {
            Part::RawPath
        } else {
            Part::UrlPath
        },
        &mut out,
    );
    // Query conditions consume the request's query (Netlify); otherwise it
    // rides along after the destination's own.
    let passed = if rule.query.is_empty() { query } else { None };
    let mut new_query = String::new();
    if let Some(q) = query_t {
        substitute(q, caps, Part::UrlQuery, &mut new_query);
    }
    if let Some(q) = passed {
        if !new_query.is_empty() {
            new_query.push('&');
        }
        new_query.push_str(q);
    }
    let new_query = (!new_query.is_empty()).then_some(new_query);

    if internal_rewrite {
        if let Action::Rewrite { status } = rule.action {
            return Some(Decision::Rewrite {
                path: out,
                query: new_query,
                status,
            });
        }
    }
    let Action::Redirect { status } = rule.action else {
        if let Some(q) = &new_query {
            out.push('?');
            out.push_str(q);
        }
        return Some(Decision::Proxy { url: out });
    };
    if !external {
        // `/:splat` with a splat of `/evil.example` would make `//evil.example`,
        // which browsers read as another host: a path stays a path.
        same_host_path(&mut out);
    }
    if !external && same_place(&out, path) && new_query.as_deref() == query {
        return None;
    }
    if let Some(q) = &new_query {
        out.push('?');
        out.push_str(q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(Decision::Redirect {
        status,
        location: out,
    })
}

/// Collapses the slashes (and backslashes, which browsers read as slashes)
/// that a substitution put at the start of a path into one, so that a
/// relative `Location` can never name another host.
fn same_host_path(out: &mut String) {
    let extra = out
        .bytes()
        .skip(1)
        .take_while(|b| *b == b'/' || *b == b'\\')
        .count();
    if out.starts_with('/') && extra > 0 {
        out.replace_range(1..1 + extra, "");
    }
}

/// An encoded redirect target and a decoded request path name the same
/// resource (trailing slashes aside)?
fn same_place(encoded: &str, decoded: &str) -> bool {
    let mut enc = String::with_capacity(decoded.len());
    encode_path(decoded, &mut enc);
    encoded.trim_end_matches('/') == enc.trim_end_matches('/')
}

/// Headers the rules add to a response for `path` (the request path,
/// decoded), in rule order; a name set by several rules gets their values
/// joined with `, `.
pub fn headers_for(cfg: &RoutingConfig, path: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if cfg.headers.is_empty() {
        return out;
    }
    let mut caps = Captures::new();
    let mut added = 0;
    for rule in &cfg.headers {
        caps.clear();
        if !match_source(&rule.source, path, &mut caps) {
            continue;
        }
        for (name, value) in &rule.headers {
            // Validation bounds the rules' bytes; this bounds a response
            // whatever config it came with.
            added += name.len() + value.len() + 4;
            if added > super::MAX_HEADER_RULE_BYTES {
                return out;
            }
            match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => out.push((name.clone(), value.clone())),
            }
        }
    }
    out
}
