//! What the API and the dashboard share of HTTP, so neither calls the
//! other: the status each kind of application error is answered with, the
//! client address of a request, the user agent, the `X-RateLimit-*`
//! headers of sign-in answers, and the security headers of every answer.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::accounts::ratelimit::Quota;
use crate::accounts::session;
use crate::app::{App, AppError, ErrorKind};

/// Bodies of what anyone may send without a credential (sign-up, sign-in,
/// an invitation): a few fields, never megabytes.
pub const UNAUTHENTICATED_BODY_BYTES: usize = 16 * 1024;

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
    session::client_ip_of_parts(parts, app.config.accounts.proxies())
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

/// What every page and API answer carries: nothing of ours may be framed
/// (clickjacking), sniffed into another type, or leak its URL to other
/// sites, and the dashboard runs only its own script and style. HSTS only
/// when the browser came over TLS (`secure_cookies`, or a proxy saying
/// `X-Forwarded-Proto: https`): over plain HTTP it would mean nothing.
pub async fn security_headers(
    axum::extract::State(tls): axum::extract::State<bool>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let over_tls = session::wants_secure_cookie(req.headers(), tls);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        h.insert(*name, HeaderValue::from_static(value));
    }
    if over_tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

/// The headers [`security_headers`] sets on every answer.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

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
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
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
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ] {
            assert_eq!(ApiError::new(kind, "x", "y").status().as_u16(), status);
        }
    }
}
