//! Routing rules a bundle carries: redirects, rewrites (internal, custom
//! 404 and proxy), response headers, clean URLs and the trailing-slash
//! policy. Pure: text in ([`from_sources`]), a [`RoutingConfig`] out, and
//! [`route`] / [`headers_for`] deciding per request.
//!
//! # Where rules come from, and in which order
//!
//! [`from_sources`] merges up to four layers into one ordered rule list,
//! first match wins across all of them:
//!
//! 1. `outpost.toml` (`[[redirects]]`, `[[rewrites]]`, `[[headers]]`,
//!    `clean_urls`, `trailing_slash`) — the platform's own file comes first;
//! 2. `vercel.json` (`redirects`, `rewrites`, `headers`, `cleanUrls`,
//!    `trailingSlash`);
//! 3. `_redirects` and `_headers` (Netlify / Cloudflare Pages syntax).
//!
//! `clean_urls` and `trailing_slash` come from `outpost.toml` when it sets
//! them, else from `vercel.json`. Header rules are all applied, in the same
//! layer order.
//!
//! # Semantics, and whose rule we follow where platforms differ
//!
//! * **Filesystem vs rules.** Every rule is either *forced* (applies even
//!   when the request path names an existing file or function) or not
//!   (the file wins: Netlify's "no shadowing"). Vercel `redirects` and
//!   `outpost.toml` redirects are forced — Vercel checks redirects before
//!   the filesystem; Vercel `rewrites` and `outpost.toml` rewrites are not —
//!   Vercel checks the filesystem before rewrites. In `_redirects`, a rule is
//!   forced only with `!` (Netlify). Cloudflare Pages always follows 3xx
//!   redirects regardless of files; we follow Netlify there, so write `301!`
//!   to redirect away from a path that still exists.
//! * **Order.** Canonicalisation first (trailing slash, then clean URLs),
//!   then the rules top to bottom: the first rule whose pattern and query
//!   conditions match and that is forced or whose path does not exist wins.
//!   Rewrites are one hop: the rewritten path is not matched against the
//!   rules again (Netlify).
//! * **Query strings.** Rules match the path only, unless a `_redirects`
//!   rule lists query conditions (`/store id=:id /items/:id 301`). The
//!   request's query is appended to the destination's own query (Vercel:
//!   `/?b=1` through `/ → /new?a=0` gives `/new?a=0&b=1`), except when the
//!   rule matched on query conditions: then the destination's query is the
//!   whole query, as in Netlify, where matched parameters must be written
//!   into the destination explicitly.
//! * **Trailing slash.** Ignored when matching sources (`/blog` and
//!   `/blog/` match the same rules). `trailing_slash = true` redirects
//!   `/about` → `/about/` except for paths whose last segment has a dot
//!   (`/app.js`), `false` redirects `/about/` → `/about`; 308 (Vercel).
//! * **Clean URLs.** A request for an existing `x.html` redirects to `/x`
//!   (`index.html` to its directory) with 308 (Vercel); `/x` is already
//!   served from `x.html` by [`crate::resolve`].
//! * **Statuses.** Redirects: 301, 302, 303, 307, 308. Vercel's default is
//!   308 (`permanent: false` → 307), `outpost.toml`'s 308, `_redirects`'s 301
//!   (Netlify; Cloudflare defaults to 302). Rewrites: 200, or 404 to serve
//!   a custom not-found page with status 404 (Netlify).
//! * **Proxying.** A rewrite (200) to an absolute `http(s)://` URL is a
//!   proxy: the edge fetches it. Redirects may point anywhere.
//! * **Headers.** Matched against the request path (before rewrites); every
//!   matching rule applies; a header set by several rules gets their values
//!   joined with `, ` (Cloudflare, Netlify). Framing and hop-by-hop headers
//!   may not be set.
//! * **Loops.** A redirect whose target is the request itself is skipped
//!   (Netlify ignores rules that resolve to their own source).
//! * **Case.** Literal segments match case-sensitively, like file names.

