//! Pure request-header decisions for static files: content coding, byte
//! ranges, conditional requests and cache lifetime. No I/O, so every rule is
//! pinned down by the tables below.

use protocol::Encoding;

/// Picks a precompressed variant from `Accept-Encoding` (all header lines
/// joined with `,`), or `None` for the identity bytes.
///
/// A coding the client did not list is taken at the `*` weight, or refused
/// without `*`. Among acceptable codings the highest weight wins and br beats
/// gzip on a tie. Identity is the fallback: it is chosen over a variant only
/// when the client gives it a strictly higher weight, and it is served even
/// when the client refuses it, since a 406 helps nobody.
pub fn choose_encoding(accept_encoding: &str, available: &[Encoding]) -> Option<Encoding> {
    let mut weights: Vec<(&str, u16)> = Vec::new();
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim();
        if token.is_empty() {
            continue;
        }
        let mut q = Some(1000);
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_qvalue(v.trim());
                }
            }
        }
        // A malformed weight makes the whole entry meaningless; skip it.
        let Some(q) = q else { continue };
        // The first mention of a coding counts, as most servers do.
        if !weights.iter().any(|(t, _)| t.eq_ignore_ascii_case(token)) {
            weights.push((token, q));
        }
    }
    let weight_of = |names: &[&str]| {
        weights
            .iter()
            .find(|(t, _)| names.iter().any(|n| t.eq_ignore_ascii_case(n)))
            .map(|(_, q)| *q)
    };
    let star = weight_of(&["*"]);
    let mut best: Option<(u16, Encoding)> = None;
    // Preference order breaks ties: earlier wins.
    for enc in [Encoding::Br, Encoding::Gzip] {
        if !available.contains(&enc) {
            continue;
        }
        let names: &[&str] = match enc {
            Encoding::Br => &["br"],
            Encoding::Gzip => &["gzip", "x-gzip"],
        };
        let q = weight_of(names).or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, enc));
        }
    }
    let (q, enc) = best?;
    match weight_of(&["identity"]) {
        Some(iq) if iq > q => None,
        _ => Some(enc),
    }
}

/// `q=` value in thousandths (RFC 9110 §12.4.2): `0`, `1`, `0.5`, `1.000`.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_val = frac.bytes().enumerate().fold(0u16, |acc, (i, b)| {
        acc + (b - b'0') as u16 * [100, 10, 1][i]
    });
    match int {
        "0" => Some(frac_val),
        "1" if frac_val == 0 => Some(1000),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// No usable `Range`: serve the whole representation with 200.
    Full,
    /// Serve bytes `start..=end` with 206.
    Partial { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Interprets a `Range` header against a representation of `len` bytes.
///
/// Only one `bytes=` range is honoured; several ranges would need a
/// multipart body, and ignoring `Range` (a full 200) is always allowed.
/// Syntactically invalid ranges are ignored as RFC 9110 §14.2 says.
pub fn parse_range(header: &str, len: u64) -> RangeDecision {
    let header = header.trim();
    let Some(spec) = header
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &header[6..])
    else {
        return RangeDecision::Full;
    };
    if spec.contains(',') {
        return RangeDecision::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeDecision::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix form: the last `n` bytes.
        let Some(n) = parse_digits(last) else {
            return RangeDecision::Full;
        };
        if n == 0 || len == 0 {
            return RangeDecision::Unsatisfiable;
        }
        return RangeDecision::Partial {
            start: len - n.min(len),
            end: len - 1,
        };
    }
    let Some(start) = parse_digits(first) else {
        return RangeDecision::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match parse_digits(last) {
            Some(e) if e >= start => Some(e),
            _ => return RangeDecision::Full,
        }
    };
    if start >= len {
        return RangeDecision::Unsatisfiable;
    }
    RangeDecision::Partial {
        start,
        end: end.map_or(len - 1, |e| e.min(len - 1)),
    }
}

/// Plain ASCII digits only: `str::parse` would also take a leading `+`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `If-None-Match` (all lines joined with `,`) against our quoted `etag`,
/// with the weak comparison RFC 9110 §13.1.2 prescribes.
pub fn if_none_match(header: &str, etag: &str) -> bool {
    if header.trim() == "*" {
        return true;
    }
    header.split(',').any(|tag| {
        let tag = tag.trim();
        tag.strip_prefix("W/").unwrap_or(tag) == etag
    })
}

/// Whether a `Range` may be honoured given `If-Range`: only when it names
/// our entity tag exactly (strong comparison). A date never matches: we send
/// no `Last-Modified`, so the client cannot hold a date that validates.
pub fn if_range_allows(if_range: Option<&str>, etag: &str) -> bool {
    match if_range {
        None => true,
        Some(v) => v.trim() == etag,
    }
}

pub const CACHE_REVALIDATE: &str = "public, max-age=0, must-revalidate";
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Cache lifetime for a bundle file. Only names that change whenever their
/// content does may be cached for a year; guessing wrong that way pins a
/// stale file in browsers, so the rule errs towards revalidation.
pub fn cache_control(path: &str, content_type: &str) -> &'static str {
    let ct = content_type.trim_start().to_ascii_lowercase();
    let is_html = ct.starts_with("text/html") || path.ends_with(".html") || path.ends_with(".htm");
    if !is_html && is_fingerprinted(path) {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    }
}

