//! Certificate choice during the TLS handshake, by SNI, from the routing
//! snapshot current at that moment (so a certificate added by a config delta
//! is used by the next handshake without rebuilding the TLS config).

use std::fmt;
use std::sync::Arc;

use protocol::host::choose_certificate;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::state::ServingState;

pub struct SniResolver {
    state: Arc<ServingState>,
}

impl SniResolver {
    pub fn new(state: Arc<ServingState>) -> Self {
        SniResolver { state }
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    /// No SNI, or no certificate for it, aborts the handshake: serving some
    /// other tenant's certificate would only produce a name-mismatch error
    /// and would reveal which names this node hosts.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name()?;
        let routing = self.state.current();
        let key = choose_certificate(sni, &routing.certs).cloned();
        if key.is_none() {
            tracing::debug!(sni, "no certificate for SNI; refusing handshake");
        }
        key
    }
}
