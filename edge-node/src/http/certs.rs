//! Certificate choice during the TLS handshake, by SNI, from the routing
//! snapshot current at that moment (so a certificate added by a config delta
//! is used by the next handshake without rebuilding the TLS config).
//!
//! A handshake that offers only the `acme-tls/1` protocol is a CA
//! validating a TLS-ALPN-01 challenge (RFC 8737): it gets a self-signed
//! certificate for the name carrying the challenge's digest, made here on
//! first use (the key is this node's own and throwaway; the CA checks only
//! the extension), and nothing else.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use protocol::acme::{HostChallenge, ACME_TLS_ALPN};
use protocol::host::choose_certificate;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::state::ServingState;

/// Challenge certificates kept at most (one per host under validation).
const MAX_CHALLENGE_CERTS: usize = 256;

/// (host, challenge digest) → its challenge certificate.
type ChallengeCerts = HashMap<(String, [u8; 32]), Arc<CertifiedKey>>;

pub struct SniResolver {
    state: Arc<ServingState>,
    challenges: Mutex<ChallengeCerts>,
}

impl SniResolver {
    pub fn new(state: Arc<ServingState>) -> Self {
        SniResolver {
            state,
            challenges: Mutex::new(HashMap::new()),
        }
    }

    fn challenge(&self, sni: &str, c: &HostChallenge) -> Option<Arc<CertifiedKey>> {
        let digest = c.alpn_digest?;
        let key = (sni.to_string(), digest);
        let mut cache = self.challenges.lock().unwrap();
        if let Some(k) = cache.get(&key) {
            return Some(k.clone());
        }
        let made = match challenge_cert(sni, &digest) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(sni, error = %e, "making a TLS-ALPN-01 certificate failed");
                return None;
            }
        };
        if cache.len() >= MAX_CHALLENGE_CERTS {
            cache.clear();
        }
        cache.insert(key, made.clone());
        Some(made)
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

/// Whether the client offers `acme-tls/1` and nothing else.
fn acme_only<'a>(mut alpn: impl Iterator<Item = &'a [u8]>) -> bool {
    alpn.next() == Some(ACME_TLS_ALPN) && alpn.next().is_none()
}

impl ResolvesServerCert for SniResolver {
    /// No SNI, or no certificate for it, aborts the handshake: serving some
    /// other tenant's certificate would only produce a name-mismatch error
    /// and would reveal which names this node hosts.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let sni = hello.server_name()?;
        let routing = self.state.current();
        if hello.alpn().is_some_and(acme_only) {
            let c = routing.challenges.get(sni)?;
            return self.challenge(sni, c);
        }
        let key = choose_certificate(sni, &routing.certs).cloned();
        if key.is_none() {
            tracing::debug!(sni, "no certificate for SNI; refusing handshake");
        }
        key
    }
}

/// A self-signed certificate for `name` with the critical `acmeIdentifier`
/// extension holding `digest` (RFC 8737 §3).
fn challenge_cert(name: &str, digest: &[u8; 32]) -> anyhow::Result<Arc<CertifiedKey>> {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_acme_protocol_is_a_challenge() {
        let cases: &[(&[&[u8]], bool)] = &[
            (&[b"acme-tls/1"], true),
            (&[b"acme-tls/1", b"h2"], false),
            (&[b"h2", b"acme-tls/1"], false),
            (&[b"h2"], false),
            (&[], false),
        ];
        for (offer, want) in cases {
            assert_eq!(acme_only(offer.iter().copied()), *want, "{offer:?}");
        }
    }

    #[test]
    fn challenge_certificates_carry_the_digest() {
        let k = challenge_cert("shop.example.com", &[9; 32]).unwrap();
        let der = k.cert[0].as_ref();
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier");
        assert!(ext.critical);
        // DER OCTET STRING of 32 bytes: 0x04 0x20 then the digest.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &[9; 32]);
    }
}
