//! Custom domains (`domains`): a name on one project. A domain's row
//! changes what edges serve (its host entry) in the same transaction.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{now_ms, EdgeSync, Store, StoreError};

/// At most this many domains per project.
pub const MAX_DOMAINS_PER_PROJECT: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    pub name: String,
    pub project_id: String,
    pub team_id: String,
    /// `production` or `branch`.
    pub target: String,
    pub branch: Option<String>,
    /// For `redirect`: the domain (of the same project) and the status.
    pub redirect_to: Option<String>,
    pub redirect_status: Option<i64>,
    pub verification: String,
    pub needs_proof: bool,
    pub proven_at: Option<i64>,
    /// `pending`, `active` or `misconfigured`.
    pub dns_state: String,
    pub dns_detail: Option<String>,
    pub checked_at: Option<i64>,
    pub created_at: i64,
    /// Plain HTTP answers 308 to HTTPS once the certificate is active.
    pub https_redirect: bool,
    /// `Strict-Transport-Security` over HTTPS (off when `None`).
    pub hsts_max_age: Option<i64>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
}

impl DomainRow {
    /// Whether edges serve it: DNS points at the fleet, and ownership is
    /// proven where it had to be.
    pub fn serves(&self) -> bool {
        self.dns_state == "active" && (!self.needs_proof || self.proven_at.is_some())
    }

    fn from_row(r: &AnyRow) -> Result<DomainRow, StoreError> {
        Ok(DomainRow {
            name: r.try_get("name")?,
            project_id: r.try_get("project_id")?,
            team_id: r.try_get("team_id")?,
            target: r.try_get("target")?,
            branch: r.try_get("branch")?,
            redirect_to: r.try_get("redirect_to")?,
            redirect_status: r.try_get("redirect_status")?,
            verification: r.try_get("verification")?,
            needs_proof: r.try_get::<i64, _>("needs_proof")? != 0,
            proven_at: r.try_get("proven_at")?,
            dns_state: r.try_get("dns_state")?,
            dns_detail: r.try_get("dns_detail")?,
            checked_at: r.try_get("checked_at")?,
            created_at: r.try_get("created_at")?,
            https_redirect: r.try_get::<i64, _>("https_redirect")? != 0,
            hsts_max_age: r.try_get("hsts_max_age")?,
            hsts_include_subdomains: r.try_get::<i64, _>("hsts_include_subdomains")? != 0,
            hsts_preload: r.try_get::<i64, _>("hsts_preload")? != 0,
        })
    }
}

const COLS: &str = "name, project_id, team_id, target, branch, redirect_to, redirect_status, \
                    verification, needs_proof, proven_at, dns_state, dns_detail, checked_at, \
                    created_at, https_redirect, hsts_max_age, hsts_include_subdomains, hsts_preload";

/// Domain `name` as `conn` (a transaction, say) sees it.
pub(super) async fn domain_in(
    conn: &mut sqlx::AnyConnection,
    name: &str,
) -> Result<Option<DomainRow>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLS} FROM domains WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| DomainRow::from_row(&r))
    .transpose()
}

/// What adding a domain found in its way.
#[derive(Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    /// The name is on a project already (of this team: `same_team`).
    Taken {
        same_team: bool,
    },
    TooMany,
}

