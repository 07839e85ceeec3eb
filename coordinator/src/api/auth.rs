//! Sign-up, sign-in and sign-out over JSON: the same rules as the
//! dashboard's forms, for scripts and tests. A session answers with its
//! cookie and the CSRF token that cookie-authenticated writes must send.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::accounts::{sign_in, sign_up, SignInError};
use super::error::{ApiError, ApiResult};
use super::extract::{client_ip_of, ApiJson};
use super::AppState;
use crate::accounts::ratelimit::Quota;
use crate::accounts::session;
use crate::store::User;

/// The client's address, for handlers that run before anyone is signed in.
pub struct ClientIp(pub String);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip_of(parts, state)))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub email: String,
    pub name: String,
    pub password: String,
    /// An invitation token (`inv_…`): joins that team too.
    pub invite: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
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

/// What a failed sign-in answers, shared with the dashboard.
pub fn sign_in_error(e: SignInError) -> Response {
    match e {
        SignInError::Invalid(q) => {
            let mut r = ApiError::unauthorized("wrong email or password").into_response();
            rate_headers(r.headers_mut(), &q);
            r
        }
        SignInError::Limited(q) => {
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many failed sign-ins; try again in {} seconds",
                    q.reset.as_secs().max(1)
                ),
            )
            .into_response();
            rate_headers(r.headers_mut(), &q);
            r
        }
        SignInError::Internal(e) => e.into_response(),
    }
}

fn session_response(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    cookie: &str,
    user: &User,
    csrf: &str,
) -> Response {
    let secure = session::wants_secure_cookie(headers, state.config.accounts.secure_cookies);
    let mut r = (status, Json(json!({ "user": user, "csrf": csrf }))).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(cookie, state.config.accounts.session_ttl, secure),
    );
    r
}

#[utoipa::path(
    post,
    path = "/auth/signup",
    tag = "auth",
    summary = "Create an account and open a session (the first account owns the instance)",
    request_body = SignUp,
    responses((status = 201, description = "Success"), super::openapi::Public),
    security(())
)]
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignUp>,
) -> ApiResult<Response> {
    let user = sign_up(
        &state,
        &body.email,
        &body.name,
        &body.password,
        body.invite.as_deref(),
        &ip,
    )
    .await?;
    let ua = user_agent(&headers);
    let (cookie, row) = session::new_session(&user.id, state.config.accounts.session_ttl, &ip, &ua);
    state.store.create_session(&row).await?;
    Ok(session_response(
        &state,
        &headers,
        StatusCode::CREATED,
        &cookie,
        &user,
        &row.csrf,
    ))
}

#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    summary = "Open a session; rate-limited per account and address (X-RateLimit-*, 429 + Retry-After)",
    request_body = SignIn,
    responses((status = 200, description = "Success"), super::openapi::Public, (status = 429, description = "Too many failed sign-ins", body = super::openapi::ErrorBody)),
    security(())
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> Response {
    match sign_in(
        &state,
        &body.email,
        &body.password,
        &ip,
        &user_agent(&headers),
    )
    .await
    {
        Ok((cookie, session, user, quota)) => {
            let mut r = session_response(
                &state,
                &headers,
                StatusCode::OK,
                &cookie,
                &user,
                &session.csrf,
            );
            rate_headers(r.headers_mut(), &quota);
            r
        }
        Err(e) => sign_in_error(e),
    }
}

/// Ends the session the cookie names (no CSRF check needed: at worst
/// another site signs the user out).
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    summary = "End the session named by the cookie",
    responses((status = 204, description = "Success"), super::openapi::Public),
    security(())
)]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(c) = session::session_cookie(&headers) {
        state
            .store
            .delete_session(&crate::ids::token_hash(c))
            .await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    Ok(r)
}

pub fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}
