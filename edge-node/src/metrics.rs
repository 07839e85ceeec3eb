//! The node's Prometheus metrics: one registry of typed handles, served as
//! `GET /metrics` on the `--metrics ADDR` listener (off by default).
//!
//! Names follow Prometheus' conventions (base units, `_total`, `_seconds`,
//! `_bytes`), and no label names a host, a path, a project or a client: every
//! series exists from the start, so what a scrape returns never grows with
//! traffic. The per-request counters are pre-resolved handles (one atomic
//! add each, no label hashing) and the duration histogram is a fixed array of
//! atomic buckets, so the request path takes no lock. What is state rather
//! than an event (config version, mesh members, function instances, blob
//! sources) is copied in by the status loop (`status.rs`), every second and
//! on changes.
//!
//! The listener has no authentication: keep it on loopback or a private
//! network the scraper shares.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What `/metrics` answers with: the Prometheus text format, version 0.0.4
/// (what `promtool check metrics` reads, and every Prometheus scrapes).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the request duration histogram: 0.5 ms for a
/// small file from memory up to 10 s for a slow function or proxy.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Status classes of `outpost_edge_http_requests_total`; `none`: the
/// request ended before a response head was sent.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

type RequestLabels = [(&'static str, &'static str); 3];
type Label = [(&'static str, &'static str); 1];

/// The HTTP version a request came in over (the `proto` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1 = 0,
    H2 = 1,
    H3 = 2,
}

/// The node's metrics. Cheap to share (`Arc`); every method takes `&self`.
pub struct EdgeMetrics {
    registry: Mutex<Registry>,
    /// Indexed by [class][protocol][tls].
    requests: [[[Counter; 2]; 3]; CLASSES.len()],
    response_bytes: Counter,
    duration: DurationHistogram,
    /// [ok, error].
    tls_handshakes: [Counter; 2],
    config_version: Gauge,
    config_lag_versions: Gauge,
    config_applied: Gauge<f64, AtomicU64>,
    /// The version `config_applied` was stamped for.
    applied_version: Mutex<Option<u64>>,
    coordinator_connected: Gauge,
    /// [alive, suspect, down].
    members: [Gauge; 3],
    /// [present, pending].
    bundles: [Gauge; 2],
    /// [peer, coordinator].
    blobs_fetched: [Counter; 2],
    blob_bytes_fetched: [Counter; 2],
    blobs_served_to_peers: Counter,
    instances_in_use: Gauge,
    instances_max: Gauge,
    /// [hit (loaded compiled from the disk cache), miss (compiled here)].
    compile_cache: [Counter; 2],
    spool_records: Gauge,
    spool_bytes: Gauge,
}

