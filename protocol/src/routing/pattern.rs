//! Source patterns and destination templates.
//!
//! A source is matched segment by segment against the *decoded* request
//! path; a trailing slash on either side is ignored (Netlify and Vercel both
//! match `/blog` and `/blog/` alike). Segment forms:
//!
//! | form            | matches                         | capture name |
//! |-----------------|---------------------------------|--------------|
//! | `about`         | that literal segment            | —            |
//! | `:id`           | one segment                     | `id`         |
//! | `:id?`          | zero or one segment (last only) | `id`         |
//! | `:path*`        | zero or more segments (last)    | `path`       |
//! | `:path+`        | one or more segments (last)     | `path`       |
//! | `:path(.*)`     | same as `:path*` (Vercel)       | `path`       |
//! | `*` / `(.*)`    | zero or more segments (last)    | `splat`      |
//!
//! Anything else that looks like a regular expression is refused: these
//! rules are evaluated on every request, and a small fixed grammar keeps
//! matching allocation-free and linear.
//!
//! Destinations refer to captures as `:name` (Vercel's `:path*` and `:path+`
//! spellings are accepted too) or positionally as `$1`, `$2`, … in capture
//! order. A `:word` that names no capture is left as written, as Netlify does.

/// Longest source pattern, in bytes (Cloudflare's per-line limit is 1,000).
pub const MAX_SOURCE_BYTES: usize = 1024;
/// Longest destination, in bytes.
pub const MAX_DESTINATION_BYTES: usize = 2048;
/// Captures per rule, path and query together.
pub const MAX_CAPTURES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{0:?} must start with '/'")]
    NotRooted(String),
    #[error("longer than {0} bytes")]
    TooLong(usize),
    #[error("{0:?} has an empty segment ('//')")]
    EmptySegment(String),
    #[error("{0:?} has a '.' or '..' segment")]
    DotSegment(String),
    #[error("{0:?}: a splat ('*', '(.*)', ':name*', ':name+') or optional ':name?' may only be the last segment")]
    NotLast(String),
    #[error("{0:?}: parameter names are [A-Za-z_][A-Za-z0-9_]*")]
    BadParam(String),
    #[error("{0:?}: regular expressions are not supported; use literal segments, :param, :param?, :param*, :param+, :param(.*), (.*) or *")]
    Regex(String),
    #[error("{0:?} contains whitespace, a backslash or a control character")]
    BadChar(String),
    #[error("{0:?} has invalid percent-encoding or an encoded '/'")]
    BadEncoding(String),
    #[error("more than {MAX_CAPTURES} captures")]
    TooManyCaptures,
    #[error("the same capture name {0:?} is used twice")]
    DuplicateCapture(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg<'a> {
    Lit(&'a str),
    Param(&'a str),
    Optional(&'a str),
    /// `min` is 0 for `*`, 1 for `+`.
    Splat {
        name: &'a str,
        min: u8,
    },
}

fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn parse_seg(raw: &str) -> Result<Seg<'_>, PatternError> {
    if raw == "*" || raw == "(.*)" {
        return Ok(Seg::Splat {
            name: "splat",
            min: 0,
        });
    }
    if let Some(p) = raw.strip_prefix(':') {
        let (name, seg) = if let Some(n) = p.strip_suffix("(.*)") {
            (n, Seg::Splat { name: n, min: 0 })
        } else if let Some(n) = p.strip_suffix('*') {
            (n, Seg::Splat { name: n, min: 0 })
        } else if let Some(n) = p.strip_suffix('+') {
            (n, Seg::Splat { name: n, min: 1 })
        } else if let Some(n) = p.strip_suffix('?') {
            (n, Seg::Optional(n))
        } else {
            (p, Seg::Param(p))
        };
        if !valid_name(name) {
            return Err(if name.contains(['(', ')', '[', ']', '|', '\\']) {
                PatternError::Regex(short(raw))
            } else {
                PatternError::BadParam(short(raw))
            });
        }
        return Ok(seg);
    }
    if raw == "." || raw == ".." {
        return Err(PatternError::DotSegment(short(raw)));
    }
    if raw.contains(['(', ')', '[', ']', '{', '}', '|', '^', '*', '?']) {
        return Err(PatternError::Regex(short(raw)));
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return Err(PatternError::BadChar(short(raw)));
    }
    Ok(Seg::Lit(raw))
}

/// The segments of a rooted pattern, a trailing slash ignored.
fn segments(source: &str) -> Option<std::str::Split<'_, char>> {
    let body = source.strip_prefix('/')?;
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut split = body.split('/');
    if body.is_empty() {
        // `"".split('/')` yields one empty item: the root has no segments.
        split.next();
    }
    Some(split)
}

/// Checks a source pattern and returns the names it captures, in order.
pub fn validate_source(source: &str) -> Result<Vec<String>, PatternError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(PatternError::TooLong(MAX_SOURCE_BYTES));
    }
    let Some(segs) = segments(source) else {
        return Err(PatternError::NotRooted(short(source)));
    };
    if source.starts_with("//") {
        return Err(PatternError::EmptySegment(short(source)));
    }
    let segs: Vec<&str> = segs.collect();
    let mut names = Vec::new();
    for (i, raw) in segs.iter().enumerate() {
        if raw.is_empty() {
            return Err(PatternError::EmptySegment(short(source)));
        }
        match parse_seg(raw)? {
            Seg::Lit(_) => {}
            Seg::Param(n) => names.push(n.to_string()),
            Seg::Optional(n) | Seg::Splat { name: n, .. } => {
                if i + 1 != segs.len() {
                    return Err(PatternError::NotLast(short(source)));
                }
                names.push(n.to_string());
            }
        }
    }
    Ok(names)
}

