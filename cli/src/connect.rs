//! `orchestrator connect claude-code`: the Claude Code settings that point a project's
//! Claude Code at this backend — an `"type": "http"` hook per hook event, posting to
//! `URL/api/ingest/claude-code` — printed, or merged into `.claude/settings.json` keeping
//! everything already there.
//!
//! The bearer token is never written: when `ORCHESTRATOR_API_TOKEN` is set, each hook gets
//! `Authorization: Bearer $ORCHESTRATOR_API_TOKEN` with that variable in `allowedEnvVars`
//! (Claude Code fills `$VAR` in header values only for the variables a hook lists), and
//! the OTLP exporter gets its header from an `otelHeadersHelper` command that reads the
//! variable when Claude Code starts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value as Json};

/// The hook events Claude Code posts and the ingest maps (others are harmless too).
pub const HOOK_EVENTS: [&str; 12] = [
    "SessionStart",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "Notification",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "SessionEnd",
];

/// Events whose hooks take a tool-name matcher (`*`: every tool).
const TOOL_EVENTS: [&str; 3] = ["PreToolUse", "PostToolUse", "PostToolUseFailure"];

/// The variable the token is referenced by, never copied from.
pub const TOKEN_VAR: &str = "ORCHESTRATOR_API_TOKEN";

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// What to connect (only `claude-code` for now).
    pub tool: String,
    /// The API's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Print the settings (the default).
    #[arg(long, conflicts_with = "write")]
    pub print: bool,
    /// Merge the settings into this file (e.g. .claude/settings.json), keeping what is there.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Also set the OpenTelemetry environment (`OTEL_*`): Claude Code exports its events
    /// (tokens, cost, model, latency per API request) to this backend's /v1/logs over
    /// OTLP/HTTP protobuf.
    #[arg(long)]
    pub otel: bool,
}

pub fn run(args: &ConnectArgs) -> Result<()> {
    if args.tool != "claude-code" {
        bail!("unknown tool {:?}; supported: claude-code", args.tool);
    }
    let with_token = std::env::var_os(TOKEN_VAR).is_some_and(|v| !v.is_empty());
    let settings = claude_code_settings(&args.url, with_token, args.otel)?;
    match &args.write {
        None => println!("{}", serde_json::to_string_pretty(&settings)?),
        Some(path) => {
            write_merged(path, &settings)?;
            let what = if args.otel {
                "hooks and OpenTelemetry environment (OTLP/HTTP to /v1/logs)"
            } else {
                "hooks"
            };
            println!(
                "wrote the Claude Code {what} for {} into {}",
                args.url,
                path.display()
            );
        }
    }
    Ok(())
}

/// The settings block: hooks for every event, and (with `otel`) the telemetry environment.
pub fn claude_code_settings(url: &str, with_token: bool, otel: bool) -> Result<Json> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url must be an http:// or https:// URL (got {url:?})");
    }
    let mut hook = json!({
        "type": "http",
        "url": format!("{base}/api/ingest/claude-code"),
        // The answer is immediate; a backend that is down must not hold the agent up.
        "timeout": 5,
    });
    if with_token {
        hook["headers"] = json!({"Authorization": format!("Bearer ${TOKEN_VAR}")});
        hook["allowedEnvVars"] = json!([TOKEN_VAR]);
    }
    let mut hooks = Map::new();
    for event in HOOK_EVENTS {
        let mut entry = json!({"hooks": [hook.clone()]});
        if TOOL_EVENTS.contains(&event) {
            entry["matcher"] = json!("*");
        }
        hooks.insert(event.to_owned(), json!([entry]));
    }
    let mut settings = json!({"hooks": hooks});
    if otel {
        settings["env"] = json!({
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        });
        if with_token {
            settings["otelHeadersHelper"] = json!(format!(
                "printf '{{\"Authorization\":\"Bearer %s\"}}' \"${TOKEN_VAR}\""
            ));
        }
    }
    Ok(settings)
}

