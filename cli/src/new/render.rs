//! The project's files from the embedded templates (minijinja), the migrations and the
//! prebuilt components; and the filters that quote a value for TOML, `.env` and the shell.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior};

use super::plan::GeneratedFile;
use super::{
    Project, COMPONENTS, DEFAULT_COMPONENTS_DIR, DEFAULT_DATABASE_PATH, DEFAULT_WEB_UI_PORT,
};

/// The repo's own application name, as in its `spin.toml`.
pub const REPO_APP_NAME: &str = "agent-orchestrator";
/// Where the repo's `spin.toml` takes the components from (its build output).
const REPO_SOURCE_DIR: &str = "components/target/wasm32-wasip2/release";
/// Where a generated project keeps its prebuilt components.
const PREBUILT_SOURCE_DIR: &str = "components";

/// The embedded templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "spin.toml.j2",
        include_str!("../../../templates/spin.toml.j2"),
    ),
    (
        "runtime-config.toml.j2",
        include_str!("../../../templates/runtime-config.toml.j2"),
    ),
    ("env.j2", include_str!("../../../templates/env.j2")),
    (
        "env.sample.j2",
        include_str!("../../../templates/env.sample.j2"),
    ),
    (
        "README.md.j2",
        include_str!("../../../templates/README.md.j2"),
    ),
    (
        "gitignore.j2",
        include_str!("../../../templates/gitignore.j2"),
    ),
];

/// The minijinja environment of the templates: block tags on lines of their own leave no
/// blank lines (trim/lstrip blocks), the final newline is kept, no auto-escaping, and an
/// undefined variable is an error (so a template and its context cannot silently drift).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.add_filter("toml_string", |value: String| toml_string(&value));
    env.add_filter("dotenv_value", |value: String| dotenv_value(&value));
    env.add_filter("shell_quote", |value: String| shell_quote(&value));
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("template {name} does not parse: {e:#}"));
    }
    env
}

fn render(template: &str, ctx: minijinja::Value) -> Result<String> {
    let env = environment();
    env.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| anyhow!("rendering {template}: {e:#}"))
}

fn render_manifest(name: &str, web_ui_port: u16, prebuilt: bool) -> Result<String> {
    let source_dir = if prebuilt {
        PREBUILT_SOURCE_DIR
    } else {
        REPO_SOURCE_DIR
    };
    render(
        "spin.toml.j2",
        context! { name, web_ui_port, source_dir, prebuilt },
    )
}

fn render_runtime_config(database_path: &str) -> Result<String> {
    render("runtime-config.toml.j2", context! { database_path })
}

/// The repo's own `spin.toml`, rendered from the template with the repo's values (its
/// name, web UI port 5173, sources in the components' build output, build sections).
/// Equal, byte for byte, to the repo's `spin.toml`; the tests hold it to that.
pub fn render_repo_manifest() -> String {
    render_manifest(REPO_APP_NAME, DEFAULT_WEB_UI_PORT, false)
        .expect("the embedded spin.toml template renders with the repo's values")
}

/// The repo's own `runtime-config.toml` (database at `data/orchestrator.db`), rendered
/// from the template; equal, byte for byte, to the repo's file.
pub fn render_repo_runtime_config() -> String {
    render_runtime_config(DEFAULT_DATABASE_PATH)
        .expect("the embedded runtime-config template renders with the repo's values")
}

/// The `.env.sample` listing every variable; the repo's own `.env.sample` is this text.
pub fn render_env_sample() -> String {
    render("env.sample.j2", minijinja::context! {})
        .expect("the embedded .env.sample template renders without values")
}

/// The migrations as the generated project carries them: `migrations/<name>.sql` with
/// the bytes the core embeds (and applies on first use), so they cannot differ.
pub fn migration_files() -> Vec<GeneratedFile> {
    orchestrator_core::migrations::MIGRATIONS
        .iter()
        .map(|m| GeneratedFile {
            path: format!("migrations/{}.sql", m.name),
            contents: m.sql.as_bytes().to_vec(),
        })
        .collect()
}

