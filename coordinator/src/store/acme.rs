//! ACME state: the account at each directory (`acme_accounts`), and each custom domain's certificate with the order
//! that makes or renews it (`domain_certs`). Keys are sealed with the
//! instance key. A certificate's changes reach edges in the transaction
//! that records them (`EdgeSync::Domain`).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::config_log::{removal, Write};
use super::{now_ms, EdgeSync, Store, StoreError};
use protocol::acme::{Hsts, HttpsPolicy};
use protocol::{CertEntry, Entry, Key};

/// `next_try_at` of a certificate given up on (after 30 days of
/// failures): never, until someone asks (`domains verify`).
pub const NEVER: i64 = i64::MAX;

/// A domain's certificate row.
#[derive(Clone, PartialEq, Eq)]
pub struct CertRow {
    pub name: String,
    /// `pending`, `issuing`, `active`, `renewing` or `failed`.
    pub state: String,
    pub chain_pem: Option<String>,
    pub key_enc: Option<Vec<u8>>,
    /// Unix seconds.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    /// Unix ms, as the rest below.
    pub issued_at: Option<i64>,
    pub issuer: Option<String>,
    pub cert_id: Option<String>,
    pub renew_at: Option<i64>,
    pub ari_next_at: Option<i64>,
    pub error: Option<String>,
    pub failures: i64,
    pub failing_since: Option<i64>,
    pub next_try_at: i64,
    pub challenge: Option<String>,
    pub order_url: Option<String>,
    pub order_directory: Option<String>,
    pub order_key_enc: Option<Vec<u8>>,
    pub order_started_at: Option<i64>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
}

impl std::fmt::Debug for CertRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys (sealed as they are) stay out of logs.
        f.debug_struct("CertRow")
            .field("name", &self.name)
            .field("state", &self.state)
            .field("not_after", &self.not_after)
            .field("renew_at", &self.renew_at)
            .field("error", &self.error)
            .field("failures", &self.failures)
            .field("next_try_at", &self.next_try_at)
            .field("order_url", &self.order_url)
            .finish_non_exhaustive()
    }
}

const CERT_COLS: &str = "name, state, chain_pem, key_enc, not_before, not_after, issued_at, \
    issuer, cert_id, renew_at, ari_next_at, error, failures, failing_since, next_try_at, challenge, order_url, \
    order_directory, order_key_enc, order_started_at, lease_owner, lease_until";

impl CertRow {
    fn from_row(r: &AnyRow) -> Result<CertRow, StoreError> {
        Ok(CertRow {
            name: r.try_get("name")?,
            state: r.try_get("state")?,
            chain_pem: r.try_get("chain_pem")?,
            key_enc: r.try_get("key_enc")?,
            not_before: r.try_get("not_before")?,
            not_after: r.try_get("not_after")?,
            issued_at: r.try_get("issued_at")?,
            issuer: r.try_get("issuer")?,
            cert_id: r.try_get("cert_id")?,
            renew_at: r.try_get("renew_at")?,
            ari_next_at: r.try_get("ari_next_at")?,
            error: r.try_get("error")?,
            failures: r.try_get("failures")?,
            failing_since: r.try_get("failing_since")?,
            next_try_at: r.try_get("next_try_at")?,
            challenge: r.try_get("challenge")?,
            order_url: r.try_get("order_url")?,
            order_directory: r.try_get("order_directory")?,
            order_key_enc: r.try_get("order_key_enc")?,
            order_started_at: r.try_get("order_started_at")?,
            lease_owner: r.try_get("lease_owner")?,
            lease_until: r.try_get("lease_until")?,
        })
    }

    /// When the next attempt after a failure comes (`None`: not failing,
    /// or given up on).
    pub fn next_retry(&self) -> Option<i64> {
        (self.state == "failed" && self.next_try_at != NEVER).then_some(self.next_try_at)
    }

