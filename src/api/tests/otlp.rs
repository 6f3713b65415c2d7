//! OTLP/HTTP (`/v1/traces`, `/v1/logs`, `/v1/metrics`) in protobuf and JSON, gzip or not:
//! GenAI spans mapped onto runs, prompts and tool-call logs; OTLP's answers and errors.
//! Over 600 lines on purpose: the span and record builders are shared by every case.

use std::io::Write;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{json, Value as Json};

use super::{assert_error, App};
use crate::http::{Config, Request, Response};
use crate::ingest::otlp::Status as RpcStatus;

const TRACE: [u8; 16] = [7; 16];

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn double(key: &str, value: f64) -> KeyValue {
    kv(key, any_value::Value::DoubleValue(value))
}

fn id(n: u8) -> Vec<u8> {
    vec![0, 0, 0, 0, 0, 0, 0, n]
}

/// A span of `TRACE` that started at 1 s and lasted `ms`.
fn span(n: u8, parent: Option<u8>, name: &str, ms: u64, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: id(n),
        parent_span_id: parent.map(id).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + ms * 1_000_000,
        attributes,
        ..Default::default()
    }
}

fn failed(mut span: Span, message: &str) -> Span {
    span.status = Some(Status {
        message: message.into(),
        code: status::StatusCode::Error as i32,
    });
    span
}

fn export(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "research-app")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A conversation's agent at work: a researcher that chats, calls a tool that runs a
/// coder subagent whose own model call fails. Listed children first, as a batching
/// exporter sends them (spans are exported when they end).
fn agent_batch(conversation: &str) -> Vec<Span> {
    let conv = || text("gen_ai.conversation.id", conversation);
    vec![
        failed(
            span(
                5,
                Some(4),
                "chat claude-haiku",
                40,
                vec![
                    text("gen_ai.operation.name", "chat"),
                    text("gen_ai.request.model", "claude-haiku"),
                    int("gen_ai.usage.input_tokens", 10),
                    conv(),
                ],
            ),
            "rate limited",
        ),
        span(
            4,
            Some(3),
            "invoke_agent coder",
            60,
            vec![
                text("gen_ai.operation.name", "invoke_agent"),
                text("gen_ai.agent.name", "coder"),
                conv(),
            ],
        ),
        span(
            3,
            Some(1),
            "execute_tool delegate",
            80,
            vec![
                text("gen_ai.operation.name", "execute_tool"),
                text("gen_ai.tool.name", "delegate"),
                text("gen_ai.tool.call.id", "call_1"),
                text("gen_ai.tool.call.arguments", "{\"task\":\"write it\"}"),
                conv(),
            ],
        ),
        span(
            2,
            Some(1),
            "chat claude-sonnet",
            250,
            vec![
                text("gen_ai.operation.name", "chat"),
                text("gen_ai.request.model", "claude-sonnet"),
                int("gen_ai.usage.input_tokens", 1200),
                int("gen_ai.usage.output_tokens", 300),
                double("gen_ai.usage.cost", 0.0125),
                conv(),
            ],
        ),
        span(
            1,
            None,
            "invoke_agent researcher",
            400,
            vec![
                text("gen_ai.operation.name", "invoke_agent"),
                text("gen_ai.agent.name", "researcher"),
                conv(),
            ],
        ),
    ]
}

