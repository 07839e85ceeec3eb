//! Path normalisation for bundle paths (what a manifest may contain) and for
//! request paths (what a client may ask for). Both reject anything that could
//! escape the bundle: `..`, absolute paths, NUL, backslashes, over-long input.

/// Longest path accepted, in bytes, after decoding.
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest single path segment, in bytes.
pub const MAX_SEGMENT_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is empty")]
    Empty,
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("path segment is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    #[error("path must be relative (no leading '/')")]
    Absolute,
    #[error("path may not contain '..' or '.' segments")]
    DotSegment,
    #[error("path may not contain empty segments ('//' or a trailing '/')")]
    EmptySegment,
    #[error("path may not contain a backslash")]
    Backslash,
    #[error("path may not contain NUL or control characters")]
    ControlChar,
    #[error("request path must start with '/'")]
    NotRooted,
    #[error("invalid percent-encoding in path")]
    BadEncoding,
}

/// Validates a path as stored in a manifest: `dir/file.ext`, no leading slash,
/// no dot segments, no empty segments. Returns it unchanged when valid, so the
/// manifest's keys are exactly what was validated.
pub fn validate_bundle_path(p: &str) -> Result<&str, PathError> {
    if p.is_empty() {
        return Err(PathError::Empty);
    }
    if p.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if p.starts_with('/') {
        return Err(PathError::Absolute);
    }
    check_chars(p)?;
    for seg in p.split('/') {
        check_segment(seg)?;
    }
    Ok(p)
}

fn check_chars(p: &str) -> Result<(), PathError> {
    if p.contains('\\') {
        return Err(PathError::Backslash);
    }
    if p.chars().any(|c| c.is_control()) {
        return Err(PathError::ControlChar);
    }
    Ok(())
}

fn check_segment(seg: &str) -> Result<(), PathError> {
    match seg {
        "" => Err(PathError::EmptySegment),
        "." | ".." => Err(PathError::DotSegment),
        s if s.len() > MAX_SEGMENT_BYTES => Err(PathError::SegmentTooLong),
        _ => Ok(()),
    }
}

/// A request path, percent-decoded and split into the segments a resolver
/// looks up. `trailing_slash` remembers whether the client asked for a
/// directory (`/docs/`), which matters for index resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    pub segments: Vec<String>,
    pub trailing_slash: bool,
}

impl RequestPath {
    /// The bundle-relative form (`a/b.html`), empty for the root.
    pub fn joined(&self) -> String {
        self.segments.join("/")
    }

    /// The decoded, rooted form routing rules match against: `/`,
    /// `/a/b`, `/docs/` (the trailing slash kept).
    pub fn rooted(&self) -> String {
        let mut out =
            String::with_capacity(self.segments.iter().map(|s| s.len() + 1).sum::<usize>() + 1);
        for s in &self.segments {
            out.push('/');
            out.push_str(s);
        }
        if out.is_empty() || self.trailing_slash {
            out.push('/');
        }
        out
    }
}

/// Parses an already-decoded rooted path (a rewrite target) with the same
/// checks as [`parse_request_path`], minus the percent-decoding: a rewrite
/// names bundle paths literally.
pub fn parse_decoded_path(path: &str) -> Result<RequestPath, PathError> {
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotRooted);
    }
    check_chars(path)?;
    let mut segments = Vec::new();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        check_segment(seg)?;
        segments.push(seg.to_string());
    }
    // `//` is the root, as its rooted form says.
    let trailing_slash = !segments.is_empty() && path.ends_with('/');
    Ok(RequestPath {
        segments,
        trailing_slash,
    })
}

/// Parses the path part of a request target (the query is stripped here).
/// Empty segments (`//`) are collapsed as every web server does; dot
/// segments and encoded slashes/backslashes/NULs are refused rather than
/// interpreted, so no request can name a file outside the bundle.
pub fn parse_request_path(target: &str) -> Result<RequestPath, PathError> {
    let raw = target.split(['?', '#']).next().unwrap_or("");
    if raw.len() > MAX_PATH_BYTES * 3 {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotRooted);
    }
    let mut segments = Vec::new();
    let mut total = 0;
    for raw_seg in raw.split('/').filter(|s| !s.is_empty()) {
        let seg = percent_decode(raw_seg)?;
        if seg.contains('/') {
            // An encoded slash would let one segment stand for two.
            return Err(PathError::DotSegment);
        }
        check_chars(&seg)?;
        check_segment(&seg)?;
        total += seg.len() + 1;
        if total > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        segments.push(seg);
    }
    // The rooted form (what routing matches and a rewrite re-parses) must
    // fit too, its trailing slash included; `//` is the root.
    let trailing_slash = !segments.is_empty() && raw.ends_with('/');
    if total + usize::from(trailing_slash) > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    Ok(RequestPath {
        segments,
        trailing_slash,
    })
}

