//! Spin runtime configuration (`runtime-config.toml`): where each SQLite database
//! label lives.
//!
//! Interpreted: `[sqlite_database.<label>]` with `type = "spin", path = "..."` (a local
//! file) or `type = "libsql", url = "...", token = "..."` (a libSQL server, e.g. `sqld`
//! or Turso), and `[key_value_store.<label>]` with `type = "spin", path = "..."`. Other
//! sections (variable providers, ...) are ignored.
//!
//! Relative paths resolve as Spin resolves them, which differs by section: a SQLite
//! database `path` against the working directory of the process (Spin's SQLite resolver
//! is handed `std::env::current_dir()`), a key-value store `path` against the runtime
//! config file's directory. Backends this host cannot serve are a start-up error rather
//! than a silent fallback to a local file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use serde::Deserialize;

/// Where Spin keeps the `default` database when the runtime config doesn't say:
/// `.spin/sqlite_db.db` under the manifest's directory.
pub fn default_database_path(manifest_dir: &Path) -> PathBuf {
    manifest_dir.join(".spin").join("sqlite_db.db")
}

/// Where one SQLite database label lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteDatabase {
    /// A local file (`type = "spin"`), already resolved against the working directory.
    File(PathBuf),
    /// A libSQL server (`type = "libsql"`).
    Libsql(LibsqlConfig),
}

/// A libSQL server: its URL and the bearer token sent with every request.
#[derive(Clone, PartialEq, Eq)]
pub struct LibsqlConfig {
    /// `http://`, `https://` or `libsql://` (spoken as `https://`, as libSQL's clients do).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; empty sends none (a server without auth).
    pub token: String,
}

impl LibsqlConfig {
    /// A checked config: the URL must be absolute with one of the schemes above.
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Result<LibsqlConfig> {
        let url = url.into().trim().to_string();
        if url.is_empty() {
            bail!("the libSQL `url` is empty");
        }
        let scheme_ok = ["http://", "https://", "libsql://"]
            .iter()
            .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
        if !scheme_ok {
            bail!("the libSQL `url` {url:?} must start with http://, https:// or libsql://");
        }
        url.parse::<http::Uri>()
            .map_err(|e| anyhow!("the libSQL `url` {url:?} is not a valid URL: {e}"))?;
        Ok(LibsqlConfig {
            url,
            token: token.into(),
        })
    }
}

/// The token never reaches logs or error messages.
impl std::fmt::Debug for LibsqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibsqlConfig")
            .field("url", &self.url)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// A parsed runtime config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// SQLite database label to where it lives.
    pub sqlite_databases: BTreeMap<String, SqliteDatabase>,
    /// Key-value store label to its SQLite file (`[key_value_store.<label>]`),
    /// resolved against the runtime config file's directory.
    pub key_value_stores: BTreeMap<String, PathBuf>,
}

#[derive(Deserialize)]
struct RawRuntimeConfig {
    #[serde(default)]
    sqlite_database: BTreeMap<String, RawSqliteDatabase>,
    #[serde(default)]
    key_value_store: BTreeMap<String, RawSqliteDatabase>,
}

#[derive(Deserialize)]
struct RawSqliteDatabase {
    #[serde(rename = "type")]
    kind: String,
    path: Option<String>,
    url: Option<String>,
    token: Option<String>,
}

impl RuntimeConfig {
    /// Read and parse the runtime config at `path`. Errors are one line and name the
    /// file (with line and column for TOML errors).
    pub fn from_file(path: &Path) -> Result<RuntimeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read runtime config {}: {e}", path.display()))?;
        RuntimeConfig::parse(&text, path)
    }

    /// Parse `text` as if read from `path`, resolving SQLite paths against the
    /// process's working directory.
    pub fn parse(text: &str, path: &Path) -> Result<RuntimeConfig> {
        let cwd = std::env::current_dir()
            .map_err(|e| anyhow!("cannot read the working directory: {e}"))?;
        RuntimeConfig::parse_in(text, path, &cwd)
    }

    /// [`RuntimeConfig::parse`] with the working directory given.
    pub fn parse_in(text: &str, path: &Path, cwd: &Path) -> Result<RuntimeConfig> {
        let raw: RawRuntimeConfig = toml::from_str(text).map_err(|e| {
            anyhow!(
                "invalid runtime config {}: {}",
                path.display(),
                crate::diag::toml_error(text, &e)
            )
        })?;
        let config_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let invalid = |e: anyhow::Error| anyhow!("invalid runtime config {}: {e}", path.display());
        let mut sqlite_databases = BTreeMap::new();
        for (label, db) in raw.sqlite_database {
            let section = format!("sqlite_database.{label}");
            let resolved = sqlite_database(&section, db, cwd).map_err(invalid)?;
            sqlite_databases.insert(label, resolved);
        }
        let mut key_value_stores = BTreeMap::new();
        for (label, store) in raw.key_value_store {
            let section = format!("key_value_store.{label}");
            if store.kind != "spin" {
                return Err(invalid(anyhow!(
                    "[{section}] type = \"{}\" is not supported by this host (only \"spin\", a local file)",
                    store.kind
                )));
            }
            let resolved = file_path(&section, store.path, config_dir).map_err(invalid)?;
            key_value_stores.insert(label, resolved);
        }
        Ok(RuntimeConfig {
            sqlite_databases,
            key_value_stores,
        })
    }
}

