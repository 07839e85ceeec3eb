//! Build logs: lines from the builder are numbered, batched into the
//! database, and announced to live readers (SSE, `logs --follow`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::store::{BuildLogLine, Store};

/// Lines are written at most this often, or when this many are waiting.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FLUSH_LINES: usize = 256;

/// Who is building what: readers wait on the newest sequence number of a
/// running build instead of polling the database.
#[derive(Default)]
pub struct LogHub {
    live: Mutex<HashMap<String, watch::Sender<i64>>>,
}

impl LogHub {
    /// Follows a build's newest written sequence number; `None` when the
    /// build does not run here (finished, queued, or on another coordinator).
    pub fn follow(&self, build_id: &str) -> Option<watch::Receiver<i64>> {
        self.live
            .lock()
            .unwrap()
            .get(build_id)
            .map(|tx| tx.subscribe())
    }

    fn open(&self, build_id: &str, seq: i64) -> watch::Sender<i64> {
        let (tx, _) = watch::channel(seq);
        self.live
            .lock()
            .unwrap()
            .insert(build_id.to_string(), tx.clone());
        tx
    }

    fn close(&self, build_id: &str) {
        self.live.lock().unwrap().remove(build_id);
    }
}

/// Writes one build's lines until every sender is gone.
pub struct LogWriter {
    pub tx: mpsc::UnboundedSender<builder::LogLine>,
    task: tokio::task::JoinHandle<()>,
}

impl LogWriter {
    pub async fn start(
        store: Store,
        hub: std::sync::Arc<LogHub>,
        build_id: String,
        project_id: String,
    ) -> LogWriter {
        let first = store.next_build_log_seq(&build_id).await.unwrap_or(1);
        let (tx, mut rx) = mpsc::unbounded_channel::<builder::LogLine>();
        let notify = hub.open(&build_id, first - 1);
        let task = tokio::spawn(async move {
            let mut seq = first;
            let mut batch: Vec<BuildLogLine> = Vec::new();
            loop {
                let more = tokio::select! {
                    line = rx.recv() => match line {
                        Some(l) => {
                            batch.push(BuildLogLine {
                                seq,
                                ts: l.ts_ms,
                                stream: stream_name(l.stream).into(),
                                line: l.text,
                            });
                            seq += 1;
                            if batch.len() < FLUSH_LINES {
                                continue;
                            }
                            true
                        }
                        None => false,
                    },
                    _ = tokio::time::sleep(FLUSH_EVERY), if !batch.is_empty() => true,
                };
                if !batch.is_empty() {
                    if let Err(e) = store.append_build_logs(&build_id, &batch).await {
                        tracing::error!(build = %build_id, error = %e, "writing build log");
                    }
                    // And for the project's drains, if one takes build logs.
                    let lines: Vec<_> = batch
                        .iter()
                        .map(|l| {
                            crate::drains::format::build_line(
                                &project_id,
                                &build_id,
                                l.ts,
                                &l.stream,
                                &l.line,
                            )
                        })
                        .collect();
                    if let Err(e) = store.append_drain_lines(&project_id, &lines).await {
                        tracing::warn!(build = %build_id, error = %e, "queueing build log for drains");
                    }
                    notify.send_replace(seq - 1);
                    batch.clear();
                }
                if !more {
                    break;
                }
            }
            hub.close(&build_id);
        });
        LogWriter { tx, task }
    }

    /// Waits until every line sent so far is in the database.
    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

fn stream_name(s: builder::LogStream) -> &'static str {
    match s {
        builder::LogStream::System => "system",
        builder::LogStream::Stdout => "stdout",
        builder::LogStream::Stderr => "stderr",
    }
}

/// A platform line (not from the build) in the builder's shape.
pub fn system(text: impl Into<String>) -> builder::LogLine {
    builder::LogLine {
        ts_ms: crate::store::now_ms(),
        stream: builder::LogStream::System,
        text: text.into(),
    }
}