fn protobuf(path: &str, body: Vec<u8>) -> Request {
    let mut req = Request::new("POST", path).with_header("content-type", "application/x-protobuf");
    req.body = body;
    req
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn send_traces(app: &App, spans: Vec<Span>) -> ExportTraceServiceResponse {
    let r = app.send(protobuf("/v1/traces", export(spans).encode_to_vec()));
    assert_eq!(r.status, 200, "{:?}", status_of(&r));
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    ExportTraceServiceResponse::decode(r.body.as_slice()).unwrap()
}

fn status_of(r: &Response) -> RpcStatus {
    RpcStatus::decode(r.body.as_slice()).unwrap_or_default()
}

fn get(app: &App, path: &str) -> Vec<Json> {
    app.get(path).json_body().as_array().unwrap().clone()
}

/// What the spans became, independent of ids and times: each run of the session with its
/// definition, parent's definition, status, prompts and tool calls.
fn shape(app: &App, session: &str) -> Json {
    let runs = get(app, &format!("/api/runtime/agents?session_id={session}"));
    let name_of = |id: &Json| {
        runs.iter()
            .find(|r| &r["id"] == id)
            .map(|r| r["agent_name"].clone())
            .unwrap_or(Json::Null)
    };
    let mut out: Vec<Json> = runs
        .iter()
        .map(|run| {
            let id = run["id"].as_str().unwrap();
            let prompts: Vec<Json> = get(app, &format!("/api/runtime/prompts?agent_id={id}"))
                .iter()
                .map(|p| {
                    json!([
                        p["prompt_name"],
                        p["status"],
                        p["model_used"],
                        p["tokens_input"],
                        p["tokens_output"],
                        p["latency_ms"],
                        p["error_message"]
                    ])
                })
                .collect();
            let tools: Vec<Json> = get(
                app,
                &format!("/api/runtime/logs?agent_id={id}&log_type=tool_call"),
            )
            .iter()
            .map(|l| json!([l["message"], l["details"]["tool_call_id"]]))
            .collect();
            json!({"agent": run["agent_name"], "parent": name_of(&run["parent_agent_id"]),
                   "status": run["status"], "cost": run["cost_usd"], "prompts": prompts,
                   "tools": tools})
        })
        .collect();
    out.sort_by_key(|r| r["agent"].to_string());
    Json::Array(out)
}

#[test]
fn genai_spans_in_protobuf_become_runs_prompts_and_tool_calls() {
    let app = App::new();
    let response = send_traces(&app, agent_batch("conv-1"));
    assert_eq!(
        response.partial_success, None,
        "full success leaves it unset"
    );
    assert_eq!(
        shape(&app, "conv-1"),
        json!([
            {"agent": "coder", "parent": "researcher", "status": "completed", "cost": 0.0,
             "prompts": [["chat claude-haiku", "failed", "claude-haiku", 10, 0, 40, "rate limited"]],
             "tools": []},
            // A conversation's run waits for its next turn, as after a Claude Code Stop.
            {"agent": "researcher", "parent": null, "status": "reviewing", "cost": 0.0125,
             "prompts": [["chat claude-sonnet", "completed", "claude-sonnet", 1200, 300, 250, null]],
             "tools": [["delegate", "call_1"]]},
        ])
    );
    // The same batch again (an exporter's retry) changes nothing: no row, no event.
    let rows = app.dump();
    send_traces(&app, agent_batch("conv-1"));
    assert_eq!(app.dump(), rows);
}

#[test]
fn a_batch_lands_the_same_whatever_its_order() {
    let children_first = App::new();
    send_traces(&children_first, agent_batch("conv-2"));
    let parents_first = App::new();
    let mut reversed = agent_batch("conv-2");
    reversed.reverse();
    send_traces(&parents_first, reversed);
    assert_eq!(
        shape(&children_first, "conv-2"),
        shape(&parents_first, "conv-2")
    );
    // The feed shows the subagent's run start and end (and, between, its cost arriving:
    // events that carry the same status).
    let feed = parents_first.get("/api/events?after=0").json_body();
    let mut statuses: Vec<&str> = feed["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["agent_name"] == "coder")
        .map(|e| e["data"]["status"].as_str().unwrap())
        .collect();
    statuses.dedup();
    assert_eq!(statuses, ["initializing", "executing", "completed"]);
}

#[test]
fn an_agent_with_many_model_calls_moves_through_each_status_once() {
    // Six chats and tool calls under one agent span, in both orders: the run's feed has each
    // transition once, not once per child span.
    for parents_first in [false, true] {
        let app = App::new();
        let conv = || text("gen_ai.conversation.id", "conv-many");
        let mut spans: Vec<Span> = (2..8)
            .map(|n| {
                let op = if n % 2 == 0 { "chat" } else { "execute_tool" };
                span(
                    n,
                    Some(1),
                    op,
                    10,
                    vec![text("gen_ai.operation.name", op), conv()],
                )
            })
            .collect();
        spans.push(span(
            1,
            None,
            "invoke_agent planner",
            100,
            vec![
                text("gen_ai.operation.name", "invoke_agent"),
                text("gen_ai.agent.name", "planner"),
                conv(),
            ],
        ));
        if parents_first {
            spans.reverse();
        }
        send_traces(&app, spans);
        let feed = app.get("/api/events?after=0").json_body();
        let statuses: Vec<&str> = feed["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["data"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["initializing", "executing", "reviewing"],
            "parents first: {parents_first}"
        );
        let runs = get(&app, "/api/runtime/agents?session_id=conv-many");
        assert_eq!(runs.len(), 1);
        assert_eq!(
            get(
                &app,
                &format!(
                    "/api/runtime/prompts?agent_id={}",
                    runs[0]["id"].as_str().unwrap()
                )
            )
            .len(),
            3
        );
    }
}

#[test]
fn spans_exported_before_their_agent_span_land_on_the_session_run() {
    let app = App::new();
    let mut batch = agent_batch("conv-3");
    let agent = batch.pop().unwrap();
    // Only the researcher's own chat comes first; the agent span ends in a later batch.
    send_traces(&app, vec![batch.remove(3)]);
    let runs = get(&app, "/api/runtime/agents?session_id=conv-3");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "executing");
    assert_eq!(
        runs[0]["agent_name"], "research-app",
        "no agent name yet: the service's"
    );
    send_traces(&app, vec![agent]);
    let runs = get(&app, "/api/runtime/agents?session_id=conv-3");
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "reviewing");
    assert!((runs[0]["cost_usd"].as_f64().unwrap() - 0.0125).abs() < 1e-9);
}

