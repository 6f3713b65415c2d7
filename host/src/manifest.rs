// Over 600 lines: 190 of them are its tests, kept beside the parsing rules they check.
//! Spin application manifest (`spin.toml`, `spin_manifest_version = 2`) parsing.
//!
//! Interpreted: the application name, `[variables]`, `[[trigger.http]]` routes, and
//! for each `[component.<id>]` its `source`, `sqlite_databases`, `key_value_stores`,
//! `allowed_outbound_hosts`, `files`, `exclude_files`, `variables`, `environment` and
//! `build`. What this host cannot run is refused here with one line rather than
//! ignored: a trigger other than `http` (Spin runs Redis and others; this host serves
//! only HTTP) and a remote `source = { url, digest }`. Fields that change nothing at
//! run time (`description`, `tool`, ...) are accepted and ignored. Templates in
//! component variables are kept as written: resolving them is the job of
//! [`crate::variables`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// A parsed and validated Spin v2 manifest.
///
/// Guarantees: every trigger names a component that exists, every route starts with
/// `/`, component ids and variable names follow Spin's naming rules, and every
/// application variable has exactly one of a default or `required = true`.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file this was read from (as given; may be relative).
    pub path: PathBuf,
    /// The directory containing the manifest: relative paths in it resolve here.
    pub dir: PathBuf,
    /// `[application] name`.
    pub name: String,
    /// `[application] version`, if present.
    pub version: Option<String>,
    /// `[variables]`: application variables by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// `[[trigger.http]]` entries in manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// `[component.<id>]` tables by id.
    pub components: BTreeMap<String, Component>,
}

/// One application variable declaration (`[variables] name = { ... }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDecl {
    /// The value used when nothing overrides it. `None` exactly when `required`.
    pub default: Option<String>,
    /// A value must be supplied at run time.
    pub required: bool,
    /// The value is sensitive: never log it.
    pub secret: bool,
}

/// One `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    /// The route, or private (reachable only by service chaining; never routed here).
    pub route: HttpRoute,
    /// The id of the component that handles it (it exists in [`Manifest::components`]).
    pub component: String,
}

/// The `route` of an HTTP trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpRoute {
    /// A route pattern as written, e.g. `/api/:id/...`; always starts with `/`.
    Path(String),
    /// `route = { private = true }`.
    Private,
}

/// One `[component.<id>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The component id (the table key).
    pub id: String,
    /// The `.wasm` file, resolved against the manifest directory.
    pub source: PathBuf,
    /// SQLite database labels the component may open.
    pub sqlite_databases: Vec<String>,
    /// Component variables: name to template (`"{{ app_var }}"`, literal text, or both).
    pub variables: BTreeMap<String, String>,
    /// Environment variables given to the component through WASI.
    pub environment: BTreeMap<String, String>,
    /// Key-value store labels the component may open.
    pub key_value_stores: Vec<String>,
    /// `allowed_outbound_hosts` entries as written (templates unrendered).
    pub allowed_outbound_hosts: Vec<String>,
    /// `files`: what is mapped read-only into the guest's file system.
    pub files: Vec<FileMount>,
    /// `exclude_files`: globs (relative to the manifest directory) left out of `files`.
    pub exclude_files: Vec<String>,
    /// `[component.<id>.build]`, if present.
    pub build: Option<BuildConfig>,
}

/// One entry of a component's `files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMount {
    /// A path or glob relative to the manifest directory, e.g. `"static/**/*"`; the
    /// matched files appear at the same relative paths under the guest's `/`.
    Pattern(String),
    /// `{ source = "dir", destination = "/dir" }`: a directory mounted at an absolute
    /// guest path.
    Placement {
        /// The host directory, relative to the manifest directory.
        source: String,
        /// The absolute guest path.
        destination: String,
    },
}

/// `[component.<id>.build]`: how `spin build` (or a compatible tool) builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    /// Commands run in order (`command` may be one string or a list).
    pub commands: Vec<String>,
    /// Working directory as written, relative to the manifest directory; `None` means
    /// the manifest directory itself.
    pub workdir: Option<PathBuf>,
    /// Paths or globs to watch, relative to the working directory.
    pub watch: Vec<String>,
}

impl BuildConfig {
    /// The directory the commands run in: `workdir` resolved against `manifest_dir`.
    pub fn resolved_workdir(&self, manifest_dir: &Path) -> PathBuf {
        match &self.workdir {
            Some(w) => manifest_dir.join(w),
            None => manifest_dir.to_path_buf(),
        }
    }
}

