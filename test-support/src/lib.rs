//! The workspace's one test harness (corrosion's `corro-tests` is the
//! model): what integration tests and benchmarks share, so no crate keeps
//! its own copy.
//!
//! - [`process`]: a child process whose stdout lines can be waited for,
//!   killed on drop.
//! - [`cluster`]: real `coordinator serve` and `edge-node` processes on
//!   `127.0.0.1:0` in tempdirs, driven through the CLI and the REST API.
//! - [`git`]: real repositories made with the `git` program.
//! - [`wait`]: polling with a deadline.
//! - [`wasm`]: the test components under `fixtures/wasm/`, built once.
//! - [`tls`]: TLS clients that trust a test CA.
//! - [`dns`]: a real DNS server (Pebble's challtestsrv) whose answers a test sets.
//! - [`acme`]: a real ACME CA (Pebble) validating against the test's edges.
//! - [`bind`]: a real authoritative DNS server (BIND) taking TSIG-signed updates.
//! - [`garage`]: a real S3-compatible object store (Garage), one node.
//! - [`h3`](mod@h3): a real HTTP/3 client (quinn, rustls with ring).
//! - [`prometheus`]: a real Prometheus scraping the test's processes, and
//!   `promtool check metrics`.
//!
//! The library panics on what a test cannot go on without, but the
//! process and cluster types also have `Result` forms (`launch`, `try_*`)
//! for the benchmarks, which report errors instead.

pub mod acme;
pub mod bind;
pub mod cluster;
pub mod dns;
pub mod garage;
pub mod geoip;
pub mod git;
pub mod h3;
pub mod process;
pub mod prometheus;
pub mod receiver;
pub mod smtp;
pub mod tls;
pub mod wait;
pub mod wasm;

pub use tls::{pem_certs, tls_client_config};
pub use wasm::{target_dir, wasm_fixture, wasm_fixtures, workspace_root, FIXTURES};

/// What went wrong starting or driving a process of the harness.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error(message.into())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
