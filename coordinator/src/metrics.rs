//! `GET /metrics`: the coordinator's Prometheus metrics, on the API's own
//! listener. Requests are counted by route *template* (axum's
//! `MatchedPath`, never the raw path), method and status class, so the
//! series are bounded by the route table; what is state (the database
//! pool, the build queue, connected edges, the config version) is read when
//! Prometheus scrapes.
//!
//! The API is public, so scrapes are guarded: with `[metrics] token` set,
//! every scrape must carry it as a bearer token; without, only requests
//! from a loopback address that no proxy relayed are answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::app::App;

/// The Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the API's request duration histogram: a
/// cached read in a millisecond up to a large upload.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

type Label = [(&'static str, &'static str); 1];

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The coordinator's registry and its handles.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    db_connections: Gauge,
    db_idle: Gauge,
    /// [queued, building].
    builds: [Gauge; 2],
    edges_connected: Gauge,
    config_version: Gauge,
    blob_bytes_sent: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("outpost_coordinator");
        let requests = Family::<RequestLabels, Counter>::default();
        r.register(
            "http_requests",
            "API and dashboard requests answered, by method, route template and status class",
            requests.clone(),
        );
        let duration: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(duration_histogram);
        r.register(
            "http_request_duration_seconds",
            "Time to a response's head, by method and route template",
            duration.clone(),
        );
        let db_connections = Gauge::default();
        r.register(
            "db_pool_connections",
            "Database connections the pool holds",
            db_connections.clone(),
        );
        let db_idle = Gauge::default();
        r.register(
            "db_pool_idle_connections",
            "Database connections the pool holds idle",
            db_idle.clone(),
        );
        let builds_family = Family::<Label, Gauge>::default();
        let builds =
            ["queued", "building"].map(|s| builds_family.get_or_create(&[("state", s)]).clone());
        r.register(
            "builds",
            "Builds waiting in the queue and building, over every coordinator",
            builds_family,
        );
        let edges_connected = Gauge::default();
        r.register(
            "edges_connected",
            "Edge nodes with a QUIC connection to this coordinator",
            edges_connected.clone(),
        );
        let config_version = Gauge::default();
        r.register(
            "config_version",
            "The newest signed edge config version this coordinator knows",
            config_version.clone(),
        );
        let blob_bytes_sent = Counter::default();
        r.register(
            "blob_sent_bytes",
            "Blob bytes this coordinator sent to edges",
            blob_bytes_sent.clone(),
        );
        Metrics {
            registry: r,
            requests,
            duration,
            db_connections,
            db_idle,
            builds,
            edges_connected,
            config_version,
            blob_bytes_sent,
        }
    }

    /// One request answered. `route` is the matched route's template
    /// (`None`: no route matched, the fallback answered).
    pub fn request(
        &self,
        method: &Method,
        route: Option<&str>,
        status: StatusCode,
        elapsed: std::time::Duration,
    ) {
        let method = method_label(method);
        let route = route.unwrap_or("unmatched").to_string();
        self.duration
            .get_or_create(&RouteLabels {
                method,
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                class: class_label(status),
            })
            .inc();
    }

    /// Reads what is state, then encodes every metric.
    pub async fn scrape(&self, app: &App) -> String {
        let (size, idle) = app.store.pool_connections();
        self.db_connections.set(size.into());
        self.db_idle.set(i64::try_from(idle).unwrap_or(i64::MAX));
        match app.store.build_queue_depth().await {
            Ok((queued, building)) => {
                self.builds[0].set(queued);
                self.builds[1].set(building);
            }
            // The rest is still worth serving; the gauges keep their last
            // reading.
            Err(e) => tracing::warn!(error = %e, "counting builds for the metrics"),
        }
        let edges = app
            .quic
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        self.edges_connected
            .set(i64::try_from(edges).unwrap_or(i64::MAX));
        self.config_version
            .set(i64::try_from(app.hub.version()).unwrap_or(i64::MAX));
        self.blob_bytes_sent.inner().fetch_max(
            app.quic.blob_bytes_sent.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.encode()
    }

    fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }
}

/// Standard methods by name; anything else is one label value, so a client
/// cannot make new series by inventing methods.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn class_label(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The middleware that counts every request of the router it wraps.
pub async fn track(State(app): State<App>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    app.metrics.request(
        &method,
        route.as_ref().map(MatchedPath::as_str),
        resp.status(),
        started.elapsed(),
    );
    resp
}