/// What the status loop reads of the node for the metrics that are state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeSample {
    pub config_version: u64,
    /// The highest config version a live peer announced (0: none known).
    pub peers_head: u64,
    pub coordinator_link: bool,
    pub members_alive: u64,
    pub members_suspect: u64,
    pub members_down: u64,
    pub bundles_present: u64,
    pub bundles_pending: u64,
    pub blobs_from_peers: u64,
    pub blobs_from_coordinator: u64,
    pub blob_bytes_from_peers: u64,
    pub blob_bytes_from_coordinator: u64,
    pub blobs_served_to_peers: u64,
    pub instances_in_use: u64,
    pub instances_max: u64,
    pub compiled: u64,
    pub loaded_from_cache: u64,
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EdgeMetrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("outpost_edge");
        let requests_family = Family::<RequestLabels, Counter>::default();
        let requests = std::array::from_fn(|class| {
            std::array::from_fn(|proto| {
                std::array::from_fn(|tls| {
                    requests_family
                        .get_or_create(&[
                            ("class", CLASSES[class]),
                            ("proto", ["h1", "h2", "h3"][proto]),
                            ("tls", ["false", "true"][tls]),
                        ])
                        .clone()
                })
            })
        });
        r.register(
            "http_requests",
            "HTTP requests answered, by status class, protocol and TLS",
            requests_family,
        );
        let response_bytes = Counter::default();
        r.register(
            "http_response_body_bytes",
            "Response body bytes sent (content, not wire bytes)",
            response_bytes.clone(),
        );
        let duration = DurationHistogram::default();
        r.register(
            "http_request_duration_seconds",
            "From a request's head read to its response sent",
            duration.clone(),
        );
        let tls_family = Family::<Label, Counter>::default();
        let tls_handshakes =
            ["ok", "error"].map(|v| tls_family.get_or_create(&[("result", v)]).clone());
        r.register(
            "tls_handshakes",
            "TLS handshakes on the HTTPS listener, by result (error includes timeouts)",
            tls_family,
        );
        let config_version = Gauge::default();
        r.register(
            "config_version",
            "The signed config version this node serves",
            config_version.clone(),
        );
        let config_lag_versions = Gauge::default();
        r.register(
            "config_lag_versions",
            "How many versions behind the highest one a live peer announced this node is",
            config_lag_versions.clone(),
        );
        let config_applied = Gauge::<f64, AtomicU64>::default();
        r.register(
            "config_applied_timestamp_seconds",
            "Unix time at which this node applied (or, after a start, restored) its current config version",
            config_applied.clone(),
        );
        let coordinator_connected = Gauge::default();
        r.register(
            "coordinator_connected",
            "1 while the node has a link to its coordinator",
            coordinator_connected.clone(),
        );
        let members_family = Family::<Label, Gauge>::default();
        let members = ["alive", "suspect", "down"]
            .map(|s| members_family.get_or_create(&[("state", s)]).clone());
        r.register(
            "mesh_members",
            "Other mesh members as this node sees them, by state",
            members_family,
        );
        let bundles_family = Family::<Label, Gauge>::default();
        let bundles =
            ["present", "pending"].map(|s| bundles_family.get_or_create(&[("state", s)]).clone());
        r.register(
            "bundles",
            "Eagerly served bundles complete on disk, and still being fetched",
            bundles_family,
        );
        let fetched_family = Family::<Label, Counter>::default();
        let blobs_fetched =
            ["peer", "coordinator"].map(|s| fetched_family.get_or_create(&[("source", s)]).clone());
        r.register(
            "blobs_fetched",
            "Blobs fetched, by where they came from",
            fetched_family,
        );
        let fetched_bytes_family = Family::<Label, Counter>::default();
        let blob_bytes_fetched = ["peer", "coordinator"]
            .map(|s| fetched_bytes_family.get_or_create(&[("source", s)]).clone());
        r.register(
            "blob_fetched_bytes",
            "Bytes of blobs fetched, by where they came from",
            fetched_bytes_family,
        );
        let blobs_served_to_peers = Counter::default();
        r.register(
            "blobs_served_to_peers",
            "Blobs this node sent to peers",
            blobs_served_to_peers.clone(),
        );
        let instances_in_use = Gauge::default();
        r.register(
            "function_instances_in_use",
            "WebAssembly instances running now",
            instances_in_use.clone(),
        );
        let instances_max = Gauge::default();
        r.register(
            "function_instances_max",
            "WebAssembly instances the node runs at once (--max-instances)",
            instances_max.clone(),
        );
        let cache_family = Family::<Label, Counter>::default();
        let compile_cache =
            ["hit", "miss"].map(|s| cache_family.get_or_create(&[("result", s)]).clone());
        r.register(
            "function_compile_cache_lookups",
            "Function components loaded compiled from the disk cache (hit) or compiled here (miss)",
            cache_family,
        );
        let spool_records = Gauge::default();
        r.register(
            "analytics_spool_records",
            "Traffic analytics records waiting in the spool",
            spool_records.clone(),
        );
        let spool_bytes = Gauge::default();
        r.register(
            "analytics_spool_bytes",
            "Bytes of traffic analytics records waiting in the spool",
            spool_bytes.clone(),
        );
        EdgeMetrics {
            registry: Mutex::new(r),
            requests,
            response_bytes,
            duration,
            tls_handshakes,
            config_version,
            config_lag_versions,
            config_applied,
            applied_version: Mutex::new(None),
            coordinator_connected,
            members,
            bundles,
            blobs_fetched,
            blob_bytes_fetched,
            blobs_served_to_peers,
            instances_in_use,
            instances_max,
            compile_cache,
            spool_records,
            spool_bytes,
        }
    }

    /// One request answered: `status` 0 when no response head was sent,
    /// `bytes` of response body, `elapsed` since its head was read. A few
    /// atomic adds; no lock, no allocation.
    #[inline]
    pub fn request(&self, status: u16, bytes: u64, elapsed: Duration, proto: Proto, tls: bool) {
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => CLASSES.len() - 1,
        };
        self.requests[class][proto as usize][usize::from(tls)].inc();
        if bytes > 0 {
            self.response_bytes.inc_by(bytes);
        }
        self.duration.observe(elapsed);
    }

    /// One TLS handshake on the HTTPS listener ended (`ok`: completed).
    #[inline]
    pub fn tls_handshake(&self, ok: bool) {
        self.tls_handshakes[usize::from(!ok)].inc();
    }

    /// What the analytics spool holds now.
    pub fn set_spool(&self, records: u64, bytes: u64) {
        self.spool_records.set(gauge(records));
        self.spool_bytes.set(gauge(bytes));
    }

    /// The status loop's reading of the node's state.
    pub fn observe_node(&self, s: &NodeSample) {
        self.config_version.set(gauge(s.config_version));
        self.config_lag_versions
            .set(gauge(s.peers_head.saturating_sub(s.config_version)));
        {
            let mut applied = self
                .applied_version
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if *applied != Some(s.config_version) {
                *applied = Some(s.config_version);
                self.config_applied.set(unix_now());
            }
        }
        self.coordinator_connected
            .set(i64::from(s.coordinator_link));
        for (g, v) in self
            .members
            .iter()
            .zip([s.members_alive, s.members_suspect, s.members_down])
        {
            g.set(gauge(v));
        }
        self.bundles[0].set(gauge(s.bundles_present));
        self.bundles[1].set(gauge(s.bundles_pending));
        // The sources count since the node started, as a counter does;
        // `fetch_max` keeps the counter monotonic whatever the order.
        let advance = |c: &Counter, v: u64| {
            c.inner().fetch_max(v, Ordering::Relaxed);
        };
        advance(&self.blobs_fetched[0], s.blobs_from_peers);
        advance(&self.blobs_fetched[1], s.blobs_from_coordinator);
        advance(&self.blob_bytes_fetched[0], s.blob_bytes_from_peers);
        advance(&self.blob_bytes_fetched[1], s.blob_bytes_from_coordinator);
        advance(&self.blobs_served_to_peers, s.blobs_served_to_peers);
        advance(&self.compile_cache[0], s.loaded_from_cache);
        advance(&self.compile_cache[1], s.compiled);
        self.instances_in_use.set(gauge(s.instances_in_use));
        self.instances_max.set(gauge(s.instances_max));
    }

    /// Adds a metric of another part of the node; `name` gets the
    /// `outpost_edge_` prefix (a counter's name without `_total`, which the
    /// encoder adds). Keep its labels bounded: no hosts, paths or tenants.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .register(name, help, metric);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String does not fail");
        out
    }
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A histogram of durations over [`DURATION_BUCKETS`] whose `observe` is two
/// atomic adds (prometheus-client's `Histogram` takes a lock per
/// observation). The sum is kept in nanoseconds.
#[derive(Clone, Default)]
struct DurationHistogram(Arc<DurationBuckets>);

