//! Sign-in, sign-up, sign-out, the account page and invitation links.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use dashboard::model::{
    AccountPage, InvitePage, InviteSummary, LoginForm, Nav, Page, SignupForm, TeamRef,
};
use serde::Deserialize;

use super::{
    act, render, safe_next, same_origin, success, urlencode, NoFields, Post, SignedIn, WebError,
    WebResult,
};
use crate::accounts::session;
use crate::app::accounts::{self as acc, SignInError};
use crate::app::{App, ErrorKind};
use crate::http::{rate_headers, user_agent, ClientIp};
use crate::store::now_ms;

fn bare_page(title: &str) -> Page {
    Page {
        title: title.into(),
        nav: Nav::None,
        now_ms: now_ms(),
        ..Default::default()
    }
}

fn cross_site() -> WebError {
    WebError {
        status: StatusCode::FORBIDDEN,
        heading: "Not allowed".into(),
        message: "This form was sent from another site. Open the dashboard directly and try again."
            .into(),
    }
}

async fn signed_in(state: &App, headers: &HeaderMap) -> bool {
    let secure = session::wants_secure_cookie(headers, state.config.accounts.secure_cookies);
    match session::session_cookie(headers, secure) {
        Some(c) => acc::has_session(state, c).await,
        None => false,
    }
}

fn with_session(state: &App, headers: &HeaderMap, to: &str, cookie: &str) -> Response {
    let secure = session::wants_secure_cookie(headers, state.config.accounts.secure_cookies);
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(cookie, state.config.accounts.session_ttl, secure),
    );
    r
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_page(
    State(state): State<App>,
    headers: HeaderMap,
    Query(q): Query<NextQuery>,
) -> WebResult<Response> {
    let next = safe_next(q.next.as_deref().unwrap_or("/")).to_string();
    if signed_in(&state, &headers).await {
        return Ok(Redirect::to(&next).into_response());
    }
    if acc::no_accounts_yet(&state).await? {
        return Ok(Redirect::to("/signup").into_response());
    }
    let form = LoginForm {
        next,
        signup_open: state.config.accounts.open_signup,
        ..Default::default()
    };
    Ok(Html(dashboard::login(&bare_page("Sign in"), &form)).into_response())
}

#[derive(Deserialize)]
pub struct LoginPost {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<App>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<LoginPost>,
) -> WebResult<Response> {
    if !same_origin(&headers) {
        return Err(cross_site());
    }
    let next = safe_next(&f.next).to_string();
    let result = acc::sign_in(&state, &f.email, &f.password, &ip, &user_agent(&headers)).await;
    let (status, error, quota) = match result {
        Ok((cookie, _, _, quota)) => {
            let mut r = with_session(&state, &headers, &next, &cookie);
            rate_headers(r.headers_mut(), &quota);
            return Ok(r);
        }
        Err(SignInError::Invalid(q)) => (
            StatusCode::UNAUTHORIZED,
            "Wrong email or password.".to_string(),
            q,
        ),
        Err(SignInError::Limited(q)) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins. Wait {} minutes and try again.",
                q.reset.as_secs().div_ceil(60).max(1)
            ),
            q,
        ),
        Err(SignInError::Internal(e)) => return Err(e.into()),
    };
    let form = LoginForm {
        email: f.email.chars().take(254).collect(),
        error: Some(error),
        next,
        signup_open: state.config.accounts.open_signup,
    };
    let mut r = (status, Html(dashboard::login(&bare_page("Sign in"), &form))).into_response();
    rate_headers(r.headers_mut(), &quota);
    Ok(r)
}

#[derive(Deserialize)]
pub struct InviteQuery {
    invite: Option<String>,
    /// The setup token, from the link the coordinator printed.
    setup: Option<String>,
}

async fn invite_summary(state: &App, token: &str) -> Option<InviteSummary> {
    let (inv, team) = acc::invitation_and_team(state, token).await?;
    Some(InviteSummary {
        token: token.to_string(),
        team: team.name,
        role: inv.role.as_str().into(),
        invited_by: inv.created_by,
    })
}

async fn signup_form(
    state: &App,
    invite: Option<&str>,
    setup: Option<&str>,
) -> WebResult<SignupForm> {
    let first = acc::no_accounts_yet(state).await?;
    let invite = match invite.filter(|t| !t.is_empty()) {
        Some(t) => invite_summary(state, t).await,
        None => None,
    };
    Ok(SignupForm {
        closed: !first && !state.config.accounts.open_signup && invite.is_none(),
        first_account: first,
        invite,
        setup_token: setup
            .filter(|_| first)
            .map(|s| s.chars().take(100).collect()),
        ..Default::default()
    })
}

