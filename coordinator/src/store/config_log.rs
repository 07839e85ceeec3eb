//! The edge config as a change log in the database: `config_entries` holds
//! the keyspace as it is, `config_log` one signed batch per version, and
//! `config_version` the newest version with the keyspace's state hash.
//!
//! A change to what edges serve is written in the same transaction as the
//! change itself (a deployment made ready, a production pointer moved, a
//! variable set): the transaction names what it touched ([`EdgeSync`]), and
//! [`Store::sync_edges`] reads those rows back *inside the transaction*,
//! derives the entries they imply, writes the ones that differ and appends
//! the batch. So the log can never disagree with the rows, and several
//! coordinators on one Postgres produce one order: the first statement
//! takes the `config_version` row's lock, and versions are consecutive.
//!
//! Architecture invariant: the cost of a sync is the entries it touches; no
//! query here lists the whole keyspace except [`Store::keyspace_page`]
//! (snapshots, paged) and [`Store::reconcile_edges`] (once, for databases
//! from before the log).

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::config::{Change, ChangeBatch, MAX_CHANGES_PER_BATCH};
use protocol::sealed::Keyring;
use protocol::signing::{BatchSignature, ConfigSigner, SignedBatch};
use protocol::{
    CertEntry, Entry, EnvKind, HostKind, HostTarget, Key, ProjectRuntime, RuntimeEnv, StateHash,
};
use sqlx::Row;

use super::{now_ms, DeploymentStatus, Store, StoreError, Target};
use crate::ca::ClusterCa;
use crate::config::Config;
use crate::secrets::SecretBox;

/// Host certificates are issued for this long and renewed when less
/// than [`CERT_RENEW_BEFORE_SECS`] is left.
pub const CERT_DAYS: i64 = 90;
pub const CERT_RENEW_BEFORE_SECS: i64 = 30 * 24 * 3600;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Any>;

/// What the store needs to turn rows into signed entries: the naming of
/// hosts, the instance key (it opens secrets, and the cluster keys they
/// are sealed to again for the edges), the CA that issues host
/// certificates, and the key that signs batches.
pub struct EdgeLog {
    pub config: Arc<Config>,
    pub secrets: Arc<SecretBox>,
    pub ca: Arc<ClusterCa>,
    pub signer: ConfigSigner,
}

/// Something a transaction changed that edges may need to hear of.
#[derive(Debug, Clone)]
pub enum EdgeSync {
    /// A deployment's own host (set while it is ready, else removed).
    Deployment(String),
    /// A project's production host.
    Production(String),
    /// A project's branch host: (project id, branch).
    Branch(String, String),
    /// A project's variables and outbound list.
    Runtime(String),
    /// Every entry of a deployment that no longer exists.
    DeploymentGone(String),
    /// Every entry of a project that no longer exists.
    ProjectGone(String),
    /// A certificate entry, set or (None) removed.
    Cert(String, Option<HostCert>),
    /// A node removed from the cluster: its id enters the revocation list.
    NodeRevoked(String),
    /// A revocation no longer needed (every certificate the node may hold
    /// has expired).
    RevocationExpired(String),
    /// A new history of the config (see [`protocol::config::Epoch`]).
    Epoch(protocol::config::Epoch),
    /// A new generation of the cluster key, and every sealed entry sealed
    /// again with it (after a node's removal).
    Reseal,
    /// A custom domain's host: served while the domain is, pointing where
    /// its target (production, a branch) points; else removed. Its
    /// certificate and HTTPS policy with it.
    Domain(String),
    /// The ACME account's key thumbprint (HTTP-01 answers).
    AcmeAccount(String),
    /// A host's ACME challenge under way, set or (None) removed.
    Challenge(String, Option<protocol::acme::HostChallenge>),
    /// A day's visitor salt for analytics, set or (None) dropped.
    Salt(i64, Option<[u8; 32]>),
    /// A project's request-log sample for its drains (project id): the
    /// largest rate of its drains that take request logs, or removed.
    RequestLog(String),
    /// The registered coordinators' QUIC addresses (edges fail over
    /// between them).
    Coordinators,
}

/// A host certificate as issued, before its key is sealed into an entry.
#[derive(Clone)]
pub struct HostCert {
    pub chain_pem: String,
    pub key_pem: String,
    /// Unix seconds.
    pub not_after: i64,
}

impl std::fmt::Debug for HostCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostCert")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// One entry to write: the key, whose rows it comes from, the value.
#[derive(Debug, Clone)]
pub(super) struct Write {
    pub(super) key: Key,
    pub(super) project_id: Option<String>,
    pub(super) deployment_id: Option<String>,
    pub(super) value: Option<Entry>,
}

/// What a subscriber needs to catch up from a version.
pub enum Since {
    Batches(Vec<SignedBatch>),
    /// The log no longer reaches back that far: send a snapshot.
    Compacted,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    protocol::wire::decode_body(bytes).map_err(|e| {
        StoreError::Db(sqlx::Error::Decode(
            format!("config log {what} does not decode: {e}").into(),
        ))
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, bincode::config::standard()).expect("in-memory encode")
}

impl Store {
    /// The store with what it needs to write the edge config log. Without
    /// it, changes only bump the version (the store suite runs so).
    pub fn with_edge_log(mut self, log: Arc<EdgeLog>) -> Store {
        self.edge = Some(log);
        self
    }

