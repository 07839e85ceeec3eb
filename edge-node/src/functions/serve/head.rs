//! The function's response head on its way out: hop-by-hop headers
//! dropped, ours stamped, its status turned into an outcome.

use http::header::{self, HeaderName};

use super::super::metrics::Outcome;
use super::{RequestId, X_REQUEST_ID};
use crate::state::{Site, X_OUTPOST_DEPLOYMENT};

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Our headers on a response head: the request id (replacing any the
/// function set) and the deployment. Heads are plain `http` parts turned
/// into pingora's `ResponseHeader` without a case-preserving name map, so
/// h1 names go out in lowercase (as hyper writes them) and h2 has no case
/// at all; editing the map directly also spares pingora's insert, which
/// parses and copies every name again.
pub(super) fn stamp(
    h: &mut http::HeaderMap,
    request_id: RequestId,
    site: &Site,
    stamps: &crate::http::Stamps,
) {
    h.insert(X_REQUEST_ID, request_id.header_value());
    if let Some(v) = &site.deployment_header {
        h.insert(X_OUTPOST_DEPLOYMENT, v.clone());
    }
    // The platform's policy for the host wins over the function's own.
    stamps.apply(h);
}

/// Drops the headers that describe one connection, not the message.
pub(super) fn remove_hop_by_hop(h: &mut http::HeaderMap) {
    // Most messages have none: no list is made for them.
    if !h.keys().any(is_hop_by_hop) {
        return;
    }
    let hop: Vec<HeaderName> = h.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in &hop {
        h.remove(name);
    }
}

pub(super) fn is_hop_by_hop(name: &HeaderName) -> bool {
    // `HeaderName` equality: a tag compare for the standard names, bytes
    // only against the two custom ones.
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TE
        || name == header::TRAILER
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

pub(super) fn outcome_of(status: u16) -> Outcome {
    if status >= 500 {
        Outcome::Error
    } else {
        Outcome::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers() {
        for (name, hop) in [
            ("connection", true),
            ("keep-alive", true),
            ("proxy-connection", true),
            ("transfer-encoding", true),
            ("upgrade", true),
            ("te", true),
            ("trailer", true),
            ("content-length", false),
            ("content-type", false),
            ("x-keep-alive", false),
            ("trailers", false),
            ("proxy-authorization", false),
        ] {
            let name = HeaderName::from_static(name);
            assert_eq!(is_hop_by_hop(&name), hop, "{name}");
        }
    }
}
