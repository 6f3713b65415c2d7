//! `orchestrator new`: what a generated project contains, that its manifest is one Spin
//! accepts, how reruns, `--force` and `--dry-run` behave, what is refused before anything
//! is written, and that the templates reproduce the repo's own files (no drift).
//!
//! The components are fakes (a few bytes each) in a temporary folder passed as
//! `components_dir`: these tests don't need the real build. Running a generated project
//! end to end is the `up` tests' job.
//! Over 600 lines on purpose: one generated project's checks share its fixtures.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::Parser;
use orchestrator_cli::new::{
    self, plan, render_repo_manifest, render_repo_runtime_config, Action, NewArgs, COMPONENTS,
};
use tempfile::TempDir;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The files every generated project has besides its migrations and components.
const CONFIG_FILES: [&str; 6] = [
    "spin.toml",
    "runtime-config.toml",
    ".env",
    ".env.sample",
    "README.md",
    ".gitignore",
];

/// A temporary folder with four fake components, and the project folder beside it.
struct Fixture {
    tmp: TempDir,
}

impl Fixture {
    fn new() -> Self {
        let tmp = TempDir::new().unwrap();
        let components = tmp.path().join("built");
        fs::create_dir(&components).unwrap();
        for id in COMPONENTS {
            fs::write(components.join(format!("{id}.wasm")), fake_wasm(id)).unwrap();
        }
        Self { tmp }
    }

    fn components_dir(&self) -> PathBuf {
        self.tmp.path().join("built")
    }

    fn project_dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `new <tmp>/<dir>` with the fake components.
    fn args(&self, dir: &str) -> NewArgs {
        NewArgs {
            components_dir: Some(self.components_dir()),
            ..NewArgs::new(self.project_dir(dir))
        }
    }
}

fn fake_wasm(id: &str) -> Vec<u8> {
    format!("\0asm fake {id} component").into_bytes()
}

/// Every file under `dir`, relative path → (contents, mtime).
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let meta = fs::metadata(&path).unwrap();
                out.insert(rel, (fs::read(&path).unwrap(), meta.modified().unwrap()));
            }
        }
    }
    out
}

