//! `orchestrator new` writes a project that runs on its own: generated, then served by
//! `orchestrator up` from inside it, with no path back into this repository.

use std::process::Command;

use orchestrator_e2e::{build_components, free_port, spawn_orchestrator};
use serde_json::{json, Value as Json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_project_serves_health_and_agents_under_up() {
    build_components();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("my-fleet");
    let port = free_port();
    let status = orchestrator_e2e::orchestrator_command()
        .args(["new"])
        .arg(&project)
        .args([
            "--http-port",
            &port.to_string(),
            "--websocket-port",
            &free_port().to_string(),
        ])
        .args(["--database-path", "state/fleet.db"])
        .status()
        .unwrap();
    assert!(status.success(), "new succeeds");
    // Nothing in the project points back here.
    let manifest = std::fs::read_to_string(project.join("spin.toml")).unwrap();
    assert!(!manifest.contains("../"), "{manifest}");

    // `up` from inside the project: spin.toml, runtime-config.toml and .env by default.
    let mut command: Command = orchestrator_e2e::orchestrator_command();
    command.args(["up"]).current_dir(&project);
    let served = spawn_orchestrator(command, "Serving ");
    assert_eq!(served.base, format!("http://127.0.0.1:{port}"));
    let client = reqwest::Client::new();
    let health: Json = client
        .get(format!("{}/health", served.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health, json!({ "status": "ok" }));
    let r = client
        .post(format!("{}/api/agents", served.base))
        .json(&json!({ "name": "planner", "agent_type": "planner" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        project.join("state/fleet.db").exists(),
        "the chosen database path is used"
    );
}
