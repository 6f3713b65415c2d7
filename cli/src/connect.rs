//! `orchestrator connect claude-code`: the Claude Code settings that point a project's
//! Claude Code at this backend, in the two places Claude Code reads them:
//!
//! - **hooks**, in the project's settings (`--write .claude/settings.json`): an
//!   `"type": "http"` hook per hook event, posting to `URL/api/ingest/claude-code`;
//! - **telemetry** (`CLAUDE_CODE_ENABLE_TELEMETRY`, `OTEL_*`, `otelHeadersHelper`), in the
//!   user's settings (`~/.claude/settings.json`, or `--user-settings FILE`): Claude Code
//!   ignores these keys in a project's settings (it warns that project-scoped settings
//!   cannot set them), so written there they would never send the cost. `--no-telemetry`
//!   leaves the user's settings alone and prints the shell exports instead.
//!
//! Both files are merged, keeping everything already there. The bearer token is never
//! written: when `ORCHESTRATOR_API_TOKEN` is set, each hook gets `Authorization: Bearer
//! $ORCHESTRATOR_API_TOKEN` with that variable in `allowedEnvVars` (Claude Code fills `$VAR`
//! in header values only for the variables a hook lists), and the OTLP exporter gets its
//! header from an `otelHeadersHelper` command that reads the variable when Claude Code
//! starts.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value as Json};