mod eval;
mod netlify;
mod outpost;
mod pattern;
mod vercel;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use eval::{headers_for, route, Decision};
pub use outpost::{OutpostHeaders, OutpostRedirect, OutpostRewrite, OutpostRouting};
pub use pattern::{PatternError, MAX_CAPTURES, MAX_DESTINATION_BYTES, MAX_SOURCE_BYTES};

/// Rules (redirects, rewrites and header rules together) per bundle.
pub const MAX_RULES: usize = 2_000;
/// Largest `vercel.json`, `_redirects` or `_headers` accepted.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Query conditions per rule.
pub const MAX_QUERY_CONDITIONS: usize = 8;
/// Headers per header rule.
pub const MAX_HEADERS_PER_RULE: usize = 64;
pub const MAX_HEADER_NAME_BYTES: usize = 128;
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// Names and values of every header rule together: what one response can
/// get from the rules at most (every rule matching, `/*` say).
pub const MAX_HEADER_RULE_BYTES: usize = 32 * 1024;

/// Statuses a redirect may use.
pub const REDIRECT_STATUSES: [u16; 5] = [301, 302, 303, 307, 308];

/// Headers a rule may not set: they frame the message or belong to one
/// connection, and a wrong value would corrupt the response.
const FORBIDDEN_HEADERS: &[&str] = &[
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "x-outpost-deployment",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingConfig {
    /// Redirects and rewrites, in evaluation order.
    pub rules: Vec<Rule>,
    /// Response header rules, all applied in order.
    pub headers: Vec<HeaderRule>,
    /// Redirect `/x.html` → `/x` (308).
    pub clean_urls: bool,
    /// `Some(true)`: add a trailing slash; `Some(false)`: remove it (308).
    pub trailing_slash: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// A pattern (see the `pattern` module), literal segments decoded.
    pub source: String,
    /// Query parameters that must be present (`_redirects` only).
    pub query: Vec<QueryCondition>,
    /// A rooted path (`/new/:splat`) or an absolute `http(s)://` URL, with
    /// an optional `?query` (and for redirects a `#fragment`).
    pub destination: String,
    pub action: Action,
    /// Applies even when the request path exists (Netlify's `!`).
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Redirect {
        status: u16,
    },
    /// 200, or 404 for a custom not-found page. To an absolute URL: proxy.
    Rewrite {
        status: u16,
    },
}

/// `key=:name` binds the value to `name`; `key=literal` requires it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryCondition {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRule {
    pub source: String,
    pub headers: Vec<(String, String)>,
}

impl RoutingConfig {
    /// True when the config changes nothing; the edge then skips routing.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.headers.is_empty()
            && !self.clean_urls
            && self.trailing_slash.is_none()
    }

    /// Checks every bound and rule, as [`crate::Manifest::validate`] does
    /// for a manifest received from a client.
    pub fn validate(&self) -> Result<(), RoutingError> {
        let at = |list, index| Locus::Rule { list, index };
        let err = |locus, problem| RoutingError {
            file: ConfigFile::Manifest,
            locus,
            problem,
        };
        let count = self.rules.len() + self.headers.len();
        if count > MAX_RULES {
            return Err(err(Locus::Whole, Problem::TooManyRules { count }));
        }
        for (i, r) in self.rules.iter().enumerate() {
            check_rule(r).map_err(|p| err(at("rules", i), p))?;
        }
        for (i, h) in self.headers.iter().enumerate() {
            check_header_rule(h).map_err(|p| err(at("headers", i), p))?;
        }
        check_header_bytes(&self.headers).map_err(|p| err(Locus::Whole, p))
    }
}

/// Which configuration an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFile {
    OutpostToml,
    VercelJson,
    Redirects,
    Headers,
    /// A routing config already inside a manifest.
    Manifest,
}