    /// Derives the entries `syncs` imply from the rows as this transaction
    /// sees them, writes those that changed, and appends the batch (or
    /// several, for big changes). Returns the newest version.
    pub(super) async fn sync_edges(
        &self,
        tx: &mut Tx<'_>,
        syncs: &[EdgeSync],
    ) -> Result<i64, StoreError> {
        // Write first: this takes the version row's lock (Postgres) or the
        // database's write lock (SQLite), so batches are ordered.
        let mut version = bump(tx).await?;
        let Some(log) = self.edge.clone() else {
            return Ok(version);
        };
        let mut ring = super::cluster_keys::keyring(tx, &log.secrets).await?;
        let mut writes = Vec::new();
        for s in syncs {
            writes.extend(derive(tx, &log, &mut ring, s).await?);
        }
        let mut state = head_state(tx).await?;
        let mut changes = Vec::new();
        let mut chunks = Vec::new();
        for w in writes {
            let key = w.key.encode();
            let old: Option<Vec<u8>> =
                sqlx::query("SELECT value FROM config_entries WHERE key = $1")
                    .bind(&key)
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|r| r.try_get("value"))
                    .transpose()?;
            let new = w.value.as_ref().map(Entry::encode);
            if old == new {
                continue;
            }
            if let Some(o) = &old {
                state.remove(&key, o);
                sqlx::query("DELETE FROM config_entries WHERE key = $1")
                    .bind(&key)
                    .execute(&mut **tx)
                    .await?;
            }
            if let Some(n) = &new {
                state.add(&key, n);
                sqlx::query(
                    "INSERT INTO config_entries (key, project_id, deployment_id, value, version) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&key)
                .bind(&w.project_id)
                .bind(&w.deployment_id)
                .bind(n)
                .bind(version)
                .execute(&mut **tx)
                .await?;
            }
            changes.push(Change {
                key: w.key,
                value: w.value,
            });
            if changes.len() == MAX_CHANGES_PER_BATCH {
                chunks.push((std::mem::take(&mut changes), state.clone()));
            }
        }
        if !changes.is_empty() || chunks.is_empty() {
            chunks.push((changes, state.clone()));
        }
        let n = chunks.len();
        for (i, (changes, state)) in chunks.into_iter().enumerate() {
            let batch = ChangeBatch {
                version: version as u64,
                changes,
            };
            let sig = log.signer.sign(&batch, state.checksum());
            sqlx::query(
                "INSERT INTO config_log (version, batch, signature, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(version)
            .bind(encode(&batch))
            .bind(encode(&sig))
            .bind(now_ms())
            .execute(&mut **tx)
            .await?;
            if i + 1 < n {
                version = bump(tx).await?;
            }
        }
        sqlx::query("UPDATE config_version SET state = $1 WHERE id = 1")
            .bind(state.to_bytes())
            .execute(&mut **tx)
            .await?;
        Ok(version)
    }

    /// Appends one batch for `syncs` in a transaction of its own.
    pub async fn sync_edges_now(&self, syncs: &[EdgeSync]) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let v = self.sync_edges(&mut tx, syncs).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// The batches after `have`, at most `max`, oldest first.
    pub async fn batches_since(&self, have: u64, max: usize) -> Result<Since, StoreError> {
        let head = self.config_version().await? as u64;
        if have >= head {
            return Ok(Since::Batches(Vec::new()));
        }
        let rows = sqlx::query(
            "SELECT version, batch, signature FROM config_log WHERE version > $1 \
             ORDER BY version LIMIT $2",
        )
        .bind(have as i64)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            let v: i64 = r.try_get("version")?;
            if v as u64 != have + 1 + i as u64 {
                // A gap: compacted, or versions bumped without a log (a
                // database from before the log).
                return Ok(Since::Compacted);
            }
            let batch: Vec<u8> = r.try_get("batch")?;
            let sig: Vec<u8> = r.try_get("signature")?;
            out.push(SignedBatch {
                batch: decode(&batch, "batch")?,
                signature: decode(&sig, "signature")?,
            });
        }
        if out.is_empty() {
            return Ok(Since::Compacted);
        }
        Ok(Since::Batches(out))
    }

    /// The signature of `version`'s batch, for a snapshot's end.
    pub async fn batch_signature(
        &self,
        version: u64,
    ) -> Result<Option<BatchSignature>, StoreError> {
        let row = sqlx::query("SELECT signature FROM config_log WHERE version = $1")
            .bind(version as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let sig: Vec<u8> = r.try_get("signature")?;
            decode(&sig, "signature")
        })
        .transpose()
    }

    /// One page of the keyspace after the key `after`, with the version it
    /// was read at. Pages read at different versions are stitched by the
    /// caller: it restarts when the version moved.
    pub async fn keyspace_page(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<(u64, Vec<(String, Vec<u8>)>), StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.backend == super::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let version: i64 = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        let rows = sqlx::query(
            "SELECT key, value FROM config_entries WHERE key > $1 ORDER BY key LIMIT $2",
        )
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let page = rows
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect::<Result<_, StoreError>>()?;
        Ok((version as u64, page))
    }

