//! The coordinator's own QUIC certificate: issued by the cluster CA at
//! start for the lifetime node certificates have, and reissued when a
//! handshake finds a third of it left, so a coordinator that runs for
//! months never presents an expired one.

use std::sync::{Arc, Mutex};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::ca::ClusterCa;

pub struct RotatingCert {
    ca: Arc<ClusterCa>,
    life: time::Duration,
    /// The certificate presented now and its validity (Unix seconds).
    current: Mutex<(Arc<CertifiedKey>, (i64, i64))>,
}

impl std::fmt::Debug for RotatingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let validity = self.current.lock().unwrap().1;
        f.debug_struct("RotatingCert")
            .field("validity", &validity)
            .finish()
    }
}

impl RotatingCert {
    pub fn new(ca: Arc<ClusterCa>, life_secs: i64) -> anyhow::Result<Arc<Self>> {
        let life = time::Duration::seconds(life_secs);
        let first = issue(&ca, life)?;
        Ok(Arc::new(RotatingCert {
            ca,
            life,
            current: Mutex::new(first),
        }))
    }

    /// The certificate to present at `now`, reissued first when it is due.
    /// A failed reissue keeps the old one (logged): it is still valid.
    pub fn at(&self, now: i64) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap();
        if protocol::node_cert::renew_due(current.1, now) {
            match issue(&self.ca, self.life) {
                Ok(next) => {
                    tracing::info!(
                        not_after = next.1 .1,
                        "coordinator QUIC certificate renewed"
                    );
                    *current = next;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "renewing the coordinator's QUIC certificate failed")
                }
            }
        }
        current.0.clone()
    }

    /// Validity of the certificate presented now (Unix seconds).
    pub fn validity(&self) -> (i64, i64) {
        self.current.lock().unwrap().1
    }
}

impl ResolvesServerCert for RotatingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.at(time::OffsetDateTime::now_utc().unix_timestamp()))
    }
}

fn issue(ca: &ClusterCa, life: time::Duration) -> anyhow::Result<(Arc<CertifiedKey>, (i64, i64))> {
    let issued = ca.issue_coordinator(life)?;
    let chain: Vec<rustls::pki_types::CertificateDer<'static>> =
        rustls_pemfile::certs(&mut issued.cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let validity = chain
        .first()
        .and_then(|c| protocol::node_cert::validity(c))
        .ok_or_else(|| anyhow::anyhow!("the issued certificate is unreadable"))?;
    let key = rustls_pemfile::private_key(&mut issued.key_pem.as_bytes())?
        .ok_or_else(|| anyhow::anyhow!("issued key is not PEM"))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)?;
    Ok((Arc::new(CertifiedKey::new(chain, signer)), validity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_reissued_with_a_third_of_its_life_left() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(ClusterCa::load_or_create(dir.path()).unwrap());
        let rot = RotatingCert::new(ca, 3000).unwrap();
        let (from, until) = rot.validity();
        let first = rot.at(from + 100);
        assert!(Arc::ptr_eq(&first, &rot.at(until - 1100)), "not yet due");
        let second = rot.at(until - 900);
        assert!(!Arc::ptr_eq(&first, &second), "due: reissued");
        assert!(rot.validity().1 >= until);
        assert_ne!(first.cert[0], second.cert[0]);
    }
}
