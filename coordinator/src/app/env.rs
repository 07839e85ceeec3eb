//! Per-project environment variables (plain or secret) and the outbound
//! allow-list for functions. Secret values go in, never out: once set, a
//! secret is only ever opened for the runtime (edges, builds), never for
//! a person.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::secrets::{SecretBox, SecretError};
use crate::store::{EnvVarRow, Role};

pub const MAX_VARS: usize = 200;
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
pub const MAX_OUTBOUND_HOSTS: usize = 50;

/// A variable as people see it.
pub struct VarView {
    pub name: String,
    pub env: String,
    pub secret: bool,
    /// `None` for secrets: once set, a secret is never shown again.
    pub value: Option<String>,
    pub updated_at: i64,
}

/// The one rule for showing a variable: a secret's value stays hidden.
fn shown(v: EnvVarRow) -> VarView {
    VarView {
        value: if v.secret { None } else { v.value_plain },
        name: v.name,
        env: v.env_kind,
        secret: v.secret,
        updated_at: v.updated_at,
    }
}

/// The values of `rows` for environment `kind`, secrets opened: for the
/// runtime only. Also returns the secret values, to redact from logs.
pub fn open_values(
    secrets: &SecretBox,
    rows: Vec<EnvVarRow>,
    kind: &str,
) -> Result<(BTreeMap<String, String>, Vec<String>), SecretError> {
    let mut env = BTreeMap::new();
    let mut secret_values = Vec::new();
    for v in rows.into_iter().filter(|v| v.env_kind == kind) {
        let value = match (&v.value_plain, &v.value_enc) {
            (Some(p), _) => p.clone(),
            (None, Some(enc)) => {
                let s = secrets.open(enc)?;
                secret_values.push(s.clone());
                s
            }
            (None, None) => continue,
        };
        env.insert(v.name, value);
    }
    Ok((env, secret_values))
}

pub fn valid_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && n.len() <= 128
        && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// `production`, `preview` or `all` as the environment kinds it names.
pub fn kinds(env: &str) -> AppResult<Vec<&'static str>> {
    match env {
        "production" => Ok(vec!["production"]),
        "preview" => Ok(vec!["preview"]),
        "all" => Ok(vec!["production", "preview"]),
        _ => Err(AppError::invalid(
            "invalid_env",
            "env must be production, preview or all",
        )),
    }
}

pub async fn list(app: &App, who: &Principal, project: &str) -> AppResult<Vec<VarView>> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    Ok(app
        .store
        .env_vars(&p.id)
        .await?
        .into_iter()
        .map(shown)
        .collect())
}

/// Sets `name` for `env` (`production`, `preview` or `all`); returns the
/// environment kinds it was set for.
pub async fn set(
    app: &App,
    who: &Principal,
    project: &str,
    name: &str,
    value: &str,
    secret: bool,
    env: &str,
) -> AppResult<Vec<&'static str>> {
    let p = access::project(app, who, project, Role::Member).await?;
    if !valid_name(name) {
        return Err(AppError::invalid(
            "invalid_name",
            "variable names are [A-Za-z_][A-Za-z0-9_]*, at most 128 characters",
        ));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(AppError::invalid(
            "value_too_large",
            format!("values are at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let kinds = kinds(env)?;
    let existing = app.store.env_vars(&p.id).await?;
    let distinct: BTreeSet<&str> = existing.iter().map(|v| v.name.as_str()).collect();
    if !distinct.contains(name) && distinct.len() >= MAX_VARS {
        return Err(AppError::invalid(
            "too_many_vars",
            format!("a project has at most {MAX_VARS} variables"),
        ));
    }
    let count = distinct.len() as u64 + u64::from(!distinct.contains(name));
    let bytes: u64 = existing
        .iter()
        .filter(|v| v.name != name || !kinds.contains(&v.env_kind.as_str()))
        .map(|v| {
            v.value_plain
                .as_ref()
                .map_or(0, |p| p.len())
                .max(v.value_enc.as_ref().map_or(0, |e| e.len())) as u64
        })
        .sum::<u64>()
        + value.len() as u64 * kinds.len() as u64;
    super::quotas::check_variables(app, &p.team_id, count, bytes).await?;
    for kind in &kinds {
        let row = EnvVarRow {
            env_kind: kind.to_string(),
            name: name.to_string(),
            secret,
            value_plain: (!secret).then(|| value.to_string()),
            value_enc: secret.then(|| app.secrets.seal(value)),
            updated_at: 0,
        };
        app.store.set_env_var(&p.id, &row).await?;
    }
    app.hub.refresh().await?;
    // The name and kind are logged; the value never is.
    tracing::info!(project = %p.name, %name, %env, secret, "variable set");
    app.audit(
        who,
        &p,
        "env.set",
        json!({ "name": name, "env": env, "secret": secret }),
    )
    .await;
    Ok(kinds)
}

/// Deletes `name` from one environment, or from all (`env` None or `all`).
pub async fn delete(
    app: &App,
    who: &Principal,
    project: &str,
    name: &str,
    env: Option<&str>,
) -> AppResult<()> {
    let p = access::project(app, who, project, Role::Member).await?;
    let kind = match env {
        None | Some("all") => None,
        Some(k) => Some(kinds(k)?[0]),
    };
    if !app.store.delete_env_var(&p.id, kind, name).await? {
        return Err(AppError::not_found(format!("variable {name:?}")));
    }
    app.hub.refresh().await?;
    tracing::info!(project = %p.name, %name, "variable deleted");
    app.audit(who, &p, "env.delete", json!({ "name": name }))
        .await;
    Ok(())
}

pub async fn outbound(app: &App, who: &Principal, project: &str) -> AppResult<Vec<String>> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    Ok(app.store.outbound(&p.id).await?)
}

/// Replaces the hosts the project's functions may call; returns them
/// normalised and without repeats.
pub async fn set_outbound(
    app: &App,
    who: &Principal,
    project: &str,
    hosts: &[String],
) -> AppResult<Vec<String>> {
    let p = access::project(app, who, project, Role::Member).await?;
    if hosts.len() > MAX_OUTBOUND_HOSTS {
        return Err(AppError::invalid(
            "too_many_hosts",
            format!("at most {MAX_OUTBOUND_HOSTS} hosts"),
        ));
    }
    let mut out = Vec::new();
    for h in hosts {
        let n = protocol::host::normalize_host(h)
            .map_err(|e| AppError::invalid("invalid_host", format!("{h:?}: {e}")))?
            .into_owned();
        if !out.contains(&n) {
            out.push(n);
        }
    }
    app.store.set_outbound(&p.id, &out).await?;
    app.hub.refresh().await?;
    tracing::info!(project = %p.name, hosts = ?out, "outbound allow-list set");
    app.audit(who, &p, "outbound.set", json!({ "hosts": out }))
        .await;
    Ok(out)
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
