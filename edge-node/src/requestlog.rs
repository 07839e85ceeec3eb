//! Request logs for projects' log drains, the edge's side.
//!
//! The config names the projects with a request log drain and the share
//! of their requests to send ([`RequestLogPolicy`], kept in the routing
//! snapshot). A request of such a project gets its id from the dispatcher
//! and is in the sample when [`RequestLogPolicy::samples`] says so of that
//! id, so every edge and every drain keep the same requests; a sampled
//! response carries the id as `x-request-id` (a function's always does),
//! and so does its log line. Once the response is sent, the request's
//! [`RequestLogRecord`] goes into a bounded channel: a full channel drops
//! it (counted), the request never waits. Without any project with a
//! drain, a request pays one look at an empty map, and nothing is made
//! for a request outside the sample.
//!
//! [`run`] ships the records to the coordinator every [`FLUSH_EVERY`] (or
//! as soon as a full message is waiting), in messages of at most
//! [`MAX_REQUEST_LOGS`] records and half of [`MAX_REQUEST_FRAME_BYTES`].
//! They wait in a bounded buffer while the coordinator is unreachable;
//! when it is full the oldest are dropped (and counted).
//!
//! [`RequestLogPolicy`]: protocol::config::RequestLogPolicy
//! [`RequestLogPolicy::samples`]: protocol::config::RequestLogPolicy::samples

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use prometheus_client::metrics::counter::Counter;
use protocol::errors::bounded;
use protocol::frame_io::{read_frame, write_frame};
use protocol::wire::{
    CoordinatorMessage, EdgeRequest, ErrorCode, RequestLogRecord, MAX_CONTROL_FRAME_BYTES,
    MAX_REQUEST_FRAME_BYTES, MAX_REQUEST_LOGS,
};
use tokio::sync::{mpsc, watch};

use crate::functions::serve::RequestId;

/// Records between the request path and the shipper.
pub const CHANNEL_RECORDS: usize = 4096;
/// Records kept while the coordinator cannot take them.
pub const BUFFER_RECORDS: usize = 20_000;
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How long the coordinator may take to answer a message.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

// The bounds `RequestLogRecord::validate` applies.
const MAX_NAME: usize = 128;
const MAX_METHOD: usize = 16;
const MAX_HOST: usize = 253;
const MAX_TARGET: usize = 1024;
const MAX_HEADER: usize = 256;

/// The node's request log counters (on `--metrics`).
#[derive(Clone, Default)]
pub struct Counters {
    /// Records the coordinator acknowledged.
    pub shipped: Counter,
    /// Records lost: the channel or the buffer was full, or the
    /// coordinator refused them.
    pub dropped: Counter,
}

impl Counters {
    pub fn register(&self, metrics: &crate::metrics::EdgeMetrics) {
        metrics.register(
            "request_logs_shipped",
            "Sampled request logs (of projects with a request log drain) the coordinator acknowledged",
            self.shipped.clone(),
        );
        metrics.register(
            "request_logs_dropped",
            "Sampled request logs lost: their channel or buffer was full (the coordinator unreachable or slow), or the coordinator refused them",
            self.dropped.clone(),
        );
    }
}

/// Where the request path puts sampled records; it never waits.
pub struct RequestLogSink {
    tx: mpsc::Sender<RequestLogRecord>,
    dropped: Counter,
}

impl RequestLogSink {
    pub fn push(&self, record: RequestLogRecord) {
        if self.tx.try_send(record).is_err() {
            self.dropped.inc();
        }
    }
}

/// The request path's sink and the receiver [`run`] ships from.
pub fn channel(counters: &Counters) -> (RequestLogSink, mpsc::Receiver<RequestLogRecord>) {
    let (tx, rx) = mpsc::channel(CHANNEL_RECORDS);
    let sink = RequestLogSink {
        tx,
        dropped: counters.dropped.clone(),
    };
    (sink, rx)
}

/// One answered request, as the record is made of it (borrowed).
pub(crate) struct Answered<'a> {
    /// When the request started, Unix ms.
    pub ts_ms: i64,
    pub project: &'a str,
    pub deployment: &'a str,
    /// The id its response carries.
    pub request_id: RequestId,
    pub method: &'a str,
    pub tls: bool,
    /// The request's normalised host.
    pub host: &'a str,
    /// Path and query as the client sent them.
    pub target: &'a str,
    pub status: u16,
    pub duration: Duration,
    /// Response body bytes sent.
    pub bytes: u64,
    pub user_agent: Option<&'a [u8]>,
    pub referer: Option<&'a [u8]>,
}