pub(crate) fn percent_decode(s: &str) -> Result<String, PathError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits exactly (`from_str_radix` alone would take `+f`).
            let digit = |j: usize| {
                bytes
                    .get(j)
                    .and_then(|&b| (b as char).to_digit(16))
                    .ok_or(PathError::BadEncoding)
            };
            out.push((digit(i + 1)? * 16 + digit(i + 2)?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::BadEncoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_paths() {
        let long_seg = "a".repeat(256);
        let long_path = vec!["abcdefgh"; 200].join("/");
        let cases: &[(&str, Result<(), PathError>)] = &[
            ("index.html", Ok(())),
            ("assets/app.3f2a.js", Ok(())),
            ("ünïcode/файл.txt", Ok(())),
            (".well-known/security.txt", Ok(())),
            ("", Err(PathError::Empty)),
            ("/etc/passwd", Err(PathError::Absolute)),
            ("../secret", Err(PathError::DotSegment)),
            ("a/../../b", Err(PathError::DotSegment)),
            ("a/./b", Err(PathError::DotSegment)),
            ("a//b", Err(PathError::EmptySegment)),
            ("dir/", Err(PathError::EmptySegment)),
            ("a\\..\\b", Err(PathError::Backslash)),
            ("a\0b", Err(PathError::ControlChar)),
            ("a\nb", Err(PathError::ControlChar)),
            (&long_seg, Err(PathError::SegmentTooLong)),
            (&long_path, Err(PathError::TooLong)),
        ];
        for (input, want) in cases {
            let got = validate_bundle_path(input).map(|_| ());
            assert_eq!(&got, want, "input {input:?}");
        }
    }

    #[test]
    fn request_paths() {
        let ok = |segs: &[&str], slash: bool| {
            Ok(RequestPath {
                segments: segs.iter().map(|s| s.to_string()).collect(),
                trailing_slash: slash,
            })
        };
        let cases: Vec<(&str, Result<RequestPath, PathError>)> = vec![
            ("/", ok(&[], false)),
            ("/index.html", ok(&["index.html"], false)),
            ("/docs/", ok(&["docs"], true)),
            ("/a//b", ok(&["a", "b"], false)),
            ("/a%20b.html?x=1#f", ok(&["a b.html"], false)),
            ("/caf%C3%A9", ok(&["café"], false)),
            ("/../etc/passwd", Err(PathError::DotSegment)),
            ("/a/%2e%2e/b", Err(PathError::DotSegment)),
            ("/a%2fb", Err(PathError::DotSegment)),
            ("/a%5cb", Err(PathError::Backslash)),
            ("/a%00b", Err(PathError::ControlChar)),
            ("/a%zz", Err(PathError::BadEncoding)),
            ("/a%c3", Err(PathError::BadEncoding)),
            ("/a%", Err(PathError::BadEncoding)),
            // Found by the property tests: a sign is not a hex digit.
            ("/a%+1", Err(PathError::BadEncoding)),
            ("/a%-1", Err(PathError::BadEncoding)),
            // `//` is the root, not a directory named "".
            ("//", ok(&[], false)),
            ("relative", Err(PathError::NotRooted)),
            ("*", Err(PathError::NotRooted)),
        ];
        for (input, want) in cases {
            assert_eq!(parse_request_path(input), want, "input {input:?}");
        }
        let huge = format!("/{}", "a/".repeat(MAX_PATH_BYTES));
        assert_eq!(parse_request_path(&huge), Err(PathError::TooLong));
        // At the limit, the rooted form's trailing slash counts too: a path
        // whose rooted form would not parse back is refused here.
        let full = format!("/{}", "a".repeat(255)).repeat(MAX_PATH_BYTES / 256);
        assert_eq!(
            parse_request_path(&full).unwrap().rooted().len(),
            MAX_PATH_BYTES
        );
        assert_eq!(
            parse_request_path(&format!("{full}/")),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn decoded_paths_round_trip_and_stay_inside() {
        for target in ["/", "/a/b", "/docs/", "/a%20b/c%C3%A9"] {
            let parsed = parse_request_path(target).unwrap();
            assert_eq!(parse_decoded_path(&parsed.rooted()), Ok(parsed), "{target}");
        }
        assert_eq!(parse_request_path("/a%20b/").unwrap().rooted(), "/a b/");
        let cases: &[(&str, PathError)] = &[
            ("a/b", PathError::NotRooted),
            ("/a/../b", PathError::DotSegment),
            ("/a/./b", PathError::DotSegment),
            ("/a\\b", PathError::Backslash),
            ("/a\0b", PathError::ControlChar),
        ];
        for (p, want) in cases {
            assert_eq!(parse_decoded_path(p).as_ref(), Err(want), "{p:?}");
        }
        // No second decoding: `%2e%2e` is a literal file name here.
        assert!(parse_decoded_path("/%2e%2e/x").is_ok());
    }
}
