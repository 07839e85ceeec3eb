//! Per-function counters and latency histograms, and node-wide runtime
//! statistics. Snapshots are plain data for the analytics work; a summary
//! is logged periodically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use protocol::BlobHash;

/// Latencies are recorded in microseconds, 1 µs … 10 min, 2 significant
/// digits (≈ 1% error, a few KiB per histogram).
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("static bounds are valid")
}

/// Percentiles of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// One function's numbers since the node started (or since the function
/// was last seen, if it was evicted while idle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionMetrics {
    pub project: String,
    pub route: String,
    pub component: BlobHash,
    /// Requests that ran the function (admitted past the limits).
    pub invocations: u64,
    /// Of those, the ones that ended in a 5xx (the function's own or ours:
    /// trap, timeout, memory) or were cut off mid-response.
    pub errors: u64,
    /// Requests turned away before running: saturated (503) or a body over
    /// the limit (413).
    pub rejected: u64,
    pub latency: LatencySummary,
}

/// How a request ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Rejected,
}

pub(crate) struct FunctionCounters {
    inner: Mutex<CountersInner>,
}

struct CountersInner {
    invocations: u64,
    errors: u64,
    rejected: u64,
    latency: Histogram<u64>,
    /// Invocations at the last periodic log line.
    logged_invocations: u64,
}

impl FunctionCounters {
    pub fn new() -> Self {
        FunctionCounters {
            inner: Mutex::new(CountersInner {
                invocations: 0,
                errors: 0,
                rejected: 0,
                latency: histogram(),
                logged_invocations: 0,
            }),
        }
    }

    pub fn record(&self, outcome: Outcome, elapsed: Duration) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Outcome::Rejected => {
                c.rejected += 1;
                return;
            }
            Outcome::Error => c.errors += 1,
            Outcome::Ok => {}
        }
        c.invocations += 1;
        c.latency
            .saturating_record(elapsed.as_micros().max(1) as u64);
    }

    pub fn snapshot(&self, project: &str, route: &str, component: BlobHash) -> FunctionMetrics {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        FunctionMetrics {
            project: project.to_string(),
            route: route.to_string(),
            component,
            invocations: c.invocations,
            errors: c.errors,
            rejected: c.rejected,
            latency: LatencySummary::of(&c.latency),
        }
    }

    /// True (once) when there were invocations since the last call.
    pub fn take_log_due(&self) -> bool {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let due = c.invocations != c.logged_invocations;
        c.logged_invocations = c.invocations;
        due
    }
}

/// Node-wide numbers of the function runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Components compiled from their `.wasm` on this node.
    pub compiled: u64,
    /// Components loaded from the on-disk compiled cache (no compilation).
    pub loaded_from_cache: u64,
    /// Components that failed to load (invalid, or not a wasi:http proxy).
    pub load_failures: u64,
    /// Instances created (one per admitted request).
    pub instantiations: u64,
    /// Time to instantiate from the cached `ProxyPre`, sampled: one
    /// instantiation in 8 is timed (`count` is the number of samples).
    pub instantiate: LatencySummary,
    /// Turned away with 503: node or function concurrency saturated.
    pub rejected_busy: u64,
    /// Turned away with 413.
    pub rejected_too_large: u64,
    pub timeouts: u64,
    pub traps: u64,
    pub memory_exceeded: u64,
    /// Log records dropped because the log channel was full.
    pub logs_dropped: u64,
    /// `ProxyPre`s held in memory.
    pub cached_components: usize,
    /// Instances running now.
    pub in_flight: usize,
}

#[derive(Default)]
pub(crate) struct StatCounters {
    pub compiled: AtomicU64,
    pub loaded_from_cache: AtomicU64,
    pub load_failures: AtomicU64,
    pub instantiations: AtomicU64,
    pub rejected_busy: AtomicU64,
    pub rejected_too_large: AtomicU64,
    pub timeouts: AtomicU64,
    pub traps: AtomicU64,
    pub memory_exceeded: AtomicU64,
    pub instantiate: InstantiateHistogram,
}

pub(crate) struct InstantiateHistogram(Mutex<Histogram<u64>>);

impl Default for InstantiateHistogram {
    fn default() -> Self {
        // Nanosecond resolution: instantiation is tens of microseconds.
        InstantiateHistogram(Mutex::new(
            Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("static bounds are valid"),
        ))
    }
}

impl InstantiateHistogram {
    pub fn record(&self, d: Duration) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .saturating_record(d.as_nanos().max(1) as u64);
    }

    /// Summary in microseconds, rounded down (sub-microsecond reads as 0).
    pub fn summary_us(&self) -> LatencySummary {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let s = LatencySummary::of(&h);
        LatencySummary {
            count: s.count,
            p50_us: s.p50_us / 1000,
            p90_us: s.p90_us / 1000,
            p99_us: s.p99_us / 1000,
            max_us: s.max_us / 1000,
        }
    }

    /// Median in nanoseconds, for precise reporting.
    pub fn p50_ns(&self) -> u64 {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(0.5)
        }
    }
}

pub(crate) fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

pub(crate) fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_percentiles() {
        let c = FunctionCounters::new();
        for ms in 1..=100u64 {
            c.record(Outcome::Ok, Duration::from_millis(ms));
        }
        c.record(Outcome::Error, Duration::from_secs(2));
        c.record(Outcome::Rejected, Duration::ZERO);
        let s = c.snapshot("p", "/api/x", BlobHash::of(b"x"));
        assert_eq!((s.invocations, s.errors, s.rejected), (101, 1, 1));
        assert_eq!(s.latency.count, 101);
        let near = |got: u64, want: u64| got.abs_diff(want) * 100 <= want;
        assert!(near(s.latency.p50_us, 51_000), "{:?}", s.latency);
        assert!(near(s.latency.p99_us, 100_000), "{:?}", s.latency);
        assert!(near(s.latency.max_us, 2_000_000), "{:?}", s.latency);
        assert!(c.take_log_due());
        assert!(!c.take_log_due());
        c.record(Outcome::Ok, Duration::from_micros(10));
        assert!(c.take_log_due());
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(LatencySummary::of(&histogram()), LatencySummary::default());
    }
}
