//! Bundle sync: fetch what the eagerly served hosts need, then switch
//! them; and the on-demand loader for every other host.
//!
//! A production or branch host switches to a bundle only once every blob
//! of it is on disk and verified; until then it keeps serving its previous
//! complete bundle. The active map is persisted with the switch, so a
//! restart (even a `kill -9` mid-sync) resumes serving exactly what was
//! being served. A deployment's own host is resolved when a request asks
//! for it ([`OnDemand`]): its manifest and blobs are fetched then, with a
//! bounded wait, and the bundle stays complete for the next request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::{self, StreamExt, TryStreamExt};
use protocol::functions::RouteTable;
use protocol::sealed::{Keyring, SealError};
use protocol::{
    BlobHash, BundleId, CertEntry, EnvKind, HostTarget, Key, Manifest, ProjectRuntime, RuntimeEnv,
};
use rustls::sign::CertifiedKey;
use tokio::sync::{broadcast, mpsc, watch};

use crate::config_state::{ConfigState, Desired, Touched};
use crate::fetch::Fetcher;
use crate::keys::ClusterKeys;
use crate::state::{Resolved, Routing, ServingState, Site, SiteResolver};
use crate::store::{BlobStore, Index};

/// Blobs fetched at once per node.
const FETCH_CONCURRENCY: usize = 8;
/// How long a request waits for a bundle fetched on demand.
pub const ON_DEMAND_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub config_version: u64,
    pub bundles_present: u32,
    pub bundles_pending: u32,
}

pub struct Syncer {
    pub index: Arc<Index>,
    pub blobs: Arc<BlobStore>,
    pub state: Arc<ServingState>,
    pub config: Arc<ConfigState>,
    /// The live coordinator connection, when there is one.
    pub conn: watch::Receiver<Option<quinn::Connection>>,
    /// Gets missing manifests and blobs from peers or the coordinator.
    pub fetcher: Arc<Fetcher>,
    pub status: watch::Sender<SyncStatus>,
    /// Compiles a bundle's functions before its hosts switch, so the first
    /// request after a deploy does not pay for compilation.
    pub functions: Option<Arc<crate::functions::FunctionRuntime>>,
    /// Loads bundles, one load per bundle at a time (shared with requests
    /// for hosts served on demand).
    pub loader: Arc<OnDemand>,
    /// Parsed certificates of the last routing, reused while the config's
    /// certificates and the keyring are the same.
    pub certs: Mutex<Option<ParsedCerts>>,
    /// What opens the config's sealed values (in memory only).
    pub keys: Arc<ClusterKeys>,
}

/// The config's certificates, the keyring that opened them, and the rustls
/// keys parsed from them.
pub type ParsedCerts = (
    Arc<BTreeMap<String, CertEntry>>,
    Arc<Keyring>,
    BTreeMap<String, Arc<CertifiedKey>>,
);

/// Which bundle each eager host serves next: the desired one when it is
/// complete, else whatever the host served before (if anything). Hosts the
/// config no longer lists stop being served.
pub fn next_active(
    desired: &BTreeMap<String, HostTarget>,
    previous: &BTreeMap<String, HostTarget>,
    is_complete: impl Fn(&BundleId) -> bool,
) -> BTreeMap<String, HostTarget> {
    desired
        .iter()
        .filter_map(|(host, want)| {
            if is_complete(&want.bundle) {
                Some((host.clone(), want.clone()))
            } else {
                previous.get(host).map(|old| (host.clone(), old.clone()))
            }
        })
        .collect()
}

/// A host's variables, shared by the project's hosts of one kind.
type Env = Arc<BTreeMap<String, String>>;

/// Sites built in one pass share their project's variables and outbound
/// list, and their bundle's parsed manifest.
struct SiteParts {
    bundles: HashMap<BundleId, (Arc<Manifest>, Arc<RouteTable>)>,
    env: HashMap<(String, EnvKind), Option<Env>>,
    outbound: HashMap<String, Arc<Vec<String>>>,
    keys: Arc<Keyring>,
}

