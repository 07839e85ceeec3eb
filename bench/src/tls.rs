//! `bench tls`: full TLS 1.3 handshakes per second (no session resumption,
//! a new TCP connection each) of an edge node serving a custom domain with
//! the ECDSA P-256 certificate its coordinator got through ACME (from
//! Pebble, the test CA), against nginx given the very same certificate and
//! key, side by side in one run, in alternating rounds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde::Serialize;
use test_support::acme::{PebbleOptions, TestPebble};
use test_support::cluster::{Coordinator, Edge};
use test_support::dns::{free_port, TestDns};

use crate::nginx::Nginx;
use crate::pin::{self, Split};

const HOST: &str = "tls.bench.test";
/// The edge listens here, as one host of a fleet would.
const EDGE_IP: &str = "127.0.0.2";

pub struct Plan {
    pub concurrency: usize,
    pub duration: Duration,
    pub timeout: Duration,
    pub pin: bool,
}

#[derive(Debug, Serialize)]
pub struct Side {
    pub handshakes_per_s: f64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Handshakes per second of each round.
    pub rounds: Vec<f64>,
}

#[derive(Debug, Serialize)]
pub struct TlsReport {
    pub key: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub pinned: Option<Split>,
    pub edge: Side,
    pub nginx: Side,
    /// Edge over nginx, over the whole run and per round.
    pub ratio: f64,
    pub ratio_rounds: Vec<f64>,
}

struct Tally {
    done: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
}

/// Full handshakes against `addr` for `duration`, `concurrency` at a time.
async fn handshakes(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    concurrency: usize,
    duration: Duration,
) -> Tally {
    let connector = tokio_rustls::TlsConnector::from(tls);
    let name = rustls::pki_types::ServerName::try_from(HOST).expect("a DNS name");
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (connector, name, errors) = (connector.clone(), name.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3).expect("histogram");
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = async {
                    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
                    let _ = tcp.set_nodelay(true);
                    connector.connect(name.clone(), tcp).await.ok()
                }
                .await;
                match ok {
                    Some(stream) => {
                        let _ = h.record(t.elapsed().as_micros() as u64);
                        drop(stream);
                    }
                    None => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            h
        }));
    }
    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = latency.add(&h);
        }
    }
    Tally {
        done: latency.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
        latency,
    }
}

