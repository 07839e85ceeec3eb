//! What the HTTP side reads on every request: host → site, SNI → certificate.
//!
//! Production and branch hosts are in the routing snapshot, replaced
//! wholesale (an `Arc` swap) when the sync loop activates bundles, so a
//! request sees either the old routing or the new one, never a mix. A
//! deployment's own host is not: it is resolved on its first request
//! (the bundle fetched if need be, [`SiteResolver`]) and kept in a bounded
//! cache of recently used sites, so memory follows what is served, not
//! how many deployments exist.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use protocol::functions::RouteTable;
use protocol::{BundleId, Manifest};
use rustls::sign::CertifiedKey;

/// The response header naming the deployment that answered.
pub const X_OUTPOST_DEPLOYMENT: http::HeaderName =
    http::HeaderName::from_static("x-outpost-deployment");

/// Sites of lazily served hosts kept in memory at most.
pub const LAZY_SITES: usize = 4096;

pub struct Site {
    /// Shared with every request's log context, which copies them only
    /// when the function actually prints.
    pub project: Arc<str>,
    pub deployment: Arc<str>,
    /// `deployment` as the value of [`X_OUTPOST_DEPLOYMENT`], made once
    /// rather than per response (`None` if it is not a valid one).
    pub deployment_header: Option<http::HeaderValue>,
    pub bundle: BundleId,
    /// Production or preview: which environment analytics count it under.
    pub environment: protocol::EnvKind,
    pub manifest: Arc<Manifest>,
    /// The manifest's function routes, parsed once.
    pub functions: Arc<RouteTable>,
    /// The variables this host's functions see (its project's, for the
    /// host's environment kind; one map shared by the project's hosts;
    /// `None` while they are sealed to a key this node does not hold yet)
    /// and the hosts they may call.
    pub env: Option<Arc<BTreeMap<String, String>>>,
    pub outbound: Arc<Vec<String>>,
}

#[derive(Default)]
pub struct Routing {
    pub config_version: u64,
    /// Eagerly served hosts (production, branch).
    pub hosts: HashMap<String, Arc<Site>>,
    /// Certificate name (`blog.localhost`, `*.localhost`) → key.
    pub certs: BTreeMap<String, Arc<CertifiedKey>>,
    /// ACME: the account thumbprint HTTP-01 answers carry, the hosts with a
    /// TLS-ALPN-01 challenge under way, and HTTPS policies.
    pub acme: Option<Arc<str>>,
    pub challenges: Arc<BTreeMap<String, protocol::acme::HostChallenge>>,
    pub https: Arc<BTreeMap<String, protocol::acme::HttpsPolicy>>,
    /// Projects with a request log drain, and their sample rate: requests
    /// read it once, and only look a project up when it is not empty.
    pub request_logs: Arc<BTreeMap<String, protocol::config::RequestLogPolicy>>,
}

/// What resolving a host that is not in the routing snapshot gave.
pub enum Resolved {
    Site(Arc<Site>),
    /// The config has no such host.
    Unknown,
    /// The host exists but its bundle could not be fetched in time (the
    /// coordinator and every peer unreachable, say).
    Unavailable,
    /// The host only redirects, to another host.
    Redirect(protocol::HostRedirect),
}

/// Resolves a host the routing snapshot does not hold (a deployment's own
/// host): the node's on-demand loader.
pub trait SiteResolver: Send + Sync {
    fn resolve<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = Resolved> + Send + 'a>>;
}

pub struct ServingState {
    routing: RwLock<Arc<Routing>>,
    /// Sites of hosts served on demand, with when each was last asked
    /// for (Unix ms: the recency the disk cache evicts by).
    lazy: Mutex<lru::LruCache<String, (Arc<Site>, i64)>>,
    resolver: OnceLock<Arc<dyn SiteResolver>>,
}

impl Default for ServingState {
    fn default() -> Self {
        ServingState {
            routing: RwLock::default(),
            lazy: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(LAZY_SITES).expect("non-zero"),
            )),
            resolver: OnceLock::new(),
        }
    }
}

impl ServingState {
    pub fn current(&self) -> Arc<Routing> {
        self.routing.read().unwrap().clone()
    }

    pub fn replace(&self, routing: Routing) {
        *self.routing.write().unwrap() = Arc::new(routing);
    }

    /// A lazily served site resolved earlier, if still cached.
    pub fn cached(&self, host: &str) -> Option<Arc<Site>> {
        let mut lazy = self.lazy.lock().unwrap();
        let (site, used) = lazy.get_mut(host)?;
        *used = now_ms();
        Some(site.clone())
    }

    pub fn cache(&self, host: &str, site: Arc<Site>) {
        self.lazy
            .lock()
            .unwrap()
            .put(host.to_string(), (site, now_ms()));
    }

    /// Forgets cached sites: of `hosts`, and of every host of `projects`.
    pub fn forget(&self, hosts: &[String], projects: &[String]) {
        let mut lazy = self.lazy.lock().unwrap();
        for h in hosts {
            lazy.pop(h);
        }
        if !projects.is_empty() {
            let stale: Vec<String> = lazy
                .iter()
                .filter(|(_, (s, _))| projects.iter().any(|p| **p == *s.project))
                .map(|(h, _)| h.clone())
                .collect();
            for h in stale {
                lazy.pop(&h);
            }
        }
    }

    /// Forgets cached sites whose bundle the cache let go.
    pub fn forget_bundles(&self, bundles: &std::collections::HashSet<BundleId>) {
        let mut lazy = self.lazy.lock().unwrap();
        let stale: Vec<String> = lazy
            .iter()
            .filter(|(_, (s, _))| bundles.contains(&s.bundle))
            .map(|(h, _)| h.clone())
            .collect();
        for h in stale {
            lazy.pop(&h);
        }
    }

    /// The bundles of the cached sites, with when each was last asked for.
    pub fn cached_bundles(&self) -> Vec<(BundleId, i64)> {
        self.lazy
            .lock()
            .unwrap()
            .iter()
            .map(|(_, (s, used))| (s.bundle, *used))
            .collect()
    }

    pub fn forget_all(&self) {
        self.lazy.lock().unwrap().clear();
    }

    pub fn cached_count(&self) -> usize {
        self.lazy.lock().unwrap().len()
    }

    pub fn set_resolver(&self, r: Arc<dyn SiteResolver>) {
        let _ = self.resolver.set(r);
    }

    pub fn resolver(&self) -> Option<&Arc<dyn SiteResolver>> {
        self.resolver.get()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