#[derive(Default)]
struct DurationBuckets {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl std::fmt::Debug for DurationHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurationHistogram").finish_non_exhaustive()
    }
}

impl DurationHistogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = DURATION_BUCKETS.partition_point(|&upper| upper < secs);
        self.0.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl EncodeMetric for DurationHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0); DURATION_BUCKETS.len() + 1];
        let mut count = 0;
        for (i, b) in buckets.iter_mut().enumerate() {
            let n = self.0.counts[i].load(Ordering::Relaxed);
            *b = (DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n);
            count += n;
        }
        let sum = self.0.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        // The count is the buckets' sum, so `_count` and `+Inf` agree even
        // while requests are being recorded.
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Connections the metrics listener serves at once; more are closed.
const MAX_CONNECTIONS: usize = 16;
/// A scraper has this long to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `GET /metrics` (404 elsewhere, 405 for other methods) over
/// HTTP/1.1 until shutdown, without authentication.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<EdgeMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a metrics connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if conns.len() >= MAX_CONNECTIONS {
            // A scraper tries again at its next interval.
            tracing::debug!(%peer, "too many metrics connections; closing");
            continue;
        }
        let metrics = metrics.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(answer(&metrics, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "metrics connection ended");
            }
        });
    }
    // A scrape is a few milliseconds: nothing is worth waiting for.
    conns.shutdown().await;
}

