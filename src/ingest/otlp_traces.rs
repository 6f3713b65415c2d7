//! OTLP/HTTP traces (`POST /v1/traces`, protobuf or JSON; see [`super::otlp`]): spans that
//! follow OpenTelemetry's GenAI semantic conventions become runs, prompts and tool-call
//! logs. Other spans are accepted and ignored.
//!
//! What a span is comes from `gen_ai.operation.name` (or, for a span with `gen_ai.*`
//! attributes but no operation, the first word of its name):
//! - `invoke_agent` → a run of the definition `gen_ai.agent.name` (created on first use;
//!   without a name the resource's `service.name`, else `genai-agent`). The span has ended
//!   when it is exported, so its run ends: failed for an error status (with the status
//!   message), else completed — except the session's run of a conversation
//!   (`gen_ai.conversation.id`), which goes to reviewing, as after a Claude Code `Stop`: a
//!   conversation goes on in later traces.
//! - `chat`, `text_completion`, `generate_content` → a finished prompt of the run it belongs
//!   to: `gen_ai.request.model` (else `gen_ai.response.model`), tokens from
//!   `gen_ai.usage.input_tokens` / `output_tokens` (or the older `prompt_tokens` /
//!   `completion_tokens`), cost from `gen_ai.usage.cost` when the sender gives one (the
//!   conventions define none), latency from the span's start and end, text from
//!   `gen_ai.input.messages` / `gen_ai.output.messages` when recorded; failed for an error
//!   status. The run moves to executing unless it is final.
//! - `execute_tool` → one `tool_call` log: `gen_ai.tool.name`, `gen_ai.tool.call.id`,
//!   arguments and result as excerpts (the hooks' 64 KiB rule), ERROR for an error status.
//!
//! Where a span lands:
//! - The session is `gen_ai.conversation.id`, else `session.id` (span, then resource),
//!   else one of those found on another GenAI span of the same trace in the batch, else
//!   the trace id (hex). The session's run is keyed `run:cc:<session>`, the key the Claude
//!   Code hooks and logs use: one session, one run, whoever reports it.
//! - An agent span with no agent ancestor (its parent chain ends in the batch without
//!   one) is the session's run itself. One below another GenAI span is a child run
//!   (`parent_agent_id` = that span's run, the same `session_id`). One whose parent is
//!   unknown (not in the batch, never seen) is a child run of the session's run.
//! - A prompt or tool span lands on the run of its nearest GenAI ancestor, found in the
//!   batch or among spans applied before, else on the session's run.
//! - A batch is applied parents first, whatever its order, so children before their parent
//!   in one batch land where they belong. A child exported in an earlier batch than its
//!   agent span lands on the session's run (for a single agent: its own run).
//!
//! Idempotent: each GenAI span is applied once (key `span:<trace>:<span>` naming the run it
//! landed on, which later children find); a batch delivered twice changes nothing. A
//! GenAI span without a valid trace id and span id cannot be placed or deduplicated: it is
//! rejected and counted in `partial_success`.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{json, Map, Value as Json};

use super::hooks::excerpt;
use super::otlp::{self, Attrs, Outcome};
use super::sink::{self, LogRow, RunSpec};
use crate::db::Database;
use crate::domain::text::truncate;
use crate::domain::time::from_unix_nanos;
use crate::domain::{AgentName, AgentType, LogLevel, LogType, RunId, RunStatus};
use crate::error::ApiError;
use crate::store::ingest_keys;
use crate::store::prompts::FinishedCall;
use crate::store::runs::{self, Run};

/// The definition of runs whose spans name no agent and no service.
pub const DEFAULT_AGENT: &str = "genai-agent";

/// What a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Agent,
    Chat,
    Tool,
    Other,
}

/// One span, flattened: ids in hex, attributes the resource's then its own.
pub struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: Kind,
    valid: bool,
    attributes: Map<String, Json>,
    start_ns: u64,
    end_ns: u64,
    error: Option<String>,
}

