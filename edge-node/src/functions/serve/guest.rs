//! The instance as a future: polled inline on the connection's task,
//! moved to the runtime's executor when it waits or keeps yielding, and
//! what it leaves for the request to drop after the response.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;

use super::super::host::{Host, Signals};

/// Epoch yields an instance may make on the connection's task before it
/// moves to the executor.
const INLINE_YIELDS: u32 = 2;

/// The instance. Its first poll runs right here, on the connection's task:
/// most functions answer within it (no thread hop at all). If it has to
/// wait (request body, a clock, outbound I/O) or yields a third time at an
/// epoch tick, it moves to the runtime's executor, so a spinning instance
/// holds a socket thread for about three ticks. Aborted when dropped, unless
/// detached to finish after its response.
pub(super) struct GuestTask {
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
pub(super) struct Teardown {
    pub(super) _store: Store<Host>,
    pub(super) _permits: (
        OwnedSemaphorePermit,
        OwnedSemaphorePermit,
        OwnedSemaphorePermit,
    ),
}

impl GuestTask {
    pub(super) fn new(
        future: GuestFuture,
        executor: tokio::runtime::Handle,
        signals: Arc<Signals>,
    ) -> Self {
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
    pub(super) fn release(&mut self) {
        self.teardown = None;
    }

    /// Moves an instance still running inline to the executor, so that it
    /// runs on while the request waits on something else (its response
    /// body): inline, it only runs when the request's loop polls it.
    pub(super) fn run_elsewhere(&mut self) {
        self.state = match std::mem::replace(&mut self.state, GuestState::Finished) {
            GuestState::Inline(future) => GuestState::Spawned(self.executor.spawn(future)),
            other => other,
        };
    }

    pub(super) fn detach(mut self) {
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
