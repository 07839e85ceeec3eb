//! What the HTTP side reads on every request: host → site, SNI → certificate.
//! Replaced wholesale (an `Arc` swap) when the sync loop activates bundles,
//! so a request sees either the old routing or the new one, never a mix.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use protocol::functions::RouteTable;
use protocol::{BundleId, Manifest};
use rustls::sign::CertifiedKey;

/// The response header naming the deployment that answered.
pub const X_OUTPOST_DEPLOYMENT: http::HeaderName =
    http::HeaderName::from_static("x-outpost-deployment");

pub struct Site {
    /// Shared with every request's log context, which copies them only
    /// when the function actually prints.
    pub project: Arc<str>,
    pub deployment: Arc<str>,
    /// `deployment` as the value of [`X_OUTPOST_DEPLOYMENT`], made once
    /// rather than per response (`None` if it is not a valid one).
    pub deployment_header: Option<http::HeaderValue>,
    pub bundle: BundleId,
    pub manifest: Arc<Manifest>,
    /// The manifest's function routes, parsed once.
    pub functions: Arc<RouteTable>,
    /// The variables this host's functions see (its project's, for the
    /// host's environment kind) and the hosts they may call.
    pub env: Arc<BTreeMap<String, String>>,
    pub outbound: Arc<Vec<String>>,
}

#[derive(Default)]
pub struct Routing {
    pub config_version: u64,
    pub hosts: HashMap<String, Arc<Site>>,
    /// Certificate name (`blog.localhost`, `*.localhost`) → key.
    pub certs: BTreeMap<String, Arc<CertifiedKey>>,
}

#[derive(Default)]
pub struct ServingState {
    routing: RwLock<Arc<Routing>>,
}

impl ServingState {
    pub fn current(&self) -> Arc<Routing> {
        self.routing.read().unwrap().clone()
    }

    pub fn replace(&self, routing: Routing) {
        *self.routing.write().unwrap() = Arc::new(routing);
    }
}