    /// Whether it holds a certificate still valid at `now_s` (Unix seconds).
    pub fn valid_at(&self, now_s: i64) -> bool {
        self.chain_pem.is_some() && self.not_after.is_some_and(|t| t > now_s)
    }
}

/// A newly issued certificate.
pub struct Issued {
    pub chain_pem: String,
    pub key_enc: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub issuer: String,
    pub cert_id: Option<String>,
    pub renew_at: i64,
    /// When to ask the CA's renewal information again (None: no ARI).
    pub ari_next_at: Option<i64>,
}

/// An order placed, recorded before any challenge is answered so a restart
/// resumes it instead of placing another.
pub struct OrderStarted<'a> {
    pub url: &'a str,
    pub directory: &'a str,
    pub key_enc: &'a [u8],
    pub challenge: &'a str,
    pub renewing: bool,
    /// How long the order may take.
    pub busy_for_ms: i64,
}

impl Store {
    /// Makes sure the edge config carries `thumbprint` (a database restored
    /// from before the key, or a log rebuilt, may lack it).
    pub async fn publish_acme_thumbprint(&self, thumbprint: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.sync_edges(&mut tx, &[EdgeSync::AcmeAccount(thumbprint.to_string())])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn acme_account(&self, directory: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let r = sqlx::query("SELECT credentials_enc FROM acme_accounts WHERE directory = $1")
            .bind(directory)
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| Ok(r.try_get("credentials_enc")?)).transpose()
    }

    /// Stores the account made at `directory` unless another coordinator
    /// stored one first; returns the credentials that hold (every
    /// coordinator then uses the same account and thumbprint).
    pub async fn put_acme_account(
        &self,
        directory: &str,
        credentials_enc: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let mut tx = self.begin_write().await?;
        let held = sqlx::query("SELECT credentials_enc FROM acme_accounts WHERE directory = $1")
            .bind(directory)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = held {
            return Ok(r.try_get("credentials_enc")?);
        }
        sqlx::query(
            "INSERT INTO acme_accounts (directory, credentials_enc, created_at) VALUES ($1, $2, $3)",
        )
        .bind(directory)
        .bind(credentials_enc)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(credentials_enc.to_vec())
    }