fn answer<B>(metrics: &EdgeMetrics, req: &Request<B>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    let mut r = Response::new(Full::new(Bytes::from(metrics.encode())));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(CONTENT_TYPE),
    );
    r
}

/// Binds the metrics listener; an address off loopback is allowed (the
/// operator named it) but said out loud, since nothing guards it.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen for metrics on {addr}: {e}. Is the port taken? Choose another with --metrics.")
    })?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "metrics are served without authentication on a non-loopback address: keep it reachable only by your scraper"
        );
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find(|l| l.split_once(' ').is_some_and(|(name, _)| name == series))
            .and_then(|l| l.split_once(' ').map(|(_, v)| v))
    }

    #[test]
    fn requests_land_in_their_class_protocol_and_tls_series() {
        let m = EdgeMetrics::new();
        m.request(200, 100, Duration::from_micros(300), Proto::H1, false);
        m.request(204, 0, Duration::from_millis(3), Proto::H2, true);
        m.request(404, 10, Duration::from_millis(30), Proto::H1, true);
        m.request(503, 5, Duration::from_secs(20), Proto::H2, true);
        m.request(0, 0, Duration::from_millis(1), Proto::H1, false);
        m.request(999, 0, Duration::from_millis(1), Proto::H1, false);
        m.request(200, 0, Duration::from_millis(1), Proto::H3, true);
        let text = m.encode();
        let get = |s: &str| line(&text, s).unwrap_or_else(|| panic!("{s} missing:\n{text}"));
        let req = |class: &str, proto: &str, tls: &str| {
            get(&format!(
                "outpost_edge_http_requests_total{{class=\"{class}\",proto=\"{proto}\",tls=\"{tls}\"}}"
            ))
            .to_string()
        };
        assert_eq!(req("2xx", "h1", "false"), "1");
        assert_eq!(req("2xx", "h2", "true"), "1");
        assert_eq!(req("4xx", "h1", "true"), "1");
        assert_eq!(req("5xx", "h2", "true"), "1");
        assert_eq!(req("2xx", "h3", "true"), "1");
        assert_eq!(req("none", "h1", "false"), "2");
        assert_eq!(
            req("3xx", "h2", "false"),
            "0",
            "every series exists from the start"
        );
        assert_eq!(get("outpost_edge_http_response_body_bytes_total"), "115");
        let bucket = |le: &str| {
            get(&format!(
                "outpost_edge_http_request_duration_seconds_bucket{{le=\"{le}\"}}"
            ))
            .to_string()
        };
        assert_eq!(bucket("0.0005"), "1");
        assert_eq!(bucket("0.001"), "4");
        assert_eq!(bucket("0.005"), "5");
        assert_eq!(bucket("0.05"), "6");
        assert_eq!(bucket("10"), "6");
        assert_eq!(bucket("+Inf"), "7");
        assert_eq!(get("outpost_edge_http_request_duration_seconds_count"), "7");
        let sum: f64 = get("outpost_edge_http_request_duration_seconds_sum")
            .parse()
            .unwrap();
        assert!((sum - 20.0363).abs() < 1e-6, "{sum}");
        assert!(text.contains("# TYPE outpost_edge_http_request_duration_seconds histogram"));
    }

    #[test]
    fn state_comes_from_the_status_loop_and_counters_never_go_back() {
        let m = EdgeMetrics::new();
        let mut s = NodeSample {
            config_version: 7,
            peers_head: 9,
            coordinator_link: true,
            members_alive: 2,
            members_down: 1,
            blob_bytes_from_peers: 1000,
            blobs_from_peers: 2,
            compiled: 3,
            loaded_from_cache: 4,
            instances_in_use: 1,
            instances_max: 64,
            ..Default::default()
        };
        m.observe_node(&s);
        m.set_spool(12, 3456);
        m.tls_handshake(true);
        m.tls_handshake(false);
        let text = m.encode();
        for (series, want) in [
            ("outpost_edge_config_version", "7"),
            ("outpost_edge_config_lag_versions", "2"),
            ("outpost_edge_coordinator_connected", "1"),
            ("outpost_edge_mesh_members{state=\"alive\"}", "2"),
            ("outpost_edge_mesh_members{state=\"suspect\"}", "0"),
            ("outpost_edge_mesh_members{state=\"down\"}", "1"),
            (
                "outpost_edge_blob_fetched_bytes_total{source=\"peer\"}",
                "1000",
            ),
            ("outpost_edge_blobs_fetched_total{source=\"peer\"}", "2"),
            (
                "outpost_edge_blobs_fetched_total{source=\"coordinator\"}",
                "0",
            ),
            (
                "outpost_edge_function_compile_cache_lookups_total{result=\"hit\"}",
                "4",
            ),
            (
                "outpost_edge_function_compile_cache_lookups_total{result=\"miss\"}",
                "3",
            ),
            ("outpost_edge_function_instances_in_use", "1"),
            ("outpost_edge_function_instances_max", "64"),
            ("outpost_edge_analytics_spool_records", "12"),
            ("outpost_edge_analytics_spool_bytes", "3456"),
            ("outpost_edge_tls_handshakes_total{result=\"ok\"}", "1"),
            ("outpost_edge_tls_handshakes_total{result=\"error\"}", "1"),
        ] {
            assert_eq!(line(&text, series), Some(want), "{series}:\n{text}");
        }
        let stamped: f64 = line(&text, "outpost_edge_config_applied_timestamp_seconds")
            .unwrap()
            .parse()
            .unwrap();
        assert!(stamped > 1.6e9, "{stamped}");
        // A node ahead of its peers has no lag; a source read lower than
        // before (never, but) does not move a counter back.
        s.config_version = 10;
        s.blob_bytes_from_peers = 10;
        m.observe_node(&s);
        let text = m.encode();
        assert_eq!(line(&text, "outpost_edge_config_lag_versions"), Some("0"));
        assert_eq!(
            line(
                &text,
                "outpost_edge_blob_fetched_bytes_total{source=\"peer\"}"
            ),
            Some("1000")
        );
    }

    #[test]
    fn other_parts_register_their_own_metrics() {
        let m = EdgeMetrics::new();
        let g: Gauge = Gauge::default();
        m.register("widgets", "Widgets", g.clone());
        g.set(3);
        assert_eq!(line(&m.encode(), "outpost_edge_widgets"), Some("3"));
    }

    #[tokio::test]
    async fn the_listener_serves_metrics_and_nothing_else() {
        let m = Arc::new(EdgeMetrics::new());
        m.request(200, 1, Duration::from_millis(1), Proto::H1, false);
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, m, rx));
        let get = |method: &'static str, path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("GET", "/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE), "{ok}");
        assert!(
            ok.contains(
                "outpost_edge_http_requests_total{class=\"2xx\",proto=\"h1\",tls=\"false\"} 1"
            ),
            "{ok}"
        );
        assert!(get("GET", "/").await.starts_with("HTTP/1.1 404"));
        assert!(get("GET", "/metrics/x").await.starts_with("HTTP/1.1 404"));
        let post = get("POST", "/metrics").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the listener stops on shutdown")
            .unwrap();
    }
}