#[test]
fn an_agent_span_without_a_conversation_is_its_trace_and_completes_it() {
    let app = App::new();
    let agent = failed(
        span(
            1,
            None,
            "invoke_agent solo",
            5,
            vec![text("gen_ai.operation.name", "invoke_agent")],
        ),
        "tool loop",
    );
    send_traces(&app, vec![agent]);
    // The trace id as OTLP/JSON writes it: lower-case hex.
    let session = "07".repeat(16);
    let runs = get(&app, &format!("/api/runtime/agents?session_id={session}"));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["error_message"], "tool loop");
    assert_eq!(runs[0]["agent_name"], "research-app");
    // Spans that are not GenAI are accepted and ignored.
    let rows = app.dump();
    let http = span(
        9,
        None,
        "GET /",
        1,
        vec![text("http.request.method", "GET")],
    );
    assert_eq!(send_traces(&app, vec![http]).partial_success, None);
    assert_eq!(app.dump(), rows);
}

#[test]
fn genai_spans_join_the_claude_code_hooks_run_of_their_session() {
    let app = App::new();
    let hook = json!({"session_id": "cc-1", "hook_event_name": "UserPromptSubmit",
                      "prompt": "fix it", "cwd": "/p", "transcript_path": "/p/t.jsonl"});
    assert_eq!(app.post("/api/ingest/claude-code", hook).status, 200);
    let chat = span(
        2,
        None,
        "chat claude-opus",
        30,
        vec![
            text("gen_ai.operation.name", "chat"),
            text("session.id", "cc-1"),
            int("gen_ai.usage.output_tokens", 7),
        ],
    );
    send_traces(&app, vec![chat]);
    let runs = get(&app, "/api/runtime/agents?session_id=cc-1");
    assert_eq!(runs.len(), 1, "one session, one run: {runs:?}");
    assert_eq!(runs[0]["agent_name"], "claude-code");
    assert_eq!(runs[0]["status"], "executing");
    assert_eq!(runs[0]["tokens_output"], 7);
}

#[test]
fn a_partly_unusable_batch_stores_what_it_can_and_reports_the_rest() {
    let app = App::new();
    let mut broken = span(
        3,
        None,
        "chat x",
        1,
        vec![text("gen_ai.operation.name", "chat")],
    );
    broken.trace_id = vec![1, 2, 3];
    let good = span(
        4,
        None,
        "chat y",
        1,
        vec![
            text("gen_ai.operation.name", "chat"),
            text("gen_ai.conversation.id", "part"),
        ],
    );
    let response = send_traces(&app, vec![broken, good]);
    let partial = response.partial_success.expect("partial_success is set");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("trace_id"),
        "{}",
        partial.error_message
    );
    let runs = get(&app, "/api/runtime/agents?session_id=part");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        get(
            &app,
            &format!(
                "/api/runtime/prompts?agent_id={}",
                runs[0]["id"].as_str().unwrap()
            )
        )
        .len(),
        1
    );
}

