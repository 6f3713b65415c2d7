//! SQL, one module per table. Functions take a [`Database`](crate::db::Database) and
//! validated domain values; they never see HTTP.

pub mod definitions;
pub mod events;
pub mod logs;
pub mod prompts;
pub mod runs;
pub mod stats;

use crate::db::{Database, DbError, Value};

/// Whether a row with this id exists in `table` (a fixed, trusted table name).
pub(crate) fn exists<D: Database>(db: &D, table: &str, id: &str) -> Result<bool, DbError> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = ?1");
    Ok(!db.execute(&sql, &[Value::from(id)])?.is_empty())
}

/// `?N` placeholders for `values`, appended to `params`; returns the placeholder text.
pub(crate) fn bind(params: &mut Vec<Value>, value: impl Into<Value>) -> String {
    params.push(value.into());
    format!("?{}", params.len())
}

/// The row an `INSERT`/`UPDATE … RETURNING` produced for a row known to exist.
pub(crate) fn returned<T>(
    rows: &crate::db::Rows,
    decode: impl Fn(crate::db::Row<'_>) -> Result<T, DbError>,
) -> Result<T, crate::error::ApiError> {
    let row = rows
        .first()
        .ok_or_else(|| crate::error::ApiError::internal("a RETURNING statement returned no row"))?;
    Ok(decode(row)?)
}
