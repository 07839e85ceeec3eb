//! Starting and stopping a coordinator: store, CA, blob store, config hub,
//! QUIC endpoint for edges and the HTTP API, with graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::app::App;
use crate::blobs::BlobStore;
use crate::ca::ClusterCa;
use crate::config::Config;
use crate::edge_config::ConfigHub;
use crate::ids;
use crate::quic::{self, QuicContext};
use crate::secrets::SecretBox;
use crate::store::Store;

pub struct Running {
    pub api_addr: SocketAddr,
    /// None for a builder (it links no edges).
    pub quic_addr: Option<SocketAddr>,
    /// Set only on the first start, when the admin token is created.
    pub new_admin_token: Option<String>,
    /// While no account exists: the token the first sign-up needs.
    pub setup_token: Option<String>,
    /// How people reach the API and dashboard (`[api_url]`, else the
    /// address bound).
    pub api_url: String,
    pub ca_path: PathBuf,
    pub ca_fingerprint: String,
    pub store: Store,
    pub hub: Arc<ConfigHub>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (bounded), closes the store.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.store.close().await;
    }
}

fn bind_error(
    what: &str,
    addr: SocketAddr,
    flag: &str,
    e: impl std::fmt::Display,
) -> anyhow::Error {
    anyhow::anyhow!("cannot listen for {what} on {addr}: {e}. Is another process using that port? Choose another with {flag}.")
}

pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;

    // Bind first: a taken port should fail before anything is created.
    let api_listener = tokio::net::TcpListener::bind(config.api_addr)
        .await
        .map_err(|e| bind_error("the API", config.api_addr, "--api-addr", e))?;
    // Links we hand out (webhooks, invitations) name the port really bound.
    config.api_addr = api_listener.local_addr()?;
    let config = Arc::new(config);
    if let Some(host) = config.dashboard_under_base_domain() {
        tracing::warn!(
            dashboard = %host,
            base_domain = %config.base_domain,
            "the dashboard is served under the sites' base domain: tenants' sites there can set cookies it receives; serve it over TLS (its session cookie is then __Host-) or, better, on a host outside the base domain"
        );
    }
    let store = Store::connect(&config.database_url)
        .await
        .with_context(|| format!("opening the database {}", redact_url(&config.database_url)))?;
    let secrets = Arc::new(match &config.secret_key {
        Some(hex) => SecretBox::from_hex(hex)?,
        None => SecretBox::load_or_create(&config.data_dir.join("secret.key"))?,
    });
    // The cluster's CA and signing key live in the database (sealed); the
    // first coordinator makes them, every other one reads them.
    let ca_dir = config.data_dir.join("ca");
    crate::bootstrap::cluster_material(&store, &secrets, &ca_dir)
        .await
        .context("the cluster CA and config-signing key")?;
    let ca = Arc::new(ClusterCa::load_or_create(&ca_dir)?);
    // Projects from before accounts existed belong to the first team.
    store
        .ensure_default_team(&crate::store::Team {
            id: ids::new_id(12),
            name: "default".into(),
            created_at: crate::store::now_ms(),
        })
        .await?;
    let new_admin_token = crate::bootstrap::admin_token(&store, &config.data_dir).await?;
    let setup_token = crate::app::accounts::ensure_setup_token(&store, &config.data_dir).await?;
    let blobs = BlobStore::open(&config.blobs, &config.data_dir)
        .context("opening the blob store ([blobs])")?;
    tracing::info!(blobs = %BlobStore::describe(&config.blobs, &config.data_dir), "blob store");
    let moved = crate::app::git::seal_legacy_credentials(&store, &secrets).await?;
    if moved > 0 {
        tracing::info!(
            projects = moved,
            "repository credentials moved out of their URLs"
        );
    }
    let signer = crate::ca::load_or_create_config_signer(&ca_dir)?;
    let config_key = signer.public_key_hex();
    // From here on every change the store makes is also a signed batch of
    // the edge config log.
    let store = store.with_edge_log(Arc::new(crate::store::EdgeLog {
        config: config.clone(),
        secrets: secrets.clone(),
        ca: ca.clone(),
        signer,
    }));
    store
        .reconcile_edges()
        .await
        .context("building the edge config log")?;
    let hub = ConfigHub::new(store.clone(), config_key, config.nodes.cert_secs()).await?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let quic_ctx = Arc::new(QuicContext {
        store: store.clone(),
        blobs: blobs.clone(),
        hub: hub.clone(),
        ca: ca.clone(),
        blob_bytes_sent: AtomicU64::new(0),
        mesh: Default::default(),
        node_cert_secs: config.nodes.cert_secs(),
        links: Default::default(),
    });
    let api_addr = api_listener.local_addr()?;
    let role = config.role;
    // A builder links no edges: no QUIC endpoint.
    let endpoint = if role.serves() {
        Some(
            quic::endpoint(config.quic_addr, &ca, config.nodes.cert_secs())
                .map_err(|e| bind_error("edge nodes (QUIC)", config.quic_addr, "--quic-addr", e))?,
        )
    } else {
        None
    };
    let quic_addr = endpoint.as_ref().map(|e| e.local_addr()).transpose()?;
    let holder = crate::acme::instance_id(&config.data_dir)?;
    // Where edges can reach this coordinator, for every edge's list.
    let advertised = quic_addr.and_then(|a| config.quic_advertised(a));
    if role.serves() && advertised.is_none() {
        tracing::info!("QUIC is bound to an unspecified address and quic_advertise is not set: edges are not told of this coordinator (they keep the address they joined through)");
    }
    crate::registry::register(
        &store,
        &holder,
        advertised.as_deref(),
        &config.api_url(),
        role,
    )
    .await
    .context("registering this coordinator")?;
    let builds = crate::builds::BuildService::new(
        store.clone(),
        blobs.clone(),
        hub.clone(),
        secrets.clone(),
        config.clone(),
    );
    let domains = crate::domains::DomainChecker::new(&config.domains)
        .context("setting up the DNS resolver for custom domains")?;
    let acme = crate::acme::AcmeService::new(
        &config.acme,
        &config.base_domain,
        config.domains.resolver,
        store.clone(),
        secrets.clone(),
        &config.data_dir,
    )
    .context("setting up certificates ([acme])")?;
    let alerts = Arc::new(crate::alerts::AlertService {
        store: store.clone(),
        secrets: secrets.clone(),
        config: config.alerts.clone(),
        targets: config.alerts.targets()?,
        smtp: config.smtp.clone(),
        external_url: config.api_url(),
        holder: holder.clone(),
        data_dir: config.data_dir.clone(),
        ca_der: quic_ctx.ca.cert_der().to_vec(),
        wake: Default::default(),
    });
    let state = App {
        alerts: alerts.clone(),
        domains: domains.clone(),
        acme: acme.clone(),
        builds: builds.clone(),
        secrets,
        store: store.clone(),
        blobs,
        hub: hub.clone(),
        config: config.clone(),
        quic: quic_ctx.clone(),
        login_limits: Default::default(),
        api_limits: Arc::new(crate::ratelimit::ApiLimits::new(&config.rate_limits)),
        usage: Default::default(),
        metrics: Default::default(),
    };
    let mut tasks = vec![
        // What another coordinator wrote reaches this one's edges within a
        // poll (one `SELECT` of the version while nothing changed).
        tokio::spawn(
            hub.clone()
                .poll(Duration::from_millis(250), shutdown_rx.clone()),
        ),
        // The build queue: workers when this role builds; everywhere, the
        // re-queueing of builds whose coordinator died.
        tokio::spawn(builds.run(holder.clone(), role.builds(), shutdown_rx.clone())),
        // This coordinator's heartbeat in the registry.
        tokio::spawn(crate::registry::heartbeat(
            store.clone(),
            holder.clone(),
            shutdown_rx.clone(),
        )),
    ];
    match endpoint {
        Some(endpoint) => {
            tasks.extend([
                tokio::spawn(quic::serve(endpoint, quic_ctx, shutdown_rx.clone())),
                tokio::spawn(domains.run(store.clone(), shutdown_rx.clone())),
                // Certificates for custom domains: issued and renewed in the background.
                tokio::spawn(acme.run(shutdown_rx.clone())),
                // Retention and garbage collection, every `[retention] every`.
                tokio::spawn(crate::lifecycle::run(
                    state.clone(),
                    holder.clone(),
                    shutdown_rx.clone(),
                )),
                // Log drains delivered.
                tokio::spawn(
                    Arc::new(crate::drains::DrainService {
                        store: store.clone(),
                        secrets: state.secrets.clone(),
                        targets: config.alerts.targets()?,
                    })
                    .run(shutdown_rx.clone()),
                ),
                // Alert rules evaluated, notifications delivered.
                tokio::spawn(alerts.run(shutdown_rx.clone())),
                // Visitor salts and analytics retention.
                tokio::spawn(crate::traffic::run(
                    store.clone(),
                    config.analytics.clone(),
                    holder.clone(),
                    shutdown_rx.clone(),
                )),
            ]);
            tasks.push(tokio::spawn(crate::listener::serve(
                api_listener,
                api::router(state),
                shutdown_rx.clone(),
            )));
        }
        None => tasks.push(tokio::spawn(crate::listener::serve(
            api_listener,
            crate::registry::builder_router(),
            shutdown_rx.clone(),
        ))),
    }
    tracing::info!(%api_addr, quic_addr = ?quic_addr, role = role.as_str(), data_dir = %config.data_dir.display(), "coordinator started");
    Ok(Running {
        api_addr,
        quic_addr,
        new_admin_token,
        setup_token,
        api_url: config.api_url(),
        ca_path: ca.cert_path().to_path_buf(),
        ca_fingerprint: ca.fingerprint(),
        store,
        hub,
        shutdown: shutdown_tx,
        tasks,
    })
}

fn redact_url(url: &str) -> String {
    // postgres://user:password@host → postgres://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite:///x.db"), "sqlite:///x.db");
    }
}