/// The variables of `project`'s hosts of `kind`; `None` while they are
/// sealed to a key this node does not hold yet ([`crate::keys`] fetches
/// it, and the sites are built again when it arrives).
fn open_env(
    runtime: Option<&Arc<ProjectRuntime>>,
    keys: &Keyring,
    project: &str,
    kind: EnvKind,
) -> Option<Env> {
    let Some(rt) = runtime else {
        return Some(Arc::default());
    };
    match RuntimeEnv::open(rt, keys, project) {
        Ok(env) => Some(Arc::new(env.get(kind).clone())),
        Err(SealError::UnknownKey(_)) => None,
        Err(e) => {
            tracing::warn!(%project, error = %e, "the project's variables do not open");
            None
        }
    }
}

impl SiteParts {
    fn new(keys: Arc<Keyring>) -> SiteParts {
        SiteParts {
            bundles: HashMap::new(),
            env: HashMap::new(),
            outbound: HashMap::new(),
            keys,
        }
    }

    fn site(
        &mut self,
        t: &HostTarget,
        manifest: (Arc<Manifest>, Arc<RouteTable>),
        runtime: Option<&Arc<ProjectRuntime>>,
    ) -> Arc<Site> {
        let keys = &self.keys;
        let env = self
            .env
            .entry((t.project.clone(), t.env))
            .or_insert_with(|| open_env(runtime, keys, &t.project, t.env))
            .clone();
        let outbound = self
            .outbound
            .entry(t.project.clone())
            .or_insert_with(|| Arc::new(runtime.map(|r| r.outbound.clone()).unwrap_or_default()))
            .clone();
        Arc::new(Site {
            project: t.project.as_str().into(),
            deployment: t.deployment.as_str().into(),
            deployment_header: http::HeaderValue::from_str(&t.deployment).ok(),
            bundle: t.bundle,
            environment: t.env,
            manifest: manifest.0,
            functions: manifest.1,
            env,
            outbound,
        })
    }
}

fn parsed(m: Manifest) -> (Arc<Manifest>, Arc<RouteTable>) {
    let functions = Arc::new(RouteTable::new(&m.functions));
    (Arc::new(m), functions)
}

impl Syncer {
    /// Serves the persisted active map right away (before any network).
    pub fn restore(&self) -> anyhow::Result<()> {
        let desired = self.config.current();
        let active = self.index.active()?;
        self.publish(&desired, &active)
    }

