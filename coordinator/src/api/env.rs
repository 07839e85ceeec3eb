//! Per-project environment variables (plain or secret) and the outbound
//! allow-list for functions. Secret values go in, never out.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::{ApiError, ApiResult};
use super::extract::ApiJson;
use super::projects;
use super::AppState;
use crate::accounts::{audit, Principal};
use crate::store::EnvVarRow;
use crate::store::Role;

pub const MAX_VARS: usize = 200;
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
pub const MAX_OUTBOUND_HOSTS: usize = 50;

#[derive(Serialize)]
pub struct EnvVarView {
    pub name: String,
    pub env: String,
    pub secret: bool,
    /// Absent for secrets: once set, a secret is never shown again.
    pub value: Option<String>,
    pub updated_at: i64,
}

fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && n.len() <= 128
        && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn kinds(env: &str) -> ApiResult<Vec<&'static str>> {
    match env {
        "production" => Ok(vec!["production"]),
        "preview" => Ok(vec!["preview"]),
        "all" => Ok(vec!["production", "preview"]),
        _ => Err(ApiError::bad_request(
            "invalid_env",
            "env must be production, preview or all",
        )),
    }
}

#[utoipa::path(
    get,
    path = "/projects/{project}/env",
    tag = "env",
    summary = "Environment variables (secret values are never returned)",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn list(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<EnvVarView>>> {
    let p = projects::load(&state, &who, &project, Role::Viewer).await?;
    let vars = state.store.env_vars(&p.id).await?;
    Ok(Json(
        vars.into_iter()
            .map(|v| EnvVarView {
                value: if v.secret { None } else { v.value_plain },
                name: v.name,
                env: v.env_kind,
                secret: v.secret,
                updated_at: v.updated_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetVar {
    pub value: String,
    #[serde(default)]
    pub secret: bool,
    #[serde(default = "all")]
    pub env: String,
}

fn all() -> String {
    "all".into()
}

#[utoipa::path(
    put,
    path = "/projects/{project}/env/{name}",
    tag = "env",
    summary = "Set a variable, plain or secret, for production, preview or all",
    params(("project" = String, Path), ("name" = String, Path)),
    request_body = SetVar,
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn set(
    who: Principal,
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetVar>,
) -> ApiResult<Json<serde_json::Value>> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "variable names are [A-Za-z_][A-Za-z0-9_]*, at most 128 characters",
        ));
    }
    if body.value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::bad_request(
            "value_too_large",
            format!("values are at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let kinds = kinds(&body.env)?;
    let existing = state.store.env_vars(&p.id).await?;
    let distinct: std::collections::BTreeSet<&str> =
        existing.iter().map(|v| v.name.as_str()).collect();
    if !distinct.contains(name.as_str()) && distinct.len() >= MAX_VARS {
        return Err(ApiError::bad_request(
            "too_many_vars",
            format!("a project has at most {MAX_VARS} variables"),
        ));
    }
    for kind in &kinds {
        let row = EnvVarRow {
            env_kind: kind.to_string(),
            name: name.clone(),
            secret: body.secret,
            value_plain: (!body.secret).then(|| body.value.clone()),
            value_enc: body.secret.then(|| state.secrets.seal(&body.value)),
            updated_at: 0,
        };
        state.store.set_env_var(&p.id, &row).await?;
    }
    state.hub.refresh().await?;
    // The name and kind are logged; the value never is.
    tracing::info!(project = %p.name, %name, env = %body.env, secret = body.secret, "variable set");
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "env.set",
        &p.name,
        serde_json::json!({ "name": name, "env": body.env, "secret": body.secret }),
    )
    .await;
    Ok(Json(
        json!({ "name": name, "env": kinds, "secret": body.secret }),
    ))
}

#[derive(Deserialize)]
pub struct EnvQuery {
    pub env: Option<String>,
}

#[utoipa::path(
    delete,
    path = "/projects/{project}/env/{name}",
    tag = "env",
    summary = "Delete a variable (query: env)",
    params(("project" = String, Path), ("name" = String, Path)),
    responses((status = 204, description = "Success"), super::openapi::Guarded)
)]
pub async fn delete(
    who: Principal,
    State(state): State<AppState>,
    Path((project, name)): Path<(String, String)>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<StatusCode> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    let kind = match q.env.as_deref() {
        None | Some("all") => None,
        Some(k) => Some(kinds(k)?[0]),
    };
    if !state.store.delete_env_var(&p.id, kind, &name).await? {
        return Err(ApiError::not_found(format!("variable {name:?}")));
    }
    state.hub.refresh().await?;
    tracing::info!(project = %p.name, %name, "variable deleted");
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "env.delete",
        &p.name,
        serde_json::json!({ "name": name }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    pub hosts: Vec<String>,
}

#[utoipa::path(
    get,
    path = "/projects/{project}/outbound",
    tag = "env",
    summary = "Hosts the project's functions may call",
    params(("project" = String, Path)),
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn get_outbound(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> ApiResult<Json<Outbound>> {
    let p = projects::load(&state, &who, &project, Role::Viewer).await?;
    Ok(Json(Outbound {
        hosts: state.store.outbound(&p.id).await?,
    }))
}

#[utoipa::path(
    put,
    path = "/projects/{project}/outbound",
    tag = "env",
    summary = "Replace the outbound allow-list",
    params(("project" = String, Path)),
    request_body = Outbound,
    responses((status = 200, description = "Success"), super::openapi::Guarded)
)]
pub async fn set_outbound(
    who: Principal,
    State(state): State<AppState>,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<Outbound>,
) -> ApiResult<Json<Outbound>> {
    let p = projects::load(&state, &who, &project, Role::Member).await?;
    if body.hosts.len() > MAX_OUTBOUND_HOSTS {
        return Err(ApiError::bad_request(
            "too_many_hosts",
            format!("at most {MAX_OUTBOUND_HOSTS} hosts"),
        ));
    }
    let mut hosts = Vec::new();
    for h in &body.hosts {
        let n = protocol::host::normalize_host(h)
            .map_err(|e| ApiError::bad_request("invalid_host", format!("{h:?}: {e}")))?
            .into_owned();
        if !hosts.contains(&n) {
            hosts.push(n);
        }
    }
    state.store.set_outbound(&p.id, &hosts).await?;
    state.hub.refresh().await?;
    tracing::info!(project = %p.name, hosts = ?hosts, "outbound allow-list set");
    audit::record(
        &state.store,
        &who,
        Some(&p.team_id),
        "outbound.set",
        &p.name,
        serde_json::json!({ "hosts": hosts }),
    )
    .await;
    Ok(Json(Outbound { hosts }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        for (n, ok) in [
            ("API_KEY", true),
            ("_x1", true),
            ("a", true),
            ("1A", false),
            ("A-B", false),
            ("", false),
            ("Ä", false),
        ] {
            assert_eq!(super::valid_name(n), ok, "{n}");
        }
    }
}