/// Percent-decodes the literal segments of a source so that it compares
/// with decoded request paths (`/caf%C3%A9` → `/café`).
pub fn normalize_source(source: &str) -> Result<String, PatternError> {
    if !source.contains('%') {
        return Ok(source.to_string());
    }
    let mut out = String::with_capacity(source.len());
    for (i, seg) in source.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.starts_with(':') {
            out.push_str(seg);
            continue;
        }
        let decoded = crate::path::percent_decode(seg)
            .map_err(|_| PatternError::BadEncoding(short(source)))?;
        if decoded.contains('/') {
            return Err(PatternError::BadEncoding(short(source)));
        }
        out.push_str(&decoded);
    }
    Ok(out)
}

/// Values bound while matching: names borrow from the rule, values from
/// the request. Fixed capacity, so matching never allocates.
pub(crate) struct Captures<'c, 'r> {
    items: [(&'c str, &'r str, bool); MAX_CAPTURES],
    len: usize,
}

impl<'c, 'r> Captures<'c, 'r> {
    pub fn new() -> Self {
        Captures {
            items: [("", "", false); MAX_CAPTURES],
            len: 0,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// `encoded` marks values taken from the query string, which are still
    /// percent-encoded; path values are decoded.
    pub fn push(&mut self, name: &'c str, value: &'r str, encoded: bool) {
        if self.len < MAX_CAPTURES {
            self.items[self.len] = (name, value, encoded);
            self.len += 1;
        }
    }

    fn by_name(&self, name: &str) -> Option<(&'r str, bool)> {
        self.items[..self.len]
            .iter()
            .find(|(n, ..)| *n == name)
            .map(|(_, v, e)| (*v, *e))
    }

    fn by_index(&self, i: usize) -> Option<(&'r str, bool)> {
        self.items[..self.len].get(i).map(|(_, v, e)| (*v, *e))
    }
}

fn next_seg(rem: &str) -> Option<(&str, &str)> {
    if rem.is_empty() {
        return None;
    }
    Some(match rem.find('/') {
        Some(i) => (&rem[..i], &rem[i + 1..]),
        None => (rem, ""),
    })
}

/// Matches a validated `source` against a decoded, rooted request path.
/// Literal segments compare case-sensitively, like the files they name.
pub(crate) fn match_source<'c, 'r>(
    source: &'c str,
    path: &'r str,
    caps: &mut Captures<'c, 'r>,
) -> bool {
    let Some(body) = path.strip_prefix('/') else {
        return false;
    };
    let mut rem = body.strip_suffix('/').unwrap_or(body);
    let Some(segs) = segments(source) else {
        return false;
    };
    for raw in segs {
        let Ok(seg) = parse_seg(raw) else {
            return false;
        };
        match seg {
            Seg::Lit(l) => match next_seg(rem) {
                Some((head, tail)) if head == l => rem = tail,
                _ => return false,
            },
            Seg::Param(n) => match next_seg(rem) {
                Some((head, tail)) => {
                    caps.push(n, head, false);
                    rem = tail;
                }
                None => return false,
            },
            Seg::Optional(n) => {
                if rem.contains('/') {
                    return false;
                }
                caps.push(n, rem, false);
                rem = "";
            }
            Seg::Splat { name, min } => {
                if min > 0 && rem.is_empty() {
                    return false;
                }
                caps.push(name, rem, false);
                rem = "";
            }
        }
    }
    rem.is_empty()
}

/// How substituted text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// A bundle path for an internal rewrite: decoded, written as is.
    RawPath,
    /// The path of a URL (a `Location` or a proxy target).
    UrlPath,
    /// A query string.
    UrlQuery,
}

fn keep(b: u8, part: Part) -> bool {
    b.is_ascii_alphanumeric()
        || b"-._~!$'()*,;:@".contains(&b)
        || match part {
            Part::RawPath => true,
            Part::UrlPath => b"/&=+".contains(&b),
            // `&`, `=` and `+` would change the meaning of a query value.
            Part::UrlQuery => b"/?".contains(&b),
        }
}

fn push_encoded(out: &mut String, s: &str, part: Part) {
    if part == Part::RawPath {
        out.push_str(s);
        return;
    }
    for b in s.bytes() {
        if keep(b, part) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
}

/// Literal template text keeps its own percent-escapes and URL syntax;
/// only what can never appear in a URL (non-ASCII, space, quotes…) is
/// escaped.
fn push_literal(out: &mut String, s: &str, part: Part) {
    if part == Part::RawPath {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_ascii_graphic() && !"\"<>\\^`{|}".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            push_encoded(out, c.encode_utf8(&mut buf), Part::UrlQuery);
        }
    }
}

/// Writes `template` with its `:name` / `$n` references replaced.
pub(crate) fn substitute(template: &str, caps: &Captures, part: Part, out: &mut String) {
    let bytes = template.as_bytes();
    let mut lit_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (value, end) = match bytes[i] {
            b':' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_')
                    && (j > start || !bytes[j].is_ascii_digit())
                {
                    j += 1;
                }
                match caps.by_name(&template[start..j]).filter(|_| j > start) {
                    // Vercel writes `:path*` in destinations too.
                    Some(v) if j < bytes.len() && matches!(bytes[j], b'*' | b'+') => {
                        (Some(v), j + 1)
                    }
                    Some(v) => (Some(v), j),
                    None => (None, j.max(i + 1)),
                }
            }
            b'$' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && bytes[j].is_ascii_digit() && j - start < 2 {
                    j += 1;
                }
                let n: usize = template[start..j].parse().unwrap_or(0);
                let v = n.checked_sub(1).and_then(|k| caps.by_index(k));
                (v, j.max(i + 1))
            }
            _ => {
                i += 1;
                continue;
            }
        };
        if let Some((v, encoded)) = value {
            push_literal(out, &template[lit_start..i], part);
            if encoded {
                // Query values are still in their wire form.
                out.push_str(v);
            } else {
                push_encoded(out, v, part);
            }
            lit_start = end;
        }
        i = end;
    }
    push_literal(out, &template[lit_start..], part);
}

