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
    pub created_at: i64,
}

impl From<DomainView> for Domain {
    fn from(v: DomainView) -> Self {
        let state = v.state().to_string();
        let served = v.row.serves();
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
    let d = app::domains::add(&app, &who, &project, &body.name, target).await?;
    Ok((StatusCode::CREATED, Json(d.into())))
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
