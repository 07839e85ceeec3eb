//! What the API and the dashboard share of HTTP, so neither calls the
//! other: the status each kind of application error is answered with, the
//! client address of a request, the user agent, and the `X-RateLimit-*`
//! headers of sign-in answers.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::accounts::ratelimit::Quota;
use crate::accounts::session;
use crate::app::{App, AppError, ErrorKind};

/// The client's address, for handlers that run before anyone is signed in.
pub struct ClientIp(pub String);

impl FromRequestParts<App> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, AppError> {
        Ok(ClientIp(client_ip(parts, app)))
    }
}

/// The client address as the audit log and rate limits see it.
pub fn client_ip(parts: &Parts, app: &App) -> String {
    session::client_ip_of_parts(parts, app.config.accounts.trust_forwarded_for)
}

/// The request's `User-Agent`, bounded, for the sessions list.
pub fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

/// `X-RateLimit-*` on every sign-in answer, `Retry-After` when refused.
pub fn rate_headers(headers: &mut HeaderMap, q: &Quota) {
    let reset = q.reset.as_secs() + u64::from(q.reset.subsec_nanos() > 0);
    headers.insert("x-ratelimit-limit", HeaderValue::from(q.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(q.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(reset));
    if q.remaining == 0 {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(reset.max(1)));
    }
}

impl AppError {
    /// The HTTP status an error of this kind is answered with.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Gone => StatusCode::GONE,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::QuotaExceeded => StatusCode::FORBIDDEN,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppError as ApiError;

    #[test]
    fn every_kind_has_its_status() {
        for (kind, status) in [
            (ErrorKind::Invalid, 400),
            (ErrorKind::Unauthenticated, 401),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Gone, 410),
            (ErrorKind::TooLarge, 413),
            (ErrorKind::UnsupportedMedia, 415),
            (ErrorKind::RateLimited, 429),
            (ErrorKind::QuotaExceeded, 403),
            (ErrorKind::Internal, 500),
        ] {
            assert_eq!(ApiError::new(kind, "x", "y").status().as_u16(), status);
        }
    }
}
