//! Server-rendered HTML for the Outpost dashboard.
//!
//! Every page is a pure function from a view model (see [`model`]) to a
//! complete HTML document, so handlers stay thin and pages are testable
//! without a server. Markup is built with maud, which escapes every
//! spliced value; nothing user-controlled is ever inserted unescaped.

pub mod model;

mod assets;
mod chart;
mod components;
mod format;
mod layout;
mod pages;

pub use assets::asset;
pub use pages::audit::audit;
pub use pages::auth::{account, invite, login, signup};
pub use pages::deployment::deployment;
pub use pages::error::error;
pub use pages::nodes::nodes;
pub use pages::project::{alerts, analytics, errors, issue, project};
pub use pages::projects::overview;
pub use pages::team::team;
pub use pages::tokens::tokens;

#[cfg(test)]
mod tests;