/// Every file of a project except the components: spin.toml (prebuilt, no build
/// sections), runtime-config.toml, .env, .env.sample, README.md, .gitignore and the
/// migrations, in that order. Fails when `project` does not validate.
pub fn render_project(project: &Project) -> Result<Vec<GeneratedFile>> {
    project.validate()?;
    let migrations = migration_files();
    let migration_names: Vec<&str> = migrations
        .iter()
        .map(|m| m.path.trim_start_matches("migrations/"))
        .collect();
    let Project {
        name,
        http_port,
        websocket_port,
        web_ui_port,
        database_path,
    } = project;
    let values = context! {
        name, http_port, websocket_port, web_ui_port, database_path,
        components => COMPONENTS, migrations => migration_names,
    };
    let text = |path: &str, contents: String| GeneratedFile {
        path: path.to_owned(),
        contents: contents.into_bytes(),
    };
    let mut files = vec![
        text("spin.toml", render_manifest(name, *web_ui_port, true)?),
        text("runtime-config.toml", render_runtime_config(database_path)?),
        text(".env", render("env.j2", values.clone())?),
        text(".env.sample", render_env_sample()),
        text("README.md", render("README.md.j2", values.clone())?),
        text(".gitignore", render("gitignore.j2", values)?),
    ];
    files.extend(migrations);
    Ok(files)
}

/// The four prebuilt components, read from `dir`, as `components/<id>.wasm`. Fails with
/// one line naming what is missing (and how to build it) when any of them is absent.
pub fn component_files(dir: &Path) -> Result<Vec<GeneratedFile>> {
    let missing: Vec<String> = COMPONENTS
        .iter()
        .map(|id| format!("{id}.wasm"))
        .filter(|file| !dir.join(file).is_file())
        .collect();
    if !missing.is_empty() {
        let how = if dir == Path::new(DEFAULT_COMPONENTS_DIR) {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let repo = repo.canonicalize().unwrap_or(repo);
            format!(
                "run `orchestrator build` in {} first (or pass --components-dir)",
                repo.display()
            )
        } else {
            "run `orchestrator build` first".to_owned()
        };
        bail!(
            "the components are not built: {} missing in {}; {how}",
            missing.join(", "),
            dir.display()
        );
    }
    COMPONENTS
        .iter()
        .map(|id| {
            let source = dir.join(format!("{id}.wasm"));
            let contents =
                std::fs::read(&source).with_context(|| format!("reading {}", source.display()))?;
            Ok(GeneratedFile {
                path: format!("components/{id}.wasm"),
                contents,
            })
        })
        .collect()
}

/// `value` as a TOML basic string, quotes included.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

fn is_plain(value: &str, extra: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c) || extra.contains(c))
}

/// `value` as a `.env` value that dotenvy reads back unchanged: bare when plain, else
/// single-quoted (no escapes, no `$` substitution), else double-quoted with escapes.
fn dotenv_value(value: &str) -> String {
    if is_plain(value, ":,@+%") {
        value.to_owned()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        let mut out = String::from("\"");
        for c in value.chars() {
            if matches!(c, '\\' | '"' | '$') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

/// `value` quoted for a POSIX shell (bare when plain).
pub(super) fn shell_quote(value: &str) -> String {
    if is_plain(value, ":,@+%=") {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_their_formats() {
        assert_eq!(dotenv_value("data/orchestrator.db"), "data/orchestrator.db");
        assert_eq!(dotenv_value("my data/x.db"), "'my data/x.db'");
        assert_eq!(dotenv_value("it's $HOME"), r#""it's \$HOME""#);
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(
            toml_string("data/orchestrator.db"),
            r#""data/orchestrator.db""#
        );
        let tricky = "a\"b\\c'd";
        let parsed: toml::Value = toml::from_str(&format!("v = {}", toml_string(tricky))).unwrap();
        assert_eq!(parsed["v"].as_str(), Some(tricky));
    }
}
