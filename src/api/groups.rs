//! The route groups as types: one zero-sized type per Spin component ([`Agents`],
//! [`Runtime`], [`Events`], [`Meta`], [`Ingest`]), each dispatching only its own routes,
//! and [`Group`] (the enum), which dispatches to all of them.
//!
//! A component calls [`super::respond`] with its own type, so the call is monomorphised
//! for that group and every other group's handlers are unreachable: the components' LTO
//! drops them (the ingest's OTLP decoding is not in the feed's `.wasm`, nor the feed in
//! the ingest's). A run-time value would keep every handler alive in every component.
//! The native server, the tests and the bench serve all routes in one process with
//! [`Group`].

use super::{
    admin, approvals, definitions, events, logs, meta, prompts, runner, runs, sessions, Input,
    Reply,
};
use crate::db::Connector;
use crate::error::ApiError;
use crate::http::{Config, Group, Request, Route};

/// The routes one component serves, and their handlers.
pub trait RouteGroup: Copy {
    /// The body of a streaming reply ([`NoStream`] for a group that never streams).
    type Stream<C: Connector + Clone>: Iterator<Item = Vec<u8>>;

    /// Whether this group serves `route` (any other route is a 404 here).
    fn serves(self, route: &Route) -> bool;

    /// Answer a route this group [`serves`](RouteGroup::serves), once the method is known
    /// to be allowed and the body has been checked.
    fn dispatch<C: Connector + Clone>(
        self,
        route: &Route,
        connector: &C,
        config: &Config,
        req: &Request,
        input: &Input,
    ) -> Result<Reply<Self::Stream<C>>, ApiError>;
}

/// The stream of a group that never streams: it has no values, so such a group's reply
/// is always whole and the code that forwards a stream is dropped with it.
pub enum NoStream {}

impl Iterator for NoStream {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        match *self {}
    }
}

impl Reply<NoStream> {
    /// The same (whole) reply, typed as a reply that could have streamed.
    fn widen<S>(self) -> Reply<S> {
        match self {
            Reply::Full(response) => Reply::Full(response),
            Reply::Stream(_, never) => match never {},
        }
    }
}

/// A method the route table allows but no arm below answers: a bug, not a client error.
fn unmatched() -> ApiError {
    ApiError::internal("route table and dispatch disagree")
}

/// `/api/agents`, `/api/agents/...`: agent definitions.
#[derive(Debug, Clone, Copy)]
pub struct Agents;

impl RouteGroup for Agents {
    type Stream<C: Connector + Clone> = NoStream;

    fn serves(self, route: &Route) -> bool {
        route.group() == Group::Agents
    }

    fn dispatch<C: Connector + Clone>(
        self,
        route: &Route,
        connector: &C,
        _config: &Config,
        req: &Request,
        input: &Input,
    ) -> Result<Reply<NoStream>, ApiError> {
        let open = || crate::migrations::open(connector).map_err(ApiError::from);
        match (route, req.method.as_str()) {
            (Route::Agents, "GET") => definitions::list(open, input),
            (Route::Agents, "POST") => definitions::create(open, input),
            (Route::Agent(id), "GET") => definitions::get(open, id),
            (Route::Agent(id), "PUT") => definitions::update(open, id, input),
            (Route::Agent(id), "DELETE") => definitions::delete(open, id),
            _ => Err(unmatched()),
        }
        .map(Reply::Full)
    }
}

/// `/api/runtime/...`, `/api/approvals/...` and the runners' `/api/runner/...`.
#[derive(Debug, Clone, Copy)]
pub struct Runtime;

impl RouteGroup for Runtime {
    type Stream<C: Connector + Clone> = NoStream;

    fn serves(self, route: &Route) -> bool {
        route.group() == Group::Runtime
    }