fn sqlite_database(section: &str, db: RawSqliteDatabase, cwd: &Path) -> Result<SqliteDatabase> {
    match db.kind.as_str() {
        "spin" => {
            if db.url.is_some() || db.token.is_some() {
                bail!("[{section}] type = \"spin\" takes a `path`, not `url`/`token` (did you mean type = \"libsql\"?)");
            }
            Ok(SqliteDatabase::File(file_path(section, db.path, cwd)?))
        }
        "libsql" => {
            if db.path.is_some() {
                bail!("[{section}] type = \"libsql\" takes `url` and `token`, not a `path`");
            }
            let Some(url) = db.url else {
                bail!("[{section}] type = \"libsql\" needs a `url` (e.g. \"https://<db>.turso.io\" or \"http://127.0.0.1:8080\")");
            };
            let config = LibsqlConfig::new(url, db.token.unwrap_or_default())
                .map_err(|e| anyhow!("[{section}] {e}"))?;
            Ok(SqliteDatabase::Libsql(config))
        }
        other => bail!(
            "[{section}] type = \"{other}\" is not supported by this host (\"spin\", a local file, or \"libsql\", a libSQL server)"
        ),
    }
}

fn file_path(section: &str, path: Option<String>, base: &Path) -> Result<PathBuf> {
    match path {
        Some(p) if !p.is_empty() => Ok(base.join(p)),
        _ => bail!("[{section}] needs a `path` (in-memory databases are not supported)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> SqliteDatabase {
        SqliteDatabase::File(PathBuf::from(p))
    }

    #[test]
    fn sqlite_paths_resolve_against_the_working_directory_kv_against_the_file() {
        let rc = RuntimeConfig::parse_in(
            r#"
[sqlite_database.default]
type = "spin"
path = "data/app.db"

[sqlite_database.abs]
type = "spin"
path = "/var/lib/x.db"

[key_value_store.default]
type = "spin"
path = "kv.db"
"#,
            Path::new("/etc/app/runtime-config.toml"),
            Path::new("/srv/work"),
        )
        .unwrap();
        assert_eq!(
            rc.sqlite_databases["default"],
            file("/srv/work/data/app.db")
        );
        assert_eq!(rc.sqlite_databases["abs"], file("/var/lib/x.db"));
        assert_eq!(rc.sqlite_databases.len(), 2);
        assert_eq!(rc.key_value_stores["default"], Path::new("/etc/app/kv.db"));
    }

    #[test]
    fn parse_uses_the_process_working_directory() {
        let rc = RuntimeConfig::parse(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"a.db\"\n",
            Path::new("/elsewhere/runtime-config.toml"),
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            rc.sqlite_databases["default"],
            SqliteDatabase::File(cwd.join("a.db"))
        );
    }

    #[test]
    fn libsql_url_and_token() {
        let rc = RuntimeConfig::parse_in(
            r#"
[sqlite_database.default]
type = "libsql"
url = "https://db-org.turso.io"
token = "secret-token"

[sqlite_database.local]
type = "libsql"
url = "http://127.0.0.1:8080"
"#,
            Path::new("rc.toml"),
            Path::new("/w"),
        )
        .unwrap();
        let SqliteDatabase::Libsql(remote) = &rc.sqlite_databases["default"] else {
            panic!("{:?}", rc.sqlite_databases["default"]);
        };
        assert_eq!(remote.url, "https://db-org.turso.io");
        assert_eq!(remote.token, "secret-token");
        // The token stays out of debug output (logs, error chains).
        let shown = format!("{rc:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(
            rc.sqlite_databases["local"],
            SqliteDatabase::Libsql(LibsqlConfig::new("http://127.0.0.1:8080", "").unwrap())
        );
    }

    #[test]
    fn empty_config_is_fine() {
        let rc = RuntimeConfig::parse("", Path::new("rc.toml")).unwrap();
        assert!(rc.sqlite_databases.is_empty());
    }

    #[test]
    fn errors_are_one_line_and_name_the_file() {
        for (text, needle) in [
            (
                "[sqlite_database.default]\ntype = \"postgres\"\n",
                "type = \"postgres\" is not supported",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\ntoken = \"t\"\n",
                "[sqlite_database.default] type = \"libsql\" needs a `url`",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"\"\n",
                "`url` is empty",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"ftp://x\"\n",
                "must start with http://, https:// or libsql://",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://a b\"\n",
                "not a valid URL",
            ),
            (
                "[sqlite_database.default]\ntype = \"libsql\"\nurl = \"http://x\"\npath = \"a.db\"\n",
                "not a `path`",
            ),
            (
                "[sqlite_database.default]\ntype = \"spin\"\nurl = \"http://x\"\n",
                "did you mean type = \"libsql\"",
            ),
            (
                "[sqlite_database.default]\ntype = \"spin\"\n",
                "needs a `path`",
            ),
            (
                "[key_value_store.default]\ntype = \"redis\"\n",
                "type = \"redis\" is not supported",
            ),
            ("[sqlite_database.default]\ntype = spin\n", "line 2"),
        ] {
            let e = RuntimeConfig::parse(text, Path::new("/c/rc.toml"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{e}");
            assert!(e.contains("/c/rc.toml"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn default_path_is_spins() {
        assert_eq!(
            default_database_path(Path::new("/app")),
            Path::new("/app/.spin/sqlite_db.db")
        );
    }
}
