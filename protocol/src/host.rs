//! Host names: normalising the `Host` header / SNI and choosing a certificate.

use std::borrow::Cow;
use std::collections::BTreeMap;

pub const MAX_HOST_BYTES: usize = 253;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("host is empty")]
    Empty,
    #[error("host is longer than {MAX_HOST_BYTES} bytes")]
    TooLong,
    #[error("host contains characters outside [a-z0-9.-]")]
    BadChar,
    #[error("host has an empty or over-long label")]
    BadLabel,
    #[error("host has an invalid port")]
    BadPort,
}

/// Lowercases, strips the port and a trailing dot, and checks the result is
/// a DNS name (`blog.localhost`). IP literals are refused: sites are
/// addressed by name.
pub fn normalize_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    let raw = raw.trim();
    let name = match raw.rsplit_once(':') {
        Some((name, port)) => {
            // Digits only (`parse` alone takes a sign), at most five, a
            // port number (none when empty).
            if port.len() > 5
                || !port.bytes().all(|b| b.is_ascii_digit())
                || port.parse::<u16>().is_err()
            {
                return Err(HostError::BadPort);
            }
            name
        }
        None => raw,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.len() > MAX_HOST_BYTES {
        return Err(HostError::TooLong);
    }
    // Every request's Host goes through here: a name that is already
    // lowercase is returned as a borrow.
    let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    };
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(HostError::BadChar);
    }
    if name.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(HostError::BadLabel);
    }
    Ok(name)
}

/// A DNS label for use in generated host names (`my_Blog!` → `my-blog`).
pub fn is_valid_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Picks the certificate for an SNI name among the names certificates exist
/// for: an exact match first, then a wildcard one label up (`*.example.com`
/// covers `a.example.com`, not `a.b.example.com`, as RFC 6125 says).
pub fn choose_certificate<'a, V>(sni: &str, certs: &'a BTreeMap<String, V>) -> Option<&'a V> {
    let sni = normalize_host(sni).ok()?;
    if let Some(v) = certs.get(sni.as_ref()) {
        return Some(v);
    }
    certs.get(&wildcard_of(&sni)?)
}

/// The one-level wildcard that covers normalised `host` (`*.shop.com` for
/// `www.shop.com`), as certificates and wildcard domains match; `None`
/// for a single label. An exact name always wins over it.
pub fn wildcard_of(host: &str) -> Option<String> {
    let (_, parent) = host.split_once('.')?;
    (!parent.is_empty()).then(|| format!("*.{parent}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert_eq!(wildcard_of("www.shop.com").as_deref(), Some("*.shop.com"));
        assert_eq!(wildcard_of("a.localhost").as_deref(), Some("*.localhost"));
        assert_eq!(wildcard_of("localhost"), None);
        assert_eq!(wildcard_of("a."), None);
    }

    #[test]
    fn normalize_table() {
        let long = format!("{}.com", "a".repeat(250));
        let long_label = format!("{}.com", "a".repeat(64));
        let cases: &[(&str, Result<&str, HostError>)] = &[
            ("blog.localhost", Ok("blog.localhost")),
            ("Blog.LocalHost:8080", Ok("blog.localhost")),
            ("example.com.", Ok("example.com")),
            ("localhost", Ok("localhost")),
            ("", Err(HostError::Empty)),
            (":80", Err(HostError::Empty)),
            ("a.com:", Err(HostError::BadPort)),
            ("a.com:80x", Err(HostError::BadPort)),
            ("a.com:65535", Ok("a.com")),
            ("a.com:65536", Err(HostError::BadPort)),
            ("a.com:+80", Err(HostError::BadPort)),
            ("a.com:1234567", Err(HostError::BadPort)),
            ("a_b.com", Err(HostError::BadChar)),
            ("a b.com", Err(HostError::BadChar)),
            ("[::1]:80", Err(HostError::BadChar)),
            ("a..com", Err(HostError::BadLabel)),
            (&long, Err(HostError::TooLong)),
            (&long_label, Err(HostError::BadLabel)),
        ];
        for (input, want) in cases {
            assert_eq!(
                normalize_host(input),
                want.clone().map(Cow::Borrowed),
                "{input:?}"
            );
        }
    }

    #[test]
    fn certificate_choice_table() {
        let certs: BTreeMap<String, &str> = [
            ("blog.localhost", "exact"),
            ("*.localhost", "wild"),
            ("*.example.com", "wild-example"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let cases = [
            ("blog.localhost", Some("exact")),
            ("BLOG.localhost", Some("exact")),
            ("docs.localhost", Some("wild")),
            ("a.example.com", Some("wild-example")),
            ("a.b.example.com", None),
            ("example.com", None),
            ("other.org", None),
            ("", None),
        ];
        for (sni, want) in cases {
            assert_eq!(choose_certificate(sni, &certs).copied(), want, "{sni}");
        }
    }

    #[test]
    fn labels() {
        for (l, ok) in [
            ("blog", true),
            ("my-blog2", true),
            ("-a", false),
            ("A", false),
            ("", false),
            ("a_b", false),
        ] {
            assert_eq!(is_valid_label(l), ok, "{l}");
        }
    }
}
