//! Pagination every list shares: a bounded limit and an opaque cursor.
//! Newest-first lists continue after a `(created_at, id)`; name-ordered
//! ones after a name.

use serde::{Deserialize, Serialize};

use super::{AppError, AppResult};

pub const MAX_PAGE: i64 = 200;

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> AppResult<i64> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            Some(_) => Err(AppError::invalid(
                "bad_limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            )),
        }
    }

    /// The `(created_at, id)` a newest-first list continues after; the
    /// cursor is one [`time_cursor`] made.
    pub fn before(&self) -> AppResult<Option<(i64, &str)>> {
        match self.cursor()? {
            None => Ok(None),
            Some(c) => c
                .split_once('.')
                .and_then(|(ts, id)| Some((ts.parse::<i64>().ok()?, id)))
                .map(Some)
                .ok_or_else(|| {
                    AppError::invalid("bad_cursor", "cursor is not one this API returned")
                }),
        }
    }

    pub fn cursor(&self) -> AppResult<Option<&str>> {
        match self.cursor.as_deref() {
            Some(c) if c.len() > 200 => Err(AppError::invalid("bad_cursor", "cursor is too long")),
            other => Ok(other.filter(|c| !c.is_empty())),
        }
    }
}

/// The next-page cursor of a newest-first list that came back full.
pub fn time_cursor<T>(items: &[T], limit: i64, key: impl Fn(&T) -> (i64, &str)) -> Option<String> {
    let last = items.last().filter(|_| items.len() as i64 == limit)?;
    let (ts, id) = key(last);
    Some(format!("{ts}.{id}"))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}
