//! What both binaries need from the operating system, in a crate of its
//! own so the coordinator does not depend on the edge node for it:
//! the global allocator ([`allocator`]) and files only their owner may
//! read ([`fs::write_private`]).

pub mod allocator;
pub mod fs;