impl fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigFile::OutpostToml => "outpost.toml",
            ConfigFile::VercelJson => "vercel.json",
            ConfigFile::Redirects => "_redirects",
            ConfigFile::Headers => "_headers",
            ConfigFile::Manifest => "manifest routing",
        })
    }
}

/// Where in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locus {
    Whole,
    Line(usize),
    /// `list` is the key holding the rule (`redirects`, `headers`, …);
    /// `index` counts from 0, as in the JSON/TOML array.
    Rule {
        list: &'static str,
        index: usize,
    },
}

impl fmt::Display for Locus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locus::Whole => Ok(()),
            Locus::Line(n) => write!(f, " line {n}"),
            Locus::Rule { list, index } => write!(f, " {list}[{index}]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{locus}: {problem}")]
pub struct RoutingError {
    pub file: ConfigFile,
    pub locus: Locus,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("the file is {size} bytes; the limit is {MAX_FILE_BYTES}")]
    FileTooLarge { size: usize },
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Syntax(String),
    #[error("{count} rules in total; the limit is {MAX_RULES}")]
    TooManyRules { count: usize },
    #[error("source: {0}")]
    Source(PatternError),
    #[error("destination {destination:?}: {reason}")]
    Destination {
        destination: String,
        reason: &'static str,
    },
    #[error("status {status} is not allowed for {what} (allowed: {allowed})")]
    Status {
        status: u16,
        what: &'static str,
        allowed: &'static str,
    },
    #[error("query condition {0:?}: keys and values may not contain '&', '#', whitespace or control characters, and a ':name' must be [A-Za-z_][A-Za-z0-9_]*")]
    QueryCondition(String),
    #[error("more than {MAX_QUERY_CONDITIONS} query conditions")]
    TooManyQueryConditions,
    #[error("header name {0:?} is not a valid HTTP token")]
    HeaderName(String),
    #[error("header {0:?} may not be set by a rule (framing or hop-by-hop header)")]
    ForbiddenHeader(String),
    #[error("value of header {0:?} contains CR, LF, NUL or another control character, or is longer than {MAX_HEADER_VALUE_BYTES} bytes")]
    HeaderValue(String),
    #[error("a header rule needs 1..={MAX_HEADERS_PER_RULE} headers, this one has {0}")]
    HeaderCount(usize),
    #[error("{0} is not supported")]
    Unsupported(&'static str),
    #[error("the header rules set {0} bytes of names and values in all; the limit is {MAX_HEADER_RULE_BYTES}")]
    HeaderBytes(usize),
}

/// The bytes every header rule adds to a response that all of them match.
pub fn header_rule_bytes(headers: &[HeaderRule]) -> usize {
    headers
        .iter()
        .flat_map(|h| h.headers.iter())
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum()
}

fn check_header_bytes(headers: &[HeaderRule]) -> Result<(), Problem> {
    match header_rule_bytes(headers) {
        n if n > MAX_HEADER_RULE_BYTES => Err(Problem::HeaderBytes(n)),
        _ => Ok(()),
    }
}

impl Problem {
    fn at(self, file: ConfigFile, locus: Locus) -> RoutingError {
        RoutingError {
            file,
            locus,
            problem: self,
        }
    }
}

/// Percent-encodes a decoded, rooted path for use in a URL (a rewritten
/// request target, a `Location`).
pub fn encode_path(decoded: &str) -> String {
    let mut out = String::with_capacity(decoded.len() + 8);
    pattern::encode_path(decoded, &mut out);
    out
}

/// True for `http://` and `https://` destinations (proxy or external redirect).
pub fn is_absolute(destination: &str) -> bool {
    destination.starts_with("http://") || destination.starts_with("https://")
}

fn bad_destination(destination: &str, reason: &'static str) -> Problem {
    Problem::Destination {
        destination: destination.chars().take(120).collect(),
        reason,
    }
}

