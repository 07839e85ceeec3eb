//! Client subcommands: talk to a coordinator over its REST API.

pub mod alerts;
pub mod analytics;
pub mod builds;
pub mod client;
pub mod commands;
pub mod credentials;
pub mod deploy;
pub mod domains;
pub mod drains;
pub mod errors;
pub mod tokens;
