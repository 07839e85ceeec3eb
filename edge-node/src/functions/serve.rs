//! One function request on a pingora session (h1 or h2): admission,
//! a fresh instance, the request body streamed in, the response streamed
//! out, and a clean 5xx page with the request id when anything fails
//! before the response has started.
//!
//! Everything runs in the connection's task: the instance is a future
//! polled next to the request-body pump and the response-body writer, so a
//! client that goes away cancels the instance with it. An instance still
//! running after its response is complete (logging, say) finishes in a task
//! of its own, bounded by the same deadline.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme as UriScheme};
use http::{Method, StatusCode, Version};
use http_body::Frame;
use http_body_util::BodyExt;
use pingora_core::protocols::http::ServerSession;
use pingora_http::ResponseHeader;
use protocol::functions::FunctionEntry;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpView};

use super::host::{Host, Limiter, Signals};
use super::logs::{LogSink, LogStream, RequestLogMeta};
use super::metrics::{bump, load, Outcome};
use super::outbound::{Hooks, OutboundPolicy};
use super::{FunctionRuntime, FunctionState, Inner, MAX_RESOURCES, TABLE_ELEMENTS};
use crate::state::{Site, X_OUTPOST_DEPLOYMENT};
use crate::store::BlobStore;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Request-body chunks buffered between the client and the instance.
const BODY_CHANNEL: usize = 2;
/// A response body this small that is complete this soon after its header
/// goes out with `Content-Length` in one write.
const COLLECT_LIMIT: usize = 64 * 1024;
const COLLECT_WAIT: Duration = Duration::from_millis(1);
/// Epoch yields an instance may make on the connection's task before it
/// moves to the executor.
const INLINE_YIELDS: u32 = 2;
/// Instantiations timed for the runtime's statistics: one in this many.
const INSTANTIATE_SAMPLE: u64 = 8;
/// The instance's task ends itself at its deadline; the request gives up
/// on it this much later at the latest.
const DEADLINE_GRACE: Duration = Duration::from_millis(250);

/// `tokio::time::timeout_at`, but the timer is only made if the future
/// does not finish in its first poll: most instances answer within it,
/// and a timer costs the runtime's timer wheel an insert and a removal.
async fn within<F: Future>(deadline: Instant, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(None::<tokio::time::Sleep>);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        expire_at(timer.as_mut(), deadline, cx).map(|()| None)
    })
    .await
}

/// Polls the timer in `slot`, first making it for `deadline` if need be.
fn expire_at(
    mut slot: Pin<&mut Option<tokio::time::Sleep>>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if slot.is_none() {
        slot.set(Some(tokio::time::sleep_until(deadline.into())));
    }
    match slot.as_pin_mut() {
        Some(timer) => timer.poll(cx),
        None => unreachable!("set above"),
    }
}

/// What the dispatcher matched.
pub(crate) struct Call<'a> {
    pub site: &'a Arc<Site>,
    pub route: &'a Arc<str>,
    pub entry: &'a FunctionEntry,
    /// The authority the client addressed (`Host` or `:authority`).
    pub authority: Authority,
}

/// Why a request got one of our pages instead of the function's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    BadRequest,
    TooLarge,
    Busy,
    Unavailable,
    Trap,
    Memory,
    Timeout,
    NoResponse,
}

impl Failure {
    fn status(self) -> u16 {
        match self {
            Failure::BadRequest => 400,
            Failure::TooLarge => 413,
            Failure::Busy | Failure::Unavailable => 503,
            Failure::Timeout => 504,
            Failure::Trap | Failure::Memory | Failure::NoResponse => 500,
        }
    }

    fn text(self) -> (&'static str, &'static str) {
        match self {
            Failure::BadRequest => (
                "Bad request",
                "The request could not be passed to the function.",
            ),
            Failure::TooLarge => (
                "Payload too large",
                "The request body is larger than functions on this server accept.",
            ),
            Failure::Busy => (
                "Busy",
                "This function is handling as many requests as it may. Please retry in a moment.",
            ),
            Failure::Unavailable => (
                "Temporarily unavailable",
                "This function could not be loaded on this server.",
            ),
            Failure::Trap => (
                "Function error",
                "The function failed while handling this request.",
            ),
            Failure::Memory => ("Function error", "The function exceeded its memory limit."),
            Failure::Timeout => (
                "Function timed out",
                "The function did not answer within its time limit.",
            ),
            Failure::NoResponse => (
                "Function error",
                "The function ended without sending a response.",
            ),
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Failure::TooLarge | Failure::Busy => Outcome::Rejected,
            _ => Outcome::Error,
        }
    }
}

