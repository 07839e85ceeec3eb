//! The edge node: enrols with a coordinator, keeps a QUIC link to it, syncs
//! bundles into a local store and serves them over HTTP(S).

pub mod http;
pub mod state;
pub mod store;
