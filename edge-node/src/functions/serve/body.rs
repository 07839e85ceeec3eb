//! The request body's way from the client to the instance: [`Pump`] on
//! the connection's side, [`RequestBody`] on the instance's, a bounded
//! channel between them (none for a request without a body).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use tokio::sync::mpsc;

use super::super::host::Signals;

pub(super) type BodyItem = Result<Bytes, wasmtime_wasi_http::Error>;

/// Moves the client's request body into the instance, one chunk at a time
/// (backpressure: nothing more is read while a chunk waits).
pub(super) struct Pump {
    pub(super) tx: Option<mpsc::Sender<BodyItem>>,
    pub(super) pending: Option<BodyItem>,
    /// Nothing more will be read from the client.
    pub(super) eof: bool,
    /// Says when the client's body was read to its end.
    pub(super) signals: Arc<Signals>,
    pub(super) received: u64,
    pub(super) limit: u64,
}

impl Pump {
    pub(super) fn wants_read(&self) -> bool {
        !self.eof && self.pending.is_none() && self.tx.is_some()
    }

    pub(super) fn has_pending(&self) -> bool {
        self.pending.is_some() && self.tx.is_some()
    }

    pub(super) fn is_complete(&self) -> bool {
        self.signals.body_complete.load(Ordering::Acquire)
    }

    pub(super) fn offer(&mut self, chunk: Bytes) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Ok(chunk)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(item)) => self.pending = Some(item),
            // The instance dropped the body: it does not want the rest.
            Err(mpsc::error::TrySendError::Closed(_)) => self.tx = None,
        }
    }

    /// A reservation made while a chunk (or the final error) waited.
    pub(super) fn deliver(
        &mut self,
        permit: Result<mpsc::OwnedPermit<BodyItem>, mpsc::error::SendError<()>>,
    ) {
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
    pub(super) fn finish(&mut self, error: Option<wasmtime_wasi_http::Error>) {
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
pub(super) struct RequestBody {
    /// `None` for a request without a body.
    pub(super) rx: Option<mpsc::Receiver<BodyItem>>,
    pub(super) signals: Arc<Signals>,
    pub(super) done: bool,
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

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
