//! TLS for the node's QUIC connections. After enrolment every connection
//! verifies the coordinator against the cluster CA and presents the node's
//! certificate. Before it (during `join`) the node has only the CA
//! fingerprint from the join token, and trusts the CA the coordinator
//! presents only if it hashes to that fingerprint.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use protocol::wire::ALPN;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// How soon a coordinator that stops answering (killed, cut off: it sends
/// no close) is given up on, so the link fails over to another within
/// about this long. The coordinator advertises a longer idle timeout; the
/// shorter of the two applies.
pub const COORDINATOR_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings on a quiet coordinator link, a few per idle timeout: a live
/// coordinator's answers keep it open, a dead one's silence ends it.
pub const COORDINATOR_KEEP_ALIVE: Duration = Duration::from_secs(3);

fn quic(
    tls: rustls::ClientConfig,
    transport: quinn::TransportConfig,
) -> anyhow::Result<quinn::ClientConfig> {
    let mut cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls)?,
    ));
    cfg.transport_config(Arc::new(transport));
    Ok(cfg)
}

/// The mesh's connections, both ways (and the base of the coordinator's).
fn transport() -> anyhow::Result<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .keep_alive_interval(Some(std::time::Duration::from_secs(5)))
        .max_idle_timeout(Some(std::time::Duration::from_secs(20).try_into()?))
        .max_concurrent_bidi_streams(64u32.into());
    Ok(transport)
}

/// Connections to a coordinator: the mesh's, but a dead coordinator is
/// noticed sooner (the node has others to move to).
fn coordinator_transport() -> anyhow::Result<quinn::TransportConfig> {
    let mut t = transport()?;
    t.keep_alive_interval(Some(COORDINATOR_KEEP_ALIVE))
        .max_idle_timeout(Some(COORDINATOR_IDLE_TIMEOUT.try_into()?));
    Ok(t)
}

pub fn parse_certs(pem: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes()).collect::<Result<_, _>>()?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in PEM");
    Ok(certs)
}

pub fn parse_key(pem: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    rustls_pemfile::private_key(&mut pem.as_bytes())?
        .ok_or_else(|| anyhow::anyhow!("no private key in PEM"))
}

/// mTLS client config for the coordinator link: cluster CA as the only
/// root, node certificate as the client identity.
pub fn node_client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<quinn::ClientConfig> {
    client_config_with_alpn(ca_pem, cert_pem, key_pem, ALPN, coordinator_transport()?)
}

/// Client config for connections to peers: the peer must present a
/// certificate from the cluster CA issued for the node id we dial
/// (`<id>.node.outpost.internal`), so a member cannot pose as another.
pub fn mesh_client_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<quinn::ClientConfig> {
    client_config_with_alpn(
        ca_pem,
        cert_pem,
        key_pem,
        protocol::mesh::MESH_ALPN,
        transport()?,
    )
}

/// Server side of the mesh: only clients with a cluster-CA certificate
/// get in.
pub fn mesh_server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<quinn::ServerConfig> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in parse_certs(ca_pem)? {
        roots.add(c)?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(parse_certs(cert_pem)?, parse_key(key_pem)?)?;
    tls.alpn_protocols = vec![protocol::mesh::MESH_ALPN.to_vec()];
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(tls)?,
    ));
    server.transport_config(Arc::new(transport()?));
    Ok(server)
}

fn client_config_with_alpn(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    alpn: &[u8],
    transport: quinn::TransportConfig,
) -> anyhow::Result<quinn::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in parse_certs(ca_pem)? {
        roots.add(c)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(parse_certs(cert_pem)?, parse_key(key_pem)?)?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    quic(tls, transport)
}

/// Client config for `join`: no client certificate; the server's chain must
/// contain a CA whose blake3 is `ca_fingerprint` and verify against it.
pub fn join_client_config(ca_fingerprint: &str) -> anyhow::Result<quinn::ClientConfig> {
    let verifier = Arc::new(PinnedCaVerifier {
        fingerprint: ca_fingerprint.to_string(),
        provider: provider(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    quic(tls, coordinator_transport()?)
}

pub fn fingerprint(der: &[u8]) -> String {
    blake3::hash(der).to_hex().to_string()
}

#[derive(Debug)]
struct PinnedCaVerifier {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.fingerprint)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the coordinator's CA does not match the join token's fingerprint (wrong coordinator or token)".into(),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("pinned CA unusable: {e}")))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
