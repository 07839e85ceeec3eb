//! Timers made only when something waits. Kept together: both make their
//! timer on the first poll that finds the awaited thing not ready, so a
//! request whose instance answers in its first poll registers none (each
//! would cost the runtime's timer wheel an insert and a removal). `within`
//! bounds the instance by its deadline; `expire_at` is the request's
//! backstop in the drive's select loop.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// `tokio::time::timeout_at`, but the timer is only made if the future
/// does not finish in its first poll: most instances answer within it,
/// and a timer costs the runtime's timer wheel an insert and a removal.
pub(super) async fn within<F: Future>(deadline: Instant, future: F) -> Option<F::Output> {
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
pub(super) fn expire_at(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
