//! `orchestrator new`: scaffold a project that runs with `cd DIR && orchestrator up`.
//!
//! The templates of the repo's `templates/` folder are embedded in the binary and rendered
//! with minijinja. A generated project holds `spin.toml`, `runtime-config.toml`, `.env`,
//! `.env.sample`, `README.md`, `.gitignore`, the migrations (the very bytes the core embeds
//! and applies) and the four components as prebuilt `components/<id>.wasm` files, copied
//! from this repo's build output: its `spin.toml` has no build sections.
//!
//! The same `spin.toml` and `runtime-config.toml` templates, rendered with the repo's own
//! values ([`render_repo_manifest`], [`render_repo_runtime_config`]), reproduce the repo's
//! files byte for byte (a test checks it), so the two cannot drift apart.
//!
//! Everything is checked before anything is written: the name, the ports, the database
//! path, the target folder and the components. Existing files are skipped unless
//! `--force`; each file is written to a temporary file in its folder and renamed into
//! place, so a failed write never leaves a half-written file.

use std::fmt::Write as _;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior};

/// The components, in manifest order. Each ships as `components/<id>.wasm`.
pub const COMPONENTS: [&str; 6] = ["agents", "runtime", "events", "ingest", "ui", "meta"];

/// Default of `--http-port` (as `HTTP_PORT`).
pub const DEFAULT_HTTP_PORT: u16 = 8000;
/// Default of `--websocket-port` (as `WEBSOCKET_PORT`).
pub const DEFAULT_WEBSOCKET_PORT: u16 = 8001;
/// Default of `--web-ui-port` (as `WEB_UI_PORT`).
pub const DEFAULT_WEB_UI_PORT: u16 = 5173;
/// Default of `--database-path` (as `DATABASE_PATH`).
pub const DEFAULT_DATABASE_PATH: &str = "data/orchestrator.db";

/// Where this repo's build (`orchestrator build`) puts the components; the default of
/// `--components-dir`.
pub const DEFAULT_COMPONENTS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../components/target/wasm32-wasip2/release"
);

/// The repo's own application name, as in its `spin.toml`.
pub const REPO_APP_NAME: &str = "agent-orchestrator";
/// Where the repo's `spin.toml` takes the components from (its build output).
const REPO_SOURCE_DIR: &str = "components/target/wasm32-wasip2/release";
/// Where a generated project keeps its prebuilt components.
const PREBUILT_SOURCE_DIR: &str = "components";

/// The embedded templates, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("spin.toml.j2", include_str!("../../templates/spin.toml.j2")),
    (
        "runtime-config.toml.j2",
        include_str!("../../templates/runtime-config.toml.j2"),
    ),
    ("env.j2", include_str!("../../templates/env.j2")),
    (
        "env.sample.j2",
        include_str!("../../templates/env.sample.j2"),
    ),
    ("README.md.j2", include_str!("../../templates/README.md.j2")),
    ("gitignore.j2", include_str!("../../templates/gitignore.j2")),
];

/// `orchestrator new DIR`: the command-line flags.
#[derive(clap::Args, Debug, Clone)]
pub struct NewArgs {
    /// Folder of the new project (created, with its parents, if missing).
    pub dir: PathBuf,
    /// Application name: lower-case kebab case starting with a letter (Spin's rule).
    /// Default: DIR's folder name.
    #[arg(long)]
    pub name: Option<String>,
    /// Port of the API (HTTP_PORT in the project's .env).
    #[arg(long, default_value_t = DEFAULT_HTTP_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub http_port: u16,
    /// Port of the WebSocket endpoint (WEBSOCKET_PORT).
    #[arg(long, default_value_t = DEFAULT_WEBSOCKET_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub websocket_port: u16,
    /// Port of the web UI, for CORS (WEB_UI_PORT).
    #[arg(long, default_value_t = DEFAULT_WEB_UI_PORT, value_parser = clap::value_parser!(u16).range(1..))]
    pub web_ui_port: u16,
    /// The SQLite file, relative to the project folder (DATABASE_PATH and the path in
    /// runtime-config.toml).
    #[arg(long, default_value = DEFAULT_DATABASE_PATH)]
    pub database_path: String,
    /// Folder holding the built agents.wasm, runtime.wasm, events.wasm and meta.wasm.
    /// Default: this repo's build output (components/target/wasm32-wasip2/release).
    #[arg(long)]
    pub components_dir: Option<PathBuf>,
    /// Overwrite existing files (without it they are skipped and listed).
    #[arg(long)]
    pub force: bool,
    /// Print what would be created, skipped or overwritten; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl NewArgs {
    /// The flags as if only `DIR` were given: default ports and database path, the name
    /// from DIR, the repo's components, no `--force`, no `--dry-run`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            name: None,
            http_port: DEFAULT_HTTP_PORT,
            websocket_port: DEFAULT_WEBSOCKET_PORT,
            web_ui_port: DEFAULT_WEB_UI_PORT,
            database_path: DEFAULT_DATABASE_PATH.to_owned(),
            components_dir: None,
            force: false,
            dry_run: false,
        }
    }
}

