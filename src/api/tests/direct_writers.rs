//! Rows another program wrote straight into the file: every shape the schema admits is
//! served, and one row the API cannot represent costs that row only.

use serde_json::{json, Value as Json};

use super::{assert_error, App};
use crate::db::{Database, Value};

impl App {
    /// Run SQL as another program would (no API, no validation).
    fn write_directly(&self, sql: &str, params: &[Value]) {
        self.connector.db().execute(sql, params).unwrap();
    }

    fn state_change_directly(&self, agent_id: &str, details: Option<&str>) -> i64 {
        let mut rows = self
            .connector
            .db()
            .execute(
                "INSERT INTO agent_logs (agent_id, log_type, message, details, created_at) \
                 VALUES (?1, 'state_change', 'by a script', ?2, datetime('now')) RETURNING id",
                &[agent_id.into(), details.map(str::to_owned).into()],
            )
            .unwrap();
        rows.first().unwrap().int(0).unwrap()
    }

    /// Every read endpoint answers 200.
    #[track_caller]
    fn every_read_answers_200(&self) {
        for path in [
            "/api/agents",
            "/api/runtime/agents",
            "/api/runtime/prompts",
            "/api/runtime/logs",
            "/api/runtime/stats",
            "/api/events",
            "/api/events/snapshot",
        ] {
            let r = self.get(path);
            assert_eq!(r.status, 200, "{path}: {}", r.json_body());
        }
    }
}

fn id(v: &Json) -> &str {
    v["id"].as_str().unwrap()
}

#[test]
fn state_change_rows_without_a_run_are_delivered_with_the_run_as_it_is_now() {
    let app = App::new();
    let run = app.run();
    let start = app.get("/api/events").json_body()["cursor"]
        .as_i64()
        .unwrap();
    let odd = [
        None,
        Some("5"),
        Some("\"text\""),
        Some("[1, 2]"),
        Some("{\"run\": 5}"),
        Some("{\"run\": \"x\"}"),
        Some("{\"from\": null}"),
        Some("{\"run\": {\"id\": \"someone-else\"}}"),
    ];
    let cursors: Vec<i64> = odd
        .iter()
        .map(|details| app.state_change_directly(id(&run), *details))
        .collect();
    app.every_read_answers_200();
    let feed = app.get(&format!("/api/events?after={start}")).json_body();
    let events = feed["events"].as_array().unwrap();
    let mut now = app
        .get(&format!("/api/runtime/agents/{}", id(&run)))
        .json_body();
    // A single run's GET adds its tree's roll-up; the feed's runs carry none.
    now.as_object_mut().unwrap().remove("tree");
    assert_eq!(events.len(), odd.len(), "{feed}");
    for (event, cursor) in events.iter().zip(&cursors) {
        assert_eq!(event["cursor"], *cursor);
        assert_eq!(event["type"], "agent_update");
        assert_eq!(event["data"], now);
    }
    // The next change through the API still comes through, after them.
    let path = format!("/api/runtime/agents/{}", id(&run));
    app.patch(&path, json!({ "status": "planning" }));
    let next = app
        .get(&format!("/api/events?after={}", feed["cursor"]))
        .json_body();
    assert_eq!(next["events"][0]["data"]["status"], "planning");
    assert!(next["cursor"].as_i64().unwrap() > *cursors.last().unwrap());
}

#[test]
fn a_state_change_row_of_a_run_that_is_gone_is_skipped_and_the_cursor_moves_past_it() {
    let app = App::new();
    let run = app.run();
    let start = app.get("/api/events").json_body()["cursor"]
        .as_i64()
        .unwrap();
    // Foreign keys are per connection: a script that never turns them on can leave a
    // state_change row behind its run.
    app.write_directly("PRAGMA foreign_keys = OFF", &[]);
    let orphan = app.state_change_directly("6f1c2f3e-0000-4000-8000-000000000000", None);
    let not_an_id = app.state_change_directly("not-a-uuid-but-36-characters-long!!!", None);
    app.write_directly("PRAGMA foreign_keys = ON", &[]);
    let feed = app.get(&format!("/api/events?after={start}")).json_body();
    assert_eq!(feed, json!({ "cursor": not_an_id, "events": [] }));
    assert!(not_an_id > orphan);
    // A long-poll waiting behind skipped rows still answers with the next real event.
    app.patch(
        &format!("/api/runtime/agents/{}", id(&run)),
        json!({ "status": "executing" }),
    );
    let feed = app
        .get(&format!("/api/events?after={start}&wait=1"))
        .json_body();
    assert_eq!(feed["events"].as_array().unwrap().len(), 1, "{feed}");
    assert_eq!(feed["events"][0]["data"]["status"], "executing");
}

