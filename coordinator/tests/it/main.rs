//! The coordinator's integration tests, as one test binary (one link
//! instead of one per file): real `coordinator` and `edge-node` processes,
//! real databases, git, wasm components and Chromium. The harness is
//! `test_support` (shared with the other crates and the benchmarks) plus
//! `support/` for what only these tests need.
//!
//! Run one file's tests with `cargo test -p outpost-coordinator --test it
//! e2e::`, one test by its name.

mod support;

mod acme;
mod alerts;
mod analytics;
mod authz;
mod authz_dashboard;
mod builds;
mod builds_vite;
mod dashboard_browser;
mod dev_mode;
mod domains;
mod drains;
mod e2e;
mod errors;
mod functions_e2e;
mod hardening;
mod lifecycle;
mod mesh;
mod mesh_partition;
mod metrics;
mod multi;
mod node_trust;
mod openapi;
mod rate_limits;
mod restore;
mod scale;
mod sealed;
mod store_suite;
mod tokens_cli;
