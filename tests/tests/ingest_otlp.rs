//! OTLP/HTTP ingest through the real `ingest` component in the host: the official
//! OpenTelemetry SDK for Rust and its OTLP/HTTP exporter (protobuf, the default) send GenAI
//! spans and Claude Code's log records; the test reads what they became through the REST
//! API and the feed.

use std::time::Duration;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{Span as _, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use orchestrator_e2e::TestApp;
use serde_json::Value as Json;

const CONVERSATION: &str = "e2e-conversation";

fn providers(app: &TestApp) -> (SdkTracerProvider, SdkLoggerProvider) {
    let resource = Resource::builder().with_service_name("e2e-agents").build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(app.url("/v1/traces"))
        .with_timeout(Duration::from_secs(10))
        .build()
        .expect("span exporter");
    let logs = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(app.url("/v1/logs"))
        .with_timeout(Duration::from_secs(10))
        .build()
        .expect("log exporter");
    // The exporter's HTTP client runs on tokio, so its batches are sent from tokio too.
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_span_processor(BatchSpanProcessor::builder(spans, runtime::Tokio).build())
        .build();
    let logger_provider = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(BatchLogProcessor::builder(logs, runtime::Tokio).build())
        .build();
    (tracer_provider, logger_provider)
}

/// A planner agent that asks a model, then calls a tool that runs a coder subagent whose
/// model call fails; spans end (and so are exported) children first.
fn agent_session(provider: &SdkTracerProvider) {
    let tracer = provider.tracer("e2e-genai");
    let conversation = || KeyValue::new("gen_ai.conversation.id", CONVERSATION);
    let planner = tracer
        .span_builder("invoke_agent planner")
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", "planner"),
            conversation(),
        ])
        .start(&tracer);
    let planner_cx = Context::current_with_span(planner);

    let mut chat = tracer
        .span_builder("chat claude-sonnet")
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.request.model", "claude-sonnet"),
            KeyValue::new("gen_ai.usage.input_tokens", 100_i64),
            KeyValue::new("gen_ai.usage.output_tokens", 20_i64),
            KeyValue::new("gen_ai.usage.cost", 0.004),
            conversation(),
        ])
        .start_with_context(&tracer, &planner_cx);
    std::thread::sleep(Duration::from_millis(15));
    chat.end();

    let tool = tracer
        .span_builder("execute_tool delegate")
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", "delegate"),
            KeyValue::new("gen_ai.tool.call.id", "call_e2e"),
            conversation(),
        ])
        .start_with_context(&tracer, &planner_cx);
    let tool_cx = planner_cx.with_span(tool);
    let coder = tracer
        .span_builder("invoke_agent coder")
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", "coder"),
            conversation(),
        ])
        .start_with_context(&tracer, &tool_cx);
    let coder_cx = tool_cx.with_span(coder);
    let mut failing = tracer
        .span_builder("chat claude-haiku")
        .with_attributes(vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.request.model", "claude-haiku"),
            conversation(),
        ])
        .start_with_context(&tracer, &coder_cx);
    failing.set_status(Status::error("overloaded"));
    failing.end();
    coder_cx.span().end();
    tool_cx.span().end();
    planner_cx.span().end();
}

/// Claude Code's own events for the same session (its `session.id`).
fn claude_code_events(provider: &SdkLoggerProvider) {
    let logger = provider.logger("com.anthropic.claude_code.events");
    let mut record = logger.create_log_record();
    record.set_event_name("claude_code.api_request");
    record.set_body(AnyValue::from("claude_code.api_request"));
    record.add_attributes([
        ("event.name", AnyValue::from("api_request")),
        ("session.id", AnyValue::from(CONVERSATION)),
        ("model", AnyValue::from("claude-sonnet")),
        ("cost_usd", AnyValue::from("0.01")),
        ("input_tokens", AnyValue::from(40_i64)),
        ("output_tokens", AnyValue::from(5_i64)),
        ("duration_ms", AnyValue::from(321_i64)),
    ]);
    logger.emit(record);
    let mut tool = logger.create_log_record();
    tool.set_event_name("claude_code.tool_result");
    tool.add_attributes([
        ("event.name", AnyValue::from("tool_result")),
        ("session.id", AnyValue::from(CONVERSATION)),
        ("tool_name", AnyValue::from("Bash")),
        ("success", AnyValue::from("true")),
    ]);
    logger.emit(tool);
}

