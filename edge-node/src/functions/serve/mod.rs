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
//!
//! The parts, each in its own file:
//! - `mod.rs`: [`respond`] (admission, the component, the instance's
//!   store and request, then the drive), [`admit`];
//! - `guest.rs`: the instance as a future ([`guest::GuestTask`]: inline
//!   first, then on the executor) and what it leaves ([`guest::Teardown`]);
//! - `drive.rs`: the request's state machine ([`drive::Drive`]), polling
//!   the instance, its response, the response body and the request body;
//! - `body.rs`: the request body's way in ([`body::Pump`] on our side,
//!   [`body::RequestBody`] on the instance's);
//! - `instance.rs`: what an instance is given (its store, its request);
//! - `head.rs`: the response head (hop-by-hop headers, ours, the outcome);
//! - `exchange.rs`: the request's bookkeeping (counts, our pages, reports);
//! - `failure.rs`: why a request got our page, and the page;
//! - `request_id.rs`: [`RequestId`];
//! - `timer.rs`: timers made only when something waits.

mod body;
mod drive;
mod exchange;
mod failure;
mod guest;
mod head;
mod instance;
mod request_id;
mod timer;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header;
use http::uri::Authority;
use http::Method;
use pingora_core::protocols::http::ServerSession;
use protocol::functions::FunctionEntry;
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use wasmtime::Trap;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::WasiHttpView;

use super::host::Signals;
use super::logs::RequestLogMeta;
use super::metrics::{bump, load};
use super::{FunctionRuntime, FunctionState, Inner};
use crate::state::Site;
use crate::store::BlobStore;
use drive::Drive;
use exchange::Exchange;
use failure::Failure;
use guest::{GuestTask, Teardown};
use instance::{incoming_request, new_store};
pub(crate) use request_id::{RequestId, X_REQUEST_ID};
use timer::within;

/// Instantiations timed for the runtime's statistics: one in this many.
const INSTANTIATE_SAMPLE: u64 = 8;

/// What the dispatcher matched.
pub(crate) struct Call<'a> {
    pub site: &'a Arc<Site>,
    pub route: &'a Arc<str>,
    pub entry: &'a FunctionEntry,
    /// The authority the client addressed (`Host` or `:authority`).
    pub authority: Authority,
    /// HSTS and Alt-Svc, over TLS (see `http::Stamps`).
    pub stamps: crate::http::Stamps,
    /// How the request ended, for analytics (an
    /// [`analytics::recorder::FunctionEnd`] code).
    pub end: &'a std::sync::atomic::AtomicU8,
    /// The request's id (made by the dispatcher: a request log of it must
    /// carry the one the response does).
    pub request_id: RequestId,
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
        request_id: call.request_id,
        head: session.req_header().method == Method::HEAD,
        site: call.site,
        route: call.route,
        function: inner.function(&call.site.project, call.route, call.entry.component),
        inner,
        meta: None,
        stamps: call.stamps.clone(),
        end: call.end,
    };
    let limit = inner.config.max_request_body_bytes;
    if declared_length(session).is_some_and(|n| n > limit) {
        bump(&inner.stats.rejected_too_large);
        session.set_keepalive(None);
        return ex.fail(session, Failure::TooLarge).await;
    }
    if ex.site.env.is_none() {
        return ex.fail(session, Failure::Sealed).await;
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
        stderr_tail: Default::default(),
    });
    ex.meta = Some(meta.clone());
    // The clock starts once the component is loaded: compiling it (first
    // request on this node) is not the function's time.
    let timeout = Duration::from_millis(u64::from(call.entry.timeout_ms.max(1)));
    let deadline = Instant::now() + timeout;
    let outbound = ex.function.project.outbound.clone();
    let mut store = new_store(inner, &call, meta, signals.clone(), deadline, outbound);
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
) -> Option<(
    OwnedSemaphorePermit,
    OwnedSemaphorePermit,
    OwnedSemaphorePermit,
)> {
    let project = &function.project.instances;
    let try_now = || {
        let node = inner.node_permits.clone().try_acquire_owned().ok()?;
        let project = project.clone().try_acquire_owned().ok()?;
        let function = function.permits.clone().try_acquire_owned().ok()?;
        Some((node, project, function))
    };
    if let Some(p) = try_now() {
        return Some(p);
    }
    let wait = inner.config.admission_wait;
    tokio::time::timeout(wait, async {
        // The narrowest share first: waiting for it holds nothing other
        // functions or projects need.
        let function = function.permits.clone().acquire_owned().await.ok()?;
        let project = project.clone().acquire_owned().await.ok()?;
        let node = inner.node_permits.clone().acquire_owned().await.ok()?;
        Some((node, project, function))
    })
    .await
    .ok()
    .flatten()
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