    /// Entries of one project, by key prefix (`h/` hosts), at most `limit`.
    pub async fn project_entries(
        &self,
        project_id: &str,
        prefix: &str,
        limit: i64,
    ) -> Result<Vec<(String, Entry)>, StoreError> {
        let rows = sqlx::query(
            "SELECT key, value FROM config_entries WHERE project_id = $1 AND key >= $2 \
             AND key < $3 AND deployment_id IS NULL ORDER BY key LIMIT $4",
        )
        .bind(project_id)
        .bind(prefix)
        .bind(format!("{prefix}\u{10ffff}"))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let key: String = r.try_get("key")?;
            let value: Vec<u8> = r.try_get("value")?;
            out.push((key, decode(&value, "entry")?));
        }
        Ok(out)
    }

    /// Certificate entries that expire within `within_secs`.
    pub async fn expiring_certs(&self, within_secs: i64) -> Result<Vec<String>, StoreError> {
        let now = now_ms() / 1000;
        // Certificates from the ACME CA are the ACME worker's to renew: a
        // cluster-CA one in their place would break HTTPS for browsers.
        // Custom domains never get a cluster-CA certificate; the base
        // domain's wildcard falls back to one only once its public one
        // has lapsed.
        let acme: std::collections::HashSet<String> = sqlx::query(
            "SELECT name FROM domains UNION SELECT name FROM domain_certs WHERE not_after > $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?;
        Ok(self
            .entries_of_kind('c')
            .await?
            .into_iter()
            .filter_map(|(name, e)| match e {
                Entry::Cert(c) if c.not_after - now < within_secs && !acme.contains(&name) => {
                    Some(name)
                }
                _ => None,
            })
            .collect())
    }

    /// Every entry of one kind of key (`c`: certificates, `r`:
    /// revocations; both a handful), by the name after its `<kind>/`.
    async fn entries_of_kind(&self, kind: char) -> Result<Vec<(String, Entry)>, StoreError> {
        // `<kind>/` up to `<kind>0`: '0' follows '/' in ASCII.
        let rows =
            sqlx::query("SELECT key, value FROM config_entries WHERE key >= $1 AND key < $2")
                .bind(format!("{kind}/"))
                .bind(format!("{kind}0"))
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let key: String = r.try_get("key")?;
            let value: Vec<u8> = r.try_get("value")?;
            out.push((key[2..].to_string(), decode::<Entry>(&value, "entry")?));
        }
        Ok(out)
    }

    /// The entry under `key`, if any.
    async fn entry(&self, key: &Key) -> Result<Option<Entry>, StoreError> {
        let row = sqlx::query("SELECT value FROM config_entries WHERE key = $1")
            .bind(key.encode())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let v: Vec<u8> = r.try_get("value")?;
            decode::<Entry>(&v, "entry")
        })
        .transpose()
    }

    /// The days with a visitor salt in the config.
    pub async fn salt_days(&self) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .entries_of_kind('v')
            .await?
            .into_iter()
            .filter_map(|(day, _)| day.parse().ok())
            .collect())
    }

    /// Revoked node ids whose revocation is older than `older_than_ms`
    /// (the list is as long as the nodes removed within a certificate's
    /// lifetime: a few).
    pub async fn stale_revocations(&self, older_than_ms: i64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .entries_of_kind('r')
            .await?
            .into_iter()
            .filter_map(|(id, e)| match e {
                Entry::Revoked(rv) if rv.at_ms < older_than_ms => Some(id),
                _ => None,
            })
            .collect())
    }

    /// The config's current epoch (none in a database from before epochs).
    pub async fn config_epoch(&self) -> Result<Option<protocol::config::Epoch>, StoreError> {
        Ok(match self.entry(&Key::Epoch).await? {
            Some(Entry::Epoch(e)) => Some(e),
            _ => None,
        })
    }

    /// Starts a new epoch because version `seen` exists somewhere (an edge
    /// holds it, or this coordinator published it) while the database is
    /// behind it: the database was restored. Nothing happens when the
    /// current epoch already supersedes `seen` (several edges report the
    /// same old version). Returns whether a new epoch began.
    pub async fn supersede(&self, seen: u64) -> Result<bool, StoreError> {
        if self.edge.is_none() {
            return Ok(false);
        }
        let head = self.config_version().await?.max(0) as u64;
        let current = self.config_epoch().await?;
        if seen <= head || current.is_some_and(|e| seen <= e.supersedes) {
            return Ok(false);
        }
        let epoch = protocol::config::Epoch {
            id: rand::random(),
            supersedes: seen,
        };
        tracing::warn!(
            database = head,
            seen,
            epoch = epoch.id,
            "the edge config version went back (database restored?): starting a new config epoch"
        );
        self.sync_edges_now(&[EdgeSync::Epoch(epoch)]).await?;
        Ok(true)
    }

    /// Deletes log rows older than `keep` versions behind the head.
    pub async fn compact_log(&self, keep: u64) -> Result<u64, StoreError> {
        let head = self.config_version().await? as u64;
        let Some(oldest_kept) = head.checked_sub(keep) else {
            return Ok(0);
        };
        Ok(sqlx::query("DELETE FROM config_log WHERE version < $1")
            .bind(oldest_kept as i64)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// For a database from before the log (its state is NULL): derives the
    /// whole keyspace from the rows, once, and appends it as batches. Also
    /// makes sure the base domain's wildcard and apex certificates exist.
    pub async fn reconcile_edges(&self) -> Result<(), StoreError> {
        let Some(log) = self.edge.clone() else {
            return Ok(());
        };
        let mut state: Option<Vec<u8>> =
            sqlx::query("SELECT state FROM config_version WHERE id = 1")
                .fetch_one(&self.pool)
                .await?
                .try_get("state")?;
        let base = log.config.base_domain.clone();
        if state.is_some() && !self.has_cluster_key().await? {
            self.forget_unsealed_log().await?;
            state = None;
        }
        let mut syncs = Vec::new();
        if self.config_epoch().await?.is_none() {
            syncs.push(EdgeSync::Epoch(protocol::config::Epoch {
                id: rand::random(),
                supersedes: 0,
            }));
        }
        for name in [format!("*.{base}"), base.clone()] {
            if self.cert_entry(&name).await?.is_none_or(|c| !fresh(&c)) {
                syncs.push(EdgeSync::Cert(name.clone(), Some(issue(&log.ca, &name)?)));
            }
        }
        if state.is_none() {
            tracing::info!("building the edge config log from the database (first start with it)");
            for r in sqlx::query("SELECT id FROM deployments WHERE status = $1")
                .bind(DeploymentStatus::Ready.as_str())
                .fetch_all(&self.pool)
                .await?
            {
                syncs.push(EdgeSync::Deployment(r.try_get("id")?));
            }
            for r in sqlx::query("SELECT id FROM projects")
                .fetch_all(&self.pool)
                .await?
            {
                let id: String = r.try_get("id")?;
                syncs.push(EdgeSync::Production(id.clone()));
                syncs.push(EdgeSync::Runtime(id));
            }
            for r in sqlx::query("SELECT project_id, branch FROM branch_aliases")
                .fetch_all(&self.pool)
                .await?
            {
                syncs.push(EdgeSync::Branch(
                    r.try_get("project_id")?,
                    r.try_get("branch")?,
                ));
            }
        }
        if !syncs.is_empty() || state.is_none() {
            self.sync_edges_now(&syncs).await?;
        }
        Ok(())
    }

    /// A config log written before entries were sealed holds secrets in
    /// the clear (in entries that no longer decode). It is dropped whole
    /// and built again from the rows, as at a first start: the versions go
    /// on from where they were, a new epoch tells every edge to take a
    /// snapshot, and the old batches are gone from the log.
    async fn forget_unsealed_log(&self) -> Result<(), StoreError> {
        tracing::info!(
            "sealing the edge config's secrets to a cluster key: rebuilding the config log"
        );
        let mut tx = self.pool.begin().await?;
        for q in [
            "DELETE FROM config_entries",
            "DELETE FROM config_log",
            "UPDATE config_version SET state = NULL WHERE id = 1",
        ] {
            sqlx::query(q).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn cert_entry(&self, name: &str) -> Result<Option<CertEntry>, StoreError> {
        Ok(match self.entry(&Key::Cert(name.to_string())).await? {
            Some(Entry::Cert(c)) => Some(c),
            _ => None,
        })
    }

    /// Issues a fresh certificate for `name` and publishes it.
    pub async fn renew_cert(&self, name: &str) -> Result<i64, StoreError> {
        let Some(log) = self.edge.clone() else {
            return self.bump_config_version().await;
        };
        let cert = issue(&log.ca, name)?;
        self.sync_edges_now(&[EdgeSync::Cert(name.to_string(), Some(cert))])
            .await
    }
}

fn fresh(c: &CertEntry) -> bool {
    c.not_after - now_ms() / 1000 > CERT_RENEW_BEFORE_SECS
}

fn issue(ca: &ClusterCa, name: &str) -> Result<HostCert, StoreError> {
    let issued = ca
        .issue_server(vec![name.to_string()], CERT_DAYS)
        .map_err(|e| {
            StoreError::Db(sqlx::Error::Protocol(format!(
                "issuing a certificate for {name}: {e}"
            )))
        })?;
    Ok(HostCert {
        chain_pem: issued.cert_pem,
        key_pem: issued.key_pem,
        not_after: issued.not_after.unix_timestamp(),
    })
}

/// `cert` as the entry of certificate `name`, its key sealed.
fn sealed_cert(name: &str, cert: HostCert, ring: &Keyring) -> CertEntry {
    let key = super::cluster_keys::newest(ring);
    CertEntry::seal(name, cert.chain_pem, &cert.key_pem, cert.not_after, &key)
}

/// An entry sealed with an older generation, sealed again with the newest
/// (`None`: nothing in it is sealed, or it already uses the newest).
fn resealed(key: &Key, entry: Entry, ring: &Keyring) -> Result<Option<Entry>, StoreError> {
    let newest = super::cluster_keys::newest(ring);
    let bad = |e: protocol::sealed::SealError| {
        StoreError::Db(sqlx::Error::Decode(
            format!("the sealed entry {}: {e}", key.encode()).into(),
        ))
    };
    Ok(match (key, entry) {
        (Key::Project(p), Entry::Project(mut rt)) => {
            if rt.env.as_ref().is_none_or(|s| s.key == newest.generation()) {
                return Ok(None);
            }
            rt.env = RuntimeEnv::open(&rt, ring, p)
                .map_err(bad)?
                .seal(&newest, p);
            Some(Entry::Project(rt))
        }
        (Key::Cert(name), Entry::Cert(c)) => {
            if c.key.key == newest.generation() {
                return Ok(None);
            }
            let pem = c.open_key(ring, name).map_err(bad)?;
            Some(Entry::Cert(CertEntry::seal(
                name,
                c.chain_pem,
                &pem,
                c.not_after,
                &newest,
            )))
        }
        _ => None,
    })
}

async fn bump(tx: &mut Tx<'_>) -> Result<i64, StoreError> {
    sqlx::query("UPDATE config_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    let row = sqlx::query("SELECT version FROM config_version WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?;
    Ok(row.try_get("version")?)
}

async fn head_state(tx: &mut Tx<'_>) -> Result<StateHash, StoreError> {
    let bytes: Option<Vec<u8>> = sqlx::query("SELECT state FROM config_version WHERE id = 1")
        .fetch_one(&mut **tx)
        .await?
        .try_get("state")?;
    Ok(match bytes {
        Some(b) => StateHash::from_bytes(&b).ok_or_else(|| {
            StoreError::Db(sqlx::Error::Decode(
                "config state hash has the wrong size".into(),
            ))
        })?,
        None => StateHash::default(),
    })
}

fn env_of(target: &str) -> EnvKind {
    // A deployment made for production keeps production variables on its
    // own URL too; previews get preview variables.
    if target == Target::Production.as_str() {
        EnvKind::Production
    } else {
        EnvKind::Preview
    }
}

fn host_write(
    host: String,
    project: (&str, &str),
    deployment: (&str, &str, &str),
    kind: HostKind,
    env: EnvKind,
) -> Result<Write, StoreError> {
    let (project_id, project_name) = project;
    let (deployment_id, bundle, _) = deployment;
    let bundle = bundle
        .parse()
        .map_err(|_| StoreError::Db(sqlx::Error::Decode(format!("bundle id {bundle:?}").into())))?;
    Ok(Write {
        key: Key::Host(host),
        project_id: Some(project_id.to_string()),
        // Only a deployment's own host is its: aliases move, they are not
        // deleted with the deployment they point at.
        deployment_id: (kind == HostKind::Deployment).then(|| deployment_id.to_string()),
        value: Some(Entry::Host(HostTarget {
            project: project_name.to_string(),
            deployment: deployment_id.to_string(),
            bundle,
            env,
            kind,
        })),
    })
}

pub(super) fn removal(key: Key, project_id: &str) -> Write {
    Write {
        key,
        project_id: Some(project_id.to_string()),
        deployment_id: None,
        value: None,
    }
}

/// A certificate of its own for an eager host (production, branch), made
/// once: per-deployment hosts use the base domain's wildcard, and clients
/// that refuse a wildcard directly under a one-label base (`*.localhost`)
/// still reach production and branch hosts. None (and any made before
/// removed) while `[acme] base_domain` gives the base a public wildcard.
async fn cert_for(
    tx: &mut Tx<'_>,
    log: &EdgeLog,
    ring: &Keyring,
    host: &str,
    project_id: &str,
) -> Result<Option<Write>, StoreError> {
    let key = Key::Cert(host.to_string());
    if log.config.acme.enabled && log.config.acme.base_domain {
        // The base domain's public wildcard covers the host (a base of two
        // labels or more, which every client takes a wildcard under).
        return Ok(Some(removal(key, project_id)));
    }
    let exists = sqlx::query("SELECT 1 AS one FROM config_entries WHERE key = $1")
        .bind(key.encode())
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if exists {
        return Ok(None);
    }
    Ok(Some(Write {
        key,
        project_id: Some(project_id.to_string()),
        deployment_id: None,
        value: Some(Entry::Cert(sealed_cert(host, issue(&log.ca, host)?, ring))),
    }))
}

/// The entries one sync implies, read inside the transaction.
async fn derive(
    tx: &mut Tx<'_>,
    log: &EdgeLog,
    ring: &mut Keyring,
    s: &EdgeSync,
) -> Result<Vec<Write>, StoreError> {
    let cfg = &log.config;
    let mut out = Vec::new();
    match s {
        EdgeSync::Deployment(id) => {
            let row = sqlx::query(
                "SELECT d.status AS status, d.bundle_id AS bundle, d.target AS target, \
                 p.id AS pid, p.name AS pname FROM deployments d JOIN projects p ON p.id = d.project_id \
                 WHERE d.id = $1",
            )
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(r) = row {
                let (status, bundle, target): (String, String, String) = (
                    r.try_get("status")?,
                    r.try_get("bundle")?,
                    r.try_get("target")?,
                );
                let (pid, pname): (String, String) = (r.try_get("pid")?, r.try_get("pname")?);
                let host = cfg.deployment_host(&pname, id);
                if status == DeploymentStatus::Ready.as_str() {
                    out.push(host_write(
                        host,
                        (&pid, &pname),
                        (id, &bundle, &target),
                        HostKind::Deployment,
                        env_of(&target),
                    )?);
                } else {
                    out.push(removal(Key::Host(host), &pid));
                }
            }
        }
        EdgeSync::Production(pid) => {
            let row = sqlx::query(
                "SELECT p.name AS pname, d.id AS did, d.bundle_id AS bundle, d.status AS status, \
                 d.target AS target FROM projects p LEFT JOIN deployments d \
                 ON d.id = p.production_deployment WHERE p.id = $1",
            )
            .bind(pid)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(r) = row {
                let pname: String = r.try_get("pname")?;
                let host = cfg.production_host(&pname);
                let did: Option<String> = r.try_get("did")?;
                let status: Option<String> = r.try_get("status")?;
                match (did, status) {
                    (Some(did), Some(st)) if st == DeploymentStatus::Ready.as_str() => {
                        let bundle: String = r.try_get("bundle")?;
                        let target: String = r.try_get("target")?;
                        out.extend(cert_for(tx, log, ring, &host, pid).await?);
                        out.push(host_write(
                            host,
                            (pid, &pname),
                            (&did, &bundle, &target),
                            HostKind::Production,
                            EnvKind::Production,
                        )?);
                    }
                    _ => out.push(removal(Key::Host(host), pid)),
                }
            }
            out.extend(project_domain_writes(tx, pid, None).await?);
        }
        EdgeSync::Branch(pid, branch) => {
            let row = sqlx::query(
                "SELECT p.name AS pname, d.id AS did, d.bundle_id AS bundle, d.status AS status, \
                 d.target AS target FROM projects p LEFT JOIN branch_aliases a \
                 ON a.project_id = p.id AND a.branch = $1 LEFT JOIN deployments d \
                 ON d.id = a.deployment_id WHERE p.id = $2",
            )
            .bind(branch)
            .bind(pid)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(r) = row {
                let pname: String = r.try_get("pname")?;
                let host = cfg.branch_host(&pname, branch);
                let did: Option<String> = r.try_get("did")?;
                let status: Option<String> = r.try_get("status")?;
                match (did, status) {
                    (Some(did), Some(st)) if st == DeploymentStatus::Ready.as_str() => {
                        let bundle: String = r.try_get("bundle")?;
                        let target: String = r.try_get("target")?;
                        out.extend(cert_for(tx, log, ring, &host, pid).await?);
                        out.push(host_write(
                            host,
                            (pid, &pname),
                            (&did, &bundle, &target),
                            HostKind::Branch,
                            env_of(&target),
                        )?);
                    }
                    _ => {
                        out.push(removal(Key::Host(host.clone()), pid));
                        out.push(removal(Key::Cert(host), pid));
                    }
                }
            }
            out.extend(project_domain_writes(tx, pid, Some(branch)).await?);
        }
        EdgeSync::Runtime(pid) => {
            let row = sqlx::query("SELECT name, outbound FROM projects WHERE id = $1")
                .bind(pid)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(r) = row {
                let pname: String = r.try_get("name")?;
                let outbound: Option<String> = r.try_get("outbound")?;
                let mut rt = ProjectRuntime {
                    outbound: outbound
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    env: None,
                };
                let vars = sqlx::query(
                    "SELECT env_kind, name, value_plain, value_enc FROM env_vars WHERE project_id = $1",
                )
                .bind(pid)
                .fetch_all(&mut **tx)
                .await?;
                let mut maps: BTreeMap<bool, BTreeMap<String, String>> = BTreeMap::new();
                for v in vars {
                    let kind: String = v.try_get("env_kind")?;
                    let name: String = v.try_get("name")?;
                    let plain: Option<String> = v.try_get("value_plain")?;
                    let enc: Option<Vec<u8>> = v.try_get("value_enc")?;
                    let value = match (plain, enc) {
                        (Some(p), _) => p,
                        (None, Some(e)) => log.secrets.open(&e).map_err(|e| {
                            StoreError::Db(sqlx::Error::Decode(
                                format!("a secret of project {pname}: {e}").into(),
                            ))
                        })?,
                        (None, None) => continue,
                    };
                    maps.entry(kind == "preview")
                        .or_default()
                        .insert(name, value);
                }
                let env = RuntimeEnv {
                    preview: maps.remove(&true).unwrap_or_default(),
                    production: maps.remove(&false).unwrap_or_default(),
                };
                rt.env = env.seal(&super::cluster_keys::newest(ring), &pname);
                let empty = rt == ProjectRuntime::default();
                out.push(Write {
                    key: Key::Project(pname),
                    project_id: Some(pid.clone()),
                    deployment_id: None,
                    value: (!empty).then_some(Entry::Project(rt)),
                });
            }
        }
        EdgeSync::DeploymentGone(id) => {
            for r in
                sqlx::query("SELECT key, project_id FROM config_entries WHERE deployment_id = $1")
                    .bind(id)
                    .fetch_all(&mut **tx)
                    .await?
            {
                let key: String = r.try_get("key")?;
                let pid: Option<String> = r.try_get("project_id")?;
                out.push(removal(
                    Key::decode(&key).map_err(bad_key)?,
                    pid.as_deref().unwrap_or(""),
                ));
            }
        }
        EdgeSync::ProjectGone(pid) => {
            for r in sqlx::query("SELECT key FROM config_entries WHERE project_id = $1")
                .bind(pid)
                .fetch_all(&mut **tx)
                .await?
            {
                let key: String = r.try_get("key")?;
                out.push(removal(Key::decode(&key).map_err(bad_key)?, pid));
            }
        }
        EdgeSync::Cert(name, entry) => out.push(Write {
            key: Key::Cert(name.clone()),
            project_id: None,
            deployment_id: None,
            value: entry
                .clone()
                .map(|c| Entry::Cert(sealed_cert(name, c, ring))),
        }),
        EdgeSync::NodeRevoked(id) => out.push(Write {
            key: Key::Revoked(id.clone()),
            project_id: None,
            deployment_id: None,
            value: Some(Entry::Revoked(protocol::Revocation { at_ms: now_ms() })),
        }),
        EdgeSync::Epoch(e) => out.push(Write {
            key: Key::Epoch,
            project_id: None,
            deployment_id: None,
            value: Some(Entry::Epoch(*e)),
        }),
        EdgeSync::RevocationExpired(id) => out.push(Write {
            key: Key::Revoked(id.clone()),
            project_id: None,
            deployment_id: None,
            value: None,
        }),
        EdgeSync::Domain(name) if name.strip_prefix("*.") == Some(cfg.base_domain.as_str()) => {
            // The platform's own wildcard from the ACME CA (no host entry:
            // per-deployment hosts have their own).
            let seal = super::cluster_keys::newest(ring);
            out.extend(super::acme::base_wildcard_write(tx, &log.secrets, &seal, name).await?);
        }
        EdgeSync::Domain(name) => {
            out.push(domain_write(tx, name).await?);
            let seal = super::cluster_keys::newest(ring);
            out.extend(super::acme::domain_tls_writes(tx, &log.secrets, &seal, name).await?);
        }
        EdgeSync::AcmeAccount(thumbprint) => out.push(Write {
            key: Key::Acme,
            project_id: None,
            deployment_id: None,
            value: Some(Entry::Acme(protocol::acme::AcmeAccount {
                thumbprint: thumbprint.clone(),
            })),
        }),
        EdgeSync::Challenge(name, c) => out.push(Write {
            key: Key::Challenge(name.clone()),
            project_id: None,
            deployment_id: None,
            value: c.clone().map(Entry::Challenge),
        }),
        EdgeSync::RequestLog(pid) => {
            let name: Option<String> = sqlx::query("SELECT name FROM projects WHERE id = $1")
                .bind(pid)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get("name"))
                .transpose()?;
            if let Some(name) = name {
                let rows =
                    sqlx::query("SELECT sources, sample_ppm FROM log_drains WHERE project_id = $1")
                        .bind(pid)
                        .fetch_all(&mut **tx)
                        .await?;
                let mut rate: Option<u32> = None;
                for r in rows {
                    let sources: String = r.try_get("sources")?;
                    let ppm: i64 = r.try_get("sample_ppm")?;
                    if sources.contains("\"request\"") {
                        rate = rate.max(Some(ppm.clamp(1, 1_000_000) as u32));
                    }
                }
                out.push(Write {
                    key: Key::RequestLog(name),
                    project_id: Some(pid.clone()),
                    deployment_id: None,
                    value: rate.map(|sample_ppm| {
                        Entry::RequestLog(protocol::config::RequestLogPolicy { sample_ppm })
                    }),
                });
            }
        }
        EdgeSync::Coordinators => {
            let mut addrs: Vec<String> = Vec::new();
            for r in sqlx::query("SELECT quic_addr FROM coordinators ORDER BY started_at, id")
                .fetch_all(&mut **tx)
                .await?
            {
                let a: String = r.try_get("quic_addr")?;
                // An address no edge could parse is left out (validated at
                // start too); the list is bounded like the edge bounds it.
                if protocol::config::CoordinatorList::is_valid_addr(&a)
                    && !addrs.contains(&a)
                    && addrs.len() < protocol::config::CoordinatorList::MAX
                {
                    addrs.push(a);
                }
            }
            let list = protocol::config::CoordinatorList { addrs };
            out.push(Write {
                key: Key::Coordinators,
                project_id: None,
                deployment_id: None,
                value: list.is_valid().then_some(Entry::Coordinators(list)),
            });
        }
        EdgeSync::Salt(day, salt) => out.push(Write {
            key: Key::Salt(*day),
            project_id: None,
            deployment_id: None,
            value: salt.map(|s| Entry::Salt(protocol::config::VisitorSalt(s))),
        }),
        EdgeSync::Reseal => {
            super::cluster_keys::rotate(tx, &log.secrets).await?;
            *ring = super::cluster_keys::keyring(tx, &log.secrets).await?;
            let rows = sqlx::query(
                "SELECT key, project_id, deployment_id, value FROM config_entries \
                 WHERE (key >= 'p/' AND key < 'p0') OR (key >= 'c/' AND key < 'c0')",
            )
            .fetch_all(&mut **tx)
            .await?;
            for r in rows {
                let key = Key::decode(&r.try_get::<String, _>("key")?).map_err(bad_key)?;
                let value: Vec<u8> = r.try_get("value")?;
                if let Some(entry) = resealed(&key, decode::<Entry>(&value, "entry")?, ring)? {
                    out.push(Write {
                        key,
                        project_id: r.try_get("project_id")?,
                        deployment_id: r.try_get("deployment_id")?,
                        value: Some(entry),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The host entry of custom domain `name`: where its target points while
/// the domain is served, else none.
async fn domain_write(tx: &mut Tx<'_>, name: &str) -> Result<Write, StoreError> {
    let gone = |pid: &str| removal(Key::Host(name.to_string()), pid);
    let Some(d) = super::domains::domain_in(tx, name).await? else {
        return Ok(gone(""));
    };
    let pid = d.project_id.clone();
    if !d.serves() {
        return Ok(gone(&pid));
    }
    if let Some(to) = d.redirect_to {
        return Ok(Write {
            key: Key::Host(name.to_string()),
            project_id: Some(pid),
            deployment_id: None,
            value: Some(Entry::Redirect(protocol::HostRedirect {
                to,
                status: d
                    .redirect_status
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(308),
            })),
        });
    }
    let pname: String = sqlx::query("SELECT name FROM projects WHERE id = $1")
        .bind(&pid)
        .fetch_one(&mut **tx)
        .await?
        .try_get("name")?;
    let branch = d.branch;
    let deployment = match &branch {
        None => {
            sqlx::query(
                "SELECT d.id AS did, d.bundle_id AS bundle, d.target AS target, d.status AS status \
                 FROM projects p JOIN deployments d ON d.id = p.production_deployment WHERE p.id = $1",
            )
            .bind(&pid)
            .fetch_optional(&mut **tx)
            .await?
        }
        Some(b) => {
            sqlx::query(
                "SELECT d.id AS did, d.bundle_id AS bundle, d.target AS target, d.status AS status \
                 FROM branch_aliases a JOIN deployments d ON d.id = a.deployment_id \
                 WHERE a.project_id = $1 AND a.branch = $2",
            )
            .bind(&pid)
            .bind(b)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    let Some(dep) = deployment else {
        return Ok(gone(&pid));
    };
    if dep.try_get::<String, _>("status")? != DeploymentStatus::Ready.as_str() {
        return Ok(gone(&pid));
    }
    let (did, bundle, target): (String, String, String) = (
        dep.try_get("did")?,
        dep.try_get("bundle")?,
        dep.try_get("target")?,
    );
    let (kind, env) = match branch {
        None => (HostKind::Production, EnvKind::Production),
        Some(_) => (HostKind::Branch, env_of(&target)),
    };
    host_write(
        name.to_string(),
        (&pid, &pname),
        (&did, &bundle, &target),
        kind,
        env,
    )
}

/// The host entries of `pid`'s domains on production (`None`) or on `branch`.
async fn project_domain_writes(
    tx: &mut Tx<'_>,
    pid: &str,
    branch: Option<&str>,
) -> Result<Vec<Write>, StoreError> {
    let names: Vec<String> = match branch {
        None => {
            sqlx::query(
                "SELECT name FROM domains WHERE project_id = $1 \
                 AND branch IS NULL AND redirect_to IS NULL",
            )
            .bind(pid)
            .fetch_all(&mut **tx)
            .await?
        }
        Some(b) => {
            sqlx::query("SELECT name FROM domains WHERE project_id = $1 AND branch = $2")
                .bind(pid)
                .bind(b)
                .fetch_all(&mut **tx)
                .await?
        }
    }
    .iter()
    .map(|r| r.try_get("name"))
    .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(names.len());
    for n in names {
        out.push(domain_write(tx, &n).await?);
    }
    Ok(out)
}

fn bad_key(e: protocol::config::ConfigError) -> StoreError {
    StoreError::Db(sqlx::Error::Decode(e.to_string().into()))
}

/// What [`Store::stream_keyspace`] sends.
pub enum KeyspaceItem {
    Begin(u64),
    Page(Vec<(String, Vec<u8>)>),
    End(BatchSignature),
}

impl Store {
    /// Streams the whole keyspace as one consistent read: its version,
    /// pages of `page` entries, and the signature of that version. The
    /// bounded channel keeps memory to a page or two, whatever the size.
    pub async fn stream_keyspace(
        &self,
        page: usize,
        out: tokio::sync::mpsc::Sender<KeyspaceItem>,
    ) -> Result<(), StoreError> {
        use futures::TryStreamExt;
        let mut tx = self.pool.begin().await?;
        if self.backend == super::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let version: i64 = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        let sig: Option<Vec<u8>> =
            sqlx::query("SELECT signature FROM config_log WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("signature"))
                .transpose()?;
        let Some(sig) = sig else {
            return Err(StoreError::Db(sqlx::Error::Protocol(format!(
                "config version {version} has no signed batch"
            ))));
        };
        let sig: BatchSignature = decode(&sig, "signature")?;
        if out.send(KeyspaceItem::Begin(version as u64)).await.is_err() {
            return Ok(());
        }
        let mut rows =
            sqlx::query("SELECT key, value FROM config_entries ORDER BY key").fetch(&mut *tx);
        let mut buf = Vec::with_capacity(page);
        while let Some(r) = rows.try_next().await? {
            buf.push((r.try_get("key")?, r.try_get("value")?));
            if buf.len() == page
                && out
                    .send(KeyspaceItem::Page(std::mem::take(&mut buf)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        drop(rows);
        if !buf.is_empty() && out.send(KeyspaceItem::Page(buf)).await.is_err() {
            return Ok(());
        }
        let _ = out.send(KeyspaceItem::End(sig)).await;
        tx.commit().await?;
        Ok(())
    }
}