async fn get(app: &TestApp, path: &str) -> Json {
    let r = app.get(path).await;
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opentelemetry_sdk_exports_genai_spans_and_logs_that_become_runs_prompts_costs_and_logs(
) {
    let app = TestApp::start().await;
    let (tracer_provider, logger_provider) = providers(&app);
    // Flushing blocks until the batch task (on this runtime) has exported: off the workers.
    let flushed = tokio::task::spawn_blocking(move || {
        agent_session(&tracer_provider);
        claude_code_events(&logger_provider);
        let spans = tracer_provider.force_flush();
        let logs = logger_provider.force_flush();
        let _ = tracer_provider.shutdown();
        let _ = logger_provider.shutdown();
        (spans, logs)
    })
    .await
    .unwrap();
    assert!(flushed.0.is_ok(), "span export: {:?}", flushed.0);
    assert!(flushed.1.is_ok(), "log export: {:?}", flushed.1);

    let runs = get(
        &app,
        &format!("/api/runtime/agents?session_id={CONVERSATION}"),
    )
    .await;
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let planner = runs.iter().find(|r| r["agent_name"] == "planner").unwrap();
    let coder = runs.iter().find(|r| r["agent_name"] == "coder").unwrap();
    assert!(planner["parent_agent_id"].is_null());
    assert_eq!(coder["parent_agent_id"], planner["id"]);
    assert_eq!(coder["status"], "completed");
    // A conversation's run waits for its next turn.
    assert_eq!(planner["status"], "reviewing");
    let planner_id = planner["id"].as_str().unwrap();
    let coder_id = coder["id"].as_str().unwrap();

    // The model call from the span and Claude Code's api_request both cost the planner.
    let run = get(&app, &format!("/api/runtime/agents/{planner_id}")).await;
    assert!(
        (run["cost_usd"].as_f64().unwrap() - 0.014).abs() < 1e-9,
        "{run}"
    );
    assert_eq!(run["tokens_input"], 140);
    let prompts = get(&app, &format!("/api/runtime/prompts?agent_id={planner_id}")).await;
    let chat = prompts
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prompt_name"] == "chat claude-sonnet")
        .expect("the chat span is a prompt");
    assert_eq!(chat["model_used"], "claude-sonnet");
    assert_eq!(chat["status"], "completed");
    assert_eq!(chat["tokens_output"], 20);
    assert!(chat["latency_ms"].as_i64().unwrap() >= 15, "{chat}");
    let failed = get(&app, &format!("/api/runtime/prompts?agent_id={coder_id}")).await;
    assert_eq!(failed[0]["status"], "failed");
    assert_eq!(failed[0]["error_message"], "overloaded");

    let tools = get(
        &app,
        &format!("/api/runtime/logs?agent_id={planner_id}&log_type=tool_call"),
    )
    .await;
    let messages: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert!(messages.contains(&"delegate"), "{messages:?}");
    assert!(messages.contains(&"Bash"), "{messages:?}");

    // The feed carries both runs' status changes.
    let feed = get(&app, "/api/events?after=0").await;
    let of = |id: &str| -> Vec<String> {
        feed["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["data"]["id"] == id)
            .map(|e| e["data"]["status"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(of(coder_id), ["initializing", "executing", "completed"]);
    let planner_feed = of(planner_id);
    assert_eq!(
        planner_feed.first().map(String::as_str),
        Some("initializing")
    );
    assert_eq!(planner_feed.last().map(String::as_str), Some("reviewing"));
    app.stop().await;
}