/// Our error page. The request id is ours (hex), never request data.
fn error_page(failure: Failure, request_id: RequestId) -> Bytes {
    let status = failure.status();
    let (title, detail) = failure.text();
    Bytes::from(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{status} {title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         h1{{font-size:1.4rem}}p{{color:#555}}small{{color:#999}}</style></head>\
         <body><h1>{status} · {title}</h1><p>{detail}</p>\
         <p><small>Request id: <code>{request_id}</code> · outpost</small></p></body></html>\n"
    ))
}

/// A request's id: random, written as 16 hex digits (`x-request-id`, our
/// error pages, the function's log lines). Kept as a number so a request
/// that logs nothing never formats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestId(u64);

impl RequestId {
    pub fn new() -> Self {
        RequestId(rand::random())
    }

    #[cfg(test)]
    pub fn from_u64(id: u64) -> Self {
        RequestId(id)
    }

    fn header_value(self) -> HeaderValue {
        // Written on the stack, without the formatting machinery: the
        // header value is the only copy.
        let hex = self.hex();
        HeaderValue::from_bytes(&hex).expect("hex digits are a valid header value")
    }

    /// The 16 lowercase hex digits of the id, most significant first.
    fn hex(self) -> [u8; 16] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, digit) in out.iter_mut().enumerate() {
            *digit = DIGITS[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
        out
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

/// Serves one function request. An `Err` means the response could not be
/// completed and the connection must not be reused.
pub(crate) async fn respond(
    runtime: &FunctionRuntime,
    blobs: &Arc<BlobStore>,
    session: &mut ServerSession,
    call: Call<'_>,
) -> pingora_core::Result<()> {
    let inner = &runtime.inner;
    let mut ex = Exchange {
        start: Instant::now(),
        request_id: RequestId::new(),
        head: session.req_header().method == Method::HEAD,
        site: call.site,
        route: call.route,
        function: inner.function(&call.site.project, call.route, call.entry.component),
        inner,
        meta: None,
    };
    let limit = inner.config.max_request_body_bytes;
    if declared_length(session).is_some_and(|n| n > limit) {
        bump(&inner.stats.rejected_too_large);
        session.set_keepalive(None);
        return ex.fail(session, Failure::TooLarge).await;
    }
    let Some(permits) = admit(inner, &ex.function).await else {
        bump(&inner.stats.rejected_busy);
        return ex.fail(session, Failure::Busy).await;
    };
    let pre = match inner.proxy_pre(blobs, call.entry.component).await {
        Ok(pre) => pre,
        Err(e) => {
            tracing::error!(project = %ex.site.project, route = %ex.route, request_id = %ex.request_id, error = %format!("{e:#}"), "function could not be loaded");
            return ex.fail(session, Failure::Unavailable).await;
        }
    };

    let signals = Arc::new(Signals::default());
    let Some((request, pump)) = incoming_request(session, &call, limit, &signals) else {
        return ex.fail(session, Failure::BadRequest).await;
    };
    if !session.is_http2()
        && !pump.eof
        && session
            .req_header()
            .headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        session.write_continue_response().await?;
    }

    let meta = Arc::new(RequestLogMeta {
        project: ex.site.project.clone(),
        deployment: ex.site.deployment.clone(),
        request_id: ex.request_id,
        channel: inner.logs.clone(),
        budget: AtomicUsize::new(inner.config.max_log_lines_per_request),
        over_budget: AtomicUsize::new(0),
    });
    ex.meta = Some(meta.clone());
    // The clock starts once the component is loaded: compiling it (first
    // request on this node) is not the function's time.
    let timeout = Duration::from_millis(u64::from(call.entry.timeout_ms.max(1)));
    let deadline = Instant::now() + timeout;
    let mut store = new_store(inner, &call, meta, signals.clone(), deadline);
    let (response_tx, response_rx) = oneshot::channel();
    let scheme = if is_tls(session) {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let resources = store
        .data_mut()
        .http()
        .new_incoming_request(scheme, request)
        .and_then(|req| {
            let out = store.data_mut().http().new_response_outparam(response_tx)?;
            Ok((req, out))
        });
    let Ok((req, out)) = resources else {
        return ex.fail(session, Failure::BadRequest).await;
    };

    let stats = inner.stats.clone();
    let signals_in_task = signals.clone();
    let guest = async move {
        let mut store = store;
        let result = async {
            // One instantiation in INSTANTIATE_SAMPLE is timed: enough for
            // its percentiles, and the others skip two clock reads and a
            // lock.
            let timed = load(&stats.instantiations).is_multiple_of(INSTANTIATE_SAMPLE);
            let started = timed.then(Instant::now);
            let proxy = pre.instantiate_async(&mut store).await?;
            if let Some(started) = started {
                stats.instantiate.record(started.elapsed());
            }
            bump(&stats.instantiations);
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        // A busy instance traps at the deadline (epoch callback); this ends
        // one waiting on a clock or on I/O.
        let result = within(deadline, result)
            .await
            .unwrap_or_else(|| Err(wasmtime::Error::from(Trap::Interrupt)));
        // Said before the store goes: dropping it ends the response body
        // as if it were complete, and the reader must know it was not.
        if result.is_err() {
            signals_in_task.failed.store(true, Ordering::Release);
        }
        (
            result,
            Teardown {
                _store: store,
                _permits: permits,
            },
        )
    };
    let guest = GuestTask::new(Box::pin(guest), inner.executor().clone(), signals.clone());

    let drive = Drive {
        guest,
        guest_result: None,
        response_rx: Some(response_rx),
        body: None,
        header_sent: false,
        pump,
        deadline,
        signals,
        status: 0,
    };
    drive.run(&mut ex, session).await
}

/// A slot on the node and one for the function, waiting at most
/// `admission_wait` for them. The short wait absorbs the instant between a
/// response's end and its instance's release (a keep-alive client asks
/// again at once); it is not a queue.
async fn admit(
    inner: &Inner,
    function: &FunctionState,
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
    let try_now = || {
        let node = inner.node_permits.clone().try_acquire_owned().ok()?;
        let function = function.permits.clone().try_acquire_owned().ok()?;
        Some((node, function))
    };
    if let Some(p) = try_now() {
        return Some(p);
    }
    let wait = inner.config.admission_wait;
    tokio::time::timeout(wait, async {
        // The function's own slot first: waiting for it holds nothing
        // other functions need.
        let function = function.permits.clone().acquire_owned().await.ok()?;
        let node = inner.node_permits.clone().acquire_owned().await.ok()?;
        Some((node, function))
    })
    .await
    .ok()
    .flatten()
}

/// The instance. Its first poll runs right here, on the connection's task:
/// most functions answer within it (no thread hop at all). If it has to
/// wait (request body, a clock, outbound I/O) or yields a third time at an
/// epoch tick, it moves to the runtime's executor, so a spinning instance
/// holds a socket thread for about three ticks. Aborted when dropped, unless
/// detached to finish after its response.
struct GuestTask {
    state: GuestState,
    executor: tokio::runtime::Handle,
    /// Its epoch yields are counted there (by its store).
    signals: Arc<Signals>,
    /// Yields already let pass inline.
    inline_yields: u32,
    /// The finished instance, dropped with this task.
    teardown: Option<Teardown>,
}

type GuestOutput = (wasmtime::Result<()>, Teardown);
type GuestFuture = Pin<Box<dyn Future<Output = GuestOutput> + Send>>;

enum GuestState {
    Inline(GuestFuture),
    Spawned(tokio::task::JoinHandle<GuestOutput>),
    Finished,
}

/// What a finished instance leaves: its store, whose instance goes back to
/// the pool when dropped, then its permits (fields drop in this order).
/// Kept by the request until its response has gone out, so tearing the
/// instance down (a sizeable part of a small request's work) overlaps the
/// client's next round trip instead of delaying this answer, as in a host
/// that runs the handler in a task of its own.
struct Teardown {
    _store: Store<Host>,
    _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl GuestTask {
    fn new(future: GuestFuture, executor: tokio::runtime::Handle, signals: Arc<Signals>) -> Self {
        GuestTask {
            state: GuestState::Inline(future),
            executor,
            signals,
            inline_yields: 0,
            teardown: None,
        }
    }

    /// Drops the finished instance now: anything it still holds open (an
    /// unset outparam, an unfinished body) ends with its store.
    fn release(&mut self) {
        self.teardown = None;
    }

    /// Moves an instance still running inline to the executor, so that it
    /// runs on while the request waits on something else (its response
    /// body): inline, it only runs when the request's loop polls it.
    fn run_elsewhere(&mut self) {
        self.state = match std::mem::replace(&mut self.state, GuestState::Finished) {
            GuestState::Inline(future) => GuestState::Spawned(self.executor.spawn(future)),
            other => other,
        };
    }

    fn detach(mut self) {
        match std::mem::replace(&mut self.state, GuestState::Finished) {
            GuestState::Inline(future) => {
                self.executor.spawn(future);
            }
            GuestState::Spawned(_) | GuestState::Finished => {}
        }
    }
}

impl Drop for GuestTask {
    fn drop(&mut self) {
        if let GuestState::Spawned(task) = &self.state {
            task.abort();
        }
    }
}

impl Future for GuestTask {
    type Output = wasmtime::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match &mut self.state {
                GuestState::Inline(future) => {
                    if let Poll::Ready((result, teardown)) = future.as_mut().poll(cx) {
                        self.state = GuestState::Finished;
                        self.teardown = Some(teardown);
                        return Poll::Ready(result);
                    }
                    // An epoch yield (the instance has already asked to be
                    // polled again) stays inline the first INLINE_YIELDS
                    // times: under CPU contention a tick often lands while
                    // a short instance is merely preempted, and moving it
                    // costs a spawn and two cross-thread wakeups. Waiting
                    // for anything else, or spinning on, moves it.
                    let yields = self.signals.yields.load(Ordering::Relaxed);
                    if yields > self.inline_yields && yields <= INLINE_YIELDS {
                        self.inline_yields = yields;
                        return Poll::Pending;
                    }
                    self.run_elsewhere();
                }
                GuestState::Spawned(task) => {
                    let out = ready!(Pin::new(task).poll(cx));
                    self.state = GuestState::Finished;
                    return Poll::Ready(match out {
                        Ok((result, teardown)) => {
                            self.teardown = Some(teardown);
                            result
                        }
                        Err(e) => Err(wasmtime::format_err!("function task failed: {e}")),
                    });
                }
                GuestState::Finished => panic!("instance polled after it finished"),
            }
        }
    }
}

/// The request's identity and bookkeeping.
struct Exchange<'a> {
    start: Instant,
    request_id: RequestId,
    head: bool,
    site: &'a Site,
    route: &'a str,
    function: Arc<FunctionState>,
    inner: &'a Inner,
    meta: Option<Arc<RequestLogMeta>>,
}

impl Exchange<'_> {
    fn record(&self, outcome: Outcome) {
        self.function.counters.record(outcome, self.start.elapsed());
    }

    /// Answers with our page (the response has not started).
    async fn fail(
        &self,
        session: &mut ServerSession,
        failure: Failure,
    ) -> pingora_core::Result<()> {
        self.record(failure.outcome());
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
        if failure == Failure::Busy || failure == Failure::Unavailable {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        h.insert(header::SERVER, HeaderValue::from_static("outpost"));
        stamp(h, self.request_id, self.site);
        session
            .write_response_header(Box::new(ResponseHeader::from(head)))
            .await?;
        let body = if self.head { Bytes::new() } else { body };
        session.write_response_body(body, true).await
    }

    /// A failure of the instance itself: counted, logged here and in the
    /// function's own log stream.
    fn report(&self, failure: Failure, error: Option<&wasmtime::Error>) {
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

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn classify(error: &wasmtime::Error, memory_exceeded: bool) -> Failure {
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        Failure::Timeout
    } else if memory_exceeded {
        Failure::Memory
    } else {
        Failure::Trap
    }
}

/// The request's state while the instance runs.
struct Drive {
    guest: GuestTask,
    guest_result: Option<wasmtime::Result<()>>,
    response_rx: Option<oneshot::Receiver<GuestResponse>>,
    body: Option<HyperOutgoingBody>,
    header_sent: bool,
    pump: Pump,
    deadline: Instant,
    /// Shared with the instance: its memory and failure flags.
    signals: Arc<Signals>,
    /// The function's status, once its response has started.
    status: u16,
}

enum Step {
    Continue,
    /// The response is complete (or our page was sent).
    Done,
}

impl Drive {
    async fn run(
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
                ex.report(Failure::NoResponse, None);
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
        ex.report(failure, Some(e));
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
                ex.report(Failure::Trap, None);
                return ex.fail(session, Failure::Trap).await.map(|()| Step::Done);
            }
            Err(_) => {
                // The outparam is gone without a response: the instance has
                // ended (or dropped it and goes on; then wait for its end).
                return match &self.guest_result {
                    Some(Ok(())) => {
                        ex.report(Failure::NoResponse, None);
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
            ex.report(Failure::Trap, None);
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
            ex.report(Failure::Trap, None);
            return ex.fail(session, Failure::Trap).await.map(|()| Step::Done);
        }
        if ended && self.signals.failed.load(Ordering::Acquire) {
            // A body cut short by a failure also "ends"; the failure itself
            // is answered (and reported) when the task's result arrives.
            return Ok(Step::Continue);
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
        stamp(h, ex.request_id, ex.site);
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
        ex.report(Failure::Timeout, None);
        if self.header_sent {
            ex.record(Outcome::Error);
            return Err(aborted("function timed out mid-response"));
        }
        ex.fail(session, Failure::Timeout)
            .await
            .map(|()| Step::Done)
    }
}

type BodyItem = Result<Bytes, wasmtime_wasi_http::Error>;
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

/// Moves the client's request body into the instance, one chunk at a time
/// (backpressure: nothing more is read while a chunk waits).
struct Pump {
    tx: Option<mpsc::Sender<BodyItem>>,
    pending: Option<BodyItem>,
    /// Nothing more will be read from the client.
    eof: bool,
    /// Says when the client's body was read to its end.
    signals: Arc<Signals>,
    received: u64,
    limit: u64,
}

impl Pump {
    fn wants_read(&self) -> bool {
        !self.eof && self.pending.is_none() && self.tx.is_some()
    }

    fn has_pending(&self) -> bool {
        self.pending.is_some() && self.tx.is_some()
    }

    fn is_complete(&self) -> bool {
        self.signals.body_complete.load(Ordering::Acquire)
    }

    fn offer(&mut self, chunk: Bytes) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Ok(chunk)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => self.pending = Some(item),
            // The instance dropped the body: it does not want the rest.
            Err(mpsc::error::TrySendError::Closed(_)) => self.tx = None,
        }
    }

    /// A reservation made while a chunk (or the final error) waited.
    fn deliver(&mut self, permit: Result<mpsc::OwnedPermit<BodyItem>, mpsc::error::SendError<()>>) {
        match permit {
            Ok(permit) => {
                if let Some(item) = self.pending.take() {
                    permit.send(item);
                }
                if self.eof {
                    self.tx = None;
                }
            }
            Err(_) => {
                self.tx = None;
                self.pending = None;
            }
        }
    }

    /// Stops reading: at the end of the body (`None`), or with an error the
    /// instance must see instead of a clean end.
    fn finish(&mut self, error: Option<wasmtime_wasi_http::Error>) {
        self.eof = true;
        match error {
            None => {
                self.signals.body_complete.store(true, Ordering::Release);
                if self.pending.is_none() {
                    self.tx = None;
                }
            }
            Some(e) => self.pending = Some(Err(e)),
        }
    }
}

/// The instance's view of the request body. A channel closed before the
/// client's body was complete reads as an error, never as a clean end.
struct RequestBody {
    /// `None` for a request without a body.
    rx: Option<mpsc::Receiver<BodyItem>>,
    signals: Arc<Signals>,
    done: bool,
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let Some(rx) = self.rx.as_mut() else {
            self.done = true;
            return Poll::Ready(None);
        };
        match ready!(rx.poll_recv(cx)) {
            Some(Ok(chunk)) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            Some(Err(e)) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                self.done = true;
                if self.signals.body_complete.load(Ordering::Acquire) {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionTerminated)))
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// The request as the instance sees it: method, the original path and
/// query, headers (less hop-by-hop ones), and the body as a stream.
fn incoming_request(
    session: &mut ServerSession,
    call: &Call<'_>,
    limit: u64,
    signals: &Arc<Signals>,
) -> Option<(http::Request<RequestBody>, Pump)> {
    let empty = session.is_body_empty();
    let scheme = if is_tls(session) {
        UriScheme::HTTPS
    } else {
        UriScheme::HTTP
    };
    let req = session.req_header();
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(scheme);
    uri.authority = Some(call.authority.clone());
    uri.path_and_query = Some(
        req.uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    let uri = http::Uri::from_parts(uri).ok()?;
    // Copied: pingora offers no way to take them out of its request.
    let mut headers = http::HeaderMap::with_capacity(req.headers.len());
    for (name, value) in req.headers.iter() {
        if !is_hop_by_hop(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    signals.body_complete.store(empty, Ordering::Release);
    // An empty body (most GETs) needs no channel: the instance reads its
    // end at once.
    let (tx, rx) = if empty {
        (None, None)
    } else {
        let (tx, rx) = mpsc::channel(BODY_CHANNEL);
        (Some(tx), Some(rx))
    };
    let pump = Pump {
        tx,
        pending: None,
        eof: empty,
        signals: signals.clone(),
        received: 0,
        limit,
    };
    let body = RequestBody {
        rx,
        signals: signals.clone(),
        done: empty,
    };
    let mut request = http::Request::new(body);
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Some((request, pump))
}

fn new_store(
    inner: &Arc<Inner>,
    call: &Call<'_>,
    meta: Arc<RequestLogMeta>,
    signals: Arc<Signals>,
    deadline: Instant,
) -> Store<Host> {
    let config = &inner.config;
    let mut wasi = WasiCtxBuilder::new();
    // The project's variables for this host's environment, and nothing of
    // the node's own environment. No arguments, no preopened directories.
    for (k, v) in call.site.env.iter() {
        wasi.env(k, v);
    }
    let max_line = config.max_log_line_bytes;
    wasi.stdout(LogSink::new(LogStream::Stdout, meta.clone(), max_line))
        .stderr(LogSink::new(LogStream::Stderr, meta, max_line))
        // Raw sockets stay closed: outbound traffic goes through wasi:http,
        // where the allow-list and address checks apply.
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_RESOURCES);
    let policy = (!call.site.outbound.is_empty()).then(|| OutboundPolicy {
        allowed: call.site.outbound.clone(),
        allow_private: config.allow_private_outbound,
        connect_timeout: config.outbound_connect_timeout,
        tls: inner.tls.clone(),
    });
    let memory_bytes = call.entry.memory_bytes.min(config.max_memory_bytes);
    let host = Host {
        table,
        wasi: wasi.build(),
        http: WasiHttpCtx::new(),
        hooks: Hooks { policy },
        limiter: Limiter {
            memory_bytes: usize::try_from(memory_bytes).unwrap_or(usize::MAX),
            table_elements: TABLE_ELEMENTS,
            signals: signals.clone(),
        },
    };
    let mut store = Store::new(&inner.engine, host);
    store.limiter(|h| &mut h.limiter);
    // Every tick a running instance yields to the scheduler (a busy loop
    // cannot starve other requests on this thread); past the deadline it
    // traps. (Letting the first tick pass, so fewer instances move to the
    // executor, was measured: no gain under load, and at one connection
    // 20% fewer requests per second on both the edge and the bare host,
    // with stalls of milliseconds.)
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            // tokio's own yield: the worker also polls the I/O driver
            // before it comes back, so spinning instances cannot starve
            // the node's sockets.
            signals.yields.fetch_add(1, Ordering::Relaxed);
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
    store
}

/// Our headers on a response head: the request id (replacing any the
/// function set) and the deployment. Heads are plain `http` parts turned
/// into pingora's `ResponseHeader` without a case-preserving name map, so
/// h1 names go out in lowercase (as hyper writes them) and h2 has no case
/// at all; editing the map directly also spares pingora's insert, which
/// parses and copies every name again.
fn stamp(h: &mut http::HeaderMap, request_id: RequestId, site: &Site) {
    h.insert(X_REQUEST_ID, request_id.header_value());
    if let Some(v) = &site.deployment_header {
        h.insert(X_OUTPOST_DEPLOYMENT, v.clone());
    }
}

/// Drops the headers that describe one connection, not the message.
fn remove_hop_by_hop(h: &mut http::HeaderMap) {
    // Most messages have none: no list is made for them.
    if !h.keys().any(is_hop_by_hop) {
        return;
    }
    let hop: Vec<HeaderName> = h.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in &hop {
        h.remove(name);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    // `HeaderName` equality: a tag compare for the standard names, bytes
    // only against the two custom ones.
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::TE
        || name == header::TRAILER
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
}

fn outcome_of(status: u16) -> Outcome {
    if status >= 500 {
        Outcome::Error
    } else {
        Outcome::Ok
    }
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

fn declared_length(session: &ServerSession) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn is_tls(session: &ServerSession) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_pages_name_status_and_request_id() {
        for f in [
            Failure::BadRequest,
            Failure::TooLarge,
            Failure::Busy,
            Failure::Unavailable,
            Failure::Trap,
            Failure::Memory,
            Failure::Timeout,
            Failure::NoResponse,
        ] {
            let page =
                String::from_utf8(error_page(f, RequestId(0x00ff00ff00ff00ff)).to_vec()).unwrap();
            assert!(page.contains(&format!("<title>{} ", f.status())), "{page}");
            assert!(page.contains("00ff00ff00ff00ff"), "{page}");
        }
        assert_eq!(Failure::Timeout.status(), 504);
        assert_eq!(Failure::TooLarge.status(), 413);
        assert_eq!(Failure::Busy.status(), 503);
        assert_eq!(Failure::Memory.status(), 500);
    }

    #[test]
    fn request_ids_are_hex_and_distinct() {
        let (a, b) = (RequestId::new(), RequestId::new());
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 16);
        assert!(text.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.header_value().to_str().unwrap(), text);
        // Leading zeros are kept: every id has the same width.
        assert_eq!(RequestId(0xab).to_string(), "00000000000000ab");
        assert_eq!(RequestId(u64::MAX).to_string(), "ffffffffffffffff");
        assert_eq!(
            RequestId(0x0123_4567_89ab_cdef).to_string(),
            "0123456789abcdef"
        );
        assert_eq!(format!("{}", RequestId(0)), "0000000000000000");
    }

    #[test]
    fn hop_by_hop_headers() {
        for (name, hop) in [
            ("connection", true),
            ("keep-alive", true),
            ("proxy-connection", true),
            ("transfer-encoding", true),
            ("upgrade", true),
            ("te", true),
            ("trailer", true),
            ("content-length", false),
            ("content-type", false),
            ("x-keep-alive", false),
            ("trailers", false),
            ("proxy-authorization", false),
        ] {
            let name = HeaderName::from_static(name);
            assert_eq!(is_hop_by_hop(&name), hop, "{name}");
        }
    }

    #[tokio::test]
    async fn within_times_out_only_a_pending_future() {
        let past = Instant::now() - Duration::from_secs(1);
        // Ready at its first poll: no timer, even past the deadline.
        assert_eq!(within(past, async { 7 }).await, Some(7));
        assert_eq!(within(past, std::future::pending::<()>()).await, None);
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(within(soon, std::future::pending::<()>()).await, None);
        let later = Instant::now() + Duration::from_secs(30);
        let slow = async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            8
        };
        assert_eq!(within(later, slow).await, Some(8));
    }

    #[test]
    fn trap_classification() {
        let interrupt = wasmtime::Error::from(Trap::Interrupt);
        assert_eq!(classify(&interrupt, false), Failure::Timeout);
        assert_eq!(classify(&interrupt, true), Failure::Timeout);
        let unreachable = wasmtime::Error::from(Trap::UnreachableCodeReached);
        assert_eq!(classify(&unreachable, true), Failure::Memory);
        assert_eq!(classify(&unreachable, false), Failure::Trap);
    }

    #[tokio::test]
    async fn body_cut_short_is_an_error_not_an_end() {
        let (tx, rx) = mpsc::channel(2);
        let mut body = RequestBody {
            rx: Some(rx),
            signals: Arc::new(Signals::default()),
            done: false,
        };
        tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
        drop(tx);
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"abc"));
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());

        let signals = Signals::default();
        signals.body_complete.store(true, Ordering::Release);
        let (tx, rx) = mpsc::channel::<BodyItem>(2);
        drop(tx);
        let mut body = RequestBody {
            rx: Some(rx),
            signals: Arc::new(signals),
            done: false,
        };
        assert!(body.frame().await.is_none());
    }
}