#[test]
fn otlp_json_traces_use_hex_ids_and_get_a_json_answer() {
    let app = App::new();
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "execute_tool grep", "startTimeUnixNano": "1000000000",
        "endTimeUnixNano": "1002000000", "kind": 1,
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                       {"key": "gen_ai.conversation.id", "value": {"stringValue": "js"}}]}]}]}]});
    let r = app.post("/v1/traces", body.clone());
    assert_eq!(r.status, 200, "{}", r.json_body());
    assert_eq!(r.json_body(), json!({}));
    let runs = get(&app, "/api/runtime/agents?session_id=js");
    let tools = get(
        &app,
        &format!(
            "/api/runtime/logs?agent_id={}&log_type=tool_call",
            runs[0]["id"].as_str().unwrap()
        ),
    );
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["message"], "grep");
    assert_eq!(tools[0]["details"]["duration_ms"], 2);
    // The same span in protobuf is the same span: applied once.
    let rows = app.dump();
    let proto: ExportTraceServiceRequest = serde_json::from_value(body).unwrap();
    assert_eq!(
        app.send(protobuf("/v1/traces", proto.encode_to_vec()))
            .status,
        200
    );
    assert_eq!(app.dump(), rows);
}

#[test]
fn claude_code_logs_in_gzipped_protobuf_become_prompts() {
    let app = App::new();
    let record = LogRecord {
        event_name: "claude_code.api_request".into(),
        attributes: vec![
            text("session.id", "gz"),
            text("model", "claude-sonnet"),
            text("cost_usd", "0.02"),
            int("input_tokens", 5),
            int("output_tokens", 6),
            int("duration_ms", 70),
        ],
        ..Default::default()
    };
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let req = protobuf("/v1/logs", gzip(&request.encode_to_vec()))
        .with_header("content-encoding", "gzip");
    let r = app.send(req);
    assert_eq!(r.status, 200, "{:?}", status_of(&r));
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        ExportLogsServiceResponse::decode(r.body.as_slice())
            .unwrap()
            .partial_success,
        None
    );
    let runs = get(&app, "/api/runtime/agents?session_id=gz");
    assert!((runs[0]["cost_usd"].as_f64().unwrap() - 0.02).abs() < 1e-9);
    assert_eq!(runs[0]["tokens_input"], 5);
}

#[test]
fn rejected_otlp_requests_get_a_status_in_their_encoding_and_write_nothing() {
    let app = App::with_config(Config {
        max_body_bytes: 4096,
        api_token: Some("t0ken".into()),
        ..Config::default()
    });
    let before = app.dump();
    let auth = |req: Request| req.with_header("authorization", "Bearer t0ken");
    let valid = export(agent_batch("rejected")).encode_to_vec();

    let expect_status = |r: Response, status: u16, needle: &str| {
        assert_eq!(r.status, status);
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        let s = status_of(&r);
        assert!(
            s.message.contains(needle),
            "{:?} lacks {needle:?}",
            s.message
        );
        assert_ne!(s.code, 0);
    };
    expect_status(
        app.send(protobuf("/v1/traces", valid.clone())),
        401,
        "token",
    );
    // Malformed protobuf: a length that runs past the end.
    expect_status(
        app.send(auth(protobuf("/v1/traces", vec![0x0a, 0xff, 0x01]))),
        400,
        "protobuf",
    );
    expect_status(
        app.send(auth(protobuf("/v1/traces", vec![0; 5000]))),
        413,
        "4096",
    );
    // A small gzip body that inflates past the limit.
    let bomb =
        auth(protobuf("/v1/traces", gzip(&[0; 10_000]))).with_header("content-encoding", "gzip");
    expect_status(app.send(bomb), 413, "4096");
    let bad_gzip =
        auth(protobuf("/v1/logs", b"not gzip".to_vec())).with_header("content-encoding", "gzip");
    expect_status(app.send(bad_gzip), 400, "gzip");
    let brotli = auth(protobuf("/v1/traces", valid.clone())).with_header("content-encoding", "br");
    expect_status(app.send(brotli), 415, "br");
    expect_status(
        app.send(auth(
            Request::new("GET", "/v1/traces").with_header("content-type", "application/x-protobuf"),
        )),
        405,
        "POST",
    );

    // JSON clients get the API's error shape with the Status fields beside it.
    let r = app
        .send(auth(Request::new("POST", "/v1/traces")).with_json(&json!({"resourceSpans": "x"})));
    assert_error(&r, 400, "bad_request");
    assert_eq!(r.json_body()["code"], 3);
    assert!(r.json_body()["message"]
        .as_str()
        .unwrap()
        .contains("ExportTraceServiceRequest"));
    let mut text_body =
        auth(Request::new("POST", "/v1/metrics")).with_header("content-type", "text/plain");
    text_body.body = b"x".to_vec();
    assert_error(&app.send(text_body), 415, "unsupported_media_type");

    assert_eq!(app.dump(), before);
    // And the valid batch, with the token, goes in.
    assert_eq!(app.send(auth(protobuf("/v1/traces", valid))).status, 200);
    let runs = app.send(auth(Request::new(
        "GET",
        "/api/runtime/agents?session_id=rejected",
    )));
    assert_eq!(runs.json_body().as_array().map(Vec::len), Some(2));
}