    pub async fn domain_cert(&self, name: &str) -> Result<Option<CertRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        cert_in(&mut conn, name).await
    }

    /// Certificates that need work now: of served domains (and of `base`,
    /// the platform's own wildcard, which has no domain row), with none
    /// yet, a retry due, renewal due, or an order of `owner`'s own in
    /// flight (it restarted mid-order), and no other coordinator's lease
    /// on them; the longest waiting first.
    pub async fn certs_due(
        &self,
        now: i64,
        owner: &str,
        base: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query(
            "SELECT n.name AS name FROM ( \
                 SELECT name FROM domains WHERE dns_state = 'active' \
                 AND (needs_proof = 0 OR proven_at IS NOT NULL) \
                 UNION SELECT name FROM (SELECT $1 AS name) b WHERE name IS NOT NULL \
             ) n LEFT JOIN domain_certs c ON c.name = n.name \
             WHERE c.name IS NULL OR ( \
                 (c.lease_until IS NULL OR c.lease_until < $2 OR c.lease_owner = $3) AND ( \
                   (c.state IN ('pending', 'issuing', 'renewing', 'failed') AND c.next_try_at <= $4) \
                   OR (c.state = 'active' AND c.renew_at IS NOT NULL AND c.renew_at <= $5) \
                   OR (c.state IN ('issuing', 'renewing') AND c.lease_owner = $6))) \
             ORDER BY COALESCE(c.next_try_at, 0), n.name LIMIT $7",
        )
        .bind(base)
        .bind(now)
        .bind(owner)
        .bind(now)
        .bind(now)
        .bind(owner)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok(r.try_get("name")?))
        .collect()
    }

    /// Takes (or, for `owner` itself, keeps) the lease on `name`'s
    /// certificate until `until`; the row is made if there is none.
    /// Whether the lease is now `owner`'s.
    pub async fn lease_cert(
        &self,
        name: &str,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let exists = cert_in(&mut tx, name).await?;
        if exists.is_none() {
            sqlx::query(
                "INSERT INTO domain_certs (name, state, failures, next_try_at, updated_at) \
                 VALUES ($1, 'pending', 0, $2, $3)",
            )
            .bind(name)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let n = sqlx::query(
            "UPDATE domain_certs SET lease_owner = $1, lease_until = $2 WHERE name = $3 \
             AND (lease_owner IS NULL OR lease_owner = $4 OR lease_until IS NULL OR lease_until < $5)",
        )
        .bind(owner)
        .bind(until)
        .bind(name)
        .bind(owner)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Extends `owner`'s lease on `name` (never makes a row: a domain
    /// removed mid-order stays removed). Whether the lease is still its.
    pub async fn renew_cert_lease(
        &self,
        name: &str,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE domain_certs SET lease_until = $1 WHERE name = $2 AND lease_owner = $3",
        )
        .bind(until)
        .bind(name)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    pub async fn release_cert(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE domain_certs SET lease_owner = NULL, lease_until = NULL \
             WHERE name = $1 AND lease_owner = $2",
        )
        .bind(name)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_order(&self, name: &str, o: &OrderStarted<'_>) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE domain_certs SET state = $1, order_url = $2, order_directory = $3, \
             order_key_enc = $4, order_started_at = $5, challenge = $6, updated_at = $7, \
             next_try_at = $8 WHERE name = $9",
        )
        .bind(if o.renewing { "renewing" } else { "issuing" })
        .bind(o.url)
        .bind(o.directory)
        .bind(o.key_enc)
        .bind(now)
        .bind(o.challenge)
        .bind(now)
        // Not due again while the order may still be under way (only a
        // lapsed lease hands it to another coordinator before).
        .bind(now + o.busy_for_ms)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The challenge type now being answered (the same order, retried).
    pub async fn record_challenge(&self, name: &str, challenge: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE domain_certs SET challenge = $1 WHERE name = $2")
            .bind(challenge)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets an order that can no longer complete.
    pub async fn clear_order(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE domain_certs SET order_url = NULL, order_directory = NULL, \
             order_key_enc = NULL, order_started_at = NULL WHERE name = $1",
        )
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A certificate issued: stored, its order closed, its failures
    /// forgotten, and every edge given it in the same transaction.
    pub async fn record_issued(&self, name: &str, c: &Issued) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE domain_certs SET state = 'active', chain_pem = $1, key_enc = $2, \
             not_before = $3, not_after = $4, issued_at = $5, issuer = $6, cert_id = $7, \
             renew_at = $8, error = NULL, failures = 0, failing_since = NULL, next_try_at = $9, \
             order_url = NULL, order_directory = NULL, order_key_enc = NULL, \
             order_started_at = NULL, updated_at = $10, ari_next_at = $11 WHERE name = $12",
        )
        .bind(&c.chain_pem)
        .bind(&c.key_enc)
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(now)
        .bind(&c.issuer)
        .bind(&c.cert_id)
        .bind(c.renew_at)
        .bind(c.renew_at)
        .bind(now)
        .bind(c.ari_next_at)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // n == 0: the domain was removed meanwhile; its challenge goes all
        // the same.
        let mut syncs = vec![EdgeSync::Challenge(name.to_string(), None)];
        if n == 1 {
            syncs.push(EdgeSync::Domain(name.to_string()));
        }
        self.sync_edges(&mut tx, &syncs).await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// An attempt failed: the CA's words, and when to try again. The
    /// certificate held (if any) keeps serving.
    pub async fn record_cert_failure(
        &self,
        name: &str,
        error: &str,
        next_try_at: i64,
        give_up: bool,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE domain_certs SET state = 'failed', error = $1, failures = failures + 1, \
             failing_since = COALESCE(failing_since, $2), next_try_at = $3, updated_at = $4 \
             WHERE name = $5",
        )
        .bind(error)
        .bind(now)
        .bind(if give_up { NEVER } else { next_try_at })
        .bind(now)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        self.sync_edges(&mut tx, &[EdgeSync::Challenge(name.to_string(), None)])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Active certificates whose renewal information is due to be asked
    /// again: (name, issuing directory, ARI identifier).
    pub async fn ari_due(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        sqlx::query(
            "SELECT name, issuer, cert_id FROM domain_certs WHERE state = 'active' \
             AND cert_id IS NOT NULL AND issuer IS NOT NULL AND ari_next_at IS NOT NULL \
             AND ari_next_at <= $1 ORDER BY ari_next_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get("issuer")?,
                r.try_get("cert_id")?,
            ))
        })
        .collect()
    }

    /// Records what the CA's renewal information said: when to renew (an
    /// earlier window moves it earlier; never later than it was) and when
    /// to ask again.
    pub async fn record_ari(
        &self,
        name: &str,
        renew_at: Option<i64>,
        next: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE domain_certs SET renew_at = CASE WHEN $1 IS NOT NULL AND $2 < renew_at \
             THEN $3 ELSE renew_at END, ari_next_at = $4 WHERE name = $5 AND state = 'active'",
        )
        .bind(renew_at)
        .bind(renew_at)
        .bind(renew_at)
        .bind(next)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Retries now (a verify asked for by the user): a certificate that
    /// failed is tried again at once, and one given up on starts afresh;
    /// but not more than once a minute, and never earlier than a CA that
    /// said "rate limited" allows (the account is every tenant's).
    pub async fn retry_cert_now(&self, name: &str) -> Result<(), StoreError> {
        let now = now_ms();
        sqlx::query(
            "UPDATE domain_certs SET next_try_at = $1, \
             failures = CASE WHEN next_try_at = $2 THEN 0 ELSE failures END, \
             failing_since = CASE WHEN next_try_at = $3 THEN NULL ELSE failing_since END \
             WHERE name = $4 AND state = 'failed' AND updated_at < $5 \
             AND (error IS NULL OR error NOT LIKE '%rateLimited%' OR next_try_at = $6)",
        )
        .bind(now)
        .bind(NEVER)
        .bind(NEVER)
        .bind(name)
        .bind(now - 60_000)
        .bind(NEVER)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A domain served again after a while: its old failures (and a give-up)
    /// no longer count.
    pub(super) async fn reset_cert_failures(
        conn: &mut sqlx::AnyConnection,
        name: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE domain_certs SET failures = 0, failing_since = NULL, next_try_at = $1 \
             WHERE name = $2 AND state = 'failed'",
        )
        .bind(now_ms())
        .bind(name)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Certificates that have expired: forgotten, and taken off every edge
    /// (with the host's HTTPS policy, so plain HTTP is served again rather
    /// than redirected to a certificate no browser takes). Returns them.
    pub async fn expire_certs(&self, now_s: i64) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let names: Vec<String> = sqlx::query(
            "SELECT name FROM domain_certs WHERE chain_pem IS NOT NULL AND not_after <= $1",
        )
        .bind(now_s)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?;
        if names.is_empty() {
            return Ok(names);
        }
        sqlx::query(
            "UPDATE domain_certs SET chain_pem = NULL, key_enc = NULL, \
             state = CASE WHEN state = 'active' THEN 'pending' ELSE state END \
             WHERE chain_pem IS NOT NULL AND not_after <= $1",
        )
        .bind(now_s)
        .execute(&mut *tx)
        .await?;
        let syncs: Vec<EdgeSync> = names.iter().cloned().map(EdgeSync::Domain).collect();
        self.sync_edges(&mut tx, &syncs).await?;
        tx.commit().await?;
        Ok(names)
    }

    /// Puts (or with `None` removes) `name`'s challenge in the edge config.
    pub async fn set_challenge(
        &self,
        name: &str,
        c: Option<protocol::acme::HostChallenge>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        self.sync_edges(&mut tx, &[EdgeSync::Challenge(name.to_string(), c)])
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

pub(super) async fn cert_in(
    conn: &mut sqlx::AnyConnection,
    name: &str,
) -> Result<Option<CertRow>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CERT_COLS} FROM domain_certs WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| CertRow::from_row(&r))
    .transpose()
}

