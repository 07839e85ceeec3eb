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

/// A CA named `ca_name` and a certificate for `127.0.0.1` / `localhost`
/// signed by it: (CA PEM, certificate PEM, key PEM).
pub fn loopback_cert(ca_name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let mut leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    leaf.subject_alt_names.push(rcgen::SanType::IpAddress(
        std::net::Ipv4Addr::LOCALHOST.into(),
    ));
    let cert = leaf.signed_by(&key, &issuer).expect("certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
