//! TLS clients for tests: trust a test CA, read PEM.

/// A TLS client config trusting only `roots` (a test CA), offering `alpn`.
pub fn tls_client_config(
    roots: impl IntoIterator<Item = rustls::pki_types::CertificateDer<'static>>,
    alpn: &[&[u8]],
) -> rustls::ClientConfig {
    let mut store = rustls::RootCertStore::empty();
    for c in roots {
        store.add(c).expect("test CA certificate");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// The certificates in a PEM file's bytes.
pub fn pem_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .expect("valid PEM")
}
