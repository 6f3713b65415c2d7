//! Tool rules in Claude Code's own permission-rule syntax, so a person writes in a policy
//! what they already write in `settings.json`:
//!
//! - `Tool` matches every use of the tool (`Bash`, `WebFetch`, `mcp__github`: every tool of
//!   that MCP server); `*` in a tool name is a glob (`mcp__github__*`).
//! - `Bash(spec)`: the command. `npm run test:*` (legacy prefix form) matches commands that
//!   start with `npm run test`; `*` anywhere is a glob (`git * main`); a space before a
//!   trailing `*` is a word boundary (`ls *` matches `ls` and `ls -la`, not `lsof`). A
//!   compound command (`a && b`, `a; b`, `a | b`) matches when any of its parts does, so a
//!   deny or ask rule cannot be walked around by chaining.
//! - `Read(path)`, `Edit(path)`: gitignore-style paths. `//abs` is absolute, `~/p` under a
//!   home folder, `/p` relative to the project (the hook's `cwd`), `p` or `./p` relative to
//!   `cwd`, a pattern with no `/` matches a file name at any depth; `**` spans folders.
//!   `Edit` rules cover every tool that changes files (Edit, Write, MultiEdit,
//!   NotebookEdit); `Read` rules every tool that reads them (Read, Glob, Grep, LS).
//! - `WebFetch(domain:example.com)`: the URL's host, or a subdomain of it.
//! - `Tool(param:value)`: the tool input's `param`, a glob (`Agent(subagent_type:Explore)`).
//! - Any other `Tool(spec)`: a glob over the input's main string (command, path, URL,
//!   pattern, subagent type, query).

use serde_json::{Map, Value as Json};

/// The longest rule accepted, in characters.
pub const MAX_RULE_CHARS: usize = 1024;

/// A parsed rule. Its text is kept as written: it is what a denial and an approval cite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    text: String,
    tool: String,
    spec: Option<String>,
}

impl Rule {
    /// Parse one rule; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Rule, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err("a rule must not be empty".into());
        }
        if trimmed.chars().count() > MAX_RULE_CHARS {
            return Err(format!(
                "a rule must be at most {MAX_RULE_CHARS} characters"
            ));
        }
        let (tool, spec) = match trimmed.find('(') {
            None => (trimmed, None),
            Some(open) => {
                let Some(inner) = trimmed[open + 1..].strip_suffix(')') else {
                    return Err(format!(
                        "{trimmed:?} opens a parenthesis it does not close at its end; write Tool or Tool(specifier)"
                    ));
                };
                (&trimmed[..open], Some(inner))
            }
        };
        if tool.is_empty()
            || !tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*' | '.'))
        {
            return Err(format!(
                "{trimmed:?} does not start with a tool name (letters, digits, _ - . or *)"
            ));
        }
        let spec = match spec {
            None => None,
            Some(s) if s.trim().is_empty() => {
                return Err(format!(
                    "{trimmed:?} has an empty specifier; write {tool} to match every use"
                ))
            }
            Some("*") => None,
            Some(s) => Some(s.to_owned()),
        };
        if let Some(spec) = &spec {
            if tool == "WebFetch" && !spec.starts_with("domain:") {
                return Err(format!(
                    "{trimmed:?}: a WebFetch rule names a domain, e.g. WebFetch(domain:example.com)"
                ));
            }
        }
        Ok(Rule {
            text: trimmed.to_owned(),
            tool: tool.to_owned(),
            spec,
        })
    }

    /// The rule as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether a call of `tool` with `input`, made in `cwd`, falls under this rule.
    pub fn matches(&self, tool: &str, input: &Json, cwd: Option<&str>) -> bool {
        if !self.tool_matches(tool) {
            return false;
        }
        let Some(spec) = &self.spec else {
            return true;
        };
        let empty = Map::new();
        let input = input.as_object().unwrap_or(&empty);
        let field = |name: &str| input.get(name).and_then(Json::as_str);
        // `param:value` names an input field, for any tool (but a Bash command may itself
        // contain a colon, and `domain:` is WebFetch's own).
        if let Some((param, value)) = spec.split_once(':') {
            if tool != "Bash" && param != "domain" && is_identifier(param) {
                return match input.get(param) {
                    Some(Json::String(s)) => glob(value, s),
                    Some(other @ (Json::Number(_) | Json::Bool(_))) => {
                        glob(value, &other.to_string())
                    }
                    _ => false,
                };
            }
        }
        match self.tool.as_str() {
            "Bash" => field("command").is_some_and(|command| bash_matches(spec, command)),
            "WebFetch" => field("url").is_some_and(|url| domain_matches(spec, url)),
            "Read" | "Edit" | "Write" | "MultiEdit" | "NotebookEdit" | "Glob" | "Grep" | "LS" => {
                ["file_path", "notebook_path", "path"]
                    .iter()
                    .find_map(|name| field(name))
                    .is_some_and(|path| path_matches(spec, path, cwd))
            }
            _ => [
                "command",
                "file_path",
                "path",
                "url",
                "pattern",
                "subagent_type",
                "query",
            ]
            .iter()
            .find_map(|name| field(name))
            .is_some_and(|value| glob(spec, value)),
        }
    }

    fn tool_matches(&self, tool: &str) -> bool {
        const EDITS: &[&str] = &["Edit", "Write", "MultiEdit", "NotebookEdit"];
        const READS: &[&str] = &["Read", "Glob", "Grep", "LS"];
        match self.tool.as_str() {
            "Edit" => EDITS.contains(&tool),
            "Read" => READS.contains(&tool),
            // A bare MCP server name covers each of its tools.
            server if server.starts_with("mcp__") && !server[5..].contains("__") => {
                tool == server || tool.starts_with(&format!("{server}__"))
            }
            name if name.contains('*') => glob(name, tool),
            name => name == tool,
        }
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `*` matches any run of characters (`\*` a star); the rest literally; whole string.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts: Vec<Vec<char>> = vec![Vec::new()];
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'*') => {
                chars.next();
                parts.last_mut().expect("one part").push('*');
            }
            '*' => parts.push(Vec::new()),
            c => parts.last_mut().expect("one part").push(c),
        }
    }
    let text: Vec<char> = text.chars().collect();
    let (first, rest) = parts.split_first().expect("one part");
    if !text.starts_with(first) {
        return false;
    }
    if rest.is_empty() {
        return text.len() == first.len();
    }
    let mut at = first.len();
    let (last, middle) = rest.split_last().expect("one part");
    for part in middle {
        match find(&text[at..], part) {
            Some(i) => at += i + part.len(),
            None => return false,
        }
    }
    text.len() >= at + last.len() && text.ends_with(last)
}

