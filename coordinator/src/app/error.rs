//! The domain error every use case returns: what kind of failure it is
//! (the HTTP layers map kinds to status codes and pages), a stable code
//! for scripts, a message for people, and optional details.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed or a field is out of bounds.
    Invalid,
    /// No credential, or one that is not valid.
    Unauthenticated,
    /// A credential that may not do this.
    Forbidden,
    /// It does not exist, or the caller may not know it does.
    NotFound,
    /// It cannot be done in the current state (already exists, not ready…).
    Conflict,
    /// It existed but is gone for good (used invitation links).
    Gone,
    /// A body or value over its limit.
    TooLarge,
    /// The body is not of a type the use case reads.
    UnsupportedMedia,
    /// Too many attempts; try later.
    RateLimited,
    /// The team's quota would be exceeded (deleting something frees it).
    QuotaExceeded,
    /// Something the platform depends on (the blob store) is down; the
    /// same request may succeed later.
    Unavailable,
    /// The platform failed; the detail is in the coordinator's log.
    Internal,
}

#[derive(Debug)]
pub struct AppError {
    pub kind: ErrorKind,
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            kind,
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    /// An alias of [`invalid`](Self::invalid), the HTTP name for it.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::invalid(code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Gone, code, message)
    }

    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "forbidden", message)
    }

    pub fn internal(e: impl fmt::Display) -> Self {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %e, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal",
            "internal error; see the coordinator log",
        )
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(what) => {
                AppError::conflict("conflict", format!("{what} already exists"))
            }
            crate::store::StoreError::Gone(what) => AppError::conflict(
                "gone",
                format!("{what} was deleted or is not ready any more"),
            ),
            crate::store::StoreError::LastOwner => AppError::conflict(
                "last_owner",
                "a team needs at least one owner; make someone else owner first",
            ),
            other => AppError::internal(other),
        }
    }
}

impl From<crate::blobs::BlobStoreError> for AppError {
    fn from(e: crate::blobs::BlobStoreError) -> Self {
        use crate::blobs::BlobStoreError as B;
        match e {
            B::HashMismatch { expected, actual } => AppError::invalid(
                "hash_mismatch",
                format!("uploaded bytes hash to {actual}, not {expected}"),
            ),
            B::TooLarge { .. } => {
                AppError::new(ErrorKind::TooLarge, "payload_too_large", e.to_string())
            }
            B::Body(_) => AppError::invalid("bad_body", e.to_string()),
            // The store is down or refuses us: say so, and that it is
            // worth trying again (nothing was kept).
            B::Backend(_) => AppError::new(
                ErrorKind::Unavailable,
                "blob_storage_unavailable",
                format!("blob storage is unavailable, nothing was stored; try again: {e}"),
            ),
            other => AppError::internal(other),
        }
    }
}

impl From<crate::edge_config::EdgeConfigError> for AppError {
    fn from(e: crate::edge_config::EdgeConfigError) -> Self {
        AppError::internal(e)
    }
}
