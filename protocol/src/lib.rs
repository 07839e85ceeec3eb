//! Everything the coordinator and edge nodes must agree on.
//!
//! This crate does no I/O (the optional `io` feature only adds async frame
//! helpers generic over `AsyncRead`/`AsyncWrite`). Every decoder is bounded
//! and returns a typed error instead of panicking.

pub mod acme;
pub mod addr;
pub mod config;
pub mod errors;
pub mod functions;
pub mod hash;
pub mod host;
pub mod manifest;
pub mod mesh;
pub mod names;
pub mod node_cert;
pub mod path;
pub mod resolve;
pub mod routing;
pub mod sealed;
pub mod signing;
pub mod state_hash;
pub mod status;
pub mod token;
pub mod wire;

#[cfg(feature = "io")]
pub mod frame_io;

pub use config::{
    CertEntry, Change, ChangeBatch, Entry, EnvKind, Epoch, HostKind, HostRedirect, HostTarget, Key,
    ProjectRuntime, Revocation, RuntimeEnv,
};
pub use functions::FunctionEntry;
pub use hash::{BlobHash, BundleId};
pub use manifest::{Encoding, FileEntry, Manifest, ManifestLimits, Variant};
pub use routing::RoutingConfig;
pub use signing::{BatchSignature, SignedBatch};
pub use state_hash::StateHash;
