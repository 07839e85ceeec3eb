//! Custom domains on a project: add (with the DNS records to create),
//! list, inspect, verify now, remove. Names are normalised by
//! `domains::name`; a name belongs to one project of one team.

use serde_json::json;

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::domains::dns::{self, Record};
use crate::domains::name;
use crate::store::{AddOutcome, DomainRow, Project, Role};

/// How long adding a domain waits for its first DNS check.
const FIRST_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a domain points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Production,
    Branch(String),
    /// Every request to the same path on `to` (another domain of the same
    /// project that does not redirect itself), with `status`.
    Redirect {
        to: String,
        status: u16,
    },
}

/// A domain as people see it.
#[derive(Debug, Clone)]
pub struct DomainView {
    pub row: DomainRow,
    pub project: String,
    /// What to create so that it points at the fleet.
    pub records: Vec<Record>,
    /// The TXT record proving ownership, when it is required.
    pub ownership: Option<Record>,
}

impl DomainView {
    /// One word for the domain's state: `pending` (no DNS yet),
    /// `ownership` (its TXT record is awaited), `misconfigured`, `active`.
    pub fn state(&self) -> &'static str {
        let r = &self.row;
        match r.dns_state.as_str() {
            _ if r.needs_proof && r.proven_at.is_none() => "ownership",
            "active" => "active",
            "misconfigured" => "misconfigured",
            _ => "pending",
        }
    }
}

fn view(app: &App, row: DomainRow, project: String) -> DomainView {
    let apex = name::is_apex(&row.name);
    let records = dns::records(&row.name, apex, &app.config.domains.fleet());
    let base = row.name.strip_prefix("*.").unwrap_or(&row.name).to_string();
    let ownership = row
        .needs_proof
        .then(|| dns::ownership_record(&base, &row.verification));
    DomainView {
        row,
        project,
        records,
        ownership,
    }
}

fn parse(app: &App, input: &str) -> AppResult<name::DomainName> {
    let d = &app.config.domains;
    let n = name::parse(input, &app.config.base_domain, d.allow_under_base_domain)
        .map_err(|e| AppError::invalid("invalid_domain", e.to_string()))?;
    if n.is_wildcard() {
        return Err(AppError::invalid(
            "wildcard_unsupported",
            "wildcard domains need DNS-01 certificates, which this coordinator does not issue yet",
        ));
    }
    if d.cname_target.is_none() && d.apex_addresses.is_empty() {
        return Err(AppError::invalid(
            "domains_not_configured",
            "the operator has not set [domains] cname_target or apex_addresses: there is nothing to point a domain at",
        ));
    }
    if n.is_apex() && d.apex_addresses.is_empty() {
        return Err(AppError::invalid(
            "apex_unsupported",
            format!(
                "{n} is an apex domain, which needs A/AAAA records, and the operator has not set [domains] apex_addresses; add a subdomain such as www.{n}"
            ),
        ));
    }
    Ok(n)
}

pub async fn add(
    app: &App,
    who: &Principal,
    project: &str,
    input: &str,
    target: Target,
) -> AppResult<DomainView> {
    let p = access::project(app, who, project, Role::Member).await?;
    let n = parse(app, input)?;
    if let Target::Branch(b) = &target {
        if b.is_empty() || b.len() > 255 || b.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "invalid_branch",
                "a branch name is 1-255 printable characters",
            ));
        }
    }
    let redirect = match &target {
        Target::Redirect { to, status } => {
            Some((redirect_target(app, &p, &n, to, *status).await?, *status))
        }
        _ => None,
    };
    let needs_proof = app
        .store
        .claimed_by_others(&n.parents(), &p.team_id)
        .await?;
    let row = DomainRow {
        name: n.as_str().to_string(),
        project_id: p.id.clone(),
        team_id: p.team_id.clone(),
        target: match &target {
            Target::Production => "production".into(),
            Target::Branch(_) => "branch".into(),
            Target::Redirect { .. } => "redirect".into(),
        },
        branch: match target {
            Target::Branch(b) => Some(b),
            _ => None,
        },
        redirect_to: redirect.as_ref().map(|(to, _)| to.clone()),
        redirect_status: redirect.map(|(_, s)| i64::from(s)),
        verification: format!("outpost-verify={}", crate::ids::new_id(24)),
        needs_proof,
        proven_at: None,
        dns_state: "pending".into(),
        dns_detail: None,
        checked_at: None,
        created_at: 0,
        https_redirect: true,
        hsts_max_age: None,
        hsts_include_subdomains: false,
        hsts_preload: false,
    };
    match app.store.add_domain(&row).await? {
        AddOutcome::Added => {}
        AddOutcome::Taken { same_team: true } => {
            return Err(AppError::conflict(
                "domain_taken",
                format!("{n} is already on a project of this team"),
            ))
        }
        AddOutcome::Taken { same_team: false } => {
            return Err(AppError::conflict(
                "domain_taken",
                format!("{n} is used by another team"),
            ))
        }
        AddOutcome::TooMany => {
            return Err(AppError::invalid(
                "too_many_domains",
                format!(
                    "a project has at most {} domains",
                    crate::store::MAX_DOMAINS_PER_PROJECT
                ),
            ))
        }
    }
    app.audit(
        who,
        &p,
        "domain.add",
        json!({ "domain": n.as_str(), "proof": needs_proof }),
    )
    .await;
    // The first check right away (DNS may be in place already), but the
    // answer does not wait on a slow resolver: the periodic pass goes on.
    let first = tokio::time::timeout(FIRST_CHECK, app.domains.check(&app.store, &row)).await;
    let row = match first {
        Ok(checked) => checked?.unwrap_or(row),
        Err(_) => row,
    };
    app.hub.refresh().await?;
    Ok(view(app, row, p.name))
}

