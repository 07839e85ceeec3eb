//! The builder's integration tests, as one test binary: real git
//! repositories and real sandboxed builds (bubblewrap, npm).
//!
//! Run one file's tests with `cargo test -p outpost-builder --test it git::`.

#[macro_use]
mod support;

mod build;
mod git;
