//! Ships the functions' folded failures (see `functions::errors`) to the
//! coordinator every second, over QUIC, in messages of at most
//! [`MAX_REPORTS`].
//!
//! Reports wait in a bounded buffer while the coordinator is unreachable;
//! when it is full the oldest are dropped (and counted).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use protocol::errors::{ErrorReport, MAX_REPORTS};
use protocol::frame_io::{read_frame, write_frame};
use protocol::wire::{
    CoordinatorMessage, EdgeRequest, MAX_CONTROL_FRAME_BYTES, MAX_REQUEST_FRAME_BYTES,
};
use tokio::sync::watch;

use crate::functions::ErrorReporter;

/// Reports kept while the coordinator cannot take them.
pub const BUFFER_REPORTS: usize = 5_000;
const FLUSH_EVERY: Duration = Duration::from_secs(1);

pub async fn run(
    reporter: Arc<ErrorReporter>,
    conn: watch::Receiver<Option<quinn::Connection>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buffer: VecDeque<ErrorReport> = VecDeque::new();
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.changed() => true,
        };
        let taken = reporter.take();
        let dropped = push_bounded(&mut buffer, taken.reports);
        if taken.dropped > 0 {
            tracing::warn!(
                failures = taken.dropped,
                "too many distinct function failures this second; some were not reported"
            );
        }
        if dropped > 0 {
            tracing::warn!(
                reports = dropped,
                "function error buffer was full; oldest reports dropped"
            );
        }
        if stopping {
            // One last attempt, bounded, as for the logs.
            let _ = tokio::time::timeout(Duration::from_secs(2), flush(&mut buffer, &conn)).await;
            return;
        }
        if let Err(e) = flush(&mut buffer, &conn).await {
            tracing::debug!(error = %format!("{e:#}"), pending = buffer.len(), "shipping function errors deferred");
        }
    }
}

/// Appends `reports`, dropping the oldest beyond [`BUFFER_REPORTS`];
/// returns how many were dropped.
fn push_bounded(buffer: &mut VecDeque<ErrorReport>, reports: Vec<ErrorReport>) -> usize {
    let mut dropped = 0;
    for r in reports {
        if buffer.len() == BUFFER_REPORTS {
            buffer.pop_front();
            dropped += 1;
        }
        buffer.push_back(r);
    }
    dropped
}

/// Reports in the next message: at most MAX_REPORTS, and well under
/// MAX_REQUEST_FRAME_BYTES (256 reports at their bounds would exceed it).
fn batch_len(buffer: &VecDeque<ErrorReport>) -> usize {
    let mut n = 0;
    let mut bytes = 0;
    for r in buffer.iter().take(MAX_REPORTS) {
        bytes += encoded_len(r);
        if n > 0 && bytes > MAX_REQUEST_FRAME_BYTES / 2 {
            break;
        }
        n += 1;
    }
    n
}

/// An upper bound of a report's encoded size (strings with a length
/// prefix of at most 9 bytes; the numbers at most 64).
fn encoded_len(r: &ErrorReport) -> usize {
    let texts = [
        &r.project,
        &r.deployment,
        &r.route,
        &r.message,
        &r.request_id,
        &r.method,
        &r.path,
    ];
    let lists = r.frames.iter().chain(&r.stderr);
    texts
        .into_iter()
        .chain(lists)
        .map(|s| s.len() + 9)
        .sum::<usize>()
        + 64
}

async fn flush(
    buffer: &mut VecDeque<ErrorReport>,
    conn: &watch::Receiver<Option<quinn::Connection>>,
) -> anyhow::Result<()> {
    while !buffer.is_empty() {
        let Some(c) = conn.borrow().clone() else {
            bail!("no coordinator connection");
        };
        let n = batch_len(buffer);
        let batch: Vec<ErrorReport> = buffer.iter().take(n).cloned().collect();
        let (mut send, mut recv) = c.open_bi().await?;
        write_frame(&mut send, &EdgeRequest::Errors(batch)).await?;
        send.finish()?;
        match read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES)
            .await?
            .context("no answer to an error batch")?
        {
            CoordinatorMessage::Ack => {
                buffer.drain(..n);
            }
            CoordinatorMessage::Error(e) => {
                // A batch the coordinator refuses would be refused forever.
                tracing::warn!(error = %e.message, reports = n, "coordinator refused an error batch; dropping it");
                buffer.drain(..n);
            }
            other => bail!("unexpected answer to an error batch: {other:?}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::errors::FailureKind;

    fn report(n: i64) -> ErrorReport {
        ErrorReport {
            project: "p".into(),
            deployment: "d".into(),
            route: "/r".into(),
            kind: FailureKind::Trap,
            message: "m".into(),
            frames: vec![],
            stderr: vec![],
            status: 500,
            request_id: "id".into(),
            method: "GET".into(),
            path: "/r".into(),
            first_ms: n,
            last_ms: n,
            count: 1,
        }
    }

    #[test]
    fn the_buffer_keeps_the_newest() {
        let mut buffer = VecDeque::new();
        let first: Vec<_> = (0..BUFFER_REPORTS as i64 - 2).map(report).collect();
        assert_eq!(push_bounded(&mut buffer, first), 0);
        let more: Vec<_> = (0..5).map(|i| report(1_000_000 + i)).collect();
        assert_eq!(push_bounded(&mut buffer, more), 3);
        assert_eq!(buffer.len(), BUFFER_REPORTS);
        assert_eq!(buffer.front().unwrap().first_ms, 3);
        assert_eq!(buffer.back().unwrap().first_ms, 1_000_004);
    }

    #[test]
    fn batches_stay_under_the_frame_limit() {
        let small: VecDeque<_> = (0..1000).map(report).collect();
        assert_eq!(batch_len(&small), MAX_REPORTS);
        let big = |n| ErrorReport {
            message: "m".repeat(protocol::errors::MAX_MESSAGE),
            frames: vec!["f".repeat(protocol::errors::MAX_FRAME); protocol::errors::MAX_FRAMES],
            stderr: vec![
                "l".repeat(protocol::errors::MAX_STDERR_LINE);
                protocol::errors::MAX_STDERR_LINES
            ],
            ..report(n)
        };
        let large: VecDeque<_> = (0..MAX_REPORTS as i64).map(big).collect();
        let n = batch_len(&large);
        assert!(n > 0 && n < MAX_REPORTS, "{n}");
        let batch = EdgeRequest::Errors(large.into_iter().take(n).collect());
        let frame = protocol::wire::encode_frame(&batch).unwrap();
        assert!(frame.len() <= MAX_REQUEST_FRAME_BYTES, "{}", frame.len());
        assert_eq!(batch_len(&VecDeque::new()), 0);
    }

    #[tokio::test]
    async fn without_a_coordinator_reports_wait() {
        let (_tx, conn) = watch::channel(None);
        let mut buffer: VecDeque<_> = (0..3).map(report).collect();
        assert!(flush(&mut buffer, &conn).await.is_err());
        assert_eq!(buffer.len(), 3);
    }
}