impl Answered<'_> {
    /// Its record, every field cut to its bound; `None` for a status
    /// outside HTTP's 100–599 (a function may answer one), which no drain
    /// takes.
    pub fn record(&self) -> Option<RequestLogRecord> {
        if !(100..=599).contains(&self.status) || self.project.is_empty() {
            return None;
        }
        Some(RequestLogRecord {
            ts_ms: self.ts_ms,
            project: bounded(self.project, MAX_NAME),
            deployment: bounded(self.deployment, MAX_NAME),
            request_id: self.request_id.to_string(),
            method: bounded(self.method, MAX_METHOD),
            scheme: if self.tls { "https" } else { "http" }.to_string(),
            host: bounded(self.host, MAX_HOST),
            path: bounded(self.target, MAX_TARGET),
            status: self.status,
            duration_ms: u32::try_from(self.duration.as_millis()).unwrap_or(u32::MAX),
            bytes: self.bytes,
            user_agent: header_text(self.user_agent, MAX_HEADER),
            referer: header_text(self.referer, MAX_HEADER),
        })
    }
}

/// A request's path and query as a record holds it (before a rewrite
/// replaces them).
pub(crate) fn target_of(req: &pingora_http::RequestHeader) -> String {
    bounded(
        req.uri.path_and_query().map_or("/", |p| p.as_str()),
        MAX_TARGET,
    )
}

/// Unix ms, `ago` before now.
pub(crate) fn unix_ms_before(ago: Duration) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX))
}

/// A header's value as text, at most `max` bytes (bytes that are not
/// UTF-8 are replaced). Only the first `max` bytes are looked at.
fn header_text(value: Option<&[u8]>, max: usize) -> String {
    let Some(v) = value else {
        return String::new();
    };
    let head = &v[..v.len().min(max)];
    bounded(&String::from_utf8_lossy(head), max)
}

pub async fn run(
    mut records: mpsc::Receiver<RequestLogRecord>,
    conn: watch::Receiver<Option<quinn::Connection>>,
    counters: Counters,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buffer: VecDeque<RequestLogRecord> = VecDeque::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dropped_before = counters.dropped.get();
    // After a failed flush, a full message waits for the next tick rather
    // than retrying at once for every record that arrives.
    let mut healthy = true;
    loop {
        tokio::select! {
            record = records.recv() => match record {
                Some(r) => {
                    push_bounded(&mut buffer, r, &counters.dropped);
                    if buffer.len() < MAX_REQUEST_LOGS || !healthy {
                        continue;
                    }
                }
                None => {
                    // The request path is gone (the node stops): what is
                    // left gets the same last attempt.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        flush(&mut buffer, &conn, &counters),
                    )
                    .await;
                    return;
                }
            },
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                // What the last requests left, then one last attempt,
                // bounded, as for the function logs.
                while let Ok(r) = records.try_recv() {
                    push_bounded(&mut buffer, r, &counters.dropped);
                }
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    flush(&mut buffer, &conn, &counters),
                )
                .await;
                return;
            }
        }
        let dropped = counters.dropped.get();
        if dropped != dropped_before {
            tracing::warn!(
                records = dropped - dropped_before,
                "request logs were dropped (their buffer was full, or the coordinator refused them)"
            );
            dropped_before = dropped;
        }
        match flush(&mut buffer, &conn, &counters).await {
            Ok(()) => healthy = true,
            Err(e) => {
                healthy = false;
                tracing::debug!(error = %format!("{e:#}"), pending = buffer.len(), "shipping request logs deferred");
            }
        }
    }
}

/// Appends `record`, dropping (and counting) the oldest beyond
/// [`BUFFER_RECORDS`].
fn push_bounded(
    buffer: &mut VecDeque<RequestLogRecord>,
    record: RequestLogRecord,
    dropped: &Counter,
) {
    if buffer.len() >= BUFFER_RECORDS {
        buffer.pop_front();
        dropped.inc();
    }
    buffer.push_back(record);
}

/// Records in the next message: at most [`MAX_REQUEST_LOGS`], and at most
/// half of [`MAX_REQUEST_FRAME_BYTES`] (a thousand records at their
/// bounds would exceed the frame); at least one.
fn batch_len(buffer: &VecDeque<RequestLogRecord>) -> usize {
    let mut n = 0;
    let mut bytes = 0;
    for r in buffer.iter().take(MAX_REQUEST_LOGS) {
        bytes += encoded_len(r);
        if n > 0 && bytes > MAX_REQUEST_FRAME_BYTES / 2 {
            break;
        }
        n += 1;
    }
    n
}

