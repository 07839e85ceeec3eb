//! What the edge takes from every request before routing: the target's
//! path and the `Host` header (or `:authority`).

use protocol::host::{choose_certificate, normalize_host, wildcard_of};
use protocol::path::{parse_decoded_path, parse_request_path, MAX_PATH_BYTES};
use protocol::routing::encode_path;

use crate::bytes::text;

/// An accepted path never leaves the bundle: no segment climbs, hides a
/// separator or a control character; its rooted form fits and parses
/// back to the same path, and so does its percent-encoding.
pub fn path(data: &[u8]) {
    let Some(target) = text(data) else { return };
    if let Ok(p) = parse_request_path(target) {
        for s in &p.segments {
            assert!(!s.is_empty() && s != "." && s != "..", "{s:?}");
            assert!(!s.contains(['/', '\\']), "{s:?}");
            assert!(!s.chars().any(char::is_control), "{s:?}");
            assert!(s.len() <= 255, "a segment of {} bytes", s.len());
        }
        let rooted = p.rooted();
        assert!(rooted.len() <= MAX_PATH_BYTES, "{} bytes", rooted.len());
        assert_eq!(
            parse_decoded_path(&rooted).as_ref(),
            Ok(&p),
            "rooted: {rooted:?}"
        );
        assert_eq!(parse_request_path(&encode_path(&rooted)).as_ref(), Ok(&p));
    }
    // A rewrite target: never decoded again, held to the same rules.
    if let Ok(p) = parse_decoded_path(target) {
        assert!(p.segments.iter().all(|s| s != ".." && s != "."));
        assert!(p.rooted().len() <= MAX_PATH_BYTES);
    }
}

/// A host is refused or in its one form (lowercase DNS name, no port, no
/// trailing dot), which normalises to itself; the certificate chosen for
/// it is its own or its wildcard's.
pub fn host(data: &[u8]) {
    let Some(raw) = text(data) else { return };
    let Ok(name) = normalize_host(raw) else {
        return;
    };
    assert!(name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
    assert!(!name.is_empty() && name.len() <= 253);
    assert!(name.split('.').all(|l| !l.is_empty() && l.len() <= 63));
    assert_eq!(normalize_host(&name).as_deref(), Ok(name.as_ref()));
    let wildcard = wildcard_of(&name);
    let certs: std::collections::BTreeMap<String, &str> = [
        ("other.example".to_string(), "other"),
        (name.to_string(), "own"),
    ]
    .into_iter()
    .chain(wildcard.clone().map(|w| (w, "wildcard")))
    .collect();
    assert_eq!(choose_certificate(&name, &certs), Some(&"own"));
    if let Some(w) = wildcard {
        let only_wildcard: std::collections::BTreeMap<String, &str> =
            [(w, "wildcard")].into_iter().collect();
        assert_eq!(choose_certificate(&name, &only_wildcard), Some(&"wildcard"));
    }
}
