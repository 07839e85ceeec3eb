//! Certificates for custom domains from an ACME CA (RFC 8555), issued and
//! renewed in the background, never on a request's path.
//!
//! One worker per coordinator looks every few seconds for served domains
//! whose certificate needs work (none yet, a retry due, a renewal due) and
//! takes a lease on each in the database, so with several coordinators on
//! one database exactly one works an order. An order's URL and its new key
//! are recorded before any challenge is answered: a coordinator that
//! restarts mid-order resumes that order instead of placing another, so a
//! restart loop never issues twice. Failures back off (`schedule`) while the
//! last good certificate keeps serving; the CA's problem is kept verbatim
//! for the status.
//!
//! Challenges are answered by every edge: HTTP-01 statelessly from the
//! account thumbprint in the signed config, TLS-ALPN-01 from a per-host
//! entry the edges hold before the CA is told to look (`order.rs` waits
//! until every live edge reports the config version that carries it).

pub mod dns01;
mod order;
pub mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use tokio::sync::{watch, Mutex, Notify};

use crate::config::AcmeConfig;
use crate::secrets::SecretBox;
use crate::store::{now_ms, Store};

/// Certificates looked at per pass.
const PER_PASS: i64 = 8;
/// How long a lease holds without being renewed: longer than an order may
/// take, and renewed every [`LEASE_RENEW`] while it goes on, so only a
/// coordinator that stopped loses it.
const LEASE: Duration = Duration::from_secs(600);
const LEASE_RENEW: Duration = Duration::from_secs(60);
/// The longest one order may take before it is abandoned for a later try
/// (DNS propagation, the edges catching up, the CA's validation).
pub(crate) const ORDER_TIMEOUT: Duration = Duration::from_secs(480);

/// This coordinator's id for leases: random, kept in `<data_dir>/instance-id`
/// so a restart is the same coordinator (and takes its leases back at
/// once) while every other coordinator, even a clone on another host with
/// the same paths, has its own.
pub(crate) fn instance_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if id.len() == 24 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Ok(id.to_string());
        }
    }
    let id = crate::ids::new_id(24);
    platform::fs::write_private(&path, id.as_bytes())?;
    Ok(id)
}

/// The base64url HMAC key of External Account Binding, decoded.
pub fn decode_hmac_key(s: &str) -> Result<Vec<u8>, String> {
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "not base64url".to_string())?;
    if b.is_empty() || b.len() > 512 {
        return Err("must decode to 1-512 bytes".into());
    }
    Ok(b)
}

pub struct AcmeService {
    config: AcmeConfig,
    store: Store,
    secrets: Arc<SecretBox>,
    /// Who holds leases: stable across restarts of this coordinator (its
    /// data directory), so a restarted one takes its own orders back at
    /// once; another coordinator waits for the lease to run out.
    owner: String,
    /// Accounts by directory URL.
    accounts: Mutex<HashMap<String, Account>>,
    /// The DNS provider for DNS-01, when configured.
    dns01: Option<dns01::Dns01>,
    /// `*.<base domain>`, when the platform's own wildcard is ordered too.
    base_wildcard: Option<String>,
    wake: Notify,
}

