//! OTLP/HTTP logs (`POST /v1/logs`, protobuf or JSON; see [`super::otlp`]): Claude
//! Code's events (`CLAUDE_CODE_ENABLE_TELEMETRY=1`, `OTEL_LOGS_EXPORTER=otlp`).
//!
//! - `claude_code.api_request` → one completed prompt of the session's run (joined by
//!   `session.id` with the hooks' run, key `run:cc:<session.id>`; created when the hooks
//!   have not been seen), or of a subagent's child run when the record has `agent_id`:
//!   tokens in = input + cache read + cache creation, tokens out, `cost_usd`, `model_used`
//!   from `model`, `latency_ms` from `duration_ms`, its times from `event.timestamp`, its
//!   `parent_prompt_id` the user prompt of the same `prompt.id`. It lands even when the run
//!   is final (exporters flush at exit); its cost rolls up into the run, and the run's new
//!   cost is one `cost_update` feed event per export.
//! - `claude_code.tool_result` → the tool call's one `tool_call` log (shared with the
//!   PostToolUse hook by `tool_use_id`); `claude_code.api_error` → an `error` log.
//! - Other records are accepted and ignored. A record without `session.id` cannot be
//!   placed: rejected and counted in `partial_success`. A record seen before (same
//!   content, whichever encoding brought it) is not applied twice.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use serde_json::{json, Value as Json};

use std::collections::HashMap;

use super::otlp::{self, Attrs, Outcome};
use super::sink::{self, RunSpec};
use crate::db::Database;
use crate::domain::text::truncate;
use crate::domain::time::{from_unix_nanos, minus_millis, parse_rfc3339};
use crate::domain::{AgentType, DefinitionId, LogLevel, LogType, RunId, RunStatus};
use crate::error::ApiError;
use crate::store::ingest_keys;
use crate::store::prompts::FinishedCall;
use crate::store::runs;
use crate::store::runs::Run;

/// One log record: its body and its attributes (the resource's, then its own, winning).
pub struct Record {
    digest: String,
    /// The record's own time (`time_unix_nano`, else when it was observed); 0: unknown.
    time_unix_nano: u64,
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
                    time_unix_nano: if record.time_unix_nano > 0 {
                        record.time_unix_nano
                    } else {
                        record.observed_time_unix_nano
                    },
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

/// Apply the records inside the caller's write transaction. Model calls are inserted
/// together at the end, so each run they land on gets one `cost_update` event per export.
pub fn apply<D: Database>(db: &D, records: &[Record]) -> Result<Outcome, ApiError> {
    let mut outcome = Outcome::default();
    let mut landing = Landing::new(db);
    let mut calls: Vec<(RunId, FinishedCall)> = Vec::new();
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
        let session = truncate(&session, runs::MAX_SESSION_ID);
        let run = landing.run(&session, record.text("agent_id").as_deref())?;
        if !ingest_keys::claim(db, &format!("hash:otlp-log:{}", record.digest), &run)? {
            continue;
        }
        match event.as_str() {
            "api_request" => calls.push((run, api_request(record))),
            "tool_result" => tool_result(db, &run, &session, record)?,
            _ => {
                let message = record.text("error").unwrap_or_else(|| "API error".into());
                sink::log(
                    db,
                    &run,
                    LogLevel::Error,
                    LogType::Error,
                    &message,
                    &json!({"source": "otlp", "event": "claude_code.api_error",
                            "attributes": record.attributes}),
                )?;
            }
        }
    }
    let changed = sink::finished_prompts(db, &calls)?;
    sink::cost_changed(db, &changed)?;
    Ok(outcome)
}

/// A `claude_code.api_request`: one model call, at its own time (`event.timestamp`, else
/// the record's), tied to the user prompt it served (`prompt.id`).
fn api_request(record: &Record) -> FinishedCall {
    let latency_ms = record.number("duration_ms").map(|d| d.max(0.0) as i64);
    let ended_at = record
        .text("event.timestamp")
        .and_then(|t| parse_rfc3339(&t))
        .or_else(|| from_unix_nanos(record.time_unix_nano));
    let started_at = ended_at
        .as_deref()
        .and_then(|end| minus_millis(end, latency_ms.unwrap_or(0)));
    FinishedCall {
        prompt_name: Some("claude_code.api_request".into()),
        prompt_text: String::new(),
        model_used: record.text("model"),
        tokens_input: record.int("input_tokens")
            + record.int("cache_read_tokens")
            + record.int("cache_creation_tokens"),
        tokens_output: record.int("output_tokens"),
        cost_usd: record.number("cost_usd").unwrap_or(0.0).max(0.0),
        latency_ms,
        started_at,
        ended_at,
        source_prompt_id: record.text("prompt.id"),
        ..FinishedCall::default()
    }
}

