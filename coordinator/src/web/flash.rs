//! One-shot messages after a form post ("Variable saved", or why it was
//! refused), carried across the redirect in a short-lived cookie rather
//! than the URL, so nobody can craft a link that shows our users a message.

use axum::http::{HeaderMap, HeaderValue};
use dashboard::model::{self, FlashKind};

const COOKIE: &str = "outpost_flash";
const MAX_MESSAGE: usize = 400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub kind: FlashKind,
    pub message: String,
}

impl Flash {
    pub fn success(message: impl Into<String>) -> Self {
        Flash {
            kind: FlashKind::Success,
            message: message.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Flash {
            kind: FlashKind::Error,
            message: message.into(),
        }
    }

    pub fn to_model(&self) -> model::Flash {
        model::Flash {
            kind: self.kind,
            message: self.message.clone(),
        }
    }

    /// `k` + hex of the message: cookie-safe without another encoding crate.
    pub fn cookie(&self) -> HeaderValue {
        let kind = match self.kind {
            FlashKind::Info => 'i',
            FlashKind::Success => 's',
            FlashKind::Error => 'e',
        };
        let message: String = self.message.chars().take(MAX_MESSAGE).collect();
        HeaderValue::from_str(&format!(
            "{COOKIE}={kind}{}; Path=/; HttpOnly; SameSite=Lax; Max-Age=60",
            hex::encode(message.as_bytes())
        ))
        .expect("hex is a valid header value")
    }

    pub fn from_headers(headers: &HeaderMap) -> Option<Flash> {
        Self::decode(crate::accounts::session::cookie(headers, COOKIE)?)
    }

    fn decode(value: &str) -> Option<Flash> {
        if value.len() > 1 + 2 * 4 * MAX_MESSAGE {
            return None;
        }
        let mut chars = value.chars();
        let kind = match chars.next()? {
            'i' => FlashKind::Info,
            's' => FlashKind::Success,
            'e' => FlashKind::Error,
            _ => return None,
        };
        let bytes = hex::decode(chars.as_str()).ok()?;
        let message = String::from_utf8(bytes).ok()?;
        (!message.is_empty()).then_some(Flash { kind, message })
    }
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("outpost_flash=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_junk() {
        let f = Flash::error("name: \"<b>\" is not valid; ünïcode");
        let cookie = f.cookie();
        let value = cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("a=b; {value}").parse().unwrap(),
        );
        assert_eq!(Flash::from_headers(&h), Some(f));
        for junk in ["", "x41", "s4", "szz", "e"] {
            assert_eq!(Flash::decode(junk), None, "{junk:?}");
        }
        assert_eq!(Flash::success("x".repeat(1000)).message.len(), 1000);
        let long = Flash::success("x".repeat(1000)).cookie();
        assert!(long.len() < 1000, "capped in the cookie");
    }
}