/// The hook events the ingest maps, as Claude Code 2.1 posts them to HTTP hooks.
/// SessionStart is not among them: Claude Code refuses HTTP hooks for it (the run is
/// created by the session's first event instead). PermissionRequest is: Claude Code asks
/// it before a tool the user has not allowed, and an empty answer lets it decide as usual.
pub const HOOK_EVENTS: [&str; 12] = [
    "UserPromptSubmit",
    "PreToolUse",
    "PermissionRequest",
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
const TOOL_EVENTS: [&str; 4] = [
    "PreToolUse",
    "PermissionRequest",
    "PostToolUse",
    "PostToolUseFailure",
];

/// The variable the token is referenced by, never copied from.
pub const TOKEN_VAR: &str = "ORCHESTRATOR_API_TOKEN";

/// The variable a runner gives the processes it starts: the dispatched run's id. Sent in
/// a hook header, it makes the session a child run of that run.
pub const RUN_ID_VAR: &str = "ORCHESTRATOR_RUN_ID";

/// The header the run id travels in (the ingest reads it).
pub const RUN_ID_HEADER: &str = "X-Orchestrator-Run-Id";

/// Events the backend may hold open while a person decides (an approval, a follow-up):
/// their hooks' timeout covers the hold plus a margin; past it Claude Code gives up on
/// the hook (PermissionRequest is then denied in `-p` mode; PreToolUse and Stop go on).
const HELD_EVENTS: [&str; 3] = ["PreToolUse", "PermissionRequest", "Stop"];

/// Seconds added to a hold for the hook's own timeout.
const HOLD_MARGIN_SECS: u64 = 30;

/// The default hold the hooks are set up for: the server's default APPROVAL_WAIT_SECS.
pub const DEFAULT_HOLD_SECS: u64 = 300;

/// How often Claude Code exports its events (ms): a run's cost shows within about this
/// long, and the backend gets at most one cost event per run per export.
pub const LOGS_EXPORT_INTERVAL_MS: u32 = 2_000;

#[derive(clap::Args, Debug)]
pub struct ConnectArgs {
    /// What to connect (only `claude-code` for now).
    pub tool: String,
    /// The API's base URL.
    #[arg(long, default_value = crate::args::DEFAULT_API_URL)]
    pub url: String,
    /// Print the settings for both files and the shell (the default).
    #[arg(long, conflicts_with = "write")]
    pub print: bool,
    /// Merge the hooks into this project settings file (e.g. .claude/settings.json), and
    /// the telemetry into the user's settings, keeping what is there.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// The user settings file the telemetry goes into [default: ~/.claude/settings.json].
    #[arg(long, value_name = "FILE")]
    pub user_settings: Option<PathBuf>,
    /// Leave the user's settings alone: no telemetry is written, and the shell exports
    /// that turn it on are printed instead (without telemetry a run's cost stays 0).
    #[arg(long)]
    pub no_telemetry: bool,
    /// The longest the backend holds a hook while a person decides (the server's
    /// APPROVAL_WAIT_SECS, a policy's hold_on_stop_secs): PreToolUse, PermissionRequest
    /// and Stop hooks get this plus 30 s as their timeout, the others 5 s.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HOLD_SECS)]
    pub hold_secs: u64,
    /// Accepted for older instructions: telemetry is on by default now.
    #[arg(long, hide = true)]
    pub otel: bool,
}

pub fn run(args: &ConnectArgs) -> Result<()> {
    if args.tool != "claude-code" {
        bail!("unknown tool {:?}; supported: claude-code", args.tool);
    }
    let with_token = std::env::var_os(TOKEN_VAR).is_some_and(|v| !v.is_empty());
    let hooks = hook_settings(&args.url, with_token, args.hold_secs)?;
    let telemetry = telemetry_settings(&args.url, with_token)?;
    let Some(project) = &args.write else {
        print!("{}", printed(&hooks, &telemetry)?);
        return Ok(());
    };
    write_merged(project, &hooks)?;
    println!(
        "hooks: {} HTTP hooks posting to {}/api/ingest/claude-code, merged into {} (PreToolUse, PermissionRequest and Stop may be held up to {} s while a person decides; a session started by `orchestrator runner` reports as a child of its run through ${RUN_ID_VAR})",
        HOOK_EVENTS.len(),
        args.url.trim_end_matches('/'),
        project.display(),
        args.hold_secs + HOLD_MARGIN_SECS
    );
    if args.no_telemetry {
        println!(
            "telemetry: not written (--no-telemetry). Without it a run's cost stays 0; to turn it on for one shell, before `claude`:\n{}",
            shell_exports(&telemetry)
        );
        return Ok(());
    }
    let user = match &args.user_settings {
        Some(path) => path.clone(),
        None => default_user_settings()?,
    };
    write_merged(&user, &telemetry)?;
    println!(
        "telemetry: CLAUDE_CODE_ENABLE_TELEMETRY and OTEL_* merged into {} (Claude Code reads them only from user settings or the environment, never from a project's), exporting to {}/v1/logs every {} s. It applies to every Claude Code session of this user; --no-telemetry leaves that file alone.",
        user.display(),
        args.url.trim_end_matches('/'),
        LOGS_EXPORT_INTERVAL_MS / 1000
    );
    Ok(())
}

/// `$HOME/.claude/settings.json`, where Claude Code keeps a user's settings.
fn default_user_settings() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("HOME is not set: name the user settings file with --user-settings")?;
    Ok(PathBuf::from(home).join(".claude").join("settings.json"))
}

/// What `--print` shows: both files' blocks and the shell alternative, each introduced by
/// a `#` line saying where it goes.
fn printed(hooks: &Json, telemetry: &Json) -> Result<String> {
    Ok(format!(
        "# .claude/settings.json of the project: the hooks\n{}\n\
         # ~/.claude/settings.json: the telemetry (Claude Code ignores these keys in a project's settings)\n{}\n\
         # or, instead of the user settings, in the shell that starts claude:\n{}\n",
        serde_json::to_string_pretty(hooks)?,
        serde_json::to_string_pretty(telemetry)?,
        shell_exports(telemetry)
    ))
}

/// The telemetry environment as `export NAME=value` lines.
fn shell_exports(telemetry: &Json) -> String {
    let mut lines: Vec<String> = telemetry["env"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("export {k}={}", v.as_str().unwrap_or_default()))
        .collect();
    if telemetry.get("otelHeadersHelper").is_some() {
        lines.push(format!(
            "export OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer ${TOKEN_VAR}\""
        ));
    }
    lines.join("\n")
}

fn base_url(url: &str) -> Result<&str> {
    let base = url.trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("--url must be an http:// or https:// URL (got {url:?})");
    }
    Ok(base)
}

