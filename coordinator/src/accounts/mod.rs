//! Accounts: who is asking (principals), what they may do (authz), how
//! passwords are kept, how guessing is slowed down, and the audit trail.
//! The HTTP layers (API and dashboard) share all of it.

pub mod audit;
pub mod authz;
pub mod password;
pub mod ratelimit;
pub mod session;
pub mod validate;

pub use authz::{Principal, Scope};
