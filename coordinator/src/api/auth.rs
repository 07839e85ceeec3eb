//! Sign-up, sign-in and sign-out over JSON: the same rules as the
//! dashboard's forms, for scripts and tests. A session answers with its
//! cookie and the CSRF token that cookie-authenticated writes must send.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::views::SessionOpened;
use crate::accounts::session;
use crate::app::accounts::{self as acc, sign_in, sign_up, SignInError};
use crate::app::{App, ErrorKind};
pub use crate::http::{rate_headers, user_agent, ClientIp};
use crate::store::User;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub email: String,
    pub name: String,
    pub password: String,
    /// An invitation token (`inv_…`): joins that team too.
    pub invite: Option<String>,
    /// The setup token printed at the coordinator's first start (also in
    /// `<data_dir>/setup-token`): needed for the first account only.
    pub setup_token: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub email: String,
    pub password: String,
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
                ErrorKind::RateLimited,
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
    state: &App,
    headers: &HeaderMap,
    status: StatusCode,
    cookie: &str,
    user: &User,
    csrf: &str,
) -> Response {
    let secure = session::wants_secure_cookie(headers, state.config.accounts.secure_cookies);
    let body = SessionOpened {
        user: user.clone(),
        csrf: csrf.to_string(),
    };
    let mut r = (status, Json(body)).into_response();
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
    responses((status = 201, description = "Success", body = SessionOpened), super::openapi::Public),
    security(())
)]
pub async fn signup(
    State(state): State<App>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignUp>,
) -> ApiResult<Response> {
    let user = sign_up(
        &state,
        &body.email,
        &body.name,
        &body.password,
        acc::SignUpProof {
            invite: body.invite.as_deref(),
            setup: body.setup_token.as_deref(),
        },
        &ip,
    )
    .await?;
    let (cookie, row) = acc::open_session(&state, &user, &ip, &user_agent(&headers)).await?;
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
    responses((status = 200, description = "Success", body = SessionOpened), super::openapi::Public, (status = 429, description = "Too many failed sign-ins", body = super::openapi::ErrorBody)),
    security(())
)]
pub async fn login(
    State(state): State<App>,
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
pub async fn logout(State(state): State<App>, headers: HeaderMap) -> ApiResult<Response> {
    let secure = session::wants_secure_cookie(&headers, state.config.accounts.secure_cookies);
    if let Some(c) = session::session_cookie(&headers, secure) {
        acc::end_session(&state, c).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    for c in session::clear_cookies() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}
