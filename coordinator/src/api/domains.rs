//! Custom domains (`app::domains` holds the rules).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::ApiResult;
use super::extract::ApiJson;
use crate::accounts::Principal;
use crate::app::domains::{DomainView, Target};
use crate::app::{self, App};
use crate::store::CertRow;

/// `field: null` (Some(None)) apart from a field left out (None).
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn serialize<T: Serialize, S: Serializer>(
        v: &Option<Option<T>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }
}

/// A DNS record to create.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub value: String,
}

impl From<crate::domains::dns::Record> for DnsRecord {
    fn from(r: crate::domains::dns::Record) -> Self {
        DnsRecord {
            kind: r.kind,
            name: r.name,
            value: r.value,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Domain {
    pub name: String,
    pub project: String,
    /// `production`, `branch` or `redirect`.
    pub target: String,
    pub branch: Option<String>,
    /// For a redirecting domain: where to, and with which status.
    pub redirect_to: Option<String>,
    pub redirect_status: Option<u16>,
    /// `pending` (no DNS records yet), `ownership` (the TXT record below is
    /// awaited), `misconfigured` (records point elsewhere: see `found`),
    /// `active` (served by every edge).
    pub state: String,
    /// Whether edges serve it now.
    pub served: bool,
    /// What the last check found, when it pointed elsewhere.
    pub found: Option<String>,
    /// Unix ms of the last DNS check.
    pub checked_at: Option<i64>,
    /// The records that point the domain at this platform.
    pub records: Vec<DnsRecord>,
    /// The TXT record that proves ownership (another team uses a parent
    /// name), if required.
    pub ownership: Option<DnsRecord>,
    /// The publicly trusted certificate from the ACME CA.
    pub certificate: Certificate,
    /// Plain HTTP answers 308 to HTTPS once the certificate is active.
    pub https_redirect: bool,
    /// `Strict-Transport-Security` sent over HTTPS, if set.
    pub hsts: Option<Hsts>,
    pub created_at: i64,
}

/// A domain's certificate.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Certificate {
    /// `none` (the coordinator issues none), `waiting` (for DNS),
    /// `pending`, `issuing`, `active`, `renewing`, `failed`.
    pub state: String,
    /// The CA's directory that issued the one held.
    pub issuer: Option<String>,
    /// Unix seconds: the held certificate's end.
    pub not_after: Option<i64>,
    /// Unix ms: when it will be renewed.
    pub renew_at: Option<i64>,
    /// The CA's problem document of the last failure, verbatim.
    pub error: Option<String>,
    /// Failures in a row.
    pub failures: i64,
    /// Unix ms of the next attempt after a failure (`None`: given up
    /// after 30 days of failures; `domains verify` tries again).
    pub next_retry_at: Option<i64>,
    /// The challenge type of the last attempt.
    pub challenge: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    /// Seconds (at most two years).
    pub max_age: u32,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

impl From<DomainView> for Domain {
    fn from(v: DomainView) -> Self {
        let state = v.state().to_string();
        let served = v.row.serves();
        let c = v.cert.as_ref();
        let certificate = Certificate {
            state: v.cert_state().to_string(),
            issuer: c.and_then(|c| c.issuer.clone()),
            not_after: c.and_then(|c| c.not_after),
            renew_at: c.and_then(|c| c.renew_at),
            error: c.and_then(|c| c.error.clone()),
            failures: c.map_or(0, |c| c.failures),
            next_retry_at: c.and_then(CertRow::next_retry),
            challenge: c.and_then(|c| c.challenge.clone()),
        };
        let hsts = v.row.hsts_max_age.map(|m| Hsts {
            max_age: u32::try_from(m).unwrap_or(u32::MAX),
            include_subdomains: v.row.hsts_include_subdomains,
            preload: v.row.hsts_preload,
        });
        Domain {
            name: v.row.name,
            project: v.project,
            target: v.row.target,
            branch: v.row.branch,
            redirect_to: v.row.redirect_to,
            redirect_status: v.row.redirect_status.and_then(|s| u16::try_from(s).ok()),
            state,
            served,
            found: v.row.dns_detail,
            checked_at: v.row.checked_at,
            records: v.records.into_iter().map(DnsRecord::from).collect(),
            ownership: v.ownership.map(DnsRecord::from),
            certificate,
            https_redirect: v.row.https_redirect,
            hsts,
            created_at: v.row.created_at,
        }
    }
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDomain {
    pub name: String,
    /// Point at this branch's newest build (a stable staging domain)
    /// instead of production.
    #[serde(default)]
    pub branch: Option<String>,
    /// Redirect every request to this domain of the same project instead
    /// (`shop.com` → `www.shop.com`).
    #[serde(default)]
    pub redirect_to: Option<String>,
    /// 301, 302, 307 or 308 (default).
    #[serde(default)]
    pub redirect_status: Option<u16>,
    /// Plain HTTP redirects to HTTPS once the certificate is active
    /// (default true).
    #[serde(default)]
    pub https_redirect: Option<bool>,
    /// Send `Strict-Transport-Security` (default: not sent).
    #[serde(default)]
    pub hsts: Option<Hsts>,
}

/// Changes to a domain's HTTPS settings; a field left out stays as it is.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDomain {
    #[serde(default)]
    pub https_redirect: Option<bool>,
    /// `null` turns HSTS off.
    #[serde(default, with = "serde_with_double_option")]
    #[schema(value_type = Option<Hsts>)]
    pub hsts: Option<Option<Hsts>>,
}

impl From<Hsts> for app::domains::HstsPolicy {
    fn from(h: Hsts) -> Self {
        app::domains::HstsPolicy {
            max_age: h.max_age,
            include_subdomains: h.include_subdomains,
            preload: h.preload,
        }
    }
}

#[utoipa::path(
    get,
    path = "/projects/{project}/domains",
    tag = "domains",
    summary = "The project's custom domains",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success", body = Vec<Domain>), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Domain>>> {
    let list = app::domains::list(&app, &who, &project).await?;
    Ok(Json(list.into_iter().map(Domain::from).collect()))
}

#[utoipa::path(
    post,
    path = "/projects/{project}/domains",
    tag = "domains",
    summary = "Add a custom domain; the answer lists the DNS records to create",
    params(("project" = String, Path)),
    request_body = AddDomain,
    responses((status = 201, description = "Added", body = Domain), super::openapi::Guarded)
)]
pub async fn add(
    who: Principal,
    State(app): State<App>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<AddDomain>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let target = match (body.branch, body.redirect_to) {
        (Some(_), Some(_)) => {
            return Err(app::AppError::invalid(
                "invalid_target",
                "a domain points at a branch or redirects, not both",
            ))
        }
        (Some(b), None) => Target::Branch(b),
        (None, Some(to)) => Target::Redirect {
            to,
            status: body.redirect_status.unwrap_or(308),
        },
        (None, None) => Target::Production,
    };
    let https = app::domains::Https {
        redirect: body.https_redirect.unwrap_or(true),
        hsts: body.hsts.map(Into::into),
    };
    let d = app::domains::add(&app, &who, &project, &body.name, target, https).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
}

