//! Function stdout/stderr → [`FunctionLog`] records, one per line.
//!
//! Every request gets its own sinks. Lines are bounded in length and in
//! number per request; records go into a bounded channel and are dropped
//! (and counted) when it is full, so a chatty function can never stall the
//! node or grow its memory.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::serve::RequestId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line a function printed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FunctionLog {
    /// Milliseconds since the Unix epoch when the line was complete.
    pub ts_ms: u64,
    pub project: String,
    pub deployment: String,
    pub request_id: String,
    pub stream: LogStream,
    pub line: String,
}

impl From<FunctionLog> for protocol::wire::LogRecord {
    fn from(l: FunctionLog) -> Self {
        protocol::wire::LogRecord {
            ts_ms: i64::try_from(l.ts_ms).unwrap_or(i64::MAX),
            project: l.project,
            deployment: l.deployment,
            request_id: l.request_id,
            stream: match l.stream {
                LogStream::Stdout => "stdout".into(),
                LogStream::Stderr => "stderr".into(),
            },
            line: l.line,
        }
    }
}

/// Appended to a line cut at the length limit.
pub const TRUNCATED_MARK: &str = " …[truncated]";

/// Splits a byte stream into lines of at most `max_line` bytes. A longer
/// line is cut, marked, and the rest of it skipped.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    skipping: bool,
}

impl LineSplitter {
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max_line: max_line.max(1),
            skipping: false,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8], out: &mut impl FnMut(String)) {
        while !bytes.is_empty() {
            let (part, rest, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &bytes[bytes.len()..], false),
            };
            bytes = rest;
            if !self.skipping {
                let room = self.max_line - self.buf.len();
                if part.len() > room {
                    self.buf.extend_from_slice(&part[..room]);
                    let mut line = take_line(&mut self.buf);
                    line.push_str(TRUNCATED_MARK);
                    out(line);
                    self.skipping = !newline;
                    continue;
                }
                self.buf.extend_from_slice(part);
                if newline {
                    out(take_line(&mut self.buf));
                }
            } else if newline {
                self.skipping = false;
            }
        }
    }

    /// The last line, if it had no newline.
    pub fn finish(&mut self, out: &mut impl FnMut(String)) {
        if !self.buf.is_empty() {
            out(take_line(&mut self.buf));
        }
        self.skipping = false;
    }
}

fn take_line(buf: &mut Vec<u8>) -> String {
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let line = String::from_utf8_lossy(buf).into_owned();
    buf.clear();
    line
}

/// Where every request's lines go: one per node.
pub(crate) struct LogChannel {
    pub tx: mpsc::Sender<FunctionLog>,
    /// Records dropped because the channel was full.
    pub dropped: AtomicU64,
}

/// What every line of one request carries.
pub(crate) struct RequestLogMeta {
    pub project: Arc<str>,
    pub deployment: Arc<str>,
    pub request_id: RequestId,
    pub channel: Arc<LogChannel>,
    /// Lines this request may still emit (stdout and stderr together).
    pub budget: AtomicUsize,
    /// Lines over the budget.
    pub over_budget: AtomicUsize,
    /// The last stderr lines, also over the budget: a failure's report
    /// carries them (a panic's message is there).
    pub stderr_tail: Mutex<VecDeque<String>>,
}

