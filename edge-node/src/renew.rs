//! Renewing the node certificate before it ends. Node certificates are
//! short-lived (`protocol::node_cert::NODE_CERT_SECS`): with a third of its
//! lifetime left, the node makes a new key and asks for a certificate over
//! its link, authenticated by the current one; the pair is saved as one
//! (see `identity.rs`) and the node's TLS configs switch to it. A node
//! that stays away until its certificate has expired must join again.

use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::wire::{CoordinatorMessage, EdgeRequest, MAX_CONTROL_FRAME_BYTES};

use crate::identity::Identity;

/// Whether `identity`'s certificate is due for renewal at `now` (Unix
/// seconds). An unreadable certificate is due: renewing it is the fix.
pub fn due(identity: &Identity, now: i64) -> bool {
    identity
        .cert_validity()
        .is_none_or(|v| protocol::node_cert::renew_due(v, now))
}

/// Asks the coordinator for a new certificate for a new key, checks that
/// it is for this node and the new key, and saves the pair. Returns the
/// renewed identity.
pub async fn renew(conn: &quinn::Connection, identity: &Identity) -> anyhow::Result<Identity> {
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .pem()?;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &EdgeRequest::Renew { csr_pem: csr }).await?;
    send.finish()?;
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES),
    )
    .await
    .context("no answer to the renewal within 10 s")??
    .context("the coordinator closed the stream without answering")?;
    let cert_pem = match reply {
        CoordinatorMessage::Renewed { cert_pem } => cert_pem,
        CoordinatorMessage::Error(e) => bail!("the coordinator refused to renew: {}", e.message),
        other => bail!("unexpected answer to a renewal: {other:?}"),
    };
    let der = crate::tls::parse_certs(&cert_pem)?.remove(0);
    let named = protocol::node_cert::node_id(&der);
    if named.as_deref() != Some(identity.info.node_id.as_str()) {
        bail!("the renewed certificate names {named:?}, not this node");
    }
    // The certificate must be for the key we just made (rustls would
    // refuse the pair later; better to refuse it before it is saved).
    let key_der = key.public_key_raw();
    if !contains(&der, key_der) {
        bail!("the renewed certificate is not for the key this node sent");
    }
    let mut renewed = Identity {
        info: identity.info.clone(),
        ca_pem: identity.ca_pem.clone(),
        cert_pem: String::new(),
        key_pem: String::new(),
        dir: identity.dir.clone(),
    };
    renewed.save_renewed(cert_pem, key.serialize_pem())?;
    Ok(renewed)
}

/// Whether `needle` occurs in `haystack` (the SubjectPublicKeyInfo inside
/// the certificate's DER).
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