/// Where a new redirecting domain `name` may send requests: another
/// domain of the same project that does not redirect itself (so no chain,
/// and no loop, can form).
async fn redirect_target(
    app: &App,
    p: &Project,
    name: &name::DomainName,
    to: &str,
    status: u16,
) -> AppResult<String> {
    if !protocol::HostRedirect::STATUSES.contains(&status) {
        return Err(AppError::invalid(
            "invalid_redirect",
            "a redirect's status is 301, 302, 307 or 308",
        ));
    }
    let to = name::parse(to, &app.config.base_domain, true)
        .map_err(|e| AppError::invalid("invalid_redirect", e.to_string()))?;
    if to == *name {
        return Err(AppError::invalid(
            "invalid_redirect",
            format!("{name} cannot redirect to itself"),
        ));
    }
    match app.store.domain(to.as_str()).await? {
        Some(d) if d.project_id == p.id && d.redirect_to.is_none() => Ok(d.name),
        Some(d) if d.project_id == p.id => Err(AppError::invalid(
            "invalid_redirect",
            format!(
                "{to} redirects itself (to {}): redirect to where it points instead",
                d.redirect_to.unwrap_or_default()
            ),
        )),
        _ => Err(AppError::invalid(
            "invalid_redirect",
            format!("{to} is not a domain of project {}: add it first", p.name),
        )),
    }
}

pub async fn list(app: &App, who: &Principal, project: &str) -> AppResult<Vec<DomainView>> {
    let p = access::project(app, who, project, Role::Viewer).await?;
    Ok(app
        .store
        .project_domains(&p.id)
        .await?
        .into_iter()
        .map(|r| view(app, r, p.name.clone()))
        .collect())
}

/// The domain and its project, if `who` may see it (else 404, whoever holds it).
async fn find(
    app: &App,
    who: &Principal,
    input: &str,
    need: Role,
) -> AppResult<(DomainRow, Project)> {
    let n = name::parse(input, &app.config.base_domain, true)
        .map_err(|e| AppError::invalid("invalid_domain", e.to_string()))?;
    let row = app
        .store
        .domain(n.as_str())
        .await?
        .ok_or_else(|| AppError::not_found(format!("domain {n}")))?;
    // Another team's domain answers 404, like its project.
    let p = access::project_by_id(app, who, &row.project_id, need).await?;
    Ok((row, p))
}

pub async fn inspect(app: &App, who: &Principal, input: &str) -> AppResult<DomainView> {
    let (row, p) = find(app, who, input, Role::Viewer).await?;
    Ok(view(app, row, p.name))
}

/// Checks DNS now (rather than at the next pass).
pub async fn verify(app: &App, who: &Principal, input: &str) -> AppResult<DomainView> {
    let (row, p) = find(app, who, input, Role::Member).await?;
    let checked = app
        .domains
        .check(&app.store, &row)
        .await?
        .ok_or_else(|| AppError::not_found(format!("domain {}", row.name)))?;
    app.hub.refresh().await?;
    app.audit(
        who,
        &p,
        "domain.verify",
        json!({ "domain": checked.name, "dns": checked.dns_state, "served": checked.serves() }),
    )
    .await;
    Ok(view(app, checked, p.name))
}

pub async fn remove(app: &App, who: &Principal, input: &str) -> AppResult<()> {
    let (row, p) = find(app, who, input, Role::Member).await?;
    let pointing = app.store.redirects_to(&row.name).await?;
    if !pointing.is_empty() {
        return Err(AppError::conflict(
            "domain_in_use",
            format!(
                "{} redirect{} to {}: remove {} first",
                pointing.join(", "),
                if pointing.len() == 1 { "s" } else { "" },
                row.name,
                if pointing.len() == 1 { "it" } else { "them" }
            ),
        ));
    }
    app.store.remove_domain(&row.name).await?;
    app.hub.refresh().await?;
    app.audit(who, &p, "domain.remove", json!({ "domain": row.name }))
        .await;
    Ok(())
}
