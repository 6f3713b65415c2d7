//! OTLP/HTTP logs (`POST /v1/logs`, protobuf or JSON; see [`super::otlp`]): Claude
//! Code's events (`CLAUDE_CODE_ENABLE_TELEMETRY=1`, `OTEL_LOGS_EXPORTER=otlp`).
//!
//! - `claude_code.api_request` → one completed prompt of the session's run (joined by
//!   `session.id` with the hooks' run, key `run:cc:<session.id>`; created when the hooks
//!   have not been seen): tokens in = input + cache read + cache creation, tokens out,
//!   `cost_usd`, `model_used` from `model`, `latency_ms` from `duration_ms`. It lands even
//!   when the run is final (exporters flush at exit); its cost rolls up into the run.
//! - `claude_code.tool_result` → a `tool_call` log; `claude_code.api_error` → an `error` log.
//! - Other records are accepted and ignored. A record without `session.id` cannot be
//!   placed: rejected and counted in `partial_success`. A record seen before (same
//!   content, whichever encoding brought it) is not applied twice.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use serde_json::{json, Value as Json};

use super::otlp::{self, Attrs, Outcome};
use super::sink::{self, Call, RunSpec};
use crate::db::Database;
use crate::domain::{AgentType, LogLevel, LogType};
use crate::error::ApiError;

/// One log record: its body and its attributes (the resource's, then its own, winning).
pub struct Record {
    digest: String,
    event_name: String,
    body: Json,
    attributes: serde_json::Map<String, Json>,
}

/// The records of an export, flattened.
pub fn records(export: &ExportLogsServiceRequest) -> Vec<Record> {
    let mut records = Vec::new();
    for resource in &export.resource_logs {
        let resource_attributes = resource
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        for scope in &resource.scope_logs {
            for record in &scope.log_records {
                records.push(Record {
                    // The protobuf encoding of the record: the same record sent as JSON or
                    // as protobuf has the same key.
                    digest: sink::digest_bytes(&record.encode_to_vec()),
                    event_name: record.event_name.clone(),
                    body: otlp::any_value(record.body.as_ref()),
                    attributes: otlp::attributes(&[resource_attributes, &record.attributes]),
                });
            }
        }
    }
    records
}

impl Record {
    fn attrs(&self) -> Attrs<'_> {
        Attrs(&self.attributes)
    }

    fn text(&self, key: &str) -> Option<String> {
        self.attrs().text(key)
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.attrs().number(key)
    }

    fn int(&self, key: &str) -> i64 {
        self.attrs().count(&[key])
    }

    /// The event's name, without Claude Code's `claude_code.` prefix.
    fn event(&self) -> Option<String> {
        let name = self
            .text("event.name")
            .or_else(|| (!self.event_name.is_empty()).then(|| self.event_name.clone()))
            .or_else(|| self.body.as_str().map(str::to_owned))?;
        Some(
            name.strip_prefix("claude_code.")
                .unwrap_or(&name)
                .to_owned(),
        )
    }
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
            outcome.reject(|| format!("a claude_code.{event} record has no session.id"));
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