/// A client that resumes nothing: every connection is a full handshake.
fn client(root_pem: &str) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut root_pem.as_bytes()) {
        roots.add(c?)?;
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Every process under `pid` (nginx's workers).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            out.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    out
}

fn port_free_on(ip: &str) -> u16 {
    loop {
        let p = free_port();
        if std::net::TcpListener::bind((ip.parse::<std::net::Ipv4Addr>().expect("ip"), p)).is_ok() {
            return p;
        }
    }
}

pub async fn run(
    bins: &Path,
    plan: &Plan,
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<TlsReport> {
    let root = tempfile::tempdir()?;
    let dir = root.path();
    bar.set_message("tls: starting DNS, Pebble, a coordinator and an edge");
    let dns = TestDns::start(&dir.join("dns")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (http_port, https_port) = (port_free_on(EDGE_IP), port_free_on(EDGE_IP));
    let pebble = TestPebble::start(
        &dir.join("pebble"),
        &PebbleOptions {
            http_port,
            tls_port: https_port,
            dns: dns.dns,
            validity_secs: None,
            va_sleep_secs: None,
            blocklist: Vec::new(),
        },
    )
    .map_err(|e| anyhow::anyhow!("{e} (apt-get install pebble)"))?;
    pebble.ready().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = format!(
        "[domains]\napex_addresses = [\"{EDGE_IP}\"]\nresolver = \"{}\"\nrecheck_every = \"1s\"\n\
         [acme]\ndirectory = \"{}\"\nca_file = \"{}\"\nchallenges = [\"http-01\"]\n",
        dns.dns,
        pebble.directory,
        pebble.ca_file.display()
    );
    let bins = test_support::cluster::Bins::in_dir(bins);
    let coord_dir = dir.join("coord");
    let coord = Coordinator::launch(
        &bins,
        &coord_dir,
        Some(&config),
        "127.0.0.1:0",
        &[("RUST_LOG", "warn")],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let edge = Edge::launch_join_on(
        &coord,
        "local",
        &dir.join("edge"),
        &format!("{EDGE_IP}:{http_port}"),
        &format!("{EDGE_IP}:{https_port}"),
        &[],
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let site = dir.join("site");
    std::fs::create_dir_all(&site)?;
    std::fs::write(site.join("index.html"), "<h1>tls</h1>")?;
    coord.deploy(&site, "tls", true);
    dns.set_a(HOST, &[EDGE_IP]).await;
    coord
        .try_cli(&["domains", "add", HOST, "--project", "tls"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    bar.set_message("tls: waiting for the certificate");
    let pebble_root = pebble.root().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let tls = client(&pebble_root)?;
    let started = Instant::now();
    loop {
        let t = handshakes(edge.https, tls.clone(), 1, Duration::from_millis(1)).await;
        if t.done > 0 {
            break;
        }
        if started.elapsed() > plan.timeout {
            bail!(
                "the edge had no certificate for {HOST} within {:?}",
                plan.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The same certificate and key for nginx, read as the coordinator
    // stores them (the key sealed with its instance key).
    let store =
        coordinator::store::Store::connect(&coordinator::config::default_sqlite_url(&coord_dir))
            .await?;
    let cert = store
        .domain_cert(HOST)
        .await?
        .context("no certificate row")?;
    let secrets = coordinator::secrets::SecretBox::load_or_create(&coord_dir.join("secret.key"))?;
    let key_pem = secrets.open(cert.key_enc.as_deref().context("no key")?)?;
    let chain_pem = cert.chain_pem.context("no chain")?;
    let key = rcgen::KeyPair::from_pem(&key_pem)?;
    anyhow::ensure!(
        key.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256,
        "the issued key is not ECDSA P-256"
    );
    let nginx = Nginx::start(&dir.join("nginx"), &site, &chain_pem, &key_pem)?;

    let (allowed, pinned) = pin::split_if(plan.pin);
    if let Some(split) = &pinned {
        for pid in [edge.proc.child.id()]
            .into_iter()
            .chain(descendants(nginx.pid()))
        {
            pin::pin_process(pid, &split.servers)?;
        }
        pin::pin_process(std::process::id(), &split.load)?;
    }
    let rounds = (plan.duration.as_secs() / 2).clamp(2, 10) as usize;
    let slice = plan.duration / rounds as u32;
    let (mut e_tally, mut n_tally) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        bar.set_message(format!("tls: round {}/{rounds}", round + 1));
        let order: [(bool, SocketAddr); 2] = if round % 2 == 0 {
            [(true, edge.https), (false, nginx.https)]
        } else {
            [(false, nginx.https), (true, edge.https)]
        };
        for (is_edge, addr) in order {
            let t = handshakes(addr, tls.clone(), plan.concurrency, slice).await;
            if is_edge {
                e_tally.push(t);
            } else {
                n_tally.push(t);
            }
        }
    }
    if let (Some(_), Some(all)) = (&pinned, &allowed) {
        pin::pin_process(std::process::id(), all)?;
    }
    let side = |ts: &[Tally]| {
        let mut h = Histogram::<u64>::new(3).expect("histogram");
        let (mut done, mut errors, mut secs) = (0u64, 0u64, 0f64);
        let mut rounds = Vec::new();
        for t in ts {
            let _ = h.add(&t.latency);
            done += t.done;
            errors += t.errors;
            secs += t.elapsed.as_secs_f64();
            rounds.push(t.done as f64 / t.elapsed.as_secs_f64());
        }
        Side {
            handshakes_per_s: done as f64 / secs.max(1e-9),
            errors,
            p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            rounds,
        }
    };
    let (edge_side, nginx_side) = (side(&e_tally), side(&n_tally));
    let ratio_rounds = edge_side
        .rounds
        .iter()
        .zip(&nginx_side.rounds)
        .map(|(e, n)| e / n.max(1e-9))
        .collect();
    drop(edge);
    drop(coord);
    Ok(TlsReport {
        key: "ECDSA P-256 (issued through ACME by Pebble)".into(),
        concurrency: plan.concurrency,
        seconds: plan.duration.as_secs_f64(),
        pinned,
        ratio: edge_side.handshakes_per_s / nginx_side.handshakes_per_s.max(1e-9),
        ratio_rounds,
        edge: edge_side,
        nginx: nginx_side,
    })
}

pub fn md(r: &TlsReport) -> String {
    let mut s = format!(
        "Full TLS 1.3 handshakes (no resumption, a new connection each), {} at a time for {:.0} s, \
         certificate {}; servers {}.\n\n\
         | server | handshakes/s | errors | p50 ms | p99 ms | per round |\n|---|---|---|---|---|---|\n",
        r.concurrency,
        r.seconds,
        r.key,
        match &r.pinned {
            Some(p) => format!("on CPUs {:?}, the client on {:?}", p.servers, p.load),
            None => "and client sharing every CPU".into(),
        }
    );
    for (who, side) in [("edge", &r.edge), ("nginx", &r.nginx)] {
        s.push_str(&format!(
            "| {who} | {:.0} | {} | {:.2} | {:.2} | {} |\n",
            side.handshakes_per_s,
            side.errors,
            side.p50_ms,
            side.p99_ms,
            side.rounds
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s.push_str(&format!(
        "\nedge / nginx: **{:.2}** (rounds: {})\n",
        r.ratio,
        r.ratio_rounds
            .iter()
            .map(|v| format!("{v:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    s
}
