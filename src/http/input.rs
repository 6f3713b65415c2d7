//! Request bodies: a JSON object whose fields are read one rule at a time. Every rule
//! failure is a 422 naming the field; JSON that is malformed or not an object is a 400.

use serde_json::{Map, Value as Json};

use crate::domain::Id;
use crate::error::ApiError;

/// A field as sent: absent, explicitly `null`, or a value. `null` clears an optional field.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Absent,
    Null,
    Value(T),
}

impl<T> Field<T> {
    /// A required field: absent or `null` is a 422.
    pub fn required(self, name: &str) -> Result<T, ApiError> {
        match self {
            Field::Value(v) => Ok(v),
            Field::Absent => Err(ApiError::validation(name, format!("{name} is required"))),
            Field::Null => Err(ApiError::validation(
                name,
                format!("{name} must not be null"),
            )),
        }
    }

    /// A field that may be omitted but not set to `null` (e.g. a required column in an
    /// update): `None` when absent.
    pub fn not_null(self, name: &str) -> Result<Option<T>, ApiError> {
        match self {
            Field::Value(v) => Ok(Some(v)),
            Field::Absent => Ok(None),
            Field::Null => Err(ApiError::validation(
                name,
                format!("{name} must not be null"),
            )),
        }
    }

    /// For an insert: absent and `null` both mean "no value".
    pub fn optional(self) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    /// For an update of a nullable column: absent leaves it (`None`), `null` clears it
    /// (`Some(None)`), a value sets it.
    pub fn for_update(self) -> Option<Option<T>> {
        match self {
            Field::Absent => None,
            Field::Null => Some(None),
            Field::Value(v) => Some(Some(v)),
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }
}

/// A request body that is a JSON object.
#[derive(Debug, Clone)]
pub struct JsonObject {
    fields: Map<String, Json>,
}

fn wrong_type(name: &str, wanted: &str) -> ApiError {
    ApiError::validation(name, format!("{name} must be {wanted}"))
}

impl JsonObject {
    /// Parse a body: malformed JSON or anything but an object is a 400.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "request body is empty; send a JSON object",
            ));
        }
        match serde_json::from_slice::<Json>(body) {
            Ok(Json::Object(fields)) => Ok(JsonObject { fields }),
            Ok(_) => Err(ApiError::bad_request("request body must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
        }
    }

    /// Reject any field not in `allowed` (a typo must not be silently ignored). Fields are
    /// checked in sorted order so the answer is the same for the same body.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            None => Ok(()),
            Some(unknown) => Err(ApiError::validation(
                unknown,
                format!(
                    "{unknown:?} is not an accepted field here; accepted: {}",
                    allowed.join(", ")
                ),
            )),
        }
    }

    /// The fields as they came, for payloads mapped rather than validated (ingest).
    pub fn fields(&self) -> &Map<String, Json> {
        &self.fields
    }

    pub fn contains(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn field(&self, name: &str) -> Field<&Json> {
        match self.fields.get(name) {
            None => Field::Absent,
            Some(Json::Null) => Field::Null,
            Some(v) => Field::Value(v),
        }
    }

    /// A string field; `max_chars` bounds its length.
    pub fn string(&self, name: &str, max_chars: usize) -> Result<Field<String>, ApiError> {
        self.map(name, |v| match v {
            Json::String(s) if s.chars().count() <= max_chars => Ok(s.clone()),
            Json::String(_) => Err(ApiError::validation(
                name,
                format!("{name} must be at most {max_chars} characters"),
            )),
            _ => Err(wrong_type(name, "a string")),
        })
    }

    /// A string field that must not be empty or blank.
    pub fn non_empty_string(
        &self,
        name: &str,
        max_chars: usize,
    ) -> Result<Field<String>, ApiError> {
        match self.string(name, max_chars)? {
            Field::Value(s) if s.trim().is_empty() => Err(ApiError::validation(
                name,
                format!("{name} must not be empty"),
            )),
            other => Ok(other),
        }
    }

    /// A value from a closed set, e.g. `agent_type`.
    pub fn one_of<T>(
        &self,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: impl Fn() -> String,
    ) -> Result<Field<T>, ApiError> {
        self.map(name, |v| {
            v.as_str().and_then(&parse).ok_or_else(|| {
                ApiError::validation(name, format!("{name} must be one of {}", allowed()))
            })
        })
    }

    /// A UUID referencing another row.
    pub fn id(&self, name: &str) -> Result<Field<Id>, ApiError> {
        self.map(name, |v| {
            v.as_str()
                .and_then(Id::parse)
                .ok_or_else(|| wrong_type(name, "a UUID string"))
        })
    }

    /// A JSON object, returned as its compact text (how it is stored).
    pub fn object(&self, name: &str) -> Result<Field<String>, ApiError> {
        self.map(name, |v| match v {
            Json::Object(_) => Ok(v.to_string()),
            _ => Err(wrong_type(name, "a JSON object")),
        })
    }

    /// Any JSON value, returned as its compact text.
    pub fn any_json(&self, name: &str) -> Result<Field<String>, ApiError> {
        self.map(name, |v| Ok(v.to_string()))
    }

    /// An array of strings, returned as its compact JSON text.
    pub fn string_array(&self, name: &str) -> Result<Field<String>, ApiError> {
        self.map(name, |v| match v {
            Json::Array(items) if items.iter().all(Json::is_string) => Ok(v.to_string()),
            _ => Err(wrong_type(name, "an array of strings")),
        })
    }

    /// A whole number ≥ 0.
    pub fn non_negative_int(&self, name: &str) -> Result<Field<i64>, ApiError> {
        self.map(name, |v| {
            v.as_i64()
                .filter(|n| *n >= 0)
                .ok_or_else(|| wrong_type(name, "a whole number ≥ 0"))
        })
    }

    /// A finite number ≥ 0.
    pub fn non_negative_number(&self, name: &str) -> Result<Field<f64>, ApiError> {
        self.map(name, |v| {
            v.as_f64()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| wrong_type(name, "a number ≥ 0"))
        })
    }

    /// A field checked by `convert` (which gives the 422 naming what is wrong).
    pub fn parsed<T>(
        &self,
        name: &str,
        convert: impl FnOnce(&Json) -> Result<T, ApiError>,
    ) -> Result<Field<T>, ApiError> {
        self.map(name, convert)
    }

    fn map<T>(
        &self,
        name: &str,
        convert: impl FnOnce(&Json) -> Result<T, ApiError>,
    ) -> Result<Field<T>, ApiError> {
        Ok(match self.field(name) {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Value(v) => Field::Value(convert(v)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AgentType;

    fn obj(s: &str) -> JsonObject {
        JsonObject::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn malformed_json_and_non_objects_are_400() {
        for body in ["{", "[1]", "\"x\"", "", "null"] {
            assert_eq!(
                JsonObject::parse(body.as_bytes()).unwrap_err().status(),
                400
            );
        }
    }

    #[test]
    fn an_unknown_field_is_a_422_naming_it() {
        let err = obj(r#"{"name":"a","nmae":"b"}"#)
            .only(&["name"])
            .unwrap_err();
        assert_eq!(err.status(), 422);
        assert_eq!(err.details.unwrap()["field"], "nmae");
    }

    #[test]
    fn absent_null_and_value_are_told_apart() {
        let o = obj(r#"{"a":null,"b":"x"}"#);
        assert_eq!(o.string("a", 10).unwrap(), Field::Null);
        assert_eq!(o.string("b", 10).unwrap(), Field::Value("x".into()));
        assert_eq!(o.string("c", 10).unwrap(), Field::Absent);
        assert_eq!(
            o.string("a", 10)
                .unwrap()
                .required("a")
                .unwrap_err()
                .status(),
            422
        );
    }

    #[test]
    fn wrong_types_and_ranges_are_422() {
        let o = obj(r#"{"t":"wizard","n":-1,"c":1.5,"caps":["a",1]}"#);
        assert!(o.one_of("t", AgentType::parse, AgentType::list).is_err());
        assert!(o.non_negative_int("n").is_err());
        assert!(o.non_negative_int("c").is_err());
        assert_eq!(o.non_negative_number("c").unwrap(), Field::Value(1.5));
        assert!(o.string_array("caps").is_err());
    }
}
