//! The route table of the contract: which paths exist, which methods each takes, and which
//! component (route group) serves it.

/// A route group: one Spin component each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `/api/agents`, `/api/agents/...`
    Agents,
    /// `/api/runtime/...` and the runners' `/api/runner/...`
    Runtime,
    /// `/api/events`, `/api/events/...`
    Events,
    /// `/health`, `/openapi.json` and the catch-all.
    Meta,
    /// `/api/ingest/...` and OTLP's `/v1/...`: what agents report without code.
    Ingest,
}

/// A resolved route. Path ids are kept raw: a malformed id is an unknown id (404), decided
/// after the body has been validated, in the contract's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Agents,
    Agent(String),
    Runs,
    Run(String),
    Prompts,
    Prompt(String),
    Logs,
    Stats,
    Sessions,
    /// A session id, still percent-encoded (it is free text, not a UUID).
    Session(String),
    Events,
    EventsSnapshot,
    EventsStream,
    Health,
    OpenApi,
    /// `POST /api/admin/prune`: retention now (served by the meta component).
    AdminPrune,
    /// `POST /api/ingest/claude-code`: one Claude Code hook event.
    IngestClaudeCode,
    /// `GET /api/approvals`: tool calls waiting for (or decided by) a person.
    Approvals,
    /// `GET /api/approvals/{id}`.
    Approval(String),
    /// `POST /api/approvals/{id}/decision`.
    ApprovalDecision(String),
    /// `POST /api/runtime/agents/{id}/messages`: a follow-up to a running agent.
    RunMessages(String),
    /// `POST /api/runner/claim`: a runner takes a queued run (long-poll).
    RunnerClaim,
    /// `POST /api/runner/runs/{id}/heartbeat`, `…/output`, `…/exit`: a claimed run's
    /// runner reports.
    RunnerHeartbeat(String),
    RunnerOutput(String),
    RunnerExit(String),
    /// `POST /v1/logs`, `/v1/traces`, `/v1/metrics`: OTLP/HTTP (protobuf or JSON).
    OtlpLogs,
    OtlpTraces,
    OtlpMetrics,
}

impl Route {
    /// Resolve a path (a single trailing slash is ignored).
    pub fn resolve(path: &str) -> Option<Route> {
        let trimmed = if path.len() > 1 {
            path.strip_suffix('/').unwrap_or(path)
        } else {
            path
        };
        let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
        Some(match segments.as_slice() {
            ["api", "agents"] => Route::Agents,
            ["api", "agents", id] if !id.is_empty() => Route::Agent((*id).to_owned()),
            ["api", "runtime", "agents"] => Route::Runs,
            ["api", "runtime", "agents", id] if !id.is_empty() => Route::Run((*id).to_owned()),
            ["api", "runtime", "prompts"] => Route::Prompts,
            ["api", "runtime", "prompts", id] if !id.is_empty() => Route::Prompt((*id).to_owned()),
            ["api", "runtime", "logs"] => Route::Logs,
            ["api", "runtime", "stats"] => Route::Stats,
            ["api", "runtime", "sessions"] => Route::Sessions,
            ["api", "runtime", "sessions", id] if !id.is_empty() => {
                Route::Session((*id).to_owned())
            }
            ["api", "events"] => Route::Events,
            ["api", "events", "snapshot"] => Route::EventsSnapshot,
            ["api", "events", "stream"] => Route::EventsStream,
            ["api", "admin", "prune"] => Route::AdminPrune,
            ["api", "ingest", "claude-code"] => Route::IngestClaudeCode,
            ["api", "runtime", "agents", id, "messages"] if !id.is_empty() => {
                Route::RunMessages((*id).to_owned())
            }
            ["api", "approvals"] => Route::Approvals,
            ["api", "approvals", id] if !id.is_empty() => Route::Approval((*id).to_owned()),
            ["api", "approvals", id, "decision"] if !id.is_empty() => {
                Route::ApprovalDecision((*id).to_owned())
            }
            ["api", "runner", "claim"] => Route::RunnerClaim,
            ["api", "runner", "runs", id, "heartbeat"] if !id.is_empty() => {
                Route::RunnerHeartbeat((*id).to_owned())
            }
            ["api", "runner", "runs", id, "output"] if !id.is_empty() => {
                Route::RunnerOutput((*id).to_owned())
            }
            ["api", "runner", "runs", id, "exit"] if !id.is_empty() => {
                Route::RunnerExit((*id).to_owned())
            }
            ["v1", "logs"] => Route::OtlpLogs,
            ["v1", "traces"] => Route::OtlpTraces,
            ["v1", "metrics"] => Route::OtlpMetrics,
            ["health"] => Route::Health,
            ["openapi.json"] => Route::OpenApi,
            _ => return None,
        })
    }

