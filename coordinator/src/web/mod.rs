//! The dashboard over HTTP: session-cookie handlers that gather what a page
//! shows, hand it to the `dashboard` crate to render, and send form posts
//! through the same API functions scripts call — so a browser can do
//! exactly what the API allows, with the same checks and audit entries.

mod account;
mod admin;
mod alerts;
mod analytics;
mod deployment;
mod errors;
mod flash;
mod project;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use dashboard::model::{ErrorPage, Nav, Page, UserNav};

use crate::accounts::authz::Via;
use crate::accounts::{session, Principal};
use crate::app::{App, AppError, ErrorKind};
use crate::store::now_ms;

pub use flash::Flash;

/// Forms anyone may send, signed in or not, are small.
fn small_body() -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(crate::http::UNAUTHENTICATED_BODY_BYTES)
}

pub fn router() -> Router<App> {
    Router::new()
        .route("/", get(project::overview))
        .route(
            "/login",
            get(account::login_page)
                .post(account::login)
                .layer(small_body()),
        )
        .route(
            "/signup",
            get(account::signup_page)
                .post(account::signup)
                .layer(small_body()),
        )
        .route("/logout", post(account::logout))
        .route("/account", get(account::account_page))
        .route("/account/password", post(account::change_password))
        .route(
            "/invite/{token}",
            get(account::invite_page)
                .post(account::accept_invite)
                .layer(small_body()),
        )
        .route("/projects", post(project::create))
        .route("/projects/{p}", get(project::deployments_tab))
        .route(
            "/projects/{p}/domains",
            get(project::domains_tab).post(project::add_domain),
        )
        .route(
            "/projects/{p}/env",
            get(project::env_tab).post(project::set_env),
        )
        .route(
            "/projects/{p}/env/{env}/{name}/delete",
            post(project::delete_env),
        )
        .route("/projects/{p}/outbound", post(project::set_outbound))
        .route(
            "/projects/{p}/domains/{d}/verify",
            post(project::verify_domain),
        )
        .route(
            "/projects/{p}/domains/{d}/delete",
            post(project::delete_domain),
        )
        .route(
            "/projects/{p}/domains/{d}/https",
            post(project::domain_https),
        )
        .route("/projects/{p}/functions", get(project::functions_tab))
        .route("/projects/{p}/analytics", get(analytics::tab))
        .route("/projects/{p}/errors", get(errors::tab))
        .route("/projects/{p}/errors/{id}", get(errors::issue))
        .route("/projects/{p}/errors/{id}/state", post(errors::set_state))
        .route(
            "/projects/{p}/errors/{id}/severity",
            post(errors::set_severity),
        )
        .route(
            "/projects/{p}/alerts",
            get(alerts::tab).post(alerts::add_rule),
        )
        .route(
            "/projects/{p}/alerts/{id}/remove",
            post(alerts::remove_rule),
        )
        .route("/projects/{p}/settings", get(project::settings_tab))
        .route("/projects/{p}/settings/git", post(project::set_git))
        .route(
            "/projects/{p}/settings/git/delete",
            post(project::delete_git),
        )
        .route("/projects/{p}/deploy", post(project::deploy))
        .route("/projects/{p}/rollback", post(project::rollback))
        .route("/projects/{p}/delete", post(project::delete_project))
        .route("/deployments/{id}", get(deployment::page))
        .route("/deployments/{id}/promote", post(deployment::promote))
        .route("/deployments/{id}/cancel", post(deployment::cancel))
        .route("/deployments/{id}/redeploy", post(deployment::redeploy))
        .route("/deployments/{id}/delete", post(deployment::delete))
        .route("/nodes", get(admin::nodes_page))
        .route("/nodes/join-tokens", post(admin::create_join_token))
        .route("/nodes/{id}/remove", post(admin::remove_node))
        .route("/nodes/alerts", post(alerts::add_instance_rule))
        .route(
            "/nodes/alerts/{id}/remove",
            post(alerts::remove_instance_rule),
        )
        .route("/tokens", get(admin::tokens_page).post(admin::create_token))
        .route("/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/teams", get(admin::teams_index).post(admin::create_team))
        .route("/teams/{id}", get(admin::team_page))
        .route("/teams/{id}/invitations", post(admin::invite))
        .route(
            "/teams/{id}/invitations/{iid}/revoke",
            post(admin::revoke_invitation),
        )
        .route("/teams/{id}/members/{uid}/role", post(admin::set_role))
        .route("/teams/{id}/channels", post(alerts::add_channel))
        .route(
            "/teams/{id}/channels/{cid}/test",
            post(alerts::test_channel),
        )
        .route(
            "/teams/{id}/channels/{cid}/remove",
            post(alerts::remove_channel),
        )
        .route(
            "/teams/{id}/members/{uid}/remove",
            post(admin::remove_member),
        )
        .route("/audit", get(admin::audit_page))
        .route("/assets/{file}", get(asset))
}