pub async fn signup_page(
    State(state): State<App>,
    headers: HeaderMap,
    Query(q): Query<InviteQuery>,
) -> WebResult<Response> {
    if signed_in(&state, &headers).await {
        let to = match q.invite.as_deref() {
            Some(t) if t.len() <= 100 => format!("/invite/{}", urlencode(t)),
            _ => "/".into(),
        };
        return Ok(Redirect::to(&to).into_response());
    }
    let form = signup_form(&state, q.invite.as_deref(), q.setup.as_deref()).await?;
    Ok(Html(dashboard::signup(&bare_page("Create your account"), &form)).into_response())
}

#[derive(Deserialize)]
pub struct SignupPost {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    invite: String,
    #[serde(default)]
    setup: String,
}

pub async fn signup(
    State(state): State<App>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(f): Form<SignupPost>,
) -> WebResult<Response> {
    if !same_origin(&headers) {
        return Err(cross_site());
    }
    let invite = Some(f.invite.as_str()).filter(|t| !t.is_empty());
    let setup = Some(f.setup.as_str()).filter(|t| !t.is_empty());
    let proof = acc::SignUpProof { invite, setup };
    match acc::sign_up(&state, &f.email, &f.name, &f.password, proof, &ip).await {
        Ok(user) => {
            let (cookie, _) = acc::open_session(&state, &user, &ip, &user_agent(&headers)).await?;
            Ok(with_session(&state, &headers, "/", &cookie))
        }
        Err(e) if e.kind != ErrorKind::Internal => {
            let mut form = signup_form(&state, invite, setup).await?;
            form.email = f.email.chars().take(254).collect();
            form.name = f.name.chars().take(100).collect();
            form.error = Some(sentence(&e.message));
            let html = dashboard::signup(&bare_page("Create your account"), &form);
            Ok((e.status(), Html(html)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// "password must be…" → "Password must be…."
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    let mut out: String = match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

pub async fn logout(State(state): State<App>, headers: HeaderMap) -> WebResult<Response> {
    let secure = session::wants_secure_cookie(&headers, state.config.accounts.secure_cookies);
    if let Some(c) = session::session_cookie(&headers, secure) {
        acc::end_session(&state, c).await?;
    }
    let mut r = Redirect::to("/login").into_response();
    for c in session::clear_cookies() {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(r)
}

pub async fn account_page(State(state): State<App>, signed: SignedIn) -> WebResult<Response> {
    let user = signed
        .who
        .user
        .clone()
        .ok_or_else(|| WebError::not_found("account"))?;
    let teams = acc::my_teams(&state, &signed.who)
        .await?
        .into_iter()
        .map(|t| TeamRef {
            id: t.id,
            name: t.name,
            role: t.role.as_str().into(),
        })
        .collect();
    let page = AccountPage {
        email: user.email,
        name: user.name,
        created_at: user.created_at,
        error: None,
        teams,
    };
    let html = dashboard::account(&signed.page("Account", Nav::Account), &page);
    Ok(render(&signed, html))
}

#[derive(Deserialize)]
pub struct PasswordPost {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(state): State<App>,
    Post { signed, form: f }: Post<PasswordPost>,
) -> WebResult<Response> {
    act(
        "/account",
        acc::change_password(&state, &signed.who, &f.current_password, &f.new_password),
        |()| {
            success(
                "/account",
                "Password changed. Other sessions were signed out.",
            )
        },
    )
    .await
}

pub async fn invite_page(
    State(state): State<App>,
    Path(token): Path<String>,
    signed: Result<SignedIn, Response>,
) -> WebResult<Response> {
    let Ok(signed) = signed else {
        // Not signed in: create an account through the invitation (or
        // sign in and come back).
        return Ok(Redirect::to(&format!("/signup?invite={}", urlencode(&token))).into_response());
    };
    let invite = invite_summary(&state, &token).await;
    let page = InvitePage {
        error: invite.is_none().then(|| {
            "This invitation link is unknown, expired, revoked or already used. Ask the team owner for a new one.".to_string()
        }),
        invite,
    };
    let html = dashboard::invite(&signed.page("Invitation", Nav::Team), &page);
    Ok(render(&signed, html))
}

pub async fn accept_invite(
    State(state): State<App>,
    Path(token): Path<String>,
    Post { signed, .. }: Post<NoFields>,
) -> WebResult<Response> {
    act(
        "/teams",
        acc::accept_invitation(&state, &signed.who, &token),
        |inv| success(&format!("/teams/{}", inv.team_id), "Welcome to the team."),
    )
    .await
}