/// The spans of an export, flattened.
pub fn spans(export: &ExportTraceServiceRequest) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource in &export.resource_spans {
        let resource_attributes = resource
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        for scope in &resource.scope_spans {
            for span in &scope.spans {
                let attributes = otlp::attributes(&[resource_attributes, &span.attributes]);
                let kind = kind(&attributes, &span.name);
                let nonzero = |b: &[u8]| b.iter().any(|&x| x != 0);
                let valid = span.trace_id.len() == 16
                    && nonzero(&span.trace_id)
                    && span.span_id.len() == 8
                    && nonzero(&span.span_id)
                    && (span.parent_span_id.is_empty() || span.parent_span_id.len() == 8);
                // OTLP's STATUS_CODE_ERROR.
                let error = span.status.as_ref().filter(|s| s.code == 2).map(|s| {
                    if s.message.is_empty() {
                        Attrs(&attributes)
                            .text("error.type")
                            .unwrap_or_else(|| "the span ended with an error status".into())
                    } else {
                        s.message.clone()
                    }
                });
                spans.push(Span {
                    trace: otlp::hex(&span.trace_id),
                    id: otlp::hex(&span.span_id),
                    // An all-zero parent id is no parent.
                    parent: if nonzero(&span.parent_span_id) {
                        otlp::hex(&span.parent_span_id)
                    } else {
                        String::new()
                    },
                    name: span.name.clone(),
                    kind,
                    valid,
                    attributes,
                    start_ns: span.start_time_unix_nano,
                    end_ns: span.end_time_unix_nano,
                    error,
                });
            }
        }
    }
    spans
}

fn kind(attributes: &Map<String, Json>, name: &str) -> Kind {
    let operation = Attrs(attributes).text("gen_ai.operation.name").or_else(|| {
        // Only a span that is about GenAI at all may be classified by its name.
        attributes
            .keys()
            .any(|k| k.starts_with("gen_ai."))
            .then(|| name.split(' ').next().unwrap_or("").to_owned())
    });
    match operation.as_deref() {
        Some("invoke_agent") => Kind::Agent,
        Some("chat" | "text_completion" | "generate_content") => Kind::Chat,
        Some("execute_tool") => Kind::Tool,
        _ => Kind::Other,
    }
}

impl Span {
    fn attrs(&self) -> Attrs<'_> {
        Attrs(&self.attributes)
    }

    fn key(&self) -> String {
        format!("span:{}:{}", self.trace, self.id)
    }

    /// The session the span names itself.
    fn own_session(&self) -> Option<String> {
        self.attrs()
            .first_text(&["gen_ai.conversation.id", "session.id"])
    }

    /// `gen_ai.agent.name` as a definition name (control characters dropped, cut to the
    /// API's length), if there is one.
    fn agent_name(&self) -> Option<String> {
        name(self.attrs().text("gen_ai.agent.name"))
    }

    fn latency_ms(&self) -> Option<i64> {
        (self.start_ns > 0 && self.end_ns >= self.start_ns)
            .then(|| ((self.end_ns - self.start_ns) / 1_000_000) as i64)
    }

    fn context(&self, session: &Session) -> Json {
        json!({"otel": {
            "trace_id": self.trace,
            "span_id": self.id,
            "session": session.id,
            "agent_name": self.attrs().text("gen_ai.agent.name"),
            "agent_id": self.attrs().text("gen_ai.agent.id"),
            "service_name": self.attrs().text("service.name"),
        }})
    }
}

fn name(raw: Option<String>) -> Option<String> {
    let clean: String = raw?
        .chars()
        .filter(|c| !c.is_control())
        .take(AgentName::MAX_CHARS)
        .collect();
    let clean = clean.trim().to_owned();
    (!clean.is_empty()).then_some(clean)
}

/// A span's session and whether it is only its trace (no conversation or session id).
struct Session {
    id: String,
    from_trace: bool,
}

/// Where a span's parent chain leads.
enum Ancestor {
    /// The chain ends (a root span) without a GenAI span.
    Root,
    /// The run of the nearest GenAI ancestor.
    Run(Box<Run>),
    /// A parent that is neither in the batch nor applied before.
    Unknown,
}

