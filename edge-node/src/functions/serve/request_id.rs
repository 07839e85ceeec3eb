//! The request id: ours, random, never request data.

use std::fmt;

use http::header::{HeaderName, HeaderValue};

/// The response header a request's id goes out in.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request's id: random, written as 16 hex digits (`x-request-id`, our
/// error pages, the function's log lines, request logs). Kept as a number
/// so a request that logs nothing never formats it. Every function request
/// has one; any other request only when its project has a request log
/// drain (it is sampled by it, see `crate::requestlog`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestId(pub(super) u64);

impl RequestId {
    pub fn new() -> Self {
        RequestId(rand::random())
    }

    /// The number, as request logs are sampled by it.
    pub fn get(self) -> u64 {
        self.0
    }

    #[cfg(test)]
    pub fn from_u64(id: u64) -> Self {
        RequestId(id)
    }

    pub(crate) fn header_value(self) -> HeaderValue {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