#[utoipa::path(
    patch,
    path = "/domains/{domain}",
    tag = "domains",
    summary = "Change a custom domain's HTTPS redirect and HSTS",
    params(("domain" = String, Path)),
    request_body = UpdateDomain,
    responses((status = 200, description = "Changed", body = Domain), super::openapi::Guarded)
)]
pub async fn update(
    who: Principal,
    State(app): State<App>,
    Path(domain): Path<String>,
    ApiJson(body): ApiJson<UpdateDomain>,
) -> ApiResult<Json<Domain>> {
    let d = app::domains::set_https(
        &app,
        &who,
        &domain,
        body.https_redirect,
        body.hsts.map(|h| h.map(Into::into)),
    )
    .await?;
    Ok(Json(d.into()))
}

#[utoipa::path(
    get,
    path = "/domains/{domain}",
    tag = "domains",
    summary = "A custom domain's state and the records it needs",
    params(("domain" = String, Path)),
    responses((status = 200, description = "Success", body = Domain), super::openapi::Guarded)
)]
pub async fn inspect(
    who: Principal,
    State(app): State<App>,
    Path(domain): Path<String>,
) -> ApiResult<Json<Domain>> {
    Ok(Json(
        app::domains::inspect(&app, &who, &domain).await?.into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/domains/{domain}",
    tag = "domains",
    summary = "Remove a custom domain (every edge stops serving it)",
    params(("domain" = String, Path)),
    responses((status = 204, description = "Removed"), super::openapi::Guarded)
)]
pub async fn remove(
    who: Principal,
    State(app): State<App>,
    Path(domain): Path<String>,
) -> ApiResult<StatusCode> {
    app::domains::remove(&app, &who, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/domains/{domain}/verify",
    tag = "domains",
    summary = "Check the domain's DNS now",
    params(("domain" = String, Path)),
    responses((status = 200, description = "Checked", body = Domain), super::openapi::Guarded)
)]
pub async fn verify(
    who: Principal,
    State(app): State<App>,
    Path(domain): Path<String>,
) -> ApiResult<Json<Domain>> {
    Ok(Json(
        app::domains::verify(&app, &who, &domain).await?.into(),
    ))
}