/// Apply the spans inside the caller's write transaction.
pub fn apply<D: Database>(db: &D, spans: &[Span]) -> Result<Outcome, ApiError> {
    let mut outcome = Outcome::default();
    let mut index = HashMap::new();
    let mut conversations: HashMap<&str, String> = HashMap::new();
    for (i, span) in spans.iter().enumerate() {
        if !span.valid {
            continue;
        }
        index.insert((span.trace.as_str(), span.id.as_str()), i);
        if span.kind != Kind::Other {
            if let Some(session) = span.own_session() {
                conversations.entry(span.trace.as_str()).or_insert(session);
            }
        }
    }
    let mut batch = Batch {
        db,
        spans,
        index,
        conversations,
        applied: applied_before(db, spans)?,
        landed: vec![None; spans.len()],
        visiting: vec![false; spans.len()],
        runs: HashMap::new(),
        endings: Vec::new(),
        claims: Vec::new(),
        claimed: HashSet::new(),
        prompts: Vec::new(),
        logs: Vec::new(),
    };
    for (i, span) in spans.iter().enumerate() {
        if span.kind == Kind::Other {
            continue;
        }
        if !span.valid {
            outcome.reject(|| {
                format!(
                    "GenAI span {:?} has no valid trace_id and span_id, so it cannot be placed",
                    span.name
                )
            });
            continue;
        }
        batch.land(i)?;
    }
    // The batch's rows in a few multi-row statements rather than one round trip each.
    ingest_keys::claim_all(db, &batch.claims)?;
    let costed = sink::finished_prompts(db, &batch.prompts)?;
    let logs: Vec<LogRow<'_>> = batch
        .logs
        .iter()
        .map(|(run, level, message, details)| LogRow {
            run_id: run,
            level: *level,
            log_type: LogType::ToolCall,
            message: message.clone(),
            details: details.clone(),
        })
        .collect();
    sink::logs(db, &logs)?;
    // Agent spans end their runs last (after their prompts rolled up), so that their children in the same batch (applied
    // after them: parents are placed first) do not move an ended run back to executing.
    // A run that ends here gets its new cost on the feed with its ending's state_change; the
    // others get a cost event of their own (one per run per batch either way).
    let mut ended = HashSet::new();
    for (run_id, to, error) in std::mem::take(&mut batch.endings) {
        if let Some(run) = batch.run_by_id(&run_id)? {
            let before = run.status;
            if batch.move_run(run, to, error.as_deref())?.status != before {
                ended.insert(run_id);
            }
        }
    }
    let costed: Vec<RunId> = costed
        .into_iter()
        .filter(|run| !ended.contains(run))
        .collect();
    sink::cost_changed(db, &costed)?;
    Ok(outcome)
}

/// The runs (by id) that the batch's spans landed on when they were applied before, in one
/// query per 500 spans rather than one per span.
fn applied_before<D: Database>(db: &D, spans: &[Span]) -> Result<HashMap<String, RunId>, ApiError> {
    let keys: Vec<String> = spans
        .iter()
        .filter(|s| s.valid && s.kind != Kind::Other)
        .map(Span::key)
        .collect();
    Ok(ingest_keys::runs_of(db, &keys)?)
}

struct Batch<'a, D: Database> {
    db: &'a D,
    spans: &'a [Span],
    index: HashMap<(&'a str, &'a str), usize>,
    conversations: HashMap<&'a str, String>,
    /// Span key → run id, for spans applied by an earlier delivery.
    applied: HashMap<String, RunId>,
    /// The run each span landed on, once known.
    landed: Vec<Option<Run>>,
    /// Spans whose placement is being worked out (a cycle of parent ids stops there).
    visiting: Vec<bool>,
    /// Runs by ingest key, so a batch of 500 spans of one session reads its run once.
    runs: HashMap<String, Run>,
    /// Status moves of ended agent spans, applied once the whole batch has landed.
    endings: Vec<(RunId, RunStatus, Option<String>)>,
    /// Span keys to record, and those already taken by this batch (a span listed twice).
    claims: Vec<(String, RunId)>,
    claimed: HashSet<String>,
    /// Prompts (run id, call) and tool-call logs (run id, level, message, details) to
    /// write once the batch is placed.
    prompts: Vec<(RunId, FinishedCall)>,
    logs: Vec<(RunId, LogLevel, String, Json)>,
}