/// The project's block: a hook for every event. Each sends the dispatched run's id (when
/// a runner started the session) and, with a token, the bearer header, both by variable.
/// `hold_secs` is the longest the backend holds a request (APPROVAL_WAIT_SECS, a
/// definition's hold_on_stop_secs).
pub fn hook_settings(url: &str, with_token: bool, hold_secs: u64) -> Result<Json> {
    let base = base_url(url)?;
    let mut hook = json!({
        "type": "http",
        "url": format!("{base}/api/ingest/claude-code"),
        // Most answers are immediate; a backend that is down must not hold the agent up.
        "timeout": 5,
    });
    let mut headers = Map::new();
    let mut vars = vec![json!(RUN_ID_VAR)];
    headers.insert(RUN_ID_HEADER.into(), json!(format!("${RUN_ID_VAR}")));
    if with_token {
        headers.insert(
            "Authorization".into(),
            json!(format!("Bearer ${TOKEN_VAR}")),
        );
        vars.push(json!(TOKEN_VAR));
    }
    hook["headers"] = Json::Object(headers);
    hook["allowedEnvVars"] = Json::Array(vars);
    let mut hooks = Map::new();
    for event in HOOK_EVENTS {
        let mut hook = hook.clone();
        if HELD_EVENTS.contains(&event) {
            hook["timeout"] = json!(hold_secs + HOLD_MARGIN_SECS);
        }
        let mut entry = json!({"hooks": [hook]});
        if TOOL_EVENTS.contains(&event) {
            entry["matcher"] = json!("*");
        }
        hooks.insert(event.to_owned(), json!([entry]));
    }
    Ok(json!({"hooks": hooks}))
}