    fn dispatch<C: Connector + Clone>(
        self,
        route: &Route,
        connector: &C,
        config: &Config,
        req: &Request,
        input: &Input,
    ) -> Result<Reply<NoStream>, ApiError> {
        if *route == Route::RunnerClaim {
            // A long-poll: it opens its own connections between waits.
            return runner::claim(connector, config, input).map(Reply::Full);
        }
        let open = || crate::migrations::open(connector).map_err(ApiError::from);
        match (route, req.method.as_str()) {
            (Route::Runs, "GET") => runs::list(open, input),
            (Route::Runs, "POST") => runs::create(open, input),
            (Route::Run(id), "GET") => runs::get(open, id),
            (Route::Run(id), "PATCH") => runs::update(open, id, input),
            (Route::Run(id), "DELETE") => runs::delete(open, id),
            (Route::Prompts, "GET") => prompts::list(open, input),
            (Route::Prompts, "POST") => prompts::create(open, input),
            (Route::Prompt(id), "GET") => prompts::get(open, id),
            (Route::Prompt(id), "PATCH") => prompts::update(open, id, input),
            (Route::Logs, "GET") => logs::list(open, input),
            (Route::Logs, "POST") => logs::create(open, input),
            (Route::Stats, "GET") => runs::stats(open),
            (Route::Approvals, "GET") => approvals::list(open, input),
            (Route::Approval(id), "GET") => approvals::get(open, id),
            (Route::ApprovalDecision(id), "POST") => approvals::decide(open, id, input),
            (Route::RunMessages(id), "POST") => approvals::follow_up(open, id, input),
            (Route::Sessions, "GET") => sessions::list(open, input),
            (Route::Session(id), "GET") => sessions::get(open, id),
            (Route::RunnerHeartbeat(id), "POST") => runner::heartbeat(open, config, id, input),
            (Route::RunnerOutput(id), "POST") => runner::output(open, config, id, input),
            (Route::RunnerExit(id), "POST") => runner::exit(open, id, input),
            _ => Err(unmatched()),
        }
        .map(Reply::Full)
    }
}

/// `/api/events`, `/api/events/...`: the live status feed, the one group that streams.
#[derive(Debug, Clone, Copy)]
pub struct Events;

impl RouteGroup for Events {
    type Stream<C: Connector + Clone> = events::EventStream<C>;

    fn serves(self, route: &Route) -> bool {
        route.group() == Group::Events
    }

    fn dispatch<C: Connector + Clone>(
        self,
        route: &Route,
        connector: &C,
        config: &Config,
        req: &Request,
        input: &Input,
    ) -> Result<Reply<events::EventStream<C>>, ApiError> {
        match route {
            Route::EventsStream => {
                let (head, stream) = events::stream(connector, config, req, input)?;
                Ok(Reply::Stream(head, stream))
            }
            Route::Events => events::poll(connector, input).map(Reply::Full),
            Route::EventsSnapshot => events::snapshot(connector).map(Reply::Full),
            _ => Err(unmatched()),
        }
    }
}

/// `/health`, `/openapi.json`, `/api/admin/prune`, and (through Spin's catch-all) the 404
/// of every unknown path.
#[derive(Debug, Clone, Copy)]
pub struct Meta;

impl RouteGroup for Meta {
    type Stream<C: Connector + Clone> = NoStream;

    fn serves(self, route: &Route) -> bool {
        route.group() == Group::Meta
    }

    fn dispatch<C: Connector + Clone>(
        self,
        route: &Route,
        connector: &C,
        config: &Config,
        _req: &Request,
        input: &Input,
    ) -> Result<Reply<NoStream>, ApiError> {
        match route {
            Route::Health => meta::health(connector),
            Route::OpenApi => Ok(meta::openapi()),
            Route::AdminPrune => admin::prune(connector, config, input),
            _ => Err(unmatched()),
        }
        .map(Reply::Full)
    }
}

/// `/api/ingest/...` (Claude Code hooks) and OTLP's `/v1/...`: what agents report without
/// code. The OTLP decoders (protobuf, gzip) live only in this group's component.
#[derive(Debug, Clone, Copy)]
pub struct Ingest;

impl RouteGroup for Ingest {
    type Stream<C: Connector + Clone> = NoStream;

    fn serves(self, route: &Route) -> bool {
        route.group() == Group::Ingest
    }

    fn dispatch<C: Connector + Clone>(
        self,
        route: &Route,
        connector: &C,
        config: &Config,
        req: &Request,
        input: &Input,
    ) -> Result<Reply<NoStream>, ApiError> {
        use crate::ingest::otlp::Signal;
        let open = || crate::migrations::open(connector).map_err(ApiError::from);
        let signal = match route {
            Route::OtlpLogs => Signal::Logs,
            Route::OtlpTraces => Signal::Traces,
            Route::OtlpMetrics => Signal::Metrics,
            Route::IngestClaudeCode => {
                return crate::ingest::claude_code(
                    &open,
                    // A held hook's checks are single reads: no connection pragmas needed.
                    &|| connector.connect().map_err(ApiError::from),
                    config,
                    req,
                    &input.query,
                    input.body()?,
                )
                .map(Reply::Full);
            }
            _ => return Err(unmatched()),
        };
        crate::ingest::otlp_export(signal, open, config, req).map(Reply::Full)
    }
}