impl RequestLogMeta {
    fn emit(&self, stream: LogStream, line: String) {
        if stream == LogStream::Stderr {
            self.keep_stderr(&line);
        }
        let allowed = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
            .is_ok();
        if !allowed {
            self.over_budget.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.send(stream, line);
    }

    fn keep_stderr(&self, line: &str) {
        use protocol::errors::{bounded, MAX_STDERR_LINE, MAX_STDERR_LINES};
        let mut tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        if tail.len() == MAX_STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(bounded(line, MAX_STDERR_LINE));
    }

    /// The request's last stderr lines, oldest first.
    pub fn stderr_tail(&self) -> Vec<String> {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect()
    }

    /// A line from the platform about this request (outside the budget).
    pub fn note(&self, line: String) {
        self.send(LogStream::Stderr, line);
    }

    fn send(&self, stream: LogStream, line: String) {
        let record = FunctionLog {
            ts_ms: now_ms(),
            project: self.project.to_string(),
            deployment: self.deployment.to_string(),
            request_id: self.request_id.to_string(),
            stream,
            line,
        };
        if self.channel.tx.try_send(record).is_err() {
            self.channel.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for RequestLogMeta {
    fn drop(&mut self) {
        let over = *self.over_budget.get_mut();
        if over > 0 {
            self.send(
                LogStream::Stderr,
                format!("[outpost] {over} more log lines of this request were dropped (per-request limit)"),
            );
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct SinkState {
    splitter: LineSplitter,
    stream: LogStream,
    meta: Arc<RequestLogMeta>,
}

impl SinkState {
    fn write(&mut self, bytes: &[u8]) {
        let (meta, stream) = (&self.meta, self.stream);
        self.splitter
            .push(bytes, &mut |line| meta.emit(stream, line));
    }
}

impl Drop for SinkState {
    fn drop(&mut self) {
        let (meta, stream) = (&self.meta, self.stream);
        self.splitter.finish(&mut |line| meta.emit(stream, line));
    }
}

/// A guest's stdout or stderr. Clones share one line buffer, as WASI
/// requires of the streams handed out for one descriptor.
#[derive(Clone)]
pub(crate) struct LogSink(Arc<Mutex<SinkState>>);

impl LogSink {
    pub fn new(stream: LogStream, meta: Arc<RequestLogMeta>, max_line: usize) -> Self {
        LogSink(Arc::new(Mutex::new(SinkState {
            splitter: LineSplitter::new(max_line),
            stream,
            meta,
        })))
    }

    fn write(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(bytes);
    }
}

/// Writes never block: a line is either queued or dropped.
const WRITE_PERMIT: usize = 64 * 1024;

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        LogSink::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        LogSink::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&str]) -> Vec<String> {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c.as_bytes(), &mut |l| out.push(l));
        }
        s.finish(&mut |l| out.push(l));
        out
    }

    #[test]
    fn line_splitting_table() {
        let t = |s: &str| format!("{s}{TRUNCATED_MARK}");
        let cases: Vec<(usize, Vec<&str>, Vec<String>)> = vec![
            (80, vec!["a\nb\n"], vec!["a".into(), "b".into()]),
            (80, vec!["a", "b", "\nc"], vec!["ab".into(), "c".into()]),
            (80, vec!["crlf\r\n"], vec!["crlf".into()]),
            (80, vec!["\n\n"], vec!["".into(), "".into()]),
            (80, vec![], vec![]),
            (4, vec!["abcdefgh\nxy\n"], vec![t("abcd"), "xy".into()]),
            (
                4,
                vec!["ab", "cdef", "gh\nxy"],
                vec![t("abcd"), "xy".into()],
            ),
            (4, vec!["abcd\n"], vec!["abcd".into()]),
            (4, vec!["abcde"], vec![t("abcd")]),
            (80, vec!["caf\u{e9}\n"], vec!["café".into()]),
        ];
        for (max, chunks, want) in cases {
            assert_eq!(split(max, &chunks), want, "{max} {chunks:?}");
        }
        // Invalid UTF-8 is replaced, not dropped.
        let mut s = LineSplitter::new(80);
        let mut out = Vec::new();
        s.push(b"a\xffb\n", &mut |l| out.push(l));
        assert_eq!(out, vec!["a\u{fffd}b".to_string()]);
    }

    #[test]
    fn per_request_budget_and_full_channel() {
        let (tx, mut rx) = mpsc::channel(3);
        let channel = Arc::new(LogChannel {
            tx,
            dropped: AtomicU64::new(0),
        });
        let meta = Arc::new(RequestLogMeta {
            project: "p".into(),
            deployment: "d".into(),
            request_id: RequestId::from_u64(0xbeef),
            channel: channel.clone(),
            budget: AtomicUsize::new(4),
            over_budget: AtomicUsize::new(0),
            stderr_tail: Mutex::default(),
        });
        let out = LogSink::new(LogStream::Stdout, meta.clone(), 80);
        let err = LogSink::new(LogStream::Stderr, meta.clone(), 80);
        out.write(b"1\n2\n");
        err.write(b"e1\n");
        out.write(b"3\n4\n5\n");
        // Budget 4: lines 1, 2, e1, 3 pass it; the channel holds 3.
        assert_eq!(channel.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(meta.over_budget.load(Ordering::Relaxed), 2);
        let first = rx.try_recv().unwrap();
        assert_eq!(
            (first.stream, first.line.as_str()),
            (LogStream::Stdout, "1")
        );
        assert_eq!(first.request_id, "000000000000beef");
        assert_eq!(rx.try_recv().unwrap().line, "2");
        assert_eq!(rx.try_recv().unwrap().line, "e1");
        // Stderr's tail is kept past the budget, bounded; stdout's is not.
        assert_eq!(meta.stderr_tail(), vec!["e1".to_string()]);
        for i in 0..protocol::errors::MAX_STDERR_LINES {
            err.write(format!("e{}\n", i + 2).as_bytes());
        }
        meta.keep_stderr(&"x".repeat(protocol::errors::MAX_STDERR_LINE + 10));
        let tail = meta.stderr_tail();
        assert_eq!(tail.len(), protocol::errors::MAX_STDERR_LINES);
        assert_eq!(tail[0], "e3");
        assert_eq!(
            tail.last().unwrap().len(),
            protocol::errors::MAX_STDERR_LINE
        );
        drop((out, err, meta));
        let note = rx.try_recv().unwrap();
        assert!(note.line.contains("12 more log lines"), "{note:?}");
    }
}