/// Merge `ours` into `existing`: other keys, other hooks and other env entries stay; a
/// hook entry of ours already there (same URL) is not added twice.
pub fn merge(existing: &mut Json, ours: &Json) -> Result<()> {
    let Some(target) = existing.as_object_mut() else {
        bail!("the settings file is not a JSON object");
    };
    for (key, value) in ours.as_object().into_iter().flatten() {
        match key.as_str() {
            "hooks" => {
                let hooks = target.entry("hooks").or_insert_with(|| json!({}));
                let Some(hooks) = hooks.as_object_mut() else {
                    bail!("\"hooks\" in the settings file is not an object");
                };
                for (event, entries) in value.as_object().into_iter().flatten() {
                    let list = hooks.entry(event.clone()).or_insert_with(|| json!([]));
                    let Some(list) = list.as_array_mut() else {
                        bail!("hooks.{event} in the settings file is not an array");
                    };
                    for entry in entries.as_array().into_iter().flatten() {
                        let url = &entry["hooks"][0]["url"];
                        let present = list.iter().any(|e| {
                            e["hooks"]
                                .as_array()
                                .is_some_and(|hs| hs.iter().any(|h| &h["url"] == url))
                        });
                        if !present {
                            list.push(entry.clone());
                        }
                    }
                }
            }
            "env" => {
                let env = target.entry("env").or_insert_with(|| json!({}));
                let Some(env) = env.as_object_mut() else {
                    bail!("\"env\" in the settings file is not an object");
                };
                for (name, v) in value.as_object().into_iter().flatten() {
                    env.insert(name.clone(), v.clone());
                }
            }
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(())
}

/// Read `path` (absent: `{}`), merge, write it back through a temporary file and a rename.
fn write_merged(path: &Path, ours: &Json) -> Result<()> {
    let mut existing = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON; fix or remove it first", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({}),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    merge(&mut existing, ours).with_context(|| format!("cannot merge into {}", path.display()))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), serde_json::to_string_pretty(&existing)? + "\n")?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_posts_to_the_ingest_route() {
        let s = claude_code_settings("http://127.0.0.1:8000/", false, false).unwrap();
        for event in HOOK_EVENTS {
            let hook = &s["hooks"][event][0]["hooks"][0];
            assert_eq!(hook["type"], "http");
            assert_eq!(hook["url"], "http://127.0.0.1:8000/api/ingest/claude-code");
            assert!(hook.get("headers").is_none());
        }
        assert_eq!(s["hooks"]["PostToolUse"][0]["matcher"], "*");
        assert!(s.get("env").is_none());
    }

    #[test]
    fn the_token_is_referenced_by_its_variable_never_written() {
        let s = claude_code_settings("http://h:1", true, true).unwrap();
        let hook = &s["hooks"]["Stop"][0]["hooks"][0];
        assert_eq!(
            hook["headers"]["Authorization"],
            "Bearer $ORCHESTRATOR_API_TOKEN"
        );
        assert_eq!(hook["allowedEnvVars"], json!(["ORCHESTRATOR_API_TOKEN"]));
        assert_eq!(s["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://h:1");
        assert_eq!(s["env"]["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf");
        assert!(s["otelHeadersHelper"]
            .as_str()
            .unwrap()
            .contains("$ORCHESTRATOR_API_TOKEN"));
    }

    #[test]
    fn merging_keeps_what_is_there_and_is_idempotent() {
        let ours = claude_code_settings("http://h:1", false, true).unwrap();
        let mut existing = json!({
            "model": "opus",
            "env": {"FOO": "bar"},
            "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "fmt"}]}]}
        });
        merge(&mut existing, &ours).unwrap();
        let once = existing.clone();
        merge(&mut existing, &ours).unwrap();
        assert_eq!(existing, once, "a second connect adds nothing");
        assert_eq!(existing["model"], "opus");
        assert_eq!(existing["env"]["FOO"], "bar");
        assert_eq!(existing["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"], "1");
        let post = existing["hooks"]["PostToolUse"].as_array().unwrap();
        assert_eq!(post.len(), 2);
        assert_eq!(post[0]["hooks"][0]["command"], "fmt");
    }

    #[test]
    fn a_settings_file_that_is_not_an_object_is_refused() {
        let ours = claude_code_settings("http://h:1", false, false).unwrap();
        assert!(merge(&mut json!([1]), &ours).is_err());
        assert!(merge(&mut json!({"hooks": []}), &ours).is_err());
        assert!(claude_code_settings("ftp://h", false, false).is_err());
    }

    #[test]
    fn write_merges_into_a_file_and_creates_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".claude").join("settings.json");
        let ours = claude_code_settings("http://h:1", false, false).unwrap();
        write_merged(&path, &ours).unwrap();
        std::fs::write(&path, r#"{"permissions": {"allow": ["Bash"]}}"#).unwrap();
        write_merged(&path, &ours).unwrap();
        let back: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back["permissions"]["allow"], json!(["Bash"]));
        assert_eq!(back["hooks"]["SessionEnd"][0]["hooks"][0]["type"], "http");
    }
}
