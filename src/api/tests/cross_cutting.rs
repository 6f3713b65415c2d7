use serde_json::json;

use super::{assert_error, App};
use crate::http::{Config, Request};

fn with_token() -> App {
    App::with_config(Config {
        api_token: Some("s3cret".into()),
        ..Config::default()
    })
}

#[test]
fn health_answers_ok_once_the_database_answers() {
    let r = App::new().get("/health");
    assert_eq!(r.status, 200);
    assert_eq!(r.json_body(), json!({ "status": "ok" }));
}

#[test]
fn health_is_503_when_the_schema_is_newer_than_the_code() {
    let app = App::new();
    use crate::db::Database;
    app.connector
        .db()
        .execute("PRAGMA user_version = 999", &[])
        .unwrap();
    assert_error(&app.get("/health"), 503, "unavailable");
    assert_error(&app.get("/api/agents"), 503, "unavailable");
}

#[test]
fn openapi_describes_every_route() {
    let doc = App::new().get("/openapi.json").json_body();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/health",
        "/api/agents",
        "/api/agents/{id}",
        "/api/runtime/agents",
        "/api/runtime/agents/{id}",
        "/api/runtime/prompts",
        "/api/runtime/prompts/{id}",
        "/api/runtime/logs",
        "/api/runtime/stats",
        "/api/events",
        "/api/events/snapshot",
        "/api/events/stream",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert_eq!(
        doc["components"]["schemas"]["Run"]["properties"]["status"]["enum"][6],
        "cancelled"
    );
}

#[test]
fn unknown_paths_get_the_api_404_shape() {
    let app = App::new();
    assert_error(&app.get("/nope"), 404, "not_found");
    assert_error(&app.get("/api/agents/a/b"), 404, "not_found");
    assert_error(&app.post("/api/whatever", json!({})), 404, "not_found");
}

#[test]
fn a_wrong_method_is_405_with_allow() {
    let app = App::new();
    let r = app.send(Request::new("DELETE", "/api/agents"));
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = app.send(Request::new("POST", "/api/runtime/stats"));
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    assert_error(
        &app.send(Request::new("DELETE", "/api/runtime/prompts/x")),
        405,
        "method_not_allowed",
    );
}

#[test]
fn an_oversized_body_is_413_before_its_media_type_is_checked() {
    let app = App::with_config(Config {
        max_body_bytes: 64,
        ..Config::default()
    });
    let mut req = Request::new("POST", "/api/agents").with_header("content-type", "text/plain");
    req.body = vec![b'x'; 65];
    assert_error(&app.send(req), 413, "payload_too_large");
    assert_eq!(app.count("SELECT count(*) FROM orchestrator_agents"), 0);
}

#[test]
fn a_non_json_content_type_is_415() {
    let app = App::new();
    let mut req = Request::new("POST", "/api/agents").with_header("content-type", "text/plain");
    req.body = br#"{"name":"a","agent_type":"planner"}"#.to_vec();
    assert_error(&app.send(req), 415, "unsupported_media_type");
    let mut req = Request::new("POST", "/api/agents");
    req.body = br#"{"name":"a","agent_type":"planner"}"#.to_vec();
    assert_error(&app.send(req), 415, "unsupported_media_type");
    let mut req = Request::new("POST", "/api/agents")
        .with_header("content-type", "application/json; charset=utf-8");
    req.body = br#"{"name":"a","agent_type":"planner"}"#.to_vec();
    assert_eq!(app.send(req).status, 201);
}

#[test]
fn malformed_json_and_non_objects_are_400() {
    let app = App::new();
    for body in [&b"{"[..], b"[]", b"42", b""] {
        let mut req =
            Request::new("POST", "/api/agents").with_header("content-type", "application/json");
        req.body = body.to_vec();
        assert_error(&app.send(req), 400, "bad_request");
    }
}

#[test]
fn with_a_token_configured_api_requests_need_it() {
    let app = with_token();
    assert_error(&app.get("/api/agents"), 401, "unauthorized");
    // 401 wins over 404 for /api paths.
    assert_error(&app.get("/api/nope"), 401, "unauthorized");
    let ok = Request::new("GET", "/api/agents").with_header("authorization", "Bearer s3cret");
    assert_eq!(app.send(ok).status, 200);
    let wrong = Request::new("GET", "/api/agents").with_header("authorization", "Bearer s3cre");
    assert_error(&app.send(wrong), 401, "unauthorized");
}

#[test]
fn health_and_preflights_need_no_token() {
    let app = with_token();
    assert_eq!(app.get("/health").status, 200);
    let preflight = Request::new("OPTIONS", "/api/agents")
        .with_header("origin", "http://localhost:5173")
        .with_header("access-control-request-method", "POST");
    let r = app.send(preflight);
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    assert!(r
        .header("access-control-allow-headers")
        .unwrap()
        .contains("authorization"));
}

#[test]
fn cors_grants_only_allowed_origins() {
    let app = App::with_config(
        Config::from_variables(|n| (n == "cors_origins").then(|| "https://ui.example".into()))
            .unwrap(),
    );
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("http://127.0.0.1:5173", true),
        ("https://ui.example", true),
        ("https://evil.example", false),
    ] {
        let r = app.send(Request::new("GET", "/api/agents").with_header("origin", origin));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
    }
    // Errors carry the grant too, so a browser can read them.
    let r = app.send(Request::new("GET", "/api/nope").with_header("origin", "https://ui.example"));
    assert_eq!(r.status, 404);
    assert!(r.header("access-control-allow-origin").is_some());
    let r = app.send(
        Request::new("OPTIONS", "/api/agents")
            .with_header("origin", "https://evil.example")
            .with_header("access-control-request-method", "GET"),
    );
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn the_error_order_puts_405_before_body_errors_and_422_before_404_id() {
    let app = App::new();
    // Bad body to a method that is not allowed: 405.
    let r = app.send(Request::new("PATCH", "/api/agents").with_json(&json!({"x": 1})));
    assert_error(&r, 405, "method_not_allowed");
    // Invalid body for an unknown id: 422 first.
    let r = app.put(
        "/api/agents/00000000-0000-4000-8000-000000000000",
        json!({ "agent_type": "wizard" }),
    );
    assert_error(&r, 422, "validation_failed");
    // Malformed JSON for an unknown id: 400.
    let mut req = Request::new("PUT", "/api/agents/00000000-0000-4000-8000-000000000000")
        .with_header("content-type", "application/json");
    req.body = b"{".to_vec();
    assert_error(&app.send(req), 400, "bad_request");
}

#[test]
fn pagination_rejects_bad_values_on_every_list() {
    let app = App::new();
    for path in [
        "/api/agents",
        "/api/runtime/agents",
        "/api/runtime/prompts",
        "/api/runtime/logs",
    ] {
        for q in ["limit=0", "limit=1001", "limit=x", "offset=-1", "offset=y"] {
            assert_error(&app.get(&format!("{path}?{q}")), 400, "bad_request");
        }
        assert_eq!(
            app.get(&format!("{path}?limit=1000&offset=3&unknown=1"))
                .status,
            200
        );
    }
}
