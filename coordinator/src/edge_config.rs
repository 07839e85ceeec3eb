//! Builds the versioned edge config from the database and publishes it to
//! every connected edge (a `watch` channel: slow edges skip to the newest).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use protocol::signing::ConfigSigner;
use protocol::{
    BundleId, CertEntry, EdgeConfig, EnvKind, HostTarget, Manifest, ProjectRuntime, SignedConfig,
};
use tokio::sync::{watch, Mutex};

use crate::ca::ClusterCa;
use crate::config::Config;
use crate::secrets::SecretBox;
use crate::store::{HostCert, Store, StoreError, Target};

#[derive(Debug, thiserror::Error)]
pub enum EdgeConfigError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bundle {0} is referenced but missing or undecodable")]
    Bundle(String),
    #[error("issuing a host certificate: {0}")]
    Ca(#[from] crate::ca::CaError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
}

/// Host certificates are renewed when less than this is left.
const CERT_RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;

pub struct ConfigHub {
    store: Store,
    secrets: Arc<SecretBox>,
    ca: Arc<ClusterCa>,
    config: Arc<Config>,
    signer: ConfigSigner,
    tx: watch::Sender<Arc<SignedConfig>>,
    /// Manifests are immutable: decode each once.
    manifests: Mutex<HashMap<String, Manifest>>,
    /// Host certificates already read or issued: every rebuild lists every
    /// host, and a database read per host per deploy adds up.
    certs: Mutex<HashMap<String, HostCert>>,
    /// Serialises rebuilds so versions are published in order.
    rebuild: Mutex<()>,
}

