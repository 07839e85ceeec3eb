//! The edge node: enrols with a coordinator, keeps a QUIC link to it, syncs
//! bundles into a local store and serves them over HTTP(S).

pub mod config_state;
pub mod coordinators;
pub mod disk_cache;
pub mod dns;
pub mod enroll;
pub mod errorship;
pub mod fair;
pub mod fetch;
pub mod functions;
pub mod http;
pub mod identity;
pub mod keys;
pub mod link;
pub mod logship;
pub mod mesh;
pub mod metrics;
pub mod node;
pub mod renew;
pub mod requestlog;
pub mod resources;
pub mod state;
pub mod status;
pub mod store;
pub mod sync;
pub mod tls;
pub mod traffic;
