//! What a node certificate says, read the same way on both sides: the node
//! id it was issued for (its `<id>.node.outpost.internal` name) and when it
//! expires. The chain itself is verified by rustls before anyone asks;
//! this only reads a certificate already known to be the cluster CA's.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::host::is_valid_label;
use crate::wire::NODE_NAME_SUFFIX;

/// Node certificates are issued for this long and renewed by the node when
/// a third of it is left (see [`renew_due`]); a node that stays offline for
/// longer must join again. Short, so that a copied key is soon worthless
/// even where a revocation has not reached.
pub const NODE_CERT_SECS: i64 = 30 * 24 * 3600;

/// The node id a certificate was issued for, or `None` when it names no
/// node (or names more than one: the CA never issues such a certificate).
pub fn node_id(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut found = None;
    for name in &san.value.general_names {
        let GeneralName::DNSName(dns) = name else {
            continue;
        };
        let Some(id) = dns
            .strip_suffix(NODE_NAME_SUFFIX)
            .and_then(|s| s.strip_suffix('.'))
        else {
            continue;
        };
        if !is_valid_label(id) || found.is_some() {
            return None;
        }
        found = Some(id.to_string());
    }
    found
}

/// (not before, not after) of a certificate, in Unix seconds.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let v = cert.validity();
    Some((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// Whether a certificate valid over `(from, until)` should be renewed at
/// `now` (Unix seconds): when less than a third of its lifetime is left.
pub fn renew_due((from, until): (i64, i64), now: i64) -> bool {
    // Saturating: validity comes from a certificate, `now` from a clock.
    let life = until.saturating_sub(from);
    life <= 0 || until.saturating_sub(now) < life / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_in_the_last_third() {
        let day = 24 * 3600;
        let v = (0, 30 * day);
        for (now, due) in [
            (0, false),
            (19 * day, false),
            (21 * day, true),
            (30 * day, true),
            (40 * day, true),
        ] {
            assert_eq!(renew_due(v, now), due, "day {}", now / day);
        }
        // A certificate with no lifetime is always due.
        assert!(renew_due((5, 5), 0));
    }

    #[test]
    fn garbage_is_no_certificate() {
        for bad in [&b""[..], b"\x30\x03\x02\x01\x01", &[0xff; 64]] {
            assert_eq!(node_id(bad), None);
            assert_eq!(validity(bad), None);
        }
    }
}