#[test]
fn sqlite_datetime_now_times_are_returned_as_rfc3339_with_milliseconds() {
    let app = App::new();
    let run = app.run();
    let def_id = run["orchestrator_agent_id"].as_str().unwrap().to_owned();
    let t = "2026-11-25 16:37:48";
    let rfc = "2026-11-25T16:37:48.000Z";
    app.write_directly(
        "UPDATE orchestrator_agents SET created_at = ?1, updated_at = ?1 WHERE id = ?2",
        &[t.into(), def_id.as_str().into()],
    );
    app.write_directly(
        "UPDATE agents SET started_at = ?1 WHERE id = ?2",
        &[t.into(), id(&run).into()],
    );
    app.write_directly(
        "INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, created_at, completed_at) \
         VALUES ('0d6b1b32-2f0f-4a57-9d4e-2c9f0c6a0c11', ?1, 'command', 'ls', ?2, ?2)",
        &[id(&run).into(), t.into()],
    );
    app.write_directly(
        "INSERT INTO system_logs (component, message, created_at) VALUES ('adw', 'hi', ?1)",
        &[t.into()],
    );
    let def = app.get(&format!("/api/agents/{def_id}")).json_body();
    assert_eq!(
        (&def["created_at"], &def["updated_at"]),
        (&json!(rfc), &json!(rfc))
    );
    let got = app
        .get(&format!("/api/runtime/agents/{}", id(&run)))
        .json_body();
    assert_eq!(got["started_at"], rfc);
    let prompt = app
        .get("/api/runtime/prompts/0d6b1b32-2f0f-4a57-9d4e-2c9f0c6a0c11")
        .json_body();
    assert_eq!(
        (&prompt["created_at"], &prompt["completed_at"]),
        (&json!(rfc), &json!(rfc))
    );
    let logs = app.get("/api/runtime/logs?source=system").json_body();
    assert_eq!(logs[0]["created_at"], rfc);
    // The session's times too, when the script wrote the run's activity time itself.
    app.write_directly(
        "UPDATE agents SET last_activity_at = ?1 WHERE id = ?2",
        &[t.into(), id(&run).into()],
    );
    let session = run["session_id"].as_str().unwrap();
    let listed = &app.get("/api/runtime/sessions").json_body()[0];
    let detail = app
        .get(&format!("/api/runtime/sessions/{session}"))
        .json_body();
    for s in [listed, &detail] {
        assert_eq!(
            (&s["started_at"], &s["last_activity_at"]),
            (&json!(rfc), &json!(rfc)),
            "{s}"
        );
    }
    assert_eq!(detail["runs"][0]["last_activity_at"], rfc);
    app.every_read_answers_200();
}

#[test]
fn json_columns_holding_any_valid_json_are_served_as_json_values() {
    let app = App::new();
    let run = app.run();
    app.write_directly(
        "UPDATE agents SET context = '[1, \"two\"]', config = '\"text\"' WHERE id = ?1",
        &[id(&run).into()],
    );
    app.write_directly(
        "UPDATE orchestrator_agents SET capabilities = '[1, {\"a\": null}]' WHERE id = ?1",
        &[run["orchestrator_agent_id"].as_str().unwrap().into()],
    );
    app.write_directly(
        "INSERT INTO agent_logs (agent_id, log_type, message, details, created_at) \
         VALUES (?1, 'milestone', 'm', '42', datetime('now'))",
        &[id(&run).into()],
    );
    let got = app
        .get(&format!("/api/runtime/agents/{}", id(&run)))
        .json_body();
    assert_eq!(got["context"], json!([1, "two"]));
    assert_eq!(got["config"], json!("text"));
    let def = app
        .get(&format!(
            "/api/agents/{}",
            run["orchestrator_agent_id"].as_str().unwrap()
        ))
        .json_body();
    assert_eq!(def["capabilities"], json!([1, { "a": null }]));
    let logs = app.get("/api/runtime/logs?log_type=milestone").json_body();
    assert_eq!(logs[0]["details"], json!(42));
    // What the schema refuses is refused by SQLite, to that writer.
    let refused = app.connector.db().execute(
        "UPDATE orchestrator_agents SET capabilities = '{\"a\": 1}'",
        &[],
    );
    assert!(refused.is_err());
    app.every_read_answers_200();
}

