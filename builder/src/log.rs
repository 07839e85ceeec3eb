//! Build log lines and the writer that stamps, redacts and bounds them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The builder's own account of what it does.
    System,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub stream: LogStream,
    pub text: String,
}

pub type LogSink = tokio::sync::mpsc::UnboundedSender<LogLine>;

pub const REDACTED: &str = "[redacted]";

/// Replaces every occurrence of each secret. Longest first, so a secret
/// that contains another is not half-replaced.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }
}

/// What a build writes its log through. Cheap to clone; every clone shares
/// the byte budget for process output.
#[derive(Debug, Clone)]
pub(crate) struct Logger {
    sink: LogSink,
    redactor: Arc<Redactor>,
    output_bytes: Arc<AtomicU64>,
    max_output_bytes: u64,
}

/// Process output went past the log budget.
#[derive(Debug)]
pub(crate) struct OverBudget;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Logger {
    pub fn new(sink: LogSink, redactor: Redactor, max_output_bytes: u64) -> Logger {
        Logger {
            sink,
            redactor: Arc::new(redactor),
            output_bytes: Arc::new(AtomicU64::new(0)),
            max_output_bytes,
        }
    }

    fn send(&self, stream: LogStream, text: &str) {
        // A build keeps going when nobody listens to its log any more.
        let _ = self.sink.send(LogLine {
            ts_ms: now_ms(),
            stream,
            text: self.redactor.redact(text),
        });
    }

    pub fn system(&self, text: impl AsRef<str>) {
        self.send(LogStream::System, text.as_ref());
    }

    /// A line a build process printed; counts against the output budget.
    pub fn output(&self, stream: LogStream, text: &str) -> Result<(), OverBudget> {
        let used = self
            .output_bytes
            .fetch_add(text.len() as u64 + 1, Ordering::Relaxed)
            + text.len() as u64
            + 1;
        if used > self.max_output_bytes {
            return Err(OverBudget);
        }
        self.send(stream, text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_every_secret_longest_first() {
        let r = Redactor::new(["abc".to_string(), "abcdef".into(), String::new()]);
        assert_eq!(r.redact("x=abcdef y=abc z"), "x=[redacted] y=[redacted] z");
        assert_eq!(r.redact("nothing"), "nothing");
    }

    #[test]
    fn output_budget_is_shared_and_enforced() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let log = Logger::new(tx, Redactor::new(["s3cret".to_string()]), 10);
        let other = log.clone();
        log.output(LogStream::Stdout, "s3cret").unwrap();
        assert!(other.output(LogStream::Stderr, "1234").is_err());
        log.system("system lines are free");
        assert_eq!(rx.try_recv().unwrap().text, "[redacted]");
        let sys = rx.try_recv().unwrap();
        assert_eq!(sys.stream, LogStream::System);
        assert!(rx.try_recv().is_err());
    }
}
