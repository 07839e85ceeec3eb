//! The edge node's integration tests, as one test binary: static serving,
//! routing rules, functions and the mesh's peer protocol over real
//! sockets, with a blob store in a temp dir. Shared fixtures are in
//! `support`; the workspace harness is `test_support`.
//!
//! Run one file's tests with `cargo test -p outpost-edge-node --test it
//! functions::`.

mod support;

mod functions;
mod http_serving;
mod mesh_peer;
mod routing;
