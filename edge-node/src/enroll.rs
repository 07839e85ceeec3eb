//! `edge-node join`: trade a one-time join token for a node certificate.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::token::JoinToken;
use protocol::wire::{
    CoordinatorMessage, EdgeRequest, JoinRequest, COORDINATOR_NAME, MAX_CONTROL_FRAME_BYTES,
};

use crate::identity::{Identity, NodeInfo};
use crate::tls;

pub struct JoinOptions<'a> {
    pub coordinator: &'a str,
    pub token: &'a str,
    pub name: &'a str,
    pub region: &'a str,
    pub data_dir: &'a Path,
    pub http_addr: Option<String>,
    pub https_addr: Option<String>,
    pub mesh_addr: Option<String>,
    pub advertise_addr: Option<String>,
}

pub async fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("resolving coordinator address {addr:?} (expected host:port)"))?
        .next()
        .with_context(|| format!("coordinator address {addr:?} resolves to nothing"))
}

pub fn client_endpoint(peer: SocketAddr) -> anyhow::Result<quinn::Endpoint> {
    let bind: SocketAddr = if peer.is_ipv6() {
        "[::]:0".parse()?
    } else {
        "0.0.0.0:0".parse()?
    };
    Ok(quinn::Endpoint::client(bind)?)
}

pub async fn join(opts: JoinOptions<'_>) -> anyhow::Result<Identity> {
    if Identity::exists(opts.data_dir) {
        bail!(
            "{} already holds a node identity; use `edge-node run --data-dir {}` or pick an empty directory",
            opts.data_dir.display(),
            opts.data_dir.display()
        );
    }
    let token = JoinToken::parse(opts.token)?;
    let addr = resolve(opts.coordinator).await?;
    let key = rcgen::KeyPair::generate()?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())?
        .serialize_request(&key)?
        .pem()?;

    let endpoint = client_endpoint(addr)?;
    let conn = endpoint
        .connect_with(
            tls::join_client_config(&token.ca_fingerprint)?,
            addr,
            COORDINATOR_NAME,
        )?
        .await
        .with_context(|| format!("connecting to the coordinator at {addr}"))?;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(
        &mut send,
        &EdgeRequest::Join(JoinRequest {
            token: token.to_string(),
            csr_pem: csr,
            name: opts.name.to_string(),
            region: opts.region.to_string(),
            software_version: env!("CARGO_PKG_VERSION").to_string(),
        }),
    )
    .await?;
    send.finish()?;
    let reply = read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES)
        .await?
        .context("the coordinator closed the stream without answering")?;
    conn.close(0u32.into(), b"joined");
    endpoint.wait_idle().await;
    let joined = match reply {
        CoordinatorMessage::Joined(j) => j,
        CoordinatorMessage::Error(e) => {
            bail!("the coordinator refused to enrol this node: {}", e.message)
        }
        other => bail!("unexpected answer to join: {other:?}"),
    };
    protocol::signing::ConfigVerifier::from_hex(&joined.config_key)
        .context("the coordinator sent an unusable config key")?;
    let ca = tls::parse_certs(&joined.ca_pem)?;
    if tls::fingerprint(&ca[0]) != token.ca_fingerprint {
        bail!("the CA sent by the coordinator does not match the join token");
    }
    let identity = Identity {
        info: NodeInfo {
            node_id: joined.node_id,
            name: opts.name.to_string(),
            region: opts.region.to_string(),
            coordinator: opts.coordinator.to_string(),
            coordinator_name: joined.coordinator_name,
            http_addr: opts.http_addr,
            https_addr: opts.https_addr,
            mesh_addr: opts.mesh_addr,
            advertise_addr: opts.advertise_addr,
            config_key: joined.config_key,
        },
        ca_pem: joined.ca_pem,
        cert_pem: joined.cert_pem,
        key_pem: key.serialize_pem(),
        dir: opts.data_dir.to_path_buf(),
    };
    identity.save()?;
    Ok(identity)
}
