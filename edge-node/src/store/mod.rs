//! The edge node's local state: content-addressed blob files and a sled
//! index of the last config and the bundles each host is serving; and the
//! plan of what of them to keep (`gc`).

pub mod blobs;
pub mod gc;
pub mod index;

pub use blobs::{read_at, BlobBody, BlobError, BlobStore, Prefer};
pub use index::{Index, IndexError};