fn find(haystack: &[char], needle: &[char]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One Bash rule against a command: the whole command or any part of a compound one.
fn bash_matches(spec: &str, command: &str) -> bool {
    let command = command.trim();
    one_command_matches(spec, command)
        || split_compound(command)
            .iter()
            .any(|part| one_command_matches(spec, part))
}

fn one_command_matches(spec: &str, command: &str) -> bool {
    if let Some(prefix) = spec.strip_suffix(":*") {
        return command.starts_with(prefix);
    }
    // `ls *`: the command itself, or the command and arguments (a word boundary).
    if let Some(stem) = spec.strip_suffix(" *") {
        if !stem.contains('*') && command == stem {
            return true;
        }
    }
    glob(spec, command)
}

/// The simple commands of a compound one, split on `&&`, `||`, `;`, `|`, `&` and new
/// lines outside quotes.
fn split_compound(command: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), '\\') => {
                current.push(c);
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ';' | '\n' | '|' | '&') => {
                if matches!(chars.peek(), Some('&' | '|')) {
                    chars.next();
                }
                parts.push(std::mem::take(&mut current));
            }
            (None, c) => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `domain:example.com` against a URL: its host, or a subdomain of it; `domain:*` any.
fn domain_matches(spec: &str, url: &str) -> bool {
    let domain = spec.trim_start_matches("domain:").to_ascii_lowercase();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    }
    .to_ascii_lowercase();
    if domain.contains('*') {
        return glob(&domain, &host);
    }
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// A gitignore-style path pattern against a tool's path.
fn path_matches(spec: &str, path: &str, cwd: Option<&str>) -> bool {
    let cwd = cwd.unwrap_or("").trim_end_matches('/');
    let absolute = if path.starts_with('/') || cwd.is_empty() {
        path.to_owned()
    } else {
        format!("{cwd}/{}", path.trim_start_matches("./"))
    };
    let pattern = if let Some(abs) = spec.strip_prefix("//") {
        format!("/{abs}")
    } else if let Some(home) = spec.strip_prefix("~/") {
        // Which home is unknown to the server: any user's.
        return ["/root/", "/home/*/", "/Users/*/"]
            .iter()
            .any(|base| path_glob(&format!("{base}{home}"), &absolute));
    } else if let Some(project) = spec.strip_prefix('/') {
        format!("{cwd}/{project}")
    } else if !spec.trim_start_matches("./").contains('/') {
        // No slash: a name at any depth, as in .gitignore.
        let name = spec.trim_start_matches("./");
        return absolute
            .rsplit('/')
            .next()
            .is_some_and(|file| glob(name, file))
            || path_glob(&format!("**/{name}/**"), &absolute);
    } else {
        format!("{cwd}/{}", spec.trim_start_matches("./"))
    };
    path_glob(&pattern, &absolute)
}

/// Path glob: `**` spans folders, `*` stays within one; a pattern naming a folder covers
/// what is under it.
fn path_glob(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let path: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    segments_match(&pattern, &path, true)
}

