//! Custom domains on a project: add (with the DNS records to create),
//! list, inspect, verify now, remove. Names are normalised by
//! `domains::name`; a name belongs to one project of one team.

use serde_json::json;

use super::{access, App, AppError, AppResult};
use crate::accounts::Principal;
use crate::domains::dns::{self, Record};
use crate::domains::name;
use crate::store::{AddOutcome, CertRow, DomainRow, Project, Role};

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

/// `Strict-Transport-Security` for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HstsPolicy {
    pub max_age: u32,
    pub include_subdomains: bool,
    pub preload: bool,
}

/// A domain's HTTPS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Https {
    pub redirect: bool,
    pub hsts: Option<HstsPolicy>,
}

/// At most two years, as browsers cap it.
const HSTS_MAX_AGE: u32 = 2 * 365 * 24 * 3600;

/// The HSTS rules: a bounded max-age, and preload only as the browsers'
/// preload list takes it (subdomains included, at least a year).
fn check_hsts(h: &HstsPolicy) -> AppResult<()> {
    if h.max_age > HSTS_MAX_AGE {
        return Err(AppError::invalid(
            "invalid_hsts",
            format!("hsts max_age is at most {HSTS_MAX_AGE} seconds (two years)"),
        ));
    }
    if h.preload && (!h.include_subdomains || h.max_age < 365 * 24 * 3600) {
        return Err(AppError::invalid(
            "invalid_hsts",
            "hsts preload needs include_subdomains and a max_age of at least 31536000 (one year)",
        ));
    }
    Ok(())
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
    /// Its certificate from the ACME CA, once work on one began.
    pub cert: Option<CertRow>,
    /// Whether this coordinator issues certificates (`[acme] enabled`).
    pub acme: bool,
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

    /// One word for the certificate: `none` (no CA configured), `waiting`
    /// (for the domain to be served), `pending`, `issuing`, `active`,
    /// `renewing`, `failed`.
    pub fn cert_state(&self) -> &str {
        match &self.cert {
            Some(c) => c.state.as_str(),
            None if !self.acme => "none",
            None if !self.row.serves() => "waiting",
            None => "pending",
        }
    }
}

async fn view(app: &App, row: DomainRow, project: String) -> AppResult<DomainView> {
    let cert = app.store.domain_cert(&row.name).await?;
    let apex = name::is_apex(&row.name);
    let records = dns::records(&row.name, apex, &app.config.domains.fleet());
    let base = row.name.strip_prefix("*.").unwrap_or(&row.name).to_string();
    let ownership = row
        .needs_proof
        .then(|| dns::ownership_record(&base, &row.verification));
    Ok(DomainView {
        row,
        project,
        records,
        ownership,
        cert,
        acme: app.config.acme.enabled,
    })
}

fn parse(app: &App, input: &str) -> AppResult<name::DomainName> {
    let d = &app.config.domains;
    let n = name::parse(input, &app.config.base_domain, d.allow_under_base_domain)
        .map_err(|e| AppError::invalid("invalid_domain", e.to_string()))?;
    if n.is_wildcard() && app.config.acme.dns01.is_none() {
        return Err(AppError::invalid(
            "wildcard_unsupported",
            "a wildcard domain's certificate needs the DNS-01 challenge: the operator has not set [acme.dns01] (provider = \"rfc2136\" or \"exec\")",
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
    https: Https,
) -> AppResult<DomainView> {
    let p = access::project(app, who, project, Role::Member).await?;
    let n = parse(app, input)?;
    if let Some(h) = &https.hsts {
        check_hsts(h)?;
    }
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
        https_redirect: https.redirect,
        hsts_max_age: https.hsts.as_ref().map(|h| i64::from(h.max_age)),
        hsts_include_subdomains: https.hsts.as_ref().is_some_and(|h| h.include_subdomains),
        hsts_preload: https.hsts.as_ref().is_some_and(|h| h.preload),
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
    app.acme.nudge();
    view(app, row, p.name).await
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
    let mut out = Vec::new();
    for r in app.store.project_domains(&p.id).await? {
        out.push(view(app, r, p.name.clone()).await?);
    }
    Ok(out)
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
    view(app, row, p.name).await
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
    // A failed certificate is tried again now, not at its next backoff.
    app.store.retry_cert_now(&checked.name).await?;
    app.acme.nudge();
    view(app, checked, p.name).await
}

/// Changes the HTTPS redirect and HSTS (`None`: as it is; `Some(None)`:
/// HSTS off).
pub async fn set_https(
    app: &App,
    who: &Principal,
    input: &str,
    redirect: Option<bool>,
    hsts: Option<Option<HstsPolicy>>,
) -> AppResult<DomainView> {
    let (row, p) = find(app, who, input, Role::Member).await?;
    let hsts = match hsts {
        Some(h) => h,
        None => row.hsts_max_age.map(|m| HstsPolicy {
            max_age: u32::try_from(m).unwrap_or(HSTS_MAX_AGE),
            include_subdomains: row.hsts_include_subdomains,
            preload: row.hsts_preload,
        }),
    };
    if let Some(h) = &hsts {
        check_hsts(h)?;
    }
    let redirect = redirect.unwrap_or(row.https_redirect);
    let updated = app
        .store
        .set_domain_https(
            &row.name,
            redirect,
            hsts.as_ref()
                .map(|h| (i64::from(h.max_age), h.include_subdomains, h.preload)),
        )
        .await?
        .ok_or_else(|| AppError::not_found(format!("domain {}", row.name)))?;
    app.hub.refresh().await?;
    app.audit(
        who,
        &p,
        "domain.https",
        json!({ "domain": row.name, "https_redirect": redirect, "hsts_max_age": hsts.as_ref().map(|h| h.max_age) }),
    )
    .await;
    view(app, updated, p.name).await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_rules() {
        let h = |max_age, include_subdomains, preload| HstsPolicy {
            max_age,
            include_subdomains,
            preload,
        };
        let year = 365 * 24 * 3600;
        for (p, ok) in [
            (h(0, false, false), true),
            (h(300, true, false), true),
            (h(HSTS_MAX_AGE, false, false), true),
            (h(HSTS_MAX_AGE + 1, false, false), false),
            (h(year, true, true), true),
            (h(year - 1, true, true), false),
            (h(year, false, true), false),
        ] {
            assert_eq!(check_hsts(&p).is_ok(), ok, "{p:?}");
        }
    }
}
