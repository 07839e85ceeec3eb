//! The built-in load generator: keep-alive HTTP/1.1 (plain or TLS),
//! HTTP/2 (TLS) and HTTP/3 (QUIC), closed-loop at a fixed concurrency or
//! open-loop at a constant rate. In constant-rate mode latency is measured
//! from when a request *should* have been sent, so a stalled server is
//! charged for the requests it delayed (no coordinated omission).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, Bytes};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// HTTP/1.1 over TCP.
    H1,
    /// HTTP/1.1 over TLS.
    H1s,
    /// HTTP/2 over TLS.
    H2,
    /// HTTP/3 over QUIC (UDP to the HTTPS port's address; TLS 1.3, ALPN
    /// `h3`), one QUIC connection (and one UDP socket) per connection of
    /// the load.
    H3,
}

impl Proto {
    pub fn tls(self) -> bool {
        !matches!(self, Proto::H1)
    }

    /// For reports: `HTTP/1.1`, `HTTP/1.1 over TLS`, `HTTP/2`, `HTTP/3`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::H1 => "HTTP/1.1",
            Proto::H1s => "HTTP/1.1 over TLS",
            Proto::H2 => "HTTP/2",
            Proto::H3 => "HTTP/3",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub enum Mode {
    /// `n` connections, each sending the next request when the last ends.
    Concurrency(usize),
    /// `rate` requests per second spread over `conns` connections.
    Rate { rate: u64, conns: usize },
}

#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Host header / SNI / :authority.
    pub host: String,
    pub path: String,
    pub proto: Proto,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// A `User-Agent` to send (a browser's, where analytics should count
    /// the request as a visitor's); none by default.
    pub user_agent: Option<http::HeaderValue>,
    /// The status every response must have; `None`: any 2xx.
    pub expect: Option<u16>,
}

impl Target {
    fn answered(&self, status: http::StatusCode) -> bool {
        match self.expect {
            Some(s) => status.as_u16() == s,
            None => status.is_success(),
        }
    }
}

/// Latencies in microseconds.
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Nothing yet, over `elapsed`.
    pub fn empty(elapsed: Duration) -> LoadResult {
        LoadResult {
            requests: 0,
            errors: 0,
            elapsed,
            latency: histogram(),
        }
    }

    /// Adds another result: requests, errors and time summed, latencies
    /// merged.
    pub fn absorb(&mut self, other: &LoadResult) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latency.add(&other.latency)?;
        Ok(())
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// How long an HTTP/3 connection may take to set up (a TCP connect to a
/// closed port fails at once; QUIC to a silent one waits).
const H3_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
    /// The request sender, and the connection it sends on (held only to
    /// be closed when the sender is dropped).
    H3 {
        send: test_support::h3::SendRequest,
        _client: Box<test_support::h3::H3Client>,
    },
}

async fn connect(t: &Target) -> anyhow::Result<Sender> {
    if t.proto == Proto::H3 {
        let tls = t
            .tls
            .as_ref()
            .context("TLS target without a client config")?;
        let client =
            test_support::h3::H3Client::connect_with(t.addr, &t.host, tls, H3_CONNECT_TIMEOUT)
                .await?;
        return Ok(Sender::H3 {
            send: client.sender(),
            _client: Box::new(client),
        });
    }
    let tcp = tokio::net::TcpStream::connect(t.addr)
        .await
        .with_context(|| format!("connecting to {}", t.addr))?;
    tcp.set_nodelay(true)?;
    if !t.proto.tls() {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        return Ok(Sender::H1(send));
    }
    let mut cfg = rustls::ClientConfig::clone(
        t.tls
            .as_ref()
            .context("TLS target without a client config")?,
    );
    cfg.alpn_protocols = vec![if t.proto == Proto::H2 {
        b"h2".to_vec()
    } else {
        b"http/1.1".to_vec()
    }];
    let name = rustls::pki_types::ServerName::try_from(t.host.clone())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await?;
    if t.proto == Proto::H2 {
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            bail!("{} did not negotiate HTTP/2", t.addr);
        }
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Sender::H2(send))
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Sender::H1(send))
    }
}

/// One request, body read to the end. `Ok(false)`: not the status the
/// target expects.
async fn request(s: &mut Sender, t: &Target) -> anyhow::Result<bool> {
    let scheme = if t.proto.tls() { "https" } else { "http" };
    let req = http::Request::get(match s {
        Sender::H1(_) => t.path.clone(),
        Sender::H2(_) | Sender::H3 { .. } => format!("{scheme}://{}{}", t.host, t.path),
    });
    let req = match s {
        Sender::H1(_) => req.header(http::header::HOST, &t.host),
        Sender::H2(_) | Sender::H3 { .. } => req,
    };
    let req = match &t.user_agent {
        Some(ua) => req.header(http::header::USER_AGENT, ua.clone()),
        None => req,
    };
    let resp = match s {
        Sender::H1(s) => {
            s.ready().await?;
            s.send_request(req.body(Empty::<Bytes>::new())?).await?
        }
        Sender::H2(s) => {
            s.ready().await?;
            s.send_request(req.body(Empty::<Bytes>::new())?).await?
        }
        Sender::H3 { send: s, .. } => {
            let mut stream = s.send_request(req.body(())?).await?;
            stream.finish().await?;
            let ok = t.answered(stream.recv_response().await?.status());
            while let Some(mut chunk) = stream.recv_data().await? {
                chunk.advance(chunk.remaining());
            }
            return Ok(ok);
        }
    };
    let ok = t.answered(resp.status());
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        frame?;
    }
    Ok(ok)
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Drives `target` for `duration`. Connection failures mid-run count as
/// errors and the connection is re-established.
pub async fn run(target: &Target, mode: Mode, duration: Duration) -> anyhow::Result<LoadResult> {
    let mut windows = run_windows(target, mode, duration, duration).await?;
    Ok(windows.remove(0))
}

