//! Ships function log lines to the coordinator in batches over QUIC.
//!
//! Lines wait in a bounded buffer while the coordinator is unreachable;
//! when it is full the oldest lines are dropped (and counted), so a chatty
//! function can never grow the node's memory.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{bail, Context};
use protocol::frame_io::{read_frame, write_frame};
use protocol::wire::{
    CoordinatorMessage, EdgeRequest, LogRecord, MAX_CONTROL_FRAME_BYTES, MAX_LOG_BATCH,
    MAX_REQUEST_FRAME_BYTES,
};
use tokio::sync::{mpsc, watch};

use crate::functions::FunctionLog;

/// Lines kept while the coordinator cannot take them.
pub const BUFFER_LINES: usize = 20_000;
const FLUSH_EVERY: Duration = Duration::from_millis(500);

pub async fn run(
    mut lines: mpsc::Receiver<FunctionLog>,
    conn: watch::Receiver<Option<quinn::Connection>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buffer: VecDeque<LogRecord> = VecDeque::new();
    let mut dropped: u64 = 0;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(l) => {
                    let l = LogRecord::from(l);
                    if buffer.len() == BUFFER_LINES {
                        buffer.pop_front();
                        dropped += 1;
                    }
                    buffer.push_back(l);
                    if buffer.len() < MAX_LOG_BATCH {
                        continue;
                    }
                }
                None => return,
            },
            _ = tick.tick() => {}
            _ = shutdown.changed() => {
                // One last attempt, bounded, so lines printed just before a
                // graceful stop are not lost.
                let _ = tokio::time::timeout(Duration::from_secs(2), flush(&mut buffer, &conn)).await;
                return;
            }
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "function log buffer was full; oldest lines dropped"
            );
            dropped = 0;
        }
        if let Err(e) = flush(&mut buffer, &conn).await {
            tracing::debug!(error = %format!("{e:#}"), pending = buffer.len(), "shipping function logs deferred");
        }
    }
}

async fn flush(
    buffer: &mut VecDeque<LogRecord>,
    conn: &watch::Receiver<Option<quinn::Connection>>,
) -> anyhow::Result<()> {
    while !buffer.is_empty() {
        let Some(c) = conn.borrow().clone() else {
            bail!("no coordinator connection");
        };
        // Bounded by count and by bytes: the request frame must stay well
        // under MAX_REQUEST_FRAME_BYTES whatever the line lengths.
        let mut n = 0;
        let mut bytes = 0;
        for r in buffer.iter().take(MAX_LOG_BATCH) {
            bytes += r.line.len() + r.project.len() + r.deployment.len() + r.request_id.len() + 32;
            if n > 0 && bytes > MAX_REQUEST_FRAME_BYTES / 2 {
                break;
            }
            n += 1;
        }
        let batch: Vec<LogRecord> = buffer.iter().take(n).cloned().collect();
        let (mut send, mut recv) = c.open_bi().await?;
        write_frame(&mut send, &EdgeRequest::Logs(batch)).await?;
        send.finish()?;
        match read_frame::<CoordinatorMessage, _>(&mut recv, MAX_CONTROL_FRAME_BYTES)
            .await?
            .context("no answer to a log batch")?
        {
            CoordinatorMessage::Ack => {
                buffer.drain(..n);
            }
            CoordinatorMessage::Error(e) => {
                // A batch the coordinator refuses would be refused forever.
                tracing::warn!(error = %e.message, lines = n, "coordinator refused a log batch; dropping it");
                buffer.drain(..n);
            }
            other => bail!("unexpected answer to a log batch: {other:?}"),
        }
    }
    Ok(())
}