impl Store {
    /// Adds `d` unless its name is taken or the project is full.
    pub async fn add_domain(&self, d: &DomainRow) -> Result<AddOutcome, StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(r) = sqlx::query("SELECT team_id FROM domains WHERE name = $1")
            .bind(&d.name)
            .fetch_optional(&mut *tx)
            .await?
        {
            let team: String = r.try_get("team_id")?;
            return Ok(AddOutcome::Taken {
                same_team: team == d.team_id,
            });
        }
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM domains WHERE project_id = $1")
            .bind(&d.project_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if n >= MAX_DOMAINS_PER_PROJECT {
            return Ok(AddOutcome::TooMany);
        }
        // Nothing of an earlier holder's certificate carries over.
        sqlx::query("DELETE FROM domain_certs WHERE name = $1")
            .bind(&d.name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO domains ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
        )))
        .bind(&d.name)
        .bind(&d.project_id)
        .bind(&d.team_id)
        .bind(&d.target)
        .bind(&d.branch)
        .bind(&d.redirect_to)
        .bind(d.redirect_status)
        .bind(&d.verification)
        .bind(i64::from(d.needs_proof))
        .bind(d.proven_at)
        .bind(&d.dns_state)
        .bind(&d.dns_detail)
        .bind(d.checked_at)
        .bind(if d.created_at == 0 { now_ms() } else { d.created_at })
        .bind(i64::from(d.https_redirect))
        .bind(d.hsts_max_age)
        .bind(i64::from(d.hsts_include_subdomains))
        .bind(i64::from(d.hsts_preload))
        .execute(&mut *tx)
        .await?;
        self.sync_edges(&mut tx, &[EdgeSync::Domain(d.name.clone())])
            .await?;
        tx.commit().await?;
        Ok(AddOutcome::Added)
    }

    pub async fn domain(&self, name: &str) -> Result<Option<DomainRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        domain_in(&mut conn, name).await
    }

    pub async fn project_domains(&self, project_id: &str) -> Result<Vec<DomainRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM domains WHERE project_id = $1 ORDER BY name"
        )))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(DomainRow::from_row)
        .collect()
    }

    /// Domains checked longest ago first (never-checked first), at most `limit`.
    pub async fn domains_to_check(&self, limit: i64) -> Result<Vec<DomainRow>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLS} FROM domains ORDER BY COALESCE(checked_at, 0), name LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(DomainRow::from_row)
        .collect()
    }

    /// Domains of other teams at any of `names` (a domain's parents),
    /// ownership proven or not needed: those that make a newcomer prove it.
    pub async fn claimed_by_others(
        &self,
        names: &[&str],
        team_id: &str,
    ) -> Result<bool, StoreError> {
        for n in names {
            for candidate in [n.to_string(), format!("*.{n}")] {
                let found =
                    sqlx::query("SELECT 1 AS one FROM domains WHERE name = $1 AND team_id <> $2")
                        .bind(&candidate)
                        .bind(team_id)
                        .fetch_optional(&self.pool)
                        .await?;
                if found.is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Records a DNS check; edges follow when the domain starts or stops
    /// being served. Returns the row as now stored.
    pub async fn record_domain_check(
        &self,
        name: &str,
        dns_state: &str,
        dns_detail: Option<&str>,
        proven: bool,
    ) -> Result<Option<DomainRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(before) = domain_in(&mut tx, name).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE domains SET dns_state = $1, dns_detail = $2, checked_at = $3, \
             proven_at = CASE WHEN $4 = 1 AND proven_at IS NULL THEN $5 ELSE proven_at END \
             WHERE name = $6",
        )
        .bind(dns_state)
        .bind(dns_detail)
        .bind(now_ms())
        .bind(i64::from(proven))
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let after = domain_in(&mut tx, name).await?;
        // Most checks find what the last one found: the edges hear only of
        // a domain that starts or stops being served (a config version per
        // recheck of every domain would be churn for the whole fleet).
        let serves = after.as_ref().map(DomainRow::serves);
        if serves != Some(before.serves()) {
            if serves == Some(true) {
                Store::reset_cert_failures(&mut tx, name).await?;
            }
            self.sync_edges(&mut tx, &[EdgeSync::Domain(name.to_string())])
                .await?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Sets a domain's HTTPS policy; edges follow.
    pub async fn set_domain_https(
        &self,
        name: &str,
        redirect: bool,
        hsts: Option<(i64, bool, bool)>,
    ) -> Result<Option<DomainRow>, StoreError> {
        let mut tx = self.begin_write().await?;
        let (max_age, sub, preload) = match hsts {
            Some((m, s, p)) => (Some(m), s, p),
            None => (None, false, false),
        };
        let n = sqlx::query(
            "UPDATE domains SET https_redirect = $1, hsts_max_age = $2, \
             hsts_include_subdomains = $3, hsts_preload = $4 WHERE name = $5",
        )
        .bind(i64::from(redirect))
        .bind(max_age)
        .bind(i64::from(sub))
        .bind(i64::from(preload))
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        self.sync_edges(&mut tx, &[EdgeSync::Domain(name.to_string())])
            .await?;
        tx.commit().await?;
        self.domain(name).await
    }

    /// The domains that redirect to `name`.
    pub async fn redirects_to(&self, name: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT name FROM domains WHERE redirect_to = $1 ORDER BY name")
            .bind(name)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get("name")?))
            .collect()
    }

    /// Removes a domain; its host stops being served on every edge.
    pub async fn remove_domain(&self, name: &str) -> Result<Option<DomainRow>, StoreError> {
        let Some(row) = self.domain(name).await? else {
            return Ok(None);
        };
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM domains WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        // Its certificate goes with it (renewal stops; the edges drop it).
        sqlx::query("DELETE FROM domain_certs WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        self.sync_edges(&mut tx, &[EdgeSync::Domain(name.to_string())])
            .await?;
        tx.commit().await?;
        Ok(Some(row))
    }
}