// ---- raw serde shapes -------------------------------------------------------

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: Option<toml::Value>,
    spin_version: Option<toml::Value>,
    application: Option<RawApplication>,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
    /// Every other trigger type (`redis`, `cron`, `sqs`, ...): refused by name.
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: RawRoute,
    component: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    files: Vec<RawFileMount>,
    #[serde(default)]
    exclude_files: Vec<String>,
    build: Option<RawBuild>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFileMount {
    Pattern(String),
    Placement { source: String, destination: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    command: RawCommands,
    workdir: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommands {
    One(String),
    Many(Vec<String>),
}

impl Manifest {
    /// Read and parse the manifest at `path`.
    ///
    /// Errors are one line and name the file: a missing file, TOML syntax or type
    /// errors with line and column, or a failed validation rule.
    pub fn from_file(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read manifest {}: {e}", path.display()))?;
        Manifest::parse(&text, path)
    }

    /// Parse manifest `text` as if read from `path` (used to resolve relative paths
    /// and to name the file in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            anyhow!(
                "invalid manifest {}: {}",
                path.display(),
                crate::diag::toml_error(text, &e)
            )
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        convert(raw, path, &dir).map_err(|e| anyhow!("invalid manifest {}: {e:#}", path.display()))
    }

    /// The HTTP routes (not private ones) with their component ids, in manifest order.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.http_triggers
            .iter()
            .filter_map(|t| match &t.route {
                HttpRoute::Path(p) => Some((p.clone(), t.component.clone())),
                HttpRoute::Private => None,
            })
            .collect()
    }
}

fn convert(raw: RawManifest, path: &Path, dir: &Path) -> Result<Manifest> {
    match raw.spin_manifest_version {
        Some(toml::Value::Integer(2)) => {}
        Some(other) => bail!("spin_manifest_version must be 2 (found {other})"),
        None if raw.spin_version.is_some() => {
            bail!("this is a Spin v1 manifest (spin_version); only spin_manifest_version = 2 is supported")
        }
        None => bail!("missing spin_manifest_version = 2"),
    }
    let application = raw
        .application
        .ok_or_else(|| anyhow!("missing [application] table"))?;
    if let Some(kind) = raw.trigger.other.keys().next() {
        bail!(
            "trigger type `{kind}` is not supported by this host (Spin runs it; this host serves only HTTP triggers)"
        );
    }

    let mut variables = BTreeMap::new();
    for (name, v) in raw.variables {
        check_variable_name(&name).with_context(|| format!("[variables] {name}"))?;
        match (&v.default, v.required) {
            (Some(_), true) => {
                bail!("variable `{name}` is required and also has a default; use one")
            }
            (None, false) => bail!("variable `{name}` needs a default or `required = true`"),
            _ => {}
        }
        variables.insert(
            name,
            VariableDecl {
                default: v.default,
                required: v.required,
                secret: v.secret,
            },
        );
    }

    let mut components = BTreeMap::new();
    for (id, c) in raw.component {
        check_component_id(&id)?;
        let source = match c.source {
            toml::Value::String(s) => dir.join(s),
            toml::Value::Table(t) if t.contains_key("url") => bail!(
                "component `{id}`: remote source {} cannot be fetched by this host (only a local file `source` is supported); download it and set `source` to the file",
                t["url"]
            ),
            _ => bail!("component `{id}`: only a local file `source` is supported by this host"),
        };
        for label in &c.key_value_stores {
            if label.is_empty() {
                bail!("component `{id}`: empty key_value_stores label");
            }
        }
        let mut files = Vec::new();
        for f in c.files {
            files.push(match f {
                RawFileMount::Pattern(p) => FileMount::Pattern(p),
                RawFileMount::Placement {
                    source,
                    destination,
                } => {
                    if !destination.starts_with('/') {
                        bail!("component `{id}`: files destination `{destination}` must be an absolute path");
                    }
                    FileMount::Placement {
                        source,
                        destination,
                    }
                }
            });
        }
        for label in &c.sqlite_databases {
            if label.is_empty() {
                bail!("component `{id}`: empty sqlite_databases label");
            }
        }
        for name in c.variables.keys() {
            check_variable_name(name).with_context(|| format!("component `{id}` variable"))?;
        }
        let build = c.build.map(|b| BuildConfig {
            commands: match b.command {
                RawCommands::One(c) => vec![c],
                RawCommands::Many(cs) => cs,
            },
            workdir: b.workdir.map(PathBuf::from),
            watch: b.watch,
        });
        components.insert(
            id.clone(),
            Component {
                id,
                source,
                sqlite_databases: c.sqlite_databases,
                variables: c.variables,
                environment: c.environment,
                key_value_stores: c.key_value_stores,
                allowed_outbound_hosts: c.allowed_outbound_hosts,
                files,
                exclude_files: c.exclude_files,
                build,
            },
        );
    }

    let mut http_triggers = Vec::new();
    for (i, t) in raw.trigger.http.into_iter().enumerate() {
        let component = match t.component {
            Some(toml::Value::String(id)) => id,
            Some(_) => bail!(
                "[[trigger.http]] #{}: inline component tables are not supported; reference a [component.<id>]",
                i + 1
            ),
            None => bail!("[[trigger.http]] #{}: missing `component`", i + 1),
        };
        if !components.contains_key(&component) {
            bail!(
                "[[trigger.http]] #{} refers to unknown component `{component}`",
                i + 1
            );
        }
        let route = match t.route {
            RawRoute::Path(p) => {
                if !p.starts_with('/') {
                    bail!(
                        "[[trigger.http]] #{}: route `{p}` must start with `/`",
                        i + 1
                    );
                }
                HttpRoute::Path(p)
            }
            RawRoute::Private { private: true } => HttpRoute::Private,
            RawRoute::Private { private: false } => {
                bail!("[[trigger.http]] #{}: `private` must be true", i + 1)
            }
        };
        http_triggers.push(HttpTrigger { route, component });
    }

    Ok(Manifest {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        name: application.name,
        version: application.version,
        variables,
        http_triggers,
        components,
    })
}