async fn asset(Path(file): Path<String>) -> Response {
    match dashboard::asset(&file) {
        Some((bytes, content_type)) => (
            [
                (header::CONTENT_TYPE, content_type),
                // Pages link assets with a version query, so a new
                // binary's assets are new URLs.
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The CSRF token every form carries.
#[derive(serde::Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

/// A form with nothing but the CSRF token (one-button actions).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A form post from a signed-in user whose CSRF token checked out, and
/// its fields. Every handler that changes something takes one, so none
/// can forget the check, and the check comes before anything runs.
pub struct Post<F> {
    pub signed: SignedIn,
    pub form: F,
}

impl<F: serde::de::DeserializeOwned + Send> axum::extract::FromRequest<App> for Post<F> {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, app: &App) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = SignedIn::from_request_parts(&mut parts, app).await?;
        let req = axum::extract::Request::from_parts(parts, body);
        let bytes = axum::body::Bytes::from_request(req, app)
            .await
            .map_err(IntoResponse::into_response)?;
        let bad_form = |e: serde_urlencoded::de::Error| {
            WebError {
                status: StatusCode::BAD_REQUEST,
                heading: "That did not work".into(),
                message: format!("The form was not what this page sends: {e}."),
            }
            .into_response()
        };
        let csrf: CsrfField = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        signed
            .check_csrf(&csrf.csrf)
            .map_err(IntoResponse::into_response)?;
        let form = serde_urlencoded::from_bytes(&bytes).map_err(bad_form)?;
        Ok(Post { signed, form })
    }
}

/// A signed-in dashboard user (session cookie only: API tokens are not
/// for browsers). Without one, pages redirect to the sign-in form.
pub struct SignedIn {
    pub who: Principal,
    pub csrf: String,
    /// A one-shot message from the previous action, if any.
    pub flash: Option<Flash>,
}

impl FromRequestParts<App> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Response> {
        let ip = session::client_ip_of_parts(parts, state.config.accounts.proxies());
        let who = match session::resolve_session(
            &state.store,
            &parts.headers,
            ip,
            session::wants_secure_cookie(&parts.headers, state.config.accounts.secure_cookies),
        )
        .await
        {
            Ok(Ok(Some(who))) => who,
            Ok(_) => return Err(to_login(parts)),
            Err(e) => return Err(WebError::from(AppError::from(e)).into_response()),
        };
        let Via::Session { csrf, .. } = &who.via else {
            return Err(to_login(parts));
        };
        let csrf = csrf.clone();
        Ok(SignedIn {
            who,
            csrf,
            flash: Flash::from_headers(&parts.headers),
        })
    }
}

fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let next = if parts.method == axum::http::Method::GET {
        next
    } else {
        "/"
    };
    Redirect::to(&format!("/login?next={}", urlencode(next))).into_response()
}

impl SignedIn {
    /// The frame every page shares.
    pub fn page(&self, title: impl Into<String>, nav: Nav) -> Page {
        let user = self.who.user.as_ref();
        Page {
            title: title.into(),
            user: user.map(|u| UserNav {
                email: u.email.clone(),
                name: u.name.clone(),
                instance_owner: self.who.is_instance_owner(),
            }),
            csrf: self.csrf.clone(),
            flash: self.flash.as_ref().map(Flash::to_model),
            nav,
            now_ms: now_ms(),
        }
    }

    /// Every state-changing form carries the session's CSRF token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        if session::csrf_matches(&self.csrf, submitted) {
            Ok(())
        } else {
            Err(WebError {
                status: StatusCode::FORBIDDEN,
                heading: "This form has expired".into(),
                message: "The page was open too long or came from another site. Go back, reload the page and try again.".into(),
            })
        }
    }
}

