//! `orchestrator up` fails loudly: one line naming the cause, a non-zero exit, and nothing
//! served, for each way its start can go wrong.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use orchestrator_e2e::{build_components, repo_root};

fn up(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    build_components();
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("orchestrator-under-test");
    let mut child = Command::new(bin)
        .args(["up", "--no-sidecar"])
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "off")
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A start that does not fail would serve forever: give it a bounded time.
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

/// `--listen` on any free port, and the repository's manifest and runtime config.
fn manifest_args(root: &Path) -> Vec<String> {
    vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--from".into(),
        root.join("spin.toml").display().to_string(),
        "--runtime-config-file".into(),
        root.join("runtime-config.toml").display().to_string(),
    ]
}

/// `up` with the repository's manifest on the database file `db`.
fn up_on_database(dir: &Path, db: &Path) -> Output {
    let args = manifest_args(&repo_root());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    up(dir, &args, &[("DATABASE_PATH", db.to_str().unwrap())])
}

#[track_caller]
fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure, stderr: {stderr}"
    );
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "one error line: {stderr}");
    assert!(
        error_lines[0].contains(needle),
        "{:?} should name {needle:?}",
        error_lines[0]
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Serving"));
}

#[test]
fn a_database_newer_than_the_code_stops_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA user_version = 999;").unwrap();
    drop(conn);
    let out = up_on_database(dir.path(), &db);
    assert_fails_with(&out, "newer");
}

#[test]
fn a_file_that_is_not_sqlite_stops_up() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    std::fs::write(
        &db,
        "this is not a database, just some text that is long enough ".repeat(20),
    )
    .unwrap();
    let out = up_on_database(dir.path(), &db);
    assert_fails_with(&out, "notes.db");
}

#[test]
fn an_unwritable_database_folder_stops_up() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the database's folder should be: no user can create it.
    std::fs::write(dir.path().join("blocked"), "").unwrap();
    let db = dir.path().join("blocked").join("x.db");
    let out = up_on_database(dir.path(), &db);
    assert_fails_with(&out, "blocked");
}

#[test]
fn a_manifest_that_does_not_parse_or_misses_a_wasm_stops_up() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application\n",
    )
    .unwrap();
    let out = up(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--from", "spin.toml"],
        &[],
    );
    assert_fails_with(&out, "spin.toml");

    let manifest = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let out = up(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--from", "spin.toml"],
        &[],
    );
    assert_fails_with(&out, "agents.wasm");
}

#[test]
fn a_port_in_use_stops_up() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut args = manifest_args(&repo_root());
    args[1] = addr.clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let db = dir.path().join("x.db");
    let out = up(
        dir.path(),
        &args,
        &[("DATABASE_PATH", db.to_str().unwrap())],
    );
    assert_fails_with(&out, &addr);
}