/// Spin variable names are lower_snake_case: `[a-z][a-z0-9]*(_[a-z0-9]+)*`.
pub fn check_variable_name(name: &str) -> Result<()> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.split('_').all(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        bail!("`{name}` is not a valid variable name (lower_snake_case, starting with a letter)")
    }
}

/// Spin component ids are words of letters and digits joined by `-`, each word
/// starting with a letter (e.g. `agents`, `my-api2`).
fn check_component_id(id: &str) -> Result<()> {
    let ok = id.split('-').all(|w| {
        w.starts_with(|c: char| c.is_ascii_alphabetic())
            && w.chars().all(|c| c.is_ascii_alphanumeric())
    });
    if ok {
        Ok(())
    } else {
        bail!("`{id}` is not a valid component id (words of letters and digits joined by `-`)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"
version = "0.1.0"

[variables]
web_ui_port = { default = "5173" }
api_token = { required = true, secret = true }

[[trigger.http]]
route = "/api/items/..."
component = "items"

[[trigger.http]]
route = "/..."
component = "meta"

[[trigger.http]]
route = { private = true }
component = "meta"

[component.items]
source = "target/wasm32-wasip2/release/items.wasm"
sqlite_databases = ["default"]
allowed_outbound_hosts = []
[component.items.variables]
cors_origin = "http://localhost:{{ web_ui_port }}"
token = "{{ api_token }}"
[component.items.build]
command = "cargo build --target wasm32-wasip2 --release"
workdir = "components/items"
watch = ["src/**/*.rs", "Cargo.toml"]

[component.meta]
source = "meta.wasm"
environment = { RUST_LOG = "info" }
key_value_stores = ["default", "cache"]
allowed_outbound_hosts = ["https://*.example.com", "http://self"]
files = ["static/**/*", { source = "assets", destination = "/assets" }]
exclude_files = ["static/secret.txt"]
[component.meta.build]
command = ["echo one", "echo two"]
"#;

    #[test]
    fn parses_a_full_manifest() {
        let m = Manifest::parse(GOOD, Path::new("/app/spin.toml")).unwrap();
        assert_eq!(m.name, "demo");
        assert_eq!(m.version.as_deref(), Some("0.1.0"));
        assert_eq!(m.dir, Path::new("/app"));
        assert_eq!(
            m.variables["web_ui_port"],
            VariableDecl {
                default: Some("5173".into()),
                required: false,
                secret: false
            }
        );
        assert!(m.variables["api_token"].required && m.variables["api_token"].secret);
        assert_eq!(
            m.routes(),
            vec![
                ("/api/items/...".to_string(), "items".to_string()),
                ("/...".to_string(), "meta".to_string())
            ]
        );
        assert_eq!(m.http_triggers[2].route, HttpRoute::Private);
        let items = &m.components["items"];
        assert_eq!(
            items.source,
            Path::new("/app/target/wasm32-wasip2/release/items.wasm")
        );
        assert_eq!(items.sqlite_databases, vec!["default"]);
        assert_eq!(
            items.variables["cors_origin"],
            "http://localhost:{{ web_ui_port }}"
        );
        let build = items.build.as_ref().unwrap();
        assert_eq!(
            build.commands,
            vec!["cargo build --target wasm32-wasip2 --release"]
        );
        assert_eq!(
            build.resolved_workdir(&m.dir),
            Path::new("/app/components/items")
        );
        assert_eq!(build.watch.len(), 2);
        assert!(items.allowed_outbound_hosts.is_empty());
        let meta = &m.components["meta"];
        assert_eq!(meta.environment["RUST_LOG"], "info");
        assert_eq!(meta.key_value_stores, vec!["default", "cache"]);
        assert_eq!(meta.allowed_outbound_hosts.len(), 2);
        assert_eq!(
            meta.files,
            vec![
                FileMount::Pattern("static/**/*".into()),
                FileMount::Placement {
                    source: "assets".into(),
                    destination: "/assets".into()
                }
            ]
        );
        assert_eq!(meta.exclude_files, vec!["static/secret.txt"]);
        assert_eq!(meta.build.as_ref().unwrap().commands.len(), 2);
        assert_eq!(meta.build.as_ref().unwrap().resolved_workdir(&m.dir), m.dir);
    }

    #[test]
    fn relative_manifest_path_resolves_against_its_dir() {
        let m = Manifest::parse(GOOD, Path::new("spin.toml")).unwrap();
        assert_eq!(m.dir, Path::new("."));
        assert_eq!(m.components["meta"].source, Path::new("./meta.wasm"));
    }

    fn err(text: &str) -> String {
        let e = Manifest::parse(text, Path::new("/x/spin.toml")).unwrap_err();
        let s = e.to_string();
        assert!(!s.contains('\n'), "error must be one line: {s}");
        assert!(s.contains("/x/spin.toml"), "error must name the file: {s}");
        s
    }

    #[test]
    fn toml_syntax_error_names_line_and_column() {
        let s = err("spin_manifest_version = 2\n[application]\nname = \n");
        assert!(s.contains("line 3"), "{s}");
        assert!(s.contains("column"), "{s}");
    }

    #[test]
    fn type_error_names_line() {
        let s = err("spin_manifest_version = 2\n[application]\nname = \"a\"\n[component.a]\nsource = \"a.wasm\"\nsqlite_databases = \"default\"\n");
        assert!(s.contains("line 6"), "{s}");
    }

    #[test]
    fn validation_errors() {
        let base = "spin_manifest_version = 2\n[application]\nname = \"a\"\n";
        assert!(err("spin_version = \"1\"\nname = \"a\"\n").contains("v1"));
        assert!(err("[application]\nname = \"a\"\n").contains("spin_manifest_version"));
        assert!(err(&format!(
            "{base}[[trigger.http]]\nroute = \"/\"\ncomponent = \"nope\"\n"
        ))
        .contains("unknown component `nope`"));
        assert!(err(&format!(
            "{base}[[trigger.http]]\nroute = \"x\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n"
        ))
        .contains("must start with `/`"));
        assert!(
            err(&format!("{base}[variables]\nBad = {{ default = \"1\" }}\n"))
                .contains("not a valid variable name")
        );
        assert!(
            err(&format!("{base}[variables]\nv = {{ secret = true }}\n"))
                .contains("needs a default")
        );
        assert!(err(&format!(
            "{base}[variables]\nv = {{ default = \"1\", required = true }}\n"
        ))
        .contains("required"));
        assert!(err(&format!(
            "{base}[component.c]\nsource = {{ url = \"https://x\", digest = \"sha256:0\" }}\n"
        ))
        .contains("remote source \"https://x\" cannot be fetched"));
        assert!(err(&format!(
            "{base}[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n"
        ))
        .contains(
            "trigger type `redis` is not supported by this host (Spin runs it; this host serves only HTTP triggers)"
        ));
        assert!(
            err(&format!("{base}[component.Bad_Id]\nsource = \"c.wasm\"\n"))
                .contains("component id")
        );
    }

    #[test]
    fn variable_names() {
        for ok in ["a", "web_ui_port", "v2", "a_1"] {
            check_variable_name(ok).unwrap();
        }
        for bad in ["", "A", "_a", "a_", "a__b", "1a", "a-b"] {
            assert!(check_variable_name(bad).is_err(), "{bad}");
        }
    }
}
