//! The Outpost coordinator: control plane (REST API, store, blob store,
//! cluster CA, QUIC endpoint for edges) and the client CLI.

pub mod accounts;
pub mod acme;
pub mod alerts;
pub mod api;
pub mod app;
pub mod blobs;
pub mod bootstrap;
pub mod builds;
pub mod ca;
pub mod cli;
pub mod components;
pub mod config;
pub mod domains;
pub mod drains;
pub mod edge_config;
pub mod errors;
pub mod http;
pub mod ids;
pub mod lifecycle;
pub mod listener;
pub mod mesh_view;
pub mod metrics;
pub mod quic;
pub mod quic_cert;
pub mod ratelimit;
pub mod registry;
pub mod role;
pub mod secrets;
pub mod server;
pub mod store;
pub mod traffic;
pub mod web;
pub mod webhooks;