fn repo_migrations() -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(repo_root().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn expected_files() -> Vec<String> {
    let mut files: Vec<String> = CONFIG_FILES.iter().map(|f| f.to_string()).collect();
    files.extend(repo_migrations().keys().map(|m| format!("migrations/{m}")));
    files.extend(COMPONENTS.iter().map(|id| format!("components/{id}.wasm")));
    files.sort();
    files
}

fn toml_file(path: &Path) -> toml::Value {
    toml::from_str(&fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", path.display()))
}

fn dotenv(path: &Path) -> BTreeMap<String, String> {
    dotenvy::from_path_iter(path)
        .unwrap()
        .map(|item| item.unwrap())
        .collect()
}

fn spin_schema_errors(manifest: &toml::Value) -> Vec<String> {
    let path = repo_root().join("../shared/spin/manifest-v2.schema.json");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read Spin's schema at {}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("Spin's schema compiles");
    let instance = serde_json::to_value(manifest).unwrap();
    validator
        .iter_errors(&instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    new: NewArgs,
}

fn parse(args: &[&str]) -> Result<NewArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("new").chain(args.iter().copied())).map(|c| c.new)
}

#[test]
fn a_generated_project_has_every_file_with_the_chosen_values() {
    let fx = Fixture::new();
    let mut args = fx.args("proj");
    args.name = Some("my-app".into());
    args.http_port = 9100;
    args.websocket_port = 9101;
    args.web_ui_port = 3000;
    args.database_path = "var/db/app.db".into();
    new::run(&args).unwrap();
    let dir = fx.project_dir("proj");

    let files = snapshot(&dir);
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        expected_files(),
        "exactly the project's files, no temporary leftovers"
    );

    // spin.toml: name, prebuilt sources that exist, no build sections, the UI port.
    let manifest = toml_file(&dir.join("spin.toml"));
    assert_eq!(manifest["application"]["name"].as_str(), Some("my-app"));
    assert_eq!(
        manifest["variables"]["web_ui_port"]["default"].as_str(),
        Some("3000")
    );
    let components = manifest["component"].as_table().unwrap();
    assert_eq!(
        components.keys().collect::<Vec<_>>(),
        {
            let mut ids = COMPONENTS.to_vec();
            ids.sort();
            ids
        },
        "every component, nothing else"
    );
    for (id, component) in components {
        let source = component["source"].as_str().unwrap();
        assert_eq!(source, format!("components/{id}.wasm"));
        assert_eq!(fs::read(dir.join(source)).unwrap(), fake_wasm(id));
        assert!(component.get("build").is_none(), "{id} has a build section");
        // The dashboard is static files: no database. Every other component has one.
        let databases = component.get("sqlite_databases").and_then(|d| d.as_array());
        if id == "ui" {
            assert!(databases.is_none(), "ui needs no database");
        } else {
            assert_eq!(databases.unwrap()[0].as_str(), Some("default"), "{id}");
        }
    }
    let text = fs::read_to_string(dir.join("spin.toml")).unwrap();
    assert!(!text.contains(".build]"), "{text}");
    assert!(!text.contains("target/wasm32"), "{text}");

    // runtime-config.toml: the database path.
    let runtime = toml_file(&dir.join("runtime-config.toml"));
    assert_eq!(
        runtime["sqlite_database"]["default"]["path"].as_str(),
        Some("var/db/app.db")
    );
    assert_eq!(
        runtime["sqlite_database"]["default"]["type"].as_str(),
        Some("spin")
    );

    // .env: the chosen values, CORS empty, no token.
    let env = dotenv(&dir.join(".env"));
    let expected: BTreeMap<String, String> = [
        ("HTTP_PORT", "9100"),
        ("WEBSOCKET_PORT", "9101"),
        ("WEB_UI_PORT", "3000"),
        ("DATABASE_PATH", "var/db/app.db"),
        ("CORS_ORIGINS", ""),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    assert_eq!(env, expected);
    let env_text = fs::read_to_string(dir.join(".env")).unwrap();
    assert!(
        env_text.contains("\n# ORCHESTRATOR_API_TOKEN=\n"),
        "{env_text}"
    );

    // Migrations: the repo's files, byte for byte.
    for (name, bytes) in repo_migrations() {
        assert_eq!(fs::read(dir.join("migrations").join(&name)).unwrap(), bytes);
    }

    // README: the name, the ports, what migrations/ is for, how to run.
    let readme = fs::read_to_string(dir.join("README.md")).unwrap();
    for needle in [
        "# my-app",
        "orchestrator up",
        "http://127.0.0.1:9100/health",
        "ws://127.0.0.1:9101/ws/agent-status",
        "`3000`",
        "var/db/app.db",
        "orchestrator migrate",
        "0001_initial.sql",
        "components/agents.wasm",
    ] {
        assert!(
            readme.contains(needle),
            "README lacks {needle:?}:\n{readme}"
        );
    }
    assert!(!readme.contains("{{") && !readme.contains("{%"), "{readme}");

    let gitignore = fs::read_to_string(dir.join(".gitignore")).unwrap();
    assert!(gitignore.lines().any(|l| l == ".env"), "{gitignore}");
    assert!(
        !gitignore.contains("wasm"),
        "the components must be committed"
    );
}

#[test]
fn the_generated_manifest_passes_spins_own_schema() {
    let fx = Fixture::new();
    new::run(&fx.args("schema-check")).unwrap();
    let manifest = toml_file(&fx.project_dir("schema-check").join("spin.toml"));
    let errors = spin_schema_errors(&manifest);
    assert!(errors.is_empty(), "not a valid Spin manifest: {errors:#?}");
    // The validation can fail: a broken copy is rejected.
    let mut broken = manifest.clone();
    broken["application"]
        .as_table_mut()
        .unwrap()
        .insert("name".into(), toml::Value::Integer(5));
    assert!(!spin_schema_errors(&broken).is_empty());
}

#[test]
fn defaults_name_from_the_folder_and_use_the_documented_values() {
    let fx = Fixture::new();
    new::run(&fx.args("demo-app")).unwrap();
    let dir = fx.project_dir("demo-app");
    let manifest = toml_file(&dir.join("spin.toml"));
    assert_eq!(manifest["application"]["name"].as_str(), Some("demo-app"));
    let env = dotenv(&dir.join(".env"));
    assert_eq!(env["HTTP_PORT"], "8000");
    assert_eq!(env["WEBSOCKET_PORT"], "8001");
    assert_eq!(env["WEB_UI_PORT"], "5173");
    assert_eq!(env["DATABASE_PATH"], "data/orchestrator.db");
    let runtime = fs::read_to_string(dir.join("runtime-config.toml")).unwrap();
    assert_eq!(runtime, render_repo_runtime_config());

    let parsed = parse(&["some/where"]).unwrap();
    assert_eq!(parsed.http_port, 8000);
    assert_eq!(parsed.websocket_port, 8001);
    assert_eq!(parsed.web_ui_port, 5173);
    assert_eq!(parsed.database_path, "data/orchestrator.db");
    assert!(parsed.name.is_none() && parsed.components_dir.is_none());
    assert!(!parsed.force && !parsed.dry_run);
    let parsed = parse(&[
        "x",
        "--name",
        "n",
        "--http-port",
        "1",
        "--websocket-port",
        "65535",
        "--web-ui-port",
        "2",
        "--database-path",
        "a.db",
        "--components-dir",
        "c",
        "--force",
        "--dry-run",
    ])
    .unwrap();
    assert_eq!(
        (parsed.http_port, parsed.websocket_port, parsed.web_ui_port),
        (1, 65535, 2)
    );
    assert!(parsed.force && parsed.dry_run);
    for bad in [
        ["x", "--http-port", "0"],
        ["x", "--websocket-port", "65536"],
        ["x", "--web-ui-port", "-1"],
    ] {
        assert!(parse(&bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn the_sample_lists_every_variable_with_its_default() {
    let fx = Fixture::new();
    new::run(&fx.args("sample")).unwrap();
    let text = fs::read_to_string(fx.project_dir("sample").join(".env.sample")).unwrap();
    // Every assignment is commented out: `# NAME=default`.
    let listed: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    let expected: BTreeMap<&str, &str> = [
        ("DATABASE_PATH", "data/orchestrator.db"),
        ("DATABASE_URL", ""),
        ("DATABASE_TOKEN", ""),
        ("HTTP_PORT", "8000"),
        ("WEBSOCKET_PORT", "8001"),
        ("WEB_UI_PORT", "5173"),
        ("CORS_ORIGINS", ""),
        ("ORCHESTRATOR_API_TOKEN", ""),
        ("REQUEST_TIMEOUT_SECS", "60"),
        ("REQUEST_WALL_LIMIT_SECS", "900"),
        ("SHUTDOWN_GRACE_SECS", "10"),
        ("MAX_BODY_BYTES", "1048576"),
        ("SQLITE_POOL_SIZE", "16"),
        ("SQLITE_SYNCHRONOUS", "normal"),
        ("HEARTBEAT_SECS", "30"),
        ("SPIN_VARIABLE_SSE_MAX_SECONDS", "50"),
        ("SPIN_VARIABLE_SSE_KEEPALIVE_SECONDS", "15"),
        ("RETENTION_DAYS", "30"),
        ("APPROVAL_WAIT_SECS", "300"),
        ("RUNNER_LEASE_SECS", "30"),
        ("HEADER_READ_TIMEOUT_SECS", "10"),
        ("MAX_CONNECTIONS_PER_CLIENT", "512"),
        ("ORCHESTRATOR_COMPILE_CACHE", ".spin/compiled"),
        ("RUST_LOG", "info"),
    ]
    .into();
    assert_eq!(listed, expected);
    assert!(
        dotenv(&fx.project_dir("sample").join(".env.sample")).is_empty(),
        "nothing is set by the sample itself"
    );

    // Every `env = "NAME"` of the CLI's flags is listed, so a new setting can't be forgotten.
    let mut stack = vec![repo_root().join("cli/src")];
    while let Some(folder) = stack.pop() {
        for entry in fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let source = fs::read_to_string(&path).unwrap();
            for piece in source.split("env = \"").skip(1) {
                let name = piece.split('"').next().unwrap();
                assert!(
                    listed.contains_key(name),
                    "{name} (read in {}) is missing from templates/env.sample.j2",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn a_second_run_skips_every_file_and_changes_nothing() {
    let fx = Fixture::new();
    let args = fx.args("again");
    new::run(&args).unwrap();
    let dir = fx.project_dir("again");
    fs::write(dir.join(".env"), "HTTP_PORT=1234\n").unwrap(); // a user's edit
    let before = snapshot(&dir);
    std::thread::sleep(Duration::from_millis(50));

    let second = plan(&args).unwrap();
    assert!(second.files.iter().all(|f| f.action == Action::Skip));
    let summary = second.summary(false);
    for file in expected_files() {
        assert!(summary.contains(&format!("skip       {file}")), "{summary}");
    }
    let skipped = format!(
        "Skipped {} existing files (pass --force to overwrite): spin.toml, ",
        expected_files().len()
    );
    assert!(summary.contains(&skipped), "{summary}");
    second.apply().unwrap();
    new::run(&args).unwrap();
    assert_eq!(snapshot(&dir), before, "contents and mtimes unchanged");

    // A deleted file is created again, the others still skipped.
    fs::remove_file(dir.join("README.md")).unwrap();
    let third = plan(&args).unwrap();
    assert_eq!(third.paths(Action::Create), ["README.md"]);
    third.apply().unwrap();
    assert_eq!(
        fs::read_to_string(dir.join(".env")).unwrap(),
        "HTTP_PORT=1234\n"
    );
    assert!(dir.join("README.md").is_file());
}

#[test]
fn force_overwrites_existing_files() {
    let fx = Fixture::new();
    let mut args = fx.args("forced");
    new::run(&args).unwrap();
    let dir = fx.project_dir("forced");
    let fresh = snapshot(&dir);
    fs::write(dir.join(".env"), "HTTP_PORT=1234\n").unwrap();
    fs::write(dir.join("components/meta.wasm"), b"stale").unwrap();

    args.force = true;
    args.http_port = 8500;
    let forced = plan(&args).unwrap();
    assert!(forced.files.iter().all(|f| f.action == Action::Overwrite));
    assert!(forced.summary(false).contains("overwrite  spin.toml"));
    forced.apply().unwrap();

    assert_eq!(dotenv(&dir.join(".env"))["HTTP_PORT"], "8500");
    assert_eq!(
        fs::read(dir.join("components/meta.wasm")).unwrap(),
        fake_wasm("meta")
    );
    let after = snapshot(&dir);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        fresh.keys().collect::<Vec<_>>()
    );
    assert_eq!(after["spin.toml"].0, fresh["spin.toml"].0);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("spin.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o044, 0o044, "an ordinary readable file, not 0600");
    }
}

#[test]
fn dry_run_writes_nothing() {
    let fx = Fixture::new();
    let mut args = fx.args("dry");
    args.dry_run = true;
    new::run(&args).unwrap();
    assert!(!fx.project_dir("dry").exists(), "not even the folder");
    let summary = plan(&args).unwrap().summary(true);
    assert!(summary.starts_with("Dry run"), "{summary}");
    assert!(summary.contains("create     spin.toml"), "{summary}");
    assert!(summary.contains("orchestrator up"), "{summary}");

    // On an existing project: the plan says skip / overwrite, and nothing changes.
    args.dry_run = false;
    new::run(&args).unwrap();
    let dir = fx.project_dir("dry");
    fs::remove_file(dir.join(".gitignore")).unwrap();
    let before = snapshot(&dir);
    std::thread::sleep(Duration::from_millis(50));
    args.dry_run = true;
    for force in [false, true] {
        args.force = force;
        new::run(&args).unwrap();
        let summary = plan(&args).unwrap().summary(true);
        assert!(summary.contains("create     .gitignore"), "{summary}");
        let other = if force {
            "overwrite  .env"
        } else {
            "skip       .env"
        };
        assert!(summary.contains(other), "{summary}");
    }
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn invalid_settings_are_refused_before_anything_is_written() {
    let fx = Fixture::new();
    let refused = |args: &NewArgs, dir: &str, needle: &str| {
        let err = format!("{:#}", new::run(args).unwrap_err());
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        assert!(!err.contains('\n'), "one line: {err:?}");
        assert!(!fx.project_dir(dir).exists(), "{dir} was created");
    };

    for bad in ["My-App", "my_app", "1app", "app-", "a--b", "", "my app"] {
        let mut args = fx.args("named");
        args.name = Some(bad.into());
        refused(&args, "named", "invalid application name");
    }
    // A name taken from the folder obeys the same rule, and the error says what to do.
    refused(&fx.args("Bad_Folder"), "Bad_Folder", "pass --name NAME");
    refused(&fx.args("Bad_Folder"), "Bad_Folder", "\"bad-folder\"");
    let mut args = fx.args("Bad_Folder");
    args.name = Some("good-name".into());
    args.dry_run = true;
    plan(&args).expect("--name overrides the folder's name");

    let mut args = fx.args("ports");
    args.http_port = 0;
    refused(&args, "ports", "--http-port");
    let mut args = fx.args("ports");
    args.websocket_port = 8000;
    refused(
        &args,
        "ports",
        "--http-port and --websocket-port are both 8000",
    );

    let mut args = fx.args("db");
    args.database_path = "a\nb".into();
    refused(&args, "db", "--database-path");

    // Missing components: one line telling the user to build them first.
    let empty = fx.tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let mut args = fx.args("unbuilt");
    args.components_dir = Some(empty);
    refused(&args, "unbuilt", "run `orchestrator build` first");
    refused(
        &args,
        "unbuilt",
        "agents.wasm, runtime.wasm, events.wasm, ingest.wasm, ui.wasm, meta.wasm missing",
    );
    let mut args = fx.args("unbuilt");
    fs::remove_file(fx.components_dir().join("events.wasm")).unwrap();
    args.components_dir = Some(fx.components_dir());
    refused(&args, "unbuilt", "events.wasm missing");

    // DIR is a file.
    fs::write(fx.project_dir("a-file"), "x").unwrap();
    let err = new::run(&fx.args("a-file")).unwrap_err();
    assert!(format!("{err:#}").contains("is not a folder"), "{err:#}");
}

#[test]
fn values_that_need_quoting_survive_every_format() {
    let fx = Fixture::new();
    let mut args = fx.args("quoting");
    let path = r#"my data/it's "$HOME" \x.db"#;
    args.database_path = path.into();
    new::run(&args).unwrap();
    let dir = fx.project_dir("quoting");
    assert_eq!(dotenv(&dir.join(".env"))["DATABASE_PATH"], path);
    let runtime = toml_file(&dir.join("runtime-config.toml"));
    assert_eq!(
        runtime["sqlite_database"]["default"]["path"].as_str(),
        Some(path)
    );
}

#[test]
fn the_templates_reproduce_the_repos_own_files() {
    let manifest = fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let rendered = render_repo_manifest();
    assert!(
        rendered == manifest,
        "templates/spin.toml.j2 no longer renders the repo's spin.toml; first difference at \
         line {}:\n  rendered: {:?}\n  repo:     {:?}",
        first_difference(&rendered, &manifest) + 1,
        rendered.lines().nth(first_difference(&rendered, &manifest)),
        manifest.lines().nth(first_difference(&rendered, &manifest)),
    );
    let runtime = fs::read_to_string(repo_root().join("runtime-config.toml")).unwrap();
    assert_eq!(render_repo_runtime_config(), runtime);
    let sample = fs::read_to_string(repo_root().join(".env.sample")).unwrap();
    assert_eq!(new::render_env_sample(), sample);

    // The migrations a project gets are the repo's files, all of them, byte for byte.
    let embedded: BTreeMap<String, Vec<u8>> = new::migration_files()
        .into_iter()
        .map(|f| {
            (
                f.path.trim_start_matches("migrations/").to_owned(),
                f.contents,
            )
        })
        .collect();
    assert_eq!(embedded, repo_migrations());
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or_else(|| a.lines().count().min(b.lines().count()))
}
