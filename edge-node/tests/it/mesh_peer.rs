//! A hostile cluster member on the wire: it holds a valid node certificate
//! but relays config batches it altered (or that belong to another
//! history), a manifest and blob bytes that are not what was asked for.
//! The honest side must refuse all of them and keep what it had.

use std::sync::Arc;

use edge_node::config_state::{AcceptError, ConfigState, Source};
use edge_node::mesh::peer::{get_batches, request_blob, request_manifest, PeerBatches, QuicChunks};
use edge_node::mesh::transport::Transport;
use edge_node::store::blobs::WriteError;
use edge_node::store::{BlobError, BlobStore, Index};
use protocol::config::{Change, ChangeBatch, Keyspace};
use protocol::frame_io::{read_frame, write_frame};
use protocol::mesh::{PeerInfo, PeerMessage, PeerRequest};
use protocol::signing::{ConfigSigner, ConfigVerifier, SignatureError};
use protocol::wire::MAX_CONTROL_FRAME_BYTES;
use protocol::{BlobHash, Entry, EnvKind, HostKind, HostTarget, Key, SignedBatch, StateHash};
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

/// Batch `version` of a history: sets one host to deployment `tag`,
/// signed for the keyspace `ks` becomes with it (which it updates).
fn signed(signer: &ConfigSigner, ks: &mut Keyspace, version: u64, tag: &str) -> SignedBatch {
    signed_host(signer, ks, version, "blog.localhost", tag)
}

fn signed_host(
    signer: &ConfigSigner,
    ks: &mut Keyspace,
    version: u64,
    host: &str,
    tag: &str,
) -> SignedBatch {
    let batch = ChangeBatch {
        version,
        changes: vec![Change {
            key: Key::Host(host.into()),
            value: Some(Entry::Host(HostTarget {
                project: "blog".into(),
                deployment: tag.into(),
                bundle: BlobHash::of(tag.as_bytes()),
                env: EnvKind::Production,
                kind: HostKind::Production,
            })),
        }],
    };
    ks.apply(&batch).unwrap();
    let state = StateHash::of(ks.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    SignedBatch {
        signature: signer.sign(&batch, state.checksum()),
        batch,
    }
}

/// The evil peer: answers every request with tampered data.
async fn evil_peer(endpoint: quinn::Endpoint, batches: Vec<SignedBatch>, blob_len: u64) {
    while let Some(incoming) = endpoint.accept().await {
        let batches = batches.clone();
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                let req = read_frame::<PeerRequest, _>(&mut recv, MAX_CONTROL_FRAME_BYTES)
                    .await
                    .unwrap()
                    .unwrap();
                match req {
                    PeerRequest::GetBatches { .. } => {
                        write_frame(&mut send, &PeerMessage::Batches(batches.clone()))
                            .await
                            .unwrap();
                    }
                    PeerRequest::GetManifest { .. } => {
                        write_frame(
                            &mut send,
                            &PeerMessage::Manifest(b"not that manifest".to_vec()),
                        )
                        .await
                        .unwrap();
                    }
                    // A key of its own making (`keys` refuses it: it opens nothing).
                    PeerRequest::ClusterKeys => {
                        let forged = protocol::sealed::SealKey::generate(1);
                        write_frame(
                            &mut send,
                            &PeerMessage::ClusterKeys(vec![forged.material().clone()]),
                        )
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

    // The honest history: v1..v3. The peer relays a genuine v4 whose
    // content it changed after signing.
    let mut honest = Keyspace::default();
    let history: Vec<SignedBatch> = (1..=3)
        .map(|v| signed(&signer, &mut honest, v, &format!("d{v}")))
        .collect();
    let mut tampered = signed(&signer, &mut honest.clone(), 4, "d4");
    if let Some(Entry::Host(t)) = &mut tampered.batch.changes[0].value {
        t.deployment = "evil".into();
    }
    let real_blob = b"the real bytes".to_vec();
    let (evil_ep, _) = pki.endpoint("evil");
    let evil = PeerInfo {
        node_id: "evil".into(),
        name: "evil".into(),
        region: "fra".into(),
        mesh_addr: evil_ep.local_addr().unwrap().to_string(),
    };
    tokio::spawn(evil_peer(evil_ep, vec![tampered], real_blob.len() as u64));

    let tmp = tempfile::tempdir().unwrap();
    let index = Arc::new(Index::open(&tmp.path().join("index")).unwrap());
    let state = ConfigState::new(index.clone(), verifier).unwrap();
    assert_eq!(state.accept(history, Source::Coordinator).unwrap(), 3);

    let (honest_ep, client) = pki.endpoint("honest");
    let (sink, _datagrams) = tokio::sync::mpsc::channel(8);
    let transport = Transport::new(honest_ep, client, sink, Arc::new(|_: &str| false));

    let PeerBatches::Newer(relayed) = get_batches(&transport, &evil, 3).await.unwrap() else {
        panic!("the evil peer sends batches");
    };
    match state.accept(relayed, Source::Peer("evil".into())) {
        Err(AcceptError::Signature { error, .. }) => {
            assert_eq!(error, SignatureError::DigestMismatch)
        }
        other => panic!("tampered batch accepted: {other:?}"),
    }
    // A batch signed by the coordinator, but for another history (a
    // keyspace this node never had): its resulting state does not match.
    let mut other_history = Keyspace::default();
    for v in 1..=3 {
        signed_host(&signer, &mut other_history, v, "other.localhost", "o");
    }
    let foreign = signed(&signer, &mut other_history, 4, "d4");
    match state.accept(vec![foreign], Source::Peer("evil".into())) {
        Err(AcceptError::Signature { error, .. }) => {
            assert_eq!(error, SignatureError::StateMismatch)
        }
        other => panic!("a batch of another history accepted: {other:?}"),
    }
    assert_eq!(state.version(), 3);
    assert_eq!(index.head().unwrap().version, 3);
    let t = state.host("blog.localhost").unwrap().unwrap();
    assert_eq!(t.deployment, "d3");

    // A manifest that is not the bundle's is refused by its hash.
    let bundle = BlobHash::of(b"some bundle");
    let bytes = request_manifest(&transport, &evil, bundle).await.unwrap();
    assert!(edge_node::fetch::checked_manifest(bundle, &bytes).is_err());

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
    let t = Transport::new(
        stranger_ep,
        stranger_client,
        sink,
        Arc::new(|_: &str| false),
    );
    assert!(get_batches(&t, &member, 0).await.is_err());

    // A member dialling the wrong node id is refused too: names are bound.
    let (ep2, client2) = cluster.endpoint("other");
    let (sink, _d) = tokio::sync::mpsc::channel(8);
    let t = Transport::new(ep2, client2, sink, Arc::new(|_: &str| false));
    let impostor = PeerInfo {
        node_id: "someone-else".into(),
        ..member.clone()
    };
    assert!(get_batches(&t, &impostor, 0).await.is_err());

    // A removed node is not dialled at all.
    let (ep3, client3) = cluster.endpoint("third");
    let (sink, _d) = tokio::sync::mpsc::channel(8);
    let t = Transport::new(ep3, client3, sink, Arc::new(|id: &str| id == "member"));
    let err = get_batches(&t, &member, 0).await.unwrap_err();
    assert!(format!("{err:#}").contains("removed"), "{err:#}");
}
