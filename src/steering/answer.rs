//! The answers a Claude Code hook obeys, in each event's own shape (API.md, "Version 3 →
//! Steering"; observed with Claude Code 2.1.x).

use serde_json::{json, Value as Json};

/// No instruction: the agent goes on as it would have.
pub fn none() -> Json {
    json!({})
}

/// Stop the session. `continue: false` alone stops it at UserPromptSubmit, PostToolUse and
/// Stop; at PreToolUse the pending tool would still run unless the answer also denies it;
/// at PermissionRequest only a deny with `interrupt` stops it.
pub fn stop(event: &str, reason: &str) -> Json {
    match event {
        "PreToolUse" => json!({
            "continue": false,
            "stopReason": reason,
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            },
        }),
        "PermissionRequest" => json!({
            "continue": false,
            "stopReason": reason,
            "hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": { "behavior": "deny", "message": reason, "interrupt": true },
            },
        }),
        _ => json!({ "continue": false, "stopReason": reason }),
    }
}

/// Refuse one tool call (the model is told `reason`); the session goes on. Events other
/// than the two that decide on tools get no instruction.
pub fn deny(event: &str, reason: &str) -> Json {
    decision(event, "deny", reason)
}

/// Let one tool call through without Claude Code asking its user.
pub fn allow(event: &str, reason: &str) -> Json {
    decision(event, "allow", reason)
}

fn decision(event: &str, behavior: &str, reason: &str) -> Json {
    match event {
        "PreToolUse" => json!({
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": behavior,
                "permissionDecisionReason": reason,
            },
        }),
        "PermissionRequest" if behavior == "deny" => json!({
            "hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": { "behavior": "deny", "message": reason },
            },
        }),
        "PermissionRequest" => json!({
            "hookSpecificOutput": {
                "hookEventName": "PermissionRequest",
                "decision": { "behavior": "allow" },
            },
        }),
        _ => none(),
    }
}

/// Keep the session going with `text` as its next input (a Stop's block: Claude Code
/// shows the agent "Stop hook feedback:\n<text>").
pub fn follow_up(text: &str) -> Json {
    json!({ "decision": "block", "reason": text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_gets_the_shape_it_obeys() {
        let stop_pre = stop("PreToolUse", "budget");
        assert_eq!(stop_pre["continue"], false);
        assert_eq!(stop_pre["hookSpecificOutput"]["permissionDecision"], "deny");
        let stop_perm = stop("PermissionRequest", "stopped");
        assert_eq!(
            stop_perm["hookSpecificOutput"]["decision"]["interrupt"],
            true
        );
        assert_eq!(
            stop("Stop", "x"),
            json!({"continue": false, "stopReason": "x"})
        );
        assert_eq!(
            allow("PermissionRequest", "ok")["hookSpecificOutput"]["decision"],
            json!({"behavior": "allow"})
        );
        assert_eq!(
            deny("PermissionRequest", "no")["hookSpecificOutput"]["decision"],
            json!({"behavior": "deny", "message": "no"})
        );
        assert_eq!(
            deny("PreToolUse", "rule")["hookSpecificOutput"]["permissionDecisionReason"],
            "rule"
        );
        assert_eq!(deny("PostToolUse", "x"), none());
        assert_eq!(
            follow_up("go on"),
            json!({"decision": "block", "reason": "go on"})
        );
    }
}
