//! The contract, route by route, through [`handle`](super::handle) on an in-memory
//! database: what a client sends and what it gets back.

mod claude_code;
mod cross_cutting;
mod definitions;
mod direct_writers;
mod dispatch;
mod events;
mod ingest;
mod logs;
mod otlp;
mod prompts;
mod retention;
mod run_display;
mod runs;
mod sessions;
mod steering;
mod transient;

use serde_json::{json, Value as Json};

use crate::db::native::MemoryConnector;
use crate::db::Database;
use crate::http::{Config, Group, Request, Response, Route};

/// One app on one in-memory database; requests go to the group Spin would route them to.
pub struct App {
    pub connector: MemoryConnector,
    pub config: Config,
}

impl App {
    pub fn new() -> Self {
        Self::with_config(Config::default())
    }

    pub fn with_config(config: Config) -> Self {
        let connector = MemoryConnector::new().unwrap();
        crate::migrations::migrate(connector.db()).unwrap();
        App { connector, config }
    }

    pub fn send(&self, req: Request) -> Response {
        let group = Route::resolve(&req.path).map_or(Group::Meta, |r| r.group());
        super::handle(group, &self.connector, &self.config, &req)
    }

    pub fn get(&self, path: &str) -> Response {
        self.send(Request::new("GET", path))
    }

    pub fn delete(&self, path: &str) -> Response {
        self.send(Request::new("DELETE", path))
    }

    pub fn post(&self, path: &str, body: Json) -> Response {
        self.send(Request::new("POST", path).with_json(&body))
    }

    pub fn put(&self, path: &str, body: Json) -> Response {
        self.send(Request::new("PUT", path).with_json(&body))
    }

    pub fn patch(&self, path: &str, body: Json) -> Response {
        self.send(Request::new("PATCH", path).with_json(&body))
    }

    /// Create a definition and return its JSON.
    pub fn definition(&self, name: &str) -> Json {
        let r = self.post(
            "/api/agents",
            json!({ "name": name, "agent_type": "builder" }),
        );
        assert_eq!(r.status, 201, "{:?}", r.json_body());
        r.json_body()
    }

    /// Create a run of a new definition and return its JSON.
    pub fn run(&self) -> Json {
        let def = self.definition(&format!("def-{}", uuid::Uuid::new_v4()));
        let r = self.post(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def["id"], "session_id": "s1" }),
        );
        assert_eq!(r.status, 201, "{:?}", r.json_body());
        r.json_body()
    }

    /// A single integer from SQL.
    pub fn count(&self, sql: &str) -> i64 {
        self.connector
            .db()
            .execute(sql, &[])
            .unwrap()
            .first()
            .unwrap()
            .int(0)
            .unwrap()
    }

    /// Every user row of every table, to prove a rejected request changed nothing.
    pub fn dump(&self) -> Vec<crate::db::Rows> {
        [
            "orchestrator_agents",
            "agents",
            "prompts",
            "agent_logs",
            "system_logs",
        ]
        .iter()
        .map(|t| {
            self.connector
                .db()
                .execute(&format!("SELECT * FROM {t} ORDER BY 1"), &[])
                .unwrap()
        })
        .collect()
    }
}

/// Assert an error response: status, code and (for 422) the field.
#[track_caller]
pub fn assert_error(r: &Response, status: u16, code: &str) {
    let body = r.json_body();
    assert_eq!(r.status, status, "body: {body}");
    assert_eq!(body["error"]["code"], code, "body: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[track_caller]
pub fn assert_invalid(r: &Response, field: &str) {
    assert_error(r, 422, "validation_failed");
    assert_eq!(r.json_body()["error"]["details"]["field"], field);
}
