//! Dispatch end to end (docs/dispatch.md): the real components in the host, a real
//! `orchestrator runner` process, real shell scripts in their own process groups.

use std::path::Path;
use std::time::{Duration, Instant};

use orchestrator_e2e::{orchestrator_command, spawn_orchestrator, Served, TestApp};
use serde_json::{json, Value as Json};

/// The app with a short runner lease (the Spin variable `runner_lease_secs`).
async fn app(lease_secs: u64) -> TestApp {
    TestApp::start_with(|config| {
        config
            .variables
            .insert("runner_lease_secs".into(), lease_secs.to_string());
    })
    .await
}

/// `orchestrator runner` against `app`, allowing `sh`, with a 1 s kill grace.
fn runner(app: &TestApp, name: &str) -> Served {
    let mut command = orchestrator_command();
    command.args([
        "runner",
        "--url",
        &app.base,
        "--name",
        name,
        "--allow",
        "sh",
        "--kill-grace-secs",
        "1",
    ]);
    spawn_orchestrator(command, "Runner ")
}

/// A definition that runs `sh SCRIPT {input}` in `dir`.
async fn definition(app: &TestApp, dir: &Path, script: &str, timeout_secs: Option<u64>) -> Json {
    let path = dir.join(format!("{}.sh", orchestrator_e2e::uuid_like()));
    std::fs::write(&path, script).unwrap();
    app.create(
        "/api/agents",
        json!({
            "name": format!("adw-{}", orchestrator_e2e::uuid_like()),
            "agent_type": "orchestrator",
            "command": ["sh", path.to_str().unwrap(), "{input}"],
            "working_dir": dir.to_str().unwrap(),
            "timeout_secs": timeout_secs,
        }),
    )
    .await
}

async fn dispatch(app: &TestApp, def: &Json, input: &str) -> Json {
    let run = app
        .create(
            "/api/runtime/agents",
            json!({ "orchestrator_agent_id": def["id"], "dispatch": { "input": input } }),
        )
        .await;
    assert_eq!(run["dispatch"]["state"], "queued");
    run
}