/// The sealed certificate entry of `c` under `name`, if it holds a valid
/// certificate and key.
fn cert_write(
    secrets: &crate::secrets::SecretBox,
    seal: &protocol::sealed::SealKey,
    name: &str,
    project_id: Option<String>,
    c: &CertRow,
) -> Result<Option<Write>, StoreError> {
    if !c.valid_at(now_ms() / 1000) {
        return Ok(None);
    }
    let key_pem = c
        .key_enc
        .as_deref()
        .map(|k| secrets.open(k))
        .transpose()
        .map_err(|e| {
            StoreError::Db(sqlx::Error::Decode(
                format!("the certificate key of {name}: {e}").into(),
            ))
        })?;
    Ok(match (key_pem, &c.chain_pem, c.not_after) {
        (Some(key_pem), Some(chain), Some(not_after)) => Some(Write {
            key: Key::Cert(name.to_string()),
            project_id,
            deployment_id: None,
            value: Some(Entry::Cert(CertEntry::seal(
                name,
                chain.clone(),
                &key_pem,
                not_after,
                seal,
            ))),
        }),
        _ => None,
    })
}

/// The base domain's wildcard from the ACME CA, while it holds a valid one;
/// otherwise nothing (the cluster CA's stays in place).
pub(super) async fn base_wildcard_write(
    conn: &mut sqlx::AnyConnection,
    secrets: &crate::secrets::SecretBox,
    seal: &protocol::sealed::SealKey,
    name: &str,
) -> Result<Vec<Write>, StoreError> {
    Ok(match cert_in(conn, name).await? {
        Some(c) => cert_write(secrets, seal, name, None, &c)?
            .into_iter()
            .collect(),
        None => Vec::new(),
    })
}