#[test]
fn a_blob_in_a_text_column_reads_as_its_text() {
    let app = App::new();
    let def = app.definition("blobby");
    app.write_directly(
        "UPDATE orchestrator_agents SET description = CAST('from a script' AS BLOB), \
         capabilities = CAST('[\"x\"]' AS BLOB) WHERE id = ?1",
        &[id(&def).into()],
    );
    let got = app.get(&format!("/api/agents/{}", id(&def))).json_body();
    assert_eq!(got["description"], "from a script");
    assert_eq!(got["capabilities"], json!(["x"]));
}

#[test]
fn an_unreadable_row_costs_only_that_row_and_is_logged_once_with_its_id() {
    let app = App::new();
    let run = app.run();
    let good = app
        .post(
            "/api/runtime/prompts",
            json!({ "agent_id": run["id"], "prompt_type": "command", "prompt_text": "ok" }),
        )
        .json_body();
    let bad = "5c0b9f5e-1b7e-4b8e-a7a4-7c3f25f0e001";
    // `'abc' >= 0` is true in SQLite (text sorts after numbers), so the CHECK admits it.
    app.write_directly(
        "INSERT INTO prompts (id, agent_id, prompt_type, prompt_text, cost_usd, created_at) \
         VALUES (?1, ?2, 'command', 'odd', 'abc', datetime('now'))",
        &[bad.into(), id(&run).into()],
    );
    for _ in 0..2 {
        let list = app.get("/api/runtime/prompts");
        assert_eq!(list.status, 200);
        assert_eq!(list.json_body(), json!([good]));
    }
    assert_error(
        &app.get(&format!("/api/runtime/prompts/{bad}")),
        404,
        "not_found",
    );
    app.every_read_answers_200();
    let reports = app
        .get("/api/runtime/logs?source=system")
        .json_body()
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["component"], "api");
    assert_eq!(reports[0]["log_level"], "WARNING");
    assert_eq!(reports[0]["details"]["table"], "prompts");
    assert_eq!(reports[0]["details"]["id"], bad);
}

#[test]
fn an_unreadable_run_is_left_out_of_lists_and_the_snapshot_but_the_feed_flows() {
    let app = App::new();
    let good = app.run();
    let bad = app.run();
    // An infinite cost passes `CHECK (cost_usd >= 0)` and has no JSON form.
    app.write_directly(
        "UPDATE agents SET cost_usd = 1e999 WHERE id = ?1",
        &[id(&bad).into()],
    );
    let list = app.get("/api/runtime/agents").json_body();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(id).collect();
    assert_eq!(ids, [id(&good)]);
    let snapshot = app.get("/api/events/snapshot").json_body();
    assert_eq!(snapshot["data"].as_array().unwrap().len(), 1);
    // Its events carry the run as it was written then, so they still flow; a NULL-details
    // row of it, which would need the run as it is now, is skipped.
    let before = app.get("/api/events").json_body()["cursor"]
        .as_i64()
        .unwrap();
    let skipped = app.state_change_directly(id(&bad), None);
    app.patch(
        &format!("/api/runtime/agents/{}", id(&good)),
        json!({ "status": "planning" }),
    );
    let feed = app.get(&format!("/api/events?after={before}")).json_body();
    let events = feed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{feed}");
    assert!(events[0]["cursor"].as_i64().unwrap() > skipped);
    app.every_read_answers_200();
}

#[test]
fn a_definition_renamed_behind_the_apis_back_shows_in_its_runs_and_the_feed_flows() {
    let app = App::new();
    let run = app.run();
    app.write_directly(
        "UPDATE orchestrator_agents SET name = 'renamed', agent_type = 'tester' WHERE id = ?1",
        &[run["orchestrator_agent_id"].as_str().unwrap().into()],
    );
    let got = app
        .get(&format!("/api/runtime/agents/{}", id(&run)))
        .json_body();
    assert_eq!(got["agent_name"], "renamed");
    assert_eq!(got["agent_type"], "tester");
    let before = app.get("/api/events").json_body()["cursor"]
        .as_i64()
        .unwrap();
    app.patch(
        &format!("/api/runtime/agents/{}", id(&run)),
        json!({ "status": "planning" }),
    );
    let feed = app.get(&format!("/api/events?after={before}")).json_body();
    assert_eq!(feed["events"][0]["data"]["agent_name"], "renamed");
    app.every_read_answers_200();
}
