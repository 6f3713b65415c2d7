//! `bench-ingest`: what agents report, into one database, through the real host and the
//! `ingest` component, at N connections:
//! 1. Claude Code hook events per second (a mix of what a session posts: mostly tool
//!    calls, each with its own `tool_use_id`, plus prompts, PreToolUse and Stop over 256
//!    concurrent sessions): events/s, p50, p90, p99, max, non-2xx.
//! 2. OTLP/HTTP protobuf exports of GenAI spans (`POST /v1/traces`), each a batch of
//!    `--spans-per-batch` spans from 8 agent traces (an `invoke_agent` span with its `chat`
//!    and `execute_tool` children, children first as exporters send them), every batch new:
//!    batch p50, p90, p99 and max, batches/s and spans/s.

use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

use crate::host::{serve_app, AppArgs};
use crate::load::{self, Req};
use crate::runtimes;
use crate::usage::threads_cpu_seconds;

#[derive(clap::Args, Debug)]
pub struct Options {
    #[arg(long, default_value_t = 32)]
    connections: usize,
    #[arg(long, default_value_t = 2)]
    warmup_seconds: u64,
    /// Spans in each OTLP export (a multiple of 8: 8 agent traces per batch).
    #[arg(long, default_value_t = 512)]
    spans_per_batch: usize,
    /// Seconds of OTLP exports (0: hooks only).
    #[arg(long, default_value_t = 10)]
    otlp_seconds: u64,
    /// Seconds of hook events (0: OTLP only).
    #[arg(long, default_value_t = 10)]
    hook_seconds: u64,
    #[command(flatten)]
    app: AppArgs,
}

