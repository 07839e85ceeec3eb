//! Extractors: the caller's principal, JSON with typed rejections, pagination.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::accounts::authz::Via;
use crate::accounts::{session, Principal};
use crate::app::{App, ErrorKind};

/// Every API route but health and webhooks needs a principal: a bearer
/// API token, or the dashboard's session cookie. With a cookie, a request
/// that changes something must also carry the session's CSRF token in
/// `X-CSRF-Token`, so another site cannot make the browser send it.
impl FromRequestParts<App> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, ApiError> {
        // The rate-limit middleware has usually looked the credential up.
        let known = parts
            .extensions
            .remove::<super::limits::Authenticated>()
            .map(|a| a.0);
        let ip = client_ip_of(parts, state);
        let who = match known {
            Some(who) => who,
            None => match session::resolve(
                &state.store,
                &parts.headers,
                ip,
                session::wants_secure_cookie(&parts.headers, state.config.accounts.secure_cookies),
            )
            .await?
            {
                Ok(Some(who)) => who,
                Ok(None) => {
                    return Err(ApiError::unauthorized(
                        "missing Authorization: Bearer <token> header",
                    ))
                }
                Err(e) => return Err(ApiError::unauthorized(e.to_string())),
            },
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
                        ErrorKind::Forbidden,
                        "csrf",
                        "missing or wrong X-CSRF-Token for a cookie-authenticated request",
                    ));
                }
            }
        }
        Ok(who)
    }
}

pub use crate::http::client_ip as client_ip_of;

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
                    ErrorKind::TooLarge,
                    "payload_too_large",
                    "request body exceeds limits.max_json_bytes",
                ))
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::new(
                ErrorKind::UnsupportedMedia,
                "unsupported_media_type",
                "send Content-Type: application/json",
            )),
            Err(e) => Err(ApiError::bad_request("bad_json", e.body_text())),
        }
    }
}

pub use crate::app::page::{time_cursor, Page, PageQuery};