/// The values a project is rendered with. [`Project::validate`] checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// `[application] name` in spin.toml.
    pub name: String,
    pub http_port: u16,
    pub websocket_port: u16,
    pub web_ui_port: u16,
    /// DATABASE_PATH in .env and the `default` database's path in runtime-config.toml.
    pub database_path: String,
}

impl Project {
    /// Ok when the name is a valid Spin application name ([`validate_name`]), every port
    /// is in 1..=65535 and the three ports differ, and the database path is non-empty and
    /// free of control characters.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        let ports = [
            ("--http-port", self.http_port),
            ("--websocket-port", self.websocket_port),
            ("--web-ui-port", self.web_ui_port),
        ];
        for (i, (flag, port)) in ports.iter().enumerate() {
            if *port == 0 {
                bail!("{flag} must be in 1..=65535, not 0");
            }
            if let Some((other, _)) = ports[i + 1..].iter().find(|(_, p)| p == port) {
                bail!("{flag} and {other} are both {port}: each needs a port of its own");
            }
        }
        if self.database_path.trim().is_empty() {
            bail!("--database-path must not be empty");
        }
        if self.database_path.chars().any(char::is_control) {
            bail!("--database-path must not contain control characters (such as newlines)");
        }
        Ok(())
    }
}

/// True when `name` matches `^[a-z][a-z0-9]*(-[a-z0-9]+)*$`: lower-case kebab case
/// starting with a letter, as Spin requires of application names.
pub fn is_valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// Ok for a valid name ([`is_valid_name`]); otherwise an error that says the rule and,
/// when one can be derived, suggests a valid name.
pub fn validate_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        return Ok(());
    }
    let mut message = format!(
        "invalid application name {name:?}: Spin needs lower-case kebab case starting with \
         a letter (a-z, 0-9, single hyphens between)"
    );
    if let Some(suggestion) = suggest_name(name) {
        let _ = write!(message, ", e.g. {suggestion:?}");
    }
    bail!(message)
}

/// A valid name close to `name` (lower-cased, other characters turned into single
/// hyphens, leading non-letters dropped), or None when nothing is left.
pub fn suggest_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || (c.is_ascii_digit() && !out.is_empty()) {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    is_valid_name(&out).then_some(out)
}

/// One file of a generated project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Relative to the project folder, `/`-separated.
    pub path: String,
    pub contents: Vec<u8>,
}

/// What `new` does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The file does not exist: it is written.
    Create,
    /// The file exists and `--force` is off: it is left untouched.
    Skip,
    /// The file exists and `--force` is on: it is replaced.
    Overwrite,
}

impl Action {
    fn label(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Skip => "skip",
            Action::Overwrite => "overwrite",
        }
    }
}

/// One file of a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub file: GeneratedFile,
    pub action: Action,
}

/// Everything `new` will do, fully checked: applying it writes the files marked
/// [`Action::Create`] or [`Action::Overwrite`] and nothing else.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The project folder, as given.
    pub dir: PathBuf,
    pub project: Project,
    /// Every file of the project, in a fixed order (configuration, docs, migrations,
    /// components).
    pub files: Vec<PlannedFile>,
}

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

/// The application name `new` takes from the project folder: its last component (of the
/// canonical path when it exists, so `.` works).
fn name_from_dir(dir: &Path) -> Result<String> {
    let resolved = if dir.exists() {
        dir.canonicalize()
    } else {
        std::path::absolute(dir)
    }
    .with_context(|| format!("resolving {}", dir.display()))?;
    resolved
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            anyhow!(
                "cannot take an application name from {}: pass --name NAME",
                dir.display()
            )
        })
}

/// Check everything and decide, per file, create / skip / overwrite. Reads the
/// filesystem, writes nothing. Fails, with one line, on an invalid name (explicit or
/// taken from DIR), port or database path, when DIR exists but is not a folder, when a
/// project file (or a folder on its way) exists as something else, and when a component
/// is missing.
pub fn plan(args: &NewArgs) -> Result<Plan> {
    let name = match &args.name {
        Some(name) => {
            validate_name(name)?;
            name.clone()
        }
        None => {
            let name = name_from_dir(&args.dir)?;
            if let Err(err) = validate_name(&name) {
                bail!(
                    "{err} (the name is taken from the folder {}; pass --name NAME)",
                    args.dir.display()
                );
            }
            name
        }
    };
    let project = Project {
        name,
        http_port: args.http_port,
        websocket_port: args.websocket_port,
        web_ui_port: args.web_ui_port,
        database_path: args.database_path.clone(),
    };
    project.validate()?;
    if args.dir.exists() && !args.dir.is_dir() {
        bail!("{} exists and is not a folder", args.dir.display());
    }
    let components_dir = args
        .components_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_COMPONENTS_DIR));
    let mut files = render_project(&project)?;
    files.extend(component_files(&components_dir)?);

    let mut planned = Vec::with_capacity(files.len());
    for file in files {
        let target = args.dir.join(&file.path);
        // A folder on the way that exists as a file would fail the write later.
        let mut folder = PathBuf::new();
        let segments: Vec<&str> = file.path.split('/').collect();
        for segment in &segments[..segments.len() - 1] {
            folder.push(segment);
            let path = args.dir.join(&folder);
            if path.exists() && !path.is_dir() {
                bail!("{} exists and is not a folder", path.display());
            }
        }
        let action = match std::fs::symlink_metadata(&target) {
            Err(e) if e.kind() == ErrorKind::NotFound => Action::Create,
            Err(e) => return Err(e).with_context(|| format!("checking {}", target.display())),
            Ok(_) if target.is_dir() => bail!("{} exists and is a folder", target.display()),
            Ok(_) if args.force => Action::Overwrite,
            Ok(_) => Action::Skip,
        };
        planned.push(PlannedFile { file, action });
    }
    Ok(Plan {
        dir: args.dir.clone(),
        project,
        files: planned,
    })
}

