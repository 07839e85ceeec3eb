//! What nodes send before and besides the config: join tokens, node
//! certificates, and the mesh's config announcements.

use protocol::host::is_valid_label;
use protocol::mesh::ConfigAnnounce;
use protocol::node_cert::{node_id, renew_due, validity};
use protocol::token::JoinToken;

use crate::bytes::text;

/// An announcement names one node (a label's length) and round-trips.
pub fn config_announce(data: &[u8]) {
    if let Ok(a) = ConfigAnnounce::decode(data) {
        assert!(!a.node_id.is_empty() && a.node_id.len() <= 63, "{a:?}");
        assert_eq!(ConfigAnnounce::decode(&a.encode()).as_ref(), Ok(&a));
    }
}

/// A token parses to exactly the text it prints (whitespace aside).
pub fn join_token(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(t) = JoinToken::parse(s) {
        assert_eq!(t.to_string(), s.trim(), "a token printed otherwise");
        assert_eq!(JoinToken::parse(&t.to_string()).as_ref(), Ok(&t));
    }
}

/// Any DER: no panic; a node id is a DNS label; renewal is decidable for
/// any validity.
pub fn node_cert(data: &[u8]) {
    if let Some(id) = node_id(data) {
        assert!(is_valid_label(&id), "{id:?}");
    }
    if let Some(v) = validity(data) {
        for now in [i64::MIN, v.0, v.1, i64::MAX] {
            let _ = renew_due(v, now);
        }
    }
}
