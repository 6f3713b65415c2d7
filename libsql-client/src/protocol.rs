//! The Hrana 3 JSON shapes: only what this client sends and reads, and the mapping of
//! values to and from their wire form.

use serde::{Deserialize, Serialize};

use crate::{base64, Error};

/// `POST /v3/pipeline`'s body: requests on the stream `baton` (a new one when `None`).
#[derive(Serialize)]
pub struct PipelineRequest<'a> {
    pub baton: Option<&'a str>,
    pub requests: Vec<StreamRequest<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamRequest<'a> {
    Execute { stmt: Stmt<'a> },
    GetAutocommit,
    Close,
}

#[derive(Serialize)]
pub struct Stmt<'a> {
    pub sql: &'a str,
    pub args: Vec<Value>,
    pub want_rows: bool,
}

/// A Hrana value. Integers travel as strings (JSON numbers lose precision past 2^53),
/// blobs as base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Value {
    Null,
    Integer { value: String },
    Float { value: f64 },
    Text { value: String },
    Blob { base64: String },
}

#[derive(Debug, Deserialize)]
pub struct PipelineResponse {
    pub baton: Option<String>,
    pub base_url: Option<String>,
    pub results: Vec<StreamResult>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum StreamResult {
    Ok { response: StreamResponse },
    Error { error: HranaError },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamResponse {
    Execute { result: StmtResult },
    GetAutocommit { is_autocommit: bool },
    Close {},
}

#[derive(Debug, Deserialize)]
pub struct StmtResult {
    pub cols: Vec<Col>,
    pub rows: Vec<Vec<Value>>,
    #[serde(default)]
    pub affected_row_count: u64,
    #[serde(default)]
    pub last_insert_rowid: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Col {
    pub name: Option<String>,
}

/// The server's error, for a statement or for a whole request.
#[derive(Debug, Deserialize)]
pub struct HranaError {
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

impl From<&crate::Value> for Value {
    fn from(v: &crate::Value) -> Value {
        match v {
            crate::Value::Null => Value::Null,
            crate::Value::Integer(i) => Value::Integer {
                value: i.to_string(),
            },
            crate::Value::Real(f) => Value::Float { value: *f },
            crate::Value::Text(s) => Value::Text { value: s.clone() },
            crate::Value::Blob(b) => Value::Blob {
                base64: base64::encode(b),
            },
        }
    }
}

impl TryFrom<Value> for crate::Value {
    type Error = Error;

    fn try_from(v: Value) -> Result<crate::Value, Error> {
        Ok(match v {
            Value::Null => crate::Value::Null,
            Value::Integer { value } => crate::Value::Integer(value.parse().map_err(|_| {
                Error::Server(format!("libSQL server sent a bad integer {value:?}"))
            })?),
            Value::Float { value } => crate::Value::Real(value),
            Value::Text { value } => crate::Value::Text(value),
            Value::Blob { base64 } => crate::Value::Blob(
                base64::decode(&base64)
                    .ok_or_else(|| Error::Server("libSQL server sent a bad base64 blob".into()))?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_map_both_ways() {
        let values = [
            crate::Value::Null,
            crate::Value::Integer(i64::MIN),
            crate::Value::Integer(9_007_199_254_740_993),
            crate::Value::Real(1.5),
            crate::Value::Text("héllo".into()),
            crate::Value::Blob(vec![0, 1, 254, 255]),
        ];
        for v in values {
            let json = serde_json::to_string(&Value::from(&v)).unwrap();
            let back: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(crate::Value::try_from(back).unwrap(), v, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Value::from(&crate::Value::Integer(7))).unwrap(),
            r#"{"type":"integer","value":"7"}"#
        );
        assert!(crate::Value::try_from(Value::Integer { value: "x".into() }).is_err());
    }

    #[test]
    fn the_response_shapes_of_the_spec_parse() {
        let body = r#"{"baton":"b1","base_url":null,"results":[
            {"type":"ok","response":{"type":"execute","result":{"cols":[{"name":"x","decltype":"INTEGER"}],
             "rows":[[{"type":"integer","value":"1"}]],"affected_row_count":0,"last_insert_rowid":null,
             "replication_index":"3","rows_read":1,"rows_written":0,"query_duration_ms":0.1}}},
            {"type":"ok","response":{"type":"get_autocommit","is_autocommit":true}},
            {"type":"error","error":{"message":"no such table: t","code":"SQLITE_ERROR"}},
            {"type":"ok","response":{"type":"close"}}]}"#;
        let r: PipelineResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.baton.as_deref(), Some("b1"));
        assert_eq!(r.results.len(), 4);
        assert!(matches!(
            r.results[1],
            StreamResult::Ok {
                response: StreamResponse::GetAutocommit {
                    is_autocommit: true
                }
            }
        ));
        let sent = serde_json::to_value(PipelineRequest {
            baton: None,
            requests: vec![
                StreamRequest::Execute {
                    stmt: Stmt {
                        sql: "SELECT ?",
                        args: vec![Value::Null],
                        want_rows: true,
                    },
                },
                StreamRequest::GetAutocommit,
                StreamRequest::Close,
            ],
        })
        .unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"baton": null, "requests": [
                {"type": "execute", "stmt": {"sql": "SELECT ?", "args": [{"type": "null"}], "want_rows": true}},
                {"type": "get_autocommit"},
                {"type": "close"}]})
        );
    }
}