impl<D: Database> Batch<'_, D> {
    /// Place and apply span `i` (its GenAI ancestors first); the run it landed on.
    fn land(&mut self, i: usize) -> Result<Option<Run>, ApiError> {
        if let Some(run) = &self.landed[i] {
            return Ok(Some(run.clone()));
        }
        if self.visiting[i] {
            return Ok(None);
        }
        self.visiting[i] = true;
        let spans = self.spans;
        let span = &spans[i];
        let key = span.key();
        if let Some(run_id) = self.applied.get(&key).cloned() {
            // Applied by an earlier delivery: nothing to write, but its children need it.
            let run = self.run_by_id(&run_id)?;
            self.landed[i] = run.clone();
            return Ok(run);
        }
        let session = self.session(span);
        let ancestor = self.ancestor(span)?;
        let run = match (span.kind, ancestor) {
            (Kind::Agent, Ancestor::Root) => self.session_run(span, &session)?,
            (Kind::Agent, Ancestor::Run(parent)) => self.child_run(span, &session, &parent)?,
            (Kind::Agent, Ancestor::Unknown) => {
                let parent = self.session_run(span, &session)?;
                self.child_run(span, &session, &parent)?
            }
            (_, Ancestor::Run(run)) => *run,
            (_, Ancestor::Root | Ancestor::Unknown) => self.session_run(span, &session)?,
        };
        if !self.claimed.insert(key.clone()) {
            // A concurrent delivery cannot get here (the write lock is held); a span listed
            // twice in one batch can.
            self.landed[i] = Some(run.clone());
            return Ok(Some(run));
        }
        self.claims.push((key, run.id.clone()));
        let run = self.apply_span(span, run, &session)?;
        self.landed[i] = Some(run.clone());
        Ok(Some(run))
    }

    fn session(&self, span: &Span) -> Session {
        match span
            .own_session()
            .or_else(|| self.conversations.get(span.trace.as_str()).cloned())
        {
            Some(id) => Session {
                id: truncate(&id, runs::MAX_SESSION_ID),
                from_trace: false,
            },
            None => Session {
                id: span.trace.clone(),
                from_trace: true,
            },
        }
    }

    fn ancestor(&mut self, span: &Span) -> Result<Ancestor, ApiError> {
        let spans = self.spans;
        let mut parent = span.parent.as_str();
        for _ in 0..=spans.len() {
            if parent.is_empty() {
                return Ok(Ancestor::Root);
            }
            match self.index.get(&(span.trace.as_str(), parent)).copied() {
                Some(j) if spans[j].kind != Kind::Other => {
                    return Ok(match self.land(j)? {
                        Some(run) => Ancestor::Run(Box::new(run)),
                        None => Ancestor::Unknown,
                    });
                }
                // A span of no interest in between (a framework's step, an HTTP span).
                Some(j) => parent = spans[j].parent.as_str(),
                None => {
                    let key = format!("span:{}:{parent}", span.trace);
                    return Ok(match sink::run_for_key(self.db, &key)? {
                        Some(run) => Ancestor::Run(Box::new(run)),
                        None => Ancestor::Unknown,
                    });
                }
            }
        }
        // Parent ids that loop.
        Ok(Ancestor::Unknown)
    }

    fn run_by_id(&mut self, id: &RunId) -> Result<Option<Run>, ApiError> {
        if let Some(run) = self.runs.values().find(|r| &r.id == id) {
            return Ok(Some(run.clone()));
        }
        Ok(runs::get(self.db, id)?)
    }

    /// The run `key` names, created from `spec` when there is none (read once per batch).
    fn ensure(&mut self, spec: RunSpec<'_>) -> Result<Run, ApiError> {
        if let Some(run) = self.runs.get(spec.key) {
            return Ok(run.clone());
        }
        let key = spec.key.to_owned();
        let run = sink::ensure_run(self.db, spec)?;
        self.runs.insert(key, run.clone());
        Ok(run)
    }

    fn session_run(&mut self, span: &Span, session: &Session) -> Result<Run, ApiError> {
        let key = format!("run:cc:{}", session.id);
        if let Some(run) = self.runs.get(&key) {
            return Ok(run.clone());
        }
        let agent = span
            .agent_name()
            .or_else(|| {
                name(span.attrs().text("service.name"))
                    .filter(|s| !s.starts_with("unknown_service"))
            })
            .unwrap_or_else(|| DEFAULT_AGENT.to_owned());
        let definition = sink::definition(self.db, &agent, AgentType::Builder)?;
        self.ensure(RunSpec {
            key: &key,
            definition_id: &definition,
            session_id: &session.id,
            parent_agent_id: None,
            context: span.context(session),
            title: None,
            project: None,
        })
    }

    fn child_run(&mut self, span: &Span, session: &Session, parent: &Run) -> Result<Run, ApiError> {
        let key = format!("run:otel:{}:{}", span.trace, span.id);
        if let Some(run) = self.runs.get(&key) {
            return Ok(run.clone());
        }
        let agent = span
            .agent_name()
            .unwrap_or_else(|| DEFAULT_AGENT.to_owned());
        let definition = sink::definition(self.db, &agent, AgentType::Builder)?;
        self.ensure(RunSpec {
            key: &key,
            definition_id: &definition,
            session_id: &parent.session_id,
            parent_agent_id: Some(&parent.id),
            context: span.context(session),
            // An agent span names what the child run does.
            title: span.attrs().text("gen_ai.agent.description"),
            project: None,
        })
    }

    /// Move a run, keeping every copy the batch holds current: the cache by key and the
    /// runs spans landed on (a child span takes its run from its parent's landing, so a
    /// stale copy there would move the run again from a status it has left, and the feed
    /// would show that transition once per span).
    fn move_run(&mut self, run: Run, to: RunStatus, error: Option<&str>) -> Result<Run, ApiError> {
        let run = self.current(run);
        let before = run.status;
        let moved = sink::move_run(self.db, run, to, error)?;
        if moved.status == before {
            // Not moved (already there, or final): every copy is still current.
            return Ok(moved);
        }
        let copies = self
            .runs
            .values_mut()
            .chain(self.landed.iter_mut().flatten());
        for cached in copies {
            if cached.id == moved.id {
                *cached = moved.clone();
            }
        }
        Ok(moved)
    }

    /// The batch's newest copy of `run`.
    fn current(&self, run: Run) -> Run {
        match self.runs.values().find(|r| r.id == run.id) {
            Some(cached) => cached.clone(),
            None => run,
        }
    }

    fn apply_span(&mut self, span: &Span, run: Run, session: &Session) -> Result<Run, ApiError> {
        let attrs = span.attrs();
        match span.kind {
            Kind::Agent => {
                let to = match (
                    &span.error,
                    run.parent_agent_id.is_some() || session.from_trace,
                ) {
                    (Some(_), _) => RunStatus::Failed,
                    (None, true) => RunStatus::Completed,
                    (None, false) => RunStatus::Reviewing,
                };
                self.endings.push((run.id.clone(), to, span.error.clone()));
                Ok(run)
            }
            Kind::Chat => {
                let run = self.move_run(run, RunStatus::Executing, None)?;
                let call = FinishedCall {
                    prompt_name: Some(span.name.clone()),
                    prompt_text: attrs
                        .content(&["gen_ai.input.messages", "gen_ai.prompt"])
                        .unwrap_or_default(),
                    response_text: attrs.content(&["gen_ai.output.messages", "gen_ai.completion"]),
                    model_used: attrs
                        .first_text(&["gen_ai.request.model", "gen_ai.response.model"]),
                    tokens_input: attrs
                        .count(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"]),
                    tokens_output: attrs.count(&[
                        "gen_ai.usage.output_tokens",
                        "gen_ai.usage.completion_tokens",
                    ]),
                    cost_usd: attrs
                        .first_number(&["gen_ai.usage.cost", "gen_ai.usage.cost_usd"])
                        .unwrap_or(0.0)
                        .max(0.0),
                    latency_ms: span.latency_ms(),
                    failed: span.error.clone(),
                    // The call's own times: the span's start and end.
                    started_at: from_unix_nanos(span.start_ns),
                    ended_at: from_unix_nanos(span.end_ns),
                    source_prompt_id: None,
                };
                self.prompts.push((run.id.clone(), call));
                Ok(run)
            }
            Kind::Tool => {
                let run = self.move_run(run, RunStatus::Executing, None)?;
                let tool = attrs.text("gen_ai.tool.name").unwrap_or_else(|| {
                    span.name
                        .strip_prefix("execute_tool ")
                        .unwrap_or(&span.name)
                        .to_owned()
                });
                let details = json!({
                    "source": "otlp",
                    "trace_id": span.trace,
                    "span_id": span.id,
                    "tool_name": tool,
                    "tool_call_id": attrs.text("gen_ai.tool.call.id"),
                    "tool_type": attrs.text("gen_ai.tool.type"),
                    "tool_input": excerpt(span.attributes.get("gen_ai.tool.call.arguments")),
                    "tool_response": excerpt(span.attributes.get("gen_ai.tool.call.result")),
                    "duration_ms": span.latency_ms(),
                    "error": span.error,
                });
                let (level, message) = match &span.error {
                    Some(error) => (LogLevel::Error, format!("{tool} failed: {error}")),
                    None => (LogLevel::Info, tool),
                };
                self.logs.push((run.id.clone(), level, message, details));
                Ok(run)
            }
            Kind::Other => Ok(run),
        }
    }
}