/// One hook event of a synthetic session: `n` picks the session and the event.
fn hook_event(n: u64) -> String {
    let session = format!("bench-session-{}", n % 256);
    let common = format!(
        r#""session_id":"{session}","transcript_path":"/tmp/{session}.jsonl","cwd":"/tmp/p","permission_mode":"default""#
    );
    match n % 10 {
        0 => format!(r#"{{{common},"hook_event_name":"UserPromptSubmit","prompt":"task {n}"}}"#),
        1 => format!(
            r#"{{{common},"hook_event_name":"PreToolUse","tool_name":"Bash","tool_use_id":"toolu_{n}","tool_input":{{"command":"cargo test"}}}}"#
        ),
        9 => format!(r#"{{{common},"hook_event_name":"Stop","stop_hook_active":false}}"#),
        _ => format!(
            r#"{{{common},"hook_event_name":"PostToolUse","tool_name":"Bash","tool_use_id":"toolu_{n}","tool_input":{{"command":"cargo test"}},"tool_response":{{"stdout":"test result: ok. 131 passed","stderr":""}}}}"#
        ),
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// Batch `n`: `spans` GenAI spans of 8 agent traces, ids unique to the batch, spread over
/// 256 conversations (so batches land on runs that already exist, as a busy app's do).
fn otlp_batch(n: u64, spans: usize) -> Bytes {
    let per_trace = (spans / 8).max(1);
    let mut out = Vec::with_capacity(spans);
    for t in 0..8u64 {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&(n + 1).to_be_bytes());
        trace_id[8..].copy_from_slice(&(t + 1).to_be_bytes());
        let conversation = format!("bench-conv-{}", (n * 8 + t) % 256);
        let span_id = |i: u64| (((t + 1) << 32) | (i + 1)).to_be_bytes().to_vec();
        let start = 1_700_000_000_000_000_000u64 + n * 1_000_000;
        // Children first, the agent span last.
        for i in 1..per_trace as u64 {
            let (name, attributes) = if i % 3 == 0 {
                (
                    "execute_tool search".to_owned(),
                    vec![
                        text("gen_ai.operation.name", "execute_tool"),
                        text("gen_ai.tool.name", "search"),
                        text("gen_ai.tool.call.id", format!("call_{n}_{t}_{i}")),
                        text("gen_ai.tool.call.arguments", r#"{"query":"otlp"}"#),
                        text("gen_ai.conversation.id", conversation.clone()),
                    ],
                )
            } else {
                (
                    "chat claude-sonnet".to_owned(),
                    vec![
                        text("gen_ai.operation.name", "chat"),
                        text("gen_ai.request.model", "claude-sonnet"),
                        int("gen_ai.usage.input_tokens", 1200),
                        int("gen_ai.usage.output_tokens", 300),
                        text("gen_ai.conversation.id", conversation.clone()),
                    ],
                )
            };
            out.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id(i),
                parent_span_id: span_id(0),
                name,
                start_time_unix_nano: start + i * 1_000,
                end_time_unix_nano: start + i * 1_000 + 800_000,
                attributes,
                ..Default::default()
            });
        }
        out.push(Span {
            trace_id: trace_id.to_vec(),
            span_id: span_id(0),
            name: "invoke_agent researcher".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 900_000_000,
            attributes: vec![
                text("gen_ai.operation.name", "invoke_agent"),
                text("gen_ai.agent.name", "researcher"),
                text("gen_ai.conversation.id", conversation),
            ],
            ..Default::default()
        });
    }
    let export = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![text("service.name", "bench-agents")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: out,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    Bytes::from(export.encode_to_vec())
}

/// Run `bench-ingest`: the host, then each phase, one line each.
pub fn run(args: Options) -> Result<()> {
    if args.spans_per_batch < 8 || !args.spans_per_batch.is_multiple_of(8) {
        bail!("--spans-per-batch must be a positive multiple of 8");
    }
    let dir = tempfile::tempdir()?;
    let server_rt = runtimes::server(None)?;
    let client_rt = runtimes::client(1)?;
    let addr = serve_app(&server_rt, &args.app, dir.path().join("ingest.db"), |_| {})?;
    if args.hook_seconds > 0 {
        let stats = client_rt.block_on(load::run(
            addr,
            args.connections,
            Duration::from_secs(args.warmup_seconds),
            Duration::from_secs(args.hook_seconds),
            1,
            || threads_cpu_seconds("server"),
            |_, n| {
                Req::json(
                    hyper::Method::POST,
                    "/api/ingest/claude-code",
                    hook_event(n),
                )
            },
        ));
        println!(
            "POST /api/ingest/claude-code, {} connections, {} s: {:.0} events/s, {}, non-2xx {}, errors {}, server CPU {:.0} µs/event",
            args.connections,
            args.hook_seconds,
            stats.rps(),
            stats.latency_summary(),
            stats.non_2xx,
            stats.errors,
            stats.cpu_us_per_request(),
        );
    }
    // A batch's own latency (one exporter) and the throughput of many.
    let otlp_connections = if args.connections > 1 {
        vec![1, args.connections]
    } else {
        vec![1]
    };
    for connections in otlp_connections
        .into_iter()
        .filter(|_| args.otlp_seconds > 0)
    {
        let spans = args.spans_per_batch;
        let stats = client_rt.block_on(load::run(
            addr,
            connections,
            Duration::from_secs(args.warmup_seconds),
            Duration::from_secs(args.otlp_seconds),
            2 + connections as u64,
            || threads_cpu_seconds("server"),
            move |_, n| {
                // Batch numbers never repeat across phases: every batch is new spans.
                let n = n + ((connections as u64) << 40);
                Req::bytes("/v1/traces", otlp_batch(n, spans), "application/x-protobuf")
            },
        ));
        println!(
            "POST /v1/traces (protobuf, {spans} GenAI spans a batch), {connections} connections, {} s: {:.1} batches/s = {:.0} spans/s, batch {}, non-2xx {}, errors {}, server CPU {:.0} µs/span",
            args.otlp_seconds,
            stats.rps(),
            stats.rps() * spans as f64,
            stats.latency_summary(),
            stats.non_2xx,
            stats.errors,
            stats.cpu_us_per_request() / spans as f64,
        );
    }
    Ok(())
}