/// The user's block: the telemetry environment (logs over OTLP/HTTP protobuf to
/// `URL/v1/logs`) and, with a token, the helper that sends it.
pub fn telemetry_settings(url: &str, with_token: bool) -> Result<Json> {
    let base = base_url(url)?;
    let mut settings = json!({"env": {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_LOGS_EXPORT_INTERVAL": LOGS_EXPORT_INTERVAL_MS.to_string(),
    }});
    if with_token {
        settings["otelHeadersHelper"] = json!(format!(
            "printf '{{\"Authorization\":\"Bearer %s\"}}' \"${TOKEN_VAR}\""
        ));
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
        let s = hook_settings("http://127.0.0.1:8000/", false, DEFAULT_HOLD_SECS).unwrap();
        for event in HOOK_EVENTS {
            let hook = &s["hooks"][event][0]["hooks"][0];
            assert_eq!(hook["type"], "http");
            assert_eq!(hook["url"], "http://127.0.0.1:8000/api/ingest/claude-code");
            assert!(hook["headers"].get("Authorization").is_none());
            assert_eq!(
                hook["headers"]["X-Orchestrator-Run-Id"],
                "$ORCHESTRATOR_RUN_ID"
            );
            let held = ["PreToolUse", "PermissionRequest", "Stop"].contains(&event);
            assert_eq!(hook["timeout"], if held { 330 } else { 5 }, "{event}");
        }
        assert_eq!(s["hooks"]["PostToolUse"][0]["matcher"], "*");
        assert_eq!(s["hooks"]["PermissionRequest"][0]["matcher"], "*");
        // Claude Code refuses HTTP hooks for SessionStart.
        assert!(s["hooks"].get("SessionStart").is_none());
        // Telemetry never goes into the project's file: Claude Code would ignore it there.
        assert!(s.get("env").is_none());
    }

    #[test]
    fn the_token_is_referenced_by_its_variable_never_written() {
        let s = hook_settings("http://h:1", true, DEFAULT_HOLD_SECS).unwrap();
        let hook = &s["hooks"]["Stop"][0]["hooks"][0];
        assert_eq!(
            hook["headers"]["Authorization"],
            "Bearer $ORCHESTRATOR_API_TOKEN"
        );
        assert_eq!(
            hook["allowedEnvVars"],
            json!(["ORCHESTRATOR_RUN_ID", "ORCHESTRATOR_API_TOKEN"])
        );
        let t = telemetry_settings("http://h:1", true).unwrap();
        assert_eq!(t["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://h:1");
        assert_eq!(t["env"]["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf");
        assert_eq!(t["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"], "1");
        assert!(t["otelHeadersHelper"]
            .as_str()
            .unwrap()
            .contains("$ORCHESTRATOR_API_TOKEN"));
        assert!(shell_exports(&t).contains("Bearer $ORCHESTRATOR_API_TOKEN"));
    }

    #[test]
    fn print_says_where_each_block_goes() {
        let text = printed(
            &hook_settings("http://h:1", false, DEFAULT_HOLD_SECS).unwrap(),
            &telemetry_settings("http://h:1", false).unwrap(),
        )
        .unwrap();
        assert!(text.contains("# .claude/settings.json of the project"));
        assert!(text.contains("# ~/.claude/settings.json"));
        assert!(text.contains("export CLAUDE_CODE_ENABLE_TELEMETRY=1"));
        assert!(text.contains("export OTEL_EXPORTER_OTLP_ENDPOINT=http://h:1"));
    }

    #[test]
    fn merging_keeps_what_is_there_and_is_idempotent() {
        let ours = telemetry_settings("http://h:1", false).unwrap();
        let mut existing = json!({
            "model": "opus",
            "env": {"FOO": "bar"},
            "hooks": {"PostToolUse": [{"matcher": "Edit", "hooks": [{"type": "command", "command": "fmt"}]}]}
        });
        merge(&mut existing, &ours).unwrap();
        merge(
            &mut existing,
            &hook_settings("http://h:1", false, DEFAULT_HOLD_SECS).unwrap(),
        )
        .unwrap();
        let once = existing.clone();
        merge(&mut existing, &ours).unwrap();
        merge(
            &mut existing,
            &hook_settings("http://h:1", false, DEFAULT_HOLD_SECS).unwrap(),
        )
        .unwrap();
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
        let ours = hook_settings("http://h:1", false, DEFAULT_HOLD_SECS).unwrap();
        assert!(merge(&mut json!([1]), &ours).is_err());
        assert!(merge(&mut json!({"hooks": []}), &ours).is_err());
        assert!(hook_settings("ftp://h", false, DEFAULT_HOLD_SECS).is_err());
    }

    #[test]
    fn write_puts_hooks_in_the_project_and_telemetry_in_the_user_settings() {
        let dir = tempfile::tempdir().unwrap();
        let project = dir.path().join("p").join(".claude").join("settings.json");
        let user = dir
            .path()
            .join("home")
            .join(".claude")
            .join("settings.json");
        std::fs::create_dir_all(user.parent().unwrap()).unwrap();
        std::fs::write(&user, r#"{"theme": "dark", "env": {"EDITOR": "vi"}}"#).unwrap();
        let args = ConnectArgs {
            tool: "claude-code".into(),
            url: "http://h:1".into(),
            print: false,
            write: Some(project.clone()),
            user_settings: Some(user.clone()),
            no_telemetry: false,
            hold_secs: DEFAULT_HOLD_SECS,
            otel: false,
        };
        run(&args).unwrap();
        let read = |p: &Path| -> Json {
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        };
        let (p, u) = (read(&project), read(&user));
        assert_eq!(p["hooks"]["SessionEnd"][0]["hooks"][0]["type"], "http");
        assert!(p.get("env").is_none());
        assert_eq!(u["theme"], "dark");
        assert_eq!(u["env"]["EDITOR"], "vi");
        assert_eq!(u["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://h:1");
        assert!(u.get("hooks").is_none());

        // --no-telemetry leaves the user's file as it is.
        let before = std::fs::read_to_string(&user).unwrap();
        let other = dir.path().join("q").join("settings.json");
        run(&ConnectArgs {
            write: Some(other),
            no_telemetry: true,
            url: "http://other:2".into(),
            ..args
        })
        .unwrap();
        assert_eq!(std::fs::read_to_string(&user).unwrap(), before);
    }
}
