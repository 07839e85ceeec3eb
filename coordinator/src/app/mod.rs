//! The application layer: one function per use case (create a project,
//! stage and finalize a deployment, promote, roll back, set a variable,
//! connect git, the account actions…), each taking the [`App`] and a
//! [`Principal`](crate::accounts::Principal) and returning domain values or
//! an [`AppError`].
//!
//! Both HTTP layers call it: `api/` turns its results into JSON, `web/`
//! into pages and redirects. Neither calls the other, and neither touches
//! the store for anything that changes state: the rules (who may see which
//! project, which secrets stay hidden, how a manifest becomes a live
//! deployment) live here once.
//!
//! Architecture invariant: nothing in `app/` knows about HTTP (no axum, no
//! status codes, no cookies); the error kind says what went wrong and the
//! callers choose how to say it.

pub mod access;
pub mod accounts;
pub mod alerts;
pub mod analytics;
pub mod builds;
pub mod cluster;
pub mod deployments;
pub mod domains;
pub mod drains;
pub mod env;
pub mod error;
pub mod errors;
pub mod git;
pub mod logs;
pub mod page;
pub mod projects;
pub mod publish;
pub mod quotas;

use std::sync::Arc;

pub use error::{AppError, AppResult, ErrorKind};

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::edge_config::ConfigHub;
use crate::quic::QuicContext;
use crate::store::Store;

/// Everything the use cases work with, shared by every request.
#[derive(Clone)]
pub struct App {
    pub secrets: Arc<crate::secrets::SecretBox>,
    pub store: Store,
    pub blobs: BlobStore,
    pub hub: Arc<ConfigHub>,
    pub config: Arc<Config>,
    pub quic: Arc<QuicContext>,
    pub builds: Arc<crate::builds::BuildService>,
    pub login_limits: Arc<crate::accounts::ratelimit::LoginLimits>,
    /// Requests per credential (or address) and route class.
    pub api_limits: Arc<crate::ratelimit::ApiLimits>,
    /// What each team holds, counted now and then (see `quotas::UsageCache`).
    pub usage: Arc<quotas::UsageCache>,
    /// DNS checks of custom domains.
    pub domains: Arc<crate::domains::DomainChecker>,
    /// Their certificates.
    pub acme: Arc<crate::acme::AcmeService>,
    /// Alert evaluation and deliveries.
    pub alerts: Arc<crate::alerts::AlertService>,
    /// What `GET /metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl App {
    /// The public URL of a deployment's own host.
    pub fn deployment_url(&self, project: &str, deployment: &str) -> String {
        self.config
            .site_url(&self.config.deployment_host(project, deployment))
    }

    /// The public URL of a project's production host.
    pub fn production_url(&self, project: &str) -> String {
        self.config.site_url(&self.config.production_host(project))
    }

    /// The public URL of a branch's stable preview host.
    pub fn branch_url(&self, project: &str, branch: &str) -> String {
        self.config
            .site_url(&self.config.branch_host(project, branch))
    }
}

impl App {
    /// Records `action` on project `p` in its team's audit log.
    pub async fn audit(
        &self,
        who: &crate::accounts::Principal,
        p: &crate::store::Project,
        action: &str,
        detail: serde_json::Value,
    ) {
        crate::accounts::audit::project_event(&self.store, who, p, action, detail).await
    }

    /// The publishing path, with this app's store, blobs, hub and limits.
    pub fn publisher(&self) -> publish::Publisher<'_> {
        publish::Publisher {
            store: &self.store,
            blobs: &self.blobs,
            hub: &self.hub,
            limits: &self.config.limits,
        }
    }
}
