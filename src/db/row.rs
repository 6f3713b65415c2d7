//! Typed, positional access to one row. A type mismatch is a bug in our SQL (the schema's
//! CHECK constraints fix every column's type), so it surfaces as a `DbError` (500).

use serde_json::value::RawValue;

use super::{DbError, DbErrorKind, Value};

/// One row of a result, read by column index.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    values: &'a [Value],
}

fn mismatch(index: usize, wanted: &str, found: &Value) -> DbError {
    DbError::new(
        DbErrorKind::Other,
        format!("column {index}: expected {wanted}, found {found:?}"),
    )
}

impl<'a> Row<'a> {
    pub fn new(values: &'a [Value]) -> Self {
        Row { values }
    }

    pub fn value(&self, index: usize) -> Result<&'a Value, DbError> {
        self.values
            .get(index)
            .ok_or_else(|| DbError::new(DbErrorKind::Other, format!("column {index} out of range")))
    }

    pub fn text(&self, index: usize) -> Result<String, DbError> {
        match self.value(index)? {
            Value::Text(s) => Ok(s.clone()),
            other => Err(mismatch(index, "text", other)),
        }
    }

    pub fn opt_text(&self, index: usize) -> Result<Option<String>, DbError> {
        match self.value(index)? {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            other => Err(mismatch(index, "text or null", other)),
        }
    }

    pub fn int(&self, index: usize) -> Result<i64, DbError> {
        match self.value(index)? {
            Value::Integer(n) => Ok(*n),
            other => Err(mismatch(index, "integer", other)),
        }
    }

    pub fn opt_int(&self, index: usize) -> Result<Option<i64>, DbError> {
        match self.value(index)? {
            Value::Null => Ok(None),
            Value::Integer(n) => Ok(Some(*n)),
            other => Err(mismatch(index, "integer or null", other)),
        }
    }

    /// A REAL column; SQLite hands back whole numbers stored in REAL columns as REAL, but
    /// an aggregate such as `SUM` over integers is INTEGER, so both are accepted.
    pub fn real(&self, index: usize) -> Result<f64, DbError> {
        match self.value(index)? {
            Value::Real(n) => Ok(*n),
            Value::Integer(n) => Ok(*n as f64),
            other => Err(mismatch(index, "real", other)),
        }
    }

    /// A JSON-valued TEXT column, returned without re-parsing into a tree: the text was
    /// validated on the way in (and by the schema's `json_valid` CHECK).
    pub fn json(&self, index: usize) -> Result<Box<RawValue>, DbError> {
        let text = self.text(index)?;
        RawValue::from_string(text).map_err(|e| {
            DbError::new(
                DbErrorKind::Other,
                format!("column {index}: invalid JSON: {e}"),
            )
        })
    }

    /// A nullable JSON column; SQL NULL reads as JSON `null`.
    pub fn opt_json(&self, index: usize) -> Result<Box<RawValue>, DbError> {
        match self.value(index)? {
            Value::Null => Ok(RawValue::from_string("null".to_owned()).expect("valid JSON")),
            _ => self.json(index),
        }
    }
}
