//! What must hold for *any* input to each decoder of untrusted bytes.
//!
//! Every check here takes arbitrary bytes and panics when an invariant
//! breaks: not only "no panic in the decoder", but what its callers rely
//! on (an accepted path never leaves the bundle, a decoded message
//! re-encodes to itself, a rule never shadows a file unless forced).
//!
//! The fuzz targets in `fuzz/` are one line each: they call a check from
//! [`TARGETS`]. The inputs the fuzzers found crashing are kept under
//! `fuzz/regressions/<target>/` and replayed by this crate's tests, so CI
//! runs the regression cases without running a fuzzer.
//!
//! Architecture invariant: this crate holds checks, never decoders. The
//! code under test is the production code, called as its callers call it.

mod bytes;
pub mod config;
pub mod manifest;
pub mod mesh;
pub mod records;
pub mod requests;
pub mod routing;
pub mod seeds;
pub mod wire;

/// A fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs`) and its
/// check.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target. `tests/targets.rs` fails when a file in
/// `fuzz/fuzz_targets/` has no row here, or a row has no file.
pub const TARGETS: &[Target] = &[
    ("wire_frames", wire::frames),
    ("manifest_bytes", manifest::canonical_bytes),
    ("manifest_json", manifest::json),
    ("config_keys", config::keys),
    ("config_entries", config::entries),
    ("signed_batches", config::signed_batches),
    ("snapshot_pages", config::snapshot_pages),
    ("state_hash", config::state_hash),
    ("config_announce", mesh::config_announce),
    ("join_token", mesh::join_token),
    ("node_cert", mesh::node_cert),
    ("request_path", requests::path),
    ("host_header", requests::host),
    ("routing_sources", routing::sources),
    ("outpost_toml", routing::outpost_toml),
    ("analytics_record", records::analytics),
    ("sealed_secret", records::sealed),
    ("node_status", records::status),
];

/// The check of a target, by name.
pub fn check(target: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == target).map(|(_, f)| *f)
}

/// Runs the check of `target` on one input (what each fuzz target does).
pub fn run(target: &str, data: &[u8]) {
    let check = check(target).unwrap_or_else(|| panic!("no fuzz target is named {target:?}"));
    check(data)
}