/// Every route, for a process that serves them all (the native server, the tests, the
/// bench): the value picks the group, each group's own dispatch answers.
impl RouteGroup for Group {
    type Stream<C: Connector + Clone> = events::EventStream<C>;

    fn serves(self, route: &Route) -> bool {
        route.group() == self
    }

    fn dispatch<C: Connector + Clone>(
        self,
        route: &Route,
        connector: &C,
        config: &Config,
        req: &Request,
        input: &Input,
    ) -> Result<Reply<events::EventStream<C>>, ApiError> {
        Ok(match self {
            Group::Agents => Agents
                .dispatch(route, connector, config, req, input)?
                .widen(),
            Group::Runtime => Runtime
                .dispatch(route, connector, config, req, input)?
                .widen(),
            Group::Events => Events.dispatch(route, connector, config, req, input)?,
            Group::Meta => Meta.dispatch(route, connector, config, req, input)?.widen(),
            Group::Ingest => Ingest
                .dispatch(route, connector, config, req, input)?
                .widen(),
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::db::native::MemoryConnector;

    /// Requests whose answers do not depend on what came before: reads of an empty
    /// database, and every kind of refusal (wrong group, wrong method, bad body, OTLP's
    /// error shapes, unknown paths, preflights).
    fn requests() -> Vec<Request> {
        let id = "00000000-0000-0000-0000-000000000000";
        let mut requests = vec![Request::new("OPTIONS", "/api/agents")];
        for path in [
            "/api/agents".to_owned(),
            format!("/api/agents/{id}"),
            "/api/runtime/agents?limit=5".to_owned(),
            format!("/api/runtime/agents/{id}"),
            "/api/runtime/prompts".to_owned(),
            "/api/runtime/logs?limit=0".to_owned(),
            "/api/runtime/stats".to_owned(),
            "/api/runtime/sessions".to_owned(),
            "/api/approvals".to_owned(),
            format!("/api/approvals/{id}"),
            "/api/events?wait=0".to_owned(),
            "/api/events/snapshot".to_owned(),
            "/api/runner/claim".to_owned(),
            "/api/ingest/claude-code".to_owned(),
            "/api/admin/prune".to_owned(),
            "/health".to_owned(),
            "/openapi.json".to_owned(),
            "/v1/logs".to_owned(),
            "/v1/nothing".to_owned(),
            "/api/nothing".to_owned(),
            "/".to_owned(),
        ] {
            requests.push(Request::new("GET", &path));
            requests.push(Request::new("DELETE", &path));
            let mut post = Request::new("POST", &path).with_header("content-type", "text/plain");
            post.body = b"{}".to_vec();
            requests.push(post);
        }
        for path in ["/api/events/stream", "/v1/traces", "/v1/metrics"] {
            requests.push(Request::new("PUT", path));
            requests.push(
                Request::new("GET", path).with_header("content-type", "application/x-protobuf"),
            );
        }
        requests
    }

    fn answers_like<G: RouteGroup>(group: G, as_enum: Group) {
        let connector = MemoryConnector::new().unwrap();
        crate::migrations::migrate(connector.db()).unwrap();
        // The feed's stream ends at once: its head and first chunk are enough to compare.
        let config = Config {
            sse_max_duration: std::time::Duration::ZERO,
            ..Config::default()
        };
        for req in requests() {
            assert_eq!(
                super::super::handle(group, &connector, &config, &req),
                super::super::handle(as_enum, &connector, &config, &req),
                "{} {} on {as_enum:?}",
                req.method,
                req.path
            );
        }
    }

    #[test]
    fn each_group_type_answers_exactly_as_its_group_does() {
        answers_like(Agents, Group::Agents);
        answers_like(Runtime, Group::Runtime);
        answers_like(Events, Group::Events);
        answers_like(Meta, Group::Meta);
        answers_like(Ingest, Group::Ingest);
    }
}
