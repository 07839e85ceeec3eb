//! The request's identity and bookkeeping: its outcome counted, our page
//! sent when the response has not started, an instance's failure reported.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::StatusCode;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;
use protocol::errors::FailureKind;

use super::super::errors::{self, FailureKey, Sample};
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
    pub(super) stamps: crate::http::Stamps,
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
        stamp(h, self.request_id, self.site, &self.stamps);
        session
            .write_response_header(Box::new(ResponseHeader::from(head)))
            .await?;
        let body = if self.head { Bytes::new() } else { body };
        session.write_response_body(body, true).await
    }

    /// A failure of the instance itself: counted, logged here and in the
    /// function's own log stream, and folded for error tracking.
    pub(super) fn report(
        &self,
        session: &ServerSession,
        failure: Failure,
        error: Option<&wasmtime::Error>,
    ) {
        self.note_end(failure);
        self.track(session, failure, error);
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
    /// The function answered a 5xx itself.
    pub(super) fn report_server_error(&self, session: &ServerSession, status: u16) {
        let message = format!("answered {status}");
        self.fold(
            session,
            FailureKind::ServerError,
            &message,
            Vec::new(),
            status,
        );
    }

    fn track(&self, session: &ServerSession, failure: Failure, error: Option<&wasmtime::Error>) {
        let (kind, message) = match failure {
            Failure::Trap => match self
                .meta
                .as_ref()
                .and_then(|m| errors::panic_message(&m.stderr_tail()))
            {
                Some(panic) => (FailureKind::Panic, panic),
                None => (
                    FailureKind::Trap,
                    error.map_or_else(|| "the function failed".into(), errors::trap_message),
                ),
            },
            Failure::Memory => (
                FailureKind::Memory,
                "the function exceeded its memory limit".into(),
            ),
            Failure::Timeout => (FailureKind::Timeout, "the request timed out".into()),
            Failure::NoResponse => (
                FailureKind::NoResponse,
                "the function returned without a response".into(),
            ),
            // Refused before any instance ran: not the function's failure.
            _ => return,
        };
        let frames = error.map(errors::frames).unwrap_or_default();
        self.fold(session, kind, &message, frames, failure.status());
    }

    fn fold(
        &self,
        session: &ServerSession,
        kind: FailureKind,
        message: &str,
        frames: Vec<String>,
        status: u16,
    ) {
        let site = self.site;
        let key = FailureKey::new(
            &site.project,
            &site.deployment,
            self.route,
            kind,
            message,
            frames,
        );
        self.inner.errors.record(key, errors::now_ms(), || {
            let req = session.req_header();
            // No meta: logs are off, and no stderr goes out either.
            let stderr = self
                .meta
                .as_ref()
                .map(|m| m.stderr_tail())
                .unwrap_or_default();
            Sample::new(
                status,
                &self.request_id.to_string(),
                req.method.as_str(),
                req.uri.path(),
                stderr,
            )
        });
    }

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
