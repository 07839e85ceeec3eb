//! The request's state machine while the instance runs: one select loop
//! over the instance, its response, the response body going out and the
//! request body coming in.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::Version;
use http_body::Frame;
use http_body_util::BodyExt;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;
use tokio::sync::{mpsc, oneshot};
use wasmtime::Trap;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::super::host::Signals;
use super::super::metrics::{bump, Outcome};
use super::body::{BodyItem, Pump};
use super::exchange::Exchange;
use super::failure::{classify, Failure};
use super::guest::GuestTask;
use super::head::{outcome_of, remove_hop_by_hop, stamp};
use super::timer::expire_at;

/// A response body this small that is complete this soon after its header
/// goes out with `Content-Length` in one write.
const COLLECT_LIMIT: usize = 64 * 1024;
const COLLECT_WAIT: Duration = Duration::from_millis(1);
/// The instance's task ends itself at its deadline; the request gives up
/// on it this much later at the latest.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// The request's state while the instance runs.
pub(super) struct Drive {
    pub(super) guest: GuestTask,
    pub(super) guest_result: Option<wasmtime::Result<()>>,
    pub(super) response_rx: Option<oneshot::Receiver<GuestResponse>>,
    pub(super) body: Option<HyperOutgoingBody>,
    pub(super) header_sent: bool,
    pub(super) pump: Pump,
    pub(super) deadline: Instant,
    /// Shared with the instance: its memory and failure flags.
    pub(super) signals: Arc<Signals>,
    /// The function's status, once its response has started.
    pub(super) status: u16,
}

enum Step {
    Continue,
    /// The response is complete (or our page was sent).
    Done,
}