impl AcmeService {
    pub fn new(
        config: &AcmeConfig,
        base_domain: &str,
        resolver: Option<std::net::SocketAddr>,
        store: Store,
        secrets: Arc<SecretBox>,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Arc<AcmeService>> {
        let dns01 = config
            .dns01
            .as_ref()
            .map(|d| dns01::Dns01::new(d, resolver))
            .transpose()?;
        let owner = instance_id(data_dir)?;
        Ok(Arc::new(AcmeService {
            config: config.clone(),
            store,
            secrets,
            owner,
            accounts: Mutex::new(HashMap::new()),
            dns01,
            base_wildcard: config.base_domain.then(|| format!("*.{base_domain}")),
            wake: Notify::new(),
        }))
    }

    /// Looks for work now (a domain just became active, say).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Until shutdown: a pass every few seconds, or when nudged.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if !self.config.enabled {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            let due = self
                .store
                .certs_due(
                    now_ms(),
                    &self.owner,
                    self.base_wildcard.as_deref(),
                    PER_PASS,
                )
                .await;
            let due = match due {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "listing certificates due");
                    continue;
                }
            };
            // Expired certificates leave every edge (and their redirect
            // to HTTPS with them).
            match self.store.expire_certs(now_ms() / 1000).await {
                Ok(gone) if !gone.is_empty() => {
                    tracing::warn!(domains = ?gone, "certificates expired and were withdrawn");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "withdrawing expired certificates"),
            }
            self.recheck_ari().await;
            for name in due {
                if !self.work_leased(&name, &mut shutdown).await {
                    return;
                }
            }
        }
    }

    /// Leases `name`'s certificate and works it once: the lease renewed
    /// while the work goes on (and the work stopped when it is lost), DNS-01
    /// records removed however it ends. False on shutdown.
    async fn work_leased(&self, name: &str, shutdown: &mut watch::Receiver<bool>) -> bool {
        let until = now_ms() + LEASE.as_millis() as i64;
        match self.store.lease_cert(name, &self.owner, until).await {
            Ok(true) => {}
            Ok(false) => return true,
            Err(e) => {
                tracing::warn!(domain = %name, error = %e, "leasing a certificate");
                return true;
            }
        }
        let presented = order::Presented::default();
        let work = tokio::time::timeout(ORDER_TIMEOUT, order::work(self, name, &presented));
        tokio::pin!(work);
        let mut renew = tokio::time::interval(LEASE_RENEW);
        renew.tick().await;
        let timed_out = loop {
            tokio::select! {
                r = &mut work => break r.is_err(),
                _ = renew.tick() => {
                    let until = now_ms() + LEASE.as_millis() as i64;
                    // Removed meanwhile, or taken over: stop.
                    if let Ok(false) = self.store.renew_cert_lease(name, &self.owner, until).await {
                        break false;
                    }
                }
                _ = shutdown.changed() => {
                    order::cleanup(self, &order::take(&presented)).await;
                    return false;
                }
            }
        };
        order::cleanup(self, &order::take(&presented)).await;
        if timed_out {
            let msg = format!("the order took longer than {}s", ORDER_TIMEOUT.as_secs());
            order::failed(self, name, &msg, false).await;
        }
        if let Err(e) = self.store.release_cert(name, &self.owner).await {
            tracing::warn!(domain = %name, error = %e, "releasing a certificate's lease");
        }
        true
    }

    /// Asks the CA's renewal information again for the certificates due:
    /// a window moved earlier (a CA revoking early, say) moves the renewal.
    async fn recheck_ari(&self) {
        let due = match self.store.ari_due(now_ms(), PER_PASS).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "listing renewal information due");
                return;
            }
        };
        for (name, directory, cert_id) in due {
            let quoted = serde_json::json!(cert_id).to_string();
            let Ok(id) = serde_json::from_str::<instant_acme::CertificateIdentifier>(&quoted)
            else {
                // Not asked again every pass: a day later.
                let _ = self
                    .store
                    .record_ari(&name, None, now_ms() + 86_400_000)
                    .await;
                continue;
            };
            let found = match self.account(&directory).await {
                Ok(account) => order::ari(&account, &id).await,
                Err(_) => None,
            };
            // Unreachable or no answer: ask again in an hour.
            let (at, next) = match found {
                Some((at, next)) => (Some(at), next),
                None => (None, now_ms() + 3_600_000),
            };
            if let Err(e) = self.store.record_ari(&name, at, next).await {
                tracing::warn!(domain = %name, error = %e, "recording renewal information");
            }
        }
    }

    /// The account at `directory`, made on first use and kept in the
    /// database (sealed). The primary directory's thumbprint is what edges
    /// answer HTTP-01 with.
    async fn account(&self, directory: &str) -> anyhow::Result<Account> {
        let mut accounts = self.accounts.lock().await;
        if let Some(a) = accounts.get(directory) {
            return Ok(a.clone());
        }
        let builder = || -> anyhow::Result<_> {
            Ok(match &self.config.ca_file {
                Some(f) => Account::builder_with_root(f)?,
                None => Account::builder()?,
            })
        };
        let account = match self.store.acme_account(directory).await? {
            Some(enc) => {
                let json = self.secrets.open(&enc)?;
                let creds: AccountCredentials = serde_json::from_str(&json)?;
                builder()?.from_credentials(creds).await?
            }
            None => {
                let contact: Vec<String> = self
                    .config
                    .email
                    .iter()
                    .map(|e| format!("mailto:{e}"))
                    .collect();
                let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
                let eab = match (&self.config.eab_kid, &self.config.eab_hmac_key) {
                    (Some(kid), Some(key)) => Some(ExternalAccountKey::new(
                        kid.clone(),
                        &decode_hmac_key(key).map_err(anyhow::Error::msg)?,
                    )),
                    _ => None,
                };
                let (account, creds) = builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        directory.to_string(),
                        eab.as_ref(),
                    )
                    .await?;
                let json = serde_json::to_string(&creds)?;
                let held = self
                    .store
                    .put_acme_account(directory, &self.secrets.seal(&json))
                    .await?;
                let held: AccountCredentials = serde_json::from_str(&self.secrets.open(&held)?)?;
                tracing::info!(directory, id = account.id(), "ACME account created");
                // Another coordinator's, if it stored one first: one account
                // (and one thumbprint) for all.
                builder()?.from_credentials(held).await?
            }
        };
        if directory == self.config.directory {
            self.store
                .publish_acme_thumbprint(account.key_thumbprint())
                .await?;
        }
        accounts.insert(directory.to_string(), account.clone());
        Ok(account)
    }

    /// The thumbprint edges answer HTTP-01 with (the primary account's).
    async fn published_thumbprint(&self) -> Option<String> {
        let a = self.account(&self.config.directory).await.ok()?;
        Some(a.key_thumbprint().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_keys() {
        assert_eq!(decode_hmac_key("AQID").unwrap(), vec![1, 2, 3]);
        assert_eq!(decode_hmac_key("AQI=").unwrap(), vec![1, 2]);
        for bad in ["", "!!!!", "a+b/"] {
            assert!(decode_hmac_key(bad).is_err(), "{bad}");
        }
    }
}
