//! Manifests: canonical bytes (what edges fetch and hash) and JSON (what
//! the deploy API takes).

use protocol::manifest::{Manifest, ManifestLimits};
use protocol::path::{parse_request_path, validate_bundle_path};
use protocol::resolve::{resolve, Resolution};
use protocol::wire::MAX_FRAME_BYTES;

/// Canonical bytes decode to a manifest that encodes to bytes decoding to
/// itself, with the same bundle id from then on; a manifest that
/// validates names only files inside the bundle.
pub fn canonical_bytes(data: &[u8]) {
    let Ok(m) = Manifest::from_canonical_bytes(data, MAX_FRAME_BYTES) else {
        return;
    };
    let bytes = m.canonical_bytes();
    let again = Manifest::from_canonical_bytes(&bytes, MAX_FRAME_BYTES)
        .expect("a manifest's own canonical bytes decode");
    if m.format >= 2 || m.routing.is_empty() {
        assert_eq!(again, m, "decode(encode(m)) != m");
    }
    assert_eq!(
        again.canonical_bytes(),
        bytes,
        "encoding is not a fixed point"
    );
    assert_eq!(again.bundle_id(), m.bundle_id());
    validated(&m);
}

/// JSON from the deploy API: what parses re-serialises to JSON that
/// parses, and what validates round-trips exactly and is as safe as
/// canonical bytes are. (A format 1 manifest carrying routing parses, and
/// loses its routing on the way out; validation refuses it.)
pub fn json(data: &[u8]) {
    let Ok(m) = serde_json::from_slice::<Manifest>(data) else {
        return;
    };
    let text = serde_json::to_string(&m).expect("a manifest serialises");
    let again: Manifest = serde_json::from_str(&text).expect("a manifest's own JSON parses");
    if m.format >= 2 || m.routing.is_empty() {
        assert_eq!(again, m, "JSON round trip changed the manifest");
    } else {
        assert!(m.validate(&ManifestLimits::default()).is_err());
    }
    validated(&m);
}

fn validated(m: &Manifest) {
    if m.validate(&ManifestLimits::default()).is_err() {
        return;
    }
    for path in m.files.keys() {
        assert_eq!(validate_bundle_path(path), Ok(path.as_str()));
    }
    // A request resolves to a file of the bundle or to its 404 page.
    for target in ["/", "/index", "/a/", "/404.html", "/%2e%2e/x"] {
        if let Ok(req) = parse_request_path(target) {
            match resolve(m, &req) {
                Resolution::File { path, .. } => assert!(m.files.contains_key(path)),
                Resolution::NotFound { page } => {
                    if let Some((path, _)) = page {
                        assert!(m.files.contains_key(path));
                    }
                }
            }
        }
    }
}