    /// Runs until `shutdown`: every change of `desired` (or a nudge after a
    /// corrupt blob) starts loads of the bundles it wants, a few at once and
    /// fairly between projects ([`crate::fair`]), and switches each host
    /// as soon as its bundle is complete; a change that arrives meanwhile is
    /// acted on at once, and a load no longer wanted is stopped. Failed
    /// loads retry after a second (or when the link comes back). Changes to
    /// lazily served hosts drop them from the site cache.
    pub async fn run(
        self: Arc<Self>,
        mut desired: watch::Receiver<Arc<Desired>>,
        mut touched: broadcast::Receiver<Touched>,
        mut corrupt: mpsc::Receiver<BlobHash>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut loads: tokio::task::JoinSet<(BundleId, anyhow::Result<()>)> =
            tokio::task::JoinSet::new();
        let mut loading: BTreeMap<BundleId, (String, tokio::task::AbortHandle)> = BTreeMap::new();
        let mut keys = self.keys.subscribe();
        // Bundles whose last load failed: left alone until the retry.
        let mut failed: BTreeSet<BundleId> = BTreeSet::new();
        loop {
            let d = desired.borrow_and_update().clone();
            if let Err(e) = self.activate(&d) {
                tracing::warn!(error = %format!("{e:#}"), "switching hosts failed; will retry");
            }
            let wanted = match self.wanted(&d) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "reading the index failed");
                    BTreeMap::new()
                }
            };
            // A superseded deploy's bundle stops taking bandwidth.
            loading.retain(|b, (_, handle)| {
                let keep = wanted.contains_key(b);
                if !keep {
                    handle.abort();
                }
                keep
            });
            let candidates: BTreeMap<BundleId, String> = wanted
                .into_iter()
                .filter(|(b, _)| !failed.contains(b))
                .collect();
            let in_flight: BTreeMap<BundleId, String> =
                loading.iter().map(|(b, (p, _))| (*b, p.clone())).collect();
            for bundle in crate::fair::pick(
                &candidates,
                &in_flight,
                crate::fair::MAX_LOADS,
                crate::fair::MAX_LOADS_PER_PROJECT,
            ) {
                let (index, fetcher, blobs) =
                    (self.index.clone(), self.fetcher.clone(), self.blobs.clone());
                let functions = self.functions.clone();
                let handle = loads.spawn(async move {
                    let r = load_bundle(&index, &fetcher, &blobs, functions.as_deref(), bundle)
                        .await
                        .map(|_| ());
                    (bundle, r)
                });
                loading.insert(bundle, (candidates[&bundle].clone(), handle));
            }
            let retry = !failed.is_empty();
            tokio::select! {
                Some(done) = loads.join_next(), if !loads.is_empty() => {
                    if let Ok((bundle, result)) = done {
                        loading.remove(&bundle);
                        if let Err(e) = result {
                            let error = format!("{e:#}");
                            tracing::warn!(bundle = %bundle.short(), %error, "bundle sync incomplete; will retry");
                            if let (Some(f), Some(project)) = (&self.functions, candidates.get(&bundle)) {
                                report_sync_failure(&f.errors(), project, &bundle, &error);
                            }
                            failed.insert(bundle);
                        }
                    }
                }
                _ = desired.changed() => {}
                t = touched.recv() => self.forget(t),
                // A key arrived: sites and certificates sealed to it open now.
                _ = keys.changed() => self.state.forget_all(),
                Some(hash) = corrupt.recv() => self.forget_blob(hash),
                _ = tokio::time::sleep(Duration::from_secs(1)), if retry => failed.clear(),
                _ = self.conn_changed(), if retry => failed.clear(),
                _ = shutdown.changed() => {
                    loads.abort_all();
                    return;
                }
            }
        }
    }

    /// The bundles the eager hosts want that are not complete, with their
    /// project.
    fn wanted(&self, desired: &Desired) -> anyhow::Result<BTreeMap<BundleId, String>> {
        let mut out = BTreeMap::new();
        for t in desired.eager.values() {
            if !out.contains_key(&t.bundle) && !self.index.is_complete(&t.bundle)? {
                out.insert(t.bundle, t.project.clone());
            }
        }
        Ok(out)
    }

    fn forget(&self, t: Result<Touched, broadcast::error::RecvError>) {
        match t {
            Ok(Some(keys)) => {
                let (mut hosts, mut projects) = (Vec::new(), Vec::new());
                for k in keys.iter() {
                    match k {
                        Key::Host(h) => hosts.push(h.clone()),
                        Key::Project(p) => projects.push(p.clone()),
                        Key::Cert(_)
                        | Key::Revoked(_)
                        | Key::Epoch
                        | Key::Acme
                        | Key::Challenge(_)
                        | Key::Https(_)
                        | Key::Salt(_)
                        | Key::RequestLog(_)
                        | Key::Coordinators => {}
                    }
                }
                self.state.forget(&hosts, &projects);
            }
            // A snapshot, or we fell behind the notices: anything may have changed.
            Ok(None) | Err(broadcast::error::RecvError::Lagged(_)) => self.state.forget_all(),
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    async fn conn_changed(&self) {
        let mut c = self.conn.clone();
        let _ = c.changed().await;
    }

    /// A blob went bad or missing: every bundle holding it is incomplete again.
    fn forget_blob(&self, hash: BlobHash) {
        for item in self.index.complete_bundles() {
            match item {
                Ok((id, m)) if m.blobs().contains(&hash) => {
                    tracing::warn!(bundle = %id.short(), blob = %hash.short(), "bundle lost a blob; fetching it again");
                    let _ = self.index.unmark_complete(&id);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "reading complete bundles"),
            }
        }
        self.state.forget_all();
    }

    /// Loads the code of every function the restored state serves (from
    /// the disk cache, or compiled if the engine changed), so that after a
    /// restart no function's first request waits for it. Runs beside
    /// serving: a request that comes first waits for the same load, not
    /// for a second one.
    pub async fn warm_functions(&self) {
        let Some(rt) = &self.functions else { return };
        let started = std::time::Instant::now();
        let routing = self.state.current();
        let components: BTreeSet<BlobHash> = routing
            .hosts
            .values()
            .flat_map(|site| site.manifest.functions.values().map(|f| f.component))
            .collect();
        if components.is_empty() {
            return;
        }
        // More than fit would only evict each other; the rest load on
        // their first request, as before.
        let count = components.len().min(rt.capacity());
        prepare_components(rt, &self.blobs, components.into_iter().take(count)).await;
        tracing::info!(
            components = count,
            ms = started.elapsed().as_millis() as u64,
            "functions of the restored deployments loaded"
        );
    }

    /// Switches every eager host whose desired bundle is complete,
    /// persisting the new active map before serving from it.
    fn activate(&self, desired: &Desired) -> anyhow::Result<()> {
        let previous = self.index.active()?;
        let next = next_active(&desired.eager, &previous, |b| {
            self.index.is_complete(b).unwrap_or(false)
        });
        if next != previous {
            self.index.store_active(&previous, &next)?;
            for (host, t) in &next {
                if previous.get(host) != Some(t) {
                    tracing::info!(%host, deployment = %t.deployment, bundle = %t.bundle.short(), "host switched");
                }
            }
        }
        self.publish(desired, &next)?;
        let wanted: BTreeSet<BundleId> = desired.eager.values().map(|t| t.bundle).collect();
        let present = wanted
            .iter()
            .filter(|b| self.index.is_complete(b).unwrap_or(false))
            .count() as u32;
        self.status.send_replace(SyncStatus {
            config_version: desired.version,
            bundles_present: present,
            bundles_pending: wanted.len() as u32 - present,
        });
        Ok(())
    }

    fn publish(
        &self,
        desired: &Desired,
        active: &BTreeMap<String, HostTarget>,
    ) -> anyhow::Result<()> {
        let current = self.state.current();
        let keys = self.keys.current();
        let mut parts = SiteParts::new(keys.clone());
        for s in current.hosts.values() {
            parts
                .bundles
                .insert(s.bundle, (s.manifest.clone(), s.functions.clone()));
        }
        let mut hosts = HashMap::new();
        for (host, t) in active {
            let manifest = match parts.bundles.get(&t.bundle) {
                Some(m) => m.clone(),
                None => {
                    let Some(m) = self.index.complete_manifest(&t.bundle)? else {
                        continue;
                    };
                    let m = parsed(m);
                    parts.bundles.insert(t.bundle, m.clone());
                    m
                }
            };
            let site = parts.site(t, manifest, desired.projects.get(&t.project));
            hosts.insert(host.clone(), site);
        }
        self.state.replace(Routing {
            config_version: desired.version,
            hosts,
            certs: self.certified_keys(&desired.certs, &keys),
            acme: desired.acme.clone(),
            challenges: desired.challenges.clone(),
            https: desired.https.clone(),
            request_logs: desired.request_logs.clone(),
        });
        Ok(())
    }

    /// The certificates as rustls keys, parsed again only when they changed.
    /// A certificate sealed to a key this node does not hold yet is left
    /// out until the key arrives.
    fn certified_keys(
        &self,
        certs: &Arc<BTreeMap<String, CertEntry>>,
        ring: &Arc<Keyring>,
    ) -> BTreeMap<String, Arc<CertifiedKey>> {
        let mut cache = self.certs.lock().unwrap();
        if let Some((src, by, keys)) = cache.as_ref() {
            if Arc::ptr_eq(src, certs) && Arc::ptr_eq(by, ring) {
                return keys.clone();
            }
        }
        let mut keys = BTreeMap::new();
        for (name, c) in certs.iter() {
            let key_pem = match c.open_key(ring, name) {
                Ok(k) => k,
                Err(SealError::UnknownKey(_)) => continue,
                Err(e) => {
                    tracing::warn!(%name, error = %e, "a certificate's key does not open");
                    continue;
                }
            };
            match certified_key(&c.chain_pem, &key_pem) {
                Ok(k) => {
                    keys.insert(name.clone(), k);
                }
                Err(e) => tracing::warn!(%name, error = %e, "unusable certificate in config"),
            }
        }
        *cache = Some((certs.clone(), ring.clone(), keys.clone()));
        keys
    }
}

/// Makes `bundle` complete on this node: its manifest (from the index if
/// it was complete before, else fetched), every blob, its functions
/// compiled. Returns the manifest.
async fn load_bundle(
    index: &Index,
    fetcher: &Fetcher,
    blobs: &Arc<BlobStore>,
    functions: Option<&crate::functions::FunctionRuntime>,
    bundle: BundleId,
) -> anyhow::Result<Manifest> {
    if let Some(m) = index.complete_manifest(&bundle)? {
        return Ok(m);
    }
    let manifest = fetcher.manifest(bundle).await?;
    let missing: Vec<(BlobHash, u64)> = manifest
        .blob_sizes()
        .into_iter()
        .filter(|(h, _)| !blobs.contains(h))
        .collect();
    stream::iter(missing)
        .map(|(hash, size)| fetcher.fetch(hash, size))
        .buffer_unordered(FETCH_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    if let Some(rt) = functions {
        let components: BTreeSet<BlobHash> =
            manifest.functions.values().map(|f| f.component).collect();
        prepare_components(rt, blobs, components).await;
    }
    index.mark_complete(&bundle, &manifest)?;
    tracing::info!(bundle = %bundle.short(), files = manifest.files.len(), "bundle complete");
    Ok(manifest)
}

/// A bundle that did not load, for error tracking (folded with its
/// retries: one report a second while it keeps failing).
fn report_sync_failure(
    errors: &crate::functions::ErrorReporter,
    project: &str,
    bundle: &BundleId,
    error: &str,
) {
    use crate::functions::errors::{FailureKey, Sample};
    let id = bundle.to_hex();
    let key = FailureKey::new(
        project,
        &id,
        &format!("bundle {}", bundle.short()),
        protocol::errors::FailureKind::SyncFailed,
        error.lines().next().unwrap_or(""),
        Vec::new(),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    errors.record(key, now, || Sample::new(503, "", "", "", Vec::new()));
}

async fn prepare_components(
    rt: &crate::functions::FunctionRuntime,
    blobs: &Arc<BlobStore>,
    components: impl IntoIterator<Item = BlobHash>,
) {
    for c in components {
        if let Err(e) = rt.prepare(blobs, c).await {
            // The request path reports it again; the switch goes on.
            tracing::warn!(component = %c.short(), error = %format!("{e:#}"), "function failed to compile");
        }
    }
}

fn certified_key(chain_pem: &str, key_pem: &str) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = crate::tls::parse_certs(chain_pem)?;
    let key = crate::tls::parse_key(key_pem)?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Serves hosts the routing snapshot does not hold: looks the host up in
/// the stored config and, when its bundle is not here yet, fetches it
/// (one fetch per bundle however many requests wait), for at most
/// [`ON_DEMAND_WAIT`].
pub struct OnDemand {
    pub config: Arc<ConfigState>,
    pub index: Arc<Index>,
    pub blobs: Arc<BlobStore>,
    pub fetcher: Arc<Fetcher>,
    pub state: Arc<ServingState>,
    pub functions: Option<Arc<crate::functions::FunctionRuntime>>,
    pub keys: Arc<ClusterKeys>,
    inflight: Mutex<HashMap<BundleId, Arc<tokio::sync::Mutex<()>>>>,
}

impl OnDemand {
    pub fn new(
        config: Arc<ConfigState>,
        index: Arc<Index>,
        blobs: Arc<BlobStore>,
        fetcher: Arc<Fetcher>,
        state: Arc<ServingState>,
        functions: Option<Arc<crate::functions::FunctionRuntime>>,
        keys: Arc<ClusterKeys>,
    ) -> Self {
        OnDemand {
            config,
            index,
            blobs,
            fetcher,
            state,
            functions,
            keys,
            inflight: Mutex::default(),
        }
    }

    async fn load(&self, host: &str) -> anyhow::Result<Option<Arc<Site>>> {
        let Some(t) = self.config.host(host)? else {
            return Ok(None);
        };
        let gate = self
            .inflight
            .lock()
            .unwrap()
            .entry(t.bundle)
            .or_default()
            .clone();
        let loaded = {
            let _held = gate.lock().await;
            load_bundle(
                &self.index,
                &self.fetcher,
                &self.blobs,
                self.functions.as_deref(),
                t.bundle,
            )
            .await
        };
        self.inflight.lock().unwrap().remove(&t.bundle);
        let manifest = loaded?;
        // Recency for the disk cache (a cached site is counted at each pass).
        self.index.touch(&[(t.bundle, crate::status::now_ms())])?;
        let desired = self.config.current();
        let site = SiteParts::new(self.keys.current()).site(
            &t,
            parsed(manifest),
            desired.projects.get(&t.project),
        );
        self.state.cache(host, site.clone());
        Ok(Some(site))
    }
}

impl SiteResolver for OnDemand {
    fn resolve<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = Resolved> + Send + 'a>> {
        Box::pin(async move {
            match tokio::time::timeout(ON_DEMAND_WAIT, self.load(host)).await {
                Ok(Ok(Some(site))) => Resolved::Site(site),
                Ok(Ok(None)) => {
                    // A redirecting host, exact or a wildcard domain.
                    let wildcard = protocol::host::wildcard_of(host);
                    let found = match self.config.redirect(host) {
                        Ok(None) => match &wildcard {
                            Some(w) => self.config.redirect(w),
                            None => Ok(None),
                        },
                        other => other,
                    };
                    match found {
                        Ok(Some(r)) => Resolved::Redirect(r),
                        _ => Resolved::Unknown,
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(%host, error = %format!("{e:#}"), "serving a host on demand failed");
                    Resolved::Unavailable
                }
                Err(_) => {
                    tracing::warn!(%host, "the bundle of a host served on demand did not arrive in time");
                    Resolved::Unavailable
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::manifest::FileEntry;
    use protocol::HostKind;

    fn bundle(tag: &str) -> BundleId {
        Manifest::new(
            [(
                "index.html".to_string(),
                FileEntry {
                    hash: BlobHash::of(tag.as_bytes()),
                    size: 1,
                    content_type: "text/html".into(),
                    variants: vec![],
                },
            )]
            .into(),
        )
        .bundle_id()
    }

    fn target(tag: &str) -> HostTarget {
        HostTarget {
            project: "p".into(),
            deployment: tag.into(),
            bundle: bundle(tag),
            env: protocol::EnvKind::Production,
            kind: HostKind::Production,
        }
    }

    #[test]
    fn next_active_table() {
        let mut desired = BTreeMap::new();
        desired.insert("a".to_string(), target("new"));
        desired.insert("b".to_string(), target("new"));
        desired.insert("c".to_string(), target("other"));
        let previous: BTreeMap<String, HostTarget> = [
            ("a".to_string(), target("old")),
            ("gone".to_string(), target("old")),
        ]
        .into();
        // (complete bundles, expected host → deployment)
        type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (vec![], vec![("a", "old")]),
            (vec!["new"], vec![("a", "new"), ("b", "new")]),
            (vec!["other"], vec![("a", "old"), ("c", "other")]),
            (
                vec!["new", "other"],
                vec![("a", "new"), ("b", "new"), ("c", "other")],
            ),
        ];
        for (complete, want) in cases {
            let done: BTreeSet<BundleId> = complete.iter().map(|t| bundle(t)).collect();
            let got = next_active(&desired, &previous, |b| done.contains(b));
            let got: Vec<(&str, &str)> = got
                .iter()
                .map(|(h, t)| (h.as_str(), t.deployment.as_str()))
                .collect();
            assert_eq!(got, want, "complete = {complete:?}");
        }
    }
}