#[test]
fn openapi_describes_the_otlp_routes_in_both_encodings() {
    let doc = App::new().get("/openapi.json").json_body();
    for path in ["/v1/logs", "/v1/traces", "/v1/metrics"] {
        let op = &doc["paths"][path]["post"];
        assert!(
            op["requestBody"]["content"]["application/x-protobuf"].is_object(),
            "{path}"
        );
        assert!(
            op["responses"]["415"]["content"]["application/x-protobuf"].is_object(),
            "{path}"
        );
    }
    assert!(doc["paths"]["/v1/traces"]["post"]["summary"]
        .as_str()
        .unwrap()
        .contains("invoke_agent"));
}

#[test]
fn a_cost_from_spans_reaches_the_feed_once_per_batch_with_the_ending_if_there_is_one() {
    let app = App::new();
    let mut batch = agent_batch("conv-9");
    let agent = batch.pop().unwrap();
    // A model call whose agent span comes later: the run's new cost is an event of its own.
    send_traces(&app, vec![batch.remove(3)]);
    let feed = app.get("/api/events?after=0").json_body();
    let events = feed["events"].as_array().unwrap();
    let last = events.last().unwrap();
    assert!(last["data"]["cost_usd"].as_f64().unwrap() > 0.0, "{feed}");
    let cursor = feed["cursor"].as_i64().unwrap();
    let runs = get(&app, "/api/runtime/agents?session_id=conv-9");
    let cost_events = |app: &App| {
        let id = runs[0]["id"].as_str().unwrap();
        get(
            app,
            &format!("/api/runtime/logs?agent_id={id}&log_type=cost_update"),
        )
        .len()
    };
    assert_eq!(cost_events(&app), 1);
    // The agent span ends the run: its state_change carries the cost, no second event.
    send_traces(&app, vec![agent]);
    let feed = app.get(&format!("/api/events?after={cursor}")).json_body();
    let events = feed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{feed}");
    assert_eq!(events[0]["data"]["status"], "reviewing");
    assert_eq!(cost_events(&app), 1);

    // A whole batch: every run that spent ends in it, so its ending carries the cost.
    let whole = App::new();
    send_traces(&whole, agent_batch("conv-10"));
    let runs = get(&whole, "/api/runtime/agents?session_id=conv-10");
    let feed = whole.get("/api/events?after=0&limit=1000").json_body();
    for run in &runs {
        let id = run["id"].as_str().unwrap();
        assert_eq!(
            get(
                &whole,
                &format!("/api/runtime/logs?agent_id={id}&log_type=cost_update")
            )
            .len(),
            0
        );
        let last = feed["events"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|e| e["data"]["id"] == run["id"])
            .unwrap();
        assert_eq!(last["data"]["cost_usd"], run["cost_usd"]);
    }
}
