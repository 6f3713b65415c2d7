//! Typed, positional access to one row.
//!
//! Readers accept every value the schema admits, not only what the API writes: other
//! programs write the file too, and SQLite's type affinity lets a TEXT column hold a BLOB
//! (`json_valid` even admits a BLOB of JSON text). Text columns read a BLOB as UTF-8 (lossy),
//! times in any form SQLite understands come back in the API's RFC 3339 shape. What still
//! cannot be read (a REAL column holding `'abc'`, which `CHECK (cost_usd >= 0)` admits since
//! text sorts after numbers) is a `DbError` for that row; the stores skip and report it
//! (see `store::unreadable`).
//!
//! Reading a text or JSON column moves its string out of the row instead of copying it
//! (a list of 100 rows is ~800 strings; copying each doubled the allocations of a list
//! response). The column reads as NULL afterwards, so reading it twice is caught as a
//! type mismatch rather than silently giving an empty string.

use serde_json::value::RawValue;

use super::{DbError, DbErrorKind, Value};

/// One row of a result, read by column index.
#[derive(Debug)]
pub struct Row<'a> {
    values: &'a mut [Value],
}

fn mismatch(index: usize, wanted: &str, found: &Value) -> DbError {
    DbError::new(
        DbErrorKind::Other,
        format!("column {index}: expected {wanted}, found {found:?}"),
    )
}

impl<'a> Row<'a> {
    pub fn new(values: &'a mut [Value]) -> Self {
        Row { values }
    }

    pub fn value(&self, index: usize) -> Result<&Value, DbError> {
        self.values
            .get(index)
            .ok_or_else(|| DbError::new(DbErrorKind::Other, format!("column {index} out of range")))
    }

    /// Move a TEXT column's string out (leaving NULL). A BLOB, which a TEXT column admits,
    /// reads as its UTF-8 text (invalid bytes as U+FFFD).
    fn take_text(&mut self, index: usize) -> Option<String> {
        let slot = self.values.get_mut(index)?;
        match std::mem::replace(slot, Value::Null) {
            Value::Text(s) => Some(s),
            Value::Blob(b) => Some(match String::from_utf8(b) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
            other => {
                *slot = other;
                None
            }
        }
    }

    pub fn text(&mut self, index: usize) -> Result<String, DbError> {
        match self.take_text(index) {
            Some(s) => Ok(s),
            None => Err(mismatch(index, "text", self.value(index)?)),
        }
    }

    pub fn opt_text(&mut self, index: usize) -> Result<Option<String>, DbError> {
        match self.value(index)? {
            Value::Null => Ok(None),
            _ => self.text(index).map(Some).map_err(|_| {
                // (Only reached for a non-text value, which `value` still holds.)
                mismatch(index, "text or null", &self.values[index])
            }),
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
    /// an aggregate such as `SUM` over integers is INTEGER, so both are accepted. An
    /// infinity (`1e999` passes `CHECK (x >= 0)`) has no JSON form, so it is a mismatch.
    pub fn real(&self, index: usize) -> Result<f64, DbError> {
        match self.value(index)? {
            Value::Real(n) if n.is_finite() => Ok(*n),
            Value::Integer(n) => Ok(*n as f64),
            other => Err(mismatch(index, "real", other)),
        }
    }

    /// A TEXT column read as a value of a closed set (`parse` gives `None` for text
    /// outside it): a status the schema's CHECK keeps valid.
    pub fn parsed<T>(
        &mut self,
        index: usize,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, DbError> {
        let text = self.text(index)?;
        parse(&text).ok_or_else(|| {
            DbError::new(
                DbErrorKind::Other,
                format!("column {index}: unexpected value {text:?}"),
            )
        })
    }

    /// A JSON-valued TEXT column, returned without re-parsing into a tree: the text was
    /// validated on the way in (and by the schema's `json_valid` CHECK).
    pub fn json(&mut self, index: usize) -> Result<Box<RawValue>, DbError> {
        let text = self.text(index)?;
        RawValue::from_string(text).map_err(|e| {
            DbError::new(
                DbErrorKind::Other,
                format!("column {index}: invalid JSON: {e}"),
            )
        })
    }

    /// A nullable JSON column; SQL NULL reads as JSON `null`.
    pub fn opt_json(&mut self, index: usize) -> Result<Box<RawValue>, DbError> {
        match self.value(index)? {
            Value::Null => Ok(RawValue::from_string("null".to_owned()).expect("valid JSON")),
            _ => self.json(index),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_move_out_and_a_second_read_is_an_error() {
        let mut values = vec![Value::Text("a".into()), Value::Null, Value::Integer(3)];
        let mut row = Row::new(&mut values);
        assert_eq!(row.text(0).unwrap(), "a");
        assert!(row.text(0).is_err(), "a column is read once");
        assert_eq!(row.opt_text(1).unwrap(), None);
        let err = row.opt_text(2).unwrap_err();
        assert!(err.message.contains("text or null"), "{}", err.message);
        assert_eq!(row.int(2).unwrap(), 3, "a failed read leaves the value");
        assert!(row.text(7).unwrap_err().message.contains("out of range"));
    }
}
