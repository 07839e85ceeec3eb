//! Coordinator metadata on sqlx: SQLite by default, Postgres for scale-out.
//!
//! One code path for both through sqlx's `Any` driver: queries use only
//! `$N` placeholders (in ascending order) and the types both backends share
//! (BIGINT, TEXT, BLOB/BYTEA). Each backend has its own migration folder.

mod accounts;
mod acme;
pub mod alerts;
pub mod analytics;
mod builds;
mod certs;
mod cluster_keys;
mod config_log;
mod coordinators;
mod deployments;
mod domains;
pub mod drains;
mod env;
pub mod errors;
mod lifecycle;
mod logs;
mod models;
mod nodes;
mod projects;

use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

pub use accounts::AcceptOutcome;
pub use acme::{CertRow, Issued, OrderStarted, NEVER};
pub use builds::{ReadyBuild, MAX_BUILD_ATTEMPTS};
pub use config_log::{EdgeLog, EdgeSync, KeyspaceItem, Since, CERT_RENEW_BEFORE_SECS};
pub use coordinators::CoordinatorRow;
pub use domains::{AddOutcome, DomainRow, MAX_DOMAINS_PER_PROJECT};
pub use lifecycle::{Retention, Undeletable, Usage};
pub use models::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{0} is gone (deleted, or not ready)")]
    Gone(String),
    #[error("a team needs at least one owner")]
    LastOwner,
    #[error("join token rejected: {0}")]
    JoinToken(JoinTokenError),
    #[error("the first account needs the instance's setup token")]
    SetupToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    #[error("unknown token")]
    Invalid,
    #[error("token was already used")]
    Used,
    #[error("token has expired")]
    Expired,
    #[error("token was created for another region")]
    RegionMismatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Writes the edge config log with every change (`config_log.rs`).
    edge: Option<std::sync::Arc<EdgeLog>>,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl Store {
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let mut opts = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            // One writer at a time is SQLite's rule; WAL lets readers go on
            // meanwhile and the busy timeout queues writers instead of failing.
            opts = opts.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = opts.connect(url).await?;
        let store = Store {
            pool,
            backend,
            edge: None,
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&store.pool).await?,
            Backend::Postgres => {
                sqlx::migrate!("migrations/postgres")
                    .run(&store.pool)
                    .await?
            }
        }
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await
    }

    /// The connections the pool holds now, and how many of them are idle.
    pub fn pool_connections(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    pub async fn config_version(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("version")?)
    }

    /// A batch that changes nothing (tests use it to move the version).
    pub async fn bump_config_version(&self) -> Result<i64, StoreError> {
        self.sync_edges_now(&[]).await
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

trait FromRow: Sized {
    fn from_row(r: &AnyRow) -> Result<Self, StoreError>;
}

impl Store {
    /// One row of `table` by its id, as `T`.
    async fn by_id<T: FromRow>(
        &self,
        table: &str,
        cols: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {cols} FROM {table} WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| T::from_row(&r)).transpose()
    }

    /// A project's rows of `table`, newest first; `before` is the
    /// (created_at, id) of the last one seen.
    async fn newest_first<T: FromRow>(
        &self,
        table: &str,
        cols: &str,
        project_id: &str,
        before: Option<(i64, &str)>,
        limit: i64,
    ) -> Result<Vec<T>, StoreError> {
        let (ts, id) = before.unwrap_or((i64::MAX, ""));
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {cols} FROM {table} WHERE project_id = $1 \
             AND (created_at < $2 OR (created_at = $3 AND id < $4)) \
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(project_id)
        .bind(ts)
        .bind(ts)
        .bind(if before.is_some() { id } else { "\u{10ffff}" })
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(T::from_row).collect()
    }
}
