//! Extractors: the caller's principal, JSON with typed rejections, pagination.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::accounts::authz::Via;
use crate::accounts::{session, Principal};

/// Every API route but health and webhooks needs a principal: a bearer
/// API token, or the dashboard's session cookie. With a cookie, a request
/// that changes something must also carry the session's CSRF token in
/// `X-CSRF-Token`, so another site cannot make the browser send it.
impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip_of(parts, state);
        let who = match session::resolve(&state.store, &parts.headers, ip).await? {
            Ok(Some(who)) => who,
            Ok(None) => {
                return Err(ApiError::unauthorized(
                    "missing Authorization: Bearer <token> header",
                ))
            }
            Err(e) => return Err(ApiError::unauthorized(e.to_string())),
        };
        if let Via::Session { csrf, .. } = &who.via {
            if !parts.method.is_safe() {
                let sent = parts
                    .headers
                    .get(session::CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !session::csrf_matches(csrf, sent) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "csrf",
                        "missing or wrong X-CSRF-Token for a cookie-authenticated request",
                    ));
                }
            }
        }
        Ok(who)
    }
}

/// The client address as the audit log and rate limits see it.
pub fn client_ip_of(parts: &Parts, state: &AppState) -> String {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    session::client_ip(
        &parts.headers,
        peer,
        state.config.accounts.trust_forwarded_for,
    )
}

/// `axum::Json` whose rejections are our typed errors.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body exceeds limits.max_json_bytes",
                ))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            )),
            Err(e) => Err(ApiError::bad_request("bad_json", e.body_text())),
        }
    }
}

pub const MAX_PAGE: i64 = 200;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_request(
                "bad_limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            )),
        }
    }

    /// The `(created_at, id)` a newest-first list continues after; the
    /// cursor is one [`time_cursor`] made.
    pub fn before(&self) -> Result<Option<(i64, &str)>, ApiError> {
        match self.cursor()? {
            None => Ok(None),
            Some(c) => c
                .split_once('.')
                .and_then(|(ts, id)| Some((ts.parse::<i64>().ok()?, id)))
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request("bad_cursor", "cursor is not one this API returned")
                }),
        }
    }

    pub fn cursor(&self) -> Result<Option<&str>, ApiError> {
        match self.cursor.as_deref() {
            Some(c) if c.len() > 200 => {
                Err(ApiError::bad_request("bad_cursor", "cursor is too long"))
            }
            other => Ok(other.filter(|c| !c.is_empty())),
        }
    }
}

/// The next-page cursor of a newest-first list that came back full.
pub fn time_cursor<T>(items: &[T], limit: i64, key: impl Fn(&T) -> (i64, &str)) -> Option<String> {
    let last = items.last().filter(|_| items.len() as i64 == limit)?;
    let (ts, id) = key(last);
    Some(format!("{ts}.{id}"))
}

#[derive(Debug, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