/// `host` or `host:port`, `[v6]` or `[v6]:port`, with nothing a capture
/// could be substituted into.
fn literal_authority(a: &str) -> bool {
    let (host_ok, port) = match a.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, port)) => (
                !ip.is_empty()
                    && ip
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
                port,
            ),
            None => return false,
        },
        None => {
            let (host, port) = match a.find(':') {
                Some(i) => a.split_at(i),
                None => (a, ""),
            };
            (
                !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'),
                port,
            )
        }
    };
    host_ok
        && (port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()))
}

fn check_destination(d: &str, action: Action) -> Result<(), Problem> {
    if d.len() > MAX_DESTINATION_BYTES {
        return Err(bad_destination(d, "too long"));
    }
    if d.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad_destination(
            d,
            "contains whitespace or control characters",
        ));
    }
    let path = if is_absolute(d) {
        let rest = d.split_once("://").map_or("", |(_, r)| r);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains(['@', '\\']) {
            return Err(bad_destination(
                d,
                "an absolute destination needs a host (and no user info)",
            ));
        }
        if !literal_authority(authority) {
            return Err(bad_destination(
                d,
                "the host of an absolute destination must be written out (no placeholders: a request could choose where it goes)",
            ));
        }
        return match action {
            Action::Rewrite { status: 404 } => Err(bad_destination(
                d,
                "a 404 rewrite must name a page of the bundle, not a URL",
            )),
            _ => Ok(()),
        };
    } else if d.starts_with('/') && !d.starts_with("//") {
        d.split(['?', '#']).next().unwrap_or("")
    } else if d.contains("://") {
        return Err(bad_destination(
            d,
            "only http:// and https:// URLs are allowed",
        ));
    } else {
        return Err(bad_destination(
            d,
            "must be a path starting with '/' or an http(s):// URL",
        ));
    };
    if path.contains('\\') || path.split('/').any(|s| s == "." || s == "..") {
        return Err(bad_destination(d, "may not contain '.', '..' or '\\'"));
    }
    if matches!(action, Action::Rewrite { .. }) && d.contains('#') {
        return Err(bad_destination(d, "a rewrite cannot have a #fragment"));
    }
    Ok(())
}

fn valid_query_part(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '&' || c == '#')
}

fn check_rule(r: &Rule) -> Result<(), Problem> {
    let mut names = pattern::validate_source(&r.source).map_err(Problem::Source)?;
    if r.query.len() > MAX_QUERY_CONDITIONS {
        return Err(Problem::TooManyQueryConditions);
    }
    for q in &r.query {
        let ok = valid_query_part(&q.key)
            && !q.key.contains('=')
            && valid_query_part(&q.value)
            && q.value.strip_prefix(':').is_none_or(|n| {
                let mut b = n.bytes();
                matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
                    && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
            });
        if !ok {
            return Err(Problem::QueryCondition(format!("{}={}", q.key, q.value)));
        }
        if let Some(n) = q.value.strip_prefix(':') {
            names.push(n.to_string());
        }
    }
    if names.len() > MAX_CAPTURES {
        return Err(Problem::Source(PatternError::TooManyCaptures));
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(Problem::Source(PatternError::DuplicateCapture(n.clone())));
        }
    }
    match r.action {
        Action::Redirect { status } if !REDIRECT_STATUSES.contains(&status) => {
            return Err(Problem::Status {
                status,
                what: "a redirect",
                allowed: "301, 302, 303, 307, 308",
            })
        }
        Action::Rewrite { status } if status != 200 && status != 404 => {
            return Err(Problem::Status {
                status,
                what: "a rewrite",
                allowed: "200, 404",
            })
        }
        _ => {}
    }
    check_destination(&r.destination, r.action)
}

/// RFC 9110 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HEADER_NAME_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_header(name: &str, value: &str) -> Result<(), Problem> {
    if !is_token(name) {
        return Err(Problem::HeaderName(name.chars().take(80).collect()));
    }
    if FORBIDDEN_HEADERS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        return Err(Problem::ForbiddenHeader(name.to_string()));
    }
    if value.len() > MAX_HEADER_VALUE_BYTES
        || value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(Problem::HeaderValue(name.to_string()));
    }
    Ok(())
}

