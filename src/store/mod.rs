//! SQL, one module per table. Functions take a [`Database`](crate::db::Database) and
//! validated domain values; they never see HTTP.

pub mod approvals;
pub mod definitions;
pub mod dispatches;
pub mod events;
pub mod ingest_keys;
pub mod logs;
pub mod policies;
pub mod prompts;
pub mod retention;
pub mod runs;
pub mod sessions;
pub mod stats;
pub mod unreadable;

use std::fmt::Display;

use crate::db::{Database, DbError, Row, Rows, Value};
use crate::domain::time::normalize_stored;
use crate::domain::{ApprovalId, DefinitionId, Id, PromptId, RunId};
use crate::error::ApiError;

// Ids are bound as their canonical text. (Here, not in `domain`: the domain knows nothing
// of the database.)
impl From<Id> for Value {
    fn from(id: Id) -> Self {
        Value::Text(id.into_string())
    }
}

impl From<&Id> for Value {
    fn from(id: &Id) -> Self {
        Value::Text(id.as_str().to_owned())
    }
}

macro_rules! bind_typed_id {
    ($($name:ident),+) => {$(
        impl From<&$name> for Value {
            fn from(id: &$name) -> Self {
                Value::Text(id.as_str().to_owned())
            }
        }
    )+};
}

bind_typed_id!(RunId, DefinitionId, PromptId, ApprovalId);

/// Time columns in the API's shape, read from a row (here, not in `db`: the seam knows
/// nothing of the domain's time format).
pub(crate) trait TimeColumns {
    /// A time column in the API's shape (RFC 3339 UTC, milliseconds). Other forms SQLite
    /// reads as times (`datetime('now')`'s `YYYY-MM-DD HH:MM:SS`, offsets, no zone) are
    /// converted; text that is no time at all is returned as written rather than lose the
    /// row (the README's section for direct writers says so).
    fn time(&mut self, index: usize) -> Result<String, DbError>;
    /// A nullable time column (see [`TimeColumns::time`]).
    fn opt_time(&mut self, index: usize) -> Result<Option<String>, DbError>;
}

impl TimeColumns for Row<'_> {
    fn time(&mut self, index: usize) -> Result<String, DbError> {
        Ok(normalize_stored(self.text(index)?))
    }

    fn opt_time(&mut self, index: usize) -> Result<Option<String>, DbError> {
        Ok(self.opt_text(index)?.map(normalize_stored))
    }
}

/// One round trip to the database: whether it answers at all (`/health`).
pub fn ping<D: Database>(db: &D) -> Result<(), DbError> {
    db.execute("SELECT 1", &[])?;
    Ok(())
}

/// Whether a row with this id exists in `table` (a fixed, trusted table name).
pub(crate) fn exists<D: Database>(db: &D, table: &str, id: &str) -> Result<bool, DbError> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = ?1");
    Ok(!db.execute(&sql, &[Value::from(id)])?.is_empty())
}

/// Rows per multi-row INSERT: far below SQLite's 32,766 parameters for every table here.
pub(crate) const ROWS_PER_STATEMENT: usize = 200;

/// `(?, ?), (?, ?), …`: `count` rows of `width` parameters.
pub(crate) fn placeholder_rows(count: usize, width: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; count].join(", ")
}

/// `?N` placeholders for `values`, appended to `params`; returns the placeholder text.
pub(crate) fn bind(params: &mut Vec<Value>, value: impl Into<Value>) -> String {
    params.push(value.into());
    format!("?{}", params.len())
}

/// The row an `INSERT`/`UPDATE … RETURNING` produced for a row known to exist.
pub(crate) fn returned<T>(
    mut rows: crate::db::Rows,
    decode: impl Fn(crate::db::Row<'_>) -> Result<T, DbError>,
) -> Result<T, crate::error::ApiError> {
    let row = rows
        .first()
        .ok_or_else(|| crate::error::ApiError::internal("a RETURNING statement returned no row"))?;
    Ok(decode(row)?)
}

/// An `UPDATE … SET … WHERE id = ?1 RETURNING …` built column by column: only the columns
/// a request changes are written.
pub(crate) struct Update {
    params: Vec<Value>,
    sets: Vec<String>,
}

impl Update {
    /// An update of the row with this id (bound as `?1`).
    pub fn of(id: impl Into<Value>) -> Self {
        Update {
            params: vec![id.into()],
            sets: Vec::new(),
        }
    }

    /// Set `column` to `value`.
    pub fn set(&mut self, column: &str, value: impl Into<Value>) {
        let placeholder = bind(&mut self.params, value);
        self.sets.push(format!("{column} = {placeholder}"));
    }

    /// Set `column` when the request carries a value for it (`Some(None)` sets NULL).
    pub fn set_if<T: Into<Value>>(&mut self, column: &str, value: Option<T>) {
        if let Some(value) = value {
            self.set(column, value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// The parameters bound so far, for binding more in the `RETURNING` columns.
    pub fn params(&mut self) -> &mut Vec<Value> {
        &mut self.params
    }

    /// Run it against `table`, returning `columns` of the updated row (none if the id is
    /// unknown).
    pub fn execute<D: Database>(self, db: &D, table: &str, columns: &str) -> Result<Rows, DbError> {
        let sql = format!(
            "UPDATE {table} SET {} WHERE id = ?1 RETURNING {columns}",
            self.sets.join(", ")
        );
        db.execute(&sql, &self.params)
    }
}

/// The status a PATCH really moves to: `None` when none was asked for or it is the current
/// one (a no-op); a 409 when `allowed` forbids the move.
pub(crate) fn status_change<S: Copy + PartialEq + Display>(
    what: &str,
    from: S,
    requested: Option<S>,
    allowed: impl Fn(S, S) -> bool,
) -> Result<Option<S>, ApiError> {
    match requested.filter(|next| *next != from) {
        Some(next) if !allowed(from, next) => Err(ApiError::conflict(format!(
            "{what} is {from}; it cannot move to {next}"
        ))),
        other => Ok(other),
    }
}