/// A page, clearing the flash cookie if one was shown.
pub fn render(signed: &SignedIn, html: String) -> Response {
    let mut r = Html(html).into_response();
    if signed.flash.is_some() {
        r.headers_mut()
            .append(header::SET_COOKIE, flash::clear_cookie());
    }
    r
}

/// After a successful form post: to a page, with a message of success.
pub fn success(to: &str, message: impl Into<String>) -> Response {
    done(to, Flash::success(message))
}

/// After a form post: back to a page, with a message.
pub fn done(to: &str, flash: Flash) -> Response {
    let mut r = Redirect::to(to).into_response();
    r.headers_mut().append(header::SET_COOKIE, flash.cookie());
    r
}

/// Runs a form's use case (its [`Post`] already passed the CSRF check),
/// then redirects: where `ok` says on success, or back to `back` with the
/// reason it failed.
pub async fn act<T>(
    back: &str,
    call: impl std::future::Future<Output = Result<T, AppError>>,
    ok: impl FnOnce(T) -> Response,
) -> WebResult<Response> {
    Ok(match call.await {
        Ok(v) => ok(v),
        Err(e) => failed(back, e),
    })
}

/// A failed form post whose page can show the reason: back there with it.
pub fn failed(to: &str, e: AppError) -> Response {
    if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Internal) {
        return WebError::from(e).into_response();
    }
    done(to, Flash::error(e.message))
}

/// An error page a person can act on.
#[derive(Debug)]
pub struct WebError {
    pub status: StatusCode,
    pub heading: String,
    pub message: String,
}

impl WebError {
    pub fn not_found(what: &str) -> Self {
        WebError {
            status: StatusCode::NOT_FOUND,
            heading: "Not found".into(),
            message: format!("There is no {what} here, or you do not have access to it."),
        }
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        let status = e.status();
        let heading = match e.kind {
            ErrorKind::NotFound => "Not found",
            ErrorKind::Forbidden => "Not allowed",
            ErrorKind::Unauthenticated => "Please sign in",
            ErrorKind::Conflict => "That cannot be done right now",
            ErrorKind::Internal => "Something went wrong",
            _ => "That did not work",
        };
        let message = if e.kind == ErrorKind::NotFound {
            "It does not exist, or you do not have access to it.".to_string()
        } else {
            e.message
        };
        WebError {
            status,
            heading: heading.into(),
            message,
        }
    }
}

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::from(e).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let page = Page {
            title: self.heading.clone(),
            now_ms: now_ms(),
            nav: Nav::None,
            ..Default::default()
        };
        let html = dashboard::error(
            &page,
            &ErrorPage {
                status: self.status.as_u16(),
                heading: self.heading,
                message: self.message,
            },
        );
        (self.status, Html(html)).into_response()
    }
}

pub type WebResult<T> = Result<T, WebError>;

/// Forms posted without a session (sign-in, sign-up) are checked against
/// the Origin header instead: a browser always sends it on a POST, and a
/// form on another site would name that site.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Only local paths are followed after sign-in: `//evil.example` and
/// absolute URLs would make the form an open redirect.
pub fn safe_next(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && next.len() <= 500
        && !next.chars().any(|c| c.is_control());
    if ok {
        next
    } else {
        "/"
    }
}

pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_always_local() {
        for (next, want) in [
            ("/projects/blog", "/projects/blog"),
            ("/", "/"),
            ("//evil.example/x", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example", "/"),
            ("", "/"),
            ("/a\nb", "/"),
        ] {
            assert_eq!(safe_next(next), want, "{next:?}");
        }
    }

    #[test]
    fn origin_must_match_host_when_sent() {
        let mut h = HeaderMap::new();
        assert!(
            same_origin(&h),
            "no Origin: allowed (SameSite cookies still apply)"
        );
        h.insert(header::HOST, "127.0.0.1:7000".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:7000".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&h));
    }

    #[test]
    fn urlencode_keeps_paths_readable() {
        assert_eq!(
            urlencode("/projects/a b?x=1&y"),
            "/projects/a%20b%3Fx%3D1%26y"
        );
    }
}
