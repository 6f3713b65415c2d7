//! OTLP/HTTP as a transport (`POST /v1/logs`, `/v1/traces`, `/v1/metrics`): which bodies
//! are accepted and what an exporter gets back, following the OTLP specification
//! ("OTLP/HTTP Request" / "OTLP/HTTP Response").
//!
//! - Media types `application/x-protobuf` (the exporters' default) and `application/json`
//!   (OTLP/JSON, the proto3 JSON mapping with hex trace and span ids); anything else 415.
//! - `Content-Encoding: gzip` is decoded, bounded: the decompressed body must fit in the
//!   body limit too (413), as the specification asks of servers. Other encodings are 415.
//! - The answer uses the request's encoding: an `Export…ServiceResponse` on success (with
//!   `partial_success` only when something was rejected), a `google.rpc.Status` on
//!   failure. For JSON (and requests whose encoding is unknown) the Status fields sit
//!   beside the API's `{"error": …}` shape, so both kinds of client can read the answer.
//!
//! The wire format is `opentelemetry-proto`'s generated messages and `prost`; nothing
//! here encodes or decodes protobuf by hand.

use std::io::Read;

use prost::Message;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
use crate::http::{Config, Request, Response};

/// How a request body (and so its answer) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names; `None` for anything else (or none).
    pub fn of(req: &Request) -> Option<Encoding> {
        let media = req
            .header("content-type")?
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/x-protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status` (googleapis' `google/rpc/status.proto`): the body of every OTLP/HTTP
/// error. Declared with prost's derive, as prost-build would generate it, because
/// `opentelemetry-proto` does not carry googleapis' messages; `details` (field 3, a list of
/// `Any`) is optional in OTLP and left out.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The gRPC code OTLP's Status carries for an HTTP failure (clients only record it).
fn grpc_code(code: ErrorCode) -> i32 {
    match code {
        ErrorCode::BadRequest | ErrorCode::ValidationFailed | ErrorCode::UnsupportedMediaType => 3,
        ErrorCode::NotFound => 5,
        ErrorCode::Forbidden => 7,
        ErrorCode::PayloadTooLarge => 8,
        ErrorCode::Conflict => 10,
        ErrorCode::MethodNotAllowed => 12,
        ErrorCode::Internal => 13,
        ErrorCode::Unavailable => 14,
        ErrorCode::Unauthorized => 16,
    }
}

/// The answer to a failed OTLP request: a protobuf `Status` for a protobuf request, else
/// JSON holding both the Status fields and the API's error shape.
pub fn error_response(req: &Request, err: &ApiError) -> Response {
    match Encoding::of(req) {
        Some(Encoding::Protobuf) => Response {
            status: err.status(),
            headers: vec![(
                "content-type".into(),
                Encoding::Protobuf.content_type().into(),
            )],
            body: Status {
                code: grpc_code(err.code),
                message: err.message.clone(),
            }
            .encode_to_vec(),
        },
        _ => {
            let mut body = err.to_json();
            body["code"] = json!(grpc_code(err.code));
            body["message"] = json!(err.message);
            Response::json(err.status(), &body)
        }
    }
}

/// The request body, checked and decompressed: 413 over the limit (before or after
/// decompression), 415 for a media type or content coding that is not OTLP's, 400 for a
/// gzip stream that does not decode.
pub fn body(config: &Config, req: &Request) -> Result<(Encoding, Vec<u8>), ApiError> {
    let limit = config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is over {limit} bytes"),
        )
    };
    if req.body.len() > limit {
        return Err(too_large());
    }
    let encoding = Encoding::of(req).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "OTLP bodies must be application/x-protobuf or application/json",
        )
    })?;
    let coding = req
        .header("content-encoding")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = match coding.as_str() {
        "" | "identity" => req.body.clone(),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            // One byte more than the limit tells "over" from "exactly the limit" without
            // ever holding more than that in memory.
            flate2::read::MultiGzDecoder::new(req.body.as_slice())
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ApiError::bad_request(format!("body is not valid gzip: {e}")))?;
            if out.len() > limit {
                return Err(too_large());
            }
            out
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!("Content-Encoding {other:?} is not supported (gzip or none)"),
            ))
        }
    };
    Ok((encoding, body))
}

/// Decode an `Export…ServiceRequest` in its encoding; anything else is a 400.
pub fn decode<M: Message + Default + DeserializeOwned>(
    encoding: Encoding,
    body: &[u8],
    what: &str,
) -> Result<M, ApiError> {
    match encoding {
        Encoding::Protobuf => M::decode(body)
            .map_err(|e| ApiError::bad_request(format!("not a protobuf {what}: {e}"))),
        Encoding::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("not an OTLP/JSON {what}: {e}"))),
    }
}

/// What a batch did: how many items were rejected, and why (OTLP's `partial_success`).
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    pub rejected: u64,
    pub error_message: String,
}

impl Outcome {
    /// Count one rejected item, keeping the first reason given.
    pub fn reject(&mut self, why: impl FnOnce() -> String) {
        if self.rejected == 0 {
            self.error_message = why();
        }
        self.rejected += 1;
    }
}

/// The signal a route carries, for its response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Traces,
    Metrics,
}

/// `Export{Logs,Trace,Metrics}ServiceResponse` in the request's encoding (200). The
/// `partial_success` field is left unset when nothing was rejected, as OTLP requires.
pub fn success(signal: Signal, encoding: Encoding, outcome: &Outcome) -> Response {
    use opentelemetry_proto::tonic::collector::{
        logs::v1 as logs, metrics::v1 as metrics, trace::v1 as trace,
    };
    let rejected = (outcome.rejected > 0).then_some(outcome);
    let body = match encoding {
        Encoding::Protobuf => match signal {
            Signal::Logs => logs::ExportLogsServiceResponse {
                partial_success: rejected.map(|o| logs::ExportLogsPartialSuccess {
                    rejected_log_records: o.rejected as i64,
                    error_message: o.error_message.clone(),
                }),
            }
            .encode_to_vec(),
            Signal::Traces => trace::ExportTraceServiceResponse {
                partial_success: rejected.map(|o| trace::ExportTracePartialSuccess {
                    rejected_spans: o.rejected as i64,
                    error_message: o.error_message.clone(),
                }),
            }
            .encode_to_vec(),
            Signal::Metrics => metrics::ExportMetricsServiceResponse {
                partial_success: None,
            }
            .encode_to_vec(),
        },
        // OTLP/JSON: int64 as a decimal string, camelCase names, unset fields left out.
        Encoding::Json => {
            let field = match signal {
                Signal::Logs => "rejectedLogRecords",
                Signal::Traces => "rejectedSpans",
                Signal::Metrics => "rejectedDataPoints",
            };
            let value = match rejected {
                None => json!({}),
                Some(o) => json!({"partialSuccess": {
                    field: o.rejected.to_string(),
                    "errorMessage": o.error_message,
                }}),
            };
            value.to_string().into_bytes()
        }
    };
    Response {
        status: 200,
        headers: vec![("content-type".into(), encoding.content_type().into())],
        body,
    }
}

/// An OTLP attribute value as plain JSON (bytes as hex; an empty value as `null`).
pub fn any_value(
    value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>,
) -> serde_json::Value {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use serde_json::Value as Json;
    let Some(value) = value.and_then(|v| v.value.as_ref()) else {
        return Json::Null;
    };
    match value {
        Value::StringValue(s) => Json::String(s.clone()),
        Value::BoolValue(b) => Json::Bool(*b),
        Value::IntValue(i) => Json::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::ArrayValue(a) => Json::Array(a.values.iter().map(|v| any_value(Some(v))).collect()),
        Value::KvlistValue(list) => Json::Object(
            list.values
                .iter()
                .map(|kv| (kv.key.clone(), any_value(kv.value.as_ref())))
                .collect(),
        ),
        Value::BytesValue(b) => Json::String(hex(b)),
        Value::StringValueStrindex(_) => Json::Null,
    }
}

/// Attributes as a JSON object; later lists win over earlier ones (a span's own over its
/// resource's).
pub fn attributes(
    lists: &[&[opentelemetry_proto::tonic::common::v1::KeyValue]],
) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    for list in lists {
        for kv in *list {
            map.insert(kv.key.clone(), any_value(kv.value.as_ref()));
        }
    }
    map
}

/// Lower-case hex, as OTLP/JSON writes trace and span ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    text
}

/// Typed reads of an attribute map (numbers may arrive as strings).
pub struct Attrs<'a>(pub &'a serde_json::Map<String, serde_json::Value>);

impl Attrs<'_> {
    /// A non-empty text value (numbers and booleans as their text).
    pub fn text(&self, key: &str) -> Option<String> {
        use serde_json::Value as Json;
        match self.0.get(key)? {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            Json::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The first of `keys` that has text.
    pub fn first_text(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|k| self.text(k))
    }

    /// A finite number, from a number or a numeric string.
    pub fn number(&self, key: &str) -> Option<f64> {
        use serde_json::Value as Json;
        match self.0.get(key)? {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|n: &f64| n.is_finite())
    }

    /// The first of `keys` that is a number.
    pub fn first_number(&self, keys: &[&str]) -> Option<f64> {
        keys.iter().find_map(|k| self.number(k))
    }

    /// A count (never negative; 0 when absent).
    pub fn count(&self, keys: &[&str]) -> i64 {
        self.first_number(keys).map_or(0, |n| n.max(0.0) as i64)
    }

    /// A value as text: strings as they are, anything structured as its JSON text.
    pub fn content(&self, keys: &[&str]) -> Option<String> {
        use serde_json::Value as Json;
        keys.iter().find_map(|k| match self.0.get(*k)? {
            Json::Null => None,
            Json::String(s) if s.is_empty() => None,
            Json::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
    }
}