impl Drive {
    pub(super) async fn run(
        mut self,
        ex: &mut Exchange<'_>,
        session: &mut ServerSession,
    ) -> pingora_core::Result<()> {
        // Made when first polled: never, for an instance that answers in
        // its first poll.
        let mut backstop = std::pin::pin!(None::<tokio::time::Sleep>);
        let backstop_at = self.deadline + DEADLINE_GRACE;
        let result = loop {
            let guest_running = self.guest_result.is_none();
            // In this order: an instance that answers within its first poll
            // (the usual case) ends the request before the deadline timer
            // is ever polled, so it is never registered; and a body that is
            // always ready cannot starve the deadline.
            let step = tokio::select! {
                biased;
                r = &mut self.guest, if guest_running => {
                    self.guest_result = Some(r);
                    // The instance is kept until the response is out only
                    // if it has handed over its answer and no body is
                    // streaming yet; whatever else it left open ends when
                    // its store goes.
                    if self.header_sent || self.response_rx.as_ref().is_some_and(|rx| rx.is_empty()) {
                        self.guest.release();
                    }
                    self.on_guest_done(ex, session).await
                }
                _ = std::future::poll_fn(|cx| expire_at(backstop.as_mut(), backstop_at, cx)), if guest_running => {
                    self.on_timeout(ex, session).await
                }
                r = recv_response(&mut self.response_rx), if self.response_rx.is_some() => {
                    self.response_rx = None;
                    self.on_response(ex, session, r).await
                }
                f = next_frame(&mut self.body), if self.body.is_some() => {
                    self.on_frame(ex, session, f).await
                }
                r = session.read_request_body(), if self.pump.wants_read() => {
                    self.on_request_chunk(ex, session, r).await
                }
                p = reserve(self.pump.tx.clone()), if self.pump.has_pending() => {
                    self.pump.deliver(p);
                    Ok(Step::Continue)
                }
            };
            match step {
                Ok(Step::Continue) => continue,
                Ok(Step::Done) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if !self.pump.is_complete() {
            // Unread request body: the connection cannot carry another
            // request (and draining it could take forever).
            session.set_keepalive(None);
        }
        if self.guest_result.is_none() && result.is_ok() && self.header_sent {
            // The response is out; the instance may finish what it does
            // after it (its task ends by the deadline in any case).
            self.guest.detach();
        }
        result
    }

    async fn on_guest_done(
        &mut self,
        ex: &Exchange<'_>,
        session: &mut ServerSession,
    ) -> pingora_core::Result<Step> {
        let Some(Err(e)) = &self.guest_result else {
            if self.response_rx.is_none() && !self.header_sent {
                // Its outparam went unanswered before it returned (seen on
                // the channel while it still ran): nothing else will come.
                ex.report(session, Failure::NoResponse, None);
                return ex
                    .fail(session, Failure::NoResponse)
                    .await
                    .map(|()| Step::Done);
            }
            // Returned normally: the response (or its absence) is seen on
            // the outparam channel.
            return Ok(Step::Continue);
        };
        let failure = classify(e, self.signals.memory_exceeded.load(Ordering::Relaxed));
        ex.report(session, failure, Some(e));
        if self.header_sent {
            // Whatever the body looks like, it is not the whole answer.
            ex.record(Outcome::Error);
            return Err(aborted("function failed mid-response"));
        }
        ex.fail(session, failure).await.map(|()| Step::Done)
    }

    async fn on_response(
        &mut self,
        ex: &Exchange<'_>,
        session: &mut ServerSession,
        r: Result<GuestResponse, oneshot::error::RecvError>,
    ) -> pingora_core::Result<Step> {
        let response = match r {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                tracing::debug!(request_id = %ex.request_id, ?code, "function answered with an error code");
                ex.report(session, Failure::Trap, None);
                return ex.fail(session, Failure::Trap).await.map(|()| Step::Done);
            }
            Err(_) => {
                // The outparam is gone without a response: the instance has
                // ended (or dropped it and goes on; then wait for its end).
                return match &self.guest_result {
                    Some(Ok(())) => {
                        ex.report(session, Failure::NoResponse, None);
                        ex.fail(session, Failure::NoResponse)
                            .await
                            .map(|()| Step::Done)
                    }
                    // Reported when the instance's end was seen.
                    Some(Err(_)) => Ok(Step::Done),
                    None => Ok(Step::Continue),
                };
            }
        };
        let (parts, mut body) = response.into_parts();
        let status = parts.status.as_u16();
        if parts.status.is_informational() {
            // Interim responses are not a function's final answer.
            ex.report(session, Failure::Trap, None);
            return ex.fail(session, Failure::Trap).await.map(|()| Step::Done);
        }
        let bodyless = ex.head || status == 204 || status == 304;

        // A small body that completes right after its header (the usual API
        // answer) goes out with a Content-Length in one write; anything
        // slower or larger streams.
        let mut collected: Vec<Bytes> = Vec::new();
        let mut collected_len = 0;
        let mut ended = false;
        let mut failed = false;
        if !bodyless {
            let collect = async {
                while collected_len < COLLECT_LIMIT {
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                collected_len += data.len();
                                collected.push(data);
                            }
                        }
                        Some(Err(_)) => {
                            failed = true;
                            return;
                        }
                        None => {
                            ended = true;
                            return;
                        }
                    }
                }
            };
            let mut collect = std::pin::pin!(collect);
            // What the instance has already written needs no timer: an
            // instance that ran to its end within its first poll left all
            // of its body in the channel.
            if futures::poll!(collect.as_mut()).is_pending() {
                // It is mid-body (an epoch tick made it yield, say). Inline,
                // it would not run again until this wait had timed out.
                if self.guest_result.is_none() {
                    self.guest.run_elsewhere();
                }
                let _ = tokio::time::timeout(COLLECT_WAIT, collect).await;
            }
        }
        if !ended && self.guest_result.is_some() {
            // The instance has returned with its body still open: its store
            // going ends the body.
            self.guest.release();
        }
        if failed {
            ex.report(session, Failure::Trap, None);
            return ex.fail(session, Failure::Trap).await.map(|()| Step::Done);
        }
        if ended && self.signals.failed.load(Ordering::Acquire) {
            // A body cut short by a failure also "ends"; the failure itself
            // is answered (and reported) when the task's result arrives.
            return Ok(Step::Continue);
        }

        if status >= 500 {
            ex.report_server_error(session, status);
        }
        // The function's own head goes out with its hop-by-hop headers
        // dropped and ours added, edited in place: no copy of its headers.
        let mut head = parts;
        // The status line is ours to write (wasi:http has no version).
        head.version = Version::HTTP_11;
        let h = &mut head.headers;
        remove_hop_by_hop(h);
        // Room for ours and pingora's (`Date`, `Connection`) at once,
        // rather than a rehash every few inserts.
        h.reserve(6);
        h.entry(header::SERVER)
            .or_insert(HeaderValue::from_static("outpost"));
        stamp(h, ex.request_id, ex.site, &ex.stamps);
        if !bodyless && !h.contains_key(header::CONTENT_LENGTH) {
            if ended {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(collected_len));
            } else if !session.is_http2() {
                if session.req_header().version == Version::HTTP_11 {
                    h.insert(
                        header::TRANSFER_ENCODING,
                        HeaderValue::from_static("chunked"),
                    );
                } else {
                    // HTTP/1.0: the end of the body is the end of the connection.
                    session.set_keepalive(None);
                }
            }
        }
        session
            .write_response_header(Box::new(ResponseHeader::from(head)))
            .await?;
        self.header_sent = true;

        if bodyless {
            session.write_response_body(Bytes::new(), true).await?;
            ex.record(outcome_of(status));
            return Ok(Step::Done);
        }
        if ended {
            let all = join(collected);
            session.write_response_body(all, true).await?;
            ex.record(outcome_of(status));
            return Ok(Step::Done);
        }
        if !collected.is_empty() {
            session.write_response_body(join(collected), false).await?;
        }
        self.body = Some(body);
        // Remember the status for the outcome when the body ends.
        self.status = status;
        Ok(Step::Continue)
    }

    async fn on_frame(
        &mut self,
        ex: &Exchange<'_>,
        session: &mut ServerSession,
        frame: Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>>,
    ) -> pingora_core::Result<Step> {
        match frame {
            Some(Ok(frame)) => {
                // Trailers are dropped: neither h1 chunked trailers nor h2
                // trailers are worth the complexity for functions yet.
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        session.write_response_body(data, false).await?;
                    }
                }
                Ok(Step::Continue)
            }
            Some(Err(e)) => {
                tracing::debug!(request_id = %ex.request_id, error = %e, "function response body failed");
                ex.record(Outcome::Error);
                Err(aborted("function response body failed"))
            }
            None => {
                self.body = None;
                if self.signals.failed.load(Ordering::Acquire) {
                    // Cut short, not finished: the task's result (on its
                    // way) aborts the response.
                    return Ok(Step::Continue);
                }
                session.write_response_body(Bytes::new(), true).await?;
                ex.record(outcome_of(self.status));
                Ok(Step::Done)
            }
        }
    }

    async fn on_request_chunk(
        &mut self,
        ex: &Exchange<'_>,
        session: &mut ServerSession,
        r: pingora_core::Result<Option<Bytes>>,
    ) -> pingora_core::Result<Step> {
        match r {
            Ok(Some(chunk)) => {
                self.pump.received += chunk.len() as u64;
                if self.pump.received > self.pump.limit {
                    bump(&ex.inner.stats.rejected_too_large);
                    session.set_keepalive(None);
                    let err =
                        wasmtime_wasi_http::Error::HttpRequestBodySize(Some(self.pump.received));
                    self.pump.finish(Some(err));
                    if !self.header_sent {
                        return ex
                            .fail(session, Failure::TooLarge)
                            .await
                            .map(|()| Step::Done);
                    }
                    return Ok(Step::Continue);
                }
                self.pump.offer(chunk);
                Ok(Step::Continue)
            }
            Ok(None) => {
                self.pump.finish(None);
                Ok(Step::Continue)
            }
            Err(e) => {
                ex.record(Outcome::Error);
                Err(e)
            }
        }
    }

    async fn on_timeout(
        &mut self,
        ex: &Exchange<'_>,
        session: &mut ServerSession,
    ) -> pingora_core::Result<Step> {
        // The instance's task ends itself at the deadline; this is the
        // backstop should its executor be slow to say so.
        self.guest_result = Some(Err(wasmtime::Error::from(Trap::Interrupt)));
        ex.report(session, Failure::Timeout, None);
        if self.header_sent {
            ex.record(Outcome::Error);
            return Err(aborted("function timed out mid-response"));
        }
        ex.fail(session, Failure::Timeout)
            .await
            .map(|()| Step::Done)
    }
}

type GuestResponse = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

// Branch futures of the select loop. Each borrows one field only, and
// their bodies run when polled (a disabled branch never unwraps).
async fn recv_response(
    rx: &mut Option<oneshot::Receiver<GuestResponse>>,
) -> Result<GuestResponse, oneshot::error::RecvError> {
    rx.as_mut().expect("guarded by is_some").await
}

async fn next_frame(
    body: &mut Option<HyperOutgoingBody>,
) -> Option<Result<Frame<Bytes>, wasmtime_wasi_http::Error>> {
    body.as_mut().expect("guarded by is_some").frame().await
}

async fn reserve(
    tx: Option<mpsc::Sender<BodyItem>>,
) -> Result<mpsc::OwnedPermit<BodyItem>, mpsc::error::SendError<()>> {
    tx.expect("guarded by has_pending").reserve_owned().await
}

fn join(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().expect("one chunk"),
        _ => {
            let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    }
}

fn aborted(why: &'static str) -> Box<pingora_core::Error> {
    pingora_core::Error::explain(pingora_core::ErrorType::InternalError, why)
}
