//! Traffic analytics, shared by the edge (which counts) and the coordinator
//! (which stores and answers): server-side, from what the edges serve, with
//! no script in the page and no sampling.
//!
//! - [`recorder`]: each request counted into the open minute, in memory,
//!   per serving thread, within a budget of distinct keys.
//! - [`record`] and [`spool`]: a closed minute as a record on the edge's
//!   disk until the coordinator acknowledges it.
//! - [`model`] and [`sketch`]: what a record holds per site; everything
//!   merges (unique visitors as a HyperLogLog, latencies as a histogram).
//! - [`classify`]: bots, browsers, referrers, and the visitor hash (a keyed
//!   hash of the day's salt, address, user agent and host; no cookie, no
//!   stored address).
//! - [`query`]: the fixed query model and the pure report over stored rows.
//!
//! Architecture invariant: nothing here does network I/O; only [`spool`]
//! touches the disk.

pub mod classify;
pub mod model;
pub mod query;
pub mod record;
pub mod recorder;
pub mod sketch;
pub mod spool;

pub use model::{Aggregate, Env, SiteKey};
pub use record::{Granularity, Record, RecordId};
