//! A hostile cluster member on the wire: it holds a valid node certificate
//! but relays a config it altered and blob bytes that are not the blob.
//! The honest side must refuse both and keep what it had.

use std::sync::Arc;

use edge_node::config_state::{AcceptError, ConfigState, Source};
use edge_node::mesh::peer::{get_config, request_blob, PeerConfig, QuicChunks};
use edge_node::mesh::transport::Transport;
use edge_node::store::blobs::WriteError;
use edge_node::store::{BlobError, BlobStore, Index};
use protocol::frame_io::{read_frame, write_frame};
use protocol::mesh::{PeerInfo, PeerMessage, PeerRequest};
use protocol::signing::{ConfigSigner, ConfigVerifier, SignatureError};
use protocol::wire::MAX_CONTROL_FRAME_BYTES;
use protocol::{BlobHash, EdgeConfig, SignedConfig};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// (cert, key) for a node id, as the coordinator's CA issues them.
    fn node(&self, id: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![protocol::wire::node_name(id)]).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn endpoint(&self, id: &str) -> (quinn::Endpoint, quinn::ClientConfig) {
        let (cert, key) = self.node(id);
        let server = edge_node::tls::mesh_server_config(&self.ca_pem, &cert, &key).unwrap();
        let client = edge_node::tls::mesh_client_config(&self.ca_pem, &cert, &key).unwrap();
        (
            quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap(),
            client,
        )
    }
}

fn signed(signer: &ConfigSigner, version: u64) -> SignedConfig {
    let config = EdgeConfig {
        version,
        ..Default::default()
    };
    SignedConfig {
        signature: signer.sign(&config),
        config,
    }
}

/// The evil peer: answers every request with tampered data.
async fn evil_peer(endpoint: quinn::Endpoint, config: SignedConfig, blob_len: u64) {
    while let Some(incoming) = endpoint.accept().await {
        let config = config.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let req = read_frame::<PeerRequest, _>(&mut recv, MAX_CONTROL_FRAME_BYTES)
                    .await
                    .unwrap()
                    .unwrap();
                match req {
                    PeerRequest::GetConfig { .. } => {
                        write_frame(&mut send, &PeerMessage::Config(Box::new(config.clone())))
                            .await
                            .unwrap();
                    }
                    PeerRequest::GetBlob { .. } => {
                        write_frame(&mut send, &PeerMessage::Blob { size: blob_len })
                            .await
                            .unwrap();
                        send.write_all(&vec![b'X'; blob_len as usize])
                            .await
                            .unwrap();
                    }
                }
                let _ = send.finish();
            }
        });
    }
}

#[tokio::test]
async fn tampered_config_and_blob_from_a_peer_are_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pki = Pki::new();
    let signer = ConfigSigner::from_pkcs8(&ConfigSigner::generate_pkcs8()).unwrap();
    let verifier = ConfigVerifier::from_hex(&signer.public_key_hex()).unwrap();

    // A genuinely signed v5 whose content the peer changed after signing.
    let mut tampered = signed(&signer, 5);
    tampered.config.version = 6;
    tampered.signature.version = 6;
    let real_blob = b"the real bytes".to_vec();
    let (evil_ep, _) = pki.endpoint("evil");
    let evil = PeerInfo {
        node_id: "evil".into(),
        name: "evil".into(),
        region: "fra".into(),
        mesh_addr: evil_ep.local_addr().unwrap().to_string(),
    };
    tokio::spawn(evil_peer(evil_ep, tampered, real_blob.len() as u64));

    let tmp = tempfile::tempdir().unwrap();
    let index = Arc::new(Index::open(&tmp.path().join("index")).unwrap());
    let state = ConfigState::new(index.clone(), verifier).unwrap();
    state
        .accept(signed(&signer, 3), Source::Coordinator)
        .unwrap();

    let (honest_ep, client) = pki.endpoint("honest");
    let (sink, _datagrams) = tokio::sync::mpsc::channel(8);
    let transport = Transport::new(honest_ep, client, sink);

    let PeerConfig::Newer(relayed) = get_config(&transport, &evil, 3).await.unwrap() else {
        panic!("the evil peer sends a config");
    };
    match state.accept(*relayed, Source::Peer("evil".into())) {
        Err(AcceptError::Signature { error, .. }) => {
            assert_eq!(error, SignatureError::DigestMismatch)
        }
        other => panic!("tampered config accepted: {other:?}"),
    }
    assert_eq!(state.version(), 3);
    assert_eq!(index.config().unwrap().version, 3);

    let (blobs, _corrupt) = BlobStore::open(&tmp.path().join("blobs")).unwrap();
    let hash = BlobHash::of(&real_blob);
    let recv = request_blob(&transport, &evil, hash, real_blob.len() as u64)
        .await
        .unwrap();
    let err = blobs
        .write(&hash, real_blob.len() as u64, QuicChunks(recv))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WriteError::Store(BlobError::HashMismatch { expected, .. }) if expected == hash
        ),
        "{err}"
    );
    assert!(!blobs.contains(&hash));
}

#[tokio::test]
async fn a_peer_without_a_cluster_certificate_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Pki::new();
    let stranger = Pki::new();
    let (ep, _) = cluster.endpoint("member");
    let member = PeerInfo {
        node_id: "member".into(),
        name: "member".into(),
        region: "fra".into(),
        mesh_addr: ep.local_addr().unwrap().to_string(),
    };
    tokio::spawn(async move {
        while let Some(i) = ep.accept().await {
            let _ = i.await;
        }
    });
    // Its certificate is from another CA: the handshake fails both ways.
    let (stranger_ep, stranger_client) = stranger.endpoint("member");
    let (sink, _d) = tokio::sync::mpsc::channel(8);
    let t = Transport::new(stranger_ep, stranger_client, sink);
    assert!(get_config(&t, &member, 0).await.is_err());

    // A member dialling the wrong node id is refused too: names are bound.
    let (ep2, client2) = cluster.endpoint("other");
    let (sink, _d) = tokio::sync::mpsc::channel(8);
    let t = Transport::new(ep2, client2, sink);
    let impostor = PeerInfo {
        node_id: "someone-else".into(),
        ..member
    };
    assert!(get_config(&t, &impostor, 0).await.is_err());
}
