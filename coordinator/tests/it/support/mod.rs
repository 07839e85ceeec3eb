//! What the coordinator's integration tests share beyond the workspace
//! harness (`test_support`): build-and-webhook helpers and a real browser.
#![allow(dead_code)]

pub mod browser;
pub mod webhooks;

pub use test_support::cluster::{
    http_client, node_status, write_site, Api, Bins, Coordinator, Edge,
};
pub use test_support::process::Proc;
pub use test_support::wait::{eventually, poll};

/// The `coordinator` binary these tests drive.
pub fn coordinator_bin() -> std::path::PathBuf {
    Bins::of_tests().coordinator
}

/// The `edge-node` binary these tests drive.
pub fn edge_bin() -> std::path::PathBuf {
    Bins::of_tests().edge
}