impl Plan {
    /// The files marked `action`, by relative path.
    pub fn paths(&self, action: Action) -> Vec<&str> {
        self.files
            .iter()
            .filter(|f| f.action == action)
            .map(|f| f.file.path.as_str())
            .collect()
    }

    /// Write every file marked create or overwrite, creating folders as needed. Each file
    /// goes to a temporary file in its own folder and is renamed into place: a failure
    /// leaves no half-written file (files written before it stay). A file marked create
    /// that appeared since planning is not clobbered (the write fails instead). Skipped
    /// files are not touched.
    pub fn apply(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let mut written = 0;
        for planned in &self.files {
            if planned.action == Action::Skip {
                continue;
            }
            let target = self.dir.join(&planned.file.path);
            write_atomically(
                &target,
                &planned.file.contents,
                planned.action == Action::Overwrite,
            )
            .with_context(|| {
                format!(
                    "writing {} ({written} files written before it)",
                    target.display()
                )
            })?;
            written += 1;
        }
        Ok(())
    }

    /// What was done (or, with `dry_run`, what would be done): one line per file with its
    /// action, the skipped files with how to overwrite them, and the next steps.
    pub fn summary(&self, dry_run: bool) -> String {
        let mut out = String::new();
        let dir = self.dir.display();
        let name = &self.project.name;
        if dry_run {
            let _ = writeln!(
                out,
                "Dry run: would write project {name:?} into {dir} (nothing is written):"
            );
        } else {
            let _ = writeln!(out, "Project {name:?} in {dir}:");
        }
        for planned in &self.files {
            let _ = writeln!(
                out,
                "  {:<9}  {}",
                planned.action.label(),
                planned.file.path
            );
        }
        let skipped = self.paths(Action::Skip);
        if !skipped.is_empty() {
            let _ = writeln!(
                out,
                "{} {} existing file{} (pass --force to overwrite): {}",
                if dry_run { "Would skip" } else { "Skipped" },
                skipped.len(),
                if skipped.len() == 1 { "" } else { "s" },
                skipped.join(", ")
            );
        }
        let cd = shell_quote(&self.dir.to_string_lossy());
        let _ = writeln!(out, "Next steps:");
        let _ = writeln!(out, "  cd {cd} && orchestrator up");
        let _ = writeln!(
            out,
            "  then: http://127.0.0.1:{}/health and ws://127.0.0.1:{}/ws/agent-status (see README.md)",
            self.project.http_port, self.project.websocket_port
        );
        out
    }
}

/// `orchestrator new`: plan (checking everything), then write unless `--dry-run`, and
/// print the summary and next steps. Nothing is written when any check fails.
pub fn run(args: &NewArgs) -> Result<()> {
    let plan = plan(args)?;
    if !args.dry_run {
        plan.apply()?;
    }
    print!("{}", plan.summary(args.dry_run));
    Ok(())
}

fn write_atomically(target: &Path, contents: &[u8], replace: bool) -> Result<()> {
    let folder = target
        .parent()
        .ok_or_else(|| anyhow!("{} has no folder", target.display()))?;
    std::fs::create_dir_all(folder).with_context(|| format!("creating {}", folder.display()))?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".orchestrator-new-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // An ordinary file (umask applies), not the temporary file's owner-only mode.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut temp = builder.tempfile_in(folder)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    if replace {
        temp.persist(target).map_err(|e| e.error)?;
    } else {
        temp.persist_noclobber(target).map_err(|e| e.error)?;
    }
    Ok(())
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
fn shell_quote(value: &str) -> String {
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
    fn names_follow_spins_rule() {
        for good in ["a", "my-app", "app2", "a1-b2-c3", "agent-orchestrator"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in [
            "", "-a", "a-", "a--b", "1app", "My-App", "my_app", "my app", "my.app", "é",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(suggest_name("My_App 2").as_deref(), Some("my-app-2"));
        assert_eq!(suggest_name("2cool").as_deref(), Some("cool"));
        assert_eq!(suggest_name("__"), None);
    }

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