    /// The component that serves this route.
    pub fn group(&self) -> Group {
        match self {
            Route::Agents | Route::Agent(_) => Group::Agents,
            Route::Runs
            | Route::Run(_)
            | Route::Prompts
            | Route::Prompt(_)
            | Route::Logs
            | Route::Stats
            | Route::Sessions
            | Route::Session(_)
            | Route::Approvals
            | Route::Approval(_)
            | Route::ApprovalDecision(_)
            | Route::RunMessages(_)
            | Route::RunnerClaim
            | Route::RunnerHeartbeat(_)
            | Route::RunnerOutput(_)
            | Route::RunnerExit(_) => Group::Runtime,
            Route::Events | Route::EventsSnapshot | Route::EventsStream => Group::Events,
            Route::Health | Route::OpenApi | Route::AdminPrune => Group::Meta,
            Route::IngestClaudeCode | Route::OtlpLogs | Route::OtlpTraces | Route::OtlpMetrics => {
                Group::Ingest
            }
        }
    }

    /// The methods this route answers (OPTIONS is answered everywhere, for CORS).
    pub fn methods(&self) -> &'static [&'static str] {
        match self {
            Route::Agents | Route::Runs | Route::Prompts | Route::Logs => &["GET", "POST"],
            Route::Agent(_) => &["GET", "PUT", "DELETE"],
            Route::Run(_) => &["GET", "PATCH", "DELETE"],
            Route::Prompt(_) => &["GET", "PATCH"],
            Route::AdminPrune
            | Route::ApprovalDecision(_)
            | Route::RunMessages(_)
            | Route::RunnerClaim
            | Route::RunnerHeartbeat(_)
            | Route::RunnerOutput(_)
            | Route::RunnerExit(_)
            | Route::IngestClaudeCode
            | Route::OtlpLogs
            | Route::OtlpTraces
            | Route::OtlpMetrics => &["POST"],
            Route::Stats
            | Route::Sessions
            | Route::Session(_)
            | Route::Approvals
            | Route::Approval(_)
            | Route::Events
            | Route::EventsSnapshot
            | Route::EventsStream
            | Route::Health
            | Route::OpenApi => &["GET"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_their_routes_and_groups() {
        assert_eq!(Route::resolve("/api/agents"), Some(Route::Agents));
        assert_eq!(Route::resolve("/api/agents/"), Some(Route::Agents));
        assert_eq!(
            Route::resolve("/api/agents/abc"),
            Some(Route::Agent("abc".into()))
        );
        assert_eq!(
            Route::resolve("/api/runtime/stats").unwrap().group(),
            Group::Runtime
        );
        assert_eq!(Route::resolve("/health").unwrap().group(), Group::Meta);
        assert_eq!(
            Route::resolve("/api/runtime/sessions/adw%2F1"),
            Some(Route::Session("adw%2F1".into()))
        );
        assert_eq!(
            Route::resolve("/api/runtime/sessions").unwrap().group(),
            Group::Runtime
        );
        assert_eq!(
            Route::resolve("/api/runner/runs/abc/heartbeat"),
            Some(Route::RunnerHeartbeat("abc".into()))
        );
        assert_eq!(
            Route::resolve("/api/runner/claim").unwrap().group(),
            Group::Runtime
        );
    }

    #[test]
    fn unknown_paths_resolve_to_nothing() {
        for path in [
            "/",
            "/api",
            "/api/agents/a/b",
            "/api/runtime",
            "/apix/agents",
            "/api/agents//",
        ] {
            assert_eq!(Route::resolve(path), None, "{path}");
        }
    }
}
