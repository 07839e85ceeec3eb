//! The edge node's local state: content-addressed blob files and a sled
//! index of the last config and the bundles each host is serving.

pub mod blobs;
pub mod index;

pub use blobs::{BlobBody, BlobError, BlobStore};
pub use index::{Index, IndexError};