/// A bundle path whose name carries a content hash (`app.3f2a9c1b.js`,
/// `assets/index-BdK3x9Qa.js`, `main.3f2a9c1b.chunk.js.map`), or anything
/// under Next.js's build-unique `_next/static/`.
pub fn is_fingerprinted(path: &str) -> bool {
    if path.starts_with("_next/static/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _ext)| stem);
    // The hash follows a name (`index-…`), never stands alone: a bare
    // `MyComponent2.js` is a hand-written name.
    stem.split(['.', '-']).skip(1).any(looks_like_hash)
}

fn looks_like_hash(t: &str) -> bool {
    if !(8..=64).contains(&t.len()) || !t.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let digits = t.bytes().any(|b| b.is_ascii_digit());
    let lower = t.bytes().any(|b| b.is_ascii_lowercase());
    let upper = t.bytes().any(|b| b.is_ascii_uppercase());
    let lower_hex = t
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    // Hex digests (webpack, Parcel) mix digits and letters; base62/64 ones
    // (Vite, Rollup, esbuild) mix cases too. Words and version numbers do
    // neither.
    digits && lower && (lower_hex || (upper && t.len() <= 32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Encoding::{Br, Gzip};

    #[test]
    fn encoding_table() {
        let both = &[Br, Gzip][..];
        let gz = &[Gzip][..];
        let cases: &[(&str, &[Encoding], Option<Encoding>)] = &[
            ("", both, None),
            ("gzip, deflate, br, zstd", both, Some(Br)),
            ("gzip, deflate, br", gz, Some(Gzip)),
            ("gzip", both, Some(Gzip)),
            ("GZIP", both, Some(Gzip)),
            ("x-gzip", both, Some(Gzip)),
            ("br", gz, None),
            ("br;q=0.5, gzip;q=0.8", both, Some(Gzip)),
            ("br;q=0.8, gzip;q=0.8", both, Some(Br)),
            ("br;q=0, gzip", both, Some(Gzip)),
            ("br; q=0.000, gzip;q=0", both, None),
            ("*", both, Some(Br)),
            ("*;q=0.5, br;q=0", both, Some(Gzip)),
            ("*;q=0", both, None),
            ("gzip, *;q=0", both, Some(Gzip)),
            ("identity", both, None),
            ("identity;q=1, br;q=0.5", both, None),
            ("identity;q=0.5, br", both, Some(Br)),
            ("identity;q=0, *;q=0", both, None),
            ("br;q=1.5, gzip", both, Some(Gzip)),
            ("br;q=abc", both, None),
            ("br;q=0.1234", both, None),
            ("br;q=1.000", both, Some(Br)),
            (" br ; q=0.9 , ,gzip;q=0.9", both, Some(Br)),
            ("br, br;q=0", both, Some(Br)),
            ("deflate", both, None),
            ("gzip", &[], None),
        ];
        for (header, avail, want) in cases {
            assert_eq!(
                choose_encoding(header, avail),
                *want,
                "{header:?} with {avail:?}"
            );
        }
    }

    #[test]
    fn range_table() {
        use RangeDecision::*;
        let cases: &[(&str, u64, RangeDecision)] = &[
            ("bytes=0-9", 100, Partial { start: 0, end: 9 }),
            ("bytes=10-", 100, Partial { start: 10, end: 99 }),
            ("bytes=-10", 100, Partial { start: 90, end: 99 }),
            ("bytes=-1000", 100, Partial { start: 0, end: 99 }),
            ("bytes=90-1000", 100, Partial { start: 90, end: 99 }),
            ("bytes=99-99", 100, Partial { start: 99, end: 99 }),
            ("Bytes = 1-2", 100, Full),
            ("BYTES=1-2", 100, Partial { start: 1, end: 2 }),
            (" bytes= 1 - 2 ", 100, Partial { start: 1, end: 2 }),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            ("bytes=5-1", 100, Full),
            ("bytes=0-1,5-6", 100, Full),
            ("bytes=-", 100, Full),
            ("bytes=a-b", 100, Full),
            ("bytes=+1-2", 100, Full),
            ("bytes=1-+2", 100, Full),
            ("bytes=99999999999999999999999-", 100, Full),
            ("items=0-1", 100, Full),
            ("bytes 0-1", 100, Full),
            ("", 100, Full),
        ];
        for (header, len, want) in cases {
            assert_eq!(parse_range(header, *len), *want, "{header:?} of {len}");
        }
    }

    #[test]
    fn if_none_match_table() {
        let etag = "\"abc\"";
        let cases = [
            ("\"abc\"", true),
            ("W/\"abc\"", true),
            ("*", true),
            (" * ", true),
            ("\"x\", \"abc\"", true),
            ("\"x\",W/\"abc\"", true),
            ("\"x\"", false),
            ("abc", false),
            ("\"ABC\"", false),
            ("", false),
            ("\"abc", false),
        ];
        for (header, want) in cases {
            assert_eq!(if_none_match(header, etag), want, "{header:?}");
        }
    }

    #[test]
    fn if_range_table() {
        let etag = "\"abc\"";
        let cases = [
            (None, true),
            (Some("\"abc\""), true),
            (Some(" \"abc\" "), true),
            (Some("W/\"abc\""), false),
            (Some("\"other\""), false),
            (Some("Wed, 21 Oct 2015 07:28:00 GMT"), false),
        ];
        for (header, want) in cases {
            assert_eq!(if_range_allows(header, etag), want, "{header:?}");
        }
    }

    #[test]
    fn cache_control_table() {
        let cases = [
            ("index.html", "text/html; charset=utf-8", CACHE_REVALIDATE),
            ("app.3f2a9c1b.html", "text/html", CACHE_REVALIDATE),
            (
                "page.3f2a9c1b.htm",
                "application/octet-stream",
                CACHE_REVALIDATE,
            ),
            ("app.3f2a9c1b.js", "text/javascript", CACHE_IMMUTABLE),
            (
                "static/js/main.3f2a9c1b.chunk.js",
                "text/javascript",
                CACHE_IMMUTABLE,
            ),
            (
                "static/js/main.3f2a9c1b.chunk.js.map",
                "application/json",
                CACHE_IMMUTABLE,
            ),
            (
                "assets/index-BdK3x9Qa.js",
                "text/javascript",
                CACHE_IMMUTABLE,
            ),
            ("_astro/index.BdK3x9Qa.css", "text/css", CACHE_IMMUTABLE),
            (
                "_next/static/chunks/main.js",
                "text/javascript",
                CACHE_IMMUTABLE,
            ),
            (
                "_next/static/abc/_buildManifest.js",
                "text/javascript",
                CACHE_IMMUTABLE,
            ),
            ("app.js", "text/javascript", CACHE_REVALIDATE),
            ("assets/logo.svg", "image/svg+xml", CACHE_REVALIDATE),
            ("jquery-3.7.1.min.js", "text/javascript", CACHE_REVALIDATE),
            ("bootstrap.min.css", "text/css", CACHE_REVALIDATE),
            ("MyComponent2.js", "text/javascript", CACHE_REVALIDATE),
            ("3f2a9c1b.js", "text/javascript", CACHE_REVALIDATE),
            (
                "assets/some-component.js",
                "text/javascript",
                CACHE_REVALIDATE,
            ),
            ("report-20240101.pdf", "application/pdf", CACHE_REVALIDATE),
            ("video-1080p60fps.mp4", "video/mp4", CACHE_REVALIDATE),
            ("fonts/inter-variable.woff2", "font/woff2", CACHE_REVALIDATE),
            ("x-deadbeef.js", "text/javascript", CACHE_REVALIDATE),
            ("robots.txt", "text/plain", CACHE_REVALIDATE),
            ("next/static/x.js", "text/javascript", CACHE_REVALIDATE),
        ];
        for (path, ct, want) in cases {
            assert_eq!(cache_control(path, ct), want, "{path}");
        }
    }
}