impl ConfigHub {
    pub async fn new(
        store: Store,
        secrets: Arc<SecretBox>,
        ca: Arc<ClusterCa>,
        config: Arc<Config>,
        signer: ConfigSigner,
    ) -> Result<Arc<Self>, EdgeConfigError> {
        let empty = EdgeConfig::default();
        let (tx, _) = watch::channel(Arc::new(SignedConfig {
            signature: signer.sign(&empty),
            config: empty,
        }));
        let hub = Arc::new(ConfigHub {
            store,
            secrets,
            ca,
            config,
            signer,
            tx,
            manifests: Mutex::default(),
            certs: Mutex::default(),
            rebuild: Mutex::new(()),
        });
        hub.refresh().await?;
        Ok(hub)
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<SignedConfig>> {
        self.tx.subscribe()
    }

    pub fn current(&self) -> Arc<SignedConfig> {
        self.tx.borrow().clone()
    }

    /// Hex public key edges verify configs with.
    pub fn config_key(&self) -> String {
        self.signer.public_key_hex()
    }

    /// Rebuilds and publishes if the database's config version moved.
    pub async fn refresh(&self) -> Result<(), EdgeConfigError> {
        let _guard = self.rebuild.lock().await;
        let version = self.store.config_version().await? as u64;
        if version == self.tx.borrow().config.version && version != 0 {
            return Ok(());
        }
        let cfg = self.build(version).await?;
        let signature = self.signer.sign(&cfg);
        self.tx.send_replace(Arc::new(SignedConfig {
            config: cfg,
            signature,
        }));
        Ok(())
    }

    /// Another coordinator on the same database may change the config; a
    /// cheap version poll picks that up.
    pub async fn poll(self: Arc<Self>, every: Duration, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "refreshing the edge config failed");
            }
        }
    }

    async fn build(&self, version: u64) -> Result<EdgeConfig, EdgeConfigError> {
        let mut cfg = EdgeConfig {
            version,
            ..Default::default()
        };
        let live = self.store.live_deployments().await?;
        let mut manifests = self.manifests.lock().await;
        for d in &live {
            let bundle: BundleId = d
                .bundle_id
                .parse()
                .map_err(|_| EdgeConfigError::Bundle(d.bundle_id.clone()))?;
            if !manifests.contains_key(&d.bundle_id) {
                let bytes = self
                    .store
                    .bundle_manifest(&d.bundle_id)
                    .await?
                    .ok_or_else(|| EdgeConfigError::Bundle(d.bundle_id.clone()))?;
                let m = Manifest::from_canonical_bytes(&bytes, protocol::wire::MAX_FRAME_BYTES)
                    .map_err(|_| EdgeConfigError::Bundle(d.bundle_id.clone()))?;
                manifests.insert(d.bundle_id.clone(), m);
            }
            cfg.bundles.insert(bundle, manifests[&d.bundle_id].clone());
            // A deployment made for production keeps production variables
            // on its own URL too; previews get preview variables.
            let target = HostTarget {
                project: d.project.clone(),
                deployment: d.id.clone(),
                bundle,
                env: match d.target {
                    Target::Production => EnvKind::Production,
                    Target::Preview => EnvKind::Preview,
                },
            };
            cfg.hosts
                .entry(self.config.deployment_host(&d.project, &d.id))
                .or_insert_with(|| target.clone());
        }
        // Production aliases win any clash with a per-deployment name.
        for d in live.iter().filter(|d| d.is_production) {
            let mut t = cfg.hosts[&self.config.deployment_host(&d.project, &d.id)].clone();
            t.env = EnvKind::Production;
            cfg.hosts.insert(self.config.production_host(&d.project), t);
        }
        // Branch previews: the newest ready build of each branch.
        for (project, branch, deployment) in self.store.branch_aliases().await? {
            let own = self.config.deployment_host(&project, &deployment);
            if let Some(t) = cfg.hosts.get(&own).cloned() {
                cfg.hosts
                    .entry(self.config.branch_host(&project, &branch))
                    .or_insert(t);
            }
        }
        drop(manifests);
        cfg.projects = self.project_runtimes(&live).await?;
        let wildcard = format!("*.{}", self.config.base_domain);
        let names: Vec<String> = cfg
            .hosts
            .keys()
            .cloned()
            .chain([wildcard, self.config.base_domain.clone()])
            .collect();
        for name in names {
            let cert = self.host_cert(&name).await?;
            cfg.certificates.insert(
                name,
                CertEntry {
                    chain_pem: cert.chain_pem,
                    key_pem: cert.key_pem,
                    not_after: cert.not_after,
                },
            );
        }
        Ok(cfg)
    }

    /// Variables (secrets decrypted: edges need the values) and outbound
    /// lists of every project with something live.
    async fn project_runtimes(
        &self,
        live: &[crate::store::LiveDeployment],
    ) -> Result<std::collections::BTreeMap<String, ProjectRuntime>, EdgeConfigError> {
        let mut out = std::collections::BTreeMap::new();
        for (id, name) in self.store.project_ids().await? {
            if !live.iter().any(|d| d.project == name) {
                continue;
            }
            let mut rt = ProjectRuntime {
                outbound: self.store.outbound(&id).await?,
                ..Default::default()
            };
            for v in self.store.env_vars(&id).await? {
                let value = match (&v.value_plain, &v.value_enc) {
                    (Some(p), _) => p.clone(),
                    (None, Some(enc)) => self.secrets.open(enc)?,
                    (None, None) => continue,
                };
                let map = if v.env_kind == "preview" {
                    &mut rt.preview_env
                } else {
                    &mut rt.production_env
                };
                map.insert(v.name, value);
            }
            out.insert(name, rt);
        }
        Ok(out)
    }

    /// The stored certificate for `name`, issued by the cluster CA on first
    /// use and renewed before it expires.
    async fn host_cert(&self, name: &str) -> Result<HostCert, EdgeConfigError> {
        let now = crate::store::now_ms() / 1000;
        let fresh = |c: &HostCert| c.not_after - now > CERT_RENEW_BEFORE_SECS;
        if let Some(c) = self.certs.lock().await.get(name).filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        if let Some(c) = self.store.host_cert(name).await?.filter(|c| fresh(c)) {
            self.certs.lock().await.insert(name.to_string(), c.clone());
            return Ok(c);
        }
        let issued = self.ca.issue_server(vec![name.to_string()], 90)?;
        let c = HostCert {
            host: name.to_string(),
            chain_pem: issued.cert_pem,
            key_pem: issued.key_pem,
            not_after: issued.not_after.unix_timestamp(),
        };
        self.store.put_host_cert(&c).await?;
        self.certs.lock().await.insert(name.to_string(), c.clone());
        Ok(c)
    }
}