/// A `claude_code.tool_result`: the tool call's `tool_call` log, or, when its PostToolUse
/// hook came first (same `tool_use_id`), that log completed with the telemetry's fields.
fn tool_result<D: Database>(
    db: &D,
    run: &RunId,
    session: &str,
    record: &Record,
) -> Result<(), ApiError> {
    let tool = record
        .text("tool_name")
        .unwrap_or_else(|| "(unnamed tool)".into());
    let failed = record.text("success").as_deref() == Some("false");
    let (level, message) = if failed {
        let error = record
            .text("error")
            .unwrap_or_else(|| "no error message".into());
        (LogLevel::Error, format!("{tool} failed: {error}"))
    } else {
        (LogLevel::Info, tool.clone())
    };
    let tool_use_id = record.text("tool_use_id");
    let details = json!({
        "source": "otlp",
        "event": "claude_code.tool_result",
        "tool_name": tool,
        "tool_use_id": tool_use_id,
        "duration_ms": record.number("duration_ms"),
        "telemetry": record.attributes,
    });
    match tool_use_id.as_deref() {
        Some(tool_use_id) => sink::tool_call(
            db,
            run,
            sink::ToolCall {
                session,
                tool_use_id,
                part: sink::ToolCallPart::Telemetry,
                level,
                message,
                details,
            },
        )?,
        None => sink::log(db, run, level, LogType::ToolCall, &message, &details)?,
    }
    Ok(())
}

/// Where a session's records land, looked up once per export: the session's run (key
/// `run:cc:<session>`, shared with the hooks), or a subagent's child run when the record
/// carries `agent_id` (key `run:cc:<session>:<agent_id>`, as the hooks make it), created by
/// whichever report comes first.
struct Landing<'a, D> {
    db: &'a D,
    definition: Option<DefinitionId>,
    runs: HashMap<String, Run>,
}

impl<'a, D: Database> Landing<'a, D> {
    fn new(db: &'a D) -> Self {
        Landing {
            db,
            definition: None,
            runs: HashMap::new(),
        }
    }

    /// The id of the run a record of `session` (and subagent `agent_id`) lands on.
    fn run(&mut self, session: &str, agent_id: Option<&str>) -> Result<RunId, ApiError> {
        let main = self.ensure(format!("run:cc:{session}"), session, None)?;
        let Some(agent_id) = agent_id.filter(|a| !a.is_empty()) else {
            return Ok(main.id);
        };
        let agent_id = truncate(agent_id, runs::MAX_SESSION_ID);
        let child = self.ensure(
            format!("run:cc:{session}:{agent_id}"),
            session,
            Some((&main, &agent_id)),
        )?;
        Ok(child.id)
    }

    fn ensure(
        &mut self,
        key: String,
        session: &str,
        subagent: Option<(&Run, &str)>,
    ) -> Result<Run, ApiError> {
        if let Some(run) = self.runs.get(&key) {
            return Ok(run.clone());
        }
        let run = match sink::run_for_key(self.db, &key)? {
            Some(run) => run,
            None => {
                let definition = match &self.definition {
                    Some(id) => id.clone(),
                    None => {
                        let id = sink::definition(self.db, "claude-code", AgentType::Builder)?;
                        self.definition = Some(id.clone());
                        id
                    }
                };
                let context = match subagent {
                    None => json!({"claude_code": {"session_id": session}}),
                    Some((_, agent_id)) => {
                        json!({"claude_code": {"session_id": session, "agent_id": agent_id}})
                    }
                };
                let run = sink::ensure_run(
                    self.db,
                    RunSpec {
                        key: &key,
                        definition_id: &definition,
                        session_id: session,
                        parent_agent_id: subagent.map(|(parent, _)| &parent.id),
                        context,
                        title: None,
                        project: subagent.and_then(|(parent, _)| parent.project.as_deref()),
                    },
                )?;
                // A subagent first seen after its session ended (its telemetry flushed at
                // exit) is over too: it must not stay active forever.
                match subagent {
                    Some((parent, _)) if parent.status.is_final() => {
                        sink::move_run(self.db, run, RunStatus::Completed, None)?
                    }
                    _ => run,
                }
            }
        };
        self.runs.insert(key, run.clone());
        Ok(run)
    }
}
