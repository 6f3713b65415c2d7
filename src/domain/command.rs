//! A definition's `command`: the argv a runner starts for a dispatched run, with the
//! placeholders `{input}`, `{run_id}` and `{session_id}` filled in per run. No shell is
//! involved: each element is one argument, so an input never becomes code.

use serde_json::Value as Json;

/// The placeholders a command may use.
pub const PLACEHOLDERS: &[&str] = &["input", "run_id", "session_id"];
/// The most arguments a command may have.
pub const MAX_ARGS: usize = 256;
/// The longest argument, in characters.
pub const MAX_ARG_CHARS: usize = 4096;

/// Check a command a client sent: a non-empty array of strings whose first element is a
/// program, with known placeholders only. The error names the element (`command[2]`).
pub fn validate(value: &Json) -> Result<Vec<String>, (String, String)> {
    let Json::Array(items) = value else {
        return Err((
            "command".into(),
            "command must be a non-empty array of strings (the program, then its arguments)".into(),
        ));
    };
    if items.is_empty() || items.len() > MAX_ARGS {
        return Err((
            "command".into(),
            format!("command must hold 1 to {MAX_ARGS} strings (the program, then its arguments)"),
        ));
    }
    let mut argv = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("command[{i}]");
        let Some(arg) = item.as_str() else {
            return Err((at.clone(), format!("{at} must be a string")));
        };
        if arg.chars().count() > MAX_ARG_CHARS {
            return Err((
                at.clone(),
                format!("{at} must be at most {MAX_ARG_CHARS} characters"),
            ));
        }
        if arg.contains('\0') {
            return Err((at.clone(), format!("{at} must not contain a NUL character")));
        }
        if i == 0 && arg.trim().is_empty() {
            return Err((at, "command[0] must name the program to start".into()));
        }
        if let Some(unknown) = placeholders(arg).find(|p| !PLACEHOLDERS.contains(p)) {
            return Err((
                at.clone(),
                format!(
                    "{at} uses the placeholder {{{unknown}}}, which does not exist; use {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        argv.push(arg.to_owned());
    }
    Ok(argv)
}

/// The `{name}` placeholders of one argument (`{` followed by a word and `}`).
fn placeholders(arg: &str) -> impl Iterator<Item = &str> {
    arg.match_indices('{').filter_map(move |(at, _)| {
        // `${NAME}` is the shell's, not ours.
        if arg[..at].ends_with('$') {
            return None;
        }
        let rest = &arg[at + 1..];
        let end = rest.find('}')?;
        let name = &rest[..end];
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .then_some(name)
    })
}

/// The argv for one run: each placeholder replaced by its value, in one pass (a value
/// that itself contains `{run_id}` stays as it is; the shell's `${NAME}` is left alone). A
/// placeholder that does not exist (a command another program stored) is an error naming
/// it: nothing is started.
pub fn resolve(
    argv: &[String],
    input: &str,
    run_id: &str,
    session_id: &str,
) -> Result<Vec<String>, String> {
    if let Some(unknown) = argv
        .iter()
        .flat_map(|arg| placeholders(arg))
        .find(|p| !PLACEHOLDERS.contains(p))
    {
        return Err(format!(
            "command has an unknown placeholder {{{unknown}}}; known: {{input}}, {{run_id}}, {{session_id}}"
        ));
    }
    Ok(argv
        .iter()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                out.push_str(&rest[..open]);
                let after = &rest[open..];
                let shell = out.ends_with('$');
                let value = PLACEHOLDERS.iter().filter(|_| !shell).find_map(|p| {
                    let token = format!("{{{p}}}");
                    after.starts_with(&token).then(|| {
                        let value = match *p {
                            "input" => input,
                            "run_id" => run_id,
                            _ => session_id,
                        };
                        (value, token.len())
                    })
                });
                match value {
                    Some((value, len)) => {
                        out.push_str(value);
                        rest = &after[len..];
                    }
                    None => {
                        out.push('{');
                        rest = &after[1..];
                    }
                }
            }
            out.push_str(rest);
            out
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_are_filled_once_per_argument() {
        let argv = validate(&json!([
            "uv",
            "run",
            "adws/plan.py",
            "{input}",
            "--run={run_id}"
        ]))
        .unwrap();
        assert_eq!(
            resolve(&argv, "fix {run_id} bug", "r1", "s1").unwrap(),
            ["uv", "run", "adws/plan.py", "fix {run_id} bug", "--run=r1"]
        );
        assert_eq!(
            resolve(&["{session_id}{".into()], "", "", "s").unwrap(),
            ["s{"]
        );
        // The shell's own braces are not ours.
        assert_eq!(
            resolve(&["echo ${HOME} {run_id}".into()], "", "r", "").unwrap(),
            ["echo ${HOME} r"]
        );
        assert!(resolve(&["{task}".into()], "", "", "")
            .unwrap_err()
            .contains("{task}"));
    }

    #[test]
    fn bad_commands_are_named() {
        assert_eq!(validate(&json!([])).unwrap_err().0, "command");
        assert_eq!(validate(&json!("ls -la")).unwrap_err().0, "command");
        assert_eq!(validate(&json!(["ls", 3])).unwrap_err().0, "command[1]");
        assert_eq!(validate(&json!([" "])).unwrap_err().0, "command[0]");
        let (field, message) = validate(&json!(["echo", "{task}"])).unwrap_err();
        assert_eq!(field, "command[1]");
        assert!(message.contains("{task}"), "{message}");
        // Braces that are not a placeholder (JSON, shell) are fine.
        assert!(validate(&json!(["sh", "-c", "echo '{}' ${HOME}"])).is_ok());
    }
}