/// Percent-encodes a decoded request path for a `Location` header.
pub(crate) fn encode_path(path: &str, out: &mut String) {
    push_encoded(out, path, Part::UrlPath);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_validation_table() {
        let long = format!("/{}", "a".repeat(MAX_SOURCE_BYTES));
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("/", Ok(&[])),
            ("/about", Ok(&[])),
            ("/about/", Ok(&[])),
            ("/blog/*", Ok(&["splat"])),
            ("/news/:year/:month/:slug", Ok(&["year", "month", "slug"])),
            ("/docs/:path*", Ok(&["path"])),
            ("/docs/:path+", Ok(&["path"])),
            ("/docs/:page?", Ok(&["page"])),
            ("/assets/(.*)", Ok(&["splat"])),
            ("/post/:path(.*)", Ok(&["path"])),
            ("/c++/x.html", Ok(&[])),
            ("/v1:beta", Ok(&[])),
            ("about", Err("start with '/'")),
            ("/a//b", Err("empty segment")),
            ("/a/../b", Err("'..'")),
            ("/*/x", Err("last segment")),
            ("/:p?/x", Err("last segment")),
            ("/:", Err("parameter names")),
            ("/:1abc", Err("parameter names")),
            ("/modules/:path((?!_x_).*)", Err("regular expressions")),
            ("/(foo|bar)", Err("regular expressions")),
            ("/file-*", Err("regular expressions")),
            ("/a?b=1", Err("regular expressions")),
            ("/a b", Err("whitespace")),
            ("/a\\b", Err("backslash")),
            (&long, Err("longer than")),
        ];
        for (src, want) in cases {
            let got = validate_source(src);
            match want {
                Ok(names) => assert_eq!(got.expect(src), *names, "{src}"),
                Err(needle) => {
                    let msg = got.expect_err(src).to_string();
                    assert!(msg.contains(needle), "{src}: {msg}");
                }
            }
        }
    }

    #[test]
    fn normalize_decodes_literals() {
        assert_eq!(normalize_source("/caf%C3%A9/:id").unwrap(), "/café/:id");
        assert_eq!(normalize_source("/plain").unwrap(), "/plain");
        assert!(normalize_source("/a%2Fb").is_err());
        assert!(normalize_source("/a%zz").is_err());
    }

    fn run(source: &str, path: &str) -> Option<Vec<(String, String)>> {
        let mut caps = Captures::new();
        match_source(source, path, &mut caps).then(|| {
            caps.items[..caps.len]
                .iter()
                .map(|(n, v, _)| (n.to_string(), v.to_string()))
                .collect()
        })
    }

    #[test]
    fn matching_table() {
        type Want<'a> = Option<&'a [(&'a str, &'a str)]>;
        let cases: &[(&str, &str, Want)] = &[
            ("/", "/", Some(&[])),
            ("/", "/a", None),
            ("/about", "/about", Some(&[])),
            ("/about", "/about/", Some(&[])),
            ("/about/", "/about", Some(&[])),
            ("/about", "/About", None),
            ("/about", "/about/x", None),
            ("/blog/*", "/blog", Some(&[("splat", "")])),
            ("/blog/*", "/blog/", Some(&[("splat", "")])),
            ("/blog/*", "/blog/a/b/c", Some(&[("splat", "a/b/c")])),
            ("/blog/*", "/blog/a/b/", Some(&[("splat", "a/b")])),
            ("/blog/*", "/blogs/a", None),
            ("/*", "/", Some(&[("splat", "")])),
            ("/*", "/x/y", Some(&[("splat", "x/y")])),
            (
                "/news/:year/:slug",
                "/news/2024/hello",
                Some(&[("year", "2024"), ("slug", "hello")]),
            ),
            ("/news/:year/:slug", "/news/2024", None),
            ("/news/:year/:slug", "/news/2024/a/b", None),
            ("/d/:path*", "/d", Some(&[("path", "")])),
            ("/d/:path*", "/d/a/b", Some(&[("path", "a/b")])),
            ("/d/:path+", "/d", None),
            ("/d/:path+", "/d/a", Some(&[("path", "a")])),
            ("/d/:p?", "/d", Some(&[("p", "")])),
            ("/d/:p?", "/d/x", Some(&[("p", "x")])),
            ("/d/:p?", "/d/x/y", None),
            ("/assets/(.*)", "/assets/a.css", Some(&[("splat", "a.css")])),
            ("/u/:name", "/u/josé", Some(&[("name", "josé")])),
        ];
        for (src, path, want) in cases {
            let want = want.map(|w| {
                w.iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect::<Vec<_>>()
            });
            assert_eq!(run(src, path), want, "{src} vs {path}");
        }
    }

    fn sub(template: &str, caps: &[(&'static str, &'static str, bool)], part: Part) -> String {
        let mut c = Captures::new();
        for (n, v, e) in caps {
            c.push(n, v, *e);
        }
        let mut out = String::new();
        substitute(template, &c, part, &mut out);
        out
    }

    #[test]
    fn substitution_table() {
        let caps = [
            ("splat", "a b/ü", false),
            ("id", "42", false),
            ("q", "x%20y", true),
        ];
        let cases: &[(&str, Part, &str)] = &[
            ("/blog/:splat", Part::RawPath, "/blog/a b/ü"),
            ("/blog/:splat", Part::UrlPath, "/blog/a%20b/%C3%BC"),
            ("/blog/:splat*", Part::UrlPath, "/blog/a%20b/%C3%BC"),
            ("/x/$2/$1", Part::RawPath, "/x/42/a b/ü"),
            ("/x/$9", Part::RawPath, "/x/$9"),
            ("/items/:id.json", Part::UrlPath, "/items/42.json"),
            ("/:unknown/:id", Part::UrlPath, "/:unknown/42"),
            (
                "https://h.example:8443/:id",
                Part::UrlPath,
                "https://h.example:8443/42",
            ),
            ("id=:id&s=:splat", Part::UrlQuery, "id=42&s=a%20b/%C3%BC"),
            ("v=:q", Part::UrlQuery, "v=x%20y"),
            ("/café", Part::UrlPath, "/caf%C3%A9"),
            ("/café", Part::RawPath, "/café"),
        ];
        for (t, part, want) in cases {
            assert_eq!(sub(t, &caps, *part), *want, "{t} {part:?}");
        }
    }
}
