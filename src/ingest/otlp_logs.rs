//! OTLP/HTTP logs in their JSON encoding (`POST /v1/logs`, `application/json`): Claude
//! Code's events (`CLAUDE_CODE_ENABLE_TELEMETRY=1`, `OTEL_LOGS_EXPORTER=otlp`).
//!
//! - `claude_code.api_request` → one completed prompt of the session's run (joined by
//!   `session.id` with the hooks' run, key `run:cc:<session.id>`; created when the hooks
//!   have not been seen): tokens in = input + cache read + cache creation, tokens out,
//!   `cost_usd`, `model_used` from `model`, `latency_ms` from `duration_ms`. It lands even
//!   when the run is final (exporters flush at exit); its cost rolls up into the run.
//! - `claude_code.tool_result` → a `tool_call` log; `claude_code.api_error` → an `error` log.
//! - Other records are accepted and ignored. A record without `session.id` cannot be
//!   placed: rejected and counted in `partialSuccess`. A record seen before (same content)
//!   is not applied twice.
//!
//! OTLP/JSON: camelCase field names, 64-bit integers as strings or numbers; attribute
//! values are `AnyValue`s (`stringValue`, `intValue`, `doubleValue`, `boolValue`).

use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::sink::{self, Call, RunSpec};
use crate::db::Database;
use crate::domain::{AgentType, LogLevel, LogType};
use crate::error::ApiError;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Export {
    resource_logs: Vec<ResourceLogs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ResourceLogs {
    resource: Resource,
    scope_logs: Vec<ScopeLogs>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ScopeLogs {
    log_records: Vec<Json>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KeyValue {
    key: String,
    value: Json,
}

/// What a batch did: records rejected, and why (OTLP's `partial_success`).
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub rejected: u64,
    pub error_message: String,
}

impl Outcome {
    /// `ExportLogsServiceResponse` in OTLP/JSON.
    pub fn to_json(&self) -> Json {
        if self.rejected == 0 {
            json!({"partialSuccess": {}})
        } else {
            json!({"partialSuccess": {
                "rejectedLogRecords": self.rejected.to_string(),
                "errorMessage": self.error_message,
            }})
        }
    }
}

/// Decode an OTLP/JSON logs export; anything but its shape is a 400.
pub fn decode(body: &Json) -> Result<Vec<Record>, ApiError> {
    let export: Export = serde_json::from_value(body.clone())
        .map_err(|e| ApiError::bad_request(format!("not an OTLP ExportLogsServiceRequest: {e}")))?;
    let mut records = Vec::new();
    for resource in export.resource_logs {
        for scope in resource.scope_logs {
            for raw in scope.log_records {
                let mut attributes = serde_json::Map::new();
                for kv in &resource.resource.attributes {
                    attributes.insert(kv.key.clone(), any_value(&kv.value));
                }
                if let Some(list) = raw.get("attributes").and_then(Json::as_array) {
                    for kv in list {
                        if let Some(key) = kv.get("key").and_then(Json::as_str) {
                            let value = kv.get("value").map(any_value).unwrap_or(Json::Null);
                            attributes.insert(key.to_owned(), value);
                        }
                    }
                }
                let body = raw.get("body").map(any_value).unwrap_or(Json::Null);
                records.push(Record {
                    digest: sink::digest(&raw),
                    body,
                    attributes,
                });
            }
        }
    }
    Ok(records)
}

/// One log record: its body and its attributes (the resource's, then its own, winning).
pub struct Record {
    digest: String,
    body: Json,
    attributes: serde_json::Map<String, Json>,
}

impl Record {
    fn text(&self, key: &str) -> Option<String> {
        match self.attributes.get(key)? {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A number that may arrive as a string (Claude Code sends some so).
    fn number(&self, key: &str) -> Option<f64> {
        match self.attributes.get(key)? {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|n: &f64| n.is_finite())
    }

    fn int(&self, key: &str) -> i64 {
        self.number(key).map_or(0, |n| n.max(0.0) as i64)
    }

    /// The event's name, without Claude Code's `claude_code.` prefix.
    fn event(&self) -> Option<String> {
        let name = self
            .text("event.name")
            .or_else(|| self.body.as_str().map(str::to_owned))?;
        Some(
            name.strip_prefix("claude_code.")
                .unwrap_or(&name)
                .to_owned(),
        )
    }
}

/// An OTLP `AnyValue` as plain JSON (`intValue` may be a string: it is an int64).
fn any_value(value: &Json) -> Json {
    let Some(object) = value.as_object() else {
        return Json::Null;
    };
    if let Some(s) = object.get("stringValue") {
        return s.clone();
    }
    if let Some(b) = object.get("boolValue") {
        return b.clone();
    }
    if let Some(i) = object.get("intValue") {
        return match i {
            Json::String(s) => s.parse::<i64>().map_or(i.clone(), Json::from),
            other => other.clone(),
        };
    }
    if let Some(d) = object.get("doubleValue") {
        return d.clone();
    }
    if let Some(values) = object.get("arrayValue").and_then(|a| a.get("values")) {
        return Json::Array(
            values
                .as_array()
                .into_iter()
                .flatten()
                .map(any_value)
                .collect(),
        );
    }
    Json::Null
}

/// Apply the records inside the caller's write transaction.
pub fn apply<D: Database>(db: &D, records: &[Record]) -> Result<Outcome, ApiError> {
    let mut outcome = Outcome::default();
    for record in records {
        let Some(event) = record.event() else {
            continue;
        };
        if !matches!(event.as_str(), "api_request" | "tool_result" | "api_error") {
            continue;
        }
        let Some(session) = record.text("session.id") else {
            outcome.rejected += 1;
            outcome.error_message = format!("a claude_code.{event} record has no session.id");
            continue;
        };
        let session = sink::truncate(&session, sink::MAX_SESSION_ID);
        let definition = sink::definition(db, "claude-code", AgentType::Builder)?;
        let key = format!("run:cc:{session}");
        let run = sink::ensure_run(
            db,
            RunSpec {
                key: &key,
                definition_id: &definition,
                session_id: &session,
                parent_agent_id: None,
                context: json!({"claude_code": {"session_id": session}}),
            },
        )?;
        if !sink::claim(db, &format!("hash:otlp-log:{}", record.digest), &run.id)? {
            continue;
        }
        match event.as_str() {
            "api_request" => {
                let call = Call {
                    prompt_name: Some("claude_code.api_request".into()),
                    prompt_text: String::new(),
                    model_used: record.text("model"),
                    tokens_input: record.int("input_tokens")
                        + record.int("cache_read_tokens")
                        + record.int("cache_creation_tokens"),
                    tokens_output: record.int("output_tokens"),
                    cost_usd: record.number("cost_usd").unwrap_or(0.0).max(0.0),
                    latency_ms: record.number("duration_ms").map(|d| d.max(0.0) as i64),
                    ..Call::default()
                };
                sink::finished_prompt(db, &run.id, &call)?;
            }
            "tool_result" => {
                let tool = record
                    .text("tool_name")
                    .unwrap_or_else(|| "(unnamed tool)".into());
                let failed = record.text("success").as_deref() == Some("false");
                sink::log(
                    db,
                    &run.id,
                    if failed {
                        LogLevel::Error
                    } else {
                        LogLevel::Info
                    },
                    LogType::ToolCall,
                    &tool,
                    &json!({"source": "otlp", "event": "claude_code.tool_result",
                            "attributes": record.attributes}),
                )?;
            }
            _ => {
                let message = record.text("error").unwrap_or_else(|| "API error".into());
                sink::log(
                    db,
                    &run.id,
                    LogLevel::Error,
                    LogType::Error,
                    &message,
                    &json!({"source": "otlp", "event": "claude_code.api_error",
                            "attributes": record.attributes}),
                )?;
            }
        }
    }
    Ok(outcome)
}