async fn get_run(app: &TestApp, id: &str) -> Json {
    let r = app.get(&format!("/api/runtime/agents/{id}")).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Poll the run until `done` says so (or panic after `within`).
async fn wait_for(app: &TestApp, id: &str, within: Duration, done: impl Fn(&Json) -> bool) -> Json {
    let deadline = Instant::now() + within;
    loop {
        let run = get_run(app, id).await;
        if done(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "run never got there: {run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn is_final(run: &Json) -> bool {
    matches!(
        run["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// The run's output lines, oldest first.
async fn output(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let logs: Json = app
        .get(&format!(
            "/api/runtime/logs?agent_id={id}&log_type=performance&limit=1000"
        ))
        .await
        .json()
        .await
        .unwrap();
    let mut lines: Vec<(String, String)> = logs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["details"]["output"].as_str().unwrap().to_owned(),
                l["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    lines.reverse();
    lines
}

/// Whether process `pid` still runs (a zombie waiting for its reaper does not).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            // "pid (comm) S …": the state follows the last ')'.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
    }
}

fn pids(file: &Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

async fn wait_for_file(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids(file).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "{} never written",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_script_that_prints_and_exits_0_completes_with_its_output_as_logs() {
    let app = app(30).await;
    let dir = tempfile::tempdir().unwrap();
    let _runner = runner(&app, "e2e-1");
    let def = definition(
        &app,
        dir.path(),
        "echo \"planning $1\"\necho \"run $ORCHESTRATOR_RUN_ID session $ORCHESTRATOR_SESSION_ID\"\n\
         echo \"to $ORCHESTRATOR_URL\"\necho oops >&2\npwd\nexit 0\n",
        None,
    )
    .await;
    let run = dispatch(&app, &def, "issue 42").await;
    let id = run["id"].as_str().unwrap();
    let done = wait_for(&app, id, Duration::from_secs(30), is_final).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["dispatch"]["state"], "exited");
    assert_eq!(done["dispatch"]["exit_code"], 0);
    assert_eq!(done["dispatch"]["runner"], "e2e-1");
    assert!(done["dispatch"]["started_at"].is_string());
    let lines = output(&app, id).await;
    let session = run["session_id"].as_str().unwrap();
    let stdout: Vec<&str> = lines
        .iter()
        .filter(|(s, _)| s == "stdout")
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(
        stdout,
        [
            "planning issue 42".to_owned(),
            format!("run {id} session {session}"),
            format!("to {}", app.base),
            std::fs::canonicalize(dir.path())
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned(),
        ]
    );
    assert!(lines.contains(&("stderr".into(), "oops".into())));
}

#[tokio::test]
async fn exit_3_fails_with_the_code_and_the_last_lines() {
    let app = app(30).await;
    let dir = tempfile::tempdir().unwrap();
    let _runner = runner(&app, "e2e-2");
    let def = definition(
        &app,
        dir.path(),
        "echo building\necho broke >&2\nexit 3\n",
        None,
    )
    .await;
    let run = dispatch(&app, &def, "").await;
    let done = wait_for(
        &app,
        run["id"].as_str().unwrap(),
        Duration::from_secs(30),
        is_final,
    )
    .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["dispatch"]["exit_code"], 3);
    let message = done["error_message"].as_str().unwrap();
    assert!(message.starts_with("exited with code 3"), "{message}");
    // stdout and stderr are read apart: their lines keep their order within each stream.
    let (_, tail) = message.split_once("--- last output ---\n").unwrap();
    let mut tail: Vec<&str> = tail.lines().collect();
    tail.sort();
    assert_eq!(tail, ["broke", "building"], "{message}");
}

#[tokio::test]
async fn a_cancelled_run_has_its_whole_process_group_ended_within_the_grace() {
    let app = app(3).await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let _runner = runner(&app, "e2e-3");
    // The script ignores SIGTERM (so only the KILL after the grace ends it) and leaves a
    // child of its own in the group.
    let script = format!(
        "trap '' TERM\nsleep 300 &\necho \"$$ $!\" > {}\necho started\nwait\n",
        pid_file.display()
    );
    let def = definition(&app, dir.path(), &script, None).await;
    let run = dispatch(&app, &def, "").await;
    let id = run["id"].as_str().unwrap();
    wait_for_file(&pid_file).await;
    let pids = pids(&pid_file);
    assert!(pids.iter().all(|p| running(*p)));
    let r = app
        .patch(
            &format!("/api/runtime/agents/{id}"),
            json!({ "status": "cancelled" }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let cancelled_at = Instant::now();
    // Heartbeats come every lease/3 (1 s here): the cancel is noticed at the next one,
    // then TERM, a 1 s grace, KILL.
    let done = wait_for(&app, id, Duration::from_secs(30), |r| {
        r["dispatch"]["state"] == "exited"
    })
    .await;
    assert_eq!(done["status"], "cancelled");
    for pid in &pids {
        assert!(!running(*pid), "process {pid} outlived the cancel");
    }
    assert!(cancelled_at.elapsed() < Duration::from_secs(1 + 1 + 4));
}

#[tokio::test]
async fn timeout_secs_fails_the_run_as_timed_out() {
    let app = app(30).await;
    let dir = tempfile::tempdir().unwrap();
    let _runner = runner(&app, "e2e-4");
    let def = definition(&app, dir.path(), "echo waiting\nsleep 60\n", Some(1)).await;
    let run = dispatch(&app, &def, "").await;
    let started = Instant::now();
    let done = wait_for(
        &app,
        run["id"].as_str().unwrap(),
        Duration::from_secs(20),
        is_final,
    )
    .await;
    assert_eq!(done["status"], "failed");
    let message = done["error_message"].as_str().unwrap();
    assert!(message.starts_with("timed out after 1 s"), "{message}");
    assert!(message.contains("waiting"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_runner_killed_with_sigkill_loses_its_run_after_the_lease() {
    let app = app(2).await;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    let mut runner = runner(&app, "e2e-5");
    let script = format!(
        "sleep 300 &\necho \"$$ $!\" > {}\nwait\n",
        pid_file.display()
    );
    let def = definition(&app, dir.path(), &script, None).await;
    let run = dispatch(&app, &def, "").await;
    let id = run["id"].as_str().unwrap();
    wait_for_file(&pid_file).await;
    // Heartbeats keep it (lease 2 s, a heartbeat every 2/3 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(get_run(&app, id).await["status"], "executing");
    runner.kill();
    let killed = Instant::now();
    let lost = wait_for(&app, id, Duration::from_secs(15), is_final).await;
    assert_eq!(lost["status"], "failed");
    assert_eq!(lost["dispatch"]["state"], "lost");
    let message = lost["error_message"].as_str().unwrap();
    assert!(message.starts_with("runner lost: e2e-5"), "{message}");
    assert!(killed.elapsed() < Duration::from_secs(6));
    // The orphaned group is the machine's business; the test cleans up after itself.
    if let Some(leader) = pids(&pid_file).first() {
        // SAFETY: kill(2) on the orphaned process group; no memory involved.
        unsafe {
            libc::kill(-leader, libc::SIGKILL);
        }
    }
}

#[tokio::test]
async fn a_program_not_allowed_is_never_started_and_the_run_fails_saying_so() {
    let app = app(30).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("was-run");
    let _runner = runner(&app, "e2e-6");
    let def = app
        .create(
            "/api/agents",
            json!({
                "name": format!("touch-{}", orchestrator_e2e::uuid_like()),
                "agent_type": "utility",
                "command": ["touch", marker.to_str().unwrap()],
            }),
        )
        .await;
    let run = dispatch(&app, &def, "").await;
    let done = wait_for(
        &app,
        run["id"].as_str().unwrap(),
        Duration::from_secs(30),
        is_final,
    )
    .await;
    assert_eq!(done["status"], "failed");
    let message = done["error_message"].as_str().unwrap();
    assert!(
        message.starts_with("program touch is not allowed on runner e2e-6"),
        "{message}"
    );
    assert_eq!(done["dispatch"]["exit_code"], json!(null));
    assert!(!marker.exists(), "the program ran");
}

#[tokio::test]
async fn a_claude_code_session_started_by_a_dispatched_script_is_its_child_and_the_tree_sums_it() {
    let app = app(30).await;
    let dir = tempfile::tempdir().unwrap();
    let _runner = runner(&app, "e2e-7");
    // What a connected Claude Code does from inside the process: hooks with the run id
    // header (`orchestrator connect` writes it from $ORCHESTRATOR_RUN_ID).
    let script = r#"post() {
  curl -sf -X POST "$ORCHESTRATOR_URL/api/ingest/claude-code" \
    -H 'content-type: application/json' \
    -H "X-Orchestrator-Run-Id: $ORCHESTRATOR_RUN_ID" -d "$1" > /dev/null
}
s="cc-$ORCHESTRATOR_RUN_ID"
post '{"session_id":"'$s'","hook_event_name":"UserPromptSubmit","prompt":"plan it","prompt_id":"p1","cwd":"/tmp","transcript_path":"/tmp/t.jsonl"}'
post '{"session_id":"'$s'","hook_event_name":"Stop","prompt_id":"p1","cwd":"/tmp","transcript_path":"/tmp/t.jsonl","stop_hook_active":false}'
echo "session $s reported"
"#;
    let def = definition(&app, dir.path(), script, None).await;
    let run = dispatch(&app, &def, "").await;
    let id = run["id"].as_str().unwrap();
    let done = wait_for(&app, id, Duration::from_secs(30), is_final).await;
    assert_eq!(done["status"], "completed", "{done}");
    let children: Json = app
        .get(&format!("/api/runtime/agents?session_id=cc-{id}"))
        .await
        .json()
        .await
        .unwrap();
    let child = &children[0];
    assert_eq!(child["parent_agent_id"], *id, "{children}");
    // Cost on the child (as its telemetry would bring it) rolls up into the run's tree.
    let prompt = app
        .create(
            "/api/runtime/prompts",
            json!({ "agent_id": child["id"], "prompt_type": "command", "prompt_text": "x" }),
        )
        .await;
    let r = app
        .patch(
            &format!("/api/runtime/prompts/{}", prompt["id"].as_str().unwrap()),
            json!({ "cost_usd": 0.25, "tokens_input": 1000, "tokens_output": 50 }),
        )
        .await;
    assert_eq!(r.status(), 200);
    let tree = &get_run(&app, id).await["tree"];
    assert_eq!(tree["runs"], 2, "{tree}");
    assert_eq!(tree["cost_usd"], 0.25);
    assert_eq!(tree["tokens_input"], 1000);
    assert_eq!(tree["tokens_output"], 50);
}