/// An upper bound of a record's encoded size (strings with a length
/// prefix of at most 9 bytes; the numbers at most 32).
fn encoded_len(r: &RequestLogRecord) -> usize {
    [
        &r.project,
        &r.deployment,
        &r.request_id,
        &r.method,
        &r.scheme,
        &r.host,
        &r.path,
        &r.user_agent,
        &r.referer,
    ]
    .into_iter()
    .map(|s| s.len() + 9)
    .sum::<usize>()
        + 32
}

/// Sends what the buffer holds, oldest first, until it is empty or the
/// coordinator cannot take more now.
async fn flush(
    buffer: &mut VecDeque<RequestLogRecord>,
    conn: &watch::Receiver<Option<quinn::Connection>>,
    counters: &Counters,
) -> anyhow::Result<()> {
    while !buffer.is_empty() {
        let Some(c) = conn.borrow().clone() else {
            bail!("no coordinator connection");
        };
        let n = batch_len(buffer);
        let batch: Vec<RequestLogRecord> = buffer.iter().take(n).cloned().collect();
        let stored = send(&c, batch).await?;
        buffer.drain(..n);
        if stored {
            counters.shipped.inc_by(n as u64);
        } else {
            counters.dropped.inc_by(n as u64);
        }
    }
    Ok(())
}

