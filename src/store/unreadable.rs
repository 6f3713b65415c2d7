//! Rows the schema admits but the API cannot represent (a REAL column holding `'abc'`, an
//! infinite cost, a fractional token count: each passes its `CHECK (x >= 0)`). Other
//! programs write the file, so such a row is data, not a bug: it costs that row only —
//! skipped from the answer and reported once as a system log naming its table and id —
//! never the endpoint.

use crate::db::{Database, Row, Rows, Value};
use crate::domain::time::now_rfc3339;

/// The `component` of the system logs that report unreadable rows.
pub const COMPONENT: &str = "api";

/// Decode every row of `table`, skipping (and reporting) the ones `decode` refuses.
/// `id_column` is the index of the row's id, read before decoding so the report names it.
pub(crate) fn collect<D: Database, T>(
    db: &D,
    table: &str,
    id_column: usize,
    rows: Rows,
    decode: impl Fn(Row<'_>) -> Result<T, crate::db::DbError>,
) -> Vec<T> {
    collect_located(
        db,
        rows,
        |row| (table.to_owned(), id_of(row, id_column)),
        decode,
    )
}

/// [`collect`] for a result that mixes tables: `locate` names a row's table and id.
pub(crate) fn collect_located<D: Database, T>(
    db: &D,
    mut rows: Rows,
    locate: impl Fn(&Row<'_>) -> (String, String),
    decode: impl Fn(Row<'_>) -> Result<T, crate::db::DbError>,
) -> Vec<T> {
    let mut decoded = Vec::with_capacity(rows.rows.len());
    let mut refused = Vec::new();
    for row in rows.iter() {
        let (table, id) = locate(&row);
        match decode(row) {
            Ok(value) => decoded.push(value),
            Err(err) => refused.push((table, id, err.message)),
        }
    }
    for (table, id, reason) in refused {
        report(db, &table, &id, &reason);
    }
    decoded
}

/// Column `index` of a row as text, whatever its storage class (for naming a row).
pub(crate) fn id_of(row: &Row<'_>, index: usize) -> String {
    row.value(index).map(describe).unwrap_or_default()
}

/// An id as text, whatever its storage class.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(n) => n.to_string(),
        Value::Real(n) => n.to_string(),
        Value::Text(s) => s.clone(),
        Value::Blob(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Write one `WARNING` system log for an unreadable row, unless the same one is already
/// there. Best effort: a failure to report (a busy database, a read-only replica) must
/// not fail the read that found the row. The check is a read first, so a row that is
/// already reported costs no write lock on later reads.
pub(crate) fn report<D: Database>(db: &D, table: &str, id: &str, reason: &str) {
    let message = format!("unreadable row in {table}, id {id}, skipped: {reason}");
    let known = db.execute(
        "SELECT 1 FROM system_logs WHERE component = ?1 AND message = ?2 LIMIT 1",
        &[COMPONENT.into(), message.as_str().into()],
    );
    if !matches!(known, Ok(rows) if rows.is_empty()) {
        return;
    }
    let details = serde_json::json!({ "table": table, "id": id, "reason": reason }).to_string();
    let _ = db.execute(
        "INSERT INTO system_logs (component, log_level, message, details, created_at) \
         VALUES (?1, 'WARNING', ?2, ?3, ?4)",
        &[
            COMPONENT.into(),
            message.into(),
            details.into(),
            now_rfc3339().into(),
        ],
    );
}
