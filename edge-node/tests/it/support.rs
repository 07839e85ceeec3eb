//! What the edge node's integration tests share: a blob source for the
//! store, a test CA with a `blog.localhost` leaf, sites built from
//! manifests, and header reading.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use edge_node::state::Site;
use edge_node::store::blobs::AsyncChunkSource;
use protocol::Manifest;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// Blob bytes handed to `BlobStore::write` in the given chunks.
pub struct Chunks(pub Vec<Bytes>);

impl AsyncChunkSource<std::convert::Infallible> for Chunks {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, std::convert::Infallible> {
        Ok((!self.0.is_empty()).then(|| self.0.remove(0)))
    }
}

/// A CA and a `blog.localhost` leaf it signed, as rustls wants them.
pub fn certificates() -> (CertificateDer<'static>, Arc<CertifiedKey>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "outpost test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["blog.localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
    (
        ca_cert.der().clone(),
        Arc::new(CertifiedKey::new(vec![leaf.der().clone()], signing)),
    )
}

/// The site a host serves: project `name`, deployment `dpl-<name>`,
/// `manifest`, the functions' variables and outbound hosts.
pub fn site(name: &str, manifest: Manifest, env: &[(&str, &str)], outbound: &[&str]) -> Arc<Site> {
    let deployment = format!("dpl-{name}");
    Arc::new(Site {
        project: name.into(),
        deployment_header: http::HeaderValue::from_str(&deployment).ok(),
        deployment: deployment.into(),
        bundle: manifest.bundle_id(),
        environment: protocol::EnvKind::Production,
        functions: Arc::new(protocol::functions::RouteTable::new(&manifest.functions)),
        manifest: Arc::new(manifest),
        env: Some(Arc::new(
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )),
        outbound: Arc::new(outbound.iter().map(|h| h.to_string()).collect()),
    })
}

/// A response header's value, if present.
pub fn hdr<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).map(|v| v.to_str().unwrap())
}