/// One message; `Ok(false)`: refused for what it is (it would be refused
/// forever, so it is dropped). Any other failure leaves it to a retry.
async fn send(c: &quinn::Connection, batch: Vec<RequestLogRecord>) -> anyhow::Result<bool> {
    let n = batch.len();
    let (mut send, mut recv) = c.open_bi().await?;
    write_frame(&mut send, &EdgeRequest::RequestLogs(batch)).await?;
    send.finish()?;
    let answer = tokio::time::timeout(
        ANSWER_WITHIN,
        read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES),
    )
    .await
    .context("no answer to request logs in time")??
    .context("no answer to request logs")?;
    match answer {
        CoordinatorMessage::Ack => Ok(true),
        CoordinatorMessage::Error(e) if e.code == ErrorCode::BadRequest => {
            tracing::warn!(error = %e.message, records = n, "coordinator refused request logs; dropping them");
            Ok(false)
        }
        CoordinatorMessage::Error(e) => {
            bail!("coordinator could not take request logs: {}", e.message)
        }
        other => bail!("unexpected answer to request logs: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered<'a>(id: u64) -> Answered<'a> {
        Answered {
            ts_ms: 1_700_000_000_000,
            project: "shop",
            deployment: "dpl-1",
            request_id: RequestId::from_u64(id),
            method: "GET",
            tls: true,
            host: "shop.example.com",
            target: "/cart?item=1",
            status: 200,
            duration: Duration::from_micros(2_500),
            bytes: 1234,
            user_agent: Some(b"curl/8.5"),
            referer: None,
        }
    }

    fn record(n: u64) -> RequestLogRecord {
        answered(n).record().unwrap()
    }

    #[test]
    fn a_record_says_what_the_response_did() {
        let r = record(0xbeef);
        assert_eq!(r.request_id, "000000000000beef");
        assert_eq!(r.request_id, RequestId::from_u64(0xbeef).to_string());
        assert_eq!(
            (r.scheme.as_str(), r.host.as_str(), r.path.as_str()),
            ("https", "shop.example.com", "/cart?item=1")
        );
        assert_eq!((r.status, r.duration_ms, r.bytes), (200, 2, 1234));
        assert_eq!(
            (r.user_agent.as_str(), r.referer.as_str()),
            ("curl/8.5", "")
        );
        assert_eq!(
            (r.project.as_str(), r.deployment.as_str()),
            ("shop", "dpl-1")
        );
        r.validate().unwrap();
        let plain = Answered {
            tls: false,
            ..answered(1)
        };
        assert_eq!(plain.record().unwrap().scheme, "http");
    }

    #[test]
    fn every_field_is_cut_to_what_the_coordinator_takes() {
        let long = "é".repeat(2000);
        let bytes = [b'a'; 5000];
        let mut invalid = vec![0xff; 300];
        invalid.extend_from_slice("ü".repeat(200).as_bytes());
        for (ua, referer) in [
            (&bytes[..], &invalid[..]),
            (&invalid[..], &bytes[..]),
            // A multi-byte character across the cut.
            (&"ü".repeat(200).into_bytes()[1..], &b"x"[..]),
        ] {
            let a = Answered {
                project: &long,
                deployment: &long,
                method: &long,
                host: &long,
                target: &long,
                user_agent: Some(ua),
                referer: Some(referer),
                duration: Duration::from_secs(u64::MAX / 4),
                ..answered(u64::MAX)
            };
            let r = a.record().unwrap();
            r.validate().unwrap();
            assert_eq!(r.path.len(), MAX_TARGET);
            assert!(r.user_agent.len() <= MAX_HEADER && !r.user_agent.is_empty());
            assert_eq!(r.duration_ms, u32::MAX);
        }
    }

    #[test]
    fn statuses_no_drain_takes_make_no_record() {
        for status in [0, 99, 600, 999] {
            let a = Answered {
                status,
                ..answered(1)
            };
            assert!(a.record().is_none(), "{status}");
        }
        for status in [100, 301, 404, 599] {
            let a = Answered {
                status,
                ..answered(1)
            };
            a.record().unwrap().validate().unwrap();
        }
        let nameless = Answered {
            project: "",
            ..answered(1)
        };
        assert!(nameless.record().is_none());
    }

    #[test]
    fn a_target_is_the_path_and_query_as_sent() {
        let req = pingora_http::RequestHeader::build("GET", b"/a/b?c=d", None).unwrap();
        assert_eq!(target_of(&req), "/a/b?c=d");
        let long = format!("/{}", "x".repeat(3000));
        let req = pingora_http::RequestHeader::build("GET", long.as_bytes(), None).unwrap();
        assert_eq!(target_of(&req).len(), MAX_TARGET);
    }

    #[test]
    fn the_buffer_keeps_the_newest_and_counts_the_rest() {
        let dropped = Counter::default();
        let mut buffer = VecDeque::new();
        for n in 0..BUFFER_RECORDS as u64 + 3 {
            push_bounded(&mut buffer, record(n), &dropped);
        }
        assert_eq!(buffer.len(), BUFFER_RECORDS);
        assert_eq!(dropped.get(), 3);
        assert_eq!(buffer.front().unwrap().request_id, record(3).request_id);
    }

    #[test]
    fn messages_stay_under_their_count_and_frame_bounds() {
        let small: VecDeque<_> = (0..MAX_REQUEST_LOGS as u64 + 10).map(record).collect();
        assert_eq!(batch_len(&small), MAX_REQUEST_LOGS);
        let long = "x".repeat(5000);
        let big = |n| {
            Answered {
                project: &long,
                deployment: &long,
                method: &long,
                host: &long,
                target: &long,
                user_agent: Some(long.as_bytes()),
                referer: Some(long.as_bytes()),
                ..answered(n)
            }
            .record()
            .unwrap()
        };
        let large: VecDeque<_> = (0..MAX_REQUEST_LOGS as u64).map(big).collect();
        let n = batch_len(&large);
        assert!(n > 0 && n < MAX_REQUEST_LOGS, "{n}");
        let msg = EdgeRequest::RequestLogs(large.into_iter().take(n).collect());
        let frame = protocol::wire::encode_frame(&msg).unwrap();
        assert!(
            frame.len() <= MAX_REQUEST_FRAME_BYTES / 2,
            "{}",
            frame.len()
        );
        assert_eq!(batch_len(&VecDeque::new()), 0);
    }

    #[tokio::test]
    async fn without_a_coordinator_records_wait() {
        let (_tx, conn) = watch::channel(None);
        let counters = Counters::default();
        let mut buffer: VecDeque<_> = (0..3).map(record).collect();
        assert!(flush(&mut buffer, &conn, &counters).await.is_err());
        assert_eq!(buffer.len(), 3);
        assert_eq!((counters.shipped.get(), counters.dropped.get()), (0, 0));
    }

    #[test]
    fn a_full_channel_drops_and_counts() {
        let counters = Counters::default();
        let (sink, mut rx) = channel(&counters);
        for n in 0..CHANNEL_RECORDS as u64 + 2 {
            sink.push(record(n));
        }
        assert_eq!(counters.dropped.get(), 2);
        assert_eq!(rx.try_recv().unwrap().request_id, record(0).request_id);
    }
}