/// Whether a scrape may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// A token is configured and the request lacks it (401).
    NeedsToken,
    /// No token is configured and the request is not local (403).
    LocalOnly,
}

/// Headers a proxy adds: a request carrying one was relayed, so its TCP
/// peer being loopback says nothing of where it came from.
const FORWARDING_HEADERS: [&str; 3] = ["x-forwarded-for", "forwarded", "x-real-ip"];

/// The rule of the module doc: the configured token, compared in constant
/// time; without one, a loopback peer and no sign of a proxy.
pub fn access(token: Option<&str>, peer: Option<IpAddr>, headers: &HeaderMap) -> Access {
    if let Some(want) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), want.as_bytes()).into();
        return if same {
            Access::Granted
        } else {
            Access::NeedsToken
        };
    }
    let local = peer.is_some_and(|ip| match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    });
    let relayed = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
    if local && !relayed {
        Access::Granted
    } else {
        Access::LocalOnly
    }
}

/// `GET /metrics`.
pub async fn serve(State(app): State<App>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    match access(app.config.metrics.token.as_deref(), peer, req.headers()) {
        Access::Granted => {}
        Access::NeedsToken => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the [metrics] token as a bearer token\n",
            )
                .into_response()
        }
        Access::LocalOnly => return (
            StatusCode::FORBIDDEN,
            "metrics are served to loopback only; set [metrics] token to scrape from elsewhere\n",
        )
            .into_response(),
    }
    let body = app.metrics.scrape(&app).await;
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_scrape() {
        let local4: Option<IpAddr> = Some("127.0.0.1".parse().unwrap());
        let local6: Option<IpAddr> = Some("::1".parse().unwrap());
        let mapped: Option<IpAddr> = Some("::ffff:127.0.0.1".parse().unwrap());
        let remote: Option<IpAddr> = Some("203.0.113.9".parse().unwrap());
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let none = headers(&[]);
        let right = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        let wrong = headers(&[("authorization", "Bearer 0123456789abcdeX")]);
        let prefix = headers(&[("authorization", "Bearer 0123456789abcde")]);
        let basic = headers(&[("authorization", "Basic 0123456789abcdef")]);
        let relayed = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let forwarded = headers(&[("forwarded", "for=203.0.113.9")]);
        let token = Some("0123456789abcdef");
        use Access::*;
        for (token, peer, h, want) in [
            // No token: loopback only, and never through a proxy.
            (None, local4, &none, Granted),
            (None, local6, &none, Granted),
            (None, mapped, &none, Granted),
            (None, remote, &none, LocalOnly),
            (None, None, &none, LocalOnly),
            (None, local4, &relayed, LocalOnly),
            (None, local4, &forwarded, LocalOnly),
            (None, remote, &right, LocalOnly),
            // A token: the token, from anywhere, loopback included.
            (token, remote, &right, Granted),
            (token, local4, &right, Granted),
            (token, local4, &relayed, NeedsToken),
            (token, local4, &none, NeedsToken),
            (token, remote, &wrong, NeedsToken),
            (token, remote, &prefix, NeedsToken),
            (token, remote, &basic, NeedsToken),
        ] {
            assert_eq!(access(token, peer, h), want, "{token:?} {peer:?} {h:?}");
        }
    }

    #[test]
    fn requests_are_counted_by_template_and_class() {
        let m = Metrics::new();
        let ms = std::time::Duration::from_millis(3);
        m.request(
            &Method::GET,
            Some("/api/v1/projects/{project}"),
            StatusCode::OK,
            ms,
        );
        m.request(
            &Method::GET,
            Some("/api/v1/projects/{project}"),
            StatusCode::NOT_FOUND,
            ms,
        );
        m.request(
            &Method::GET,
            Some("/api/v1/projects/{project}"),
            StatusCode::OK,
            ms,
        );
        m.request(
            &Method::from_bytes(b"BREW").unwrap(),
            None,
            StatusCode::NOT_FOUND,
            ms,
        );
        let text = m.encode();
        for line in [
            "outpost_coordinator_http_requests_total{method=\"GET\",route=\"/api/v1/projects/{project}\",class=\"2xx\"} 2",
            "outpost_coordinator_http_requests_total{method=\"GET\",route=\"/api/v1/projects/{project}\",class=\"4xx\"} 1",
            "outpost_coordinator_http_requests_total{method=\"other\",route=\"unmatched\",class=\"4xx\"} 1",
            "outpost_coordinator_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/projects/{project}\",le=\"0.005\"} 3",
            "outpost_coordinator_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/projects/{project}\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }
}