/// [`run`], with the results split into consecutive windows of `window`
/// (the last one may be shorter), by when each request was (to be) sent.
pub async fn run_windows(
    target: &Target,
    mode: Mode,
    duration: Duration,
    window: Duration,
) -> anyhow::Result<Vec<LoadResult>> {
    anyhow::ensure!(!window.is_zero(), "a window must be longer than zero");
    let count = duration.as_nanos().div_ceil(window.as_nanos()).max(1) as usize;
    // Fail early and clearly if the target does not answer at all.
    let mut probe = connect(target).await?;
    anyhow::ensure!(
        request(&mut probe, target).await?,
        "{}{} does not answer {}",
        target.host,
        target.path,
        target.expect.map_or("2xx".to_string(), |s| s.to_string())
    );
    drop(probe);

    let started = Instant::now();
    let deadline = started + duration;
    let (conns, interval) = match mode {
        Mode::Concurrency(n) => (n, None),
        Mode::Rate { rate, conns } => {
            anyhow::ensure!(
                rate > 0 && conns > 0,
                "rate and connections must be positive"
            );
            (
                conns,
                Some(Duration::from_secs_f64(conns as f64 / rate as f64)),
            )
        }
    };
    let tasks = (0..conns).map(|i| {
        let t = target.clone();
        async move {
            let mut windows: Vec<(u64, u64, Histogram<u64>)> =
                (0..count).map(|_| (0, 0, histogram())).collect();
            let slot = |at: Instant| {
                ((at.saturating_duration_since(started).as_nanos() / window.as_nanos()) as usize)
                    .min(count - 1)
            };
            let mut sender = None;
            // Task i sends the requests scheduled at start + (i + k*conns)/rate.
            let mut intended = interval.map(|iv| started + iv.mul_f64(i as f64 / conns as f64));
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let t0 = match intended {
                    Some(at) => {
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => now,
                };
                let (n, errors, hist) = &mut windows[slot(t0)];
                if sender.is_none() {
                    match connect(&t).await {
                        Ok(s) => sender = Some(s),
                        Err(_) => {
                            *errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                match request(sender.as_mut().unwrap(), &t).await {
                    Ok(true) => {
                        *n += 1;
                        let us = t0.elapsed().as_micros().clamp(1, 60_000_000) as u64;
                        let _ = hist.record(us);
                    }
                    Ok(false) => *errors += 1,
                    Err(_) => {
                        *errors += 1;
                        sender = None;
                    }
                }
                if let (Some(at), Some(iv)) = (intended.as_mut(), interval) {
                    *at += iv;
                }
            }
            windows
        }
    });
    let mut total: Vec<LoadResult> = (0..count).map(|_| LoadResult::empty(window)).collect();
    // One task per connection, so the generator uses every core.
    let handles: Vec<_> = tasks.map(tokio::spawn).collect();
    for h in handles {
        for (total, (n, e, h)) in total.iter_mut().zip(h.await?) {
            total.requests += n;
            total.errors += e;
            total.latency.add(&h)?;
        }
    }
    if let Some(last) = total.last_mut() {
        last.elapsed = started
            .elapsed()
            .saturating_sub(window * (count as u32 - 1));
    }
    Ok(total)
}

/// Two sides measured in turns: each side's runs summed, and the median
/// of the rounds' own side 0 / side 1 req/s ratios.
pub struct Turns {
    pub sides: [LoadResult; 2],
    pub median_ratio: f64,
}

/// Runs `run(0)` and `run(1)` `rounds` times each, who goes first
/// alternating: on a VM whose speed drifts by tens of percent within a
/// minute, one long run per side would compare two moments more than two
/// servers.
pub async fn take_turns<F, Fut>(rounds: usize, mut run: F) -> anyhow::Result<Turns>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<LoadResult>>,
{
    anyhow::ensure!(rounds > 0, "at least one round");
    let mut sides = [
        LoadResult::empty(Duration::ZERO),
        LoadResult::empty(Duration::ZERO),
    ];
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut rps = [0.0; 2];
        for which in order {
            let r = run(which).await?;
            rps[which] = r.rps();
            sides[which].absorb(&r)?;
        }
        ratios.push(rps[0] / rps[1]);
    }
    ratios.sort_by(f64::total_cmp);
    Ok(Turns {
        sides,
        median_ratio: ratios[ratios.len() / 2],
    })
}