fn check_header_rule(h: &HeaderRule) -> Result<(), Problem> {
    pattern::validate_source(&h.source).map_err(Problem::Source)?;
    if h.headers.is_empty() || h.headers.len() > MAX_HEADERS_PER_RULE {
        return Err(Problem::HeaderCount(h.headers.len()));
    }
    for (name, value) in &h.headers {
        check_header(name, value)?;
    }
    Ok(())
}

/// What one file contributes before merging.
#[derive(Debug, Default)]
struct Layer {
    rules: Vec<Rule>,
    headers: Vec<HeaderRule>,
    clean_urls: Option<bool>,
    trailing_slash: Option<bool>,
}

fn check_size(file: ConfigFile, text: &str) -> Result<(), RoutingError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(Problem::FileTooLarge { size: text.len() }.at(file, Locus::Whole));
    }
    Ok(())
}

/// Builds a bundle's routing config from its configuration files, in the
/// precedence described in the module docs. `outpost` is the deserialized
/// `outpost.toml`; the others are file contents, `None` when absent.
pub fn from_sources(
    outpost: Option<OutpostRouting>,
    vercel_json: Option<&str>,
    redirects_file: Option<&str>,
    headers_file: Option<&str>,
) -> Result<RoutingConfig, RoutingError> {
    let mut layers: Vec<(ConfigFile, Layer)> = Vec::new();
    if let Some(o) = outpost {
        layers.push((ConfigFile::OutpostToml, o.into_layer()?));
    }
    if let Some(text) = vercel_json {
        check_size(ConfigFile::VercelJson, text)?;
        layers.push((ConfigFile::VercelJson, vercel::parse(text)?));
    }
    if let Some(text) = redirects_file {
        check_size(ConfigFile::Redirects, text)?;
        layers.push((
            ConfigFile::Redirects,
            Layer {
                rules: netlify::parse_redirects(text)?,
                ..Layer::default()
            },
        ));
    }
    if let Some(text) = headers_file {
        check_size(ConfigFile::Headers, text)?;
        layers.push((
            ConfigFile::Headers,
            Layer {
                headers: netlify::parse_headers(text)?,
                ..Layer::default()
            },
        ));
    }
    let mut cfg = RoutingConfig::default();
    let (mut clean_urls, mut trailing_slash) = (None, None);
    for (file, layer) in layers {
        cfg.rules.extend(layer.rules);
        cfg.headers.extend(layer.headers);
        let count = cfg.rules.len() + cfg.headers.len();
        if count > MAX_RULES {
            return Err(Problem::TooManyRules { count }.at(file, Locus::Whole));
        }
        check_header_bytes(&cfg.headers).map_err(|p| p.at(file, Locus::Whole))?;
        clean_urls = clean_urls.or(layer.clean_urls);
        trailing_slash = trailing_slash.or(layer.trailing_slash);
    }
    cfg.clean_urls = clean_urls.unwrap_or(false);
    cfg.trailing_slash = trailing_slash;
    Ok(cfg)
}

/// Builds a rule from config text, normalising its source; shared by the
/// parsers so every file gets the same checks and messages.
fn make_rule(
    source: &str,
    query: Vec<QueryCondition>,
    destination: &str,
    action: Action,
    force: bool,
) -> Result<Rule, Problem> {
    let source = pattern::normalize_source(source).map_err(Problem::Source)?;
    let rule = Rule {
        source,
        query,
        destination: destination.to_string(),
        action,
        force,
    };
    check_rule(&rule)?;
    Ok(rule)
}

fn make_header_rule(source: &str, headers: Vec<(String, String)>) -> Result<HeaderRule, Problem> {
    let source = pattern::normalize_source(source).map_err(Problem::Source)?;
    let rule = HeaderRule { source, headers };
    check_header_rule(&rule)?;
    Ok(rule)
}

#[cfg(test)]
mod tests;
