//! Why a request got one of our pages instead of the function's answer,
//! the page itself, and how an instance's error is told apart.

use bytes::Bytes;
use wasmtime::Trap;

use super::super::metrics::Outcome;
use super::RequestId;

/// Why a request got one of our pages instead of the function's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    BadRequest,
    TooLarge,
    Busy,
    Unavailable,
    /// The project's variables are sealed to a key this node has not
    /// received yet (just after a start).
    Sealed,
    Trap,
    Memory,
    Timeout,
    NoResponse,
}

impl Failure {
    pub(super) fn status(self) -> u16 {
        match self {
            Failure::BadRequest => 400,
            Failure::TooLarge => 413,
            Failure::Busy | Failure::Unavailable | Failure::Sealed => 503,
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
            Failure::Sealed => (
                "Temporarily unavailable",
                "This server has not yet received what it needs to run this function. Please retry in a moment.",
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

    pub(super) fn outcome(self) -> Outcome {
        match self {
            Failure::TooLarge | Failure::Busy => Outcome::Rejected,
            _ => Outcome::Error,
        }
    }
}

/// Our error page. The request id is ours (hex), never request data.
pub(super) fn error_page(failure: Failure, request_id: RequestId) -> Bytes {
    let status = failure.status();
    let (title, detail) = failure.text();
    let footer = format!("<p><small>Request id: <code>{request_id}</code> · outpost</small></p>");
    crate::http::pages::framed(status, title, detail, &footer)
}

pub(super) fn classify(error: &wasmtime::Error, memory_exceeded: bool) -> Failure {
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        Failure::Timeout
    } else if memory_exceeded {
        Failure::Memory
    } else {
        Failure::Trap
    }
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
            Failure::Sealed,
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
    fn trap_classification() {
        let interrupt = wasmtime::Error::from(Trap::Interrupt);
        assert_eq!(classify(&interrupt, false), Failure::Timeout);
        assert_eq!(classify(&interrupt, true), Failure::Timeout);
        let unreachable = wasmtime::Error::from(Trap::UnreachableCodeReached);
        assert_eq!(classify(&unreachable, true), Failure::Memory);
        assert_eq!(classify(&unreachable, false), Failure::Trap);
    }
}
