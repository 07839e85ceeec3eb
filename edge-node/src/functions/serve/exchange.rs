//! The request's identity and bookkeeping: its outcome counted, our page
//! sent when the response has not started, an instance's failure reported.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::StatusCode;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;

use super::super::logs::RequestLogMeta;
use super::super::metrics::{bump, Outcome};
use super::super::{FunctionState, Inner};
use super::failure::{error_page, Failure};
use super::head::stamp;
use super::RequestId;
use crate::state::Site;

/// The request's identity and bookkeeping.
pub(super) struct Exchange<'a> {
    pub(super) start: Instant,
    pub(super) request_id: RequestId,
    pub(super) head: bool,
    pub(super) site: &'a Site,
    pub(super) route: &'a str,
    pub(super) function: Arc<FunctionState>,
    pub(super) inner: &'a Inner,
    pub(super) meta: Option<Arc<RequestLogMeta>>,
    pub(super) hsts: Option<http::HeaderValue>,
    pub(super) end: &'a std::sync::atomic::AtomicU8,
}

impl Exchange<'_> {
    pub(super) fn record(&self, outcome: Outcome) {
        self.function.counters.record(outcome, self.start.elapsed());
    }

    /// Answers with our page (the response has not started).
    pub(super) async fn fail(
        &self,
        session: &mut ServerSession,
        failure: Failure,
    ) -> pingora_core::Result<()> {
        self.record(failure.outcome());
        self.note_end(failure);
        let body = error_page(failure, self.request_id);
        let mut head = http::Response::new(()).into_parts().0;
        head.status =
            StatusCode::from_u16(failure.status()).expect("our failure statuses are valid");
        let h = &mut head.headers;
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if matches!(
            failure,
            Failure::Busy | Failure::Unavailable | Failure::Sealed
        ) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        h.insert(header::SERVER, HeaderValue::from_static("outpost"));
        stamp(h, self.request_id, self.site, self.hsts.as_ref());
        session
            .write_response_header(Box::new(ResponseHeader::from(head)))
            .await?;
        let body = if self.head { Bytes::new() } else { body };
        session.write_response_body(body, true).await
    }

    /// A failure of the instance itself: counted, logged here and in the
    /// function's own log stream.
    pub(super) fn report(&self, failure: Failure, error: Option<&wasmtime::Error>) {
        self.note_end(failure);
        let stats = &self.inner.stats;
        match failure {
            Failure::Timeout => bump(&stats.timeouts),
            Failure::Memory => bump(&stats.memory_exceeded),
            Failure::Trap => bump(&stats.traps),
            _ => {}
        }
        let detail = error.map(|e| format!("{e:#}")).unwrap_or_default();
        tracing::warn!(project = %self.site.project, deployment = %self.site.deployment, route = %self.route, request_id = %self.request_id, ?failure, error = %detail, "function failed");
        if let Some(meta) = &self.meta {
            let line = match failure {
                Failure::Timeout => "[outpost] the request timed out".to_string(),
                Failure::Memory => "[outpost] the function exceeded its memory limit".to_string(),
                Failure::NoResponse => {
                    "[outpost] the function returned without a response".to_string()
                }
                _ => format!("[outpost] the function failed: {}", first_line(&detail)),
            };
            meta.note(line);
        }
    }
}

impl Exchange<'_> {
    /// Keeps the most telling end: a timeout or memory hit is not
    /// overwritten by the generic failure reported after it.
    fn note_end(&self, failure: Failure) {
        use analytics::recorder::FunctionEnd;
        use std::sync::atomic::Ordering;
        let end = match failure {
            Failure::Timeout => FunctionEnd::Timeout,
            Failure::Memory => FunctionEnd::Memory,
            _ => FunctionEnd::Error,
        }
        .code();
        let _ = self
            .end
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                let generic = FunctionEnd::Error.code();
                (c == 0 || (c == generic && end != generic)).then_some(end)
            });
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}