fn segments_match(pattern: &[&str], path: &[&str], prefix_ok: bool) -> bool {
    match pattern.split_first() {
        None => path.is_empty() || prefix_ok,
        Some((&"**", rest)) => {
            (0..=path.len()).any(|skip| segments_match(rest, &path[skip..], prefix_ok))
        }
        Some((segment, rest)) => match path.split_first() {
            Some((name, tail)) => glob(segment, name) && segments_match(rest, tail, prefix_ok),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bash(rule: &str, command: &str) -> bool {
        Rule::parse(rule).unwrap().matches(
            "Bash",
            &json!({ "command": command }),
            Some("/work/app"),
        )
    }

    fn file(rule: &str, tool: &str, path: &str) -> bool {
        Rule::parse(rule)
            .unwrap()
            .matches(tool, &json!({ "file_path": path }), Some("/work/app"))
    }

    #[test]
    fn a_bare_tool_name_matches_every_use_of_that_tool_only() {
        let rule = Rule::parse("WebFetch").unwrap();
        assert!(rule.matches("WebFetch", &json!({"url": "https://x.org"}), None));
        assert!(!rule.matches("WebSearch", &json!({}), None));
        assert!(Rule::parse("Bash(*)")
            .unwrap()
            .matches("Bash", &json!({}), None));
    }

    #[test]
    fn bash_exact_prefix_and_wildcard_forms_follow_claude_codes_docs() {
        // The docs' examples: exact command, `:*` prefix, `*` anywhere.
        assert!(bash("Bash(npm run build)", "npm run build"));
        assert!(!bash("Bash(npm run build)", "npm run build:prod"));
        assert!(bash("Bash(npm run test:*)", "npm run test"));
        assert!(bash("Bash(npm run test:*)", "npm run test -- --watch"));
        assert!(!bash("Bash(npm run test:*)", "npm run lint"));
        assert!(bash("Bash(git * main)", "git push origin main"));
        assert!(!bash("Bash(git * main)", "git push origin dev"));
        // A space before the trailing star is a word boundary.
        assert!(bash("Bash(ls *)", "ls -la"));
        assert!(bash("Bash(ls *)", "ls"));
        assert!(!bash("Bash(ls *)", "lsof -i"));
        assert!(bash("Bash(rm -rf:*)", "rm -rf /tmp/x"));
    }

    #[test]
    fn a_compound_command_matches_when_any_part_does() {
        assert!(bash("Bash(rm -rf:*)", "cd /tmp && rm -rf build"));
        assert!(bash("Bash(git push:*)", "make; git push origin main"));
        assert!(bash("Bash(curl:*)", "echo x | curl -d @- http://x"));
        // Separators inside quotes do not split.
        assert!(!bash("Bash(rm:*)", "echo 'a; rm -rf /'"));
    }

    #[test]
    fn path_rules_are_gitignore_style_and_edit_covers_every_writing_tool() {
        assert!(file("Edit(/src/**/*.ts)", "Edit", "/work/app/src/a/b.ts"));
        assert!(file("Edit(/src/**/*.ts)", "Write", "/work/app/src/b.ts"));
        assert!(!file("Edit(/src/**/*.ts)", "Read", "/work/app/src/b.ts"));
        assert!(!file("Edit(/src/**/*.ts)", "Edit", "/work/app/lib/b.ts"));
        assert!(file("Read(//etc/**)", "Read", "/etc/passwd"));
        assert!(file("Read(//etc/**)", "Grep", "/etc/ssh/sshd_config"));
        assert!(file("Read(~/.zshrc)", "Read", "/home/dev/.zshrc"));
        assert!(file("Read(.env)", "Read", "/work/app/config/.env"));
        assert!(file("Read(*.env)", "Read", "/work/app/prod.env"));
        assert!(!file("Read(*.env)", "Read", "/work/app/env.txt"));
        assert!(file("Edit(docs/*.md)", "Edit", "docs/a.md"));
        assert!(file("Write(secrets)", "Write", "/work/app/secrets/key.pem"));
    }

    #[test]
    fn webfetch_domains_cover_subdomains_and_param_rules_read_the_named_field() {
        let rule = Rule::parse("WebFetch(domain:example.com)").unwrap();
        assert!(rule.matches("WebFetch", &json!({"url": "https://example.com/a"}), None));
        assert!(rule.matches(
            "WebFetch",
            &json!({"url": "https://docs.example.com"}),
            None
        ));
        assert!(!rule.matches("WebFetch", &json!({"url": "https://badexample.com"}), None));
        let agent = Rule::parse("Agent(subagent_type:Explore)").unwrap();
        assert!(agent.matches("Agent", &json!({"subagent_type": "Explore"}), None));
        assert!(!agent.matches("Agent", &json!({"subagent_type": "Plan"}), None));
    }

    #[test]
    fn mcp_server_names_and_globs_cover_their_tools() {
        let server = Rule::parse("mcp__github").unwrap();
        assert!(server.matches("mcp__github__create_issue", &json!({}), None));
        assert!(!server.matches("mcp__gitlab__x", &json!({}), None));
        assert!(Rule::parse("mcp__github__*").unwrap().matches(
            "mcp__github__list",
            &json!({}),
            None
        ));
    }

    #[test]
    fn malformed_rules_are_refused_with_a_reason() {
        for bad in [
            "",
            "  ",
            "Bash(",
            "Bash()",
            "(ls)",
            "Bash ls",
            "WebFetch(example.com)",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(Rule::parse(" Bash(ls) ").unwrap().as_str(), "Bash(ls)");
    }
}