/// The TLS entries of custom domain `name`: its certificate (while one is
/// valid and the domain exists) and its HTTPS policy (while the domain is
/// served with a valid certificate).
pub(super) async fn domain_tls_writes(
    conn: &mut sqlx::AnyConnection,
    secrets: &crate::secrets::SecretBox,
    seal: &protocol::sealed::SealKey,
    name: &str,
) -> Result<Vec<Write>, StoreError> {
    let domain = super::domains::domain_in(conn, name).await?;
    let cert = cert_in(conn, name).await?;
    let pid = domain
        .as_ref()
        .map(|d| d.project_id.clone())
        .unwrap_or_default();
    let usable = match (&domain, &cert) {
        (Some(_), Some(c)) => cert_write(secrets, seal, name, Some(pid.clone()), c)?,
        _ => None,
    };
    let has_cert = usable.is_some();
    let cert_write = usable.unwrap_or_else(|| removal(Key::Cert(name.to_string()), &pid));
    let https = match &domain {
        Some(d) if has_cert && d.serves() => Write {
            key: Key::Https(name.to_string()),
            project_id: Some(pid.clone()),
            deployment_id: None,
            value: Some(Entry::Https(HttpsPolicy {
                redirect: d.https_redirect,
                hsts: d.hsts_max_age.map(|m| Hsts {
                    max_age: u32::try_from(m).unwrap_or(u32::MAX),
                    include_subdomains: d.hsts_include_subdomains,
                    preload: d.hsts_preload,
                }),
            })),
        },
        _ => removal(Key::Https(name.to_string()), &pid),
    };
    Ok(vec![cert_write, https])
}
